"""Are two runs' predictions the same? Compares RUN_A/predictions/<method>/<case>.nii.gz with
RUN_B's, voxel by voxel and grid by grid (NIfTI headers may differ in their description text).

Usage:
    python benchmarks/compare_runs.py RUN_A RUN_B

Prints a Markdown table: per method, the studies compared, how many have bit-identical arrays,
the largest absolute difference and the largest relative to the study's maximum. Exit code 1
when a method or study is missing on one side or a grid differs; exit code 2, one line, when a
folder holds no predictions at all.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from spectac.io.nifti import read_nifti
from spectac.io.run import RunFolder


def compare(a: Path, b: Path) -> tuple[list[str], bool]:
    rows = ["| method | studies | bit-identical | max abs diff | max diff / study max |", "|---|---|---|---|---|"]
    ok = True
    run_a, run_b = RunFolder(a), RunFolder(b)
    methods_a = {p.name for p in run_a.predictions_root.iterdir() if p.is_dir()}
    methods_b = {p.name for p in run_b.predictions_root.iterdir() if p.is_dir()}
    for missing in sorted(methods_a ^ methods_b):
        rows.append(f"| {missing} | only in {'A' if missing in methods_a else 'B'} | | | |")
        ok = False
    for method in sorted(methods_a & methods_b):
        files_a, files_b = run_a.prediction_files(method), run_b.prediction_files(method)
        same_studies = files_a.keys() == files_b.keys()
        if not same_studies:
            ok = False
        identical, worst, worst_rel = 0, 0.0, 0.0
        for case_id in sorted(files_a.keys() & files_b.keys()):
            name = files_a[case_id].name
            va, vb = read_nifti(files_a[case_id]), read_nifti(files_b[case_id])
            if not va.same_grid(vb):
                ok = False
                rows.append(f"| {method} | {name}: grids differ | | | |")
                continue
            identical += va.array.tobytes() == vb.array.tobytes()
            diff = float(np.max(np.abs(va.array.astype(np.float64) - vb.array)))
            worst = max(worst, diff)
            worst_rel = max(worst_rel, diff / max(float(va.array.max()), 1e-12))
        n = len(files_a.keys() & files_b.keys())
        rows.append(f"| {method} | {n}{'' if same_studies else ' (sets differ)'} | {identical} | {worst:.3g} | "
                    f"{worst_rel:.3g} |")
    return rows, ok


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_a", type=Path)
    parser.add_argument("run_b", type=Path)
    args = parser.parse_args()
    for run in (args.run_a, args.run_b):
        if not RunFolder(run).predictions_root.is_dir():
            print(f"{run}: no predictions folder; run `spectac predict --out {run}` first", file=sys.stderr)
            return 2
    rows, ok = compare(args.run_a, args.run_b)
    print("\n".join(rows))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
