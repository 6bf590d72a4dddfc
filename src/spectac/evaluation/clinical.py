"""Clinical evaluation: SSS and TPD of every method against CT-AC, and defect detection.

Registered as the "clinical" evaluator of ``spectac evaluate`` (see
:mod:`spectac.evaluation.harness`). For every study of the split it quantifies NC (method
``nc``, NC normal limits), CT-AC (method ``ac``, from the dataset) and every predicted method
(AC normal limits) with automatic LV detection, and writes (atomically):

- ``RUN/clinical.csv``: a row per study and method: TPD, territory TPDs, ``sss`` (the summed score
  of the study's 17 segments: SSS for a stress study, SRS for a rest study) and the 17 segment
  scores ``seg1`` .. ``seg17``;
- ``RUN/clinical.csv`` also has ``count_deficit`` (percent of the normal LV counts missing, a
  count-based severity that does not depend on the SDs of the limits) and ``norm_factor`` (the
  iterative normalisation factor to the normal mean);
- ``RUN/clinical_patients.csv``: a row per patient and method: SSS, SRS, SDS = SSS - SRS, the
  segmental SDS ``sds_seg`` (sum of max(stress - rest, 0) over segments, never negative), stress
  and rest TPD, the ischaemic TPD ``ischemic_tpd`` (stress minus rest severity per sample, clipped
  at 0) and the stress and rest count deficits;
- ``RUN/clinical_agreement.csv``: per method against CT-AC: mean +- SD of TPD and SSS, the mean
  difference, Bland-Altman 95% limits, mean |TPD difference|, and the quadratic-weighted kappa of
  the segment scores;
- ``RUN/detection.csv``: ROC AUC with a seeded patient bootstrap 95% CI of stress TPD for "has a
  perfusion defect" (every patient) and of territory TPD for a defect in that territory;
- figures (polar maps side by side, TPD/SSS boxplots, Bland-Altman plots, ROC curves) as report
  sections (orders 200-299 clinical, 300-399 detection).

The normal database used is, in order: RUN/normals.npz, DATA/normals.npz, one built from the
normal patients of the dataset's training split when every sex (F, M) and state (rest, stress)
has at least ``MIN_STUDIES`` normal studies in both families (saved as RUN/normals.npz, so a run
can be re-scored with the same limits), else the database shipped with spectac. The report says
which was used and why (:func:`choose_normals`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from spectac.evaluation.context import EvaluationContext
from spectac.evaluation.report import ReportSection, figure_png, paragraph, png_html, table_html
from spectac.io.atomic import write_text_atomic
from spectac.io.dataset import Case, Dataset
from spectac.io.nifti import read_nifti
from spectac.progress import track
from spectac.quant.normals import FAMILIES, MIN_STUDIES, NormalDatabase, build_normal_database, method_family
from spectac.quant.polar import plot_polar_map
from spectac.quant.scores import ischemic_tpd
from spectac.quant.segments import N_SEGMENTS, TERRITORIES
from spectac.quant.study import StudyQuantification, quantify
from spectac.volume import SpectacError, Volume

REFERENCE = "ac"
BOOTSTRAP = 2000
BOOTSTRAP_SEED = 0
SEGMENT_COLUMNS = tuple(f"seg{i}" for i in range(1, N_SEGMENTS + 1))
TERRITORY_COLUMNS = tuple(f"tpd_{t}" for t in TERRITORIES)

# ---- statistics (pure) -------------------------------------------------------------------------


def roc_auc(scores: np.ndarray, labels: np.ndarray) -> float:
    """Area under the ROC curve (Mann-Whitney U / (n_pos n_neg); ties count one half).

    NaN when either class is empty.
    """
    scores, labels = np.asarray(scores, dtype=np.float64), np.asarray(labels, dtype=bool)
    pos, neg = scores[labels], scores[~labels]
    if len(pos) == 0 or len(neg) == 0:
        return float("nan")
    from scipy.stats import rankdata

    ranks = rankdata(np.concatenate([pos, neg]))
    u = ranks[: len(pos)].sum() - len(pos) * (len(pos) + 1) / 2
    return float(u / (len(pos) * len(neg)))


def roc_curve(scores: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(false-positive rates, true-positive rates) over every threshold, from (0, 0) to (1, 1)."""
    scores, labels = np.asarray(scores, dtype=np.float64), np.asarray(labels, dtype=bool)
    thresholds = np.unique(scores)[::-1]
    tpr = np.array([(scores[labels] >= t).mean() if labels.any() else np.nan for t in thresholds])
    fpr = np.array([(scores[~labels] >= t).mean() if (~labels).any() else np.nan for t in thresholds])
    # nothing called abnormal above the highest score (which may be +inf: a study without an LV)
    return np.concatenate([[0.0], fpr]), np.concatenate([[0.0], tpr])


