"""Figures of the image-quality evaluation (matplotlib, Agg backend: no display needed)."""

from __future__ import annotations

from typing import Any

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

LABELS = {"me": "ME (counts)", "mae": "MAE (counts)", "rmse": "RMSE (counts)", "ssim": "SSIM", "psnr": "PSNR (dB)",
          "nmae": "NMAE (% LV max)", "nrmse": "NRMSE (% LV max)"}


def metric_boxplots(metrics: pd.DataFrame, columns: tuple[str, ...] = ("me", "mae", "rmse", "ssim", "psnr"),
                    title: str = "") -> Any:
    """Figure 3 of Chu Minh Duc et al., J. 108 Clin. Med. Pharm. 2023: one boxplot panel per metric, one box per method (studies as points).

    Args:
        metrics: a row per study and method with the metric columns.

    Returns:
        The matplotlib Figure (the caller saves and closes it).
    """
    methods = list(dict.fromkeys(metrics["method"]))
    fig, axes = plt.subplots(1, len(columns), figsize=(3.0 * len(columns), 3.6), squeeze=False)
    for ax, col in zip(axes[0], columns):
        data = [metrics.loc[metrics["method"] == m, col].to_numpy(float) for m in methods]
        data = [v[np.isfinite(v)] for v in data]  # PSNR is +inf for an image identical to its reference
        ax.boxplot(data, showfliers=True)
        ax.set_xticks(range(1, len(methods) + 1), methods, rotation=30, ha="right")
        ax.set_title(LABELS.get(col, col), fontsize=10)
        ax.grid(axis="y", alpha=0.3)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig
