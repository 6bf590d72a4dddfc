"""Seconds per simulated study at the default protocol (phantom + the projections of every energy
window with scatter + NC and scatter-corrected CT-AC OSEM).

Run: python benchmarks/bench_simulation.py [--studies 6] [--scatter tew] [--matrix 64|128]
Each study runs on one torch thread, as `spectac simulate` does (parallelism is over studies with
--workers), so the cohort time is about studies x seconds / workers.
"""

from __future__ import annotations

import argparse
import platform
import time

import numpy as np
import torch

from spectac.phantom.anatomy import build_phantom
from spectac.simulate import SimulationConfig, patient_params, simulate_study


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--studies", type=int, default=6)
    parser.add_argument("--scatter", default="tew", help="tew (default), dew or none (no scatter, no correction)")
    parser.add_argument("--matrix", type=int, default=64, help="64 (6.8 mm, default) or 128 (3.4 mm)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    config = SimulationConfig.build(scatter=args.scatter, matrix=args.matrix)
    totals, phantoms = [], []
    for i in range(args.studies):
        params = patient_params(123, i)
        state = ("stress", "rest")[i % 2]
        t0 = time.perf_counter()
        build_phantom(params, state, config.shape, config.spacing_mm)
        phantoms.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        simulate_study(params, state, config, np.random.default_rng(i))
        totals.append(time.perf_counter() - t0)
    med = float(np.median(totals))
    print(f"machine: {platform.processor() or platform.machine()}, torch threads 1, --scatter {args.scatter}")
    print("| what | median s | min s | max s |")
    print("|---|---|---|---|")
    n = args.matrix
    print(f"| phantom only ({n}^3, 2x supersampled) | {np.median(phantoms):.2f} | {min(phantoms):.2f} | {max(phantoms):.2f} |")
    what = ("photopeak without scatter, NC + CT-AC" if args.scatter == "none" else
            f"4 energy windows with scatter, NC + {args.scatter.upper()}-corrected CT-AC")
    print(f"| whole study ({n}^3: phantom, {what} OSEM 4x6, filter) | {med:.2f} | {min(totals):.2f} | {max(totals):.2f} |")
    print(f"100-patient cohort (200 studies) estimate with 2 workers: {200 * med / 2 / 60:.1f} min")


if __name__ == "__main__":
    main()
