"""Defect detection against the phantom truth (:mod:`spectac.evaluation.truth`): ROC curves and
AUCs (scikit-learn), stratified bootstrap CIs of each AUC and of the AUC differences between
methods (paired: every method on the same resampled patients), and sensitivity/specificity at
fixed stress-TPD thresholds.

Every stress study with a known truth counts, one per patient, so all methods are judged on the
same patients. A study whose LV the method's image did not let the software find is not dropped:
it counts as an abnormal call (score +inf), as a reader would refer a study that cannot be
quantified; ``lv_not_found`` says how many.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.stats import binomtest
from sklearn.metrics import roc_auc_score
from sklearn.metrics import roc_curve as _sk_roc_curve

from spectac.evaluation.columns import NC, REFERENCE, na
from spectac.evaluation.truth import VISIBLE_SEGMENT_LOSS
from spectac.segments import TERRITORIES

BOOTSTRAP = 2000
BOOTSTRAP_SEED = 0
LEVEL = 0.95

#: Stress TPD cut-offs for calling a study abnormal. 5%: the usual cut-off of the TPD literature
#: (Slomka et al., J Nucl Cardiol 2005, which defines TPD; Berman et al. take stress TPD >= 5% as
#: abnormal, about SSS >= 4). 3%: a more sensitive cut-off, shown as a sensitivity check.
TPD_THRESHOLDS = (5.0, 3.0)

DETECTION_COLUMNS = ("method", "target", "score", "n", "positives", "lv_not_found", "auc", "auc_ci_low",
                     "auc_ci_high", "truth_threshold", "note")
DIFFERENCE_COLUMNS = ("method", "compared_to", "target", "n", "positives", "auc", "auc_compared", "auc_difference",
                      "ci_low", "ci_high", "note")
THRESHOLD_COLUMNS = ("method", "tpd_threshold", "n", "positives", "tp", "fn", "tn", "fp", "sensitivity",
                     "sensitivity_ci_low", "sensitivity_ci_high", "specificity", "specificity_ci_low",
                     "specificity_ci_high", "tpd_mean", "tpd_sd", "lv_not_found", "note")


# ---- ROC and AUC -------------------------------------------------------------------------------


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


def _class_note(labels: np.ndarray) -> str:
    if not labels.any():
        return na("no abnormal study")
    if labels.all():
        return na("no normal study")
    return ""


# ---- bootstrap ---------------------------------------------------------------------------------


def _resampled_auc(scores: np.ndarray, labels: np.ndarray, w_pos: np.ndarray, w_neg: np.ndarray) -> np.ndarray:
    """The AUC of every resample at once. A resample is given by how often it draws each abnormal
    (``w_pos``, (B, P)) and each normal (``w_neg``, (B, N)) patient; its AUC is the Mann-Whitney
    statistic sum_ij w_i w_j [s_i > s_j or 1/2 if equal] / (P N), the value roc_auc_score gives
    for the resampled data (tests/test_clinical.py). roc_auc_score itself costs ~5 ms a call (input
    checks): 2000 resamples x methods x targets would take minutes."""
    sp, sn = scores[labels], scores[~labels]
    order = (sp[:, None] > sn[None, :]) + 0.5 * (sp[:, None] == sn[None, :])
    return np.einsum("bi,ij,bj->b", w_pos, order, w_neg) / (len(sp) * len(sn))


def bootstrap_aucs(scores: dict[str, np.ndarray], labels: np.ndarray, n: int = BOOTSTRAP,
                   seed: int = BOOTSTRAP_SEED, paired: bool = True) -> dict[str, np.ndarray]:
    """AUCs of every method on ``n`` bootstrap resamples of the patients (seeded).

    Resampling is stratified (abnormal and normal patients resampled separately, as pROC does by
    default), so every resample has both classes and the AUC is always defined. Paired: one
    resample of patients serves every method, so a difference of two methods' AUCs on the same
    patients keeps their correlation (the CI of the difference is the narrower, right one);
    unpaired: every method draws its own resamples (shown only to compare, in the tests).

    Hand-written rather than scipy.stats.bootstrap: scipy resamples all observations together
    (``paired=True`` pairs samples but cannot stratify by class), so a resample could hold no
    abnormal patient, where the AUC is undefined and scipy's interval becomes NaN.

    Returns:
        {method: (n,) AUCs}; all NaN when a class is empty.
    """
    labels = np.asarray(labels, dtype=bool)
    n_pos, n_neg = int(labels.sum()), int((~labels).sum())
    if n_pos == 0 or n_neg == 0:
        return {m: np.full(n, np.nan) for m in scores}
    rng = np.random.default_rng(seed)

    def draw() -> tuple[np.ndarray, np.ndarray]:
        return (rng.multinomial(n_pos, np.full(n_pos, 1 / n_pos), size=n),
                rng.multinomial(n_neg, np.full(n_neg, 1 / n_neg), size=n))

    shared = draw() if paired else None
    out = {}
    for method, values in scores.items():
        values = np.asarray(values, dtype=np.float64)
        if np.isnan(values).any():
            raise ValueError(f"{method}: NaN scores (a study without an LV scores +inf)")
        w_pos, w_neg = shared if shared is not None else draw()
        out[method] = _resampled_auc(values, labels, w_pos, w_neg)
    return out


def percentile_ci(values: np.ndarray, level: float = LEVEL) -> tuple[float, float]:
    """Percentile interval of bootstrap values (NaN, NaN when they are NaN)."""
    values = np.asarray(values, dtype=np.float64)
    if len(values) == 0 or np.isnan(values).any():
        return float("nan"), float("nan")
    lo, hi = np.percentile(values, [50 * (1 - level), 100 - 50 * (1 - level)])
    return float(lo), float(hi)


def bootstrap_auc_ci(scores: np.ndarray, labels: np.ndarray, n: int = BOOTSTRAP, seed: int = BOOTSTRAP_SEED,
                     level: float = LEVEL) -> tuple[float, float]:
    """Percentile bootstrap CI of one AUC (stratified resampling of patients, seeded)."""
    return percentile_ci(bootstrap_aucs({"x": scores}, labels, n, seed)["x"], level)


def auc_difference_ci(scores_a: np.ndarray, scores_b: np.ndarray, labels: np.ndarray, n: int = BOOTSTRAP,
                      seed: int = BOOTSTRAP_SEED, paired: bool = True,
                      level: float = LEVEL) -> tuple[float, float, float]:
    """AUC(a) - AUC(b) and its percentile bootstrap CI (paired unless told otherwise)."""
    boot = bootstrap_aucs({"a": scores_a, "b": scores_b}, labels, n, seed, paired=paired)
    lo, hi = percentile_ci(boot["a"] - boot["b"], level)
    return roc_auc(scores_a, labels) - roc_auc(scores_b, labels), lo, hi


# ---- tables ------------------------------------------------------------------------------------


def _stress(clinical: pd.DataFrame) -> pd.DataFrame:
    return clinical[(clinical["state"] == "stress") & clinical["truth_abnormal"].notna()]


def _territory_labels(truth: pd.Series, territory: str) -> np.ndarray:
    return truth.fillna("").astype(str).str.split(";").apply(lambda s: territory in s).to_numpy(bool)


def _tasks(stress: pd.DataFrame, methods: list[str]) -> list[tuple[str, str, np.ndarray, dict[str, np.ndarray]]]:
    """(target, score column, labels, {method: scores}) for 'any' and each territory; studies in
    the order of the first method's rows, a study without an LV scoring +inf."""
    first = stress[stress["method"] == methods[0]].set_index("case_id")
    tasks = [("any", "tpd", first["truth_abnormal"].astype(bool).to_numpy())]
    tasks += [(t, f"tpd_{t}", _territory_labels(first["truth_territories"], t)) for t in TERRITORIES]
    out = []
    for target, column, labels in tasks:
        scores = {}
        for method in methods:
            part = stress[stress["method"] == method].set_index("case_id").reindex(first.index)
            values = part[column].to_numpy(dtype=float, copy=True)
            values[~part["lv_found"].astype(bool).to_numpy()] = np.inf
            scores[method] = values
        out.append((target, column, labels, scores))
    return out


