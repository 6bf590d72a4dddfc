"""A simulated study as a clinic's export (GE-style NM multi-frame series)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydicom.dataset import Dataset

from spectac.io.dicom.write import _uid, new_context, write_dicom_series
from spectac.volume import SpectacError

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
