"""Regional non-uniformity of the myocardium in NC and CT-AC, over the normal studies of a cohort.

Run: python benchmarks/uniformity.py DATASET
The measure is the coefficient of variation of the 17 AHA segment values of the polar map
(maximal-count profiles on the true LV geometry from lv.json).
"""

from __future__ import annotations

import argparse

import numpy as np

from spectac.io.dataset import Dataset
from spectac.quant.geometry import LVGeometry
from spectac.quant.polar import polar_map
from spectac.quant.segments import polar_segments


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("dataset")
    args = parser.parse_args()
    ds = Dataset.open(args.dataset)
    cv: dict[str, list[float]] = {"nc": [], "ac": []}
    for case in ds.cases:
        if case.has_defect:
            continue
        geometry = LVGeometry.from_lv_json(ds.lv(case.case_id))
        for name in cv:
            segments = polar_segments(polar_map(ds.load(case.case_id, name), geometry))
            cv[name].append(float(segments.std() / segments.mean()))
    nc, ac = np.array(cv["nc"]), np.array(cv["ac"])
    ratio = nc / ac
    print(f"{len(nc)} studies without a defect in {args.dataset}")
    print("| image | 17-segment CV, mean +- SD |")
    print("|---|---|")
    print(f"| NC | {nc.mean():.3f} +- {nc.std():.3f} |")
    print(f"| CT-AC | {ac.mean():.3f} +- {ac.std():.3f} |")
    print(f"NC/CT-AC ratio of the CV: median {np.median(ratio):.2f}, min {ratio.min():.2f}, "
          f"studies with ratio > 1.5: {np.mean(ratio > 1.5) * 100:.0f}%")


if __name__ == "__main__":
    main()
