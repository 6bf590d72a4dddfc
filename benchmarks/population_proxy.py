"""A cheap proxy of a population's CT-AC stress TPD: the true stress loss of its phantoms.

Run: python benchmarks/population_proxy.py --population referral --patients 300

TPD (total perfusion deficit) is roughly the percentage of the LV whose counts fall below the
normal limits; a true loss under ~10% stays within the normal variation (docs/quantification.md,
spectac.evaluation.truth.VISIBLE_SEGMENT_LOSS). So, for each patient's stress phantom, this
prints the fraction of myocardium voxels with a true loss >= 10% (loss = 1 - activity with the
defects / activity without them, voxels with >= 50% myocardium; 32^3 grid at 13.6 mm, 2x
supersampled) and the fraction of the 17 AHA segments with a mean true loss >= 10% (lv.json
``segment_defect``). Times 100 they are the population's proxy TPD.
"""

from __future__ import annotations

import argparse
import dataclasses

import numpy as np

from spectac.phantom.anatomy import build_phantom
from spectac.simulate import patient_params


def stress_loss(params) -> tuple[float, float]:
    """(voxel fraction, segment fraction) of the stress phantom with a true loss >= 10%."""
    if not params.defects:
        return 0.0, 0.0
    grid = dict(shape=(32, 32, 32), spacing_mm=13.6, supersample=2)
    sick = build_phantom(params, "stress", **grid)
    well = build_phantom(dataclasses.replace(params, defects=[]), "stress", **grid)
    myo = sick.myocardium > 0.5
    loss = 1.0 - sick.activity[myo] / np.maximum(well.activity[myo], 1e-6)
    segments = np.array(list(sick.lv["segment_defect"].values()))
    return float(np.mean(loss >= 0.10)), float(np.mean(segments >= 0.10))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--population", default="referral")
    parser.add_argument("--patients", type=int, default=300)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rows = [patient_params(args.seed, i, None, None, args.population) for i in range(args.patients)]
    losses = np.array([stress_loss(p) for p in rows])
    n_def = np.array([len(p.defects) for p in rows])
    print(f"population {args.population}, {args.patients} patients, seed {args.seed}")
    print(f"diseased {np.mean(n_def > 0):.2f}; multivessel (2-3 territories) {np.mean(n_def > 1):.2f}")
    for name, col in (("voxel", 0), ("segment", 1)):
        v = losses[:, col]
        print(f"{name} fraction with true stress loss >= 10%: mean {v.mean():.3f} SD {v.std():.3f} "
              f"(proxy TPD {100 * v.mean():.1f} +- {100 * v.std():.1f})")


if __name__ == "__main__":
    main()