def bootstrap_auc_ci(
    scores: np.ndarray, labels: np.ndarray, n: int = BOOTSTRAP, seed: int = BOOTSTRAP_SEED, level: float = 0.95
) -> tuple[float, float]:
    """Percentile bootstrap CI of the AUC, resampling patients with replacement (seeded).

    Resamples with a single class are skipped; NaN when fewer than 10% of them are usable.
    """
    scores, labels = np.asarray(scores, dtype=np.float64), np.asarray(labels, dtype=bool)
    rng = np.random.default_rng(seed)
    aucs = []
    for _ in range(n):
        idx = rng.integers(0, len(scores), len(scores))
        if labels[idx].all() or not labels[idx].any():
            continue
        aucs.append(roc_auc(scores[idx], labels[idx]))
    if len(aucs) < 0.1 * n:
        return float("nan"), float("nan")
    lo, hi = np.percentile(aucs, [50 * (1 - level), 100 - 50 * (1 - level)])
    return float(lo), float(hi)


def bland_altman(a: np.ndarray, b: np.ndarray) -> dict[str, float]:
    """Mean difference (a - b), its SD and the 95% limits of agreement (mean +- 1.96 SD)."""
    d = np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)
    sd = float(np.std(d, ddof=1)) if len(d) > 1 else float("nan")
    mean = float(np.mean(d))
    return {"mean_diff": mean, "sd_diff": sd, "loa_low": mean - 1.96 * sd, "loa_high": mean + 1.96 * sd}


def weighted_kappa(a: np.ndarray, b: np.ndarray, categories: int = 5) -> float:
    """Cohen's kappa with quadratic weights between two integer ratings 0..categories-1.

    1 for perfect agreement; NaN when the expected disagreement is 0 (one category only).
    """
    a, b = np.asarray(a, dtype=int).ravel(), np.asarray(b, dtype=int).ravel()
    observed = np.zeros((categories, categories))
    np.add.at(observed, (a, b), 1.0)
    observed /= observed.sum()
    expected = np.outer(observed.sum(axis=1), observed.sum(axis=0))
    i, j = np.indices((categories, categories))
    w = (i - j) ** 2 / (categories - 1) ** 2
    den = float((w * expected).sum())
    return float("nan") if den == 0 else float(1.0 - (w * observed).sum() / den)


def mean_sd(values: np.ndarray) -> tuple[float, float]:
    values = np.asarray(values, dtype=np.float64)
    return float(values.mean()), float(values.std(ddof=1)) if len(values) > 1 else float("nan")


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
    for path in (run / "normals.npz", dataset.root / "normals.npz"):
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


def _load(dataset: Dataset, run: Path, method: str, case_id: str) -> Volume:
    if method in ("nc", REFERENCE):
        return dataset.load(case_id, method)
    return read_nifti(run / "predictions" / method / f"{case_id}.nii.gz")


def _truth_territories(dataset: Dataset, case: Case) -> set[str]:
    """Territories with a defect shown in this study (lv.json when present, else cases.csv)."""
    lv = dataset.lv(case.case_id)
    if lv is not None and "defects" in lv:
        return {d["territory"] for d in lv["defects"] if d.get("severity", 0) > 0}
    return {case.defect_territory} if case.has_defect and case.defect_territory else set()


