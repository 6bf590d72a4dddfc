"""A shipped network exported to ONNX: ``model.onnx`` beside its ``best.pt``, and which weights it
came from.

``scripts/export_onnx.py`` writes ``model.onnx`` into a model folder and records in its
``config.json`` (block ``"onnx"``) the SHA-256 of the weights it was exported from and of the ONNX
file itself, the padding rule of the network (:mod:`spectac.nn.padding`) and the agreement it
measured with the torch network. :func:`matching_onnx` trusts the ONNX file only while both digests
still match, so weights replaced without re-exporting fall back to torch, never to a stale graph.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from typing import Any

from spectac.io.paths import sha256_file
from spectac.io.training_files import BEST, read_config_if_any

ONNX_NAME = "model.onnx"
#: The block of config.json that describes the ONNX export.
ONNX_KEY = "onnx"
#: ``SPECTAC_RUNTIME=torch`` runs the networks with torch even where an ONNX export would do.
RUNTIME_ENV = "SPECTAC_RUNTIME"


def onnx_runtime_wanted() -> bool:
    """Whether the ONNX runtime may be used: onnxruntime is installed and ``SPECTAC_RUNTIME`` is
    not "torch"."""
    if os.environ.get(RUNTIME_ENV, "").strip().lower() == "torch":
        return False
    return importlib.util.find_spec("onnxruntime") is not None


def matching_onnx(folder: str | Path) -> tuple[Path, dict[str, Any]] | None:
    """``(model.onnx, config.json)`` of a model folder when its ONNX export is of the folder's
    ``best.pt`` (both SHA-256 digests recorded in the ``onnx`` block match the files); else None."""
    folder = Path(folder)
    onnx, weights = folder / ONNX_NAME, folder / BEST
    if not (onnx.is_file() and weights.is_file()):
        return None
    config = read_config_if_any(folder)
    block = config.get(ONNX_KEY) if config else None
    if not isinstance(block, dict):
        return None
    if block.get("weights_sha256") != sha256_file(weights) or block.get("sha256") != sha256_file(onnx):
        return None
    return onnx, config


def onnx_threads() -> int:
    """Threads for onnxruntime: ``OMP_NUM_THREADS`` when set (as torch reads it), else the CPUs this
    process may run on."""
    try:
        threads = int(os.environ.get("OMP_NUM_THREADS", ""))
    except ValueError:
        threads = 0
    if threads > 0:
        return threads
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def threads_beside_check() -> int:
    """onnxruntime's intra-op threads for a network that runs while ``spectac correct``'s
    out-of-distribution check holds one core: the others, at least one."""
    return max(1, onnx_threads() - 1)


def open_onnx_session(path: str | Path, threads: int | None = None) -> Any:
    """An onnxruntime CPU inference session on an ONNX file, ``threads`` intra-op threads (None:
    :func:`onnx_threads`), run sequentially, without busy-waiting threads (the machine is shared)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads or onnx_threads()
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.log_severity_level = 3  # warnings of graph optimisation are not the user's concern
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
