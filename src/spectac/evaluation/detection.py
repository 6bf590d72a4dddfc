"""Defect detection: ROC curves and AUCs (scikit-learn), bootstrap CIs of AUCs and of their
differences between methods, and sensitivity/specificity at fixed TPD thresholds."""

from __future__ import annotations

import numpy as np
from sklearn.metrics import roc_auc_score
from sklearn.metrics import roc_curve as _sk_roc_curve


def _finite(scores: np.ndarray) -> np.ndarray:
    """Scores with +inf (a study that could not be quantified: an abnormal call at every
    threshold) replaced by a value above every finite score; ranks, and so ROC and AUC, unchanged.
    scikit-learn refuses infinite scores."""
    scores = np.asarray(scores, dtype=np.float64).copy()
    inf = np.isposinf(scores)
    if inf.any():
        finite = scores[~inf]
        scores[inf] = (finite.max() + 1.0) if len(finite) else 1.0
    return scores


def roc_auc(scores: np.ndarray, labels: np.ndarray) -> float:
    """Area under the ROC curve (scikit-learn; ties count one half). NaN when a class is empty."""
    labels = np.asarray(labels, dtype=bool)
    if labels.all() or not labels.any():
        return float("nan")
    return float(roc_auc_score(labels, _finite(scores)))


def roc_curve(scores: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(false-positive rates, true-positive rates) over every threshold, from (0, 0) to (1, 1)
    (scikit-learn, every threshold kept). Needs both classes."""
    fpr, tpr, _ = _sk_roc_curve(np.asarray(labels, dtype=bool), _finite(scores), drop_intermediate=False)
    return fpr, tpr
