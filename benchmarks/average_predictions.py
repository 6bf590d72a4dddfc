"""An ensemble of two networks: the voxel-wise weighted mean of two runs' predictions of a method.

    python benchmarks/average_predictions.py RUN_A RUN_B OUT [--method unet-gan3d-chang] [--weight 0.5]

RUN_A and RUN_B hold ``spectac predict``'s predictions of the same studies by one method with
different weights (``--set weights=``). OUT/predictions/<method>/ gets, for every study,
``weight`` x A's image + (1 - weight) x B's, on A's grid, written atomically (a study already in
OUT is kept, so an interrupted run resumes); its config.json is A's with the two sources and the
weight recorded among the options (``ensemble``), so ``spectac predict`` refuses to add plain
predictions to it. Score OUT with ``spectac evaluate`` and ``benchmarks/goals.py OUT --chang RUN``
(Chang's MAE from a run that holds Chang's predictions of the same studies). Averaging the outputs
of independently trained networks is the simplest deep ensemble (Lakshminarayanan B, Pritzel A,
Blundell C, NeurIPS 2017). Exit 2 when a run lacks the method's predictions, the two hold other
studies or were made from other datasets, a pair of images lies on other grids, or the weight is
outside [0, 1]; nothing is written then.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from spectac.io.nifti import nifti_description, read_nifti, read_nifti_header, write_nifti
from spectac.io.run import RunFolder
from spectac.volume import SpectacError, Volume


def plan(a: RunFolder, b: RunFolder, method: str) -> dict[str, tuple[Path, Path]]:
    """Every study's pair of prediction files; raises SpectacError when the two runs differ."""
    configs = [run.read_prediction_config(method) for run in (a, b)]
    for run, config in zip((a, b), configs):
        if config is None:
            raise SpectacError(f"{run.root}: no predictions of {method} (no {run.prediction_config(method)})")
    if configs[0].get("dataset") != configs[1].get("dataset"):
        raise SpectacError(f"the two runs were made from other datasets: {configs[0].get('dataset')} "
                           f"and {configs[1].get('dataset')}")
    files = [run.prediction_files(method) for run in (a, b)]
    if not files[0] or set(files[0]) != set(files[1]):
        only = sorted(set(files[0]) ^ set(files[1]))
        raise SpectacError(f"the two runs hold other studies of {method}"
                           + (f" ({len(only)} in one only, e.g. {only[0]})" if only else " (none)"))
    return {case: (files[0][case], files[1][case]) for case in sorted(files[0])}


def check(args: argparse.Namespace, a: RunFolder, b: RunFolder, out: RunFolder
          ) -> tuple[dict[str, tuple[Path, Path]], dict, list[str]]:
    """(the pairs of files, OUT's config, the studies still to average); SpectacError when the
    weight, the two runs or OUT's earlier predictions do not allow it. Reads every pair's headers."""
    if not 0.0 <= args.weight <= 1.0:
        raise SpectacError(f"--weight must lie in [0, 1], got {args.weight}")
    pairs = plan(a, b, args.method)
    config = dict(a.read_prediction_config(args.method) or {})
    config["options"] = {**config.get("options", {}), "ensemble": {
        "a": str(args.run_a.resolve()), "b": str(args.run_b.resolve()), "weight_a": args.weight}}
    previous = out.read_prediction_config(args.method)
    if previous is not None and previous.get("options") != config["options"]:
        raise SpectacError(f"{out.prediction_config(args.method)}: these predictions were made otherwise; "
                           "use another OUT or remove the folder")
    todo = [case for case in pairs if not out.has_prediction(args.method, case)]
    for case in todo:  # every pair of grids, from the headers, checked before anything is written
        ha, hb = (read_nifti_header(f) for f in pairs[case])
        if not ha.same_grid(hb):
            raise SpectacError(f"{case}: the two predictions lie on other grids")
    return pairs, config, todo


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("run_a", type=Path)
    parser.add_argument("run_b", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--method", default="unet-gan3d-chang")
    parser.add_argument("--weight", type=float, default=0.5, help="A's weight (B's is 1 - weight)")
    args = parser.parse_args()
    a, b, out = RunFolder(args.run_a), RunFolder(args.run_b), RunFolder(args.out)
    try:
        pairs, config, todo = check(args, a, b, out)
    except SpectacError as exc:
        print(exc, file=sys.stderr)
        return 2
    out.write_prediction_config(args.method, config)
    for case in todo:
        va, vb = (read_nifti(f) for f in pairs[case])
        mean = Volume(args.weight * va.array + (1.0 - args.weight) * vb.array, va.spacing, va.origin, va.direction)
        write_nifti(mean, out.prediction_path(args.method, case), descrip=nifti_description(args.method))
    print(f"{args.method}: {len(todo)} averaged, {len(pairs) - len(todo)} already present, "
          f"in {out.predictions_dir(args.method)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
