"""The disagreement of the two shipped GANs as an uncertainty signal: its threshold calibrated on
in-distribution studies, its flag rate on studies unlike the training data.

Usage:
    PYTHONPATH=<spectac src> OMP_NUM_THREADS=1 python benchmarks/uncertainty.py DATASET \\
        [--split val] [--limit N] [--model unet-gan3d-chang] [--quantile 0.95] \\
        [--conditions in,cut,field,360,small,180] [--csv per_study.csv] [--write-threshold]

D (``spectac.correction.uncertainty.disagreement``) is the mean |A - B| inside the NC body outline
over the mean (A + B)/2 there, A the correction of ``--model``, B of its partner (the other shipped
GAN), both run as ``spectac correct`` runs them (``spectac.correction.run.apply_method``). D is
symmetric, so one value per study serves both models.

Per study of ``--split`` (the first ``--limit``), four conditions:

- ``in``: the dataset's NC image as it is (in distribution);
- ``cut``: the body cut by the field, zeroed: every voxel outside the middle 85% of the body's
  lateral width zeroed (7.5% a side; ``spectac.training.data.truncation_window`` and ``truncate``,
  the training augmentation's crop, which the shipped networks have seen);
- ``field``: the field narrower than the body: the same 85% window, the voxels outside it dropped
  (the volume is narrower and the body runs out of it, as in a study whose field cuts the body;
  the OOD check "body cut by the field" sees it);
- ``360``: an orbit never seen in training: the study's truth and mu-map acquired again on a
  360-degree orbit (``Protocol.for_arc(360)``, the simulator's other settings as
  ``spectac simulate --arc 360``) and reconstructed NC; corrected with ``arc=360`` as
  ``spectac correct --arc 360`` does;
- ``180`` (control, not in the default list): the same re-acquisition on the training orbit, to
  tell the orbit's effect from the re-simulation's (another noise draw, the default simulation
  settings, the stored misregistered mu-map);
- ``small``: a vendor-like small-field CZT geometry (GE Discovery NM 530c: 4 mm voxels, a
  280 x 280 x 200 mm field centred on the heart): the NC image resampled to 4 mm (counts per voxel
  scaled by the voxel volume) and cropped to 70 x 70 x 50 voxels around its hottest region.

Threshold = the ``--quantile`` of D over the ``in`` studies (numpy's linear quantile). Prints the
distribution of D and the flag rate at that threshold per condition (Markdown); ``--write-threshold``
writes {"partner", "threshold", "quantile", "studies", "calibrated_on"} into the ``uncertainty``
block of both shipped models' config.json (atomically; ``spectac.io.training_files.write_config``).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

from spectac.acquisition.acquire import acquire_counts
from spectac.acquisition.protocol import Protocol
from spectac.correction.deep import resolve_model, shipped_model_dir
from spectac.correction.methods import MethodContext, get_method
from spectac.correction.run import apply_method
from spectac.correction.uncertainty import body_mask, disagreement, partner_model, uncertainty_settings
from spectac.io.dataset import Dataset
from spectac.io.training_files import read_config, write_config
from spectac.reconstruction.pair import reconstruct_nc_ac
from spectac.resample import zoom_to_shape
from spectac.simulate import SimulationConfig
from spectac.training.data import truncate, truncation_window
from spectac.volume import Volume

CONDITIONS = {"in": "in distribution", "cut": "body cut, zeroed (85% width)",
              "field": "field narrower than the body (85% width)",
              "180": "re-acquired, 180-degree orbit (control)", "360": "360-degree orbit",
              "small": "small-field CZT-like (4 mm, 280 mm)"}


def cut_body(nc: Volume, keep: float = 0.85) -> Volume:
    """The body cut laterally to its middle ``keep`` of the width (the training augmentation's crop)."""
    side = (1 - keep) / 2
    return nc.with_array(truncate(nc.array, truncation_window(nc.array, (side, side), 0.05)))


def narrow_field(nc: Volume, keep: float = 0.85) -> Volume:
    """The field of view narrowed laterally to the middle ``keep`` of the body's width: the voxels
    outside it are dropped (the body runs out of the field), not zeroed."""
    side = (1 - keep) / 2
    lo, hi = truncation_window(nc.array, (side, side), 0.05)
    return Volume(np.ascontiguousarray(nc.array[lo:hi]), nc.spacing, nc.origin, nc.direction)


def small_field(nc: Volume, spacing: float = 4.0, shape: tuple[int, int, int] = (70, 70, 50)) -> Volume:
    """A 530c-like small field: resampled to ``spacing`` and cropped around the hottest region."""
    fine = tuple(round(n * s / spacing) for n, s in zip(nc.shape, nc.spacing))
    array = zoom_to_shape(nc.array, fine) * (spacing**3 / float(np.prod(nc.spacing)))  # counts per voxel follow the voxel volume
    hot = array >= np.quantile(array, 0.995)
    centre = np.round(np.argwhere(hot).mean(axis=0)).astype(int)
    start = [int(np.clip(c - n // 2, 0, f - n)) for c, n, f in zip(centre, shape, fine)]
    crop = array[tuple(slice(s, s + n) for s, n in zip(start, shape))]
    return Volume.centred(np.ascontiguousarray(crop, dtype=np.float32), spacing)


def orbit(dataset: Dataset, case_id: str, counts: float, seed: int, arc: float) -> tuple[Volume, Protocol]:
    """The study's truth and mu-map acquired again on an ``arc``-degree orbit, reconstructed NC."""
    config = SimulationConfig.build(arc=arc)
    truth, mu = dataset.load(case_id, "truth"), dataset.load(case_id, "mu")
    spacing = float(truth.spacing[0])
    rng = np.random.default_rng(seed)
    _, mu_map, windows, projector, _ = acquire_counts(truth.array, mu.array, counts, config.protocol, spacing, rng)
    volumes = reconstruct_nc_ac(windows, projector, mu_map, config.protocol, spacing, config.recon)
    return truth.with_array(np.asarray(volumes["nc"], np.float32)), config.protocol


def measure(nc: Volume, model, partner, protocol: Protocol | None, name: str) -> float:
    """D between ``model`` and ``partner`` on one study, as spectac correct runs them."""
    a = apply_method(get_method(model.name), nc, MethodContext(name, protocol, {"weights": None}, model))
    b = apply_method(get_method(partner.name), nc, MethodContext(name, protocol, {"weights": None}, partner))
    return disagreement(a.array, b.array, body_mask(nc))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("dataset", type=Path)
    parser.add_argument("--split", default="val")
    parser.add_argument("--limit", type=int, default=None)
    parser.add_argument("--model", default="unet-gan3d-chang")
    parser.add_argument("--quantile", type=float, default=0.95)
    parser.add_argument("--conditions", default="in,cut,field,360,small")
    parser.add_argument("--csv", type=Path, default=None)
    parser.add_argument("--write-threshold", action="store_true")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    conditions = [c for c in args.conditions.split(",") if c]
    unknown = sorted(set(conditions) - set(CONDITIONS))
    if unknown or "in" not in conditions:
        raise SystemExit(f"--conditions: choose from {', '.join(CONDITIONS)} (with in); got {unknown}")

    model = resolve_model(args.model)
    settings = uncertainty_settings(model)
    if settings is None:
        raise SystemExit(f"{args.model} has no partner network")
    partner = partner_model(settings["partner"], model)
    dataset = Dataset.open(args.dataset)
    cases = dataset.split(args.split)[: args.limit]
    if not cases:
        print(f"{args.dataset}: no study in the {args.split} split", file=sys.stderr)
        raise SystemExit(2)
    values: dict[str, list[float]] = {c: [] for c in conditions}
    rows = []
    started = time.perf_counter()
    for index, case in enumerate(cases):
        nc = dataset.load(case.case_id, "nc")
        for condition in conditions:
            protocol = None
            if condition == "in":
                study = nc
            elif condition == "cut":
                study = cut_body(nc)
            elif condition == "field":
                study = narrow_field(nc)
            elif condition == "small":
                study = small_field(nc)
            else:
                study, protocol = orbit(dataset, case.case_id, float(nc.array.sum()), index, float(condition))
            d = measure(study, model, partner, protocol, case.case_id)
            values[condition].append(d)
            rows.append({"case_id": case.case_id, "condition": condition, "D": d})
        print(f"{case.case_id}: " + ", ".join(f"{c} {values[c][-1]:.3f}" for c in conditions), flush=True)
    seconds = time.perf_counter() - started

    threshold = float(np.quantile(values["in"], args.quantile))
    print(f"\n{model.name} against {partner.name}, {len(cases)} {args.split} studies of {args.dataset.name}; "
          f"threshold = {args.quantile:g} quantile of D in distribution = {threshold:.4f}; {seconds:.0f} s\n")
    print("| condition | studies | D median | D min-max | flagged at threshold |")
    print("|---|---|---|---|---|")
    for condition in conditions:
        v = np.asarray(values[condition])
        print(f"| {CONDITIONS[condition]} | {len(v)} | {np.median(v):.3f} | {v.min():.3f}-{v.max():.3f} | "
              f"{int((v > threshold).sum())}/{len(v)} |")
    if args.csv is not None:
        import pandas as pd

        pd.DataFrame(rows).to_csv(args.csv, index=False)
    if args.write_threshold:
        calibrated_on = (f"{args.dataset.name} {args.split} split, first {len(cases)} NC studies, "
                         "benchmarks/uncertainty.py")
        for name, other in ((model.name, partner.name), (partner.name, model.name)):
            folder = shipped_model_dir(name)
            config = read_config(folder)
            config["uncertainty"] = {"partner": other, "threshold": round(threshold, 4), "quantile": args.quantile,
                                     "studies": len(cases), "calibrated_on": calibrated_on}
            print(f"wrote the threshold into {write_config(folder, config)}")


if __name__ == "__main__":
    main()
