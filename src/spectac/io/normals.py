"""Reading and writing normal-database files (.npz of named arrays plus a JSON description)."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from spectac.io.atomic import atomic_path
from spectac.volume import SpectacError


def write_normals_file(path: str | Path, arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> Path:
    """Write arrays and a JSON description into one .npz, atomically."""
    path = Path(path)
    if path.suffix != ".npz":
        raise SpectacError(f"{path}: a normal database is an .npz file")
    payload = dict(arrays)
    payload["meta_json"] = np.frombuffer(json.dumps(meta, default=str).encode(), dtype=np.uint8)
    with atomic_path(path, ".npz") as tmp:
        np.savez_compressed(tmp, **payload)
    return path


def read_normals_file(path: str | Path) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Read what :func:`write_normals_file` wrote; SpectacError naming the file when it is bad."""
    path = Path(path)
    if not path.is_file():
        raise SpectacError(f"{path}: no normal database; build one with `spectac normals --data DATASET --out {path}`")
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {k: np.asarray(data[k]) for k in data.files}
    except (OSError, ValueError, zipfile.BadZipFile) as exc:
        raise SpectacError(f"{path}: not a readable normal database ({exc})") from exc
    if "meta_json" not in arrays:
        raise SpectacError(f"{path}: not a spectac normal database (no description)")
    try:
        meta = json.loads(arrays.pop("meta_json").tobytes().decode())
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise SpectacError(f"{path}: corrupt normal-database description ({exc})") from exc
    return arrays, meta
