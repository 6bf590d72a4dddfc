"""Clinical evaluation: SSS and TPD of every method against CT-AC, and defect detection.

Registered as the "clinical" evaluator of ``spectac evaluate`` (see
:mod:`spectac.evaluation.harness`). For every study of the split it quantifies NC (method
``nc``, NC normal limits), CT-AC (method ``ac``, from the dataset) and every predicted method
(AC normal limits) with automatic LV detection, and writes (atomically):

- ``RUN/clinical.csv``: a row per study and method: TPD, territory TPDs, ``sss`` (the summed score
  of the study's 17 segments: SSS for a stress study, SRS for a rest study), the 17 segment
  scores ``seg1`` .. ``seg17``, ``count_deficit``, ``norm_factor``, the phantom's nominal defect
  (``has_defect``, ``defect_territories``) and the truth a reader could see
  (``truth_abnormal``, ``truth_territories``, ``truth_segments``, ``truth_max_loss``,
  ``truth_source``; :mod:`spectac.evaluation.truth`);
- ``RUN/clinical_patients.csv``: a row per patient and method: SSS, SRS, SDS, segmental SDS,
  stress/rest TPD, ischaemic TPD and count deficits (:func:`patient_table`);
- ``RUN/clinical_agreement.csv``: per method against CT-AC (:mod:`spectac.evaluation.agreement`);
- ``RUN/detection.csv``, ``RUN/detection_differences.csv``, ``RUN/detection_thresholds.csv``:
  AUCs with CIs, paired AUC differences against CT-AC and NC, sensitivity/specificity at fixed
  TPD thresholds (:mod:`spectac.evaluation.detection`);
- ``RUN/nc_vs_ac.csv``, ``RUN/nc_vs_ac_summary.csv``: defects seen in NC, in each AC image, in
  both (:mod:`spectac.evaluation.concordance`);
- report sections (:mod:`spectac.evaluation.clinical_report`).

The normal database used is, in order: RUN/normals.npz, DATA/normals.npz, one built from the
normal patients of the dataset's training split when every sex (F, M) and state (rest, stress)
has at least ``MIN_STUDIES`` normal studies in both families (saved as RUN/normals.npz, so a run
can be re-scored with the same limits), else the database shipped with spectac. The report says
which was used and why (:func:`choose_normals`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from spectac.evaluation.agreement import agreement_table
from spectac.evaluation.clinical_report import clinical_sections
from spectac.evaluation.columns import NC, REFERENCE, SEGMENT_COLUMNS, TERRITORY_COLUMNS
from spectac.evaluation.concordance import nc_ac_summary, nc_ac_table
from spectac.evaluation.context import EvaluationContext
from spectac.evaluation.detection import detection_tables, threshold_table
from spectac.evaluation.report import ReportSection, paragraph
from spectac.evaluation.truth import study_truth
from spectac.io.dataset import Case, Dataset
from spectac.io.nifti import read_nifti
from spectac.io.run import RunFolder, write_csv
from spectac.progress import track
from spectac.quant.normals import FAMILIES, MIN_STUDIES, NormalDatabase, build_normal_database, method_family
from spectac.quant.scores import ischemic_tpd
from spectac.quant.study import StudyQuantification, quantify, transient_ischemic_dilation
from spectac.segments import TERRITORIES
from spectac.volume import SpectacError, Volume

# ---- quantification of a run -------------------------------------------------------------------


def _small_groups(db: NormalDatabase) -> list[str]:
    """The exact (family, sex, state) groups of a database with fewer than MIN_STUDIES studies."""
    small = []
    for family in FAMILIES:
        for sex in ("F", "M"):
            for state in ("rest", "stress"):
                group = db.groups.get((family, sex, state))
                n = 0 if group is None else group.n
                if n < MIN_STUDIES:
                    small.append(f"{family} {sex} {state}: {n}")
    return small


def choose_normals(dataset: Dataset, run: Path, save_to: Path | None = None) -> tuple[NormalDatabase, str]:
    """The normal database for a run and a sentence saying which and why (see the module docstring).

    Args:
        dataset: the dataset evaluated.
        run: the run folder (RUN/normals.npz is used when present).
        save_to: where to save limits built from the dataset (None: not saved). Nothing is written
            when existing or shipped limits are used.
    """
    for path in (RunFolder(run).normals_npz, dataset.root / "normals.npz"):
        if path.is_file():
            return NormalDatabase.load(path), f"normal limits from {path}"
    shipped = "the normal limits shipped with spectac (default simulated cohort)"
    normals = [c for c in dataset.split("train") if c.defect_type == "none"]
    studies = {(sex, state): sum(c.sex == sex and c.state == state for c in normals)
               for sex in ("F", "M") for state in ("rest", "stress")}
    short = [f"{sex} {state}: {n}" for (sex, state), n in studies.items() if n < MIN_STUDIES]
    if short:
        return NormalDatabase.load(None), (
            f"{shipped}, because limits are built from a dataset only when its training split has at least "
            f"{MIN_STUDIES} normal studies of each sex and state, and this one has {len(normals)} "
            f"({'; '.join(short)})"
        )
    db = build_normal_database(dataset, "train")
    small = _small_groups(db)
    if small:
        return NormalDatabase.load(None), (
            f"{shipped}, because the limits built from the training split's {len(normals)} normal studies have "
            f"fewer than {MIN_STUDIES} studies in some groups after LV detection and quality check "
            f"({'; '.join(small)})"
        )
    meta = db.meta
    note = (
        f"normal limits built from the {meta['patients']} normal patients ({meta['studies']} studies) of the "
        f"training split ({len(meta.get('rejected', []))} image(s) rejected by the quality check)"
    )
    if save_to is not None:
        db.save(save_to)
        note += f", saved as {save_to}"
    return db, note


def study_image(dataset: Dataset, run: Path, method: str, case_id: str) -> Volume:
    """The image `spectac evaluate` scores for a study and method: the dataset's own NC or CT-AC
    image, else the run's prediction."""
    if method in ("nc", REFERENCE):
        return dataset.load(case_id, method)
    return read_nifti(RunFolder(run).prediction_path(method, case_id))


