"""Speed of the deep-learning correction: inference per 64^3 study and training per epoch.

For every registered model (default network sizes unless --channels is given):
- inference: seconds per 64^3 study through ``correct_nc`` (normalise, the Chang prior where the
  model takes it, run, undo), median of repeats, untrained weights (speed does not depend on the
  values);
- training: seconds per epoch of 80 pairs, estimated from the median of a few training steps
  (batch 1, the model's own supervised or adversarial step).

Run:  python benchmarks/bench_inference.py [--threads 2] [--repeats 5] [--steps 3]
Prints a Markdown table for BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import time

import numpy as np
import torch

from spectac.correction.deep import DeepModel, correct_nc
from spectac.correction.prior import prior_channels
from spectac.nn.registry import build_discriminator, build_generator, get_spec, model_names, resolve_config
from spectac.training.steps import AdversarialStep, SupervisedStep
from spectac.volume import Volume

SHAPE = (64, 64, 64)
TRAIN_PAIRS = 80


def _phantom(rng: np.random.Generator) -> np.ndarray:
    x, y, z = np.meshgrid(*[np.linspace(-1, 1, n) for n in SHAPE], indexing="ij")
    body = (x / 0.8) ** 2 + (y / 0.6) ** 2 < 1
    heart = np.exp(-((x - 0.1) ** 2 + (y + 0.1) ** 2 + z**2) / 0.02)
    return (body * (20 + 200 * heart) + rng.poisson(2.0, SHAPE)).astype(np.float32)


def bench(name: str, overrides: dict, repeats: int, steps: int) -> dict[str, float]:
    config = resolve_config(name, overrides)
    torch.manual_seed(0)
    generator = build_generator(config)
    discriminator = build_discriminator(config)
    n_params = sum(p.numel() for p in generator.parameters())
    model = DeepModel(name, generator.eval(), {"network": config, "data": {"spacing_mm": [6.8] * 3}}, None)  # type: ignore[arg-type]
    nc = Volume.centred(_phantom(np.random.default_rng(0)), 6.8)
    correct_nc(nc, model)  # warm-up
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        correct_nc(nc, model)
        times.append(time.perf_counter() - started)

    optimizer_g = torch.optim.Adam(generator.parameters(), 1e-4)
    if get_spec(name).adversarial:
        step = AdversarialStep(generator, discriminator, optimizer_g, torch.optim.Adam(discriminator.parameters(), 1e-4))
    else:
        step = SupervisedStep(generator, optimizer_g)
    inputs = np.concatenate([(nc.array / nc.array.max())[None], prior_channels(nc, config.get("prior", "none"))])
    x = torch.from_numpy(inputs.astype(np.float32))[None]  # (1, C, X, Y, Z): NC (and the prior)
    target = 1.5 * x[:, :1]
    step(x, target)  # warm-up
    step_times = []
    for _ in range(steps):
        started = time.perf_counter()
        step(x, target)
        step_times.append(time.perf_counter() - started)
    return {
        "params": n_params,
        "infer_s": statistics.median(times),
        "step_s": statistics.median(step_times),
        "epoch_s": TRAIN_PAIRS * statistics.median(step_times),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--models", default=",".join(model_names()))
    parser.add_argument("--channels", default=None, help="U-Net channels, e.g. 8,16,32,64 (default: registry)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    overrides_unet = {"channels": [int(c) for c in args.channels.split(",")]} if args.channels else {}
    rows = []
    for name in args.models.split(","):
        overrides = {} if name == "resnet" else overrides_unet
        result = bench(name, overrides, args.repeats, args.steps)
        config = resolve_config(name, overrides)
        size = config.get("channels") or f"{config['features']} x {len(config['dilations'])} blocks"
        rows.append((name, size, result))
    command = "python " + " ".join(sys.argv)
    print(f"### Deep-learning AC speed ({platform.processor() or platform.machine()}, torch threads = {args.threads})\n")
    print(f"`{command}`\n")
    print("| model | network | parameters | inference s / 64^3 study (median) | training s / step | s / epoch (80 pairs) |")
    print("|---|---|---|---|---|---|")
    for name, size, r in rows:
        print(f"| {name} | {size} | {r['params']:,} | {r['infer_s']:.3f} | {r['step_s']:.2f} | {r['epoch_s']:.0f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
