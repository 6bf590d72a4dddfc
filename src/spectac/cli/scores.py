"""Commands that score: evaluate a run, build normal limits, check LV detection, quantify one
patient."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from spectac.cli.common import (
    info,
    user_errors,
)
from spectac.errors import SpectacError
from spectac.io.paths import ensure_writable_parent


@user_errors
def evaluate(
    data: Annotated[Path, typer.Option("--data", "-d", help="Dataset folder (the CT-AC references).")],
    run: Annotated[Path, typer.Option("--run", "-r", help="Run folder holding predictions/<method>/.")],
    split: Annotated[str, typer.Option(help="Split to evaluate: train, val, test or all.")] = "test",
) -> None:
    """Score every method of a run against CT-AC: metrics.csv, Table 1, Figure 3, Wilcoxon tests, report.html."""
    from spectac.evaluation.harness import evaluate_run
    from spectac.evaluation.stats import table1_markdown

    if run.is_dir():
        ensure_writable_parent(run, folder=True)
    summary = evaluate_run(data, run, None if split == "all" else split)
    info(f"{len(summary['methods'])} methods x {summary['studies']} studies scored; report: {summary['outputs']['report']}")
    info(table1_markdown(summary["table1"]).rstrip())


@user_errors
def normals(
    data: Path = typer.Option(..., "--data", help="Dataset folder whose normal patients give the limits."),
    out: Path = typer.Option(..., "--out", "-o", help="Normal database to write (.npz)."),
    split: str = typer.Option("train", help="Split whose normal patients (defect_type none) are used."),
) -> None:
    """Build the NC and AC normal databases (polar-map mean and SD per sex and state)."""
    from spectac.io.dataset import Dataset
    from spectac.quant.normals import build_normal_database

    if out.suffix != ".npz":  # refuse before the slow part
        raise SpectacError(f"{out}: a normal database is an .npz file")
    ensure_writable_parent(out)
    db = build_normal_database(Dataset.open(data), split)
    path = db.save(out)
    failed = len(db.meta["detection_failures"])
    info(f"wrote {path}: {db.meta['patients']} normal patients, {db.meta['studies']} studies, LV not found in {failed}")


@user_errors
def detect_lv_report(
    data: Path = typer.Option(..., "--data", help="Simulated dataset (studies with lv.json)."),
    out: Path | None = typer.Option(None, "--out", "-o", help="CSV of the per-study errors."),
    split: str = typer.Option("all", help="Split to check."),
) -> None:
    """Check automatic LV detection against the truth (lv.json): axis and centre errors."""
    from spectac.quant.validation import detection_errors, summarise_detection_errors

    if out is not None:
        ensure_writable_parent(out)
    table = detection_errors(data, split, out)
    info(summarise_detection_errors(table))


@user_errors
def quantify_command(
    study: Annotated[Path, typer.Argument(help="Stress study: DICOM (file or folder) or NIfTI.")],
    rest: Annotated[Path | None, typer.Option("--rest", help="Rest study of the same patient (DICOM or NIfTI).")] = None,
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Folder for the polar maps (PNG) and scores.json.")] = None,
    family: Annotated[str, typer.Option(help="Normal limits: ac (any attenuation-corrected image) or nc.")] = "ac",
    sex: Annotated[str | None, typer.Option(help="F or M; default: PatientSex of the DICOM, else pooled limits.")] = None,
    normals: Annotated[Path | None, typer.Option(help="Normal database (.npz); default: the shipped one.")] = None,
) -> None:
    """Score one patient like QPS/4DM: TPD, SSS (and SRS, SDS with --rest), with polar maps."""
    from spectac.io.dicom import is_dicom_path, read_dicom_volume
    from spectac.io.nifti import read_nifti
    from spectac.quant.normals import FAMILIES, NormalDatabase
    from spectac.quant.study import patient_position, position_note, quantify_patient
    from spectac.volume import Volume

    if family not in FAMILIES:
        raise SpectacError(f"--family must be one of {', '.join(FAMILIES)}, got {family!r}")

    positions: dict[str, str] = {}

    def read(path: Path, state: str) -> tuple[Volume, str]:
        if is_dicom_path(path):
            volume, context = read_dicom_volume(path)
            positions[state] = position_note(patient_position(context.series))
            return volume, context.patient_sex
        positions[state] = "not DICOM, PatientPosition unknown: assumed supine (HFS), as the normal limits are"
        return read_nifti(path), ""

    stress_volume, stress_sex = read(study, "stress")
    rest_volume, rest_sex = read(rest, "rest") if rest is not None else (None, "")
    if sex is not None:
        if sex.upper() not in ("F", "M"):
            raise SpectacError(f"--sex must be F or M, got {sex!r}")
        chosen, why = sex.upper(), "given with --sex"
    elif stress_sex in ("F", "M") or rest_sex in ("F", "M"):
        chosen = stress_sex if stress_sex in ("F", "M") else rest_sex
        why = "PatientSex of the DICOM"
    else:
        chosen, why = "all", "PatientSex missing or not F/M: the pooled (both sexes) limits were used"
    patient = quantify_patient(stress_volume, rest_volume, NormalDatabase.load(normals), family, chosen)
    summary = patient.summary()
    info(f"limits: {family}, sex {chosen} ({why})")
    for state, q in (("stress", patient.stress), ("rest", patient.rest)):
        if q is not None:
            g = q.geometry
            info(f"{state}: position {positions[state]}; LV fit confidence {g.confidence} (wall coverage "
                 f"{g.wall_coverage:.2f}, hot surroundings {g.hot_surroundings:.2f}, R {g.radius_mm:.0f} mm, "
                 f"L {g.length_mm:.0f} mm)")
    info("  ".join(f"{k} {v:.1f}" if isinstance(v, float) and not float(v).is_integer() else f"{k} {v:g}"
                   for k, v in summary.items()))
    if out is not None:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        from spectac.evaluation.report import figure_png
        from spectac.io.scores_folder import write_scores_folder
        from spectac.quant.polar import plot_polar_map

        pngs: dict[str, bytes] = {}
        for state, q in (("stress", patient.stress), ("rest", patient.rest)):
            if q is None:
                continue
            fig, axes = plt.subplots(1, 2, figsize=(6.4, 3.2))
            image = plot_polar_map(axes[0], q.scores.values, f"{state}: uptake (normalised)", vmin=0, vmax=1.2)
            fig.colorbar(image, ax=axes[0], shrink=0.7)
            image = plot_polar_map(axes[1], q.scores.severity, f"severity (TPD {q.scores.tpd:.1f}%)", vmin=0,
                                   vmax=4, cmap="hot_r")
            fig.colorbar(image, ax=axes[1], shrink=0.7)
            pngs[state] = figure_png(fig, dpi=120)  # closes the figure
        write_scores_folder(out, pngs, {"family": family, "sex": chosen, "sex_source": why, "position": positions,
                                        "lv_confidence": {st: q.geometry.confidence for st, q in
                                                          (("stress", patient.stress), ("rest", patient.rest)) if q},
                                        **summary})
        info(f"wrote {out}")