def _nominal_territories(case: Case, lv: dict[str, Any] | None) -> set[str]:
    """The territories the phantom's defects were placed in (lv.json when present, else cases.csv)."""
    if lv is not None and "defects" in lv:
        return {d["territory"] for d in lv["defects"] if d.get("severity", 0) > 0}
    return set(case.defect_territory.split("+")) if case.has_defect and case.defect_territory else set()


def quantify_run(
    dataset: Dataset, run: Path, cases: list[Case], methods: list[str], normals: NormalDatabase
) -> tuple[pd.DataFrame, dict[tuple[str, str], StudyQuantification]]:
    """Quantify every (study, method); a study whose LV a method's image does not let the detector
    find is kept as a row without scores (``lv_found`` False), never silently dropped."""
    rows, quants = [], {}
    for case in track(cases, "clinical", total=len(cases)):
        lv = dataset.lv(case.case_id)
        territories = _nominal_territories(case, lv)
        truth = study_truth(case, lv)
        for method in methods:
            volume = study_image(dataset, run, method, case.case_id)
            limits = normals.limits(method_family(method), case.sex, case.state)
            row: dict[str, Any] = {
                "case_id": case.case_id,
                "patient_id": case.patient_id,
                "state": case.state,
                "sex": case.sex,
                "method": method,
                "family": method_family(method),
                "lv_found": True,
                "has_defect": case.has_defect,
                "defect_territories": ";".join(sorted(territories)),
                "truth_abnormal": truth.abnormal,
                "truth_territories": ";".join(sorted(truth.territories)),
                "truth_segments": ";".join(str(s) for s in truth.segments),
                "truth_max_loss": truth.max_loss,
                "truth_source": truth.source,
            }
            try:
                q = quantify(volume, limits)
            except SpectacError:
                # kept as a row without scores: the report lists it, no summary silently drops it
                row["lv_found"] = False
                rows.append(row)
                continue
            quants[(case.case_id, method)] = q
            row.update(
                {
                    "tpd": q.scores.tpd,
                    "sss": q.scores.summed_score,
                    "count_deficit": q.scores.count_deficit,
                    "norm_factor": q.scores.factor,
                    # "high", or "low: why": a low-confidence fit may score another structure
                    "lv_confidence": q.geometry.confidence,
                    **{f"tpd_{t}": q.scores.territory_tpd(t) for t in TERRITORIES},
                    **{c: int(v) for c, v in zip(SEGMENT_COLUMNS, q.scores.segment_scores)},
                }
            )
            rows.append(row)
    columns = [
        "case_id", "patient_id", "state", "sex", "method", "family", "lv_found", "tpd", "sss",
        *TERRITORY_COLUMNS, *SEGMENT_COLUMNS, "has_defect", "defect_territories", "truth_abnormal",
        "truth_territories", "truth_segments", "truth_max_loss", "truth_source", "count_deficit", "norm_factor",
        "lv_confidence",
    ]  # fmt: skip
    return pd.DataFrame(rows).reindex(columns=columns), quants


