"""DICOM in and out: reconstructed SPECT volumes as clinical workstations export them.

Read:
- an NM multi-frame file (GE Xeleris / Discovery, Siemens syngo style): geometry from the Detector
  Information Sequence (or the top level), frames stacked along the slice normal;
- a folder of single-frame slices (NM, PT, secondary capture of SPECT, or CT for mu-maps), sorted
  by position along the slice normal, with consistent geometry checked.

Write: a new derived series in the same patient, study and frame of reference (an NM multi-frame
file when the input was one, single-frame secondary-capture slices otherwise), and GE-style NM
series of a simulated study so that import and correction can be exercised without a clinic.

The array conventions are those of :mod:`spectac.volume`: a DICOM frame is indexed [row, col] =
[y, x], so a multi-frame pixel array (frames, rows, cols) becomes [x, y, z] by ``transpose(2, 1, 0)``.
See docs/dicom.md for the tags read and written.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import os
import re
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
from pydicom.datadict import dictionary_description, dictionary_VM
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.multival import MultiValue
from pydicom.sequence import Sequence as DicomSequence
from pydicom.uid import ExplicitVRBigEndian, ExplicitVRLittleEndian, ImplicitVRLittleEndian, generate_uid
from pydicom.valuerep import format_number_as_ds

from spectac.io.atomic import atomic_dir, atomic_path
from spectac.volume import SpectacError, Volume

NM_STORAGE = "1.2.840.10008.5.1.4.1.1.20"
PT_STORAGE = "1.2.840.10008.5.1.4.1.1.128"
CT_STORAGE = "1.2.840.10008.5.1.4.1.1.2"
SC_STORAGE = "1.2.840.10008.5.1.4.1.1.7"
SC_STORAGES = {SC_STORAGE, "1.2.840.10008.5.1.4.1.1.7.2", "1.2.840.10008.5.1.4.1.1.7.3"}
SPECT_MODALITIES = ("NM", "PT")
SLICE_VECTOR = 0x00540080
UID_PREFIX = "1.2.826.0.1.3680043.8.498."  # pydicom's root: valid without registering our own

PATIENT_KEYWORDS = (
    "PatientName",
    "PatientID",
    "IssuerOfPatientID",
    "PatientBirthDate",
    "PatientSex",
    "PatientAge",
    "PatientSize",
    "PatientWeight",
)
STUDY_KEYWORDS = (
    "StudyInstanceUID",
    "StudyDate",
    "StudyTime",
    "ReferringPhysicianName",
    "StudyID",
    "AccessionNumber",
    "StudyDescription",
)
# Attributes of the source series that a derived series keeps: they describe the same acquisition.
SERIES_KEYWORDS = (
    "Modality",
    "SeriesInstanceUID",
    "SeriesNumber",
    "SeriesDescription",
    "ProtocolName",
    "BodyPartExamined",
    "PatientPosition",
    "SeriesDate",
    "SeriesTime",
    "AcquisitionDate",
    "AcquisitionTime",
    "Manufacturer",
    "ManufacturerModelName",
    "EnergyWindowInformationSequence",
    "RadiopharmaceuticalInformationSequence",
    "PatientOrientationCodeSequence",
    "PatientGantryRelationshipCodeSequence",
    "RotationInformationSequence",
    "ActualFrameDuration",
    "PositionReferenceIndicator",
    "Laterality",
)
# Attributes that place the volume or the new series: a value of a multiplicity the DICOM dictionary
# does not allow (two Series Numbers, three Pixel Spacing values) refuses the file on read, since
# neither the geometry nor the series the result belongs to can be trusted.
CHECKED_KEYWORDS = (
    "PatientID",
    "PatientSex",
    "StudyInstanceUID",
    "SeriesInstanceUID",
    "SeriesNumber",
    "InstanceNumber",
    "FrameOfReferenceUID",
    "SOPClassUID",
    "SOPInstanceUID",
    "Modality",
    "Rows",
    "Columns",
    "NumberOfFrames",
    "PixelSpacing",
    "SliceThickness",
    "SpacingBetweenSlices",
    "ImageOrientationPatient",
    "ImagePositionPatient",
    "RescaleSlope",
    "RescaleIntercept",
)
# Body parts that are one of a pair: only for these does the General Series module allow
# Laterality (Type 2C); it is omitted for every other body part (the heart, the chest).
PAIRED_BODY_PARTS = frozenset(
    {"BREAST", "EYE", "KIDNEY", "LUNG", "EAR", "ARM", "LEG", "HAND", "FOOT", "KNEE", "HIP", "SHOULDER",
     "ELBOW", "WRIST", "ANKLE", "CLAVICLE", "FEMUR", "TIBIA", "FIBULA", "HUMERUS", "RADIUS", "ULNA",
     "ADRENAL", "OVARY", "TESTIS", "PAROTID", "SUBMANDIBULAR", "THUMB", "FINGER", "TOE", "HEEL",
     "ORBIT", "TMJ", "SCAPULA", "RIB", "THIGH", "FOREARM", "UPRARM", "LOWLEG"}
)


@dataclass
class DicomContext:
    """What a writer needs from the source series, as plain data (DICOM JSON dicts and strings).

    Attributes:
        source: the file or folder the volume was read from.
        kind: "nm-multiframe" (one NM file of many frames) or "slices" (a folder of single frames).
        modality: NM, PT, CT ... of the source series.
        patient: Patient module attributes (DICOM JSON).
        study: General Study module attributes (DICOM JSON).
        series: attributes of the source series kept by a derived series (DICOM JSON).
        frame_of_reference_uid: the Frame of Reference the volume's geometry lives in.
        source_instances: (SOP Class UID, SOP Instance UID) of every source image, for references.
    """

    source: str
    kind: str
    modality: str
    patient: dict[str, Any] = field(default_factory=dict)
    study: dict[str, Any] = field(default_factory=dict)
    series: dict[str, Any] = field(default_factory=dict)
    frame_of_reference_uid: str = ""
    source_instances: list[tuple[str, str]] = field(default_factory=list)

    def _value(self, module: dict[str, Any], keyword: str) -> str:
        ds = Dataset.from_json(module) if module else Dataset()
        value = ds.get(keyword, "")
        return "" if value is None else str(value)

    @property
    def patient_id(self) -> str:
        return self._value(self.patient, "PatientID")

    @property
    def patient_sex(self) -> str:
        return self._value(self.patient, "PatientSex").upper()

    @property
    def study_uid(self) -> str:
        return self._value(self.study, "StudyInstanceUID")

    @property
    def series_uid(self) -> str:
        return self._value(self.series, "SeriesInstanceUID")

    @property
    def series_description(self) -> str:
        return self._value(self.series, "SeriesDescription")

    def text(self, keyword: str) -> str:
        """A patient, study or series attribute as text ('' when absent)."""
        for module in (self.patient, self.study, self.series):
            value = self._value(module, keyword)
            if value:
                return value
        return ""


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


# ---------------------------------------------------------------------------------------------
# Reading
# ---------------------------------------------------------------------------------------------


def _printable(text: str, limit: int) -> str:
    """One printable line of at most ``limit`` characters (raw bytes shown as escapes)."""
    flat = "".join(c if c.isprintable() else ascii(c)[1:-1] for c in " ".join(str(text).split()))
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."


def _one_line(exc: BaseException) -> str:
    text = _printable(str(exc), 160)
    return f"{exc.__class__.__name__}: {text}" if text else exc.__class__.__name__


def _shown(value: Any, limit: int = 80) -> str:
    """A DICOM value for an error message: its repr, printable and cut to ``limit`` characters."""
    try:
        text = repr(list(value) if isinstance(value, MultiValue) else value)
    except Exception:  # noqa: BLE001 - a value that cannot even be shown
        text = f"<{type(value).__name__}>"
    return _printable(text, limit)


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


def _dcmread(path: Path, header_only: bool = False) -> Dataset:
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


def _floats(value: Any, n: int, name: str, path: Path) -> np.ndarray:
    many = isinstance(value, (list, tuple, Sequence)) and not isinstance(value, (str, bytes))
    try:
        out = np.asarray([float(v) for v in (value if many else [value])])
    except (TypeError, ValueError, OverflowError) as exc:
        raise SpectacError(f"{path}: {name} is not numeric ({_shown(value)})") from exc
    if out.shape != (n,) or not np.all(np.isfinite(out)):
        raise SpectacError(f"{path}: {name} must hold {n} finite numbers, got {_shown(value)}")
    return out


def _vm_allows(spec: str, n: int) -> bool:
    """Whether a value multiplicity of the DICOM dictionary ("1", "2", "1-n", "2-2n", "1-3") allows n."""
    low, _, high = spec.partition("-")
    if not high:
        return n == int(low)
    if high.endswith("n"):
        step = int(high[:-1] or 1)
        return n >= int(low) and n % step == 0
    return int(low) <= n <= int(high)


def _multiplicity_ok(element: Any) -> bool:
    try:
        spec = dictionary_VM(element.tag)
    except KeyError:  # not in the dictionary: nothing to check against
        return True
    return element.VM == 0 or _vm_allows(spec, element.VM)


def _check_tags(ds: Dataset, path: Path) -> None:
    """Refuse identifying and geometry attributes of a multiplicity the dictionary does not allow."""
    for keyword in CHECKED_KEYWORDS:
        if keyword not in ds:
            continue
        element = ds[keyword]
        if not _multiplicity_ok(element):
            name = dictionary_description(element.tag)
            raise SpectacError(
                f"{path}: {name} {element.tag} holds {element.VM} value{'' if element.VM == 1 else 's'}, the standard allows "
                f"{dictionary_VM(element.tag)} ({_shown(element.value)})"
            )


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


def _volume_multiframe(ds: Dataset, path: Path) -> Volume:
    grid = _multiframe_geometry(ds, path)
    frames = grid.shape[2]
    pixels = _pixels(ds, path)
    if pixels.shape != (frames, int(ds.Rows), int(ds.Columns)):
        raise SpectacError(f"{path}: pixel data shape {pixels.shape} does not match {frames} frames")
    slope, intercept = _rescale(ds, path)
    array = pixels.transpose(2, 1, 0) * np.float32(slope) + np.float32(intercept)
    return Volume(array, grid.spacing, grid.origin, grid.direction)


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


def _json(ds: Dataset, keywords: Sequence[str]) -> dict[str, Any]:
    """The attributes kept for the writer, as DICOM JSON. A descriptive attribute whose value
    multiplicity the DICOM dictionary does not allow (two Study Dates, say) is dropped: the new
    series could not hold it validly (the identifying ones were refused by :func:`_check_tags`)."""
    out = Dataset()
    for keyword in keywords:
        if keyword in ds and _multiplicity_ok(ds[keyword]):
            out.add(ds[keyword])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return out.to_json_dict()


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
    datasets = [_dcmread(p) for p in files]
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


def read_dicom_header(path: str | Path, allowed: Sequence[str] = SPECT_MODALITIES) -> DicomHeader:
    """The headers of a series (no pixel data read): its modality, kind, grid and first header.

    The same checks as :func:`read_dicom_volume` up to the pixels, so that a caller can refuse a
    series by what it says (already corrected, a mu-map) or by its grid before reading the pixels.

    Raises:
        SpectacError: one line naming the file and the problem.
    """
    path = Path(path)
    if not path.exists():
        raise SpectacError(f"{path}: no such file or folder")
    try:
        files = _series_files(path) if path.is_dir() else [path]
    except OSError as exc:
        raise SpectacError(f"{path}: unreadable folder ({_one_line(exc)})") from exc
    if not files:
        raise SpectacError(f"{path}: holds no files")
    try:
        headers = [_dcmread(p, header_only=True) for p in files]
        modality, _, geometry = _series_layout(headers, files, path, allowed)
        return DicomHeader(path, files, headers[0], modality, geometry)
    except SpectacError:
        raise
    except Exception as exc:
        raise SpectacError(f"{path}: corrupt or unreadable DICOM ({_one_line(exc)})") from exc


# What descriptions say (Series Description, Image Type values): an attenuation map, an
# attenuation-corrected image, a non-corrected one.
MU_TEXT = re.compile(r"mu.?map|\u00b5.?map|attenuation map|\bmu\b|\bumap\b", re.IGNORECASE)
AC_TEXT = re.compile(r"\bAC\b|IRAC|CTAC|\bAC_|_AC\b|attenuation corrected", re.IGNORECASE)
NC_TEXT = re.compile(r"\bNC\b|IRNC|NOAC|\bNAC\b|\bNC_|_NC\b|non.?corrected|uncorrected", re.IGNORECASE)
MU_UNITS = {"1/CM", "CM-1", "/CM", "1/MM", "MM-1", "/MM", "CM^-1", "MM^-1"}
#: Image Comments of an output corrected with ``force``: an input already corrected.
FORCED_NOTE = "forced: input"
#: Series Description of ``spectac correct --method nc``: a copy of the NC image.
NC_COPY_DESCRIPTION = "spectac NC (no correction)"


def _texts(ds: Dataset, keyword: str) -> list[str]:
    value = ds.get(keyword)
    if value is None:
        return []
    values = value if isinstance(value, (list, tuple, Sequence)) and not isinstance(value, str) else [value]
    return [str(v).strip() for v in values if v is not None]


def correction_refusal(ds: Dataset) -> str | None:
    """Why a series must not be attenuation-corrected (again), from its header; None: it may be.

    Refused: an attenuation map (a CT is refused by modality already): Image Type value 4
    TRANSMISSION or any value naming a mu-map, a description naming a mu-map or attenuation map,
    Units or Rescale Type of 1/cm; an image already corrected: Corrected Image (0028,0051) holding
    ATTN or SCAT; a series spectac wrote as a correction (Manufacturer "spectac" with Image Type
    DERIVED, or a description or Derivation Description starting "spectac", except the "nc" copy
    of an NC image); a description that says attenuation-corrected (IRAC, CTAC, AC) and not NC.
    """
    description = " ".join(_texts(ds, "SeriesDescription"))
    image_type = [t.upper() for t in _texts(ds, "ImageType")]
    units = {t.upper().replace(" ", "") for t in _texts(ds, "Units") + _texts(ds, "RescaleType")}
    if len(image_type) > 3 and image_type[3] == "TRANSMISSION":
        return "is an attenuation map (Image Type TRANSMISSION), not an NC emission study"
    for text in [description, *image_type]:
        if MU_TEXT.search(text):
            return f"is an attenuation map ({text!r} names a mu-map), not an NC emission study"
    if units & MU_UNITS:
        return f"is an attenuation map (values in {sorted(units & MU_UNITS)[0]}), not an NC emission study"
    comments = " ".join(_texts(ds, "ImageComments"))
    derivation = " ".join(_texts(ds, "DerivationDescription"))
    manufacturer = " ".join(_texts(ds, "Manufacturer")).lower()
    by_spectac = (
        (manufacturer == "spectac" and image_type[:1] == ["DERIVED"])
        or derivation.lower().startswith("spectac")
        or description.lower().startswith("spectac")
    )
    if by_spectac and (description != NC_COPY_DESCRIPTION or FORCED_NOTE in comments):
        return f"is a series spectac wrote ({description or derivation!r}): already corrected"
    corrected = {t.upper() for t in _texts(ds, "CorrectedImage")}
    for flag, what in (("ATTN", "attenuation"), ("SCAT", "scatter")):
        if flag in corrected:
            return f"is already {what}-corrected (Corrected Image (0028,0051) lists {flag})"
    if AC_TEXT.search(description) and not NC_TEXT.search(description):
        return f"is already attenuation-corrected (Series Description {description!r})"
    return None


def read_dicom_volume(
    path: str | Path, allowed: Sequence[str] = SPECT_MODALITIES
) -> tuple[Volume, DicomContext]:
    """Read a reconstructed SPECT volume from an NM multi-frame file or a folder of slices.

    Args:
        path: an NM multi-frame file, or a folder holding one series (one multi-frame file or
            single-frame slices; subfolders are searched, hidden files and DICOMDIR skipped).
        allowed: accepted modalities.

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
        files = _series_files(path) if path.is_dir() else [path]
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


