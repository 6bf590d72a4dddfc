"""How close can any correction get to CT-AC? The noise floor of the whole-volume MAE.

CT-AC is itself a noisy OSEM image. A correction that predicted the expected CT-AC image exactly
(noise-free) would still differ from the one noisy CT-AC it is scored against by the noise of that
image. For a few patients of the default cohort this script acquires the same phantom (same
position and counts) twice with independent Poisson noise, reconstructs both, and reports the MAE
between the two CT-AC images divided by sqrt(2): the MAE of one noisy image against its expected
value (exact for Gaussian noise). NC and CT-AC of one study share their projections, so a network
can undercut this floor only by predicting the noise of CT-AC from the noise of NC.

Run:  python benchmarks/noise_floor.py [--patients 6] [--seed 0] [--counts 4e6]
"""

from __future__ import annotations

import argparse
import sys

import numpy as np
import torch

from spectac.acquisition.acquire import acquire_windows, scale_to_counts
from spectac.phantom.anatomy import build_phantom
from spectac.simulate import SimulationConfig, patient_params, reconstruct_pair


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patients", type=int, default=6)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--counts", type=float, default=4e6, help="counts per study (the stress mean)")
    args = parser.parse_args()
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


if __name__ == "__main__":
    raise SystemExit(main())
