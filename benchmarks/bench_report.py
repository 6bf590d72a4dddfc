"""Seconds to make the study report of `spectac correct --report` for one study, by step, and the
size of its files.

Usage:
    python benchmarks/bench_report.py --data DATASET [--case CASE_ID] [--repeats 3]

The NC image of the study (default: the dataset's first) is corrected once with the default
method; the report (:class:`spectac.evaluation.study_report.StudyReporter`) is then made
``--repeats`` times. Steps: quantifying NC and AC (LV detection, polar maps, scores), the slices,
the HTML page (its figure as PNG) and the PDF page. Wall and CPU seconds, median over the repeats
(CPU is the figure to trust on a machine shared with other jobs). Prints a Markdown snippet for
BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import statistics
import time

from spectac.correction.files import correct_volume, prepare_method, report_facts
from spectac.evaluation.report import figure_bytes
from spectac.evaluation.study_report import StudyReporter, build_study_report, report_html
from spectac.evaluation.study_report_figures import images_figure, page_figure, slice_rows
from spectac.io.dataset import Dataset


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True)
    parser.add_argument("--case", default=None)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    dataset = Dataset.open(args.data)
    case_id = args.case or dataset.cases[0].case_id
    nc = dataset.load(case_id, "nc")
    prepared = prepare_method("unet-gan3d-chang")
    corrected = correct_volume(nc, "unet-gan3d-chang", case_id, prepared=prepared)
    facts = report_facts(dataset.root / case_id, "unet-gan3d-chang", prepared[2], [], None)
    reporter = StudyReporter()
    steps: dict[str, list[tuple[float, float]]] = {k: [] for k in ("quantify", "slices", "html", "pdf", "total")}
    sizes = (0, 0)
    for _ in range(args.repeats):
        marks = [(time.perf_counter(), time.process_time())]

        def mark(name: str, marks: list[tuple[float, float]] = marks) -> None:
            marks.append((time.perf_counter(), time.process_time()))
            steps[name].append((marks[-1][0] - marks[-2][0], marks[-1][1] - marks[-2][1]))

        report = build_study_report(nc, corrected, facts, normals=reporter.normals)
        mark("quantify")
        report = dataclasses.replace(report, slices=slice_rows(report))
        mark("slices")
        html = report_html(report, figure_bytes(images_figure(report, "SSS"), "png", dpi=110))
        mark("html")
        pdf = figure_bytes(page_figure(report, "SSS", ("t", "p"), [["a", "b", "c", "d"]] * 3, ["x"] * 20, "label"),
                           "pdf")
        mark("pdf")
        steps["total"].append((marks[-1][0] - marks[0][0], marks[-1][1] - marks[0][1]))
        sizes = (len(html.encode()), len(pdf))
    print(f"`python benchmarks/bench_report.py --data {args.data} --case {case_id} --repeats {args.repeats}` "
          f"(median of {args.repeats}; load average {os.getloadavg()[0]:.1f} at the end):\n")
    print("| step | seconds (wall) | seconds (CPU) |\n|---|---|---|")
    for name, values in steps.items():
        print(f"| {name} | {statistics.median(v[0] for v in values):.2f} | {statistics.median(v[1] for v in values):.2f} |")
    print(f"\nHTML {sizes[0] / 1e3:.0f} kB, PDF {sizes[1] / 1e3:.0f} kB.")


if __name__ == "__main__":
    main()
