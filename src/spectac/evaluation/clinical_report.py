"""The report sections of the clinical evaluation (orders 200-299 clinical, 300-399 detection).

Every cell says something: where a value cannot be computed the cell says why ("n/a: ...")."""

from __future__ import annotations

import math

import pandas as pd

from spectac.evaluation.clinical_figures import (
    bland_altman_figure,
    boxplot_figure,
    chosen_studies,
    polar_map_figure,
    roc_figure,
)
from spectac.evaluation.columns import na
from spectac.evaluation.concordance import TERRITORY_SUMMED_SCORE
from spectac.evaluation.detection import BOOTSTRAP, TPD_THRESHOLDS
from spectac.evaluation.report import ReportSection, figure_png, paragraph, png_html, table_html
from spectac.evaluation.truth import VISIBLE_SEGMENT_LOSS
from spectac.quant.study import StudyQuantification


def _missing(value: object) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _cell(fmt: str, *values: object, reason: str) -> str:
    """``fmt`` filled with the values, or "n/a: reason" when one of them is missing."""
    return na(reason) if any(_missing(v) for v in values) else fmt.format(*values)


def _reason(note: object, default: str) -> str:
    text = str(note) if isinstance(note, str) and note else default
    return text.removeprefix("n/a: ")


def agreement_display(agreement: pd.DataFrame) -> pd.DataFrame:
    rows = []
    for _, r in agreement.iterrows():
        why = _reason(r.get("note"), "too few studies")
        rows.append({
            "method": r["method"],
            "n": int(r["n"]),
            "TPD (%)": _cell("{:.2f} ± {:.2f}", r["tpd_mean"], r["tpd_sd"], reason=why),
            "SSS": _cell("{:.2f} ± {:.2f}", r["sss_mean"], r["sss_sd"], reason=why),
            "TPD diff (LoA)": _cell("{:+.2f} ({:+.2f}, {:+.2f})", r["tpd_diff_mean"], r["tpd_loa_low"],
                                    r["tpd_loa_high"], reason=why),
            "mean |ΔTPD|": _cell("{:.2f}", r["tpd_abs_diff_mean"], reason=why),
            "|ΔTPD| ≤ 1": _cell("{:.0f}%", r["tpd_within_1_pct"], reason=why),
            "SSS diff (LoA)": _cell("{:+.2f} ({:+.2f}, {:+.2f})", r["sss_diff_mean"], r["sss_loa_low"],
                                    r["sss_loa_high"], reason=why),
            "segment κw": _cell("{:.3f}", r["segment_kappa"], reason=why),
        })
    return pd.DataFrame(rows)


def detection_display(detection: pd.DataFrame, methods: list[str]) -> pd.DataFrame:
    det = detection.copy()
    det["cell"] = [_cell("{:.3f} ({:.3f}-{:.3f})", a, lo, hi, reason=_reason(note, "undefined"))
                   for a, lo, hi, note in zip(det["auc"], det["auc_ci_low"], det["auc_ci_high"], det["note"])]
    wide = det.pivot(index="method", columns="target", values="cell").reindex(methods)
    wide = wide[list(dict.fromkeys(det["target"]))]
    wide["LV not found"] = det[det["target"] == "any"].set_index("method")["lv_not_found"].reindex(methods)
    wide = wide.reset_index()
    wide.columns.name = None
    return wide


def differences_display(differences: pd.DataFrame) -> pd.DataFrame:
    diff = differences.copy()
    diff["cell"] = [_cell("{:+.3f} ({:+.3f}, {:+.3f})", d, lo, hi, reason=_reason(note, "undefined"))
                    for d, lo, hi, note in zip(diff["auc_difference"], diff["ci_low"], diff["ci_high"], diff["note"])]
    diff["comparison"] = diff["method"] + " − " + diff["compared_to"]
    order = list(dict.fromkeys(diff["comparison"]))
    wide = diff.pivot(index="comparison", columns="target", values="cell").reindex(order)
    wide = wide[list(dict.fromkeys(diff["target"]))].reset_index()
    wide.columns.name = None
    return wide


def thresholds_display(thresholds: pd.DataFrame) -> pd.DataFrame:
    rows = []
    for method, part in thresholds.groupby("method", sort=False):
        first = part.iloc[0]
        row = {"method": method,
               "stress TPD (%)": _cell("{:.2f} ± {:.2f}", first["tpd_mean"], first["tpd_sd"],
                                       reason="fewer than 2 studies with an LV")}
        for _, r in part.iterrows():
            t = f"TPD ≥ {r['tpd_threshold']:g}%"
            row[f"sensitivity, {t}"] = _cell("{:.0%} ({}/{}; {:.0%}-{:.0%})", r["sensitivity"], r["tp"],
                                             r["tp"] + r["fn"], r["sensitivity_ci_low"], r["sensitivity_ci_high"],
                                             reason="no abnormal study")
            row[f"specificity, {t}"] = _cell("{:.0%} ({}/{}; {:.0%}-{:.0%})", r["specificity"], r["tn"],
                                             r["tn"] + r["fp"], r["specificity_ci_low"], r["specificity_ci_high"],
                                             reason="no normal study")
        rows.append(row)
    return pd.DataFrame(rows)


def truth_note(clinical: pd.DataFrame) -> str:
    """How many stress studies the truth calls abnormal, and how many nominal defects it does not."""
    stress = clinical[(clinical["state"] == "stress")].drop_duplicates("case_id")
    known = stress[stress["truth_abnormal"].notna()]
    abnormal = int(known["truth_abnormal"].astype(bool).sum())
    invisible = int((known["has_defect"].eq(True) & ~known["truth_abnormal"].astype(bool)).sum())
    nominal = int((known["truth_source"] == "nominal").sum())
    text = (f"Truth: a study is abnormal when at least one of its 17 segments loses at least "
            f"{VISIBLE_SEGMENT_LOSS:.0%} of its counts in the phantom, and its territories are those holding such "
            f"segments (docs/evaluation.md). {abnormal} of the {len(known)} stress studies are abnormal; "
            f"{invisible} phantom defect(s) below that loss count as normal.")
    if nominal:
        text += f" {nominal} study(ies) have no per-segment truth (no lv.json): their nominal defect is used."
    return text


