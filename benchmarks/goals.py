"""The goals of a shipped model on an evaluated run, per method, as a markdown table.

    python benchmarks/goals.py RUN [--truth RUN.segment_truth.csv] [--chang OTHER_RUN]

- MAE as a multiple of Chang's (whole volume, against CT-AC; RUN/table1.csv, or with ``--chang``
  Chang's MAE from OTHER_RUN/table1.csv, a run of the same split that holds Chang's predictions):
  goal <= 0.2;
- share of studies whose TPD is within 2 points of CT-AC's (RUN/clinical.csv, every study with an
  LV found by both): goal >= 90%; beside it the same share over the studies whose CT-AC LV fit is
  confident (the ``lv_confidence`` column; a low-confidence reference fit may have scored another
  structure, so its TPD is no reference), and those studies are listed;
- with ``--truth`` (the CSV `benchmarks/segment_truth_error.py DATA RUN --csv FILE` writes): the
  17-segment relative uptake error against the phantom truth as a multiple of CT-AC's own: goal
  <= 1.2.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

from spectac.evaluation.agreement import TPD_AGREEMENT_POINTS
from spectac.evaluation.clinical_report import doubtful_references
from spectac.io.run import RunFolder
from spectac.volume import SpectacError


def _refused(message: str) -> int:
    """Print one line to stderr; the exit code of bad input."""
    print(message, file=sys.stderr)
    return 2


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("run", type=Path)
    parser.add_argument("--truth", type=Path, help="per-method segment error CSV (segment_truth_error.py --csv)")
    parser.add_argument("--chang", type=Path, help="a run of the same split whose table1.csv has Chang's MAE")
    args = parser.parse_args()
    run = RunFolder(args.run)
    chang_run = run if args.chang is None else RunFolder(args.chang)
    try:
        run.require_scored(run.table1_csv, run.clinical_csv, chang_run.table1_csv)
    except SpectacError as exc:
        sys.exit(_refused(str(exc)))
    if args.truth is not None and not args.truth.is_file():
        sys.exit(_refused(f"{args.truth}: no such file; write it with benchmarks/segment_truth_error.py DATA RUN --csv"))
    table = pd.read_csv(run.table1_csv).set_index("method")
    chang_table = table if chang_run is run else pd.read_csv(chang_run.table1_csv).set_index("method")
    if "chang" not in chang_table.index:
        sys.exit(_refused(f"{args.chang or args.run}/table1.csv has no Chang row: predict chang first or pass --chang"))
    if args.chang is not None and set(table["n"]) != set(chang_table["n"]):
        sys.exit(_refused(f"{args.chang} scored another number of studies than {args.run}"))
    chang = float(chang_table.loc["chang", "mae_mean"])
    clinical = pd.read_csv(run.clinical_csv)
    ref = clinical[clinical["method"] == "ac"].set_index("case_id")["tpd"]
    truth = None
    if args.truth is not None:
        truth = pd.read_csv(args.truth).set_index("method")["error_mean"]
    doubtful = sorted(doubtful_references(clinical)["case_id"])

    def share(rows: pd.Series, cases: pd.Index) -> str:
        within = (rows[cases] - ref[cases]).abs() <= TPD_AGREEMENT_POINTS
        return f"{within.mean():.0%} ({int(within.sum())}/{len(cases)})" if len(cases) else "n/a: no LV found"

    print("| method | MAE / Chang's | TPD within 2 points of CT-AC | the same, CT-AC's LV fit confident "
          "| segment error / CT-AC's |")
    print("|---|---|---|---|---|")
    for method in table.index:
        rows = clinical[clinical["method"] == method].set_index("case_id")["tpd"]
        both = rows.dropna().index.intersection(ref.dropna().index)
        ratio = "n/a: no truth table" if truth is None or method not in truth or "ct-ac" not in truth else (
            f"{truth[method] / truth['ct-ac']:.2f}")
        print(f"| {method} | {table.loc[method, 'mae_mean'] / chang:.3f} | {share(rows, both)} "
              f"| {share(rows, both.difference(doubtful))} | {ratio} |")
    print(f"\nCT-AC's LV fit of low confidence: {', '.join(doubtful) if doubtful else 'none'}")


if __name__ == "__main__":
    main()
