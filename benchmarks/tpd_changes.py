"""How a method's TPD agreement with CT-AC changes between two evaluated runs of the same studies.

    python benchmarks/tpd_changes.py RUN_A RUN_B [--method unet-gan3d-chang]

Both runs' clinical.csv (`spectac evaluate`) must hold the same CT-AC TPDs (the same studies and
the same LV fits); over the studies with an LV in CT-AC's image it prints, for each run, how many
of the method's TPDs lie within 2 points of CT-AC's (a study without an LV in the method's image
counts as a miss), how many studies leave and enter that band from A to B, and, over the studies
with an LV in both runs' images, how far a study's TPD moves (median, 90th percentile, maximum,
and how many move at all). Exit 2 when a run has no clinical.csv, lacks the method, or its CT-AC
scores differ from the other's.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

from spectac.evaluation.agreement import TPD_AGREEMENT_POINTS as WITHIN

#: A TPD difference below this (points) is float rounding, not a change.
MOVED = 0.01


def tpd_changes(a: pd.DataFrame, b: pd.DataFrame, method: str) -> dict[str, float]:
    """The counts and moves described in the module docstring, from two clinical tables.

    Raises:
        ValueError: a table without the method, or CT-AC scores that differ between the two.
    """
    ref_a, ref_b = (t[t["method"] == "ac"].set_index("case_id")["tpd"].dropna() for t in (a, b))
    if not ref_a.sort_index().equals(ref_b.sort_index()):
        raise ValueError("the two runs' CT-AC TPDs differ: not the same studies or LV fits")
    tpd = []
    for table in (a, b):
        rows = table[table["method"] == method].set_index("case_id")["tpd"]
        if rows.empty:
            raise ValueError(f"no {method} rows in a run's clinical.csv")
        tpd.append(rows.reindex(ref_a.index))
    inside = [(t - ref_a).abs() <= WITHIN for t in tpd]
    moved = (tpd[1] - tpd[0]).abs().dropna()
    return {"studies": len(ref_a), "within_a": int(inside[0].sum()), "within_b": int(inside[1].sum()),
            "left": int((inside[0] & ~inside[1]).sum()), "entered": int((~inside[0] & inside[1]).sum()),
            "median_move": float(moved.median()), "p90_move": float(moved.quantile(0.9)),
            "max_move": float(moved.max()), "moved": int((moved > MOVED).sum()), "compared": len(moved)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_a", type=Path)
    parser.add_argument("run_b", type=Path)
    parser.add_argument("--method", default="unet-gan3d-chang")
    args = parser.parse_args()
    tables = []
    for run in (args.run_a, args.run_b):
        if not (run / "clinical.csv").is_file():
            print(f"{run}: no clinical.csv; run `spectac evaluate` first", file=sys.stderr)
            return 2
        tables.append(pd.read_csv(run / "clinical.csv"))
    try:
        c = tpd_changes(*tables, args.method)
    except ValueError as exc:
        print(exc, file=sys.stderr)
        return 2
    print(f"{args.method}: of {c['studies']} studies with an LV in CT-AC's image, {c['within_a']} (A) and "
          f"{c['within_b']} (B) within {WITHIN:g} points of CT-AC's TPD; {c['left']} left the band and "
          f"{c['entered']} entered it from A to B. Over the {c['compared']} studies with an LV in both, a "
          f"study's TPD moved by a median {c['median_move']:.2f} points (90th percentile {c['p90_move']:.2f}, "
          f"max {c['max_move']:.2f}); {c['moved']} moved by more than {MOVED:g}.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
