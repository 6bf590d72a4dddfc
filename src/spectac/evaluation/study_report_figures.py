"""Figures of the study report (:mod:`spectac.evaluation.study_report`; matplotlib, Agg backend).

- Slices: NC beside AC in short axis (apex to base), vertical long axis (septal to lateral) and
  horizontal long axis (inferior to anterior), ``N_SLICES`` of each, reoriented with
  :func:`spectac.quant.reorient.reorient` (the display orientation of clinical software) along the
  LV axes found in AC (in NC when AC has none). Each row has its own colour scale, 0 to the
  image's maximum in the LV, in counts, so NC (a few times fewer counts) is read on its own scale
  as a workstation shows it. Without an LV in either image: transaxial slices seen from the feet
  and coronal slices seen from the front through the hottest compact blob
  (:func:`spectac.quant.centre.find_lv_centre`), as :mod:`spectac.evaluation.slices` shows them.
- Polar maps: :func:`spectac.quant.polar.plot_polar_map` of NC and AC (uptake normalised to the LV
  maximum), the 17 AHA segments numbered, the walls labelled ANT, SEPT, INF, LAT, and the samples
  below the normal limits (severity > 0) outlined.

``report`` below is a :class:`spectac.evaluation.study_report.StudyReport` (not imported: that
module imports this one).
"""

from __future__ import annotations

import textwrap
from typing import Any

import matplotlib

matplotlib.use("Agg")

import matplotlib.patheffects as patheffects
import matplotlib.pyplot as plt
import numpy as np

from spectac.quant.centre import find_lv_centre
from spectac.quant.geometry import LVGeometry
from spectac.quant.polar import ANGLES_DEG, N_ANGLES, N_RINGS, bullseye_image, plot_polar_map
from spectac.quant.reorient import resample_frame, view_axes
from spectac.quant.segments import SEGMENT_MAP
from spectac.volume import SpectacError, Volume

N_SLICES = 6
SPACING_MM = 2.0  # display resampling (trilinear)
HALF_WIDTH_MM = 50.0  # half the side of the displayed field around the LV
SLICE_CMAP = "hot"
POLAR_CMAP = "jet"
VIEWS = {"sa": "SA", "vla": "VLA", "hla": "HLA"}
#: Orientation marks of the first slice of each view (top, left, right), as reorient lays them out.
MARKS = {"sa": ("ANT", "SEPT", "LAT"), "vla": ("ANT", "BASE", "APEX"), "hla": ("APEX", "SEPT", "LAT"),
         "transaxial": ("A", "R", "L"), "coronal": ("H", "R", "L")}
A4_LANDSCAPE = (11.69, 8.27)


def display_geometry(report: Any) -> tuple[LVGeometry | None, str]:
    """The LV axes the slices are reoriented with: AC's, else NC's, else none."""
    nc, ac = report.images
    for image in (ac, nc):
        if image.quant is not None:
            return image.quant.geometry, f"axes of the LV found in {image.label}"
    return None, "no LV found: transaxial and coronal slices"


def _offsets(geom: LVGeometry, view: str) -> np.ndarray:
    """Where the shown slices lie along the view's slice axis, in mm from the LV centre."""
    if view == "sa":  # slice axis -long_axis: from near the apex to near the base
        u_centre = float((geom.center_mm - geom.base_mm) @ geom.long_axis)
        u = np.linspace(geom.length_mm, 0.1 * geom.length_mm, N_SLICES)
        return u_centre - u
    return np.linspace(-0.75, 0.75, N_SLICES) * geom.radius_mm


def _slices(volume: Volume, centre_mm: np.ndarray, axes: np.ndarray, offsets_mm: np.ndarray,
            half_width_mm: float = HALF_WIDTH_MM) -> list[np.ndarray]:
    """The planes at ``offsets_mm`` along ``axes[0]`` from ``centre_mm``, rows along ``axes[1]`` and
    columns along ``axes[2]`` (a :func:`spectac.quant.reorient.resample_frame` of one slice each)."""
    n = 2 * int(np.ceil(half_width_mm / SPACING_MM)) + 1
    return [resample_frame(volume, np.asarray(centre_mm) + t * axes[0], axes, (1, n, n), SPACING_MM)[0]
            for t in offsets_mm]


def _lv_maximum(volume: Volume, geom: LVGeometry) -> float:
    """The image's maximum within the LV: in a ball around its centre holding the wall, sampled on
    the short-axis planes every 4 mm."""
    reach = max(geom.radius_mm, 0.6 * geom.length_mm) + geom.wall_mm
    offsets = np.arange(-reach, reach + 1e-6, 4.0)
    planes = np.stack(_slices(volume, geom.center_mm, view_axes(geom, "sa"), offsets, reach))
    grid = (np.arange(planes.shape[1]) - (planes.shape[1] - 1) / 2) * SPACING_MM
    k, i, j = np.meshgrid(offsets, grid, grid, indexing="ij")
    inside = np.sqrt(k**2 + i**2 + j**2) <= reach
    peak = float(planes[inside].max())
    return peak if peak > 0 else 1.0


