"""The files of a batch ``spectac correct``: the series of an archive folder, the name each one's
output gets, and the summary table.

An archive export (PACS, a vendor workstation) is a tree of folders holding the DICOM files of
several studies and series, often beside reports and index files, and sometimes NIfTI volumes a
research pipeline wrote. The series are found as ``spectac import`` finds them: the regular files
under the folder (:func:`spectac.io.paths.regular_files`; links, FIFOs and devices are left out
and reported) grouped by Series Instance UID (:func:`spectac.io.dicom.scan_series`; files that
are no DICOM are left out); every ``.nii``/``.nii.gz`` file is a study of its own.

Output names are made from the series alone, so that a rerun finds the outputs of an earlier one:
a DICOM series gives the folder named after its Series Instance UID, a NIfTI file the ``.nii.gz``
named after its path inside the archive folder (separators as ``__``).
"""

from __future__ import annotations

import csv
import io
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from spectac.io.atomic import write_text_atomic
from spectac.io.dicom import scan_series
from spectac.io.paths import regular_files

#: The columns of ``summary.csv``, one row per series.
SUMMARY_COLUMNS = ("input", "output", "status", "reason", "method", "disagreement")
#: The name of the summary table in the output folder.
SUMMARY_NAME = "summary.csv"

_NIFTI = (".nii.gz", ".nii")


def _is_nifti(path: Path) -> bool:
    return path.name.lower().endswith(_NIFTI)


def _safe(text: str) -> str:
    """``text`` as a file name: letters, digits, '.', '_' and '-' only, never hidden or empty."""
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-.") or "series"


@dataclass(frozen=True)
class BatchItem:
    """One series of the archive folder.

    Attributes:
        kind: "dicom" or "nifti".
        source: what names it: the NIfTI file, the DICOM file of a one-file series, or the folder
            that holds all the files of the series (the deepest one).
        output_name: the name of its output inside the output folder.
        files: the DICOM files of the series (None for NIfTI).
    """

    kind: str
    source: Path
    output_name: str
    files: list[Path] | None = None


@dataclass
class BatchListing:
    """What :func:`list_batch` found: the series, and the entries left out with why."""

    items: list[BatchItem] = field(default_factory=list)
    ignored: list[dict[str, str]] = field(default_factory=list)

    @property
    def dicom_series(self) -> int:
        return sum(item.kind == "dicom" for item in self.items)

    @property
    def is_batch(self) -> bool:
        """More than one DICOM series, or any NIfTI file: no single study (a folder of one DICOM
        series, however deeply nested, stays one study, as ``spectac correct`` always took it)."""
        return self.dicom_series > 1 or any(item.kind == "nifti" for item in self.items)


def list_batch(folder: str | Path) -> BatchListing:
    """The series under ``folder`` (recursively), in a fixed order (sorted by their source).

    Files that are neither DICOM nor NIfTI are in ``ignored`` with the reason, as are the entries
    :func:`~spectac.io.paths.regular_files` does not read.
    """
    folder = Path(folder)
    files, left_out = regular_files(folder)
    listing = BatchListing(ignored=list(left_out))
    nifti = [f for f in files if _is_nifti(f)]
    dicom_candidates = [f for f in files if not _is_nifti(f)]
    groups = scan_series(folder, dicom_candidates)
    grouped = {f for members in groups.values() for f in members}
    listing.ignored += [{"path": str(f), "reason": "neither DICOM nor NIfTI"}
                        for f in dicom_candidates if f not in grouped]
    for uid, members in groups.items():
        members = sorted(members)
        source = members[0] if len(members) == 1 else Path(os.path.commonpath(members))
        listing.items.append(BatchItem("dicom", source, _safe(uid), members))
    for path in nifti:
        relative = path.relative_to(folder).as_posix()
        stem = relative[: -len(".nii.gz")] if relative.lower().endswith(".nii.gz") else relative[: -len(".nii")]
        listing.items.append(BatchItem("nifti", path, _safe(stem.replace("/", "__")) + ".nii.gz"))
    listing.items.sort(key=lambda item: (str(item.source), item.output_name))
    return listing


def write_batch_summary(path: str | Path, rows: list[dict[str, str]]) -> Path:
    """The summary table (:data:`SUMMARY_COLUMNS`), written atomically; returns its path."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=SUMMARY_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows({key: row.get(key, "") for key in SUMMARY_COLUMNS} for row in rows)
    write_text_atomic(path, buffer.getvalue())
    return Path(path)


def read_batch_summary(path: str | Path) -> list[dict[str, str]]:
    """The rows of a summary table written by :func:`write_batch_summary`."""
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))
