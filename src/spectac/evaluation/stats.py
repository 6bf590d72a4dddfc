"""Summary statistics of the per-study metrics: Table 1 and paired Wilcoxon tests."""

from __future__ import annotations

import itertools
import warnings

import numpy as np
import pandas as pd
from scipy import stats

#: The paper's Table 1 columns plus NMAE.
TABLE1_METRICS = ("me", "mae", "rmse", "ssim", "psnr", "nmae")
TEST_METRICS = ("me", "mae", "rmse", "ssim", "psnr", "nmae", "nrmse")
WILCOXON_COLUMNS = ("metric", "method_a", "method_b", "n", "median_a", "median_b", "median_difference", "statistic",
                    "p_value")


def table1(metrics: pd.DataFrame, columns: tuple[str, ...] = TABLE1_METRICS) -> pd.DataFrame:
    """Mean and SD (ddof=1) of each metric per method, in the order the methods first appear.

    Returns:
        One row per method: method, n, then ``<metric>_mean`` and ``<metric>_sd``.
    """
    rows = []
    for method in dict.fromkeys(metrics["method"]):
        part = metrics[metrics["method"] == method]
        row: dict[str, object] = {"method": method, "n": len(part)}
        for col in columns:
            values = part[col].to_numpy(dtype=float)
            row[f"{col}_mean"] = float(np.mean(values))
            row[f"{col}_sd"] = float(np.std(values, ddof=1)) if len(values) > 1 else float("nan")
        rows.append(row)
    return pd.DataFrame(rows)


def table1_markdown(table: pd.DataFrame, columns: tuple[str, ...] = TABLE1_METRICS) -> str:
    """Table 1 as Markdown, ``mean ± SD`` per cell."""
    names = {"me": "ME", "mae": "MAE", "rmse": "RMSE", "ssim": "SSIM", "psnr": "PSNR (dB)", "nmae": "NMAE (%)",
             "nrmse": "NRMSE (%)"}
    digits = {"ssim": 3}
    header = "| method | n | " + " | ".join(names.get(c, c) for c in columns) + " |"
    lines = [header, "|" + "---|" * (len(columns) + 2)]
    for _, row in table.iterrows():
        cells = []
        for c in columns:
            d = digits.get(c, 2)
            cells.append(f"{row[f'{c}_mean']:.{d}f} ± {row[f'{c}_sd']:.{d}f}")
        lines.append(f"| {row['method']} | {int(row['n'])} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def paired_wilcoxon(metrics: pd.DataFrame, columns: tuple[str, ...] = TEST_METRICS) -> pd.DataFrame:
    """Two-sided Wilcoxon signed-rank tests between every pair of methods, per metric,
    paired by case_id.

    Returns:
        Rows: metric, method_a, method_b, n, median_a, median_b, median_difference (a - b),
        statistic, p_value (NaN when the test is undefined: fewer than 2 pairs or all differences 0).
    """
    methods = list(dict.fromkeys(metrics["method"]))
    rows = []
    for col in columns:
        wide = metrics.pivot(index="case_id", columns="method", values=col)
        for a, b in itertools.combinations(methods, 2):
            pair = wide[[a, b]].dropna()  # every study is scored by every method (checked upstream)
            x, y = pair[a].to_numpy(float), pair[b].to_numpy(float)
            diff = x - y
            stat, p = float("nan"), float("nan")
            if len(diff) >= 2 and np.any(diff != 0) and np.all(np.isfinite(diff)):
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")  # scipy warns on small samples / ties
                    result = stats.wilcoxon(x, y)
                stat, p = float(result.statistic), float(result.pvalue)
            rows.append(
                {
                    "metric": col,
                    "method_a": a,
                    "method_b": b,
                    "n": len(diff),
                    "median_a": float(np.median(x)) if len(x) else float("nan"),
                    "median_b": float(np.median(y)) if len(y) else float("nan"),
                    "median_difference": float(np.median(diff)) if len(diff) else float("nan"),
                    "statistic": stat,
                    "p_value": p,
                }
            )
    return pd.DataFrame(rows, columns=list(WILCOXON_COLUMNS))
