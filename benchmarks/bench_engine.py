"""Simulation throughput of the local engine (process pool) and the Dask engine (LocalCluster of
worker processes), with 1 and 2 workers, and Dask's overhead per task.

Run: python benchmarks/bench_engine.py [--patients 2] [--grid small|default]
small: 32^3 voxels of 13.6 mm, 24 views, OSEM 2x4 (the tests' configuration); default: what
`spectac simulate` makes. Each study runs on one thread (OMP_NUM_THREADS=1). The overhead is the
mean round trip of a task that does nothing, submitted 200 at a time, and the cluster's start.
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor, wait
from pathlib import Path

from spectac.acquisition.protocol import Protocol
from spectac.engine import DaskExecutor, executor_factory
from spectac.reconstruction.osem import ReconConfig
from spectac.simulate import SimulationConfig, simulate_cohort

SMALL = SimulationConfig(protocol=Protocol(n_views=24, pixel_mm=13.6), recon=ReconConfig(iterations=2, subsets=4),
                         shape=(32, 32, 32), supersample=1)


def _nothing(i: int) -> int:
    return i


def _overhead(executor_of, n: int = 200) -> float:
    with executor_of() as pool:
        wait([pool.submit(_nothing, i) for i in range(4)])  # warm: workers started, function shipped
        started = time.perf_counter()
        wait([pool.submit(_nothing, i) for i in range(n)])
        return (time.perf_counter() - started) / n


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--patients", type=int, default=2)
    parser.add_argument("--grid", choices=("small", "default"), default="small")
    args = parser.parse_args()
    config = SMALL if args.grid == "small" else SimulationConfig()
    studies = 2 * args.patients
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')}; {studies} studies, grid {args.grid}")
    print("| engine | workers | wall s | studies/s |")
    print("|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for engine in ("local", "dask"):
            for workers in (1, 2):
                out = Path(tmp) / f"{engine}{workers}"
                started = time.perf_counter()
                simulate_cohort(out, args.patients, 0, config, workers, executor=executor_factory(engine))
                wall = time.perf_counter() - started
                print(f"| {engine} | {workers} | {wall:.2f} | {studies / wall:.3f} |")
    started = time.perf_counter()
    DaskExecutor(None, 2).shutdown()
    print(f"\nDask LocalCluster (2 worker processes) start + stop: {time.perf_counter() - started:.2f} s")
    print(f"per-task round trip of an empty task: process pool "
          f"{1e3 * _overhead(lambda: ProcessPoolExecutor(2)):.2f} ms, "
          f"Dask {1e3 * _overhead(lambda: DaskExecutor(None, 2)):.2f} ms")


if __name__ == "__main__":
    main()
