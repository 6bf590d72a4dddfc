"""Test-time shift averaging of a network: its prediction averaged over shifted copies of the input.

    python benchmarks/shift_averaging.py DATA RUN [--split val] [--method unet-gan3d-chang]
        [--shifts corners] [--weights W]

Writes RUN/predictions/<method>/ as ``spectac predict --method <method>`` would (same checks,
orientation, atomic files, resumable), except that every forward pass is replaced by the mean of
passes over the input moved by whole voxels (zero fill) and moved back; each output voxel averages
the passes that saw it. The folder's config.json records the shifts among the method's options
(``test_time_shifts``), so ``spectac predict`` refuses to add plain predictions to it, and this
script refuses other shifts. ``--shifts corners``: no shift and the 8 shifts of
(+-1, +-1, +-1) voxels (nine passes); ``axes``: no shift and +-2 voxels along each axis (seven).
The U-Nets pool three times, so one-voxel shifts change the pooling phase; shift averaging of
this kind is test-time augmentation (e.g. Wang G, Li W, Aertsen M, Deprest J, Ourselin S,
Vercauteren T, Neurocomputing 2019). Score the run with ``spectac evaluate`` and
``benchmarks/goals.py``.
"""

from __future__ import annotations

import argparse
import itertools
import sys
from pathlib import Path

import numpy as np

import spectac.correction.deep as deep
import spectac.correction.run as run
from spectac.errors import SpectacError
from spectac.nn.registry import model_names
from spectac.training.data import shift_zero_fill

SHIFTS = {
    "corners": [(0, 0, 0), *itertools.product((-1, 1), repeat=3)],
    "axes": [(0, 0, 0), *[tuple(s * (i == a) for i in range(3)) for a in range(3) for s in (-2, 2)]],
}


def averaged(forward, shifts):
    """A ``predict_normalised`` that averages ``forward`` over ``shifts``."""

    def predict(generator, inputs, device=None, amp=False):
        x = np.ascontiguousarray(inputs, dtype=np.float32)
        total = weight = None
        for shift in shifts:
            back = tuple(-d for d in shift)
            y = shift_zero_fill(forward(generator, shift_zero_fill(x, shift), device, amp), back)
            seen = shift_zero_fill(np.ones_like(y), back)
            total = y if total is None else total + y
            weight = seen if weight is None else weight + seen
        return total / np.maximum(weight, 1)

    return predict


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("data", type=Path)
    parser.add_argument("run", type=Path)
    parser.add_argument("--split", default="val")
    parser.add_argument("--method", default="unet-gan3d-chang")
    parser.add_argument("--shifts", choices=sorted(SHIFTS), default="corners")
    parser.add_argument("--weights", help="model folder or .pt (default: the shipped weights)")
    args = parser.parse_args()
    if args.method not in model_names():
        print(f"--method must be a network ({', '.join(model_names())}), got {args.method!r}", file=sys.stderr)
        return 2
    deep.predict_normalised = averaged(deep.predict_normalised, SHIFTS[args.shifts])
    resolve = run.resolve_options
    run.resolve_options = lambda method, options: {**resolve(method, options), "test_time_shifts": args.shifts}
    options = {"weights": args.weights} if args.weights else {}
    try:
        summary = run.predict_dataset(args.data, args.run, args.method, args.split, **options)
    except SpectacError as exc:
        print(exc, file=sys.stderr)
        return 2
    print(f"{args.method} ({len(SHIFTS[args.shifts])} shifted passes): {summary['written']} written, "
          f"{summary['skipped']} already present, in {summary['folder']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
