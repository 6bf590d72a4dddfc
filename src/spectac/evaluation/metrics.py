"""Image-quality metrics of a corrected image ``f`` against its CT-AC reference ``g`` (pure maths).

All functions take two arrays of the same shape (any number of dimensions, 3D in practice) and
an optional boolean ``mask`` restricting the average to a region; exact formulas are in
docs/evaluation.md. Values are in counts like the images (the convention of Chu Minh Duc et al., J. 108 Clin. Med. Pharm. 2023), except SSIM
(unitless), PSNR (dB) and the normalised errors (percent of the reference LV maximum).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from spectac.volume import SpectacError

SSIM_SIGMA = 1.5
SSIM_TRUNCATE = 3.5  # 11-tap window at sigma 1.5, as Wang et al. 2004 (and scikit-image)
SSIM_K1 = 0.01
SSIM_K2 = 0.03


def _pair(f: np.ndarray, g: np.ndarray, mask: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    f = np.asarray(f, dtype=np.float64)
    g = np.asarray(g, dtype=np.float64)
    if f.shape != g.shape:
        raise SpectacError(f"image shape {f.shape} differs from the reference shape {g.shape}")
    if mask is None:
        return f.ravel(), g.ravel()
    mask = np.asarray(mask, dtype=bool)
    if mask.shape != g.shape:
        raise SpectacError(f"mask shape {mask.shape} differs from the image shape {g.shape}")
    if not mask.any():
        raise SpectacError("the region mask is empty")
    return f[mask], g[mask]


def compute_me(f: np.ndarray, g: np.ndarray, mask: np.ndarray | None = None) -> float:
    """Mean error mean(f - g): positive when ``f`` overestimates the reference."""
    a, b = _pair(f, g, mask)
    return float(np.mean(a - b))


def compute_mae(f: np.ndarray, g: np.ndarray, mask: np.ndarray | None = None) -> float:
    """Mean absolute error mean|f - g|."""
    a, b = _pair(f, g, mask)
    return float(np.mean(np.abs(a - b)))


def compute_mse(f: np.ndarray, g: np.ndarray, mask: np.ndarray | None = None) -> float:
    a, b = _pair(f, g, mask)
    return float(np.mean((a - b) ** 2))


def compute_rmse(f: np.ndarray, g: np.ndarray, mask: np.ndarray | None = None) -> float:
    """Root mean squared error sqrt(mean((f - g)^2))."""
    return float(np.sqrt(compute_mse(f, g, mask)))


def compute_psnr(f: np.ndarray, g: np.ndarray, mask: np.ndarray | None = None) -> float:
    """Peak signal-to-noise ratio 10 log10(MAX^2 / MSE) in dB, MAX = maximum of the reference
    (inside ``mask`` when given). Infinite for identical images."""
    a, b = _pair(f, g, mask)
    mse = float(np.mean((a - b) ** 2))
    peak = float(np.max(b))
    if mse == 0:
        return float("inf")
    if peak <= 0:
        raise SpectacError("the reference has no positive maximum: PSNR is undefined")
    return float(10.0 * np.log10(peak**2 / mse))


def ssim_map(f: np.ndarray, g: np.ndarray, data_range: float | None = None) -> np.ndarray:
    """Local SSIM (Wang et al. 2004) with a Gaussian window (sigma 1.5, 11 taps).

    Args:
        f: image under test, any dimensionality.
        g: reference image of the same shape.
        data_range: dynamic range L in c1 = (K1 L)^2, c2 = (K2 L)^2; default max(g) - min(g).

    Returns:
        SSIM at every voxel (float64, same shape), local statistics from Gaussian-weighted
        moments with population (not sample) covariance and reflecting borders.
    """
    f = np.asarray(f, dtype=np.float64)
    g = np.asarray(g, dtype=np.float64)
    if f.shape != g.shape:
        raise SpectacError(f"image shape {f.shape} differs from the reference shape {g.shape}")
    if data_range is None:
        data_range = float(g.max() - g.min())
    if not data_range > 0:
        raise SpectacError("the reference is constant: SSIM needs a positive data range")

    def smooth(x: np.ndarray) -> np.ndarray:
        return ndimage.gaussian_filter(x, sigma=SSIM_SIGMA, truncate=SSIM_TRUNCATE, mode="reflect")

    mu_f, mu_g = smooth(f), smooth(g)
    var_f = smooth(f * f) - mu_f * mu_f
    var_g = smooth(g * g) - mu_g * mu_g
    cov = smooth(f * g) - mu_f * mu_g
    c1 = (SSIM_K1 * data_range) ** 2
    c2 = (SSIM_K2 * data_range) ** 2
    return ((2 * mu_f * mu_g + c1) * (2 * cov + c2)) / ((mu_f**2 + mu_g**2 + c1) * (var_f + var_g + c2))


def _ssim_border() -> int:
    return int(SSIM_TRUNCATE * SSIM_SIGMA + 0.5)


def compute_ssim(
    f: np.ndarray, g: np.ndarray, mask: np.ndarray | None = None, data_range: float | None = None
) -> float:
    """Mean SSIM. Over the whole image, the mean excludes a border of half a window (5 voxels),
    where the window leaves the image, as scikit-image does; inside ``mask`` it is the mean of the
    SSIM map over the mask. ``data_range`` defaults to max(g) - min(g) of the whole reference."""
    local = ssim_map(f, g, data_range)
    if mask is not None:
        mask = np.asarray(mask, dtype=bool)
        if mask.shape != local.shape:
            raise SpectacError(f"mask shape {mask.shape} differs from the image shape {local.shape}")
        if not mask.any():
            raise SpectacError("the region mask is empty")
        return float(local[mask].mean())
    pad = _ssim_border()
    if min(local.shape) <= 2 * pad:
        raise SpectacError(f"images of shape {local.shape} are too small for an 11-voxel SSIM window")
    return float(local[tuple(slice(pad, -pad) for _ in local.shape)].mean())


def compute_nmae(f: np.ndarray, g: np.ndarray, lv_max: float, mask: np.ndarray | None = None) -> float:
    """MAE in percent of the reference LV maximum: 100 * MAE / lv_max."""
    if not lv_max > 0:
        raise SpectacError("the reference LV maximum must be positive")
    return 100.0 * compute_mae(f, g, mask) / lv_max


def compute_nrmse(f: np.ndarray, g: np.ndarray, lv_max: float, mask: np.ndarray | None = None) -> float:
    """RMSE in percent of the reference LV maximum: 100 * RMSE / lv_max."""
    if not lv_max > 0:
        raise SpectacError("the reference LV maximum must be positive")
    return 100.0 * compute_rmse(f, g, mask) / lv_max


METRIC_NAMES = ("me", "mae", "rmse", "ssim", "psnr", "nmae", "nrmse")


def image_metrics(
    f: np.ndarray, g: np.ndarray, heart: np.ndarray | None = None, lv_max: float | None = None
) -> dict[str, float]:
    """All metrics of one image pair: whole volume, and ``heart_*`` inside the heart region.

    Args:
        f: (X, Y, Z) corrected image.
        g: (X, Y, Z) CT-AC reference.
        heart: (X, Y, Z) bool heart region; without it the heart metrics are omitted.
        lv_max: reference LV maximum for NMAE/NRMSE; default max(g) inside ``heart``, or max(g).

    Returns:
        {"me", "mae", "rmse", "ssim", "psnr", "nmae", "nrmse"} and the same keys prefixed
        "heart_" when a region is given.
    """
    if lv_max is None:
        lv_max = float(np.max(np.asarray(g)[heart])) if heart is not None else float(np.max(g))
    data_range = float(np.max(g) - np.min(g))
    out = {
        "me": compute_me(f, g),
        "mae": compute_mae(f, g),
        "rmse": compute_rmse(f, g),
        "ssim": compute_ssim(f, g, data_range=data_range),
        "psnr": compute_psnr(f, g),
        "nmae": compute_nmae(f, g, lv_max),
        "nrmse": compute_nrmse(f, g, lv_max),
    }
    if heart is not None:
        out.update(
            {
                "heart_me": compute_me(f, g, heart),
                "heart_mae": compute_mae(f, g, heart),
                "heart_rmse": compute_rmse(f, g, heart),
                "heart_ssim": compute_ssim(f, g, heart, data_range=data_range),
                "heart_psnr": compute_psnr(f, g, heart),
                "heart_nmae": compute_nmae(f, g, lv_max, heart),
                "heart_nrmse": compute_nrmse(f, g, lv_max, heart),
            }
        )
    return out
