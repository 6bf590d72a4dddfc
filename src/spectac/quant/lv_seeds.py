"""Where the LV fit starts (:func:`spectac.quant.lv.detect_lv`, docs/quantification.md steps 1-2):
hot blobs of heart size that are not right-sided, and the centres where the image answers most to
a matched filter for a hot shell around a cold centre. Each seed carries its centre and main axes,
from which the fit's starting axes are taken.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy import ndimage

from spectac.volume import Volume


def blob_seeds(volume: Volume, smooth: np.ndarray) -> list[dict[str, Any]]:
    """Hot blobs of plausible size that are not right-sided, with their centroid and main axes.

    Each well-separated local maximum seeds a blob (the connected region above a fraction of its
    peak, within a heart-sized ball), so an LV colder than the liver or gut is still found.
    """
    voxel_ml = float(np.prod(volume.spacing)) / 1000.0
    top = float(np.percentile(smooth, 99.9))
    if top <= 0:
        return []
    body = smooth > 0.05 * top
    centre_index = np.array(ndimage.center_of_mass(body)) if body.any() else (np.array(volume.shape) - 1) / 2
    body_centre = volume.point_of(centre_index)
    # peaks of a more smoothed copy: one per organ rather than one per noise bump
    coarse = ndimage.gaussian_filter(smooth, [12.0 / s for s in volume.spacing])
    size = [max(3, round(40.0 / s) | 1) for s in volume.spacing]
    coarse_peaks = np.argwhere((coarse == ndimage.maximum_filter(coarse, size=size)) & (coarse > 0.1 * coarse.max()))
    # finer peaks too: an LV pressed against a hotter liver may show no peak of its own when coarse
    fine_size = [max(3, round(30.0 / s) | 1) for s in volume.spacing]
    fine_peaks = np.argwhere((smooth == ndimage.maximum_filter(smooth, size=fine_size)) & (smooth > 0.15 * top))
    peaks: list[np.ndarray] = []
    for group, image in ((coarse_peaks, coarse), (fine_peaks, smooth)):
        for peak in sorted(group.tolist(), key=lambda i: -image[tuple(i)]):
            peak_mm = volume.point_of(np.asarray(peak, float))
            if peak_mm[0] - body_centre[0] < -60.0:  # far right: liver
                continue
            # one seed per 25 mm: noise bumps of a hot liver or gut must not crowd out the LV
            if len(peaks) < 24 and all(np.linalg.norm(peak_mm - q) > 25.0 for q in peaks):
                peaks.append(peak_mm)
    ball_vox = np.ceil(55.0 / np.asarray(volume.spacing)).astype(int)
    found: list[dict[str, Any]] = []
    for peak_mm in peaks:
        peak = np.round(volume.index_of(peak_mm)).astype(int)
        lo = np.maximum(np.asarray(peak) - ball_vox, 0)
        hi = np.minimum(np.asarray(peak) + ball_vox + 1, volume.shape)
        box = tuple(slice(a, b) for a, b in zip(lo, hi))
        sub = smooth[box]
        idx = np.stack(np.meshgrid(*[np.arange(a, b) for a, b in zip(lo, hi)], indexing="ij"), -1).astype(np.float64)
        pts = idx @ volume.affine_lps[:3, :3].T + volume.affine_lps[:3, 3]
        dist = np.linalg.norm(pts - peak_mm, axis=-1)
        near = dist < 55.0
        # the seed: the hottest voxel close to the peak (a hotter organ may lie within the ball)
        at = np.unravel_index(np.argmax(np.where(dist < 20.0, sub, -np.inf)), sub.shape)
        local_peak = float(sub[at])
        for frac in (0.5, 0.7, 0.85):
            # a blob is kept within a heart-sized ball around its peak, so an LV touching the liver
            # or gut is not swallowed by them
            labels, _ = ndimage.label((sub > frac * local_peak) & near)
            mask = labels == labels[at]
            ml = float(mask.sum()) * voxel_ml
            if not 15 <= ml <= 450:
                continue
            blob = pts[mask]
            centre = blob.mean(axis=0)
            # the heart is left of the midline or near it; the liver lies to the right
            if centre[0] - body_centre[0] < -40.0:
                continue
            evals, evecs = np.linalg.eigh(np.cov((blob - centre).T))
            if 4 * np.sqrt(evals[-1]) > 150.0:  # far longer than any heart
                continue
            if all(np.linalg.norm(centre - c["centre"]) > 15.0 for c in found):
                found.append({"centre": centre, "axes": evecs[:, ::-1], "ml": ml})
    return found


def shell_kernel(spacing: tuple[float, float, float]) -> np.ndarray:
    """A zero-mean 3D kernel that answers to a hot spherical shell around a cold centre.

    Positive on radii 15-32 mm (the LV wall around its centroid), negative inside 10 mm (the
    cavity) and on 38-48 mm (around the heart); the two signs carry equal weight, so a uniform
    (solid) region, however hot, gives no response.
    """
    half = np.ceil(48.0 / np.asarray(spacing)).astype(int)
    grids = np.meshgrid(*[np.arange(-h, h + 1) * s for h, s in zip(half, spacing)], indexing="ij")
    r = np.sqrt(sum(g**2 for g in grids))
    wall = (r >= 15.0) & (r <= 32.0)
    cavity = r < 10.0
    around = (r >= 38.0) & (r <= 48.0)
    kernel = wall / wall.sum() - 0.5 * cavity / max(cavity.sum(), 1) - 0.5 * around / around.sum()
    return kernel.astype(np.float32)


def fftconvolve_same(image: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """``scipy.signal.fftconvolve(image, kernel, mode="same")`` step for step (the same FFT sizes,
    transforms and crop, so the same values; tests/test_onnx.py checks), without importing
    scipy.signal, which costs about a second of ``spectac correct``'s start-up."""
    from scipy import fft

    full = [a + b - 1 for a, b in zip(image.shape, kernel.shape)]
    shape = [fft.next_fast_len(n, True) for n in full]
    axes = list(range(image.ndim))
    product = fft.rfftn(image, shape, axes=axes) * fft.rfftn(kernel, shape, axes=axes)
    result = fft.irfftn(product, shape, axes=axes)
    start = [(f - n) // 2 for f, n in zip(full, image.shape)]
    return result[tuple(slice(b, b + n) for b, n in zip(start, image.shape))].copy()


def shell_filter_seeds(volume: Volume, smooth: np.ndarray, n: int = 6) -> list[dict[str, Any]]:
    """Centres where the image looks most like a hot shell around a cold centre (matched filter).

    Robust where blob seeds fail: an LV pressed against a liver or stomach of equal or higher
    uptake shows no local maximum of its own, but its cold cavity still answers the filter.
    """
    response = fftconvolve_same(smooth, shell_kernel(volume.spacing))
    size = [max(3, round(25.0 / s) | 1) for s in volume.spacing]
    peaks = np.argwhere((response == ndimage.maximum_filter(response, size=size)) & (response > 0))
    peaks = sorted(peaks.tolist(), key=lambda i: -response[tuple(i)])[:n]
    found = []
    # the 40 mm ball lies within 40 / spacing voxels of its centre along each array axis (the
    # direction cosines are orthonormal), so only that box is searched: the same points, in order
    reach = np.ceil(40.0 / np.asarray(volume.spacing)).astype(int)
    for peak in peaks:
        centre = volume.point_of(np.asarray(peak, float))
        box = tuple(slice(max(i - r, 0), i + r + 1) for i, r in zip(peak, reach))
        grid = volume.world_coordinates(box)
        near = np.linalg.norm(grid - centre, axis=-1) < 40.0
        local = smooth[box]
        hot = near & (local > 0.5 * local[near].max())
        pts = grid[hot]
        axes = np.linalg.eigh(np.cov((pts - pts.mean(axis=0)).T))[1][:, ::-1] if len(pts) > 4 else np.eye(3)
        found.append({"centre": centre, "axes": axes, "ml": float("nan")})
    return found
