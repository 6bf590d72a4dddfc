"""A reconstruction of raw projections written as NM DICOM: a new RECON TOMO series in the patient,
study and frame of reference of the projection file.

The writer is :func:`spectac.io.dicom.write_dicom_series` (the one every spectac series goes
through); this module only builds its :class:`~spectac.io.dicom.DicomContext` from the projection
file's header: the Patient and General Study modules as they are, the series attributes a derived
series keeps, the Frame of Reference UID, and a reference to the projection instance (Source Image
Sequence). The energy window kept is the one reconstructed; the orbit (Rotation Information
Sequence) is the acquisition's.
"""

from __future__ import annotations

import csv
import io
import warnings
from pathlib import Path

import pydicom
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence as DicomSequence

from spectac.errors import SpectacError
from spectac.io.atomic import write_text_atomic
from spectac.io.dicom.tags import PATIENT_KEYWORDS, SERIES_KEYWORDS, STUDY_KEYWORDS, DicomContext, _json
from spectac.io.dicom.write import write_dicom_series
from spectac.volume import Volume

#: Attributes of an acquisition's rotation that describe the orbit of the reconstructed series.
_ROTATION_KEYWORDS = ("StartAngle", "AngularStep", "RotationDirection", "ScanArc", "ActualFrameDuration",
                      "NumberOfFramesInRotation", "RadialPosition", "TableTraverse", "TableHeight")


def projection_context(path: str | Path, window: int) -> DicomContext:
    """The writer's context of a reconstruction of ``path`` (0-based energy ``window`` reconstructed)."""
    path = Path(path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = pydicom.dcmread(str(path), stop_before_pixels=True)
    if not str(ds.get("StudyInstanceUID", "") or ""):
        raise SpectacError(f"{path}: no Study Instance UID to attach the reconstruction to; write NIfTI instead")
    series = Dataset.from_json(_json(ds, SERIES_KEYWORDS))
    windows = ds.get("EnergyWindowInformationSequence") or []
    if window < len(windows):
        series.EnergyWindowInformationSequence = DicomSequence([windows[window]])
    position = str(series.get("PatientPosition", "") or "").upper()
    if "PatientPosition" in series:  # NM: the orientation codes replace it (they may not coexist)
        del series.PatientPosition
    if position and "PatientOrientationCodeSequence" not in series:
        series.update(_orientation_codes(position))
    rotations = ds.get("RotationInformationSequence") or []
    if rotations:  # one rotation item with the orbit's attributes only (no vendor extras)
        item = Dataset()
        for keyword in _ROTATION_KEYWORDS:
            if keyword in rotations[0]:
                item[keyword] = rotations[0][keyword]
        series.RotationInformationSequence = DicomSequence([item])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        series_json = series.to_json_dict()
    return DicomContext(
        source=str(path),
        kind="nm-multiframe",
        modality="NM",
        patient=_json(ds, PATIENT_KEYWORDS),
        study=_json(ds, STUDY_KEYWORDS),
        series=series_json,
        frame_of_reference_uid=str(ds.get("FrameOfReferenceUID", "") or ""),
        source_instances=[(str(ds.get("SOPClassUID", "")), str(ds.get("SOPInstanceUID", "")))]
        if ds.get("SOPInstanceUID") else [],
    )


def _code(value: str, meaning: str) -> Dataset:
    item = Dataset()
    item.CodeValue, item.CodingSchemeDesignator, item.CodeMeaning = value, "SCT", meaning
    return item


def _orientation_codes(position: str) -> Dataset:
    """The NM/PET Patient Orientation module's codes of a Patient Position (HFS, FFP, ...; DICOM PS3.16
    CID 19, 20, 21)."""
    out = Dataset()
    recumbent = _code("102538003", "recumbent")
    lying = {"S": ("40199007", "supine"), "P": ("1240000", "prone")}.get(position[2:3])
    if lying:
        recumbent.PatientOrientationModifierCodeSequence = DicomSequence([_code(*lying)])
    out.PatientOrientationCodeSequence = DicomSequence([recumbent])
    gantry = {"HF": ("102540008", "headfirst"), "FF": ("102541007", "feet-first")}.get(position[:2])
    if gantry:
        out.PatientGantryRelationshipCodeSequence = DicomSequence([_code(*gantry)])
    return out


def write_reconstruction_dicom(volume: Volume, projections: str | Path, window: int, out: str | Path,
                               description: str, corrected: bool, scatter_corrected: bool = False,
                               image_comments: str = "") -> Path:
    """Write a reconstruction of ``projections`` as a new NM RECON TOMO series (``out``: a new
    ``.dcm`` file or a new folder); refused when ``out`` exists. ``image_comments``: Image Comments
    of every image (the indirect route's consistency verdict)."""
    context = projection_context(projections, window)
    return write_dicom_series(volume, context, out, description, derived=True, attenuation_corrected=corrected,
                              scatter_corrected=scatter_corrected, series_number=None,
                              image_comments=image_comments)


def write_consistency_csv(rows: list[dict], path: str | Path) -> Path:
    """The consistency index per view and in total (``Consistency.rows()``) as CSV, atomically."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: f"{v:.6g}" if isinstance(v, float) else v for k, v in row.items()})
    write_text_atomic(path, buffer.getvalue())
    return Path(path)
