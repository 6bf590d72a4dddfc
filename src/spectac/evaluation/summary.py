"""The first section of the report: which method agrees best with CT-AC, how well, on how many.

One screen a reader can stop after: per method the mean |TPD difference| from CT-AC (the clinical
agreement), MAE and SSIM against CT-AC (the image agreement), each with a 95% confidence interval
from a patient bootstrap, and the numbers of patients and studies; the method closest to CT-AC
named first, and a caveat where the intervals are too wide to rank methods on.

The bootstrap resamples patients, not studies: the rest and stress studies of a patient are not
independent, and a study-level bootstrap would give intervals that are too narrow (the cluster
bootstrap, Davison & Hinkley, Bootstrap Methods and their Application, Cambridge University Press
1997, section 3.8). The interval is the percentile interval of the resampled means.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from spectac.evaluation.columns import NC, REFERENCE, na
from spectac.evaluation.detection import BOOTSTRAP, BOOTSTRAP_SEED
from spectac.evaluation.report import ReportSection, escape, paragraph, table_html

#: The summary goes before every other section.
SUMMARY_ORDER = 10
#: Fewer patients than this: the summary says the intervals are too wide to rank methods on.
FEW_PATIENTS = 20
#: A 95% CI wider than this fraction of its value is called wide.
WIDE_CI = 0.5


def patient_bootstrap_ci(values: np.ndarray, patients: np.ndarray, n: int = BOOTSTRAP,
                         seed: int = BOOTSTRAP_SEED, level: float = 0.95) -> tuple[float, float]:
    """Percentile CI of the mean of ``values`` when whole patients are resampled with replacement.

    Each resample draws as many patients as there are, and the mean is over all the studies of the
    drawn patients (a patient drawn twice counts twice). NaN for no value.
    """
    values = np.asarray(values, dtype=np.float64)
    if len(values) == 0:
        return float("nan"), float("nan")
    labels, index = np.unique(np.asarray(patients).astype(str), return_inverse=True)
    sums = np.bincount(index, weights=values, minlength=len(labels))
    counts = np.bincount(index, minlength=len(labels)).astype(np.float64)
    draws = np.random.default_rng(seed).integers(0, len(labels), size=(n, len(labels)))
    means = sums[draws].sum(axis=1) / counts[draws].sum(axis=1)
    tail = 100 * (1 - level) / 2
    low, high = np.percentile(means, [tail, 100 - tail])
    return float(low), float(high)


def _estimate(values: np.ndarray, patients: np.ndarray) -> dict[str, float]:
    low, high = patient_bootstrap_ci(values, patients)
    return {"mean": float(np.mean(values)) if len(values) else float("nan"), "low": low, "high": high}


def tpd_differences(clinical: pd.DataFrame, method: str) -> pd.DataFrame:
    """|TPD of ``method`` - TPD of CT-AC| per study where the LV was found in both (case_id,
    patient_id, abs_diff)."""
    found = clinical[clinical["lv_found"].astype(bool)]
    ref = found[found["method"] == REFERENCE].set_index("case_id")["tpd"]
    part = found[found["method"] == method].set_index("case_id")
    common = part.index.intersection(ref.index)
    return pd.DataFrame({"case_id": common, "patient_id": part.loc[common, "patient_id"].to_numpy(),
                         "abs_diff": np.abs(part.loc[common, "tpd"].to_numpy(float) - ref.loc[common].to_numpy(float))})


def summary_table(metrics: pd.DataFrame, patient_of: dict[str, str],
                  clinical: pd.DataFrame | None = None) -> pd.DataFrame:
    """Per method: studies, patients, and mean with patient-bootstrap 95% CI of |ΔTPD| (when
    ``clinical`` is given), MAE and SSIM; the corrections sorted best first (smallest mean |ΔTPD|,
    then MAE), NC, the baseline, last."""
    rows = []
    for method in dict.fromkeys(metrics["method"]):
        part = metrics[metrics["method"] == method]
        patients = part["case_id"].map(patient_of).to_numpy()
        row: dict[str, object] = {"method": method, "studies": len(part), "patients": len(set(patients))}
        for column in ("mae", "ssim"):
            estimate = _estimate(part[column].to_numpy(float), patients)
            row.update({f"{column}_{k}": v for k, v in estimate.items()})
        tpd = tpd_differences(clinical, method) if clinical is not None else None
        estimate = (_estimate(tpd["abs_diff"].to_numpy(float), tpd["patient_id"].to_numpy())
                    if tpd is not None else {"mean": float("nan"), "low": float("nan"), "high": float("nan")})
        row.update({f"tpd_{k}": v for k, v in estimate.items()})
        row["tpd_studies"] = 0 if tpd is None else len(tpd)
        rows.append(row)
    table = pd.DataFrame(rows)
    table = table.assign(_nc=table["method"] == NC, _rank=table["tpd_mean"].fillna(np.inf))
    return table.sort_values(["_nc", "_rank", "mae_mean"], kind="stable").drop(columns=["_nc", "_rank"])


def wide(mean: float, low: float, high: float) -> bool:
    """Whether a CI is wide: wider than :data:`WIDE_CI` of its value (a CI of a zero value never)."""
    return bool(np.isfinite(low) and np.isfinite(high) and high - low > WIDE_CI * abs(mean))


def _cell(mean: float, low: float, high: float, digits: int, reason: str) -> str:
    if not np.isfinite(mean):
        return na(reason)
    if not (np.isfinite(low) and np.isfinite(high)):
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} ({low:.{digits}f}-{high:.{digits}f})"


def summary_section(table: pd.DataFrame, tests: pd.DataFrame, split: str | None,
                    clinical_note: str = "") -> ReportSection:
    """The one-screen summary (see the module docstring). ``tests``: the paired Wilcoxon table
    (:func:`spectac.evaluation.stats.paired_wilcoxon`); ``clinical_note``: why there is no
    |ΔTPD| when the clinical evaluation did not run."""
    tpd_reason = clinical_note or "the LV was not found in this method's or CT-AC's images"
    display = pd.DataFrame({
        "method": table["method"],
        "patients (studies)": [f"{p} ({s})" for p, s in zip(table["patients"], table["studies"])],
        "mean |ΔTPD| vs CT-AC (95% CI)": [_cell(m, lo, hi, 2, tpd_reason) for m, lo, hi in
                                          zip(table["tpd_mean"], table["tpd_low"], table["tpd_high"])],
        "MAE vs CT-AC (95% CI)": [_cell(m, lo, hi, 3, "no study") for m, lo, hi in
                                  zip(table["mae_mean"], table["mae_low"], table["mae_high"])],
        "SSIM vs CT-AC (95% CI)": [_cell(m, lo, hi, 3, "no study") for m, lo, hi in
                                   zip(table["ssim_mean"], table["ssim_low"], table["ssim_high"])],
    })
    best = table.iloc[0]  # a correction when there is one (NC sorts last)
    by_tpd = bool(np.isfinite(best["tpd_mean"]))
    lead = (f"Closest to CT-AC: {best['method']}, by the mean |TPD difference| from CT-AC"
            if by_tpd else f"Closest to CT-AC: {best['method']}, by MAE (no TPD: {tpd_reason})")
    corrections = table[table["method"] != NC]
    by_mae = corrections.loc[corrections["mae_mean"].idxmin(), "method"] if len(corrections) else best["method"]
    if by_tpd and by_mae != best["method"]:
        lead += f" (by MAE: {by_mae})"
    lead += (f"; over {best['patients']} patients ({best['studies']} studies) of split '{split or 'all'}'. "
             f"Means with patient-bootstrap 95% CIs ({BOOTSTRAP} resamples); |ΔTPD| in TPD points (rest and "
             "stress studies), MAE in counts, SSIM 3D.")
    body = f"<p><strong>{escape(lead)}</strong></p>" + table_html(display)
    if len(table) > 1:
        body += paragraph(_versus(best["method"], table.iloc[1]["method"], tests))
    if NC in set(table["method"]) and by_tpd:
        body += paragraph("NC, the uncorrected baseline, is last; its TPD is scored against NC normal limits "
                          "(the corrections' against CT-AC limits), so its |ΔTPD| compares clinical reads, not "
                          "images.")
    caveats = _caveats(table)
    if caveats:
        body += paragraph("Caveat: " + " ".join(caveats))
    body += paragraph("Below: clinical agreement with CT-AC (SSS, TPD), defect detection, then the image "
                      "metrics and their tests.")
    return ReportSection("Summary", body, order=SUMMARY_ORDER)


def _versus(best: str, second: str, tests: pd.DataFrame) -> str:
    """The MAE test of the best method against the runner-up, Holm-adjusted, in one sentence."""
    pair = tests[(tests["metric"] == "mae") & (tests["method_a"].isin([best, second]))
                 & (tests["method_b"].isin([best, second]))]
    if not len(pair):
        return f"{best} against {second}: no paired test (no study scored by both)."
    row = pair.iloc[0]
    if row["note"]:
        return f"MAE of {best} against {second}: paired Wilcoxon {row['note']}."
    return (f"MAE of {best} against {second}: paired Wilcoxon signed-rank p = {row['p_value']:.3g}, "
            f"Holm-adjusted over the pairs of methods p = {row['p_holm']:.3g} (n = {int(row['n'])} studies).")


def _caveats(table: pd.DataFrame) -> list[str]:
    caveats = []
    patients = int(table["patients"].max())
    if patients < FEW_PATIENTS:
        caveats.append(f"only {patients} patients (fewer than {FEW_PATIENTS}): the intervals are wide and the "
                       "ranking of the methods may change with more patients.")
    names = {"tpd": "|ΔTPD|", "mae": "MAE", "ssim": "SSIM"}
    wide_ones = [f"{names[key]} of {row['method']}" for _, row in table.iterrows() for key in names
                 if wide(row[f"{key}_mean"], row[f"{key}_low"], row[f"{key}_high"])]
    if wide_ones:
        caveats.append(f"95% CI wider than {WIDE_CI:.0%} of the value: {', '.join(wide_ones)}.")
    return caveats
