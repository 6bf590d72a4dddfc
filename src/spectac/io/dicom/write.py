"""Writing: a volume as a new DICOM series in the patient, study and frame of reference of its
source (an NM multi-frame file, or single-frame secondary-capture slices)."""

from __future__ import annotations

import datetime as _dt
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence as DicomSequence
from pydicom.uid import ExplicitVRLittleEndian, generate_uid
from pydicom.valuerep import format_number_as_ds

from spectac.io.atomic import atomic_dir, atomic_path
from spectac.io.dicom.tags import (
    NM_STORAGE,
    PAIRED_BODY_PARTS,
    SC_STORAGE,
    SLICE_VECTOR,
    UID_PREFIX,
    DicomContext,
)
from spectac.volume import SpectacError, Volume


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
        ds.SourceImageSequence = source_references(context)


def source_references(context: DicomContext) -> DicomSequence:
    """Items (Referenced SOP Class and Instance UID) of the source instances, at most 1000: the
    Source Image Sequence of a derived series, the Source Instance Sequence of a report."""
    references = []
    for sop_class, sop_uid in context.source_instances[:1000]:
        item = Dataset()
        item.ReferencedSOPClassUID, item.ReferencedSOPInstanceUID = sop_class, sop_uid
        references.append(item)
    return DicomSequence(references)


def save_single_instance(ds: Dataset, out: Path, file_name: str, *, replace: bool = False) -> Path:
    """Save one instance (an Encapsulated PDF, a scores SR) whole or not at all: ``out`` is a
    ``.dcm`` file, or a new folder that then holds ``file_name``; returns ``out``.

    Raises:
        SpectacError: ``out`` exists (a file without ``replace``, or a non-empty folder).
    """
    if out.suffix.lower() == ".dcm":
        if out.exists() and (out.is_dir() or not replace):
            raise SpectacError(f"{out}: already exists; choose another output")
        with atomic_path(out, suffix=".dcm", replace=replace) as tmp:
            ds.save_as(tmp, enforce_file_format=True)
        return out
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise SpectacError(f"{out}: already exists; choose a new output folder")
    with atomic_dir(out, replace=False) as tmp:
        ds.save_as(tmp / file_name, enforce_file_format=True)
    return out


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


def _one_item(**attributes: Any) -> DicomSequence:
    """A sequence of one item holding ``attributes`` (keyword=value)."""
    item = Dataset()
    for keyword, value in attributes.items():
        setattr(item, keyword, value)
    return DicomSequence([item])


def _keep_or(ds: Dataset, source: Dataset, keyword: str, default: Callable[[], DicomSequence]) -> None:
    """Copy the source's sequence ``keyword`` when it has one, else write ``default()``."""
    setattr(ds, keyword, source[keyword].value if keyword in source else default())


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
    _keep_or(ds, source, "EnergyWindowInformationSequence", lambda: _one_item(
        EnergyWindowRangeSequence=_one_item(EnergyWindowLowerLimit="126", EnergyWindowUpperLimit="154"),
        EnergyWindowName="Tc99m"))
    _keep_or(ds, source, "RadiopharmaceuticalInformationSequence", lambda: _one_item(
        RadionuclideCodeSequence=DicomSequence([_code("44588005", "SCT", "Technetium^99m^")]),
        Radiopharmaceutical="Tc99m Sestamibi"))
    # NM Detector: where the slices are.
    ds.DetectorInformationSequence = _one_item(
        ImagePositionPatient=[_ds_number(v) for v in origin],
        ImageOrientationPatient=[_ds_number(v) for v in (*row, *col)],
        CollimatorType="PARA", FocalDistance="", ZoomFactor="", CenterOfRotationOffset="", XFocusCenter="",
        YFocusCenter="")
    # NM TOMO Acquisition: the orbit of the source acquisition when known.
    _keep_or(ds, source, "RotationInformationSequence", lambda: _one_item(
        StartAngle="0", AngularStep="3", RotationDirection="CW", ScanArc="180", ActualFrameDuration=20000,
        NumberOfFramesInRotation=60, TableTraverse="", TableHeight=""))
    ds.TypeOfDetectorMotion = "STEP AND SHOOT"
    # NM Reconstruction.
    ds.SpacingBetweenSlices = _ds_number(step)
    ds.SliceThickness = _ds_number(step)
    ds.PixelSpacing = [_ds_number(volume.spacing[1]), _ds_number(volume.spacing[0])]
    detector = ds.DetectorInformationSequence[0]
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
    scatter_corrected: bool = False,
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
        scatter_corrected: list SCAT in Corrected Image (NM).
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
        (["UNIF", "COR"] + (["ATTN"] if attenuation_corrected else []) + (["SCAT"] if scatter_corrected else [])
         if attenuation_corrected or scatter_corrected else []),
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
