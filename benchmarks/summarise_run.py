"""Markdown tables for BENCHMARKS.md from an evaluated run (`spectac evaluate` outputs).

    python benchmarks/summarise_run.py RUN [--reference chang]

Prints: Table 1 (RUN/table1.md), each method's MAE as a multiple of Chang's, the clinical
agreement table (TPD, SSS, differences to CT-AC, |dTPD|, share within 1 TPD point, segment kappa)
and the detection AUC table.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

from spectac.io.run import RunFolder


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path)
    parser.add_argument("--reference", default="chang", help="method whose MAE the ratios divide by")
    args = parser.parse_args()
    run = RunFolder(args.run)

    print(run.table1_md.read_text().rstrip() + "\n")

    table = pd.read_csv(run.table1_csv).set_index("method")
    if args.reference in table.index:
        ref = table.loc[args.reference, "mae_mean"]
        print(f"| method | MAE / {args.reference} MAE | SSIM |")
        print("|---|---|---|")
        for method, row in table.iterrows():
            print(f"| {method} | {row['mae_mean'] / ref:.3f} | {row['ssim_mean']:.3f} |")
        print()

    agreement = pd.read_csv(run.clinical_agreement_csv)
    print("| method | n | TPD (%) | SSS | TPD - CT-AC (95% limits) | mean \\|dTPD\\| | \\|dTPD\\| <= 1 | segment kappa |")
    print("|---|---|---|---|---|---|---|---|")
    for _, r in agreement.iterrows():
        print(f"| {r['method']} | {r['n']} | {r['tpd_mean']:.2f} ± {r['tpd_sd']:.2f} | {r['sss_mean']:.2f} ± {r['sss_sd']:.2f} "
              f"| {r['tpd_diff_mean']:+.2f} ({r['tpd_loa_low']:+.1f}, {r['tpd_loa_high']:+.1f}) | {r['tpd_abs_diff_mean']:.2f} "
              f"| {r['tpd_within_1_pct']:.0f}% | {r['segment_kappa']:.2f} |")
    print()

    detection = pd.read_csv(run.detection_csv)
    if len(detection):
        targets = list(dict.fromkeys(detection["target"]))
        print("| method | " + " | ".join(targets) + " | LV not found |")
        print("|---" * (len(targets) + 2) + "|")
        for method, part in detection.groupby("method", sort=False):
            part = part.set_index("target")
            cells = [f"{part.loc[t, 'auc']:.3f} ({part.loc[t, 'auc_ci_low']:.2f}-{part.loc[t, 'auc_ci_high']:.2f})"
                     for t in targets]
            print(f"| {method} | " + " | ".join(cells) + f" | {part.loc['any', 'lv_not_found']} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