# ---------------------------------------------------------------------------------------------
# Writing
# ---------------------------------------------------------------------------------------------


def _ds_number(value: float) -> str:
    return format_number_as_ds(float(value))


def _quantise(array: np.ndarray) -> tuple[np.ndarray, float, float]:
    """uint16 pixels with a slope (and an intercept only when values go negative) per volume.

    The slope is chosen so the maximum maps to 65535, then rounded to the 16 characters a DS
    holds; the pixels are computed with the rounded value, so pixel * slope + intercept is the
    value within half a step.
    """
    low = min(0.0, float(array.min()))
    high = float(array.max())
    intercept = float(_ds_number(low)) if low < 0 else 0.0
    slope = float(_ds_number((high - intercept) / 65535.0)) if high > intercept else 1.0
    while slope > 0 and (high - intercept) / slope > 65535.49:  # the DS rounding went down
        slope = float(_ds_number(slope * (1 + 1e-12) + 1e-300))
    pixels = np.clip(np.rint((array - intercept) / slope), 0, 65535).astype(np.uint16)
    return pixels, slope, intercept


def _axes_for_dicom(
    volume: Volume,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, float, np.ndarray]:
    """(array, row, col, first position, slice step, normal) with frames advancing along the normal.

    DICOM fixes the slice normal as row x col; a volume whose third axis runs the other way is
    written with its frames in reverse order so the spacing stays positive.
    """
    d = volume.direction
    row, col = d[:, 0], d[:, 1]
    normal = np.cross(row, col)
    along = float(d[:, 2] @ normal)
    array, origin = volume.array, np.asarray(volume.origin, dtype=np.float64)
    if abs(float(row @ col)) > 1e-4 or abs(abs(along) - 1) > 1e-4:
        raise SpectacError("the volume's axes are not orthogonal; DICOM cannot hold it without resampling")
    if along < 0:
        origin = volume.point_of(np.array([0.0, 0.0, volume.shape[2] - 1]))
        array = array[:, :, ::-1]
    return np.ascontiguousarray(array), row, col, origin, volume.spacing[2], normal


