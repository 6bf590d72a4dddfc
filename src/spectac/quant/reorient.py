"""Reorientation of a perfusion image to the cardiac axes: short axis (SA), horizontal long axis
(HLA) and vertical long axis (VLA) slices, in the display orientation of clinical software.

- SA: slices from apex to base; rows top = anterior, columns left = septal.
- HLA: slices from inferior to anterior; rows top = apex, columns left = septal.
- VLA: slices from septal to lateral; rows top = anterior, columns left = base, right = apex.
"""

from __future__ import annotations

import numpy as np

from spectac.quant.geometry import LVGeometry
from spectac.resample import sample_points
from spectac.volume import Volume


def resample_frame(
    volume: Volume,
    centre_mm: np.ndarray,
    axes: np.ndarray,
    shape: tuple[int, int, int],
    spacing_mm: float,
    order: int = 1,
) -> np.ndarray:
    """Sample ``volume`` on a rotated grid.

    Args:
        volume: the image (X, Y, Z).
        centre_mm: (3,) LPS point at the centre of the output grid.
        axes: (3, 3) rows are the LPS unit directions of the output axes 0, 1, 2.
        shape: output shape (K, I, J).
        spacing_mm: output voxel size along all three axes.
        order: spline order of the interpolation (1 = trilinear).

    Returns:
        (K, I, J) float32 array; points outside the image are 0.
    """
    grids = [(np.arange(n) - (n - 1) / 2) * spacing_mm for n in shape]
    k, i, j = np.meshgrid(*grids, indexing="ij")
    pts = np.asarray(centre_mm)[None, None, None, :] + k[..., None] * axes[0] + i[..., None] * axes[1] + j[..., None] * axes[2]
    return sample_points(volume.array, volume.affine_lps, pts, order).astype(np.float32)


def _views(geom: LVGeometry) -> dict[str, np.ndarray]:
    a, s, ax = geom.anterior, geom.septal, geom.long_axis
    return {
        "sa": np.stack([-ax, -a, -s]),
        "hla": np.stack([a, -ax, -s]),
        "vla": np.stack([-s, -a, ax]),
    }


def view_axes(geom: LVGeometry, view: str) -> np.ndarray:
    """(3, 3) rows: the LPS directions of the slice, row and column axes of a view ("sa", "hla",
    "vla"), as :func:`reorient` lays them out; for sampling single slices with :func:`resample_frame`."""
    views = _views(geom)
    if view not in views:
        raise ValueError(f"unknown view {view!r}; choose sa, hla or vla")
    return views[view]


def reorient(
    volume: Volume, geom: LVGeometry, view: str = "sa", half_width_mm: float = 60.0, spacing_mm: float | None = None
) -> np.ndarray:
    """SA, HLA or VLA slices of the LV (see the module docstring for their orientation).

    Args:
        volume: the image (X, Y, Z).
        geom: the LV geometry (from :func:`spectac.quant.lv.detect_lv` or the truth).
        view: "sa", "hla" or "vla".
        half_width_mm: half the side of the cube around the LV centre that is resampled.
        spacing_mm: output voxel size (default: the smallest input spacing).

    Returns:
        (slices, rows, columns) float32 array.
    """
    axes = view_axes(geom, view)
    d = float(min(volume.spacing)) if spacing_mm is None else spacing_mm
    n = 2 * int(np.ceil(half_width_mm / d)) + 1
    return resample_frame(volume, geom.center_mm, axes, (n, n, n), d)


def short_axis(volume: Volume, geom: LVGeometry, **kwargs: float) -> np.ndarray:
    """SA slices, apex to base (see :func:`reorient`)."""
    return reorient(volume, geom, "sa", **kwargs)


def horizontal_long_axis(volume: Volume, geom: LVGeometry, **kwargs: float) -> np.ndarray:
    """HLA slices, inferior to anterior (see :func:`reorient`)."""
    return reorient(volume, geom, "hla", **kwargs)


def vertical_long_axis(volume: Volume, geom: LVGeometry, **kwargs: float) -> np.ndarray:
    """VLA slices, septal to lateral (see :func:`reorient`)."""
    return reorient(volume, geom, "vla", **kwargs)
