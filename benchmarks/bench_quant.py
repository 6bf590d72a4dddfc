"""Seconds to quantify one study (detect the LV, reorient to SA/HLA/VLA, polar map, scores), and the
LV detection error distribution of a simulated cohort against lv.json.

Usage:
    python benchmarks/bench_quant.py --data DATASET [--repeats 5] [--errors]

Timing uses the CT-AC and NC images of the dataset's first study (median over repeats; wall and
CPU seconds: CPU is the figure to trust on a machine shared with other jobs). With --errors, every
study's NC and CT-AC image is also run through detection and compared with lv.json (the same as
`spectac detect-lv`). Prints a Markdown snippet for BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time

import numpy as np
import torch

from spectac.io.dataset import Dataset
from spectac.quant.lv import detect_lv
from spectac.quant.polar import polar_map
from spectac.quant.reorient import horizontal_long_axis, short_axis, vertical_long_axis
from spectac.quant.scores import NormalLimits, score_polar_map
from spectac.quant.validation import detection_errors, summarise_detection_errors


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--errors", action="store_true", help="also report detection errors over the cohort")
    args = parser.parse_args()

    dataset = Dataset.open(args.data)
    case = dataset.cases[0]
    steps: dict[str, list[float]] = {"detect": [], "reorient": [], "polar map": [], "scores": [], "total": []}
    cpu_total: list[float] = []
    for name in ("ac", "nc"):
        volume = dataset.load(case.case_id, name)
        limits = None
        for repeat in range(args.repeats + 1):  # the first run warms up
            t0, c0 = time.perf_counter(), time.process_time()
            geom = detect_lv(volume)
            t1 = time.perf_counter()
            short_axis(volume, geom), horizontal_long_axis(volume, geom), vertical_long_axis(volume, geom)
            t2 = time.perf_counter()
            pm = polar_map(volume, geom)
            t3 = time.perf_counter()
            if limits is None:
                limits = NormalLimits(np.full_like(pm.values, 0.8), np.full_like(pm.values, 0.05), 10)
            score_polar_map(pm, limits)
            t4, c4 = time.perf_counter(), time.process_time()
            if repeat:
                for key, value in zip(steps, (t1 - t0, t2 - t1, t3 - t2, t4 - t3, t4 - t0)):
                    steps[key].append(value)
                cpu_total.append(c4 - c0)

    print(f"## Clinical quantification of one study (`python benchmarks/bench_quant.py --data {args.data}`)\n")
    print(f"{platform.processor() or platform.machine()}, torch threads {torch.get_num_threads()}, "
          f"64^3 NC and CT-AC images of {case.case_id}, median of {2 * args.repeats} runs\n")
    print("| step | seconds (wall) |\n|---|---|")
    for key, values in steps.items():
        print(f"| {key} | {statistics.median(values):.3f} |")
    print(f"| total (CPU seconds) | {statistics.median(cpu_total):.3f} |\n")

    if args.errors:
        table = detection_errors(args.data, "all")
        print(f"## LV detection against lv.json ({len(table) // 2} studies of {args.data})\n")
        for line in summarise_detection_errors(table).splitlines():
            print(f"- {line}")
        normal = table[table["has_defect"] == False]  # noqa: E712 - pandas element-wise
        ok = normal[normal["found"].astype(bool)]
        print(f"- normal studies: {int(((ok['axis_error_deg'] < 10) & (ok['centre_error_vox'] < 1)).sum())}/"
              f"{len(normal)} images within 10 deg and 1 voxel")


if __name__ == "__main__":
    main()