def _now() -> tuple[str, str]:
    now = _dt.datetime.now()
    return now.strftime("%Y%m%d"), now.strftime("%H%M%S")


def _uid(seed: str | None, *parts: object) -> str:
    if seed is None:
        return generate_uid()
    return generate_uid(prefix=UID_PREFIX, entropy_srcs=[seed, *map(str, parts)])


def _code(value: str, scheme: str, meaning: str) -> Dataset:
    item = Dataset()
    item.CodeValue, item.CodingSchemeDesignator, item.CodeMeaning = value, scheme, meaning
    return item


def _base_dataset(context: DicomContext, sop_class: str, sop_uid: str) -> Dataset:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = sop_uid
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = pydicom.uid.PYDICOM_IMPLEMENTATION_UID
    ds = Dataset()
    ds.file_meta = meta
    ds.SpecificCharacterSet = "ISO_IR 192"
    for module in (context.patient, context.study):
        if module:
            ds.update(Dataset.from_json(module))
    for keyword in ("PatientName", "PatientID", "PatientBirthDate", "PatientSex"):
        if keyword not in ds:
            setattr(ds, keyword, "")
    for keyword in ("StudyDate", "StudyTime", "ReferringPhysicianName", "StudyID", "AccessionNumber"):
        if keyword not in ds:
            setattr(ds, keyword, "")
    if "StudyInstanceUID" not in ds:
        raise SpectacError(f"{context.source}: no Study Instance UID to attach the new series to")
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = sop_uid
    return ds


