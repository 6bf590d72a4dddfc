"""Where a correction's whole-volume error against CT-AC lies: in the air around the body or in it.

    python benchmarks/error_by_region.py DATA RUN [--split val] [--method unet-gan3d-chang ...]

For every study of the split and every method with predictions in ``RUN/predictions/<method>/``
(and, when the dataset was simulated with ``--expected-ac``, the expected-count CT-AC as the
method ``ac-expected``: the floor), the whole-volume MAE against the study's CT-AC is split into
what the air contributes (voxels where the study's true mu-map, the body that attenuated the
projections, is below 0.03/cm) and what the body contributes; the two add up to the MAE
`spectac evaluate` reports. Also the mean prediction in the air beside CT-AC's and, with the
expected-count CT-AC, each method's MAE against it: a prediction nearer the noisy CT-AC than its
expected image has learnt part of CT-AC's noise from NC's (the two share their projections).
Prints a markdown table of means over the studies.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from spectac.io.dataset import Dataset
from spectac.io.nifti import read_nifti
from spectac.reconstruction.study import true_mu

#: Below this mu (1/cm at 140 keV) a voxel is air: lung is 0.04-0.05, soft tissue 0.15.
AIR_MU = 0.03


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", type=Path)
    parser.add_argument("run", type=Path)
    parser.add_argument("--split", default="val")
    parser.add_argument("--method", action="append", help="methods to score (default: every one in RUN)")
    args = parser.parse_args()
    dataset = Dataset.open(args.data)
    cases = dataset.split(args.split)
    root = args.run / "predictions"
    methods = args.method or (sorted(p.name for p in root.iterdir() if p.is_dir()) if root.is_dir() else [])
    if not cases or not methods:
        print(f"{args.run}: no studies of split {args.split!r} or no predictions", file=sys.stderr)
        return 2
    rows = []
    for case in cases:
        ac = dataset.load(case.case_id, "ac").array
        air = true_mu(dataset, case.case_id).array < AIR_MU
        expected = dataset.load(case.case_id, "ac_expected").array if dataset.has(case.case_id, "ac_expected") else None
        images = {m: read_nifti(root / m / f"{case.case_id}.nii.gz").array for m in methods
                  if (root / m / f"{case.case_id}.nii.gz").is_file()}
        if expected is not None:
            images["ac-expected"] = expected
        for method, image in images.items():
            error = np.abs(image - ac)
            row = {"case_id": case.case_id, "method": method, "mae": float(error.mean()),
                   "air": float(error[air].sum() / error.size), "body": float(error[~air].sum() / error.size),
                   "air_mean": float(image[air].mean()), "ac_air_mean": float(ac[air].mean())}
            if expected is not None:
                row["mae_vs_expected"] = float(np.abs(image - expected).mean())
            rows.append(row)
    table = pd.DataFrame(rows).groupby("method").mean(numeric_only=True)
    print(f"`python {' '.join(sys.argv)}`\n")
    print(f"{len(cases)} studies of the {args.split} split: MAE in counts against CT-AC, split by region "
          f"(air: true mu < {AIR_MU}/cm); mean predicted counts in the air; MAE against the expected image\n")
    columns = ["mae", "air", "body", "air_mean", "ac_air_mean"] + (["mae_vs_expected"] if "mae_vs_expected" in table else [])
    print("| method | " + " | ".join(columns) + " |")
    print("|---|" + "---|" * len(columns))
    for method, row in table.iterrows():
        print(f"| {method} | " + " | ".join(f"{row[c]:.2f}" for c in columns) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