def doubtful_references(clinical: pd.DataFrame) -> pd.DataFrame:
    """The CT-AC (reference) rows of clinical.csv whose LV fit has low confidence (``lv_confidence``
    "low: why"; none for runs evaluated before the column): their TPD may not be a reference."""
    confidence = clinical.get("lv_confidence", pd.Series(index=clinical.index, dtype=str)).astype(str)
    return clinical[(clinical["method"] == "ac") & confidence.str.startswith("low")]


def reference_fit_note(clinical: pd.DataFrame) -> str:
    """A paragraph naming the studies of :func:`doubtful_references` with the reason, or "" when
    there are none."""
    doubtful = doubtful_references(clinical)
    if not len(doubtful):
        return ""
    return paragraph(
        f"The LV fit of CT-AC, the reference, has low confidence in {len(doubtful)} stud(ies): "
        + "; ".join(f"{c} ({str(why).removeprefix('low: ')})" for c, why in zip(doubtful["case_id"],
                                                                               doubtful["lv_confidence"]))
        + ". A large defect leaves little of the wall bright; hot activity against the wall may mean the fit "
        "scored a neighbour; an apex to the patient's right means a dextrocardia or a turned axis. Check those studies' axes before reading their differences (clinical.csv, "
        "column lv_confidence)."
    )


def clinical_sections(clinical: pd.DataFrame, agreement: pd.DataFrame, detection: pd.DataFrame,
                      differences: pd.DataFrame, thresholds: pd.DataFrame, concordance: pd.DataFrame,
                      quants: dict[tuple[str, str], StudyQuantification], methods: list[str],
                      normals_note: str) -> list[ReportSection]:
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
    doubtful_note = reference_fit_note(clinical)
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
            + doubtful_note
            + table_html(agreement_display(agreement)),
            order=200,
        ),
        ReportSection("TPD and SSS per method", png_html(figure_png(boxplot_figure(clinical, methods)), "boxplots"),
                      order=210),
        ReportSection("Bland-Altman: TPD against CT-AC",
                      png_html(figure_png(bland_altman_figure(clinical, methods)), "Bland-Altman plots"), order=220),
    ]
    chosen = chosen_studies(clinical, methods)
    if chosen:
        fig = polar_map_figure(quants, list(chosen), methods, {k: f"{k} ({v})" for k, v in chosen.items()})
        sections.append(ReportSection("Polar maps side by side", png_html(figure_png(fig), "polar maps"), order=230))
    if not len(detection):
        sections.append(ReportSection(
            "Defect detection against the phantom truth",
            paragraph("No study of the split has a known defect truth (imported clinical data): "
                      "detection is not evaluated."), order=300))
        return sections
    both_classes = not detection.loc[detection["target"] == "any", "note"].astype(str).str.startswith("n/a").any()
    roc = (png_html(figure_png(roc_figure(clinical, methods)), "ROC curves", width="45%") if both_classes
           else paragraph("No ROC curve: the stress studies are all abnormal or all normal."))
    sections += [
        ReportSection(
            "Defect detection against the phantom truth",
            paragraph(truth_note(clinical))
            + paragraph(
                "ROC AUC of stress TPD for an abnormal study (one stress study per patient), and of territory TPD "
                "for a defect in that territory, with a stratified patient bootstrap 95% CI "
                f"({BOOTSTRAP} resamples). Does each correction find disease as well as CT-AC does?"
            )
            + table_html(detection_display(detection, methods))
            + roc,
            order=300,
        ),
        ReportSection(
            "AUC differences against CT-AC and NC (paired bootstrap)",
            paragraph("AUC of the method minus AUC of the method compared to, with a paired bootstrap 95% CI: "
                      "every resample of patients scores both methods, so the interval reflects the difference "
                      "on the same patients. An interval excluding 0 is a difference beyond resampling noise.")
            + table_html(differences_display(differences)),
            order=310,
        ),
        ReportSection(
            "Sensitivity and specificity at fixed TPD thresholds",
            paragraph(f"Stress TPD ≥ {TPD_THRESHOLDS[0]:g}% is the usual abnormality cut-off (Slomka et al., J Nucl "
                      f"Cardiol 2005; Berman et al.); ≥ {TPD_THRESHOLDS[1]:g}% a more sensitive one. Counts and "
                      "Wilson 95% CIs; a study without an LV counts as an abnormal call.")
            + table_html(thresholds_display(thresholds)),
            order=320,
        ),
    ]
    if len(concordance):
        stress = concordance[concordance["state"] == "stress"]
        sections.append(ReportSection(
            "NC beside AC: defects added and removed by each correction",
            paragraph(f"Per stress study and coronary territory, a defect is read when the territory's summed "
                      f"segment score is ≥ {TERRITORY_SUMMED_SCORE}. Counts of territories seen in NC and the AC "
                      "image (both), in AC only (added), in NC only (removed), in neither; split by the phantom "
                      "truth of the territory (_defect: a visible defect there; _normal: none). Removing an NC "
                      "artefact is removed_normal; losing a real defect is removed_defect. Rest studies and "
                      "the per-study reading are in RUN/nc_vs_ac.csv and RUN/nc_vs_ac_summary.csv.")
            + table_html(stress.drop(columns=["state"])),
            order=330,
        ))
    return sections
