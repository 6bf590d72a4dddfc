"""The energy-window projections of a study: ``projections.npz`` (docs/architecture.md, formats).

A zip of ``.npy`` arrays, deflate-compressed, readable with ``numpy.load``:

- ``counts_<window>``: (views, bins, rows) counts of one window, uint16 (uint32 when a bin holds
  more than 65535 counts), in the projector's layout (view, detector row position, axial row);
- ``kev_<window>``: float64 (lower, upper) bounds of the window in keV;
- ``windows``: the window names in acquisition order (a unicode array, no pickle).

The zip entries carry a fixed date so the same counts give the same bytes (simulations are
byte-reproducible). Written atomically through :func:`spectac.io.atomic.write_bytes_atomic`, or
inside a study's atomic folder by :func:`spectac.io.dataset.write_study`.
"""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np

from spectac.io.atomic import write_bytes_atomic
from spectac.volume import SpectacError

FILE_NAME = "projections.npz"
_DATE = (1980, 1, 1, 0, 0, 0)


def _counts_array(name: str, counts: np.ndarray) -> np.ndarray:
    array = np.asarray(counts)
    if array.ndim != 3:
        raise ValueError(f"window {name!r}: projections must be (views, bins, rows), got shape {array.shape}")
    rounded = np.rint(array)
    if array.size and (rounded.min() < 0 or not np.allclose(rounded, array)):
        raise ValueError(f"window {name!r}: projections must be non-negative counts")
    dtype = np.uint16 if not array.size or rounded.max() <= np.iinfo(np.uint16).max else np.uint32
    return rounded.astype(dtype)


def window_projections_bytes(counts: dict[str, np.ndarray], bounds_kev: dict[str, tuple[float, float]]) -> bytes:
    """The bytes of projections.npz for the counts of every window and their bounds."""
    if not counts or set(counts) != set(bounds_kev):
        raise ValueError("need the counts and the keV bounds of the same, non-empty set of windows")
    arrays: dict[str, np.ndarray] = {"windows": np.array(list(counts), dtype=str)}
    for name, value in counts.items():
        arrays[f"counts_{name}"] = _counts_array(name, value)
        arrays[f"kev_{name}"] = np.asarray(bounds_kev[name], dtype=np.float64).reshape(2)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for key, array in arrays.items():
            entry = io.BytesIO()
            np.lib.format.write_array(entry, array, allow_pickle=False)
            info = zipfile.ZipInfo(f"{key}.npy", date_time=_DATE)
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, entry.getvalue())
    return buffer.getvalue()


def write_window_projections(path: str | Path, counts: dict[str, np.ndarray],
                             bounds_kev: dict[str, tuple[float, float]]) -> Path:
    """Write projections.npz atomically."""
    return write_bytes_atomic(path, window_projections_bytes(counts, bounds_kev), suffix=".npz")


def read_window_projections(path: str | Path) -> tuple[dict[str, np.ndarray], dict[str, tuple[float, float]]]:
    """(counts per window, as stored; (lower, upper) keV per window), in acquisition order."""
    path = Path(path)
    if not path.is_file():
        raise SpectacError(f"{path}: no window projections")
    try:
        with np.load(path, allow_pickle=False) as data:
            names = [str(n) for n in data["windows"]]
            counts = {n: data[f"counts_{n}"] for n in names}
            bounds = {n: (float(data[f"kev_{n}"][0]), float(data[f"kev_{n}"][1])) for n in names}
    except (KeyError, ValueError, OSError, zipfile.BadZipFile) as exc:
        raise SpectacError(f"{path}: not a spectac window-projections file ({exc})") from exc
    return counts, bounds
