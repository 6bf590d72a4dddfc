"""A diagnostic or SPECT/CT chest CT series (any scanner) as a volume of HU, checked for what a
phantom needs.

:mod:`spectac.io.dicom` reads a CT as a mu-map companion of a SPECT study; a phantom made from a
CT needs more of it and refuses more: the tube voltage (the HU of bone depend on it), axial slices
(no gantry tilt, no oblique reformat) at equal spacing, and no localiser mixed in. A localiser
(Image Type LOCALIZER) is skipped and reported; so are a few slices of another orientation or
size when the axial stack is clearly the rest. Everything else that is not one axial CT volume is
refused with one line (:class:`SpectacError`) before any pixel is read.

Nothing identifying is kept: :class:`CtSeries` holds the volume and the acquisition settings
(kVp, manufacturer, model, kernel, slice geometry) and the Frame of Reference and Study Instance
UIDs (to place it with a SPECT acquisition) only.
"""

from __future__ import annotations

import os
import warnings
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pydicom

from spectac.errors import SpectacError
from spectac.volume import Volume

#: Largest angle (degrees) between a slice axis and an LPS axis for the series to count as axial.
OBLIQUE_TOLERANCE_DEG = 1.0
#: Slice steps may differ from their median by this much (mm) plus SPACING_RTOL of it.
SPACING_ATOL_MM = 0.05
SPACING_RTOL = 0.02
#: A few slices of another orientation or size are skipped (as a localiser) when they are at most
#: this many and the rest is at least MIN_SLICES.
MAX_ODD_SLICES = 3
MIN_SLICES = 8
#: CT numbers below are padding outside the reconstruction circle (GE -2000, Siemens -3024):
#: they are air. Above HU_MAX (metal, streaks) values are clipped.
HU_MIN, HU_MAX = -1000.0, 3000.0


@dataclass
class CtSeries:
    """One axial CT volume (HU, float32) and its acquisition settings (no patient identifiers)."""

    volume: Volume
    kvp: float
    kvp_source: str  # "header" or "--kvp"
    manufacturer: str
    model: str
    kernel: str
    slices: int
    pixel_mm: float
    slice_mm: float
    notes: list[str] = field(default_factory=list)
    #: Where the volume lives and which study it belongs to (to place it with a SPECT acquisition).
    frame_of_reference_uid: str = ""
    study_uid: str = ""

    def describe(self) -> dict[str, Any]:
        return {
            "modality": "CT",
            "kvp": self.kvp,
            "kvp_source": self.kvp_source,
            "manufacturer": self.manufacturer,
            "model": self.model,
            "kernel": self.kernel,
            "slices": self.slices,
            "pixel_mm": round(self.pixel_mm, 4),
            "slice_spacing_mm": round(self.slice_mm, 4),
            "matrix": [int(v) for v in self.volume.shape],
            "notes": list(self.notes),
        }


def _files(folder: Path) -> list[Path]:
    out = []
    for root, dirs, names in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        out.extend(Path(root) / n for n in sorted(names) if not n.startswith(".") and n.upper() != "DICOMDIR")
    return out


def _text(ds: pydicom.Dataset, keyword: str) -> str:
    value = ds.get(keyword)
    if value is None:
        return ""
    if isinstance(value, (list, tuple, pydicom.multival.MultiValue)):
        return "\\".join(str(v) for v in value)
    return " ".join(str(value).split())[:64]


def _vector(ds: pydicom.Dataset, keyword: str, n: int, path: Path) -> np.ndarray:
    value = ds.get(keyword)
    try:
        out = np.asarray([float(v) for v in value], dtype=np.float64)
    except (TypeError, ValueError):
        raise SpectacError(f"{path}: no usable {keyword} ({value!r:.60})") from None
    if out.shape != (n,) or not np.all(np.isfinite(out)):
        raise SpectacError(f"{path}: {keyword} must hold {n} finite numbers")
    return out


@dataclass
class _Slice:
    path: Path
    ds: pydicom.Dataset
    row: np.ndarray
    col: np.ndarray
    position: np.ndarray
    spacing: np.ndarray
    shape: tuple[int, int]

    def key(self) -> tuple:
        return (tuple(np.round(self.row, 3)), tuple(np.round(self.col, 3)), self.shape,
                tuple(np.round(self.spacing, 4)))


def _headers(folder: Path) -> tuple[list[tuple[Path, pydicom.Dataset]], int]:
    headers, skipped = [], 0
    for path in _files(folder):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                ds = pydicom.dcmread(path, stop_before_pixels=True)
        except Exception:  # noqa: BLE001 - not DICOM (a report, a text file): not part of the series
            skipped += 1
            continue
        headers.append((path, ds))
    return headers, skipped


