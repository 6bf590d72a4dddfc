"""Studies per second of a network's prediction, one study per forward pass against batches.

Run: python benchmarks/bench_batch_predict.py [--model unet3d] [--studies 8] [--batch 1,2,4] [--size 64]
The shipped weights of MODEL on synthetic NC volumes (a body with a heart-like blob, SIZE^3 at
6.8 mm; the network's cost does not depend on the content). Times include normalisation, the prior
(for models that have one) and the forward pass, as `spectac predict --batch-size B` runs them,
not reading or writing files. Threads: torch's setting (set OMP_NUM_THREADS).
"""

from __future__ import annotations

import argparse
import platform
import time

import numpy as np
import torch

from spectac.correction.deep import correct_nc, correct_nc_batch, resolve_model
from spectac.volume import Volume


def _study(rng: np.random.Generator, n: int) -> Volume:
    x, y, z = np.meshgrid(*[np.linspace(-1, 1, n)] * 3, indexing="ij")
    body = (x / 0.8) ** 2 + (y / 0.6) ** 2 < 1
    c = rng.uniform(-0.2, 0.2, size=3)
    heart = np.exp(-((x - c[0]) ** 2 + (y - c[1]) ** 2 + (z - c[2]) ** 2) / 0.05)
    return Volume.centred((body * (20 + 200 * heart)).astype(np.float32), 6.8)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="unet3d")
    parser.add_argument("--studies", type=int, default=8)
    parser.add_argument("--batch", default="1,2,4")
    parser.add_argument("--size", type=int, default=64)
    args = parser.parse_args()
    model = resolve_model(args.model)
    rng = np.random.default_rng(0)
    studies = [_study(rng, args.size) for _ in range(args.studies)]
    correct_nc(studies[0], model)  # warm-up
    print(f"machine: {platform.processor() or platform.machine()}, torch threads {torch.get_num_threads()}; "
          f"{args.model}, {args.studies} studies of {args.size}^3")
    print("| batch | seconds | studies/s | max abs difference to one at a time (counts) |")
    print("|---|---|---|---|")
    single = None
    for batch in (int(b) for b in args.batch.split(",")):
        started = time.perf_counter()
        if batch == 1:
            out = [correct_nc(s, model) for s in studies]
        else:
            out = [v for i in range(0, len(studies), batch) for v in correct_nc_batch(studies[i : i + batch], model)]
        seconds = time.perf_counter() - started
        single = single or out
        diff = max(float(np.abs(a.array - b.array).max()) for a, b in zip(out, single))
        print(f"| {batch} | {seconds:.2f} | {len(studies) / seconds:.2f} | {diff:.2e} |")


if __name__ == "__main__":
    main()
