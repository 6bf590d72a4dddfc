"""Image metrics of every method, and of CT-AC itself, against the phantom truth.

``spectac evaluate`` scores the methods against CT-AC, the clinical reference. In a simulated
dataset CT-AC is itself imperfect (noise, resolution, and a misregistered mu-map:
docs/simulation.md), so this evaluator also scores every method and CT-AC ("ac") against
truth.nii.gz, the true activity, inside the heart region found in CT-AC: ME and MAE in counts,
NMAE and NRMSE in percent of the truth's maximum inside that region. Writes RUN/metrics_truth.csv
(a row per study and method) and a report section (mean +- SD per method); does nothing when the
studies have no truth (imported clinical data).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from spectac.evaluation.context import EvaluationContext
from spectac.evaluation.heart import HEART_RADIUS_MM, heart_region
from spectac.evaluation.metrics import compute_mae, compute_me, compute_nmae, compute_nrmse
from spectac.evaluation.report import ReportSection, paragraph, table_html
from spectac.evaluation.stats import mean_sd_cell
from spectac.io.nifti import read_nifti
from spectac.io.run import write_csv

TRUTH_COLUMNS = ("me", "mae", "nmae", "nrmse")


def truth_metrics(prediction: np.ndarray, truth: np.ndarray, heart: np.ndarray) -> dict[str, float]:
    """The :data:`TRUTH_COLUMNS` of one prediction against the truth inside ``heart``."""
    peak = float(np.max(truth[heart]))
    return {"me": compute_me(prediction, truth, heart), "mae": compute_mae(prediction, truth, heart),
            "nmae": compute_nmae(prediction, truth, peak, heart), "nrmse": compute_nrmse(prediction, truth, peak, heart)}


def evaluate_against_truth(context: EvaluationContext) -> list[ReportSection]:
    dataset = context.dataset
    cases = [c for c in context.cases if dataset.has(c.case_id, "truth")]
    if not cases or len(cases) < len(context.cases):
        return []
    methods = ["ac", *(m for m in context.methods if m != "ac")]
    rows = []
    for case in cases:
        reference = dataset.load(case.case_id, "ac")
        truth = dataset.load(case.case_id, "truth").array
        heart = heart_region(reference, HEART_RADIUS_MM)
        for method in methods:
            image = reference if method == "ac" else read_nifti(context.prediction_path(method, case.case_id))
            rows.append({"case_id": case.case_id, "method": method, **truth_metrics(image.array, truth, heart)})
    frame = pd.DataFrame(rows, columns=["case_id", "method", *TRUTH_COLUMNS])
    context.outputs["metrics_truth"] = write_csv(frame, context.run / "metrics_truth.csv")
    table = pd.DataFrame({"method": methods, "n": [int((frame["method"] == m).sum()) for m in methods]})
    for col in TRUTH_COLUMNS:
        table[col.upper()] = [mean_sd_cell(float(frame.loc[frame["method"] == m, col].mean()),
                                           float(frame.loc[frame["method"] == m, col].std(ddof=1)), 2,
                                           int((frame["method"] == m).sum())) for m in methods]
    text = paragraph(
        "Every method and CT-AC (ac) against the phantom truth (truth.nii.gz) inside the heart region: ME and MAE "
        "in counts, NMAE and NRMSE in percent of the truth's maximum there. CT-AC is not the truth: noise, "
        "resolution and a misregistered mu-map. Per study: metrics_truth.csv."
    )
    return [ReportSection("Image quality against the phantom truth", text + table_html(table), order=415)]
