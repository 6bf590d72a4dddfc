"""Summary statistics of the per-study metrics: Table 1 and paired Wilcoxon tests (Holm-adjusted)."""

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
                    "p_value", "p_holm", "note")


def holm(p_values: np.ndarray) -> np.ndarray:
    """Holm's step-down adjusted p-values (Holm, Scand J Stat 1979): the i-th smallest of m
    p-values times (m - i + 1), made non-decreasing, capped at 1. NaN p-values stay NaN and are
    not counted in m. (scipy.stats.false_discovery_control adjusts for the FDR, not Holm's FWER.)"""
    p = np.asarray(p_values, dtype=np.float64)
    out = np.full(p.shape, np.nan)
    valid = np.flatnonzero(~np.isnan(p))
    order = valid[np.argsort(p[valid], kind="stable")]
    m = len(order)
    out[order] = np.minimum(1.0, np.maximum.accumulate((m - np.arange(m)) * p[order]))
    return out


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
            finite = np.isfinite(values).all()  # PSNR is +inf for an image identical to its reference
            row[f"{col}_mean"] = float(np.mean(values)) if len(values) else float("nan")
            row[f"{col}_sd"] = float(np.std(values, ddof=1)) if len(values) > 1 and finite else float("nan")
        rows.append(row)
    return pd.DataFrame(rows)


def mean_sd_cell(mean: float, sd: float, digits: int, n: int) -> str:
    """``mean ± SD``, or what stands in for a value that cannot be computed."""
    if np.isinf(mean) or (np.isnan(mean) and n > 0):
        # PSNR is infinite for a prediction identical to its reference (MSE 0)
        return "n/a: a study scores ±inf (image identical to CT-AC)"
    if np.isnan(mean):
        return "n/a: no study"
    sd_text = f"{sd:.{digits}f}" if np.isfinite(sd) else "n/a (one study)"
    return f"{mean:.{digits}f} ± {sd_text}"


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
            cells.append(mean_sd_cell(row[f"{c}_mean"], row[f"{c}_sd"], d, int(row["n"])))
        lines.append(f"| {row['method']} | {int(row['n'])} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def paired_wilcoxon(metrics: pd.DataFrame, columns: tuple[str, ...] = TEST_METRICS) -> pd.DataFrame:
    """Two-sided Wilcoxon signed-rank tests between every pair of methods, per metric,
    paired by case_id.

    Returns:
        Rows: metric, method_a, method_b, n, median_a, median_b, median_difference (a - b),
        statistic, p_value, p_holm (Holm-adjusted over the pairs of methods of that metric: one
        family per metric) and note (why the test is undefined: no pair, fewer than 2 pairs, all
        differences 0; then statistic and p-values are empty).
    """
    methods = list(dict.fromkeys(metrics["method"]))
    rows = []
    for col in columns:
        wide = metrics.pivot(index="case_id", columns="method", values=col)
        for a, b in itertools.combinations(methods, 2):
            pair = wide[[a, b]].dropna()  # every study is scored by every method (checked upstream)
            x, y = pair[a].to_numpy(float), pair[b].to_numpy(float)
            diff = x - y
            stat, p, note = float("nan"), float("nan"), ""
            if len(diff) < 2:
                note = f"n/a: {len(diff)} paired studies, the test needs 2"
            elif not np.all(np.isfinite(diff)):
                note = "n/a: a non-finite metric value"
            elif not np.any(diff != 0):
                note = "n/a: every difference is 0 (identical methods on this metric)"
            else:
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
                    "note": note,
                }
            )
    table = pd.DataFrame(rows, columns=list(WILCOXON_COLUMNS))
    for _, index in table.groupby("metric", sort=False).groups.items():
        table.loc[index, "p_holm"] = holm(table.loc[index, "p_value"].to_numpy(float))
    return table


def wilcoxon_display(tests: pd.DataFrame) -> pd.DataFrame:
    """The tests for the report: numbers formatted, and the reason where a test is undefined."""
    rows = []
    for _, r in tests.iterrows():
        undefined = bool(r["note"])
        rows.append({
            "metric": r["metric"], "method a": r["method_a"], "method b": r["method_b"], "n": int(r["n"]),
            "median a": f"{r['median_a']:.4g}" if np.isfinite(r["median_a"]) else "n/a: no study",
            "median b": f"{r['median_b']:.4g}" if np.isfinite(r["median_b"]) else "n/a: no study",
            "median a − b": f"{r['median_difference']:.4g}" if np.isfinite(r["median_difference"]) else "n/a: no study",
            "W": r["note"] if undefined else f"{r['statistic']:.4g}",
            "p": r["note"] if undefined else f"{r['p_value']:.3g}",
            "p (Holm)": r["note"] if undefined else f"{r['p_holm']:.3g}",
        })
    return pd.DataFrame(rows)
