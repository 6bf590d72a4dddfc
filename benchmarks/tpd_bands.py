"""Where a method's TPD disagrees with CT-AC's: the agreement by band of CT-AC's own TPD.

    python benchmarks/tpd_bands.py RUN [RUN ...] [--edges 4,8,12,20] [--reference ac]

Pools the runs' clinical.csv (each run evaluated by ``spectac evaluate``; runs of other cohorts are
pooled, a study is keyed by run and case). A RUN may also be the per-study CSV of
``benchmarks/indirect_qc.py --csv``: its conditions are the methods and its ``CT-AC`` rows CT-AC's
(with ``--mu-model oracle`` its ``in distribution`` rows are OSEM with the body's own mu-map, the
exact correction without a CT). A CSV with ``method`` and ``tpd`` columns (``benchmarks/tpd_fixed_fit.py
--csv``) is read as a clinical.csv.

For every study with an LV in the reference's image (CT-AC's; ``--reference`` names another method,
and CT-AC's rows, ``ac``, are then compared like the others') it puts the study in a band of the
reference's TPD (``--edges``: band limits in TPD points; the first band starts at 0, the last has no
end) and prints, per method and band, then over all bands (``all``), as a markdown table: the
studies, the share whose TPD is within 2 points of the reference's (a study without an LV in the
method's image counts as a miss), the median difference (method minus reference, over the studies
with both), and how many lie more than 2 points below and above. A systematic softening of large
defects shows as a negative median in the upper bands with most misses below; noise as misses on
both sides. Exit 2 when a run has no clinical.csv (or is no such CSV) or no rows of the reference,
or the edges do not increase.
"""

from __future__ import annotations

import argparse
import itertools
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from spectac.evaluation.agreement import TPD_AGREEMENT_POINTS as WITHIN

REFERENCE = "ac"
#: The reference's name among the conditions of an indirect_qc.py CSV.
QC_REFERENCE = "CT-AC"


def read_tpd_table(run: Path) -> pd.DataFrame:
    """A run's clinical.csv, a CSV with its columns, or an indirect_qc.py CSV as one (condition -> method,
    CT-AC -> ac)."""
    if run.is_file() and run.suffix == ".csv":
        table = pd.read_csv(run)
        if "method" in table and "tpd" in table:  # a clinical.csv by another name, or tpd_fixed_fit.py's --csv
            return table
        if "condition" not in table:
            raise ValueError(f"{run}: not a clinical.csv nor an indirect_qc.py CSV (no condition column)")
        return table.assign(method=table["condition"].replace({QC_REFERENCE: REFERENCE}))
    path = run / "clinical.csv"
    if not path.is_file():
        raise ValueError(f"{path}: no such file (evaluate the run first)")
    return pd.read_csv(path)


def wide_tpd(table: pd.DataFrame) -> pd.DataFrame:
    """A clinical table as one row per study, one column per method: the TPD, NaN where no LV."""
    return table.pivot_table(index="case_id", columns="method", values="tpd", dropna=False)


def pooled_tpd(runs: list[Path], reference: str = REFERENCE) -> pd.DataFrame:
    """One row per (run, study), one column per method (CT-AC's as ``ac``): the TPD, NaN where no LV."""
    frames = []
    for run in runs:
        table = read_tpd_table(run)
        if reference not in set(table["method"]):
            raise ValueError(f"{run}: no rows of the reference {reference!r}")
        wide = wide_tpd(table)
        wide.index = [f"{run}:{case}" for case in wide.index]
        frames.append(wide)
    return pd.concat(frames)


def bands(tpd: pd.DataFrame, edges: list[float], reference: str = REFERENCE) -> pd.DataFrame:
    """Per method other than the reference (CT-AC) and band of the reference's TPD, then over all
    bands (``all``, when ``edges`` makes more than one): studies, within, median, below, above."""
    ref = tpd[reference].dropna()
    limits = [0.0, *edges, np.inf]
    rows = []
    for method in [m for m in tpd.columns if m != reference]:
        diff = tpd.loc[ref.index, method] - ref
        groups = [(f"{lo:g}-{hi:g}" if np.isfinite(hi) else f">= {lo:g}", diff[(ref >= lo) & (ref < hi)])
                  for lo, hi in itertools.pairwise(limits)]
        if len(groups) > 1:
            groups.append(("all", diff))
        rows += [{
            "method": method,
            "reference TPD": label,
            "studies": len(d),
            "within": int((d.abs() <= WITHIN).sum()),
            "median difference": float(d.median()) if d.notna().any() else np.nan,
            "below": int((d < -WITHIN).sum()),
            "above": int((d > WITHIN).sum()),
        } for label, d in groups]
    return pd.DataFrame(rows)


def markdown(table: pd.DataFrame, reference: str = REFERENCE) -> str:
    """:func:`bands`' table as the markdown table the script prints."""
    lines = [f"| method | {reference} TPD | studies | within 2 points | median difference | more than 2 below "
             "| more than 2 above |", "|---|---|---|---|---|---|---|"]
    for r in table.to_dict("records"):
        n, k = r["studies"], r["within"]
        share = f"{100 * k / n:.0f}% ({k}/{n})" if n else "-"
        lines.append(f"| {r['method']} | {r['reference TPD']} | {n} | {share} | {r['median difference']:+.2f} | "
                     f"{r['below']} | {r['above']} |")
    return "\n".join(lines)


def parse_edges(text: str) -> list[float]:
    """``--edges``: positive, increasing TPD points separated by commas; ValueError otherwise."""
    try:
        edges = [float(e) for e in text.split(",")]
    except ValueError:
        edges = []
    if not edges or any(e <= 0 for e in edges) or any(b <= a for a, b in itertools.pairwise(edges)):
        raise ValueError(f"--edges must be positive, increasing TPD points separated by commas, got {text!r}")
    return edges


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("runs", type=Path, nargs="+")
    parser.add_argument("--reference", default=REFERENCE, help="the reference method (default: ac, CT-AC)")
    parser.add_argument("--edges", default="4,8,12,20", help="band limits in TPD points (default 4,8,12,20)")
    args = parser.parse_args()
    try:
        table = bands(pooled_tpd(args.runs, args.reference), parse_edges(args.edges), args.reference)
    except ValueError as exc:
        print(exc, file=sys.stderr)
        return 2
    print(markdown(table, args.reference))
    return 0


if __name__ == "__main__":
    sys.exit(main())