@dataclass
class SeriesSpec:
    """What distinguishes one written series (plain values; see write_dicom_series)."""

    description: str
    series_uid: str
    series_number: int
    derived: bool
    corrected: list[str]
    uid_seed: str | None
    comments: str = ""  # Image Comments (the note of a forced correction)
    transmission: bool = False  # an attenuation map: NM Image Type value 4 TRANSMISSION


def _series_module(ds: Dataset, context: DicomContext, spec: SeriesSpec, modality: str) -> None:
    source = Dataset.from_json(context.series) if context.series else Dataset()
    date, time = _now()
    ds.Modality = modality
    ds.SeriesInstanceUID = spec.series_uid
    ds.SeriesNumber = spec.series_number
    ds.SeriesDescription = spec.description[:64]
    ds.SeriesDate, ds.SeriesTime = date, time
    ds.ContentDate, ds.ContentTime = date, time
    for keyword in (
        "BodyPartExamined",
        "PatientPosition",
        "AcquisitionDate",
        "AcquisitionTime",
        "ProtocolName",
    ):
        if keyword in source:
            ds[keyword] = source[keyword]
    ds.FrameOfReferenceUID = context.frame_of_reference_uid or _uid(spec.uid_seed, "for", context.study_uid)
    ds.PositionReferenceIndicator = source.get("PositionReferenceIndicator", "")
    ds.Manufacturer = "spectac" if spec.derived else str(source.get("Manufacturer", "spectac") or "spectac")
    ds.ManufacturerModelName = (
        "spectac" if spec.derived else str(source.get("ManufacturerModelName", "") or "")
    )
    ds.SoftwareVersions = _version()
    ds.BurnedInAnnotation = "NO"
    # Laterality (Type 2C, General Series) is required for a paired body part and forbidden for
    # any other: the source's value for a paired one, absent for a named unpaired one (HEART), and
    # empty ("unknown") when the source names no body part, so the condition cannot be decided.
    body_part = str(source.get("BodyPartExamined", "") or "").strip().upper()
    if not body_part or body_part in PAIRED_BODY_PARTS:
        ds.Laterality = str(source.get("Laterality", "") or "") if body_part else ""
    if spec.comments:
        ds.ImageComments = spec.comments[:10240]
    if spec.derived and context.source_instances:
        ds.DerivationDescription = " ".join(p for p in (spec.description, spec.comments) if p)[:1024]
        references = []
        for sop_class, sop_uid in context.source_instances[:1000]:
            item = Dataset()
            item.ReferencedSOPClassUID, item.ReferencedSOPInstanceUID = sop_class, sop_uid
            references.append(item)
        ds.SourceImageSequence = DicomSequence(references)


