"""Markdown tables for BENCHMARKS.md from an evaluated run (`spectac evaluate` outputs).

    python benchmarks/summarise_run.py RUN [--reference chang]

Prints: Table 1 (RUN/table1.md), each method's MAE as a multiple of Chang's, the clinical
agreement table (TPD, SSS, differences to CT-AC, |dTPD|, share within 1 TPD point, segment kappa),
the detection AUC table, the paired AUC differences against CT-AC and NC, sensitivity/specificity
at the TPD thresholds and the NC-beside-AC counts (stress). A value that cannot be computed is
printed as "n/a: <reason>" (the CSV's note), never "nan".
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import pandas as pd

from spectac.io.run import RunFolder
from spectac.volume import SpectacError


def cell(fmt: str, *values: object, note: object = "") -> str:
    """``fmt`` filled in, or the reason it cannot be (the row's note)."""
    if any(isinstance(v, float) and math.isnan(v) for v in values):
        return str(note) if isinstance(note, str) and note else "n/a"
    return fmt.format(*values)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path)
    parser.add_argument("--reference", default="chang", help="method whose MAE the ratios divide by")
    args = parser.parse_args()
    run = RunFolder(args.run)
    try:
        run.require_scored(run.table1_md, run.table1_csv, run.clinical_agreement_csv, run.detection_csv)
    except SpectacError as exc:
        print(exc, file=sys.stderr)
        return 2

    print(run.table1_md.read_text().rstrip() + "\n")

    table = pd.read_csv(run.table1_csv).set_index("method")
    if args.reference in table.index:
        ref = table.loc[args.reference, "mae_mean"]
        print(f"| method | MAE / {args.reference} MAE | SSIM |")
        print("|---|---|---|")
        for method, row in table.iterrows():
            print(f"| {method} | {row['mae_mean'] / ref:.3f} | {row['ssim_mean']:.3f} |")
        print()

    agreement = pd.read_csv(run.clinical_agreement_csv, keep_default_na=False, na_values=[""])
    print("| method | n | TPD (%) | SSS | TPD - CT-AC (95% limits) | mean \\|dTPD\\| | \\|dTPD\\| <= 1 | segment kappa |")
    print("|---|---|---|---|---|---|---|---|")
    for _, r in agreement.iterrows():
        note = r.get("note", "")
        print(f"| {r['method']} | {r['n']} | {cell('{:.2f} ± {:.2f}', r['tpd_mean'], r['tpd_sd'], note=note)} "
              f"| {cell('{:.2f} ± {:.2f}', r['sss_mean'], r['sss_sd'], note=note)} "
              f"| {cell('{:+.2f} ({:+.1f}, {:+.1f})', r['tpd_diff_mean'], r['tpd_loa_low'], r['tpd_loa_high'], note=note)} "
              f"| {cell('{:.2f}', r['tpd_abs_diff_mean'], note=note)} | {cell('{:.0f}%', r['tpd_within_1_pct'], note=note)} "
              f"| {cell('{:.2f}', r['segment_kappa'], note=note)} |")
    print()

    detection = pd.read_csv(run.detection_csv, keep_default_na=False, na_values=[""])
    if len(detection):
        targets = list(dict.fromkeys(detection["target"]))
        print("| method | " + " | ".join(targets) + " | LV not found |")
        print("|---" * (len(targets) + 2) + "|")
        for method, part in detection.groupby("method", sort=False):
            part = part.set_index("target")
            cells = [cell("{:.3f} ({:.2f}-{:.2f})", part.loc[t, "auc"], part.loc[t, "auc_ci_low"],
                          part.loc[t, "auc_ci_high"], note=part.loc[t, "note"]) for t in targets]
            print(f"| {method} | " + " | ".join(cells) + f" | {part.loc['any', 'lv_not_found']} |")
        print()

    path = run.table_csv("detection_differences")
    if path.is_file():
        diffs = pd.read_csv(path, keep_default_na=False, na_values=[""])
        targets = list(dict.fromkeys(diffs["target"]))
        print("| AUC difference (paired 95% CI) | " + " | ".join(targets) + " |")
        print("|---" * (len(targets) + 1) + "|")
        for (method, other), part in diffs.groupby(["method", "compared_to"], sort=False):
            part = part.set_index("target")
            cells = [cell("{:+.3f} ({:+.3f}, {:+.3f})", part.loc[t, "auc_difference"], part.loc[t, "ci_low"],
                          part.loc[t, "ci_high"], note=part.loc[t, "note"]) for t in targets]
            print(f"| {method} - {other} | " + " | ".join(cells) + " |")
        print()

    path = run.table_csv("detection_thresholds")
    if path.is_file():
        thresholds = pd.read_csv(path, keep_default_na=False, na_values=[""])
        print("| method | stress TPD (%) | TPD threshold | sensitivity | specificity |")
        print("|---|---|---|---|---|")
        for _, r in thresholds.iterrows():
            print(f"| {r['method']} | {cell('{:.2f} ± {:.2f}', r['tpd_mean'], r['tpd_sd'], note='n/a: too few studies')} "
                  f"| >= {r['tpd_threshold']:g}% "
                  f"| {cell('{:.0%} ({}/{})', r['sensitivity'], r['tp'], r['tp'] + r['fn'], note=r['note'])} "
                  f"| {cell('{:.0%} ({}/{})', r['specificity'], r['tn'], r['tn'] + r['fp'], note=r['note'])} |")
        print()

    path = run.table_csv("nc_vs_ac_summary")
    if path.is_file():
        summary = pd.read_csv(path)
        summary = summary[summary["state"] == "stress"]
        columns = ["territories", "both", "added", "removed", "neither", "added_defect", "added_normal",
                   "removed_defect", "removed_normal", "not_read"]
        print("| method (stress) | " + " | ".join(columns) + " |")
        print("|---" * (len(columns) + 1) + "|")
        for _, r in summary.iterrows():
            print(f"| {r['method']} | " + " | ".join(str(int(r[c])) for c in columns) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