def frame_of_reference_of(path: str | Path) -> str:
    """The Frame of Reference UID of the first readable DICOM file of a CT folder ("" if none):
    a header-only look, so a CT of another frame is refused before its pixels are read."""
    for file in _files(Path(path)):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                ds = pydicom.dcmread(file, stop_before_pixels=True)
        except Exception:  # noqa: BLE001 - not DICOM: the series reader reports it
            continue
        return _text(ds, "FrameOfReferenceUID")
    return ""


def _is_localizer(ds: pydicom.Dataset) -> bool:
    return "LOCALIZER" in _text(ds, "ImageType").upper()


def read_ct_series(path: str | Path, kvp: float | None = None, max_pixel_mm: float | None = None) -> CtSeries:
    """Read one axial CT series from a folder of single-frame slices (subfolders searched).

    Args:
        path: the folder.
        kvp: tube voltage to use when the header has no KVP (0018,0060); refused when the header
            has another value.
        max_pixel_mm: when given, slices are averaged in-plane over blocks of
            ``floor(max_pixel_mm / pixel)`` pixels while read (a coarser working grid, less memory).

    Raises:
        SpectacError: one line naming the folder or file and the problem; nothing is read further.
    """
    folder = Path(path)
    if not folder.is_dir():
        raise SpectacError(f"{folder}: no such folder (give the folder of the CT series)")
    headers, not_dicom = _headers(folder)
    if not headers:
        raise SpectacError(f"{folder}: holds no DICOM files")
    notes = []
    if not_dicom:
        notes.append(f"{not_dicom} non-DICOM file(s) ignored")
    localizers = [(p, ds) for p, ds in headers if _is_localizer(ds)]
    headers = [(p, ds) for p, ds in headers if not _is_localizer(ds)]
    if localizers:
        notes.append(f"{len(localizers)} localiser image(s) skipped (Image Type LOCALIZER)")
    if not headers:
        raise SpectacError(f"{folder}: holds only localiser images, no CT volume")
    for p, ds in headers:
        modality = _text(ds, "Modality").upper() or "(none)"
        if modality != "CT":
            raise SpectacError(f"{p}: is a {modality} image, not a CT (Modality must be CT)")
    series = {_text(ds, "SeriesInstanceUID") for _, ds in headers}
    if len(series) > 1:
        raise SpectacError(f"{folder}: holds {len(series)} CT series; give the folder of one series")
    frames = [int(ds.get("NumberOfFrames", 1) or 1) for _, ds in headers]
    if max(frames) > 1:
        raise SpectacError(f"{folder}: holds a multi-frame CT; export single-frame axial slices")

    slices = []
    for p, ds in headers:
        iop = _vector(ds, "ImageOrientationPatient", 6, p)
        slices.append(_Slice(p, ds, iop[:3], iop[3:], _vector(ds, "ImagePositionPatient", 3, p),
                             _vector(ds, "PixelSpacing", 2, p), (int(ds.get("Rows") or 0), int(ds.get("Columns") or 0))))
    counts = Counter(s.key() for s in slices)
    main_key, main_count = counts.most_common(1)[0]
    odd = len(slices) - main_count
    if odd:
        if odd > MAX_ODD_SLICES or main_count < MIN_SLICES:
            raise SpectacError(
                f"{folder}: slices of {len(counts)} different orientations or sizes ({main_count} and {odd} others); "
                "give one axial series"
            )
        notes.append(f"{odd} slice(s) of another orientation or size skipped (a localiser?)")
        slices = [s for s in slices if s.key() == main_key]
    if len(slices) < MIN_SLICES:
        raise SpectacError(f"{folder}: {len(slices)} CT slices; a chest CT volume needs at least {MIN_SLICES}")

    first = slices[0]
    row, col = first.row / np.linalg.norm(first.row), first.col / np.linalg.norm(first.col)
    normal = np.cross(row, col)
    cos_tol = np.cos(np.radians(OBLIQUE_TOLERANCE_DEG))
    for vec, axis, name in ((row, 0, "rows"), (col, 1, "columns"), (normal, 2, "slice normal")):
        if abs(vec[axis]) < cos_tol:
            angle = np.degrees(np.arccos(min(1.0, abs(vec[axis]))))
            raise SpectacError(
                f"{folder}: oblique slices: the {name} lie {angle:.1f} degrees off the LPS axes (Image Orientation "
                f"{np.round(np.r_[row, col], 3).tolist()}); a phantom needs axial slices"
            )
    along = np.array([s.position @ normal for s in slices])
    order = np.argsort(along, kind="stable")
    slices = [slices[i] for i in order]
    along = along[order]
    steps = np.diff(along)
    step = float(np.median(steps))
    if step < 0.1:
        raise SpectacError(f"{folder}: several slices at the same position (overlapping or duplicated files)")
    bad = np.abs(steps - step) > SPACING_ATOL_MM + SPACING_RTOL * step
    if np.any(bad):
        i = int(np.argmax(np.abs(steps - step)))
        kind = "a gap" if steps[i] > step else "an overlap"
        raise SpectacError(
            f"{folder}: slices of unequal spacing: {kind} of {steps[i]:.3g} mm between slices at {along[i]:.1f} and "
            f"{along[i + 1]:.1f} mm (the others {step:.3g} mm apart); missing or extra files?"
        )
    positions = np.array([s.position for s in slices])
    in_plane = positions - np.outer(along - along[0], normal)
    if not np.allclose(in_plane, in_plane[0], atol=max(0.05, 0.02 * step)):
        raise SpectacError(f"{folder}: the slices are not stacked along their normal (gantry tilt or a shifted stack)")

    header_kvp = _kvp(slices[0].ds, slices[0].path)
    if header_kvp is None and kvp is None:
        raise SpectacError(f"{folder}: the CT has no KVP (0018,0060); give the tube voltage with --kvp")
    if header_kvp is not None and kvp is not None and abs(header_kvp - kvp) > 0.5:
        raise SpectacError(f"{folder}: --kvp {kvp:g} contradicts KVP {header_kvp:g} of the CT header")
    used_kvp, kvp_source = (header_kvp, "header") if header_kvp is not None else (float(kvp), "--kvp")  # type: ignore[arg-type]

    pixel = first.spacing  # [row spacing (between rows, along col), column spacing (along row)]
    factor = 1
    if max_pixel_mm is not None:
        factor = max(1, int(np.floor(max_pixel_mm / float(max(pixel)) + 1e-6)))
    rows, cols = first.shape
    rows_b, cols_b = rows // factor, cols // factor
    if rows_b < 8 or cols_b < 8:
        raise SpectacError(f"{folder}: {rows}x{cols} pixels is too small a CT slice")
    planes = []
    for s in slices:
        planes.append(_plane_hu(s, factor, rows_b, cols_b))
    array = np.stack(planes, axis=-1)  # [x (along row), y (along col), z]
    # The centre of block (0, 0) lies (factor-1)/2 pixels from the first pixel's centre.
    offset = (factor - 1) / 2 * (row * pixel[1] + col * pixel[0])
    direction = np.column_stack([row, col, normal])
    volume = Volume(array, (float(pixel[1]) * factor, float(pixel[0]) * factor, step),
                    tuple(float(v) for v in positions[0] + offset), direction)
    ds0 = slices[0].ds
    return CtSeries(volume=volume, kvp=float(used_kvp), kvp_source=kvp_source,
                    manufacturer=_text(ds0, "Manufacturer"), model=_text(ds0, "ManufacturerModelName"),
                    kernel=_text(ds0, "ConvolutionKernel"), slices=len(slices), pixel_mm=float(pixel[0]),
                    slice_mm=step, notes=notes, frame_of_reference_uid=_text(ds0, "FrameOfReferenceUID"),
                    study_uid=_text(ds0, "StudyInstanceUID"))