def _version() -> str:
    try:
        from importlib.metadata import version

        return version("spectac")
    except Exception:  # noqa: BLE001 - running from a source tree without metadata
        return "0"


def _pixel_module(ds: Dataset, pixels: np.ndarray, slope: float, intercept: float) -> None:
    """pixels: (frames, rows, cols) or (rows, cols) uint16."""
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows, ds.Columns = pixels.shape[-2], pixels.shape[-1]
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = 16, 16, 15
    ds.PixelRepresentation = 0
    ds.RescaleSlope = _ds_number(slope)
    ds.RescaleIntercept = _ds_number(intercept)
    ds.LargestImagePixelValue = int(pixels.max())
    ds.SmallestImagePixelValue = int(pixels.min())
    ds.PixelData = np.ascontiguousarray(pixels).tobytes()
    ds["PixelData"].VR = "OW"


def _nm_dataset(volume: Volume, context: DicomContext, spec: SeriesSpec, instance_uid: str) -> Dataset:
    array, row, col, origin, step, _ = _axes_for_dicom(volume)
    pixels, slope, intercept = _quantise(array)
    ds = _base_dataset(context, NM_STORAGE, instance_uid)
    _series_module(ds, context, spec, "NM")
    source = Dataset.from_json(context.series) if context.series else Dataset()
    # The NM IOD enumerates value 2 as PRIMARY only: a derived NM series is DERIVED\PRIMARY.
    ds.ImageType = ["DERIVED" if spec.derived else "ORIGINAL", "PRIMARY", "RECON TOMO",
                    "TRANSMISSION" if spec.transmission else "EMISSION"]
    ds.InstanceNumber = 1
    ds.PatientOrientation = ""
    ds.CountsAccumulated = ""
    ds.CorrectedImage = spec.corrected or ["UNIF", "COR"]
    if spec.derived:
        ds.LossyImageCompression = "00"
    # NM/PET Patient Orientation module: supine, feet first is the usual cardiac set-up.
    for keyword, default in (
        ("PatientOrientationCodeSequence", _code("102538003", "SCT", "recumbent")),
        ("PatientGantryRelationshipCodeSequence", _code("102540008", "SCT", "headfirst")),
    ):
        if keyword in source:
            ds[keyword] = source[keyword]
        else:
            setattr(ds, keyword, DicomSequence([default]))
    if "PatientOrientationCodeSequence" not in source:
        modifier = _code("40199007", "SCT", "supine")
        ds.PatientOrientationCodeSequence[0].PatientOrientationModifierCodeSequence = DicomSequence(
            [modifier]
        )
    # NM Multi-frame: frames are slices.
    ds.NumberOfFrames = array.shape[2]
    ds.FrameIncrementPointer = SLICE_VECTOR
    ds.SliceVector = list(range(1, array.shape[2] + 1))
    ds.NumberOfSlices = array.shape[2]
    ds.NumberOfEnergyWindows = 1
    ds.NumberOfDetectors = 1
    ds.NumberOfRotations = 1
    # NM Isotope: keep the source's windows and radiopharmaceutical, else Tc-99m 140 keV +-10 %.
    if "EnergyWindowInformationSequence" in source:
        ds.EnergyWindowInformationSequence = source.EnergyWindowInformationSequence
    else:
        window = Dataset()
        limits = Dataset()
        limits.EnergyWindowLowerLimit, limits.EnergyWindowUpperLimit = "126", "154"
        window.EnergyWindowRangeSequence = DicomSequence([limits])
        window.EnergyWindowName = "Tc99m"
        ds.EnergyWindowInformationSequence = DicomSequence([window])
    if "RadiopharmaceuticalInformationSequence" in source:
        ds.RadiopharmaceuticalInformationSequence = source.RadiopharmaceuticalInformationSequence
    else:
        drug = Dataset()
        drug.RadionuclideCodeSequence = DicomSequence([_code("44588005", "SCT", "Technetium^99m^")])
        drug.Radiopharmaceutical = "Tc99m Sestamibi"
        ds.RadiopharmaceuticalInformationSequence = DicomSequence([drug])
    # NM Detector: where the slices are.
    detector = Dataset()
    detector.ImagePositionPatient = [_ds_number(v) for v in origin]
    detector.ImageOrientationPatient = [_ds_number(v) for v in (*row, *col)]
    detector.CollimatorType = "PARA"
    detector.FocalDistance = ""
    detector.ZoomFactor = ""
    detector.CenterOfRotationOffset = ""
    detector.XFocusCenter = ""
    detector.YFocusCenter = ""
    ds.DetectorInformationSequence = DicomSequence([detector])
    # NM TOMO Acquisition: the orbit of the source acquisition when known.
    if "RotationInformationSequence" in source:
        ds.RotationInformationSequence = source.RotationInformationSequence
    else:
        rotation = Dataset()
        rotation.StartAngle = "0"
        rotation.AngularStep = "3"
        rotation.RotationDirection = "CW"
        rotation.ScanArc = "180"
        rotation.ActualFrameDuration = 20000
        rotation.NumberOfFramesInRotation = 60
        rotation.TableTraverse = ""
        rotation.TableHeight = ""
        ds.RotationInformationSequence = DicomSequence([rotation])
    ds.TypeOfDetectorMotion = "STEP AND SHOOT"
    # NM Reconstruction.
    ds.SpacingBetweenSlices = _ds_number(step)
    ds.SliceThickness = _ds_number(step)
    ds.PixelSpacing = [_ds_number(volume.spacing[1]), _ds_number(volume.spacing[0])]
    ds.ImagePositionPatient = detector.ImagePositionPatient
    ds.ImageOrientationPatient = detector.ImageOrientationPatient
    _pixel_module(ds, pixels.transpose(2, 1, 0), slope, intercept)
    return ds


