"""Our image metrics against scikit-image and against their definitions."""

from __future__ import annotations

import numpy as np
import pytest
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from spectac.evaluation.metrics import (
    compute_mae,
    compute_me,
    compute_nmae,
    compute_nrmse,
    compute_psnr,
    compute_rmse,
    compute_ssim,
    image_metrics,
)
from spectac.volume import SpectacError


def _pair(shape: tuple[int, ...], seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    grid = np.meshgrid(*[np.linspace(-1, 1, n) for n in shape], indexing="ij")
    ref = 200.0 * np.exp(-sum(g**2 for g in grid) / 0.3) + rng.poisson(5.0, shape)
    test = 0.8 * ref + rng.normal(0, 10.0, shape) + 3.0
    return test.astype(np.float32), ref.astype(np.float32)


@pytest.mark.parametrize("shape", [(16, 16, 16), (24, 20, 18), (32, 32), (13, 17, 11)])
def test_ssim_matches_scikit_image(shape: tuple[int, ...]) -> None:
    f, g = _pair(shape, seed=len(shape) + shape[0])
    data_range = float(g.max() - g.min())
    expected = structural_similarity(
        f, g, gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=data_range
    )
    assert compute_ssim(f, g) == pytest.approx(expected, rel=1e-6, abs=1e-9)


@pytest.mark.parametrize("shape", [(16, 16, 16), (24, 20, 18), (7, 9, 5)])
def test_psnr_matches_scikit_image(shape: tuple[int, ...]) -> None:
    f, g = _pair(shape, seed=3)
    # skimage's data_range is our MAX (the reference maximum).
    expected = peak_signal_noise_ratio(g, f, data_range=float(g.max()))
    assert compute_psnr(f, g) == pytest.approx(expected, rel=1e-9)


def test_ssim_is_one_for_identical_images_and_drops_with_noise() -> None:
    f, g = _pair((16, 16, 16), seed=1)
    assert compute_ssim(g, g) == pytest.approx(1.0)
    assert compute_ssim(f, g) < 0.99


def test_error_metrics_follow_their_definitions() -> None:
    g = np.zeros((4, 4, 4))
    f = g.copy()
    f[0, 0, 0] = 8.0  # one voxel off by 8 in 64
    f[1, 0, 0] = -8.0
    assert compute_me(f, g) == pytest.approx(0.0)
    assert compute_mae(f, g) == pytest.approx(16 / 64)
    assert compute_rmse(f, g) == pytest.approx(np.sqrt(128 / 64))
    assert compute_nmae(f, g, lv_max=50.0) == pytest.approx(100 * 0.25 / 50)
    assert compute_nrmse(f, g, lv_max=50.0) == pytest.approx(100 * np.sqrt(2) / 50)
    mask = np.zeros_like(g, dtype=bool)
    mask[0] = True  # 16 voxels, one of them off by +8
    assert compute_me(f, g, mask) == pytest.approx(0.5)


def test_image_metrics_in_a_region_ignore_what_is_outside() -> None:
    f, g = _pair((16, 16, 16), seed=5)
    heart = np.zeros(g.shape, dtype=bool)
    heart[4:12, 4:12, 4:12] = True
    spoiled = f.copy()
    spoiled[~heart] += 1000.0
    a = image_metrics(f, g, heart=heart)
    b = image_metrics(spoiled, g, heart=heart)
    for key in ("heart_me", "heart_mae", "heart_rmse", "heart_psnr", "heart_nmae"):
        assert a[key] == pytest.approx(b[key])
    assert b["mae"] > a["mae"] + 500
    assert a["heart_nmae"] == pytest.approx(100 * a["heart_mae"] / g[heart].max())


def test_mismatched_shapes_are_refused() -> None:
    with pytest.raises(SpectacError, match="shape"):
        compute_mae(np.zeros((4, 4, 4)), np.zeros((4, 4, 5)))
    with pytest.raises(SpectacError, match="too small"):
        compute_ssim(np.ones((8, 8, 8)), np.arange(512.0).reshape(8, 8, 8))
