"""How close can any correction get to CT-AC? The noise floor of the whole-volume MAE.

CT-AC is itself a noisy OSEM image. A correction that predicted the expected CT-AC image exactly
(noise-free) would still differ from the one noisy CT-AC it is scored against by the noise of that
image. For a few patients of the default cohort this script acquires the same phantom (same
position and counts) twice with independent Poisson noise, reconstructs both, and reports the MAE
between the two CT-AC images divided by sqrt(2): the MAE of one noisy image against its expected
value (exact for Gaussian noise). NC and CT-AC of one study share their projections, so a network
can undercut this floor only by predicting the noise of CT-AC from the noise of NC.

Run:  python benchmarks/noise_floor.py [--patients 6] [--seed 0] [--counts 4e6]

Per study of a simulated dataset (``--data DATA --split val``): every study of the split is
simulated again exactly as `spectac simulate` made it (the same anatomy, position, counts, orbit,
collimator and misregistration) but with an independent Poisson draw of the projections, and the
CT-AC of that acquisition is compared with the dataset's own CT-AC. The floor of a study is that
MAE / sqrt(2); with ``--run RUN`` (an evaluated run holding Chang's predictions of the split) it is
also given as a multiple of Chang's MAE, the form of the shipped model's goal. With
``--predictions RUN/predictions/ac-repeat`` the re-simulated CT-AC images are written as a method's
predictions: `spectac evaluate` then scores CT-AC against itself under another noise draw, e.g.
how often its TPD lies within 2 points of the dataset's CT-AC's (`benchmarks/goals.py RUN`). With
``--expected`` the projections are their expected counts instead of a draw: the CT-AC a correction
that knew the patient exactly would give (its MAE against the dataset's CT-AC is the floor, not
divided by sqrt(2)); write it to ``RUN/predictions/ac-expected``. The dataset must be
the default cohort of this version made with ``--seed`` (the script checks the first study's
re-simulation with the original draw against the dataset, bit for bit).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from unittest import mock

import numpy as np
import torch

from spectac.acquisition import acquire as acquisition
from spectac.acquisition.acquire import acquire_windows, scale_to_counts
from spectac.io.dataset import Dataset
from spectac.io.nifti import write_nifti
from spectac.phantom.anatomy import build_phantom
from spectac.simulate import SimulationConfig, cohort_study, patient_params, reconstruct_pair


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patients", type=int, default=6)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--counts", type=float, default=4e6, help="counts per study (the stress mean)")
    parser.add_argument("--data", type=Path, help="a default-cohort dataset: the floor per study of --split")
    parser.add_argument("--split", default="val")
    parser.add_argument("--run", type=Path, help="an evaluated run with Chang's predictions (metrics.csv)")
    parser.add_argument("--csv", type=Path, help="write the per-study floors here")
    parser.add_argument("--expected", action="store_true",
                        help="re-simulate with the expected counts (no Poisson draw): the CT-AC a correction "
                             "that knew the patient exactly would predict (its MAE is not divided by sqrt(2))")
    parser.add_argument("--predictions", type=Path,
                        help="also write each re-simulated CT-AC as a method's prediction, "
                             "PREDICTIONS/CASE.nii.gz (e.g. RUN/predictions/ac-repeat), for spectac evaluate")
    args = parser.parse_args()
    if args.data is not None:
        return per_study(args)
    torch.set_num_threads(2)
    config = SimulationConfig()
    rows = []
    for index in range(args.patients):
        params = patient_params(args.seed, index, config.defect_probability)
        phantom = build_phantom(params, "stress", config.shape, config.spacing_mm, shift_mm=(0.0, 0.0, 0.0),
                                supersample=config.supersample)
        truth, mu = scale_to_counts(phantom.activity, phantom.mu_map, args.counts, config.protocol, config.spacing_mm)
        pair = []
        for noise_seed in (1, 2):
            windows, model = acquire_windows(truth, mu, config.protocol, config.spacing_mm,
                                             np.random.default_rng(noise_seed))
            pair.append(reconstruct_pair(windows, model, mu, config))
        rows.append({name: float(np.abs(pair[0][name] - pair[1][name]).mean() / np.sqrt(2)) for name in ("ac", "nc")})
    ac = np.array([r["ac"] for r in rows])
    nc = np.array([r["nc"] for r in rows])
    print(f"`python {' '.join(sys.argv)}`\n")
    print(f"{args.patients} stress studies at {args.counts:.2g} counts: noise MAE of one image against its expected value")
    print(f"- CT-AC: {ac.mean():.2f} +- {ac.std(ddof=1):.2f} counts (min {ac.min():.2f}, max {ac.max():.2f})")
    print(f"- NC: {nc.mean():.2f} +- {nc.std(ddof=1):.2f} counts")
    return 0


def _resimulated_ac(seed: int, index: int, state: str, noise: np.random.Generator | str | None) -> np.ndarray:
    """The CT-AC of a study of the default cohort made with ``seed``; with a generator ``noise``,
    the Poisson draws of its projections come from it instead of the study's own (every other draw
    is the study's: :func:`spectac.simulate.simulate_study` draws them before the counts); with
    ``"expected"``, the projections are their expected counts (no draw)."""
    draw = acquisition.poisson_counts

    def replacement(expected, rng):
        if noise is None:
            return draw(expected, rng)
        return expected.float().clone() if isinstance(noise, str) else draw(expected, noise)

    with mock.patch.object(acquisition, "poisson_counts", replacement):
        volumes, _, _ = cohort_study(seed, index, state, SimulationConfig())
    return volumes["ac"]


def per_study(args: argparse.Namespace) -> int:
    import pandas as pd

    dataset = Dataset.open(args.data)
    cases = dataset.split(args.split)
    if not cases:
        print(f"{args.data}: no studies in split {args.split!r}", file=sys.stderr)
        return 2
    torch.set_num_threads(1)
    if args.predictions is not None:
        args.predictions.mkdir(parents=True, exist_ok=True)
    first = cases[0]
    same = _resimulated_ac(args.seed, int(first.patient_id[1:]), first.state, None)
    if not np.array_equal(same, dataset.load(first.case_id, "ac").array):
        print(f"{args.data}: {first.case_id} re-simulated with --seed {args.seed} is not the dataset's CT-AC; "
              "is it this version's default cohort of that seed?", file=sys.stderr)
        return 2
    chang = None
    if args.run is not None:
        metrics = pd.read_csv(args.run / "metrics.csv")
        chang = metrics[metrics["method"] == "chang"].set_index("case_id")["mae"]
    rows = []
    for i, case in enumerate(cases):
        noise = "expected" if args.expected else np.random.default_rng(np.random.SeedSequence([args.seed, 777, i]))
        other = _resimulated_ac(args.seed, int(case.patient_id[1:]), case.state, noise)
        reference = dataset.load(case.case_id, "ac")
        floor = float(np.abs(other - reference.array).mean() / (1.0 if args.expected else np.sqrt(2)))
        if args.predictions is not None:
            write_nifti(reference.with_array(other), args.predictions / f"{case.case_id}.nii.gz",
                        descrip="CT-AC of the expected counts" if args.expected else "CT-AC, another Poisson draw")
        row = {"case_id": case.case_id, "state": case.state, "floor_mae": floor}
        if chang is not None:
            row["chang_mae"] = float(chang[case.case_id])
        rows.append(row)
        print(f"{case.case_id}: {floor:.2f}", file=sys.stderr)
    table = pd.DataFrame(rows)
    if args.csv is not None:
        table.to_csv(args.csv, index=False)
    print(f"`python {' '.join(sys.argv)}`\n")
    what = ("CT-AC of the expected counts against the dataset's CT-AC" if args.expected
            else "CT-AC's noise MAE against its expected image")
    print(f"{len(table)} studies of the {args.split} split: {what}")
    for state, part in [("all", table), *table.groupby("state")]:
        line = f"- {state}: {part.floor_mae.mean():.2f} +- {part.floor_mae.std(ddof=1):.2f} counts"
        if chang is not None:
            line += f"; / Chang's mean MAE: {part.floor_mae.mean() / part.chang_mae.mean():.3f}"
        print(line)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