def detection_tables(clinical: pd.DataFrame, seed: int = BOOTSTRAP_SEED,
                     n: int = BOOTSTRAP) -> tuple[pd.DataFrame, pd.DataFrame]:
    """ROC AUCs with 95% CIs per method and target, and paired AUC differences against CT-AC and NC.

    Returns:
        (detection, differences): detection has :data:`DETECTION_COLUMNS` (target "any": stress
        TPD for an abnormal study; a territory: territory TPD for a defect in it); differences has
        :data:`DIFFERENCE_COLUMNS`, AUC(method) - AUC(compared_to) for every method against CT-AC
        and against NC, from one paired bootstrap. ``note`` says why a value is missing.
    """
    stress = _stress(clinical)
    methods = list(dict.fromkeys(stress["method"]))
    rows, diffs = [], []
    if not methods:
        return pd.DataFrame(columns=list(DETECTION_COLUMNS)), pd.DataFrame(columns=list(DIFFERENCE_COLUMNS))
    missing = {m: int((~stress.loc[stress["method"] == m, "lv_found"].astype(bool)).sum()) for m in methods}
    for target, column, labels, scores in _tasks(stress, methods):
        note = _class_note(labels)
        boot = bootstrap_aucs(scores, labels, n=n, seed=seed)
        auc = {m: roc_auc(s, labels) for m, s in scores.items()}
        for method in methods:
            lo, hi = percentile_ci(boot[method])
            rows.append({"method": method, "target": target, "score": column, "n": len(labels),
                         "positives": int(labels.sum()), "lv_not_found": missing[method], "auc": auc[method],
                         "auc_ci_low": lo, "auc_ci_high": hi, "truth_threshold": VISIBLE_SEGMENT_LOSS, "note": note})
        pairs = [(m, REFERENCE) for m in methods if m != REFERENCE and REFERENCE in scores]
        pairs += [(m, NC) for m in methods if m != NC and NC in scores]
        for method, other in pairs:
            lo, hi = percentile_ci(boot[method] - boot[other])
            diffs.append({"method": method, "compared_to": other, "target": target, "n": len(labels),
                          "positives": int(labels.sum()), "auc": auc[method], "auc_compared": auc[other],
                          "auc_difference": auc[method] - auc[other], "ci_low": lo, "ci_high": hi, "note": note})
    return pd.DataFrame(rows, columns=list(DETECTION_COLUMNS)), pd.DataFrame(diffs, columns=list(DIFFERENCE_COLUMNS))


