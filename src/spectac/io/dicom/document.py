"""A PDF as a DICOM Encapsulated PDF instance (SOP Class 1.2.840.10008.5.1.4.1.1.104.1), so a
study report travels with the study into the PACS.

The instance is a new series (Modality DOC) in the source's study: the Patient and General Study
modules are copied from the source series, as for a derived image series (:mod:`.write`); the
Encapsulated Document module holds the PDF bytes unchanged (padded to an even length with one NUL,
which ``EncapsulatedDocumentLength`` tells a reader to drop). See DICOM PS3.3 A.45.1 (Encapsulated
PDF IOD) and C.24.2 (Encapsulated Document module). The series header every document spectac
writes into a study shares (this PDF, the scores SR of :mod:`.sr`) is :func:`document_dataset`.
"""

from __future__ import annotations

from pathlib import Path

import pydicom
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence as DicomSequence

from spectac.io.dicom.read import DicomHeader, _context, _guard
from spectac.io.dicom.tags import DicomContext
from spectac.io.dicom.write import (
    _base_dataset,
    _derived_series_number,
    _now,
    _uid,
    _version,
    save_single_instance,
    source_references,
)
from spectac.volume import SpectacError

ENCAPSULATED_PDF_STORAGE = "1.2.840.10008.5.1.4.1.1.104.1"
PDF_MIME = "application/pdf"
REPORT_TITLE = "spectac attenuation correction report"
#: Series numbers of a report: the source's + this (its corrected series has + 1000).
REPORT_SERIES_OFFSET = 2000
#: The file name of the instance in a report folder.
DOCUMENT_FILE = "DOC000001.dcm"


def context_of_header(header: DicomHeader) -> DicomContext:
    """The writer's context (patient, study, source references) of a series read by
    :func:`spectac.io.dicom.read_dicom_header`: a report can be written without the pixels."""
    return _context([header.header], header.source, "nm-multiframe", header.modality)


def document_dataset(context: DicomContext, sop_class: str, *, kind: str, modality: str, description: str,
                     series_offset: int, series_number: int | None = None,
                     uid_seed: str | None = None) -> Dataset:
    """The header a document instance spectac writes into the context's study (a report PDF, a
    scores SR) shares: a new series of ``modality`` numbered from the source's (Series Number +
    ``series_offset``, unless ``series_number`` is given), its UIDs from ``kind``, spectac as the
    equipment, instance 1, stamped now (series and content date and time).

    Raises:
        SpectacError: the context has no Study Instance UID.
    """
    number = series_number if series_number is not None else _derived_series_number(context) - 1000 + series_offset
    series_uid = _uid(uid_seed, f"{kind}-series", context.study_uid, number)
    ds = _base_dataset(context, sop_class, _uid(uid_seed, series_uid, kind))
    date, time = _now()
    ds.Modality = modality
    ds.SeriesInstanceUID = series_uid
    ds.SeriesNumber = number
    ds.SeriesDescription = description[:64]
    ds.SeriesDate, ds.SeriesTime = date, time
    ds.Manufacturer = "spectac"  # General Equipment
    ds.ManufacturerModelName = "spectac"
    ds.SoftwareVersions = _version()
    ds.InstanceNumber = 1
    ds.ContentDate, ds.ContentTime = date, time
    return ds


def encapsulated_pdf_dataset(pdf: bytes, context: DicomContext, *, title: str = REPORT_TITLE,
                             series_number: int | None = None, uid_seed: str | None = None) -> Dataset:
    """The Encapsulated PDF dataset of ``pdf`` in the context's patient and study.

    Raises:
        SpectacError: ``pdf`` is no PDF, or the context has no Study Instance UID.
    """
    if not pdf.startswith(b"%PDF"):
        raise SpectacError("the report is not a PDF (it does not start with %PDF)")
    # Encapsulated Document Series, General Equipment, the document's instance number and content date
    ds = document_dataset(context, ENCAPSULATED_PDF_STORAGE, kind="report", modality="DOC", description=title,
                          series_offset=REPORT_SERIES_OFFSET, series_number=series_number, uid_seed=uid_seed)
    ds.ConversionType = "WSD"  # SC Equipment
    # Encapsulated Document
    ds.AcquisitionDateTime = ds.ContentDate + ds.ContentTime
    ds.BurnedInAnnotation = "YES"  # the page names the patient
    ds.DocumentTitle = title[:64]
    ds.ConceptNameCodeSequence = DicomSequence([])
    ds.VerificationFlag = "UNVERIFIED"
    if context.source_instances:
        ds.SourceInstanceSequence = source_references(context)
    ds.MIMETypeOfEncapsulatedDocument = PDF_MIME
    ds.EncapsulatedDocumentLength = len(pdf)
    ds.EncapsulatedDocument = pdf + (b"\0" if len(pdf) % 2 else b"")
    return ds


def write_encapsulated_pdf(pdf: bytes, context: DicomContext, out: str | Path, *, title: str = REPORT_TITLE,
                           series_number: int | None = None, uid_seed: str | None = None,
                           replace: bool = False) -> Path:
    """Write ``pdf`` as one Encapsulated PDF instance: ``out`` is a ``.dcm`` file or a new folder
    (which then holds :data:`DOCUMENT_FILE`). It appears whole or not at all.

    Raises:
        SpectacError: see :func:`encapsulated_pdf_dataset`; ``out`` exists (a file without
            ``replace``, or a non-empty folder).
    """
    out = Path(out)
    ds = encapsulated_pdf_dataset(pdf, context, title=title, series_number=series_number, uid_seed=uid_seed)
    return save_single_instance(ds, out, DOCUMENT_FILE, replace=replace)


def read_encapsulated_pdf(path: str | Path) -> tuple[bytes, Dataset]:
    """The PDF bytes (padding dropped) and the header of an Encapsulated PDF instance.

    Raises:
        SpectacError: unreadable, or no Encapsulated PDF.
    """
    path = Path(path)
    with _guard(path):
        ds = pydicom.dcmread(path)
        if str(ds.get("SOPClassUID", "")) != ENCAPSULATED_PDF_STORAGE or "EncapsulatedDocument" not in ds:
            raise SpectacError(f"{path}: not an Encapsulated PDF instance")
        data = bytes(ds.EncapsulatedDocument)
        length = ds.get("EncapsulatedDocumentLength")
        if length is not None and 0 <= int(length) <= len(data):
            data = data[: int(length)]
        elif data.endswith(b"\0"):
            data = data[:-1]
    return data, ds
