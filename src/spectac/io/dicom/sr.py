"""A study report's scores as a DICOM Comprehensive SR instance (SOP Class
1.2.840.10008.5.1.4.1.1.88.33), so a PACS, a workstation or a script reads the numbers without
parsing the PDF page.

The instance is a new series (Modality SR) in the source's study, its Patient and General Study
modules copied from the source series as for the Encapsulated PDF (:mod:`.document`). Its content
tree (PS3.3 C.17.3, SR Document Content; no template) is one CONTAINER and, under it::

    CONTAINER  (REPORT, 99SPECTAC, "spectac perfusion scores")
      TEXT     NOTDIAG   "Not for diagnostic use"
      TEXT     STATE / STATESRC, SEX / SEXSRC       state and sex of the normal limits, and why
      CONTAINER NC "Non-attenuation-corrected image" | AC "Attenuation-corrected image"
        NUM    TPD  "Total perfusion deficit"       UCUM "%"
        NUM    SSS  "Summed stress score" | SRS "Summed rest score"   UCUM "{score}"
        TEXT   NORMLIM "Normal limits group"        e.g. "ac/F/stress (n=69)"
        TEXT   MISSING "Scores missing"             (only when the image has no scores: why)
      TEXT     QCFLAG "Quality flag"                one per OOD/forced flag, or "none"
      TEXT     QCNOTE "Quality note"                one per note (patient position, LV fit)
      TEXT     METHOD, MODEL, SWVER, WSHA256, LIMITS  method, model, spectac version,
                                                    weights SHA-256, limits line ("none": empty)

No standard DICOM template holds TPD and summed scores of an AC/NC pair, so every concept is a
local code of the private coding scheme ``99SPECTAC`` (PS3.16 8.2: a designator starting "99"
is private), declared in the Coding Scheme Identification Sequence; the units are UCUM (PS3.16
CID 82). :func:`read_scores_sr` reads the tree back into the dictionary that was written.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pydicom
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence as DicomSequence
from pydicom.valuerep import DSfloat

from spectac.io.dicom.document import document_dataset
from spectac.io.dicom.read import _guard
from spectac.io.dicom.tags import DicomContext
from spectac.io.dicom.write import _code, save_single_instance
from spectac.volume import SpectacError

COMPREHENSIVE_SR_STORAGE = "1.2.840.10008.5.1.4.1.1.88.33"
SCHEME = "99SPECTAC"
SR_TITLE = "spectac perfusion scores"
#: Series numbers of a scores SR: the source's + this (the PDF report has + 2000).
SR_SERIES_OFFSET = 3000
#: The file name of the instance in an SR folder.
SR_FILE = "SR000001.dcm"
IMAGES = ("NC", "AC")

#: The local codes: code value -> code meaning (docs/serve.md lists them).
CODES = {
    "REPORT": SR_TITLE,
    "NOTDIAG": "Not for diagnostic use",
    "STATE": "Stress state of the normal limits",
    "STATESRC": "Source of the stress state",
    "SEX": "Sex of the normal limits",
    "SEXSRC": "Source of the sex",
    "NC": "Non-attenuation-corrected image",
    "AC": "Attenuation-corrected image",
    "TPD": "Total perfusion deficit",
    "SSS": "Summed stress score",
    "SRS": "Summed rest score",
    "NORMLIM": "Normal limits group",
    "MISSING": "Scores missing",
    "QCFLAG": "Quality flag",
    "QCNOTE": "Quality note",
    "METHOD": "Correction method",
    "MODEL": "Model name",
    "SWVER": "spectac version",
    "WSHA256": "Model weights SHA-256",
    "LIMITS": "Normal limits",
}
UNITS = {"TPD": ("%", "percent"), "SSS": ("{score}", "score"), "SRS": ("{score}", "score")}
#: Top-level TEXT items after the images: code -> key of the scores dictionary.
_FACTS = {"METHOD": "method", "MODEL": "model", "SWVER": "spectac_version", "WSHA256": "weights_sha256",
          "LIMITS": "normal_limits"}
_HEAD = {"STATE": "state", "STATESRC": "state_source", "SEX": "sex", "SEXSRC": "sex_source"}


def _concept(code: str) -> DicomSequence:
    return DicomSequence([_code(code, SCHEME, CODES[code])])


def _text(code: str, value: str) -> Dataset:
    item = Dataset()
    item.RelationshipType, item.ValueType = "CONTAINS", "TEXT"
    item.ConceptNameCodeSequence = _concept(code)
    item.TextValue = value if value else "none"
    return item


def _num(code: str, value: float) -> Dataset:
    item = Dataset()
    item.RelationshipType, item.ValueType = "CONTAINS", "NUM"
    item.ConceptNameCodeSequence = _concept(code)
    measured = Dataset()
    measured.NumericValue = DSfloat(value, auto_format=True)
    measured.FloatingPointValue = float(value)  # the exact double (NumericValue is a 16-character DS)
    unit, meaning = UNITS[code]
    units = _code(unit, "UCUM", meaning)
    units.CodingSchemeVersion = "1.4"
    measured.MeasurementUnitsCodeSequence = DicomSequence([units])
    item.MeasuredValueSequence = DicomSequence([measured])
    return item


def _container(code: str, children: list[Dataset], relationship: str | None = "CONTAINS") -> Dataset:
    item = Dataset()
    if relationship:
        item.RelationshipType = relationship
    item.ValueType = "CONTAINER"
    item.ConceptNameCodeSequence = _concept(code)
    item.ContinuityOfContent = "SEPARATE"
    item.ContentSequence = DicomSequence(children)
    return item


def _image_items(image: dict[str, Any], summed_name: str) -> list[Dataset]:
    items = []
    if image.get("tpd") is not None:
        items.append(_num("TPD", float(image["tpd"])))
    if image.get("summed_score") is not None:
        items.append(_num(summed_name, int(image["summed_score"])))
    if image.get("limits"):
        items.append(_text("NORMLIM", image["limits"]))
    if image.get("missing"):
        items.append(_text("MISSING", image["missing"]))
    return items


def _content(scores: dict[str, Any]) -> list[Dataset]:
    summed = scores.get("summed_score_name", "SSS")
    if summed not in ("SSS", "SRS"):
        raise SpectacError(f"the summed score is SSS or SRS, not {summed!r}")
    items = [_text("NOTDIAG", CODES["NOTDIAG"])]
    items += [_text(code, str(scores.get(key) or "")) for code, key in _HEAD.items()]
    for label in IMAGES:
        if label in scores.get("images", {}):
            items.append(_container(label, _image_items(scores["images"][label], summed)))
    items += [_text("QCFLAG", flag) for flag in scores.get("flags") or ["none"]]
    items += [_text("QCNOTE", note) for note in scores.get("notes") or []]
    items += [_text(code, str(scores.get(key) or "")) for code, key in _FACTS.items()]
    return items


def _evidence(context: DicomContext) -> DicomSequence:
    """The source instances as a Hierarchical SOP Instance Reference (Pertinent Other Evidence)."""
    series_uid = str(Dataset.from_json(context.series).get("SeriesInstanceUID", "")) if context.series else ""
    if not (series_uid and context.source_instances):
        return DicomSequence([])
    refs = []
    for sop_class, sop_uid in context.source_instances[:1000]:
        ref = Dataset()
        ref.ReferencedSOPClassUID, ref.ReferencedSOPInstanceUID = sop_class, sop_uid
        refs.append(ref)
    series = Dataset()
    series.SeriesInstanceUID = series_uid
    series.ReferencedSOPSequence = DicomSequence(refs)
    study = Dataset()
    study.StudyInstanceUID = context.study_uid
    study.ReferencedSeriesSequence = DicomSequence([series])
    return DicomSequence([study])


def scores_sr_dataset(scores: dict[str, Any], context: DicomContext, *, series_number: int | None = None,
                      uid_seed: str | None = None) -> Dataset:
    """The Comprehensive SR dataset of ``scores`` (the dictionary of
    :func:`spectac.evaluation.study_report.report_scores`) in the context's patient and study.

    Raises:
        SpectacError: the context has no Study Instance UID, or the summed score is not SSS/SRS.
    """
    # SR Document Series, General Equipment, the document's instance number and content date
    ds = document_dataset(context, COMPREHENSIVE_SR_STORAGE, kind="sr", modality="SR", description=SR_TITLE,
                          series_offset=SR_SERIES_OFFSET, series_number=series_number, uid_seed=uid_seed)
    ds.ReferencedPerformedProcedureStepSequence = DicomSequence([])
    # SR Document General
    ds.CompletionFlag = "COMPLETE"
    ds.VerificationFlag = "UNVERIFIED"
    ds.PerformedProcedureCodeSequence = DicomSequence([])
    evidence = _evidence(context)
    if len(evidence):
        ds.PertinentOtherEvidenceSequence = evidence
    # SR Document Content: the root CONTAINER
    root = _container("REPORT", _content(scores), relationship=None)
    for keyword in ("ValueType", "ConceptNameCodeSequence", "ContinuityOfContent", "ContentSequence"):
        setattr(ds, keyword, getattr(root, keyword))
    # SOP Common: the private coding scheme declared
    scheme = Dataset()
    scheme.CodingSchemeDesignator = SCHEME
    scheme.CodingSchemeName = "spectac local codes"
    scheme.CodingSchemeResponsibleOrganization = "spectac"
    ds.CodingSchemeIdentificationSequence = DicomSequence([scheme])
    return ds


def write_scores_sr(scores: dict[str, Any], context: DicomContext, out: str | Path, *,
                    series_number: int | None = None, uid_seed: str | None = None, replace: bool = False) -> Path:
    """Write ``scores`` as one Comprehensive SR instance: ``out`` is a ``.dcm`` file or a new folder
    (which then holds :data:`SR_FILE`). It appears whole or not at all.

    Raises:
        SpectacError: see :func:`scores_sr_dataset`; ``out`` exists (a file without ``replace``,
            or a non-empty folder).
    """
    out = Path(out)
    ds = scores_sr_dataset(scores, context, series_number=series_number, uid_seed=uid_seed)
    return save_single_instance(ds, out, SR_FILE, replace=replace)


def _code_of(item: Dataset) -> str:
    seq = item.get("ConceptNameCodeSequence") or []
    if not seq or seq[0].get("CodingSchemeDesignator") != SCHEME:
        return ""
    return str(seq[0].get("CodeValue", ""))


def _value(item: Dataset) -> Any:
    if item.ValueType == "TEXT":
        return str(item.get("TextValue", ""))
    measured = item.get("MeasuredValueSequence") or []
    if not measured:
        return None
    if "FloatingPointValue" in measured[0]:
        return float(measured[0].FloatingPointValue)
    return float(measured[0].NumericValue)


def scores_of_dataset(ds: Dataset) -> dict[str, Any]:
    """The scores dictionary held by a spectac scores SR dataset (the inverse of
    :func:`scores_sr_dataset`); items of other coding schemes are ignored."""
    scores: dict[str, Any] = {"images": {}, "flags": [], "notes": []}
    for item in ds.get("ContentSequence") or []:
        code = _code_of(item)
        if code in IMAGES and item.ValueType == "CONTAINER":
            image: dict[str, Any] = {"tpd": None, "summed_score": None, "limits": "", "missing": ""}
            for child in item.get("ContentSequence") or []:
                sub = _code_of(child)
                if sub == "TPD":
                    image["tpd"] = _value(child)
                elif sub in ("SSS", "SRS"):
                    value = _value(child)
                    image["summed_score"] = None if value is None else round(value)
                    scores["summed_score_name"] = sub
                elif sub == "NORMLIM":
                    image["limits"] = _value(child)
                elif sub == "MISSING":
                    image["missing"] = _value(child)
            scores["images"][code] = image
        elif code == "QCFLAG":
            scores["flags"].append(_value(item))
        elif code == "QCNOTE":
            scores["notes"].append(_value(item))
        elif code in _HEAD:
            scores[_HEAD[code]] = _value(item)
        elif code in _FACTS:
            value = _value(item)
            scores[_FACTS[code]] = "" if value == "none" else value  # an empty value is written "none"
        elif code == "NOTDIAG":
            scores["not_for_diagnostic_use"] = _value(item)
    if scores["flags"] == ["none"]:
        scores["flags"] = []
    scores.setdefault("summed_score_name", "SSS" if scores.get("state") != "rest" else "SRS")
    return scores


def read_scores_sr(path: str | Path) -> tuple[dict[str, Any], Dataset]:
    """The scores dictionary (as written, plus ``not_for_diagnostic_use``) and the header of a
    spectac scores SR instance.

    Raises:
        SpectacError: unreadable, or no Comprehensive SR with spectac's root container.
    """
    path = Path(path)
    with _guard(path):
        ds = pydicom.dcmread(path)
        if str(ds.get("SOPClassUID", "")) != COMPREHENSIVE_SR_STORAGE or _code_of(ds) != "REPORT":
            raise SpectacError(f"{path}: not a spectac scores SR instance")
        return scores_of_dataset(ds), ds