def slice_rows(report: Any) -> tuple[list[tuple[str, str, list[np.ndarray], float]], str]:
    """Rows of slices, (image label, view, slices, colour maximum), and how they were oriented."""
    geom, how = display_geometry(report)
    rows = []
    if geom is not None:
        peaks = {image.label: _lv_maximum(image.volume, geom) for image in report.images}
        for view in VIEWS:
            axes, offsets = view_axes(geom, view), _offsets(geom, view)
            for image in report.images:
                rows.append((image.label, view, _slices(image.volume, geom.center_mm, axes, offsets),
                             peaks[image.label]))
        return rows, how
    ac = report.images[1].volume
    try:
        centre = find_lv_centre(ac)
    except SpectacError:
        centre = ac.point_of((np.asarray(ac.shape) - 1) / 2)
    x, y, z = np.eye(3)
    for view, axes in (("transaxial", np.stack([z, y, x])), ("coronal", np.stack([y, -z, x]))):
        for image in report.images:  # seen from the feet / from the front, 2.5x the LV field
            slices = _slices(image.volume, centre, axes, np.linspace(-25.0, 25.0, N_SLICES), 2.5 * HALF_WIDTH_MM)
            rows.append((image.label, view, slices, max(float(max(s.max() for s in slices)), 1e-6)))
    return rows, how


def mosaic(slices: list[np.ndarray], gap: int = 2) -> np.ndarray:
    """The slices side by side, ``gap`` NaN columns between them (drawn in the background colour)."""
    h = slices[0].shape[0]
    parts = []
    for k, panel in enumerate(slices):
        if k:
            parts.append(np.full((h, gap), np.nan, np.float32))
        parts.append(panel)
    return np.concatenate(parts, axis=1)


def draw_slices(fig: Any, report: Any, rect: tuple[float, float, float, float]) -> None:
    """The slice rows in ``rect`` (left, bottom, right, top, figure fractions), one image and one
    colour bar per row (one axes per row keeps the figure quick to build)."""
    rows, how = report.slices if report.slices is not None else slice_rows(report)
    left, bottom, right, top = rect
    grid = fig.add_gridspec(len(rows), 1, left=left, right=right, bottom=bottom, top=top, hspace=0.06)
    cmap = matplotlib.colormaps[SLICE_CMAP].copy()
    cmap.set_bad("white")
    for r, (label, view, slices, peak) in enumerate(rows):
        ax = fig.add_subplot(grid[r, 0])
        ax.set_anchor("W")
        image = ax.imshow(mosaic(slices), cmap=cmap, vmin=0.0, vmax=peak, interpolation="bilinear")
        ax.set_xticks([])
        ax.set_yticks([])
        for spine in ax.spines.values():
            spine.set_visible(False)
        ax.set_ylabel(f"{VIEWS.get(view, view)} {label}", fontsize=8)
        if label == report.images[0].label:
            top_mark, left_mark, right_mark = MARKS[view]
            h, w = slices[0].shape
            style = {"color": "cyan", "fontsize": 5}
            ax.text(w / 2, 1, top_mark, ha="center", va="top", **style)
            ax.text(1, h / 2, left_mark, ha="left", va="center", rotation=90, **style)
            ax.text(w - 2, h / 2, right_mark, ha="right", va="center", rotation=90, **style)
        bar = fig.colorbar(image, cax=ax.inset_axes((1.01, 0.0, 0.018, 1.0)))
        bar.ax.tick_params(labelsize=5)
        bar.locator = matplotlib.ticker.MaxNLocator(3)
        bar.update_ticks()
    fig.text(left, top + 0.005, f"NC beside AC, {how}; colour: counts, 0 to each image's LV maximum",
             fontsize=7, va="bottom")


def _segment_label_positions() -> dict[int, tuple[float, float]]:
    """Where each AHA segment's number goes on the bull's-eye (the mean position of its samples)."""
    rho = (np.arange(N_RINGS) + 0.5) / N_RINGS
    theta = np.radians(ANGLES_DEG)
    x = -rho[:, None] * np.sin(theta)[None, :]  # AHA angle from anterior (top) toward septal (left)
    y = rho[:, None] * np.cos(theta)[None, :] * np.ones((1, N_ANGLES))
    return {int(s): (float(x[SEGMENT_MAP == s].mean()), float(y[SEGMENT_MAP == s].mean()))
            for s in np.unique(SEGMENT_MAP)}


