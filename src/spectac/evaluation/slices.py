"""Report section: slices of every method beside CT-AC and its difference, for chosen studies.

Display convention of nuclear-medicine workstations: transaxial slices seen from the feet
(patient's right on the viewer's left, anterior at the top), coronal slices seen from the front
(patient's right on the viewer's left, head at the top). Each study's slices pass through the LV
centre found in CT-AC and share one colour scale (the CT-AC maximum); differences are
method - CT-AC on a symmetric scale.
"""

from __future__ import annotations

import numpy as np

from spectac.evaluation.harness import EvaluationContext, register_evaluator
from spectac.evaluation.heart import lv_centre
from spectac.evaluation.report import ReportSection, figure_png, paragraph, png_html
from spectac.io.nifti import read_nifti

REFERENCE = "ac"
STUDIES_SHOWN = 2


def transaxial(volume: np.ndarray, z: int) -> np.ndarray:
    """(rows y anterior->posterior, columns x patient's right->left) slice: LPS arrays have x
    growing to the left, so the viewer sees the patient's right on the left as is."""
    return volume[:, :, z].T


def coronal(volume: np.ndarray, y: int) -> np.ndarray:
    """(rows z head->feet, columns x patient's right->left) slice."""
    return volume[:, y, :].T[::-1]


def chosen_cases(context: EvaluationContext) -> list[str]:
    """A study with a defect and one without when the truth is known, else the first studies."""
    with_defect = [c.case_id for c in context.cases if c.has_defect]
    without = [c.case_id for c in context.cases if c.has_defect is False]
    picked = (with_defect[:1] + without[:1]) or [c.case_id for c in context.cases]
    return picked[:STUDIES_SHOWN]


def study_figure(context: EvaluationContext, case_id: str) -> bytes:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    reference = context.dataset.load(case_id, REFERENCE)
    index = np.round(reference.index_of(lv_centre(reference))).astype(int)
    index = np.clip(index, 0, np.asarray(reference.shape) - 1)
    methods = [m for m in context.methods if m != REFERENCE]
    images = {m: read_nifti(context.prediction_path(m, case_id)).array for m in methods}
    ref = reference.array
    vmax = float(ref.max())
    rows = [(REFERENCE, ref), *images.items()]
    fig, axes = plt.subplots(len(rows), 4, figsize=(9, 2.2 * len(rows)), squeeze=False)
    for r, (name, image) in enumerate(rows):
        diff = image - ref
        panels = (
            (transaxial(image, index[2]), "gray_r", 0, vmax, "transaxial"),
            (coronal(image, index[1]), "gray_r", 0, vmax, "coronal"),
            (transaxial(diff, index[2]), "RdBu_r", -0.5 * vmax, 0.5 * vmax, "transaxial - CT-AC"),
            (coronal(diff, index[1]), "RdBu_r", -0.5 * vmax, 0.5 * vmax, "coronal - CT-AC"),
        )
        for c, (panel, cmap, lo, hi, label) in enumerate(panels):
            ax = axes[r, c]
            ax.imshow(panel, cmap=cmap, vmin=lo, vmax=hi, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(label, fontsize=9)
            if c == 0:
                ax.set_ylabel("CT-AC" if name == REFERENCE else name, fontsize=9)
            if r == 0 and c in (0, 1):
                ax.text(1, 1, "R", color="tab:red", fontsize=8, va="top")
                ax.text(panel.shape[1] - 2, 1, "L", color="tab:red", fontsize=8, va="top", ha="right")
    fig.suptitle(f"{case_id}: slices through the LV centre", fontsize=10)
    return figure_png(fig, dpi=90)


def evaluate_slices(context: EvaluationContext) -> list[ReportSection]:
    body = [
        paragraph(
            "Slices through the LV centre of CT-AC: transaxial seen from the feet and coronal seen from "
            "the front (the patient's right on the left, R/L marked), one grey scale per study (0 to the "
            "CT-AC maximum), and the difference to CT-AC (blue: fewer counts than CT-AC, red: more)."
        )
    ]
    for case_id in chosen_cases(context):
        case = context.dataset.case(case_id)
        label = f"{case_id} ({case.state}, defect: {case.defect_type or 'unknown'} {case.defect_territory})"
        body.append(paragraph(label))
        body.append(png_html(study_figure(context, case_id), alt=f"slices of {case_id}"))
    return [ReportSection("Slices: NC, corrections and CT-AC", "\n".join(body), order=40)]


register_evaluator("slices", evaluate_slices)
