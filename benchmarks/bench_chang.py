"""Seconds per 64^3 study for first-order and iterative Chang (median of repeats).

Usage:
    python benchmarks/bench_chang.py [--data DATASET] [--repeats 5] [--iterations 2]

Without --data, a synthetic 64^3 torso NC image (elliptic body, dark lungs, hot liver and LV,
Poisson noise) is used; with it, the NC volume of the dataset's first study. Prints a Markdown
snippet for BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import time
from collections.abc import Callable

import numpy as np
import torch
from scipy import ndimage

from spectac.acquisition.protocol import Protocol
from spectac.correction.chang import (
    body_contour,
    chang_factors,
    chang_first_order,
    chang_iterative,
    detection_probability,
    detection_probability_numpy,
    find_body_contour,
    protocol_of,
)
from spectac.volume import Volume


def synthetic_nc(n: int = 64, spacing: float = 6.8, seed: int = 0) -> Volume:
    x = (np.arange(n) - (n - 1) / 2) * spacing
    gx, gy, gz = np.meshgrid(x, x, x, indexing="ij")
    body = (gx / 170.0) ** 2 + (gy / 115.0) ** 2 < 1
    activity = body.astype(np.float64)
    for side in (-1, 1):
        activity[(((gx - side * 75) / 50) ** 2 + (gy / 65) ** 2 + ((gz - 40) / 90) ** 2 < 1) & body] = 0.2
    activity[(((gx + 45) / 80) ** 2 + ((gy - 5) / 65) ** 2 + ((gz + 80) / 50) ** 2 < 1) & body] = 6.0
    activity[(((gx - 30) / 40) ** 2 + ((gy + 35) / 40) ** 2 + (gz / 45) ** 2 < 1) & body] = 10.0
    blurred = ndimage.gaussian_filter(activity * 20.0, 12.0 / 2.355 / spacing)
    noisy = np.random.default_rng(seed).poisson(blurred).astype(np.float32)
    return Volume.centred(noisy, spacing)


def forget_contours() -> None:
    """Empty body_contour's memory, so that a timed correction finds the contour itself."""
    from spectac.correction import chang

    chang._CONTOURS.clear()


def median_seconds(fn: Callable[[], object], repeats: int) -> tuple[float, float]:
    """Median wall-clock and CPU (process) seconds of ``fn``; the CPU time is the figure to trust
    on a machine shared with other jobs."""
    fn()  # warm-up (allocations, lazy imports)
    wall, cpu = [], []
    for _ in range(repeats):
        start, start_cpu = time.perf_counter(), time.process_time()
        fn()
        wall.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    return statistics.median(wall), statistics.median(cpu)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=None, help="dataset folder (default: synthetic torso)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--iterations", type=int, default=2)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    if args.data:
        from spectac.io.dataset import Dataset

        dataset = Dataset.open(args.data)
        nc = dataset.load(dataset.cases[0].case_id, "nc")
        protocol = protocol_of(dataset.meta)
        source = f"{args.data} study {dataset.cases[0].case_id}"
    else:
        nc, protocol, source = synthetic_nc(), Protocol(), "synthetic 64^3 torso"

    mask = body_contour(nc.array, nc.spacing)
    box = tuple(slice(int(i.min()), int(i.max()) + 1) for i in np.nonzero(mask))
    mu = mask[box].astype(np.float32) * np.float32(0.12)  # as chang_factors crops it
    rows = [
        # find_body_contour: body_contour remembers the contour of an image it has seen
        ("body contour", median_seconds(lambda: find_body_contour(nc.array, nc.spacing), args.repeats)),
        ("Chang factors (60 views)", median_seconds(
            lambda: chang_factors(mask, nc.spacing, protocol.azimuths_rad()), args.repeats)),
        ("path-length transform, numpy (what chang_factors uses)", median_seconds(
            lambda: detection_probability_numpy(mu, nc.spacing, protocol.azimuths_rad()), args.repeats)),
        ("path-length transform, torch grid_sample", median_seconds(
            lambda: detection_probability(mu, nc.spacing, protocol.azimuths_rad()), args.repeats)),
        ("first-order Chang (contour + factors)", median_seconds(
            lambda: (forget_contours(), chang_first_order(nc, protocol)), args.repeats)),
        (f"iterative Chang ({args.iterations} updates)", median_seconds(
            lambda: (forget_contours(), chang_iterative(nc, protocol, iterations=args.iterations)), args.repeats)),
    ]
    command = "python benchmarks/bench_chang.py" + " ".join(
        [""]
        + ([f"--data {args.data}"] if args.data else [])
        + [f"--repeats {args.repeats}", f"--iterations {args.iterations}"]
        + ([f"--threads {args.threads}"] if args.threads else [])
    )
    print(f"### Chang attenuation correction ({source}, {nc.shape[0]}x{nc.shape[1]}x{nc.shape[2]}, "
          f"{protocol.n_views} views over {protocol.arc_deg:.0f} deg)\n")
    print(f"`{command}` on {platform.processor() or platform.machine()}, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads, median of {args.repeats}:\n")
    print("| step | wall s per study | CPU s per study |\n|---|---|---|")
    for name, (wall, cpu) in rows:
        print(f"| {name} | {wall:.3f} | {cpu:.3f} |")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
