"""Figures of the clinical evaluation (matplotlib, Agg backend): bull's-eyes side by side, TPD/SSS
boxplots, Bland-Altman plots of TPD and ROC curves of stress TPD."""

from __future__ import annotations

from typing import Any

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from spectac.evaluation.agreement import bland_altman
from spectac.evaluation.columns import NC, REFERENCE
from spectac.evaluation.detection import roc_auc, roc_curve
from spectac.quant.polar import plot_polar_map
from spectac.quant.study import StudyQuantification


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
            if np.isfinite(y):
                ax.axhline(y, color="k", linestyle=style, linewidth=0.8)
        ax.set_title(f"{method} - {reference}", fontsize=9)
        ax.set_xlabel("mean TPD (%)")
        ax.set_ylabel("TPD difference (%)")
    fig.tight_layout()
    return fig


def roc_figure(clinical: pd.DataFrame, methods: list[str]) -> Any:
    """ROC curves of stress TPD for an abnormal study (truth: :mod:`spectac.evaluation.truth`);
    needs both classes among the stress studies."""
    stress = clinical[(clinical["state"] == "stress") & clinical["truth_abnormal"].notna()]
    fig, ax = plt.subplots(figsize=(4.2, 4.2))
    for method in methods:
        part = stress[stress["method"] == method]
        labels = part["truth_abnormal"].astype(bool).to_numpy()
        scores = np.where(part["lv_found"].astype(bool), part["tpd"].to_numpy(float), np.inf)  # as detection
        fpr, tpr = roc_curve(scores, labels)
        ax.plot(fpr, tpr, label=f"{method} (AUC {roc_auc(scores, labels):.2f})")
    ax.plot([0, 1], [0, 1], color="grey", linewidth=0.6)
    ax.set_xlabel("1 - specificity")
    ax.set_ylabel("sensitivity")
    ax.set_title("stress TPD: visible perfusion defect", fontsize=9)
    ax.legend(fontsize=7)
    return fig


def chosen_studies(clinical: pd.DataFrame, methods: list[str]) -> dict[str, str]:
    """Up to three stress studies to show: a normal, the largest CT-AC defect, the worst disagreement."""
    stress = clinical[(clinical["state"] == "stress") & clinical["lv_found"].astype(bool)]
    ref = stress[stress["method"] == REFERENCE].set_index("case_id")
    chosen: dict[str, str] = {}
    normal = ref[ref["truth_abnormal"].eq(False)]
    if len(normal):
        chosen[str(normal["tpd"].idxmin())] = "normal"
    defect = ref[ref["truth_abnormal"].eq(True)]
    if len(defect):
        chosen.setdefault(str(defect["tpd"].idxmax()), "largest defect")
    others = stress[stress["method"].isin([m for m in methods if m not in (NC, REFERENCE)])]
    if len(others):
        gap = (others.set_index("case_id")["tpd"] - ref["tpd"].reindex(others["case_id"]).to_numpy()).abs().dropna()
        if len(gap):
            chosen.setdefault(str(gap.idxmax()), "largest disagreement")
    # a study is shown only when every method found its LV
    return {k: v for k, v in chosen.items() if (stress["case_id"] == k).sum() == len(methods)}