def quantify_run(
    dataset: Dataset, run: Path, cases: list[Case], methods: list[str], normals: NormalDatabase
) -> tuple[pd.DataFrame, dict[tuple[str, str], StudyQuantification]]:
    """Quantify every (study, method); a study whose LV a method's image does not let the detector
    find is kept as a row without scores (``lv_found`` False), never silently dropped."""
    rows, quants = [], {}
    for case in track(cases, "clinical", total=len(cases)):
        territories = _truth_territories(dataset, case)
        for method in methods:
            volume = _load(dataset, run, method, case.case_id)
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
                    **{f"tpd_{t}": q.scores.territory_tpd(t) for t in TERRITORIES},
                    **{c: int(v) for c, v in zip(SEGMENT_COLUMNS, q.scores.segment_scores)},
                }
            )
            rows.append(row)
    columns = [
        "case_id", "patient_id", "state", "sex", "method", "family", "lv_found", "tpd", "sss",
        *TERRITORY_COLUMNS, *SEGMENT_COLUMNS, "has_defect", "defect_territories", "count_deficit", "norm_factor",
    ]  # fmt: skip
    return pd.DataFrame(rows).reindex(columns=columns), quants


def patient_table(
    clinical: pd.DataFrame, quants: dict[tuple[str, str], StudyQuantification] | None = None
) -> pd.DataFrame:
    """Per patient and method (both studies needed): SSS, SRS, SDS = SSS - SRS, segmental SDS,
    stress/rest TPD, ischaemic TPD (needs ``quants``, else NaN) and stress/rest count deficits."""
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
        row["ischemic_tpd"] = np.nan
        if quants is not None and len(stress) and len(rest):
            q_stress = quants.get((str(stress["case_id"].iloc[0]), method))
            q_rest = quants.get((str(rest["case_id"].iloc[0]), method))
            if q_stress is not None and q_rest is not None:
                row["ischemic_tpd"] = ischemic_tpd(q_stress.scores, q_rest.scores)
        row["stress_count_deficit"] = first(stress, "count_deficit")
        row["rest_count_deficit"] = first(rest, "count_deficit")
        rows.append(row)
    return pd.DataFrame(rows)


def agreement_table(clinical: pd.DataFrame, reference: str = REFERENCE) -> pd.DataFrame:
    """Per method against the reference, paired by study (see the module docstring)."""
    found = clinical[clinical["lv_found"].astype(bool)]
    ref_all = found[found["method"] == reference].set_index("case_id")
    rows = []
    for method in dict.fromkeys(clinical["method"]):
        part = found[found["method"] == method].set_index("case_id")
        common = ref_all.index.intersection(part.index)  # studies scored by both
        part, ref = part.loc[common], ref_all.loc[common]
        tpd_m, tpd_s = mean_sd(part["tpd"])
        sss_m, sss_s = mean_sd(part["sss"])
        ba_tpd = bland_altman(part["tpd"], ref["tpd"])
        ba_sss = bland_altman(part["sss"], ref["sss"])
        tpd_abs_diff = np.abs(part["tpd"].to_numpy() - ref["tpd"].to_numpy())
        rows.append(
            {
                "method": method,
                "n": len(part),
                "tpd_mean": tpd_m,
                "tpd_sd": tpd_s,
                "sss_mean": sss_m,
                "sss_sd": sss_s,
                "tpd_diff_mean": ba_tpd["mean_diff"],
                "tpd_loa_low": ba_tpd["loa_low"],
                "tpd_loa_high": ba_tpd["loa_high"],
                "tpd_abs_diff_mean": float(np.mean(tpd_abs_diff)),
                # the per-study goal: TPD within 1 point of CT-AC's (percent of the studies)
                "tpd_within_1_pct": float(100 * np.mean(tpd_abs_diff <= 1.0)),
                "sss_diff_mean": ba_sss["mean_diff"],
                "sss_loa_low": ba_sss["loa_low"],
                "sss_loa_high": ba_sss["loa_high"],
                "segment_kappa": weighted_kappa(part[list(SEGMENT_COLUMNS)].to_numpy(), ref[list(SEGMENT_COLUMNS)].to_numpy()),
            }
        )
    return pd.DataFrame(rows)


