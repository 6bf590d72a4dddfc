"""Resampling: the one place where spectac moves image values from one grid to another.

Every primitive here *interpolates*: a voxel of the output holds the (spline-interpolated) value of
the input at the output voxel's centre, so values keep their meaning (counts per voxel stay on the
input's scale, mu stays in 1/mm); nothing is summed or rebinned, so the total of an image changes
with the voxel volume. Points outside the input are 0 (``zoom_to_shape`` extends the edge instead).

None of them smooths on its own. Downsampling a finer image would then *sample* it (aliasing, a
thin wall hit or missed by chance); the callers that need an average low-pass the input first with
one of the two explicit pre-filters below, each documented with why its caller uses it:

- :func:`lowpass_for_import` (``io.importer``: a CT or mu-map onto a SPECT grid),
- :func:`lowpass_partial_volume` (``simulate``: a phantom's activity onto the simulation grid).

The primitives:

- :func:`sample_points`: values at arbitrary LPS points (reorientation, polar-map rays, the LV fit);
- :func:`onto_grid`: one volume onto another volume's grid (import);
- :func:`onto_centred_grid`: onto a grid of given shape and spacing, centred on a point (simulate);
- :func:`zoom_to_shape`: an array stretched to another shape over the same extent (deep models).

Each reproduces, operation for operation, the code its callers used before, so results are
bit-identical to theirs.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import ndimage


def world_to_index(affine_lps: np.ndarray, points_mm: np.ndarray) -> np.ndarray:
    """Voxel indices (..., 3) of LPS points (..., 3) in a grid with the 4x4 ``affine_lps``."""
    inv = np.linalg.inv(affine_lps)
    return points_mm @ inv[:3, :3].T + inv[:3, 3]


def sample_at_index(array: np.ndarray, index: np.ndarray, order: int = 1) -> np.ndarray:
    """Values of ``array`` at fractional voxel indices ``index`` (..., 3): (...) in the array's dtype.

    Interpolated (spline of ``order``; 1 = trilinear), no smoothing; indices outside the array give
    0 (``mode="constant"``, so the last half voxel at each face fades toward 0 as well).
    """
    return ndimage.map_coordinates(array, np.moveaxis(index, -1, 0), order=order, mode="constant", cval=0.0)


def sample_points(array: np.ndarray, affine_lps: np.ndarray, points_mm: np.ndarray, order: int = 1) -> np.ndarray:
    """Values of ``array`` (a grid with the 4x4 LPS ``affine_lps``) at LPS points (..., 3) -> (...).

    Interpolated, not summed, no smoothing; 0 outside the grid (see :func:`sample_at_index`). Used
    for rotated grids (``quant.reorient``), polar-map rays (``quant.polar``) and the LV shell fit
    (``quant.lv``), where the output samples are about as fine as the input and a sample is wanted.
    """
    return sample_at_index(array, world_to_index(affine_lps, points_mm), order)


def centred_points(shape: Sequence[int], spacing_mm: float, centre_mm: np.ndarray) -> np.ndarray:
    """LPS centres (*shape, 3) of an axis-aligned grid of ``shape`` and isotropic ``spacing_mm``
    whose middle is ``centre_mm``."""
    axes = [(np.arange(n) - (n - 1) / 2) * spacing_mm for n in shape]
    return np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1) + centre_mm


def onto_centred_grid(
    array: np.ndarray,
    affine_lps: np.ndarray,
    shape: Sequence[int],
    spacing_mm: float,
    centre_mm: np.ndarray,
    order: int = 1,
) -> np.ndarray:
    """``array`` resampled onto the axis-aligned grid of :func:`centred_points`.

    Interpolated at the target voxel centres, no smoothing (pre-filter with
    :func:`lowpass_partial_volume` to downsample); 0 outside the input.
    """
    return sample_points(array, affine_lps, centred_points(shape, spacing_mm, centre_mm), order)


def onto_grid(
    array: np.ndarray,
    affine_lps: np.ndarray,
    target_affine_lps: np.ndarray,
    shape: Sequence[int],
    order: int = 1,
) -> np.ndarray:
    """``array`` (grid ``affine_lps``) resampled onto the grid ``target_affine_lps`` of ``shape``.

    Interpolated at the target voxel centres (an affine transform of the index grid), no smoothing
    (pre-filter with :func:`lowpass_for_import` to downsample); 0 outside the input. Any
    orientation on either side.
    """
    matrix = np.linalg.inv(affine_lps) @ target_affine_lps
    return ndimage.affine_transform(
        array,
        matrix[:3, :3],
        offset=matrix[:3, 3],
        output_shape=tuple(shape),
        order=order,
        mode="constant",
        cval=0.0,
    )


def lowpass_for_import(array: np.ndarray, spacing: Sequence[float], target_spacing: Sequence[float]) -> np.ndarray:
    """Low-pass before :func:`onto_grid` when the input is much finer than the target.

    Along each input axis, where the target voxel (its *smallest* edge, ``min(target_spacing)``)
    spans more than 1.5 input voxels, a Gaussian of sigma 0.42 x that ratio (FWHM ~ one target
    voxel) with ``mode="nearest"`` edges; otherwise the array is returned untouched (same object).

    Why ``io.importer`` uses it: a 1 mm CT or mu-map onto a 6.8 mm SPECT grid must give each SPECT
    voxel the *average* attenuation it covers, not a sample of it; grids of about the same size are
    left sharp, and the AC series is put on its NC grid with no pre-filter at all (``smooth=False``).
    Values are averaged, not summed.
    """
    ratio = min(target_spacing) / np.asarray(spacing)
    sigma = np.where(ratio > 1.5, 0.42 * ratio, 0.0)
    if np.any(sigma > 0):
        return ndimage.gaussian_filter(array, sigma, mode="nearest")
    return array


def lowpass_partial_volume(array: np.ndarray, spacing: Sequence[float], target_spacing: float) -> np.ndarray:
    """Low-pass before :func:`onto_centred_grid` when any axis is downsampled.

    If any ``target_spacing / spacing`` ratio exceeds 1, a Gaussian of sigma 0.5 x (ratio - 1) per
    axis (0 where not downsampled) with scipy's default ``mode="reflect"`` edges; otherwise the
    array is returned untouched (same object).

    Why ``simulate`` uses it (for activity only): a phantom's small structures (a thin myocardial
    wall) must keep their mean value on the coarser simulation grid -- partial volume, as a real
    camera would see it -- instead of aliasing. This milder kernel than
    :func:`lowpass_for_import` (which matches a whole target voxel) is what every simulated data
    set was made with, so it stays. ``simulate`` resamples the mu-map without it
    (``mean_preserving=False``), as it always has.
    """
    ratio = np.asarray(target_spacing) / np.asarray(spacing)
    if np.any(ratio > 1):
        return ndimage.gaussian_filter(array, sigma=np.maximum(ratio - 1, 0) * 0.5)
    return array


def zoom_to_shape(array: np.ndarray, shape: Sequence[int], order: int = 1) -> np.ndarray:
    """``array`` stretched to ``shape`` over the same extent (voxel-grid-aligned zoom), float32.

    ``grid_mode=True``: the outer faces of the first and last voxels stay aligned, so a voxel of
    the output covers ``old_size x old_n / new_n``. Interpolated, not summed (counts per voxel stay
    on the input's scale), no smoothing; edges extend the nearest value (``mode="nearest"``), so
    nothing fades at the border. Used by ``correction.deep`` to bring a study to a network's
    training voxel size and the prediction back.
    """
    zoom = [n / m for n, m in zip(shape, array.shape)]
    out = ndimage.zoom(array, zoom, order=order, mode="nearest", grid_mode=True)
    return out[tuple(slice(0, n) for n in shape)].astype(np.float32)


def overlap_fraction(source_affine: np.ndarray, source_shape: Sequence[int], grid_affine: np.ndarray,
                     grid_shape: Sequence[int]) -> float:
    """Fraction of a grid's voxel centres that lie inside a source volume's field of view (both
    placed by their voxel-to-patient affines)."""
    matrix = np.linalg.inv(source_affine) @ grid_affine
    index = np.stack(np.meshgrid(*[np.arange(n) for n in grid_shape], indexing="ij"), axis=-1).reshape(-1, 3)
    inside = index @ matrix[:3, :3].T + matrix[:3, 3]
    ok = np.all((inside >= -0.5) & (inside <= np.asarray(source_shape) - 0.5), axis=1)
    return float(ok.mean())


def shift_mu(mu_map: np.ndarray, shift_mm: tuple[float, float, float], spacing_mm: float) -> np.ndarray:
    """The mu-map displaced by ``shift_mm`` (linear interpolation, air outside the grid)."""
    if not any(shift_mm):
        return mu_map
    moved = ndimage.shift(mu_map, np.asarray(shift_mm) / spacing_mm, order=1, mode="constant", cval=0.0)
    return np.maximum(moved, 0.0).astype(np.float32)
