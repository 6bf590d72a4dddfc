"""Simulated studies written as a camera writes them: raw projections in vendor-like NM TOMO DICOM.

``spectac export-projections DATASET -o OUT`` writes, for each study of a simulated dataset, the
acquisition :func:`spectac.reconstruction.study.study_acquisition` rebuilds from its
projections.npz (every energy window; the study's own views, orbit radii, collimator and pixel
size) as one file ``OUT/<case_id>.dcm`` through
:func:`spectac.io.projections.write_projections_dicom`: GE's layout (one detector) or Siemens'
(two heads, the views split in halves), optionally gated. The file then travels the camera's
route (``spectac reconstruct``, ``spectac qc``, ``spectac correct --route indirect``), which
must give the dataset's own NC image (tests/test_export_projections.py).

Every file is written atomically; a file already in OUT is kept (a rerun resumes). Everything the
user can get wrong (not a dataset, an unknown case or split, OUT a file, a study without
projections) is refused before the first file is written.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from spectac.errors import SpectacError
from spectac.io.dataset import Dataset, check_case_id
from spectac.io.projections import write_projections_dicom
from spectac.io.window_projections import FILE_NAME as PROJECTIONS_FILE
from spectac.progress import track
from spectac.reconstruction.study import study_acquisition, study_protocol

#: Vendor layouts: (Manufacturer written, number of detectors).
VENDORS = {"ge": ("GE MEDICAL SYSTEMS", 1), "siemens": ("SIEMENS", 2)}


@dataclass(frozen=True)
class ExportPlan:
    """What an export will do: the dataset, the studies to write and those already written."""

    dataset: Dataset
    out: Path
    todo: list[str]
    done: list[str]


def plan_export(dataset_root: str | Path, out: str | Path, cases: Iterable[str] = (), split: str | None = None,
                vendor: str = "ge", gates: int = 1) -> ExportPlan:
    """Check the inputs and list the studies to write (``cases``, else those of ``split``, else all).

    Raises:
        SpectacError: not a simulated dataset, an unknown case or split, both cases and a split,
            an unknown vendor, fewer than 1 gate, OUT an existing file or inside the dataset, a
            study without projections.npz or mu.nii.gz, views the vendor's heads cannot share.
    """
    if vendor not in VENDORS:
        raise SpectacError(f"--vendor {vendor!r}: choose {' or '.join(VENDORS)}")
    if gates < 1:
        raise SpectacError(f"--gates must be at least 1, got {gates}")
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise SpectacError(f"{out}: is a file; -o takes a folder (one <case_id>.dcm per study)")
    dataset = Dataset.open(dataset_root)
    if not isinstance(dataset.meta.get("protocol"), dict):
        raise SpectacError(f"{dataset.root}: dataset.json records no acquisition protocol (not a simulated dataset)")
    cases = list(cases)
    if cases and split not in (None, "all"):
        raise SpectacError("give --case or --split, not both")
    ids = [dataset.case(check_case_id(c, "--case")).case_id for c in cases] if cases else [
        c.case_id for c in dataset.split(split)]
    if not ids:
        raise SpectacError(f"{dataset.root}: no studies in split {split!r}")
    ids = list(dict.fromkeys(ids))
    try:
        if out.resolve().is_relative_to(dataset.root.resolve()):
            raise SpectacError(f"{out}: inside the dataset {dataset.root}; choose a folder outside it")
    except OSError:
        pass
    detectors = VENDORS[vendor][1]
    for case_id in ids:
        for name in (PROJECTIONS_FILE, "mu.nii.gz"):
            if not (dataset.study_dir(case_id) / name).is_file():
                raise SpectacError(f"{dataset.study_dir(case_id)}: no {name} (an imported or incomplete study); "
                                   "only simulated studies keep their projections")
        views = study_protocol(dataset, case_id).n_views
        if views % detectors:
            raise SpectacError(f"{case_id}: {views} views cannot be split over the {detectors} heads of --vendor "
                               f"{vendor}")
    done = [c for c in ids if (out / f"{c}.dcm").is_file()]
    return ExportPlan(dataset, out, [c for c in ids if c not in done], done)


def export_study(dataset: Dataset, case_id: str, out: Path, vendor: str = "ge", gates: int = 1) -> Path:
    """Write one study's projections as ``out/<case_id>.dcm`` (atomically, never over a file).

    Raises:
        SpectacError: counts a uint16 pixel cannot hold, views that cannot be split over the
            vendor's detectors, projections that do not fit the study's protocol.
    """
    manufacturer, detectors = VENDORS[vendor]
    acquisition = study_acquisition(dataset, case_id)
    patient = dataset.case(case_id).patient_id or case_id
    try:
        return write_projections_dicom(acquisition, out / f"{case_id}.dcm", manufacturer=manufacturer,
                                       detectors=detectors, gates=gates, patient_id=patient, replace=False)
    except SpectacError as exc:
        raise SpectacError(f"{case_id}: {exc}") from None


def export_projections(plan: ExportPlan, vendor: str = "ge", gates: int = 1) -> list[Path]:
    """Write the studies of ``plan.todo``, with a progress bar (:func:`spectac.progress.track`)."""
    return [export_study(plan.dataset, case_id, plan.out, vendor, gates)
            for case_id in track(plan.todo, "export-projections")]
