"""Seconds to reconstruct a camera's projection file: NC and CT-AC OSEM (4 x 6, PSF, post-filter)
of a 64 x 64, 60-view study (64^3 grid of 6.8 mm), and the consistency index of the AC image.

Run: python benchmarks/bench_projections.py [--repeats 3] [--threads 2]
The study is simulated (an elliptic body with a warm block and a lung-like low-mu region), written
as a GE-like TOMO file and read back, as `spectac reconstruct` does; timed: reading the file, NC
OSEM, AC OSEM (mu-map on the SPECT grid), and `consistency` (forward projection and deviance).
"""

from __future__ import annotations

import argparse
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from spectac.acquisition.acquire import acquire
from spectac.acquisition.protocol import Protocol
from spectac.io.projections import acquisition_from_projections, read_projections, write_projections_dicom
from spectac.reconstruction.consistency import consistency
from spectac.reconstruction.osem import ReconConfig
from spectac.reconstruction.projections import acquisition_projector, reconstruct_acquisition
from spectac.volume import Volume

N, SPACING, VIEWS = 64, 6.8, 60


def _phantom() -> tuple[np.ndarray, np.ndarray]:
    c = (N - 1) / 2
    xx, yy, _ = np.meshgrid(*(np.arange(N) - c,) * 3, indexing="ij")
    body = ((xx / 24) ** 2 + (yy / 18) ** 2 <= 1).astype(np.float32)
    activity = 100.0 * body
    activity[36:42, 24:30, 24:40] += 800.0
    mu = 0.153 * body
    mu[16:26, 26:36, :] *= 0.3
    return activity, mu


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    activity, mu = _phantom()
    protocol = Protocol(n_views=VIEWS, matrix=N, pixel_mm=SPACING)
    projections, model = acquire(activity, mu, protocol, SPACING, np.random.default_rng(0))
    acq = acquisition_from_projections(np.round(projections.numpy()), protocol, model.radii_mm)
    mu_volume = Volume.centred(mu, SPACING)
    times: dict[str, list[float]] = {"read": [], "nc": [], "ac": [], "qc": []}
    with tempfile.TemporaryDirectory() as tmp:
        path = write_projections_dicom(acq, Path(tmp) / "tomo.dcm")
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            back = read_projections(path)
            t1 = time.perf_counter()
            reconstruct_acquisition(back, ReconConfig())
            t2 = time.perf_counter()
            ac = reconstruct_acquisition(back, ReconConfig(), mu=mu_volume)
            t3 = time.perf_counter()
            projector, _, _ = acquisition_projector(back, 0, None, mu)
            index = consistency(back.counts[0], ac.volume.array, projector).index
            t4 = time.perf_counter()
            for key, value in zip(times, (t1 - t0, t2 - t1, t3 - t2, t4 - t3)):
                times[key].append(value)
    print(f"machine: {platform.processor() or platform.machine()}, torch threads {args.threads}, "
          f"{N}x{N} bins, {VIEWS} views, OSEM 4x6 with PSF; AC index {index:.3g}")
    print("| what | median s | min s | max s |")
    print("|---|---|---|---|")
    for key, label in (("read", "read the projection file"), ("nc", "NC OSEM + filter"),
                       ("ac", "CT-AC OSEM + filter"), ("qc", "consistency index (AC)")):
        v = times[key]
        print(f"| {label} | {np.median(v):.2f} | {min(v):.2f} | {max(v):.2f} |")
    total = [sum(times[k][i] for k in ("read", "nc", "ac")) for i in range(args.repeats)]
    print(f"| read + NC + AC | {np.median(total):.2f} | {min(total):.2f} | {max(total):.2f} |")


if __name__ == "__main__":
    main()
