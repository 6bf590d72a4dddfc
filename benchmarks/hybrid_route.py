"""The direct and the indirect route combined: a network's image and the indirect route's, per study.

    python benchmarks/hybrid_route.py DATA RUN OUT [--mode gain] [--sigma 1] [--weight 0.5]
        [--method unet-gan3d-chang] [--mu-model MU | --indirect RUN_IND] [--threads 1]

RUN holds ``spectac predict``'s predictions of the direct method ``--method`` on studies of the
simulated dataset DATA (which keeps every study's projections.npz). For each of those studies the
indirect route runs on the study's projections as ``benchmarks/indirect_qc.py`` runs it (OSEM of
the photopeak without attenuation, the mu model on that image and the scatter-window image, OSEM
with the predicted mu-map and TEW scatter correction, the dataset's OSEM settings:
``spectac.correction.indirect.correct_acquisition``), and OUT/predictions/<method>/ gets:

- ``--mode indirect``: the indirect route's image alone;
- ``--mode mean``: ``weight`` x the network's image + (1 - weight) x the indirect route's;
- ``--mode gain``: the indirect image I under a smooth gain toward the network's image N,
  I x (G(N) + e) / (G(I) + e), G a Gaussian of SD ``--sigma`` voxels and e 1% of G(I)'s maximum:
  the network's image at low spatial frequencies, the indirect reconstruction's (the measured
  counts' noise, which CT-AC shares) at high ones.

``--indirect RUN_IND`` takes the indirect route's images from RUN_IND, an OUT this script wrote with
``--mode indirect`` on the same studies, instead of running the route again (about 3 s a study).

The images are written as ``spectac predict`` writes them (atomically, on the network's grid; a
study already in OUT is kept, so an interrupted run resumes). OUT's config.json is RUN's with the
combination recorded among the options (``hybrid``), so ``spectac predict`` refuses to add plain
predictions to it and this script refuses other settings. Score OUT with ``spectac evaluate`` and
``benchmarks/goals.py OUT --chang RUN``. Exit 2, nothing written, when RUN has no predictions of the
method or made them from another dataset, a study of RUN is not in DATA, has no projections or a
prediction on another grid than its NC image, the settings are out of range, or OUT was made
otherwise.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch
from scipy.ndimage import gaussian_filter

from spectac.correction.deep import resolve_mu_model
from spectac.correction.indirect import correct_acquisition
from spectac.errors import SpectacError
from spectac.io.dataset import Dataset
from spectac.io.nifti import nifti_description, read_nifti, read_nifti_header, write_nifti
from spectac.io.run import RunFolder
from spectac.reconstruction.study import study_acquisition, study_recon_config
from spectac.volume import Volume

MODES = ("indirect", "mean", "gain")
GAIN_FLOOR = 0.01  # e, as a fraction of the smoothed indirect image's maximum


def combine(network: np.ndarray, indirect: np.ndarray, mode: str, weight: float, sigma: float) -> np.ndarray:
    """The combined image (float32) of a network's image and the indirect route's, same grid."""
    n, i = network.astype(np.float64), indirect.astype(np.float64)
    if mode == "indirect":
        out = i
    elif mode == "mean":
        out = weight * n + (1.0 - weight) * i
    else:
        gn, gi = gaussian_filter(n, sigma), gaussian_filter(i, sigma)
        floor = GAIN_FLOOR * float(gi.max())
        out = i * (gn + floor) / (gi + floor)
    return out.astype(np.float32)


def settings(args: argparse.Namespace) -> dict:
    return {"mode": args.mode, "mu_model": str(args.mu_model or "shipped"),
            "indirect": str(args.indirect.resolve()) if args.indirect else None,
            "weight": args.weight if args.mode == "mean" else None,
            "sigma_voxels": args.sigma if args.mode == "gain" else None}


def check(args: argparse.Namespace, dataset: Dataset, run: RunFolder, out: RunFolder) -> tuple[dict, dict, list[str]]:
    """(RUN's prediction files, OUT's config, the studies still to do); SpectacError otherwise."""
    if args.mode not in MODES:
        raise SpectacError(f"--mode must be one of {', '.join(MODES)}, got {args.mode}")
    if not 0.0 <= args.weight <= 1.0:
        raise SpectacError(f"--weight must lie in [0, 1], got {args.weight}")
    if not args.sigma > 0:
        raise SpectacError(f"--sigma must be positive, got {args.sigma}")
    if args.threads < 1:
        raise SpectacError(f"--threads must be at least 1, got {args.threads}")
    config = run.read_prediction_config(args.method)
    files = run.prediction_files(args.method)
    if config is None or not files:
        raise SpectacError(f"{run.root}: no predictions of {args.method}")
    if config.get("dataset") != str(dataset.root.resolve()):
        raise SpectacError(f"{run.root}: its predictions of {args.method} were made from {config.get('dataset')}, "
                           f"not {dataset.root.resolve()}")
    if args.indirect is not None:
        if args.mode == "indirect" or args.mu_model is not None:
            raise SpectacError("--indirect takes the images of a --mode indirect run: not with --mode indirect "
                               "or --mu-model")
        source = RunFolder(args.indirect)
        made = (source.read_prediction_config(args.method) or {}).get("options", {}).get("hybrid", {})
        if made.get("mode") != "indirect" or made.get("direct") != str(args.run.resolve()):
            raise SpectacError(f"{args.indirect}: not this script's --mode indirect images of {args.run}")
    ids = {c.case_id for c in dataset.cases}
    for case in files:
        if case not in ids:
            raise SpectacError(f"{case}: a study of {run.root} that {dataset.root} does not hold")
        if not (dataset.study_dir(case) / "projections.npz").is_file():
            raise SpectacError(f"{case}: no projections.npz in {dataset.root}; the indirect route needs them")
        if not read_nifti_header(files[case]).same_grid(read_nifti_header(dataset.path(case, "nc"))):
            raise SpectacError(f"{files[case]}: not on the grid of {case}'s NC image, where the indirect route's image lies")
    config = dict(config)
    config["options"] = {**config.get("options", {}), "hybrid": {**settings(args), "direct": str(args.run.resolve())}}
    previous = out.read_prediction_config(args.method)
    if previous is not None and previous.get("options") != config["options"]:
        raise SpectacError(f"{out.prediction_config(args.method)}: these predictions were made otherwise; "
                           "use another OUT or remove the folder")
    return files, config, [c for c in files if not out.has_prediction(args.method, c)]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("data", type=Path)
    parser.add_argument("run", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--mode", default="gain", help=f"one of {', '.join(MODES)}")
    parser.add_argument("--sigma", type=float, default=1.0, help="the gain's Gaussian SD in voxels (--mode gain)")
    parser.add_argument("--weight", type=float, default=0.5, help="the network's weight (--mode mean)")
    parser.add_argument("--method", default="unet-gan3d-chang")
    parser.add_argument("--mu-model", type=Path, help="the mu model (default: the shipped unet3d-mu)")
    parser.add_argument("--indirect", type=Path, help="a --mode indirect OUT of the same RUN to take images from")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    run, out = RunFolder(args.run), RunFolder(args.out)
    try:
        dataset = Dataset.open(args.data)
        files, config, todo = check(args, dataset, run, out)
        model = None if args.indirect else resolve_mu_model(args.mu_model)
    except SpectacError as exc:
        print(exc, file=sys.stderr)
        return 2
    torch.set_num_threads(args.threads)
    out.write_prediction_config(args.method, config)
    source = RunFolder(args.indirect) if args.indirect else None
    recon, start, written = study_recon_config(dataset), time.perf_counter(), 0
    for k, case in enumerate(todo, 1):
        if source is not None:
            path = source.prediction_path(args.method, case)
            if not path.is_file():  # the route refused the study there
                print(f"{case}: no indirect image in {args.indirect} (refused there)", file=sys.stderr)
                continue
            indirect = read_nifti(path)
        else:
            acquisition = study_acquisition(dataset, case)
            try:
                indirect = correct_acquisition(acquisition, acquisition.window_index(), model, recon).ac.result.volume
            except SpectacError as exc:  # a predicted mu beyond any tissue: no image, said, the rest goes on
                print(f"{case}: refused by the indirect route: {exc}", file=sys.stderr)
                continue
        network = read_nifti(files[case])
        assert indirect.same_grid(network), case  # checked against NC's grid before anything was written
        image = combine(network.array, indirect.array, args.mode, args.weight, args.sigma)
        write_nifti(Volume(image, network.spacing, network.origin, network.direction),
                    out.prediction_path(args.method, case), descrip=nifti_description(args.method))
        written += 1
        print(f"{k}/{len(todo)} {case}: {time.perf_counter() - start:.0f} s", flush=True)
    print(f"{args.method} ({args.mode}): {written} written, {len(files) - len(todo)} already present"
          + (f", {len(todo) - written} refused by the indirect route" if written < len(todo) else "")
          + f", in {out.predictions_dir(args.method)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
