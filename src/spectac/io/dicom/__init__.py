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

The package, one module per step: :mod:`.tags` (the vocabulary and the context a writer needs),
:mod:`.geometry` (the grid from headers), :mod:`.read` (volumes and headers), :mod:`.refusals`
(what must not be corrected), :mod:`.write` (derived series), :mod:`.document` (a report as an
Encapsulated PDF), :mod:`.sr` (a report's scores as a Comprehensive SR), :mod:`.state` (the stress state a series
names), :mod:`.export` (a simulated study as a clinic's export). Every public name is
importable from here.
"""

from spectac.io.dicom.document import (
    DOCUMENT_FILE,
    ENCAPSULATED_PDF_STORAGE,
    context_of_header,
    read_encapsulated_pdf,
    write_encapsulated_pdf,
)
from spectac.io.dicom.export import SERIES_FOLDERS, export_dataset_dicom, export_study_dicom
from spectac.io.dicom.geometry import SeriesGeometry
from spectac.io.dicom.read import (
    DicomHeader,
    dcmread_checked,
    is_dicom_path,
    read_dicom_header,
    read_dicom_volume,
    read_series,
    scan_series,
)
from spectac.io.dicom.refusals import (
    AC_TEXT,
    FORCED_NOTE,
    MU_TEXT,
    MU_UNITS,
    NC_COPY_DESCRIPTION,
    NC_TEXT,
    correction_refusal,
)
from spectac.io.dicom.sr import (
    COMPREHENSIVE_SR_STORAGE,
    SR_FILE,
    read_scores_sr,
    scores_of_dataset,
    write_scores_sr,
)
from spectac.io.dicom.state import series_state
from spectac.io.dicom.tags import (
    CT_STORAGE,
    NM_STORAGE,
    PT_STORAGE,
    SC_STORAGE,
    SC_STORAGES,
    SPECT_MODALITIES,
    UID_PREFIX,
    DicomContext,
)
from spectac.io.dicom.write import SeriesSpec, new_context, write_dicom_series

__all__ = [
    "AC_TEXT",
    "COMPREHENSIVE_SR_STORAGE",
    "CT_STORAGE",
    "DOCUMENT_FILE",
    "ENCAPSULATED_PDF_STORAGE",
    "FORCED_NOTE",
    "MU_TEXT",
    "MU_UNITS",
    "NC_COPY_DESCRIPTION",
    "NC_TEXT",
    "NM_STORAGE",
    "PT_STORAGE",
    "SC_STORAGE",
    "SC_STORAGES",
    "SERIES_FOLDERS",
    "SPECT_MODALITIES",
    "SR_FILE",
    "UID_PREFIX",
    "DicomContext",
    "DicomHeader",
    "SeriesGeometry",
    "SeriesSpec",
    "context_of_header",
    "correction_refusal",
    "dcmread_checked",
    "export_dataset_dicom",
    "export_study_dicom",
    "is_dicom_path",
    "new_context",
    "read_dicom_header",
    "read_dicom_volume",
    "read_encapsulated_pdf",
    "read_scores_sr",
    "read_series",
    "scan_series",
    "scores_of_dataset",
    "series_state",
    "write_dicom_series",
    "write_encapsulated_pdf",
    "write_scores_sr",
]