def detection_table(clinical: pd.DataFrame, seed: int = BOOTSTRAP_SEED) -> pd.DataFrame:
    """The detection half of :func:`detection_tables`."""
    return detection_tables(clinical, seed)[0]


def proportion_ci(k: int, n: int, level: float = LEVEL) -> tuple[float, float]:
    """Wilson score interval of a proportion k/n (scipy); NaN for n = 0."""
    if n == 0:
        return float("nan"), float("nan")
    ci = binomtest(k, n).proportion_ci(confidence_level=level, method="wilson")
    return float(ci.low), float(ci.high)


def threshold_table(clinical: pd.DataFrame, thresholds: tuple[float, ...] = TPD_THRESHOLDS) -> pd.DataFrame:
    """Sensitivity and specificity (Wilson 95% CIs) of "stress TPD >= threshold" for an abnormal
    study, per method and threshold, with the mean and SD of the stress TPD beside them.

    A study without an LV is an abnormal call, as in the ROC analysis.
    """
    stress = _stress(clinical)
    rows = []
    for method in dict.fromkeys(stress["method"]):
        part = stress[stress["method"] == method]
        labels = part["truth_abnormal"].astype(bool).to_numpy()
        found = part["lv_found"].astype(bool).to_numpy()
        tpd = part["tpd"].to_numpy(dtype=float)
        tpd_found = tpd[found]
        for threshold in thresholds:
            called = ~found | (np.where(found, tpd, -np.inf) >= threshold)
            tp, fn = int((called & labels).sum()), int((~called & labels).sum())
            tn, fp = int((~called & ~labels).sum()), int((called & ~labels).sum())
            sens_lo, sens_hi = proportion_ci(tp, tp + fn)
            spec_lo, spec_hi = proportion_ci(tn, tn + fp)
            rows.append({
                "method": method, "tpd_threshold": threshold, "n": len(labels), "positives": int(labels.sum()),
                "tp": tp, "fn": fn, "tn": tn, "fp": fp,
                "sensitivity": tp / (tp + fn) if tp + fn else np.nan,
                "sensitivity_ci_low": sens_lo, "sensitivity_ci_high": sens_hi,
                "specificity": tn / (tn + fp) if tn + fp else np.nan,
                "specificity_ci_low": spec_lo, "specificity_ci_high": spec_hi,
                "tpd_mean": float(tpd_found.mean()) if len(tpd_found) else np.nan,
                "tpd_sd": float(tpd_found.std(ddof=1)) if len(tpd_found) > 1 else np.nan,
                "lv_not_found": int((~found).sum()),
                "note": _class_note(labels),
            })
    return pd.DataFrame(rows, columns=list(THRESHOLD_COLUMNS))
