"""Export shipped networks to ONNX: ``model.onnx`` beside ``best.pt``, for ``spectac correct``
without torch (docs/models.md, "Runtimes").

    PYTHONPATH=src python scripts/export_onnx.py [MODEL ...]    (default: every shipped AC model)

For each model the torch generator is loaded from ``src/spectac/data/models/<name>/best.pt`` and
exported with ``torch.onnx.export`` (the torch.export-based exporter, opset 18), with a dynamic
batch and spatial axes constrained to multiples of the network's padding factor (the U-Net pads
its input to a multiple of 2^(levels - 1) inside ``forward``; the ONNX runtime pads and crops in
numpy with the same rule, :mod:`spectac.nn.padding`). Before anything is written the export is
checked against the torch network on a grid that is no multiple (so the padding is exercised) and
on a batch of two; a relative disagreement above 1e-4 stops the script. The exporter's metadata
(stack traces with this machine's paths) is removed from the graph.

``config.json`` gets an ``"onnx"`` block: the file, its SHA-256, the SHA-256 of the ``best.pt`` it
was exported from (the runtime uses the ONNX file only while both match), the padding rule, the
opset, the exporter and the measured agreement. The folder's config.json must hold the
checkpoint's own configuration (the runtime reads it instead of the checkpoint); a model whose
config.json differs is refused. scripts/install_model.py re-exports after installing weights.
"""

from __future__ import annotations

import argparse
import io
import json
import sys
import warnings
from pathlib import Path

import numpy as np
import torch

from spectac.correction.deep import load_model, shipped_model_dir
from spectac.io.atomic import write_bytes_atomic
from spectac.io.checkpoint import load_checkpoint
from spectac.io.onnx_model import ONNX_KEY, ONNX_NAME, open_onnx_session
from spectac.io.paths import sha256_file
from spectac.io.training_files import BEST, read_config, write_config
from spectac.nn.onnx_runtime import OnnxGenerator
from spectac.nn.registry import REGISTRY, get_spec, input_channels
from spectac.nn.unet import UNet

OPSET = 18
#: Largest relative difference (max |onnx - torch| / max |torch|) accepted at export.
TOLERANCE = 1e-4
#: Largest spatial size the graph accepts per axis (voxels, after resampling to the training grid).
MAX_VOXELS = 1024


def pad_multiple(generator: torch.nn.Module, spatial_dims: int) -> list[int]:
    """The multiple each axis of the network input is padded to: 2^(levels - 1) for a U-Net (in
    x and y only for a slice-wise one), 1 for a network that does not pad."""
    unets = [m for m in generator.modules() if isinstance(m, UNet)]
    if not unets:
        return [1, 1, 1]
    m = 2 ** (unets[0].levels - 1)
    return [m, m, m] if spatial_dims == 3 else [m, m, 1]


def export_graph(generator: torch.nn.Module, channels: int, multiple: list[int]) -> bytes:
    """The ONNX bytes of a generator with dynamic batch and spatial axes (multiples only)."""
    from torch.export import Dim

    spatial = {}
    for axis, m in enumerate(multiple):
        dim = Dim(f"n{axis}", min=max(1, 16 // m), max=MAX_VOXELS // m)
        spatial[axis + 2] = dim * m if m > 1 else dim
    example = torch.zeros((1, channels, *(64 for _ in multiple)))
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        program = torch.onnx.export(generator, (example,), dynamo=True, opset_version=OPSET, input_names=["input"],
                                    output_names=["output"], external_data=False, verbose=False,
                                    dynamic_shapes=({0: Dim("batch", min=1, max=64), **spatial},))
    program.save(buffer, external_data=False)
    return stripped(buffer.getvalue())


def stripped(onnx_bytes: bytes) -> bytes:
    """The graph without the exporter's metadata and doc strings: they hold the stack traces of
    the export (paths of this machine) and names of torch internals, nothing the runtime reads."""
    import onnx

    model = onnx.load_from_string(onnx_bytes)
    model.doc_string = ""
    del model.metadata_props[:]
    graph = model.graph
    graph.doc_string = ""
    del graph.metadata_props[:]
    for group in (graph.node, graph.input, graph.output, graph.value_info, graph.initializer):
        for item in group:
            item.doc_string = ""
            del item.metadata_props[:]
    return model.SerializeToString()


def agreement(generator: torch.nn.Module, onnx_bytes: bytes, channels: int, multiple: list[int]) -> float:
    """max |onnx - torch| / max |torch| over a non-multiple grid and a batch of two (realistic
    inputs: smooth positive NC and a log-factor-like second channel)."""
    import tempfile

    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / ONNX_NAME
        path.write_bytes(onnx_bytes)
        runner = OnnxGenerator(open_onnx_session(path), multiple)
        worst = 0.0
        for shape in [(1, channels, 60, 52, 44), (2, channels, 64, 64, 64)]:
            x = rng.gamma(2.0, 0.2, size=shape).astype(np.float32)
            if channels > 1:
                x[:, 1:] = rng.uniform(0.0, 2.0, size=(shape[0], channels - 1, *shape[2:]))
            with torch.no_grad():
                expected = generator(torch.from_numpy(x)).numpy()
            got = runner(x)
            worst = max(worst, float(np.abs(got - expected).max() / np.abs(expected).max()))
    return worst


def export_model(name: str) -> dict:
    """Export the shipped model ``name``; returns its new ``onnx`` block."""
    folder = shipped_model_dir(name)
    weights = folder / BEST
    config = read_config(folder)
    checkpoint = json.loads(json.dumps(load_checkpoint(weights)["config"]))
    differing = sorted(k for k in checkpoint if config.get(k) != checkpoint[k])
    if differing:
        raise SystemExit(f"{folder}: config.json differs from the checkpoint's configuration in {differing}")
    model = load_model(folder)
    generator = model.generator.eval()
    spec = get_spec(name)
    channels = input_channels(model.config["network"])
    multiple = pad_multiple(generator, spec.spatial_dims)
    onnx_bytes = export_graph(generator, channels, multiple)
    worst = agreement(generator, onnx_bytes, channels, multiple)
    if not worst <= TOLERANCE:
        raise SystemExit(f"{name}: the ONNX export differs from the torch network by {worst:.2e} (> {TOLERANCE:g})")
    write_bytes_atomic(folder / ONNX_NAME, onnx_bytes)
    block = {"file": ONNX_NAME, "sha256": sha256_file(folder / ONNX_NAME), "weights": BEST,
             "weights_sha256": sha256_file(weights), "pad_multiple": multiple, "opset": OPSET,
             "exporter": f"torch {torch.__version__.split('+')[0]} torch.onnx.export(dynamo=True)",
             "max_relative_difference": float(f"{worst:.3g}")}
    write_config(folder, {**config, ONNX_KEY: block})
    return block


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="*", help="shipped model names (default: every shipped AC model)")
    args = parser.parse_args()
    names = args.models or [name for name, spec in REGISTRY.items()
                            if spec.target == "ac" and (shipped_model_dir(name) / BEST).is_file()]
    torch.manual_seed(0)
    for name in names:
        block = export_model(name)
        print(f"{name}: {block['file']} ({block['sha256'][:12]}), max relative difference "
              f"{block['max_relative_difference']:.2g}", file=sys.stderr)


if __name__ == "__main__":
    main()
