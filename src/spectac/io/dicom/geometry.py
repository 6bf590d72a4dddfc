"""The grid of a series from its headers alone: plane geometry, NM multi-frame and slice stacks.

The array conventions are those of :mod:`spectac.volume`: a DICOM frame is indexed [row, col] =
[y, x], so a multi-frame pixel array (frames, rows, cols) becomes [x, y, z] by ``transpose(2, 1, 0)``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from pydicom.dataset import Dataset

from spectac.io.dicom.tags import _shown
from spectac.volume import SpectacError


@dataclass
class SeriesGeometry:
    """The grid of a series as its headers give it (before any pixel is read).

    Attributes:
        shape: voxels along the array axes [x, y, z] = [columns, rows, frames or slices].
        spacing: voxel size along the array axes in mm.
        origin: LPS position of the first voxel in mm.
        direction: (3, 3) direction cosines; column i is the LPS direction of array axis i.
        order: the files (slices) in order along the normal; [0] for a multi-frame file.
    """

    shape: tuple[int, int, int]
    spacing: tuple[float, float, float]
    origin: tuple[float, float, float]
    direction: np.ndarray
    order: list[int]


def _floats(value: Any, n: int, name: str, path: Path) -> np.ndarray:
    many = isinstance(value, (list, tuple, Sequence)) and not isinstance(value, (str, bytes))
    try:
        out = np.asarray([float(v) for v in (value if many else [value])])
    except (TypeError, ValueError, OverflowError) as exc:
        raise SpectacError(f"{path}: {name} is not numeric ({_shown(value)})") from exc
    if out.shape != (n,) or not np.all(np.isfinite(out)):
        raise SpectacError(f"{path}: {name} must hold {n} finite numbers, got {_shown(value)}")
    return out


def _plane_geometry(ds: Dataset, path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(row direction, column direction, IPP, pixel spacing [row spacing, col spacing]) of a frame.

    NM keeps Image Orientation/Position (Patient) in the Detector Information Sequence; other
    objects (and some NM writers) at the top level. The NM location is preferred.
    """
    iop = ipp = None
    detectors = ds.get("DetectorInformationSequence")
    if detectors:
        iop = detectors[0].get("ImageOrientationPatient")
        ipp = detectors[0].get("ImagePositionPatient")
    iop = iop if iop is not None else ds.get("ImageOrientationPatient")
    ipp = ipp if ipp is not None else ds.get("ImagePositionPatient")
    if iop is None or ipp is None:
        raise SpectacError(
            f"{path}: no Image Orientation/Position (Patient); the volume cannot be placed in the patient frame"
        )
    iop_v = _floats(list(iop), 6, "Image Orientation (Patient)", path)
    ipp_v = _floats(list(ipp), 3, "Image Position (Patient)", path)
    row, col = iop_v[:3], iop_v[3:]
    for vec in (row, col):
        norm = np.linalg.norm(vec)
        if abs(norm - 1.0) > 1e-2:
            raise SpectacError(
                f"{path}: Image Orientation (Patient) {list(iop_v)} is not made of unit vectors"
            )
    row, col = row / np.linalg.norm(row), col / np.linalg.norm(col)
    if abs(float(row @ col)) > 1e-3:
        raise SpectacError(f"{path}: Image Orientation (Patient) {list(iop_v)} is not orthogonal")
    if "PixelSpacing" not in ds or ds.PixelSpacing is None:
        raise SpectacError(f"{path}: no Pixel Spacing")
    spacing = _floats(ds.PixelSpacing, 2, "Pixel Spacing", path)
    if np.any(spacing <= 0):
        raise SpectacError(f"{path}: Pixel Spacing {list(spacing)} must be positive")
    return row, col, ipp_v, spacing


def _frame_count(ds: Dataset) -> int:
    value = ds.get("NumberOfFrames", 1)
    return 1 if value in (None, "") else int(value)