def _slice_datasets(volume: Volume, context: DicomContext, spec: SeriesSpec) -> list[Dataset]:
    """Single-frame secondary-capture slices with Image Position/Orientation (Patient)."""
    array, row, col, origin, step, normal = _axes_for_dicom(volume)
    pixels, slope, intercept = _quantise(array)
    modality = context.modality if context.modality in ("NM", "PT", "OT", "CT") else "OT"
    datasets = []
    for k in range(array.shape[2]):
        ds = _base_dataset(context, SC_STORAGE, _uid(spec.uid_seed, spec.series_uid, "slice", k))
        _series_module(ds, context, spec, modality)
        ds.ImageType = ["DERIVED" if spec.derived else "ORIGINAL", "SECONDARY" if spec.derived else "PRIMARY"]
        ds.ConversionType = "WSD"
        ds.RescaleType = "US"
        ds.InstanceNumber = k + 1
        ds.PatientOrientation = ""
        ds.ImagePositionPatient = [_ds_number(v) for v in origin + k * step * normal]
        ds.ImageOrientationPatient = [_ds_number(v) for v in (*row, *col)]
        ds.PixelSpacing = [_ds_number(volume.spacing[1]), _ds_number(volume.spacing[0])]
        ds.SliceThickness = _ds_number(step)
        ds.SpacingBetweenSlices = _ds_number(step)
        ds.SliceLocation = _ds_number(float((origin + k * step * normal) @ normal))
        if spec.derived:
            ds.LossyImageCompression = "00"
        _pixel_module(ds, pixels[:, :, k].T, slope, intercept)
        datasets.append(ds)
    return datasets


def _save(ds: Dataset, path: Path) -> None:
    ds.save_as(path, enforce_file_format=True)


