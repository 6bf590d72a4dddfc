"""How far is each method's 17-segment relative uptake from the phantom's own? A truth-based figure.

    python benchmarks/segment_truth_error.py DATA RUN [--split test] [--geometry truth|detect]

For every test-split study of the dataset DATA with a truth volume (truth.nii.gz, simulated
studies), and for every method with predictions in RUN/predictions/<method>/ (Chang among them when
predicted) plus NC and CT-AC from the dataset itself, this makes the polar map
(:func:`spectac.quant.polar.polar_map`, the maximal-count profiles that ``spectac evaluate``
scores) and its 17 AHA segment means (:func:`spectac.quant.segments.polar_segments`), divides them
by their largest segment (relative uptake, 100 = the hottest segment) and compares them with the
same from the phantom's truth activity. The figure is the mean over segments and studies of
|method - truth| in percentage points. CT-AC is the physical limit: it is what the reconstruction
itself makes of the truth (resolution, partial volume, noise), so a method's ratio to CT-AC's
error says how much of the limit it leaves on the table (1 = as close to the truth as CT-AC).

Geometry: ``--geometry truth`` (default) samples every image and the truth on the phantom's known
LV (lv.json, :meth:`spectac.quant.geometry.LVGeometry.from_lv_json`), so the figure is the uptake
error alone; ``--geometry detect`` detects the LV in each method's image
(:func:`spectac.quant.lv.detect_lv`, the clinical way, as ``spectac evaluate`` does), so LV
detection errors add to it (the truth still uses lv.json). A study where a method's prediction or
the LV detection is missing is left out of that method's row, and the row's n says so.

Prints a markdown table on stdout (one row per method: studies, mean +- SD of the per-study mean
absolute segment error in percentage points, the largest per-study error, ratio to CT-AC's mean).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from spectac.io.dataset import Dataset
from spectac.io.nifti import read_nifti
from spectac.io.run import RunFolder
from spectac.quant.geometry import LVGeometry
from spectac.quant.lv import detect_lv
from spectac.quant.polar import polar_map
from spectac.quant.segments import polar_segments
from spectac.volume import SpectacError, Volume

NC, CTAC = "nc", "ct-ac"


def relative_uptake(volume: Volume, geometry: LVGeometry) -> np.ndarray:
    """(17,) segment means of the polar map on ``geometry``, in percent of the largest segment."""
    segments = polar_segments(polar_map(volume, geometry))
    return 100.0 * segments / float(np.max(segments))


def segment_error(volume: Volume, truth: np.ndarray, geometry: LVGeometry | None) -> float:
    """Mean |relative uptake - truth's| over the 17 segments (percentage points); ``geometry``
    None detects the LV in ``volume``."""
    geom = detect_lv(volume) if geometry is None else geometry
    return float(np.mean(np.abs(relative_uptake(volume, geom) - truth)))


def errors(data: Path, run: Path | None, split: str | None, detect: bool) -> dict[str, list[float]]:
    """{method: per-study errors} over the split's studies with a truth volume and lv.json."""
    dataset = Dataset.open(data)
    folder = RunFolder(run) if run is not None else None
    methods = [m for m in (folder.methods() if folder else []) if m not in (NC, CTAC)]
    out: dict[str, list[float]] = {NC: [], CTAC: [], **{m: [] for m in methods}}
    for case in dataset.split(split):
        lv = dataset.lv(case.case_id)
        if lv is None or not dataset.has(case.case_id, "truth"):
            continue
        geometry = LVGeometry.from_lv_json(lv)
        truth = relative_uptake(dataset.load(case.case_id, "truth"), geometry)
        images = {NC: dataset.path(case.case_id, "nc"), CTAC: dataset.path(case.case_id, "ac")}
        for method in methods:
            if folder is not None and folder.has_prediction(method, case.case_id):
                images[method] = folder.prediction_path(method, case.case_id)
        for method, path in images.items():
            try:
                out[method].append(segment_error(read_nifti(path), truth, None if detect else geometry))
            except SpectacError as error:  # no LV found: the study is left out of this row
                print(f"{case.case_id} {method}: left out ({error})", file=sys.stderr)
    return out


def table(results: dict[str, list[float]]) -> list[str]:
    """The markdown rows: method, n, mean +- SD, max, ratio to CT-AC's mean error."""
    reference = float(np.mean(results[CTAC])) if results.get(CTAC) else float("nan")
    rows = ["| method | n | mean \\|segment error\\| (pp) | worst study (pp) | / CT-AC |", "|---|---|---|---|---|"]
    for method, values in results.items():
        if not values:
            rows.append(f"| {method} | 0 | n/a | n/a | n/a |")
            continue
        mean = float(np.mean(values))
        rows.append(f"| {method} | {len(values)} | {mean:.2f} ± {float(np.std(values)):.2f} | {max(values):.2f} "
                    f"| {mean / reference:.2f} |")
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", type=Path, help="dataset folder (with truth.nii.gz and lv.json per study)")
    parser.add_argument("run", type=Path, nargs="?", help="run folder with predictions/<method>/ (optional)")
    parser.add_argument("--split", default="test", help="train, val, test or all (default test)")
    parser.add_argument("--geometry", choices=("truth", "detect"), default="truth",
                        help="LV of the images: the phantom's (lv.json) or detected in each image")
    parser.add_argument("--csv", type=Path, help="also write method, n, error_mean, error_sd to this CSV")
    args = parser.parse_args()
    try:
        results = errors(args.data, args.run, None if args.split == "all" else args.split, args.geometry == "detect")
    except SpectacError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if not results[CTAC]:
        print(f"error: no {args.split} study of {args.data} has truth.nii.gz and lv.json", file=sys.stderr)
        return 2
    print(f"Relative 17-segment uptake against the phantom truth, {args.split} split, "
          f"{'phantom' if args.geometry == 'truth' else 'detected'} LV geometry:\n")
    print("\n".join(table(results)))
    if args.csv is not None:
        lines = ["method,n,error_mean,error_sd"] + [
            f"{m},{len(v)},{float(np.mean(v)):.6g},{float(np.std(v)):.6g}" for m, v in results.items() if v]
        args.csv.write_text("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
