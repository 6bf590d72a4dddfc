"""Seconds of `spectac correct --route indirect` on a 64^3, 32-view four-window study, and the
consistency index it prints for three mu-maps a mu model could predict: the true one, the true one
shifted 2 voxels (13.6 mm) left-right, and a uniform water body without the lung-like block.

Run: python benchmarks/bench_indirect.py [--threads 1]
The study is simulated (an elliptic body with a hot sphere and a lung-like low-mu block; photopeak,
TEW pair and DEW window), written as NM TOMO DICOM; the mu model's prediction is replaced by each
map (`spectac.correction.indirect.predict_mu`), so the figures are those of the route's physics
(NC OSEM 4x6, AC+TEW OSEM 4x6, the index of the filtered image), not of a trained network. A mu
model folder is needed to pass the route's checks: one is trained for one epoch on a tiny dataset
first (not timed).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from spectac.acquisition.acquire import acquire_windows
from spectac.acquisition.protocol import Protocol
from spectac.correction import indirect
from spectac.io.dataset import Case, write_manifest, write_study
from spectac.io.projections import EnergyWindow, acquisition_from_projections, write_projections_dicom
from spectac.training.options import TrainOptions
from spectac.training.train import train_model
from spectac.volume import Volume

N, SPACING, VIEWS = 64, 6.8, 32


def _phantom() -> tuple[np.ndarray, np.ndarray]:
    c = (N - 1) / 2
    xx, yy, zz = np.meshgrid(*(np.arange(N) - c,) * 3, indexing="ij")
    body = (((xx / 22) ** 2 + (yy / 16) ** 2) <= 1).astype(np.float32)
    mu = 0.153 * body
    mu[(np.abs(xx + 8) < 6) & (np.abs(yy) < 8)] *= 0.3
    activity = 200.0 * body
    activity[((xx - 8) ** 2 + (yy + 4) ** 2 + zz**2) < 25] += 3000.0
    return activity, mu


def _tiny_mu_model(root: Path) -> Path:
    grid = Volume.centred(np.ones((16, 16, 16), np.float32), SPACING)
    cases = []
    for i, split in enumerate(("train", "val")):
        write_study(root / "data", f"p{i}_rest", {"nc": grid, "ac": grid, "mu": grid.with_array(0.1 * grid.array)})
        cases.append(Case(f"p{i}_rest", f"p{i}", "rest", "F", split=split))
    write_manifest(root / "data", {"source": "bench"}, cases)
    train_model(root / "data", root / "mu", "unet3d-mu", TrainOptions(epochs=1), {"channels": [4, 8]})
    return root / "mu"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    activity, mu = _phantom()
    protocol = Protocol(n_views=VIEWS, matrix=N, pixel_mm=SPACING)
    windows, projector = acquire_windows(activity, mu, protocol, SPACING, np.random.default_rng(0))
    table = {w.name: w for w in protocol.windows}
    order = ["photopeak", "tew_lower", "tew_upper", "dew_lower"]
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        acq = acquisition_from_projections([windows[n].numpy() for n in order], protocol, projector.radii_mm,
                                           [EnergyWindow(n, table[n].lower_kev, table[n].upper_kev) for n in order],
                                           "LEHR")
        path = write_projections_dicom(acq, root / "tomo.dcm")
        model = _tiny_mu_model(root)
        maps = {"true mu-map": mu, "shifted 13.6 mm": np.roll(mu, 2, axis=0),
                "uniform water body": np.where(mu > 0, np.float32(0.153), np.float32(0))}
        for i, (name, guess) in enumerate(maps.items()):
            indirect.predict_mu = lambda nc, _model, *_, guess=guess: nc.with_array(guess)
            start = time.perf_counter()
            summary = indirect.correct_projections(path, root / f"out{i}.nii.gz", model)
            print(f"{name}: index D/E {summary['qc'].index:.4g}, {summary['kind_text']}, "
                  f"{time.perf_counter() - start:.1f} s at {args.threads} thread(s)")


if __name__ == "__main__":
    main()