def detection_table(clinical: pd.DataFrame, seed: int = BOOTSTRAP_SEED) -> pd.DataFrame:
    """ROC AUC (bootstrap 95% CI) per method: stress TPD for any defect, territory TPD per territory.

    Every stress study with a known truth (``has_defect`` not empty) counts, one per patient, so
    all methods are judged on the same patients. A study whose LV the method's image did not let
    the software find is not dropped: it counts as an abnormal call (score +inf), as a reader
    would refer a study that cannot be quantified; ``lv_not_found`` says how many.
    """
    stress = clinical[(clinical["state"] == "stress") & clinical["has_defect"].notna()]
    rows = []
    for method in dict.fromkeys(stress["method"]):
        part = stress[stress["method"] == method]
        missing = ~part["lv_found"].astype(bool).to_numpy()
        tasks = [("any", "tpd", part["has_defect"].astype(bool).to_numpy())]
        for t in TERRITORIES:
            labels = part["defect_territories"].fillna("").str.split(";").apply(lambda s, t=t: t in s).to_numpy()
            tasks.append((t, f"tpd_{t}", labels))
        for target, column, labels in tasks:
            scores = part[column].to_numpy(dtype=float, copy=True)
            scores[missing] = np.inf
            lo, hi = bootstrap_auc_ci(scores, labels, seed=seed)
            rows.append(
                {
                    "method": method,
                    "target": target,
                    "score": column,
                    "n": len(scores),
                    "positives": int(labels.sum()),
                    "lv_not_found": int(missing.sum()),
                    "auc": roc_auc(scores, labels),
                    "auc_ci_low": lo,
                    "auc_ci_high": hi,
                }
            )
    columns = ["method", "target", "score", "n", "positives", "lv_not_found", "auc", "auc_ci_low", "auc_ci_high"]
    return pd.DataFrame(rows, columns=columns)


# ---- figures -----------------------------------------------------------------------------------


def polar_map_figure(quants: dict[tuple[str, str], StudyQuantification], case_ids: list[str], methods: list[str],
                     titles: dict[str, str]) -> Any:
    """Bull's-eyes of every method (columns) for a few studies (rows), with TPD and SSS."""
    fig, axes = plt.subplots(len(case_ids), len(methods), figsize=(2.3 * len(methods), 2.5 * len(case_ids)),
                             squeeze=False)
    image = None
    for r, case_id in enumerate(case_ids):
        for c, method in enumerate(methods):
            q = quants[(case_id, method)]
            title = f"{method}\nTPD {q.scores.tpd:.1f}%  S {q.scores.summed_score}"
            image = plot_polar_map(axes[r, c], q.polar_map.values, title)
        axes[r, 0].text(-1.25, 0, titles.get(case_id, case_id), rotation=90, va="center", ha="right", fontsize=8)
    if image is not None:
        fig.colorbar(image, ax=axes, shrink=0.6, label="uptake / LV max")
    return fig


def boxplot_figure(clinical: pd.DataFrame, methods: list[str]) -> Any:
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.6))
    for ax, col, label in zip(axes, ("tpd", "sss"), ("TPD (%)", "summed score")):
        ax.boxplot([clinical.loc[clinical["method"] == m, col].dropna().to_numpy(float) for m in methods])
        ax.set_xticks(range(1, len(methods) + 1), methods, rotation=30, ha="right")
        ax.set_title(label)
        ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    return fig


