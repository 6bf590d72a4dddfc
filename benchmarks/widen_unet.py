"""A trained U-Net model grown to more channels per level, computing exactly what it computed before.

    python benchmarks/widen_unet.py MODEL OUT.pt --channels 8,16,64,128 [--seed 0]

MODEL is a model folder (its best.pt) or a .pt checkpoint of a U-Net model (``unet3d``,
``unet-gan3d``, ``unet-gan3d-chang``, ...); OUT.pt gets the same checkpoint with the network's
``channels`` option widened, ready for ``spectac train --init OUT.pt --channels ...``. Every added
channel gets fresh weights into it (the network's own initialisation, seeded) and zero weights out
of it, so the widened network's output equals the original's: training starts where the original
stopped and can only grow into the new channels (function-preserving growth in the manner of
Net2Net: Chen T, Goodfellow I, Shlens J, ICLR 2016). The script checks that equality on a random
input before writing, and prints the largest difference relative to the output's maximum.

Exit 2 (nothing written) when MODEL is no U-Net checkpoint, ``--channels`` has another number of
levels or fewer channels at any level, OUT exists, or the widened network does not reproduce the
original (relative difference above 1e-5).
"""

from __future__ import annotations

import argparse
import copy
import sys
from pathlib import Path

import torch

from spectac.io.checkpoint import load_checkpoint, save_checkpoint
from spectac.io.training_files import weights_of
from spectac.nn.registry import build_generator, get_spec, input_channels, resolve_config
from spectac.volume import SpectacError

TOLERANCE = 1e-5


def _is_decoder_input(key: str) -> bool:
    """A decoder's first convolution: its input is cat([upsampled, skip]), each half widened."""
    parts = key.split(".")
    return "decoders" in parts and parts[parts.index("decoders") + 2] == "0"


def _input_index(key: str, n_old: int, n_new: int) -> list[int]:
    """Where each of a layer's ``n_old`` input channels lies among its ``n_new``."""
    if _is_decoder_input(key):
        half_old, half_new = n_old // 2, n_new // 2
        return [i if i < half_old else half_new + i - half_old for i in range(n_old)]
    return list(range(n_old))


def widen_state(old: dict[str, torch.Tensor], fresh: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """``fresh`` (a wider U-Net's freshly initialised state dict) with ``old``'s weights in place.

    Old output channels keep their weights and get zero weights from the new input channels; new
    output channels keep their fresh weights. Norm scales and biases of old channels are copied.
    """
    state = {}
    for key, w_new in fresh.items():
        w_old = old[key]
        if w_old.shape == w_new.shape:
            state[key] = w_old.clone()
            continue
        w = w_new.clone()
        if w_old.dim() == 1:
            w[: w_old.shape[0]] = w_old
        elif ".ups." in f".{key}":  # a transposed convolution's weight is (in, out, *kernel)
            n_in, n_out = w_old.shape[:2]
            w[:, :n_out] = 0
            w[:n_in, :n_out] = w_old
        else:  # a convolution's weight is (out, in, *kernel)
            n_out, n_in = w_old.shape[:2]
            w[:n_out] = 0
            w[:n_out, _input_index(key, n_in, w_new.shape[1])] = w_old
        state[key] = w
    return state


def widen(checkpoint: dict, channels: list[int], seed: int = 0) -> tuple[dict, float]:
    """The widened checkpoint and the largest |widened - original| output on a random input,
    relative to the original output's maximum.

    Raises:
        SpectacError: not a U-Net checkpoint, or ``channels`` not a widening of its channels.
    """
    config = checkpoint.get("config") if isinstance(checkpoint.get("config"), dict) else {}
    network = config.get("network")
    if not isinstance(network, dict) or "generator" not in checkpoint:
        raise SpectacError("not a spectac model checkpoint (no config.network or generator weights)")
    model = network.get("model", config.get("model"))
    spec = get_spec(str(model))
    old_channels = network.get("channels")
    if not spec.backbone.endswith(":UNet") or not isinstance(old_channels, list):
        raise SpectacError(f"model {model} is not a U-Net with per-level channels: nothing to widen")
    if len(channels) != len(old_channels) or any(n < o for n, o in zip(channels, old_channels)):
        raise SpectacError(f"--channels {','.join(map(str, channels))} does not widen the model's "
                           f"{','.join(map(str, old_channels))}: give as many levels, none narrower")
    old_config = resolve_config(model, network)
    original = build_generator(old_config)
    original.load_state_dict(checkpoint["generator"])
    torch.manual_seed(seed)
    wide = build_generator(resolve_config(model, dict(network, channels=list(channels))))
    wide.load_state_dict(widen_state(checkpoint["generator"], wide.state_dict()))
    # (B, C, X, Y, Z) for every model: a 2D one runs slice by slice on a volume
    x = torch.rand(1, input_channels(old_config), 16, 16, 16,
                   generator=torch.Generator().manual_seed(seed))
    original.eval()
    wide.eval()
    with torch.no_grad():
        a, b = original(x), wide(x)
    difference = float((a - b).abs().max() / a.abs().max().clamp_min(1e-12))
    out = copy.deepcopy({k: v for k, v in checkpoint.items() if k != "generator"})
    out["config"]["network"]["channels"] = list(channels)
    out["generator"] = wide.state_dict()
    return out, difference


def run(args: argparse.Namespace) -> str:
    """Widen and write; the line to print. Raises SpectacError for every refusal."""
    try:
        channels = [int(c) for c in args.channels.split(",")]
    except ValueError:
        raise SpectacError(f"--channels must be whole numbers separated by commas, got {args.channels!r}") from None
    if args.out.exists():
        raise SpectacError(f"{args.out} exists; choose another file")
    widened, difference = widen(load_checkpoint(weights_of(args.model)), channels, args.seed)
    if not difference <= TOLERANCE:
        raise SpectacError(f"the widened network differs from the original by {difference:.2e} of its "
                           f"maximum (tolerance {TOLERANCE}); nothing written")
    save_checkpoint(widened, args.out)
    return (f"{args.out}: channels {','.join(map(str, channels))}; output equals the original's to "
            f"{difference:.1e} of its maximum")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("model", type=Path, help="model folder (its best.pt) or .pt checkpoint")
    parser.add_argument("out", type=Path, help="the widened checkpoint (.pt) to write")
    parser.add_argument("--channels", required=True, help="channels per level, finest first, e.g. 8,16,64,128")
    parser.add_argument("--seed", type=int, default=0, help="seed of the new channels' weights")
    try:
        print(run(parser.parse_args()))
    except SpectacError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