def patient_table(
    clinical: pd.DataFrame, quants: dict[tuple[str, str], StudyQuantification] | None = None
) -> pd.DataFrame:
    """Per patient and method (both studies needed): SSS, SRS, SDS = SSS - SRS, segmental SDS,
    stress/rest TPD, ischaemic TPD and TID (need ``quants``, else NaN) and stress/rest count deficits."""
    rows = []
    for (patient, method), part in clinical.groupby(["patient_id", "method"], sort=False):
        stress, rest = part[part["state"] == "stress"], part[part["state"] == "rest"]
        row: dict[str, Any] = {"patient_id": patient, "method": method}

        def first(frame: pd.DataFrame, column: str) -> float:
            return float(frame[column].iloc[0]) if len(frame) and column in frame else np.nan

        # a study whose LV was not found has no score (NaN), and neither has its SDS
        row["sss"], row["srs"] = first(stress, "sss"), first(rest, "sss")
        row["sds"] = row["sss"] - row["srs"]
        if len(stress) and len(rest):
            diff = stress[list(SEGMENT_COLUMNS)].to_numpy(float)[0] - rest[list(SEGMENT_COLUMNS)].to_numpy(float)[0]
            row["sds_seg"] = float(np.maximum(diff, 0).sum()) if np.isfinite(diff).all() else np.nan
        else:
            row["sds_seg"] = np.nan
        row["stress_tpd"], row["rest_tpd"] = first(stress, "tpd"), first(rest, "tpd")
        row["ischemic_tpd"] = row["tid"] = np.nan
        if quants is not None and len(stress) and len(rest):
            q_stress = quants.get((str(stress["case_id"].iloc[0]), method))
            q_rest = quants.get((str(rest["case_id"].iloc[0]), method))
            if q_stress is not None and q_rest is not None:
                row["ischemic_tpd"] = ischemic_tpd(q_stress.scores, q_rest.scores)
                row["tid"] = transient_ischemic_dilation(q_stress.geometry, q_rest.geometry)
        row["stress_count_deficit"] = first(stress, "count_deficit")
        row["rest_count_deficit"] = first(rest, "count_deficit")
        rows.append(row)
    return pd.DataFrame(rows)


# ---- the evaluator -----------------------------------------------------------------------------


def evaluate_clinical(context: EvaluationContext) -> list[ReportSection]:
    """The clinical evaluator: writes the CSVs of the module docstring and returns report sections."""
    dataset, run = context.dataset, context.run
    for case in context.cases:
        if not dataset.has(case.case_id, NC):
            raise SpectacError(f"{dataset.path(case.case_id, NC)}: missing study volume (NC)")
    methods = [NC] + [m for m in context.methods if m not in (NC, REFERENCE)] + [REFERENCE]
    try:
        normals, normals_note = choose_normals(dataset, run, save_to=context.folder.normals_npz)
    except SpectacError as exc:
        # no normal limits anywhere: the image metrics stand; the report says why SSS/TPD are absent
        return [ReportSection("Clinical quantification not run", paragraph(str(exc)), order=200)]
    clinical, quants = quantify_run(dataset, run, context.cases, methods, normals)
    context.tables["clinical"] = clinical
    detection, differences = detection_tables(clinical)
    concordance = nc_ac_table(clinical)
    tables = {
        "clinical": clinical,
        "clinical_patients": patient_table(clinical, quants),
        "clinical_agreement": agreement_table(clinical),
        "detection": detection,
        "detection_differences": differences,
        "detection_thresholds": threshold_table(clinical),
        "nc_vs_ac": concordance,
        "nc_vs_ac_summary": nc_ac_summary(concordance),
    }
    for name, frame in tables.items():
        context.outputs[name] = write_csv(frame, context.folder.table_csv(name))
    return clinical_sections(clinical, tables["clinical_agreement"], detection, differences,
                             tables["detection_thresholds"], tables["nc_vs_ac_summary"], quants, methods,
                             normals_note)