def _check_nm_frames(ds: Dataset, path: Path, frames: int) -> None:
    """Refuse raw projections and gated reconstructions: only a summed reconstruction is a volume."""
    image_type = [str(v).upper() for v in (ds.get("ImageType") or [])]
    kind = image_type[2] if len(image_type) > 2 else ""
    if kind in ("TOMO", "GATED TOMO", "STATIC", "DYNAMIC", "GATED", "WHOLE BODY"):
        raise SpectacError(
            f"{path}: holds {kind} frames (Image Type), expected a reconstructed volume (RECON TOMO)"
        )
    pointers = ds.get("FrameIncrementPointer")
    if pointers is not None:
        pointers = [int(p) for p in (pointers if isinstance(pointers, (list, Sequence)) else [pointers])]
        if 0x00540050 in pointers or 0x00540090 in pointers:  # Rotation / Angular View Vector
            raise SpectacError(
                f"{path}: holds projection views, expected a reconstructed volume (RECON TOMO)"
            )
    slots = ds.get("NumberOfTimeSlots")
    if kind == "RECON GATED TOMO" or (slots not in (None, "") and int(slots) > 1):
        raise SpectacError(f"{path}: is a gated reconstruction; export the summed (ungated) series")
    slices = ds.get("NumberOfSlices")
    if slices not in (None, "") and int(slices) != frames:
        raise SpectacError(f"{path}: Number of Frames {frames} but Number of Slices {slices}")


def _multiframe_geometry(ds: Dataset, path: Path) -> SeriesGeometry:
    """The grid of an NM multi-frame file, from its header alone."""
    frames = _frame_count(ds)
    _check_nm_frames(ds, path, frames)
    row, col, ipp, pixel_spacing = _plane_geometry(ds, path)
    step = ds.get("SpacingBetweenSlices")
    name = "Spacing Between Slices"
    if step in (None, "") or float(step) == 0:
        step, name = ds.get("SliceThickness"), "Slice Thickness"
    if step in (None, "") or float(step) == 0:
        raise SpectacError(
            f"{path}: neither Spacing Between Slices nor Slice Thickness gives the slice spacing"
        )
    step = float(_floats(step, 1, name, path)[0])
    normal = np.cross(row, col)
    # A negative Spacing Between Slices means the frames advance against the normal.
    direction = np.column_stack([row, col, normal * np.sign(step)])
    shape = (int(ds.get("Columns") or 0), int(ds.get("Rows") or 0), frames)
    spacing = (float(pixel_spacing[1]), float(pixel_spacing[0]), abs(step))
    return SeriesGeometry(shape, spacing, tuple(float(v) for v in ipp), direction, [0])


def _slices_geometry(datasets: list[Dataset], paths: list[Path], folder: Path) -> SeriesGeometry:
    """The grid of a folder of single-frame slices, from their headers alone."""
    geometry = [_plane_geometry(ds, p) for ds, p in zip(datasets, paths)]
    row, col, _, pixel_spacing = geometry[0]
    shape = (int(datasets[0].Rows), int(datasets[0].Columns))
    for (r, c, _, s), ds, p in zip(geometry, datasets, paths):
        if not (np.allclose(r, row, atol=1e-4) and np.allclose(c, col, atol=1e-4)):
            raise SpectacError(f"{p}: Image Orientation (Patient) differs from the other slices of {folder}")
        if not np.allclose(s, pixel_spacing, rtol=1e-4):
            raise SpectacError(
                f"{p}: inconsistent spacing: Pixel Spacing {list(s)} differs from {list(pixel_spacing)}"
            )
        if (int(ds.Rows), int(ds.Columns)) != shape:
            raise SpectacError(
                f"{p}: {ds.Rows}x{ds.Columns} pixels, the other slices have {shape[0]}x{shape[1]}"
            )
    normal = np.cross(row, col)
    positions = np.array([g[2] for g in geometry])
    along = positions @ normal
    order = np.argsort(along, kind="stable")
    along, positions = along[order], positions[order]
    steps = np.diff(along)
    if np.any(steps < 1e-3):
        i = int(np.argmin(steps))
        raise SpectacError(f"{paths[order[i + 1]]}: two slices at the same position in {folder}")
    step = float(np.median(steps))
    if not np.allclose(steps, step, rtol=1e-2, atol=1e-2):
        raise SpectacError(
            f"{folder}: inconsistent spacing: slices {steps.min():.3g} to {steps.max():.3g} mm apart (gaps or missing files)"
        )
    in_plane = positions - np.outer(along - along[0], normal)
    if not np.allclose(in_plane, in_plane[0], atol=max(0.01, 0.01 * step)):
        raise SpectacError(
            f"{folder}: the slices are not stacked along their normal (tilted or shifted stack)"
        )
    direction = np.column_stack([row, col, normal])
    shape3 = (shape[1], shape[0], len(datasets))
    spacing = (float(pixel_spacing[1]), float(pixel_spacing[0]), step)
    return SeriesGeometry(shape3, spacing, tuple(float(v) for v in positions[0]), direction,
                          [int(i) for i in order])