def _polar_panel(ax: Any, image: Any, summed_name: str) -> Any:
    if image.quant is None:
        ax.set_axis_off()
        ax.text(0.5, 0.5, "\n".join(textwrap.wrap(f"{image.label}: no polar map. {image.missing}", 34)),
                ha="center", va="center", fontsize=7, transform=ax.transAxes)
        return None
    scores = image.quant.scores
    title = f"{image.label}: TPD {scores.tpd:.1f}%, {summed_name} {scores.summed_score}"
    shown = plot_polar_map(ax, image.quant.polar_map.values, title, vmin=0.0, vmax=1.0, cmap=POLAR_CMAP)
    below = bullseye_image((scores.severity > 0).astype(float))
    if np.nanmax(below) > 0:
        ax.contour(np.nan_to_num(below), levels=[0.5], colors="white", linewidths=1.0, linestyles="--",
                   extent=(-1, 1, 1, -1), origin="upper")
    stroke = [patheffects.withStroke(linewidth=1.5, foreground="black")]
    for segment, (x, y) in _segment_label_positions().items():
        ax.text(x, y, str(segment), ha="center", va="center", fontsize=5.5, color="white", path_effects=stroke)
    for text, x, y, rotation in (("ANT", 0, 1.14, 0), ("INF", 0, -1.14, 0), ("SEPT", -1.14, 0, 90),
                                 ("LAT", 1.14, 0, 270)):
        ax.text(x, y, text, ha="center", va="center", fontsize=7, rotation=rotation, fontweight="bold")
    ax.set_xlim(-1.25, 1.25)
    ax.set_ylim(-1.25, 1.25)
    ax.title.set_fontsize(8)
    return shown


def draw_polar(fig: Any, report: Any, rect: tuple[float, float, float, float], summed_name: str,
               stacked: bool = False) -> None:
    """The polar maps of NC and AC in ``rect``, side by side (``stacked``: one above the other),
    one colour bar below."""
    left, bottom, right, top = rect
    if stacked:
        grid = fig.add_gridspec(3, 1, left=left, right=right, bottom=bottom, top=top,
                                height_ratios=[1.0, 1.0, 0.04], hspace=0.18)
        cells, bar_cell = [grid[0, 0], grid[1, 0]], grid[2, 0]
    else:
        grid = fig.add_gridspec(2, 2, left=left, right=right, bottom=bottom, top=top, height_ratios=[1.0, 0.05],
                                hspace=0.15, wspace=0.08)
        cells, bar_cell = [grid[0, 0], grid[0, 1]], grid[1, :]
    shown = [_polar_panel(fig.add_subplot(c), image, summed_name) for c, image in zip(cells, report.images)]
    found = [s for s in shown if s is not None]
    bar_ax = fig.add_subplot(bar_cell)
    if found:
        bar = fig.colorbar(found[0], cax=bar_ax, orientation="horizontal")
        bar.set_label("uptake, fraction of the LV maximum (dashed: below the normal limits)", fontsize=6)
        bar.ax.tick_params(labelsize=6)
    else:
        bar_ax.set_axis_off()


def images_figure(report: Any, summed_name: str) -> Any:
    """Slices and polar maps, for the HTML page."""
    fig = plt.figure(figsize=(10.0, 7.0))
    draw_slices(fig, report, (0.03, 0.02, 0.64, 0.95))
    draw_polar(fig, report, (0.70, 0.04, 0.97, 0.95), summed_name, stacked=True)
    return fig


def page_figure(report: Any, summed_name: str, header: tuple[str, str], table: list[list[str]],
                lines: list[str], label: str) -> Any:
    """The one-page report (A4 landscape) for the PDF.

    Args:
        header: (title, patient line).
        table: the score rows (first row the column names).
        lines: the text below the table (limits, flags, quality, model), each wrapped to fit.
        label: the "not for diagnostic use" mark.
    """
    fig = plt.figure(figsize=A4_LANDSCAPE)
    fig.text(0.02, 0.975, header[0], fontsize=14, fontweight="bold", va="top")
    fig.text(0.98, 0.975, label.upper(), fontsize=13, fontweight="bold", color="#c00000", va="top", ha="right",
             bbox={"edgecolor": "#c00000", "facecolor": "none", "linewidth": 2, "boxstyle": "square,pad=0.3"})
    fig.text(0.02, 0.935, header[1], fontsize=8, va="top")
    draw_slices(fig, report, (0.05, 0.03, 0.60, 0.885))
    draw_polar(fig, report, (0.645, 0.585, 0.985, 0.90), summed_name)
    ax = fig.add_axes((0.635, 0.43, 0.355, 0.1))
    ax.set_axis_off()
    cells = ax.table(cellText=table[1:], colLabels=table[0], loc="upper center", cellLoc="center",
                     colWidths=[0.12, 0.14, 0.12, 0.62])
    cells.auto_set_font_size(False)
    cells.set_fontsize(6.5)
    cells.scale(1.0, 1.25)
    wrapped = [part for line in lines for part in textwrap.wrap(line, 74, subsequent_indent="  ") or [""]]
    size = 6.2 * min(1.0, 28 / max(len(wrapped), 1))  # 28 lines of 6.2 pt fill the space to the page's foot
    fig.text(0.635, 0.41, "\n".join(wrapped), fontsize=size, va="top", family="DejaVu Sans Mono", linespacing=1.3)
    return fig
