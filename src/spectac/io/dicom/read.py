"""Reading: a reconstructed SPECT volume (and the context of its series) from an NM multi-frame
file or a folder of single-frame slices; headers only for the checks made before the pixels."""

from __future__ import annotations

import contextlib
import os
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRBigEndian, ExplicitVRLittleEndian, ImplicitVRLittleEndian

from spectac.io.dicom.geometry import SeriesGeometry, _frame_count, _multiframe_geometry, _slices_geometry
from spectac.io.dicom.tags import (
    PATIENT_KEYWORDS,
    SC_STORAGES,
    SERIES_KEYWORDS,
    SPECT_MODALITIES,
    STUDY_KEYWORDS,
    DicomContext,
    _check_tags,
    _json,
    _one_line,
    _printable,
)
from spectac.volume import SpectacError, Volume


@dataclass
class DicomHeader:
    """One series as its headers describe it: what ``spectac correct`` checks before reading pixels.

    Attributes:
        source: the file or folder.
        files: the series' files.
        header: the first file's header (no pixel data).
        modality: the accepted modality.
        geometry: the grid.
    """

    source: Path
    files: list[Path]
    header: Dataset
    modality: str
    geometry: SeriesGeometry


@contextlib.contextmanager
def _guard(where: Path | str, what: str = "corrupt or unreadable DICOM") -> Iterator[None]:
    """Turn any exception from pydicom or numpy into one SpectacError line naming the file.

    pydicom converts elements lazily, so a damaged value can raise almost anything at first
    access; the reader runs every such access inside this guard.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    except SpectacError:
        raise
    except Exception as exc:
        raise SpectacError(f"{where}: {what} ({_one_line(exc)})") from exc


def _series_files(folder: Path) -> list[Path]:
    """The files of a folder that may be DICOM (recursively), skipping hidden files and DICOMDIR."""
    files = []
    for root, dirs, names in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(names):
            if name.startswith(".") or name.upper() == "DICOMDIR":
                continue
            files.append(Path(root) / name)
    return files


def dcmread_checked(path: Path, header_only: bool = False) -> Dataset:
    """One DICOM file, every element converted now: any damage is one SpectacError naming the file.

    Legacy files without a preamble are accepted when what parses looks like an image.
    """
    if not path.is_file():
        raise SpectacError(f"{path}: no such file")
    with _guard(path):
        try:
            ds = pydicom.dcmread(path, stop_before_pixels=header_only)
        except pydicom.errors.InvalidDicomError:
            # Legacy files (ACR-NEMA style, some old NM exports) have no preamble: accept them only
            # when what parses looks like an image.
            ds = _dcmread_legacy(path, header_only)
        # Force the lazy conversion of every element now, inside the guard.
        for element in ds.iterall():
            _ = element.value
    return ds


def _dcmread_legacy(path: Path, header_only: bool) -> Dataset:
    try:
        ds = pydicom.dcmread(path, stop_before_pixels=header_only, force=True)
        looks_like_image = "SOPClassUID" in ds and ("Modality" in ds or "Rows" in ds)
    except Exception:  # noqa: BLE001 - anything force-parsing raises means: not DICOM
        looks_like_image = False
    if not looks_like_image:
        raise SpectacError(f"{path}: not a DICOM file (no DICM preamble)")
    if "TransferSyntaxUID" not in getattr(ds, "file_meta", Dataset()):
        # No meta header: the transfer syntax is what the parser found.
        implicit, little = ds.original_encoding
        syntax = (
            ImplicitVRLittleEndian
            if implicit
            else (ExplicitVRLittleEndian if little else ExplicitVRBigEndian)
        )
        ds.file_meta = FileMetaDataset()
        ds.file_meta.TransferSyntaxUID = syntax
    return ds


def _modality_ok(ds: Dataset, path: Path, allowed: Sequence[str]) -> str:
    modality = str(ds.get("Modality", "") or "").strip().upper()
    sop_class = str(ds.get("SOPClassUID", "") or "")
    if modality in allowed:
        return modality
    modality = _printable(modality, 40)
    if not modality and not sop_class:
        raise SpectacError(f"{path}: corrupt or not a DICOM image (no Modality, no SOP Class UID)")
    # A secondary capture of SPECT: the SC IOD with a NM/PT/OT modality.
    if sop_class in SC_STORAGES and modality in ("OT", "NM", "PT", "") and "NM" in allowed:
        return modality or "OT"
    expected = "/".join(allowed) + (" SPECT" if "NM" in allowed else "")
    what = f"a {modality} series" if modality else "a series without Modality"
    raise SpectacError(f"{path}: is {what}, expected {expected}")


def _rescale(ds: Dataset, path: Path) -> tuple[float, float]:
    """(slope, intercept) from Rescale Slope/Intercept, else the first Real World Value Mapping."""
    slope, intercept = ds.get("RescaleSlope"), ds.get("RescaleIntercept")
    if slope is None:
        mappings = ds.get("RealWorldValueMappingSequence")
        if mappings:
            slope = mappings[0].get("RealWorldValueSlope")
            intercept = mappings[0].get("RealWorldValueIntercept")
    slope = 1.0 if slope in (None, "") else float(slope)
    intercept = 0.0 if intercept in (None, "") else float(intercept)
    if not (np.isfinite(slope) and np.isfinite(intercept)):
        raise SpectacError(f"{path}: volume contains NaN or infinite values (Rescale Slope/Intercept)")
    if slope == 0:
        raise SpectacError(f"{path}: Rescale Slope is zero")
    return slope, intercept


def _pixels(ds: Dataset, path: Path) -> np.ndarray:
    if not any(k in ds for k in ("PixelData", "FloatPixelData", "DoubleFloatPixelData")):
        raise SpectacError(f"{path}: holds no pixel data")
    if int(ds.get("SamplesPerPixel", 1) or 1) != 1:
        raise SpectacError(
            f"{path}: is a colour image (Samples per Pixel {ds.SamplesPerPixel}), expected counts"
        )
    rows, columns, frames = int(ds.get("Rows") or 0), int(ds.get("Columns") or 0), _frame_count(ds)
    if rows < 1 or columns < 1 or frames < 1:
        raise SpectacError(f"{path}: {rows} rows, {columns} columns, {frames} frames: no image")
    bits = int(ds.get("BitsAllocated") or 0)
    if bits not in (8, 16, 32, 64):
        raise SpectacError(f"{path}: Bits Allocated {bits} is not supported for counts")
    expected = rows * columns * frames * bits // 8
    if expected > 2**31:
        raise SpectacError(f"{path}: {rows}x{columns}x{frames} pixels is too large for a SPECT volume")
    syntax = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
    compressed = syntax is not None and syntax.is_compressed
    if "PixelData" in ds and not compressed and len(ds.PixelData) < expected:
        raise SpectacError(f"{path}: truncated pixel data ({len(ds.PixelData)} of {expected} bytes)")
    with _guard(path, "unreadable pixel data"):
        array = np.asarray(ds.pixel_array, dtype=np.float32)
    return array


def _volume_multiframe(ds: Dataset, path: Path) -> Volume:
    grid = _multiframe_geometry(ds, path)
    frames = grid.shape[2]
    pixels = _pixels(ds, path)
    if pixels.shape != (frames, int(ds.Rows), int(ds.Columns)):
        raise SpectacError(f"{path}: pixel data shape {pixels.shape} does not match {frames} frames")
    slope, intercept = _rescale(ds, path)
    array = pixels.transpose(2, 1, 0) * np.float32(slope) + np.float32(intercept)
    return Volume(array, grid.spacing, grid.origin, grid.direction)


def _volume_slices(datasets: list[Dataset], paths: list[Path], folder: Path) -> Volume:
    grid = _slices_geometry(datasets, paths, folder)
    shape = (grid.shape[1], grid.shape[0])
    planes = []
    for i in grid.order:
        pixels = _pixels(datasets[i], paths[i])
        if pixels.shape != shape:
            raise SpectacError(f"{paths[i]}: pixel data shape {pixels.shape} is not {shape}")
        slope, intercept = _rescale(datasets[i], paths[i])
        planes.append(pixels.T * np.float32(slope) + np.float32(intercept))
    array = np.stack(planes, axis=-1)
    return Volume(array, grid.spacing, grid.origin, grid.direction)


def _context(datasets: list[Dataset], source: Path, kind: str, modality: str) -> DicomContext:
    first = datasets[0]
    return DicomContext(
        source=str(source),
        kind=kind,
        modality=modality,
        patient=_json(first, PATIENT_KEYWORDS),
        study=_json(first, STUDY_KEYWORDS),
        series=_json(first, SERIES_KEYWORDS),
        frame_of_reference_uid=str(first.get("FrameOfReferenceUID", "") or ""),
        source_instances=[
            (str(ds.get("SOPClassUID", "")), str(ds.get("SOPInstanceUID", "")))
            for ds in datasets
            if ds.get("SOPInstanceUID")
        ],
    )


def _series_layout(
    datasets: list[Dataset], files: Sequence[Path], source: Path, allowed: Sequence[str]
) -> tuple[str, str, SeriesGeometry]:
    """(modality, kind, grid) of one series from its headers; refuses what is not one volume."""
    for ds, p in zip(datasets, files):
        with _guard(p):
            _check_tags(ds, p)
    with _guard(source):
        series = {str(ds.get("SeriesInstanceUID", "") or "") for ds in datasets}
        if len(series) > 1:
            raise SpectacError(
                f"{source}: mixed series: {len(series)} Series Instance UIDs in one folder; give one series"
            )
    modalities = [_modality_ok(ds, p, allowed) for ds, p in zip(datasets, files)]
    with _guard(source):
        frames = [_frame_count(ds) for ds in datasets]
        if len(datasets) == 1:
            if frames[0] < 2:
                raise SpectacError(f"{files[0]}: is a 2D image (a single frame), not a volume")
            return modalities[0], "nm-multiframe", _multiframe_geometry(datasets[0], files[0])
        if max(frames) > 1:
            raise SpectacError(
                f"{source}: holds {len(datasets)} files of which some are multi-frame; give one series"
            )
        return modalities[0], "slices", _slices_geometry(datasets, list(files), source)


def read_series(
    files: Sequence[Path], source: Path, allowed: Sequence[str] = SPECT_MODALITIES
) -> tuple[Volume, DicomContext]:
    """Read one series from its files (one multi-frame file, or single-frame slices).

    Args:
        files: the DICOM files of the series.
        source: the file or folder to name in error messages and in the context.
        allowed: modalities accepted (NM/PT SPECT by default; ("CT",) for a CT of a mu-map).
    """
    if not files:
        raise SpectacError(f"{source}: holds no files")
    datasets = [dcmread_checked(p) for p in files]
    modality, kind, _ = _series_layout(datasets, files, source, allowed)
    with _guard(source):
        if kind == "nm-multiframe":
            volume = _volume_multiframe(datasets[0], files[0])
        else:
            volume = _volume_slices(datasets, list(files), source)
        if not np.all(np.isfinite(volume.array)):
            raise SpectacError(f"{source}: volume contains NaN or infinite values")
        if not np.any(volume.array):
            raise SpectacError(f"{source}: volume is all zero")
        return volume, _context(datasets, source, kind, modality)


def read_dicom_header(path: str | Path, allowed: Sequence[str] = SPECT_MODALITIES,
                      files: Sequence[Path] | None = None) -> DicomHeader:
    """The headers of a series (no pixel data read): its modality, kind, grid and first header.

    The same checks as :func:`read_dicom_volume` up to the pixels, so that a caller can refuse a
    series by what it says (already corrected, a mu-map) or by its grid before reading the pixels.
    ``files``: the series' files when the caller has grouped them (one series of a folder that
    holds several, :func:`scan_series`); ``path`` then only names the series in messages.

    Raises:
        SpectacError: one line naming the file and the problem.
    """
    path = Path(path)
    if not path.exists():
        raise SpectacError(f"{path}: no such file or folder")
    try:
        files = list(files) if files is not None else _series_files(path) if path.is_dir() else [path]
    except OSError as exc:
        raise SpectacError(f"{path}: unreadable folder ({_one_line(exc)})") from exc
    if not files:
        raise SpectacError(f"{path}: holds no files")
    try:
        headers = [dcmread_checked(p, header_only=True) for p in files]
        modality, _, geometry = _series_layout(headers, files, path, allowed)
        return DicomHeader(path, files, headers[0], modality, geometry)
    except SpectacError:
        raise
    except Exception as exc:
        raise SpectacError(f"{path}: corrupt or unreadable DICOM ({_one_line(exc)})") from exc


def read_dicom_volume(
    path: str | Path, allowed: Sequence[str] = SPECT_MODALITIES, files: Sequence[Path] | None = None
) -> tuple[Volume, DicomContext]:
    """Read a reconstructed SPECT volume from an NM multi-frame file or a folder of slices.

    Args:
        path: an NM multi-frame file, or a folder holding one series (one multi-frame file or
            single-frame slices; subfolders are searched, hidden files and DICOMDIR skipped).
        allowed: accepted modalities.
        files: the series' files when the caller has grouped them (see :func:`read_dicom_header`).

    Returns:
        (volume, context): the volume (float32 [x, y, z], LPS geometry, values after rescale) and
        what a writer needs to make a derived series of it.

    Raises:
        SpectacError: one line naming the file and the problem, for any unusable input.
    """
    path = Path(path)
    if not path.exists():
        raise SpectacError(f"{path}: no such file or folder")
    try:
        files = list(files) if files is not None else _series_files(path) if path.is_dir() else [path]
        return read_series(files, path, allowed)
    except SpectacError:
        raise
    except Exception as exc:
        raise SpectacError(f"{path}: corrupt or unreadable DICOM ({_one_line(exc)})") from exc


def is_dicom_path(path: str | Path) -> bool:
    """Whether a path is to be read as DICOM: a folder, or any file not named .nii/.nii.gz."""
    path = Path(path)
    if path.is_dir():
        return True
    return not path.name.lower().endswith((".nii", ".nii.gz"))


def scan_series(folder: str | Path, files: list[Path] | None = None) -> dict[str, list[Path]]:
    """Group the DICOM files under a folder by Series Instance UID (headers only).

    Non-DICOM files are skipped here (a clinic's export folder may hold reports); a damaged file of
    a series is reported when that series is read. ``files``: the files of the folder to look at,
    when the caller has listed them itself (``spectac import`` reads regular files only).
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise SpectacError(f"{folder}: no such folder")
    groups: dict[str, list[Path]] = {}
    for path in _series_files(folder) if files is None else files:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                ds = pydicom.dcmread(path, stop_before_pixels=True, specific_tags=["SeriesInstanceUID"])
            uid = str(ds.get("SeriesInstanceUID", "") or "")
        except Exception:  # noqa: BLE001, S112 - not DICOM: not part of any series
            continue
        if uid:
            groups.setdefault(uid, []).append(path)
    return groups
