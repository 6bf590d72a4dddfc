"""What a change to the scoring (the LV fit) does to the clinical scores of the same predictions.

    python benchmarks/fit_changes.py BEFORE AFTER [BEFORE AFTER ...]

Each pair is one run's predictions evaluated twice (`spectac evaluate`), before and after the
change; pairs of several cohorts are pooled. For each side it prints, per method, how many studies
with an LV in that side's CT-AC image have the method's TPD within 2 points of CT-AC's (a study
without an LV in the method's image counts as a miss), and how many images have no LV. Then how
many fits (every method, CT-AC included) moved: by more than 0.01 points, by more than 2, or
between found and not found, listing the last two kinds. Unlike `benchmarks/tpd_changes.py`, CT-AC's
own fits may differ between the two sides. Exit 2 on an odd number of runs, a run without
clinical.csv, or a pair whose rows (studies and methods) differ.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd
from tpd_bands import bands, wide_tpd

from spectac.evaluation.agreement import TPD_AGREEMENT_POINTS as WITHIN

#: A TPD difference below this (points) is float rounding, not a change.
MOVED = 0.01


def agreement(table: pd.DataFrame) -> dict[str, tuple[int, int]]:
    """Per method other than CT-AC: (studies within WITHIN points of CT-AC's TPD, studies with an
    LV in CT-AC's image): benchmarks/tpd_bands.py's counts in one band."""
    return {r["method"]: (r["within"], r["studies"]) for r in bands(wide_tpd(table), []).to_dict("records")}


def moved_fits(before: pd.DataFrame, after: pd.DataFrame) -> pd.DataFrame:
    """The rows of the two tables, joined by study and method, whose TPD moved by more than MOVED
    or was found on one side only (columns case_id, method, before, after)."""
    keys = ["case_id", "method"]
    a, b = (t.set_index(keys)["tpd"].sort_index() for t in (before, after))
    if not a.index.equals(b.index):
        raise ValueError("the two runs of a pair hold other studies or methods")
    found_once = a.isna() != b.isna()
    moved = (a - b).abs() > MOVED
    both = pd.DataFrame({"before": a, "after": b})[found_once | moved]
    return both.reset_index()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", type=Path, nargs="+", help="BEFORE AFTER pairs of evaluated runs")
    args = parser.parse_args()
    if len(args.runs) % 2:
        print("give the runs in BEFORE AFTER pairs", file=sys.stderr)
        return 2
    tables = []
    for run in args.runs:
        if not (run / "clinical.csv").is_file():
            print(f"{run}: no clinical.csv; run `spectac evaluate` first", file=sys.stderr)
            return 2
        tables.append(pd.read_csv(run / "clinical.csv"))
    try:
        moves = pd.concat([moved_fits(b, a) for b, a in zip(tables[::2], tables[1::2])], ignore_index=True)
    except ValueError as exc:
        print(exc, file=sys.stderr)
        return 2
    for side, name in ((tables[::2], "before"), (tables[1::2], "after")):
        counts: dict[str, list[int]] = {}
        for table in side:
            for method, (k, n) in agreement(table).items():
                counts.setdefault(method, [0, 0])
                counts[method][0] += k
                counts[method][1] += n
        no_lv = sum(int(t["tpd"].isna().sum()) for t in side)
        within = ", ".join(f"{m} {k}/{n}" for m, (k, n) in counts.items())
        print(f"{name}: within {WITHIN:g} points of CT-AC's TPD: {within}; images without an LV: {no_lv} of "
              f"{sum(len(t) for t in side)}")
    finite = moves[["before", "after"]].notna().all(axis=1)
    large = moves[~finite | ((moves["after"] - moves["before"]).abs() > WITHIN)]
    print(f"fits moved by more than {MOVED:g} points: {int(finite.sum())}, by more than {WITHIN:g}: "
          f"{int((large['before'].notna() & large['after'].notna()).sum())}, found on one side only: "
          f"{int((~finite).sum())}")
    for row in large.itertuples():
        print(f"  {row.case_id} {row.method}: {row.before:.2f} -> {row.after:.2f}".replace("nan", "no LV"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
