"""Agreement of a method with CT-AC, paired by study: Bland-Altman, weighted kappa, TPD agreement."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
from sklearn.exceptions import UndefinedMetricWarning
from sklearn.metrics import cohen_kappa_score

from spectac.evaluation.columns import REFERENCE, SEGMENT_COLUMNS

SCORE_CATEGORIES = 5  # segment scores 0-4

#: The per-study TPD goal of the benchmarks: a method's TPD within this many points of CT-AC's.
TPD_AGREEMENT_POINTS = 2.0


def bland_altman(a: np.ndarray, b: np.ndarray) -> dict[str, float]:
    """Mean difference (a - b), its SD and the 95% limits of agreement (mean +- 1.96 SD).

    The SD and the limits are NaN for fewer than 2 pairs.
    """
    d = np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)
    sd = float(np.std(d, ddof=1)) if len(d) > 1 else float("nan")
    mean = float(np.mean(d)) if len(d) else float("nan")
    return {"mean_diff": mean, "sd_diff": sd, "loa_low": mean - 1.96 * sd, "loa_high": mean + 1.96 * sd}


def weighted_kappa(a: np.ndarray, b: np.ndarray, categories: int = SCORE_CATEGORIES) -> float:
    """Cohen's kappa with quadratic weights between two integer ratings 0..categories-1
    (scikit-learn's ``cohen_kappa_score``).

    1 for perfect agreement; NaN when undefined: no rating, or the expected disagreement is 0
    (both raters use one and the same category throughout).
    """
    a, b = np.asarray(a, dtype=int).ravel(), np.asarray(b, dtype=int).ravel()
    if len(a) == 0:
        return float("nan")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UndefinedMetricWarning)  # the NaN says it
        value = cohen_kappa_score(a, b, labels=list(range(categories)), weights="quadratic")
    return float(value)


def mean_sd(values: np.ndarray) -> tuple[float, float]:
    """Mean and SD (ddof=1); NaN for no value, the SD NaN for one value."""
    values = np.asarray(values, dtype=np.float64)
    if len(values) == 0:
        return float("nan"), float("nan")
    return float(values.mean()), float(values.std(ddof=1)) if len(values) > 1 else float("nan")


def agreement_table(clinical: pd.DataFrame, reference: str = REFERENCE) -> pd.DataFrame:
    """Per method against the reference, paired by study (studies scored by both): mean +- SD of
    TPD and SSS, Bland-Altman of TPD and SSS, mean |TPD difference|, the share of studies within
    1 TPD point, and the quadratic-weighted kappa of the segment scores. ``note`` says why a value
    is missing."""
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
        kappa = weighted_kappa(part[list(SEGMENT_COLUMNS)].to_numpy(), ref[list(SEGMENT_COLUMNS)].to_numpy())
        notes = []
        if len(common) == 0:
            notes.append("no study scored by both this method and CT-AC")
        elif len(common) == 1:
            notes.append("one study: no SD or limits of agreement")
        if len(common) and np.isnan(kappa):
            notes.append("kappa undefined: every segment has one and the same score in both")
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
                "tpd_abs_diff_mean": float(np.mean(tpd_abs_diff)) if len(common) else np.nan,
                # the per-study goal: TPD within 1 point of CT-AC's (percent of the studies)
                "tpd_within_1_pct": float(100 * np.mean(tpd_abs_diff <= 1.0)) if len(common) else np.nan,
                "sss_diff_mean": ba_sss["mean_diff"],
                "sss_loa_low": ba_sss["loa_low"],
                "sss_loa_high": ba_sss["loa_high"],
                "segment_kappa": kappa,
                "note": "; ".join(notes),
            }
        )
    return pd.DataFrame(rows)