def write_dicom_series(
    volume: Volume,
    context: DicomContext,
    out: str | Path,
    series_description: str | None = None,
    method: str = "",
    model_name: str = "",
    *,
    kind: str | None = None,
    derived: bool = True,
    attenuation_corrected: bool = True,
    series_number: int | None = None,
    uid_seed: str | None = None,
    image_comments: str = "",
    transmission: bool = False,
    replace: bool = False,
) -> Path:
    """Write a volume as a new DICOM series of the context's patient, study and frame of reference.

    Args:
        volume: the volume to write (any orthogonal orientation; values in counts).
        context: from :func:`read_dicom_volume` (or :func:`new_context`).
        out: a ``.dcm`` file (NM multi-frame only) or a folder to create; an existing non-empty
            folder is refused so nothing of the user's is replaced.
        series_description: defaults to "spectac AC <method> <model_name>".
        method, model_name: name the correction in the description.
        kind: "nm-multiframe" or "slices"; defaults to the kind of the source series.
        derived: DERIVED\\SECONDARY image type (ORIGINAL\\PRIMARY for a simulated acquisition).
        attenuation_corrected: list ATTN in Corrected Image (NM).
        series_number: defaults to the source series number + 1000.
        uid_seed: make the new UIDs a deterministic function of this seed (tests, exports).
        image_comments: Image Comments (0020,4000) of every image, also added to the Derivation
            Description (e.g. the note of a forced correction).
        transmission: an attenuation map (NM Image Type value 4 TRANSMISSION instead of EMISSION),
            so that a mu-map series is never taken for an emission study.
        replace: replace an existing ``.dcm`` output file (atomically); a folder is never replaced.

    Returns:
        The written file or folder. It appears whole or not at all; the input is never touched.

    Raises:
        SpectacError: the output is, holds or sits inside the input, or already exists (also when
            it appears while the series is written).
    """
    out = Path(out)
    kind = kind or context.kind
    if kind not in ("nm-multiframe", "slices"):
        raise ValueError(f"unknown DICOM output kind {kind!r}")
    description = series_description or " ".join(p for p in ("spectac AC", method, model_name) if p)
    number = series_number if series_number is not None else _derived_series_number(context)
    series_uid = _uid(uid_seed, "series", context.study_uid, description, number)
    spec = SeriesSpec(
        description,
        series_uid,
        number,
        derived,
        (["UNIF", "COR", "ATTN"] if attenuation_corrected else []),
        uid_seed,
        image_comments,
        transmission,
    )
    source = Path(context.source).resolve() if context.source else None
    resolved = out.resolve()
    if source is not None and (
        resolved == source or source in resolved.parents or resolved in source.parents
    ):
        raise SpectacError(f"{out}: the output must not be, hold or sit inside the input {context.source}")
    if kind == "slices" and out.suffix.lower() == ".dcm":
        raise SpectacError(f"{out}: single-frame slices need an output folder, not a .dcm file")
    if out.suffix.lower() != ".dcm" and out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise SpectacError(f"{out}: already exists; choose a new output folder")
    if out.suffix.lower() == ".dcm" and out.exists() and (out.is_dir() or not replace):
        raise SpectacError(f"{out}: already exists; choose another output")
    if kind == "nm-multiframe":
        ds = _nm_dataset(volume, context, spec, _uid(uid_seed, series_uid, "instance"))
        if out.suffix.lower() == ".dcm":
            with atomic_path(out, suffix=".dcm", replace=replace) as tmp:
                _save(ds, tmp)
        else:
            with atomic_dir(out, replace=False) as tmp:
                _save(ds, tmp / "NM000001.dcm")
        return out
    datasets = _slice_datasets(volume, context, spec)
    with atomic_dir(out, replace=False) as tmp:
        for k, ds in enumerate(datasets):
            _save(ds, tmp / f"IM{k + 1:05d}.dcm")
    return out


def _derived_series_number(context: DicomContext) -> int:
    """The source's Series Number + 1000, or 1000 when there is none (or the sum is no valid IS)."""
    try:
        source = Dataset.from_json(context.series).get("SeriesNumber") if context.series else None
        number = int(source or 0) + 1000
    except (TypeError, ValueError):
        return 1000
    return number if -(2**31) <= number < 2**31 else 1000


def new_context(
    patient_id: str,
    study_uid: str,
    frame_of_reference_uid: str,
    *,
    patient_name: str = "",
    sex: str = "",
    study_description: str = "",
    study_date: str = "",
    weight_kg: float | None = None,
    height_m: float | None = None,
    modality: str = "NM",
    kind: str = "nm-multiframe",
    series: dict[str, Any] | None = None,
) -> DicomContext:
    """A context for a series with no DICOM source (a simulated study)."""
    patient = Dataset()
    patient.PatientName = patient_name or patient_id
    patient.PatientID = patient_id
    patient.PatientBirthDate = ""
    patient.PatientSex = sex if sex in ("M", "F", "O") else ""
    if weight_kg is not None:
        patient.PatientWeight = _ds_number(weight_kg)
    if height_m is not None:
        patient.PatientSize = _ds_number(height_m)
    study = Dataset()
    study.StudyInstanceUID = study_uid
    study.StudyDate = study_date
    study.StudyTime = ""
    study.ReferringPhysicianName = ""
    study.StudyID = "1"
    study.AccessionNumber = ""
    study.StudyDescription = study_description
    return DicomContext(
        source="",
        kind=kind,
        modality=modality,
        patient=patient.to_json_dict(),
        study=study.to_json_dict(),
        series=series or {},
        frame_of_reference_uid=frame_of_reference_uid,
    )


