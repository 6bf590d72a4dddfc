"""The DICOM vocabulary spectac uses: storage classes, the attributes kept from a source series,
the context a writer needs (:class:`DicomContext`), value multiplicity checks, and error-message
formatting of DICOM values."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydicom.datadict import dictionary_description, dictionary_VM
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue

from spectac.volume import SpectacError

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
