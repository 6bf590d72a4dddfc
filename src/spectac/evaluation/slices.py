"""Report section: slices of every method beside CT-AC and its difference, for chosen studies.

Display convention of nuclear-medicine workstations: transaxial slices seen from the feet
(patient's right on the viewer's left, anterior at the top), coronal slices seen from the front
(patient's right on the viewer's left, head at the top). Each study's slices pass through the LV
centre found in CT-AC, are cropped to a field of ``FIELD_MM`` around it so the heart is large
enough to read, and share one grey scale: 0 to the CT-AC LV maximum (not the liver's). NC, which
holds a few times fewer counts, gets its own scale (0 to its maximum near the LV), as a
workstation shows it. Differences are method - CT-AC on a symmetric scale (+-50% of the LV
maximum).
"""

from __future__ import annotations

import numpy as np

from spectac.evaluation.context import EvaluationContext
from spectac.evaluation.report import ReportSection, figure_png, paragraph, png_html
from spectac.io.nifti import read_nifti
from spectac.quant.centre import lv_centre_and_maximum, sphere_mask

REFERENCE = "ac"
STUDIES_SHOWN = 2
FIELD_MM = 260.0  # side of the displayed field, centred on the LV
NC_SCALE_RADIUS_MM = 30.0


def transaxial(volume: np.ndarray, z: int) -> np.ndarray:
    """(rows y anterior->posterior, columns x patient's right->left) slice: LPS arrays have x
    growing to the left, so the viewer sees the patient's right on the left as is."""
    return volume[:, :, z].T


def coronal(volume: np.ndarray, y: int) -> np.ndarray:
    """(rows z head->feet, columns x patient's right->left) slice."""
    return volume[:, y, :].T[::-1]


def _window(centre: int, size: int, n: int) -> slice:
    """``size`` voxels around ``centre`` inside [0, n)."""
    start = int(np.clip(centre - size // 2, 0, max(n - size, 0)))
    return slice(start, min(start + size, n))


def chosen_cases(context: EvaluationContext) -> list[str]:
    """A study with a defect and one without when the truth is known, filled up with the first
    other studies (a cohort where every study has a defect still shows STUDIES_SHOWN)."""
    with_defect = [c.case_id for c in context.cases if c.has_defect]
    without = [c.case_id for c in context.cases if c.has_defect is False]
    picked = with_defect[:1] + without[:1]
    picked += [c.case_id for c in context.cases if c.case_id not in picked]
    return picked[:STUDIES_SHOWN]


def study_figure(context: EvaluationContext, case_id: str) -> bytes:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    reference = context.dataset.load(case_id, REFERENCE)
    centre_mm, vmax = lv_centre_and_maximum(reference)
    index = np.clip(np.round(reference.index_of(centre_mm)).astype(int), 0, np.asarray(reference.shape) - 1)
    near_lv = sphere_mask(reference, centre_mm, NC_SCALE_RADIUS_MM)
    size = [max(8, round(FIELD_MM / s)) for s in reference.spacing]
    wx, wy, wz = (_window(int(i), k, n) for i, k, n in zip(index, size, reference.shape))
    methods = [m for m in context.methods if m != REFERENCE]
    images = {m: read_nifti(context.prediction_path(m, case_id)).array for m in methods}
    ref = reference.array
    rows = [(REFERENCE, ref), *images.items()]
    fig, axes = plt.subplots(len(rows), 4, figsize=(8.4, 2.1 * len(rows) + 0.4), squeeze=False, layout="constrained")
    for r, (name, image) in enumerate(rows):
        diff = image - ref
        own = float(image[near_lv].max()) if name == "nc" and near_lv.any() else vmax
        panels = (
            (transaxial(image[wx, wy], index[2]), "gray_r", 0, own or 1.0, "transaxial"),
            (coronal(image[wx, :, wz], index[1]), "gray_r", 0, own or 1.0, "coronal"),
            (transaxial(diff[wx, wy], index[2]), "RdBu_r", -0.5 * vmax, 0.5 * vmax, "transaxial - CT-AC"),
            (coronal(diff[wx, :, wz], index[1]), "RdBu_r", -0.5 * vmax, 0.5 * vmax, "coronal - CT-AC"),
        )
        for c, (panel, cmap, lo, hi, label) in enumerate(panels):
            ax = axes[r, c]
            ax.imshow(panel, cmap=cmap, vmin=lo, vmax=hi, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(label, fontsize=9)
            if c == 0:
                title = "CT-AC" if name == REFERENCE else name
                ax.set_ylabel(f"{title}\n(own scale)" if own != vmax else title, fontsize=9)
            if r == 0 and c in (0, 1):
                top, bottom = ("A", "P") if c == 0 else ("H", "F")
                h, w = panel.shape
                for text, x, y, ha, va in (("R", 0.5, h / 2, "left", "center"), ("L", w - 1.5, h / 2, "right", "center"),
                                           (top, w / 2, 0.5, "center", "top"), (bottom, w / 2, h - 1.5, "center", "bottom")):
                    ax.text(x, y, text, color="tab:red", fontsize=8, ha=ha, va=va)
    fig.suptitle(f"{case_id}: slices through the LV centre ({FIELD_MM:.0f} mm field)", fontsize=10)
    return figure_png(fig, dpi=90)


def evaluate_slices(context: EvaluationContext) -> list[ReportSection]:
    body = [
        paragraph(
            "Slices through the LV centre of CT-AC: transaxial seen from the feet and coronal seen from "
            "the front (the patient's right on the left; R/L, A/P and H/F marked), one grey scale per "
            "study (0 to the CT-AC LV maximum; NC on its own scale, as it holds a few times fewer counts), "
            "and the difference to CT-AC on +-50% of the LV maximum (blue: fewer counts than CT-AC, red: more)."
        )
    ]
    for case_id in chosen_cases(context):
        case = context.dataset.case(case_id)
        label = f"{case_id} ({case.state}, defect: {case.defect_type or 'unknown'} {case.defect_territory})"
        body.append(paragraph(label))
        body.append(png_html(study_figure(context, case_id), alt=f"slices of {case_id}"))
    return [ReportSection("Slices: NC, corrections and CT-AC", "\n".join(body), order=490)]