def bland_altman_figure(clinical: pd.DataFrame, methods: list[str], reference: str = REFERENCE) -> Any:
    others = [m for m in methods if m != reference]
    ncols = min(4, max(len(others), 1))  # rows of 4 keep every panel readable
    nrows = -(-max(len(others), 1) // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(3.2 * ncols, 3.0 * nrows), squeeze=False)
    for ax in axes.flat[len(others):]:
        ax.set_visible(False)
    found = clinical[clinical["lv_found"].astype(bool)]
    ref_all = found[found["method"] == reference].set_index("case_id")["tpd"]
    for ax, method in zip(axes.flat, others):
        val = found[found["method"] == method].set_index("case_id")["tpd"]
        common = ref_all.index.intersection(val.index)
        val, ref = val.loc[common], ref_all.loc[common]
        mean, diff = (val + ref) / 2, val - ref
        ba = bland_altman(val, ref)
        ax.scatter(mean, diff, s=10)
        for y, style in ((ba["mean_diff"], "-"), (ba["loa_low"], "--"), (ba["loa_high"], "--")):
            ax.axhline(y, color="k", linestyle=style, linewidth=0.8)
        ax.set_title(f"{method} - {reference}", fontsize=9)
        ax.set_xlabel("mean TPD (%)")
        ax.set_ylabel("TPD difference (%)")
    fig.tight_layout()
    return fig


def roc_figure(clinical: pd.DataFrame, methods: list[str]) -> Any:
    stress = clinical[(clinical["state"] == "stress") & clinical["has_defect"].notna()]
    fig, ax = plt.subplots(figsize=(4.2, 4.2))
    for method in methods:
        part = stress[stress["method"] == method]
        labels = part["has_defect"].astype(bool).to_numpy()
        scores = np.where(part["lv_found"].astype(bool), part["tpd"].to_numpy(float), np.inf)  # as detection_table
        fpr, tpr = roc_curve(scores, labels)
        ax.plot(fpr, tpr, label=f"{method} (AUC {roc_auc(scores, labels):.2f})")
    ax.plot([0, 1], [0, 1], color="grey", linewidth=0.6)
    ax.set_xlabel("1 - specificity")
    ax.set_ylabel("sensitivity")
    ax.set_title("stress TPD: any perfusion defect", fontsize=9)
    ax.legend(fontsize=7)
    return fig


def _chosen_studies(clinical: pd.DataFrame, methods: list[str]) -> dict[str, str]:
    """Up to three stress studies to show: a normal, the largest CT-AC defect, the worst disagreement."""
    stress = clinical[(clinical["state"] == "stress") & clinical["lv_found"].astype(bool)]
    ref = stress[stress["method"] == REFERENCE].set_index("case_id")
    chosen: dict[str, str] = {}
    normal = ref[ref["has_defect"].eq(False)]
    if len(normal):
        chosen[str(normal["tpd"].idxmin())] = "normal"
    defect = ref[ref["has_defect"].eq(True)]
    if len(defect):
        chosen.setdefault(str(defect["tpd"].idxmax()), "largest defect")
    others = stress[stress["method"].isin([m for m in methods if m not in ("nc", REFERENCE)])]
    if len(others):
        gap = (others.set_index("case_id")["tpd"] - ref["tpd"].reindex(others["case_id"]).to_numpy()).abs().dropna()
        if len(gap):
            chosen.setdefault(str(gap.idxmax()), "largest disagreement")
    # a study is shown only when every method found its LV
    chosen = {k: v for k, v in chosen.items() if (stress["case_id"] == k).sum() == len(methods)}
    return chosen


# ---- the evaluator -----------------------------------------------------------------------------


def _write_csv(frame: pd.DataFrame, path: Path) -> None:
    write_text_atomic(path, frame.to_csv(index=False, float_format="%.6g"))


def evaluate_clinical(context: EvaluationContext) -> list[ReportSection]:
    """The clinical evaluator: writes the CSVs of the module docstring and returns report sections."""
    dataset, run = context.dataset, context.run
    for case in context.cases:
        if not dataset.has(case.case_id, "nc"):
            raise SpectacError(f"{dataset.path(case.case_id, 'nc')}: missing study volume (NC)")
    methods = ["nc"] + [m for m in context.methods if m not in ("nc", REFERENCE)] + [REFERENCE]
    try:
        normals, normals_note = choose_normals(dataset, run, save_to=run / "normals.npz")
    except SpectacError as exc:
        # no normal limits anywhere: the image metrics stand; the report says why SSS/TPD are absent
        return [ReportSection("Clinical quantification not run", paragraph(str(exc)), order=200)]
    clinical, quants = quantify_run(dataset, run, context.cases, methods, normals)
    patients = patient_table(clinical, quants)
    agreement = agreement_table(clinical)
    detection = detection_table(clinical)
    outputs = {
        "clinical": run / "clinical.csv",
        "clinical_patients": run / "clinical_patients.csv",
        "clinical_agreement": run / "clinical_agreement.csv",
        "detection": run / "detection.csv",
    }
    _write_csv(clinical, outputs["clinical"])
    _write_csv(patients, outputs["clinical_patients"])
    _write_csv(agreement, outputs["clinical_agreement"])
    _write_csv(detection, outputs["detection"])
    context.outputs.update(outputs)
    return clinical_sections(clinical, agreement, detection, quants, methods, normals_note)


def clinical_sections(clinical: pd.DataFrame, agreement: pd.DataFrame, detection: pd.DataFrame,
                      quants: dict[tuple[str, str], StudyQuantification], methods: list[str],
                      normals_note: str) -> list[ReportSection]:
    table = pd.DataFrame(
        {
            "method": agreement["method"],
            "n": agreement["n"],
            "TPD (%)": [f"{m:.2f} ± {s:.2f}" for m, s in zip(agreement["tpd_mean"], agreement["tpd_sd"])],
            "SSS": [f"{m:.2f} ± {s:.2f}" for m, s in zip(agreement["sss_mean"], agreement["sss_sd"])],
            "TPD diff (LoA)": [f"{m:+.2f} ({lo:+.2f}, {hi:+.2f})" for m, lo, hi in
                               zip(agreement["tpd_diff_mean"], agreement["tpd_loa_low"], agreement["tpd_loa_high"])],
            "mean |ΔTPD|": agreement["tpd_abs_diff_mean"].map("{:.2f}".format),
            "|ΔTPD| ≤ 1": agreement["tpd_within_1_pct"].map("{:.0f}%".format),
            "SSS diff (LoA)": [f"{m:+.2f} ({lo:+.2f}, {hi:+.2f})" for m, lo, hi in
                               zip(agreement["sss_diff_mean"], agreement["sss_loa_low"], agreement["sss_loa_high"])],
            "segment κw": agreement["segment_kappa"].map("{:.3f}".format),
        }
    )
    if len(detection):
        det = detection.copy()
        det["AUC (95% CI)"] = [f"{a:.3f} ({lo:.3f}-{hi:.3f})" for a, lo, hi in
                               zip(det["auc"], det["auc_ci_low"], det["auc_ci_high"])]
        det_wide = det.pivot(index="method", columns="target", values="AUC (95% CI)").reindex(methods)
        det_wide["LV not found"] = det[det["target"] == "any"].set_index("method")["lv_not_found"].reindex(methods)
        det_wide = det_wide.reset_index()
        det_wide.columns.name = None
        detection_html = table_html(det_wide) + png_html(figure_png(roc_figure(clinical, methods)), "ROC curves",
                                                         width="45%")
    else:
        detection_html = paragraph("No study of the split has a known defect truth (imported clinical data): "
                                   "detection is not evaluated.")
    chosen = _chosen_studies(clinical, methods)
    missing = clinical[~clinical["lv_found"].astype(bool)]
    missing_note = (
        paragraph(
            f"The LV was not found in {len(missing)} image(s): they have no scores, the agreement with CT-AC "
            "pairs studies where both were found, and the detection analysis counts them as abnormal calls "
            "(column lv_not_found): "
            + ", ".join(f"{c}/{m}" for c, m in zip(missing["case_id"], missing["method"]))
        )
        if len(missing)
        else ""
    )
    sections = [
        ReportSection(
            "Clinical quantification against CT-AC (SSS and TPD)",
            paragraph(
                "Automatic LV detection, maximal-count polar maps and scores against normal limits "
                f"(NC images against NC limits, every AC method against CT-AC limits); {normals_note}. "
                "SSS is the summed score of a study's 17 segments (SSS at stress, SRS at rest); TPD in percent "
                "of the LV; differences are method minus CT-AC with Bland-Altman 95% limits; κw is the "
                "quadratic-weighted kappa of the 17 segment scores. Definitions: docs/quantification.md."
            )
            + missing_note
            + table_html(table),
            order=200,
        ),
        ReportSection("TPD and SSS per method", png_html(figure_png(boxplot_figure(clinical, methods)), "boxplots"),
                      order=210),
        ReportSection("Bland-Altman: TPD against CT-AC",
                      png_html(figure_png(bland_altman_figure(clinical, methods)), "Bland-Altman plots"), order=220),
    ]
    if chosen:
        fig = polar_map_figure(quants, list(chosen), methods, {k: f"{k} ({v})" for k, v in chosen.items()})
        sections.append(ReportSection("Polar maps side by side", png_html(figure_png(fig), "polar maps"), order=230))
    sections.append(
        ReportSection(
            "Defect detection against the phantom truth",
            paragraph(
                "ROC AUC of stress TPD for 'has a perfusion defect' (one stress study per patient), and of "
                "territory TPD for a defect in that territory, with a seeded patient bootstrap 95% CI "
                f"({BOOTSTRAP} resamples). Does each correction find disease as well as CT-AC does?"
            )
            + detection_html,
            order=300,
        )
    )
    return sections