# ---------------------------------------------------------------------------------------------
# A simulated study as a clinic's export (GE-style NM multi-frame)
# ---------------------------------------------------------------------------------------------

SERIES_FOLDERS = {"nc": "nc", "ac": "ac", "mu": "mu"}


def export_study_dicom(
    dataset: Any,
    case_id: str,
    out_dir: str | Path,
    *,
    mu_as: str = "nm",
    seed: str = "spectac-export",
) -> dict[str, Path]:
    """Write one simulated study as a clinic would export it: NC and CT-AC NM multi-frame series.

    The series share the patient, study and frame of reference and differ by series, as on a GE
    Discovery NM/CT (descriptions "STRESS IRNC" / "STRESS IRAC"). The mu-map, when the study has
    one, becomes a vendor-style NM mu-map series (``mu_as="nm"``, values in 1/cm) or a CT series of
    single-frame slices in HU (``mu_as="ct"``, through the inverse of the bilinear HU->mu model).

    Layout: ``OUT/nc/<case_id>/``, ``OUT/ac/<case_id>/``, ``OUT/mu/<case_id>/``, so that
    ``spectac import --nc OUT/nc --ac OUT/ac --mu OUT/mu`` reads it back. A series folder that
    already exists is kept (an interrupted export resumes).

    Args:
        dataset: a :class:`spectac.io.dataset.Dataset`.
        case_id: the study to export.
        out_dir: the export folder.
        mu_as: "nm" or "ct".
        seed: UIDs are a deterministic function of the seed and the case.

    Returns:
        {"nc": folder, "ac": folder, "mu": folder (when written)}.
    """
    from spectac.physics import mu_to_hu

    if mu_as not in ("nm", "ct"):
        raise ValueError(f"mu_as must be 'nm' or 'ct', not {mu_as!r}")
    case = dataset.case(case_id)
    out_dir = Path(out_dir)
    study_uid = _uid(seed, "study", case_id)
    frame_uid = _uid(seed, "frame", case_id)
    state = case.state.upper() if case.state in ("rest", "stress") else ""
    heart = Dataset()
    heart.BodyPartExamined = "HEART"  # myocardial perfusion; also settles the Laterality condition
    context = new_context(
        case.patient_id,
        study_uid,
        frame_uid,
        patient_name=f"SIM^{case.patient_id}",
        sex=case.sex,
        study_description=f"Myocardial perfusion {case.state}".strip(),
        study_date="20240101",
        # A simulated patient has a BMI but no height: 1.70 m carries the BMI through the export.
        weight_kg=None if case.bmi is None else round(case.bmi * 1.70**2, 1),
        height_m=None if case.bmi is None else 1.70,
        series=heart.to_json_dict(),
    )
    written: dict[str, Path] = {}
    series = [("nc", f"{state} IRNC".strip(), 1, False), ("ac", f"{state} IRAC".strip(), 2, True)]
    if dataset.has(case_id, "mu"):
        series.append(("mu", "CTAC mu-map" if mu_as == "nm" else "CT for AC", 3, False))
    for name, description, number, corrected in series:
        target = out_dir / SERIES_FOLDERS[name] / case_id
        written[name] = target
        if target.is_dir() and any(target.iterdir()):
            continue
        volume = dataset.load(case_id, name)
        if name == "mu" and mu_as == "ct":
            ct_context = new_context(
                case.patient_id,
                study_uid,
                frame_uid,
                patient_name=f"SIM^{case.patient_id}",
                sex=case.sex,
                modality="CT",
                kind="slices",
                series=heart.to_json_dict(),
            )
            write_dicom_series(
                volume.with_array(mu_to_hu(volume.array)),
                ct_context,
                target,
                description,
                derived=False,
                attenuation_corrected=False,
                series_number=number,
                uid_seed=f"{seed}/{case_id}/{name}",
            )
            continue
        write_dicom_series(
            volume,
            context,
            target,
            description,
            derived=False,
            attenuation_corrected=corrected,
            series_number=number,
            uid_seed=f"{seed}/{case_id}/{name}",
            transmission=name == "mu",
        )
    return written


def export_dataset_dicom(
    data: str | Path, out_dir: str | Path, split: str | None = None, *, mu_as: str = "nm"
) -> dict[str, Any]:
    """Export every study of a dataset split as DICOM (see :func:`export_study_dicom`)."""
    from spectac.io.dataset import Dataset
    from spectac.progress import track

    dataset = Dataset.open(data)
    cases = dataset.split(split)
    if not cases:
        raise SpectacError(f"{dataset.root}: no study in split {split!r}")
    for case in track(cases, "export DICOM", total=len(cases)):
        export_study_dicom(dataset, case.case_id, out_dir, mu_as=mu_as)
    return {"studies": len(cases), "folder": Path(out_dir)}
