"""``spectac evaluate``: score every method's predictions of a run against CT-AC.

Layers (nnU-Net style): pure maths in :mod:`spectac.evaluation.metrics`; one study in
:func:`score_study`; a whole run in :func:`evaluate_run`; the CLI only parses and prints.

:func:`evaluate_run` reads ``RUN/predictions/<method>/<case_id>.nii.gz`` for every method
folder and every study of the split, and writes (each file atomically):

- ``RUN/metrics.csv``: a row per study and method (whole volume and ``heart_*`` columns);
- ``RUN/table1.csv`` and ``RUN/table1.md``: mean +- SD per method (the paper's Table 1 + NMAE);
- ``RUN/figure3_boxplots.png``: the paper's Figure 3;
- ``RUN/wilcoxon.csv``: paired Wilcoxon signed-rank tests between methods (Holm-adjusted p per metric);
- ``RUN/metrics_truth.csv``: every method and CT-AC against the phantom truth, when the dataset has it
  (:mod:`spectac.evaluation.against_truth`);
- ``RUN/report.html``: a one-screen summary first (:mod:`spectac.evaluation.summary`), then the
  sections of every registered evaluator (clinical agreement, detection) and the image metrics.

Every study of the split must be scorable by every method: a missing prediction or reference, or
a prediction on another grid, stops the evaluation with an error naming the file before anything
is written, so no mean silently leaves a study out.

Extending the evaluation
------------------------
Other stages (clinical quantification, detection) add outputs and report sections with an
evaluator (:mod:`spectac.evaluation.context`): a function of the run's context that may write its
own files into ``context.run`` and returns report sections. Evaluators run in the order of :data:`EVALUATORS` after the image metrics, with the per-study
metrics already in ``context.metrics``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from spectac.evaluation.against_truth import evaluate_against_truth
from spectac.evaluation.clinical import evaluate_clinical
from spectac.evaluation.context import EvaluationContext, Evaluator
from spectac.evaluation.figures import metric_boxplots
from spectac.evaluation.heart import HEART_RADIUS_MM, heart_region_and_lv_max
from spectac.evaluation.metrics import image_metrics
from spectac.evaluation.report import ReportSection, figure_png, paragraph, png_html, table_html, write_report
from spectac.evaluation.slices import evaluate_slices
from spectac.evaluation.stats import (
    TABLE1_METRICS,
    mean_sd_cell,
    paired_wilcoxon,
    table1,
    table1_markdown,
    wilcoxon_display,
)
from spectac.evaluation.summary import summary_section, summary_table
from spectac.io.atomic import write_bytes_atomic, write_text_atomic
from spectac.io.dataset import Case, Dataset
from spectac.io.nifti import read_nifti
from spectac.io.run import RunFolder, write_csv
from spectac.progress import track
from spectac.volume import SpectacError, Volume

METRIC_COLUMNS = ("me", "mae", "rmse", "ssim", "psnr", "nmae", "nrmse")
HEART_COLUMNS = tuple(f"heart_{c}" for c in METRIC_COLUMNS)
CSV_COLUMNS = ("case_id", "method", *METRIC_COLUMNS, *HEART_COLUMNS, "lv_max")


#: The evaluators :func:`evaluate_run` runs after the image metrics, in this order. A new one is a
#: row here (tests add a probe with ``monkeypatch.setitem``).
EVALUATORS: dict[str, Evaluator] = {"slices": evaluate_slices, "truth": evaluate_against_truth,
                                     "clinical": evaluate_clinical}


# ---- one study ---------------------------------------------------------------------------------


def check_prediction_grid(prediction: Volume, reference: Volume, where: Path, reference_path: Path) -> None:
    if prediction.shape != reference.shape:
        raise SpectacError(
            f"{where}: shape {prediction.shape} differs from the reference {reference_path} shape {reference.shape}"
        )
    if not prediction.same_grid(reference, atol_mm=1e-2):
        raise SpectacError(f"{where}: voxel grid (spacing/origin/orientation) differs from the reference {reference_path}")


def score_study(prediction: Volume, reference: Volume, heart: np.ndarray, lv_max: float) -> dict[str, float]:
    """All image metrics of one prediction against its CT-AC reference (same grid).

    Args:
        prediction: the corrected volume.
        reference: the CT-AC volume.
        heart: (X, Y, Z) bool heart region in the reference.
        lv_max: the reference's LV maximum in counts (normalises NMAE/NRMSE;
            :func:`~spectac.evaluation.heart.heart_region_and_lv_max`).

    Returns:
        The metric columns of metrics.csv, plus ``lv_max``.
    """
    out = image_metrics(prediction.array, reference.array, heart=heart, lv_max=lv_max)
    out["lv_max"] = lv_max
    return out


# ---- a run -------------------------------------------------------------------------------------


def run_methods(run: Path) -> list[str]:
    """The method folders of RUN/predictions that hold at least one prediction (sorted, "nc" first)."""
    folder = RunFolder(run)
    root = folder.predictions_root
    if not root.is_dir():
        raise SpectacError(f"{root}: no predictions folder; run `spectac predict` first")
    methods = folder.methods()
    if not methods:
        raise SpectacError(f"{root}: no predictions (no <method>/<case_id>.nii.gz); run `spectac predict` first")
    return methods


def compute_metrics(dataset: Dataset, run: Path, cases: list[Case], methods: list[str]) -> pd.DataFrame:
    """Score every (study, method); refuse anything that cannot be scored."""
    # Check every file exists before the (slow) scoring, so a mistake shows at once.
    known = {c.case_id for c in dataset.cases}
    folder = RunFolder(run)
    for method in methods:
        for case in cases:
            if not folder.has_prediction(method, case.case_id):
                path = folder.prediction_path(method, case.case_id)
                raise SpectacError(f"{path}: missing prediction of study {case.case_id} by method {method}")
        for case_id, path in folder.prediction_files(method).items():
            if case_id not in known:
                raise SpectacError(f"{path}: study {case_id} is not in the dataset {dataset.root}")
    for case in cases:
        if not dataset.has(case.case_id, "ac"):
            raise SpectacError(f"{dataset.path(case.case_id, 'ac')}: missing study volume (CT-AC reference)")

    rows = []
    for case in track(cases, "evaluate", total=len(cases)):
        reference_path = dataset.path(case.case_id, "ac")
        reference = dataset.load(case.case_id, "ac")
        try:
            heart, lv_max = heart_region_and_lv_max(reference, HEART_RADIUS_MM)
        except SpectacError as exc:
            raise SpectacError(f"{reference_path}: {exc}") from None
        for method in methods:
            path = folder.prediction_path(method, case.case_id)
            prediction = read_nifti(path)
            check_prediction_grid(prediction, reference, path, reference_path)
            try:
                scores = score_study(prediction, reference, heart, lv_max)
            except SpectacError as exc:
                raise SpectacError(f"{path}: cannot be scored ({exc})") from exc
            rows.append({"case_id": case.case_id, "method": method, **scores})
    return pd.DataFrame(rows, columns=list(CSV_COLUMNS))


def image_quality_sections(metrics: pd.DataFrame, table: pd.DataFrame, tests: pd.DataFrame, figure: bytes,
                           split: str | None) -> list[ReportSection]:
    heart = metrics[["case_id", "method", *HEART_COLUMNS]].rename(columns=dict(zip(HEART_COLUMNS, METRIC_COLUMNS)))
    heart_table = table1(heart)
    mae_tests = tests[tests["metric"] == "mae"]  # the report keeps one metric; the CSV has them all
    return [
        ReportSection(
            "Image quality against CT-AC (Table 1)",
            paragraph(
                f"Whole-volume metrics per method over the {len(set(metrics['case_id']))} studies of split "
                f"'{split or 'all'}', mean ± SD. ME, MAE and RMSE in counts, PSNR with MAX = reference maximum, "
                "SSIM 3D with a Gaussian window (sigma 1.5), NMAE in percent of the reference LV maximum."
            )
            + _markdown_table_html(table),
            order=400,
        ),
        ReportSection(
            "Heart region",
            paragraph(f"The same metrics inside a {HEART_RADIUS_MM:.0f} mm sphere around the LV found in CT-AC.")
            + _markdown_table_html(heart_table),
            order=410,
        ),
        ReportSection("Distribution per study (Figure 3)", png_html(figure, "boxplots of the metrics per method"),
                      order=420),
        ReportSection(
            "Paired Wilcoxon signed-rank tests",
            paragraph("MAE, two-sided, paired by study; p (Holm): adjusted for the pairs of methods compared on "
                      "this metric. Every metric is in RUN/wilcoxon.csv.") + table_html(wilcoxon_display(mae_tests)),
            order=430,
        ),
    ]


def _markdown_table_html(table: pd.DataFrame) -> str:
    frame = pd.DataFrame({"method": table["method"], "n": table["n"]})
    for col in TABLE1_METRICS:
        digits = 3 if col == "ssim" else 2
        frame[col.upper()] = [mean_sd_cell(m, s, digits, int(n))
                              for m, s, n in zip(table[f"{col}_mean"], table[f"{col}_sd"], table["n"])]
    return table_html(frame)


def evaluate_run(data: str | Path, run: str | Path, split: str | None = "test") -> dict[str, Any]:
    """Score the predictions of a run and write metrics, Table 1, Figure 3, tests and the report.

    Args:
        data: dataset folder (the CT-AC references).
        run: run folder holding ``predictions/<method>/``.
        split: 'train', 'val', 'test', or None/'all'.

    Returns:
        {"methods", "studies", "outputs": {name: path}, "table1": DataFrame}.

    Raises:
        SpectacError: no predictions, a missing prediction or reference, a prediction on another
            grid, an unscorable study, or an empty split.
    """
    dataset = Dataset.open(data)
    run = Path(run)
    methods = run_methods(run)
    cases = dataset.split(split)
    if not cases:
        raise SpectacError(f"{dataset.root}: no study in split {split!r}")
    metrics = compute_metrics(dataset, run, cases, methods)
    table = table1(metrics)
    tests = paired_wilcoxon(metrics)
    figure = figure_png(metric_boxplots(metrics, title=f"split {split or 'all'}"))

    folder = RunFolder(run)
    outputs = {
        "metrics": write_csv(metrics, folder.metrics_csv),
        "table1_csv": write_csv(table, folder.table1_csv),
        "table1_md": folder.table1_md,
        "figure3": folder.figure3_png,
        "wilcoxon": folder.wilcoxon_csv,
    }
    write_text_atomic(outputs["table1_md"], table1_markdown(table))
    write_bytes_atomic(outputs["figure3"], figure, suffix=".png")
    write_csv(tests, outputs["wilcoxon"])

    sections = image_quality_sections(metrics, table, tests, figure, split)
    context = EvaluationContext(dataset, run, split, cases, methods, metrics)
    for evaluator in EVALUATORS.values():
        sections.extend(evaluator(context))
    outputs.update(context.outputs)
    patient_of = {case.case_id: case.patient_id for case in cases}
    clinical = context.tables.get("clinical")
    sections.append(summary_section(summary_table(metrics, patient_of, clinical), tests, split,
                                    "" if clinical is not None else "clinical quantification not run (its section says why)"))
    outputs["report"] = write_report(run, sections, title="spectac evaluation",
                                     meta=f"dataset {dataset.root}, run {run}, split {split or 'all'};")
    return {"methods": methods, "studies": len(cases), "outputs": outputs, "table1": table}