def _kvp(ds: pydicom.Dataset, path: Path) -> float | None:
    value = ds.get("KVP")
    if value in (None, ""):
        return None
    try:
        out = float(value)
    except (TypeError, ValueError):
        raise SpectacError(f"{path}: KVP (0018,0060) is not a number ({value!r:.40})") from None
    if not np.isfinite(out) or out <= 0:
        raise SpectacError(f"{path}: KVP (0018,0060) {out:g} is not a tube voltage")
    return out


def _plane_hu(s: _Slice, factor: int, rows_b: int, cols_b: int) -> np.ndarray:
    """One slice in HU as [x, y] (transposed from DICOM's [row, col]), block-averaged by ``factor``."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ds = pydicom.dcmread(s.path)
            pixels = np.asarray(ds.pixel_array, dtype=np.float32)
        slope = float(ds.get("RescaleSlope", 1) or 1)
        intercept = float(ds.get("RescaleIntercept", 0) or 0)
    except Exception as exc:  # noqa: BLE001 - any pydicom failure is a damaged file
        raise SpectacError(f"{s.path}: unreadable CT pixel data ({' '.join(str(exc).split())[:120]})") from exc
    if pixels.shape != s.shape:
        raise SpectacError(f"{s.path}: pixel data shape {pixels.shape} is not {s.shape}")
    hu = np.clip(pixels * np.float32(slope) + np.float32(intercept), HU_MIN, HU_MAX)
    if not np.all(np.isfinite(hu)):
        raise SpectacError(f"{s.path}: CT values are not finite")
    hu = hu[: rows_b * factor, : cols_b * factor]
    if factor > 1:
        hu = hu.reshape(rows_b, factor, cols_b, factor).mean(axis=(1, 3))
    return hu.T
