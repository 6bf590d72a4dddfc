"""Agreement of a method with CT-AC, paired by study: Bland-Altman, weighted kappa, TPD agreement."""

from __future__ import annotations

import warnings

import numpy as np
from sklearn.exceptions import UndefinedMetricWarning
from sklearn.metrics import cohen_kappa_score

SCORE_CATEGORIES = 5  # segment scores 0-4


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
