"""Network checkpoints on disk: torch files written atomically, read back safely.

A checkpoint is a dict of tensors, numbers, strings, lists and dicts (state dicts, the resolved
config, the epoch), so it loads with ``weights_only=True``: no code runs from a weights file.

The same state gives the same bytes: torch names the zip archive inside a .pt file after the file
it writes (a temporary name would differ each time), so the state is serialised in memory (archive
name "archive") and the bytes written atomically; callers keep wall times out of the state.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import torch

from spectac.io.atomic import atomic_path
from spectac.volume import SpectacError


def save_checkpoint(state: dict[str, Any], path: str | Path) -> Path:
    """Write ``state`` to ``path`` atomically: an interruption leaves the previous file intact."""
    path = Path(path)
    buffer = io.BytesIO()
    torch.save(state, buffer)
    with atomic_path(path, suffix=".pt") as tmp:
        tmp.write_bytes(buffer.getvalue())
    return path


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Read a checkpoint written by :func:`save_checkpoint` (on the CPU).

    Raises:
        SpectacError: the file is missing or not a readable spectac checkpoint.
    """
    path = Path(path)
    if not path.is_file():
        raise SpectacError(f"{path}: no such weights file")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many kinds for a damaged file
        raise SpectacError(f"{path}: not a readable checkpoint ({exc.__class__.__name__})") from exc
    if not isinstance(state, dict):
        raise SpectacError(f"{path}: not a spectac checkpoint")
    return state
