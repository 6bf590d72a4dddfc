"""spectac.resample: each primitive against a direct scipy call and analytic cases."""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from spectac import resample
from spectac.volume import Volume


def _ramp(shape: tuple[int, int, int]) -> np.ndarray:
    i, j, k = np.meshgrid(*[np.arange(n, dtype=np.float64) for n in shape], indexing="ij")
    return 2.0 * i - 3.0 * j + 0.5 * k + 7.0


def _volume(array: np.ndarray, spacing: tuple[float, float, float], origin: tuple[float, float, float]) -> Volume:
    return Volume(array, spacing, origin, np.eye(3))


def test_sample_points_matches_map_coordinates() -> None:
    rng = np.random.default_rng(0)
    vol = _volume(rng.random((12, 10, 8)).astype(np.float32), (2.0, 3.0, 4.0), (-5.0, 1.0, 2.0))
    points = rng.uniform(-10, 30, size=(50, 3))
    inv = np.linalg.inv(vol.affine_lps)
    index = points @ inv[:3, :3].T + inv[:3, 3]
    for order in (0, 1, 3):
        expected = ndimage.map_coordinates(vol.array, index.T, order=order, mode="constant", cval=0.0)
        np.testing.assert_array_equal(resample.sample_points(vol.array, vol.affine_lps, points, order), expected)


def test_sample_points_linear_ramp_exact_and_zero_outside() -> None:
    shape = (9, 8, 7)
    vol = _volume(_ramp(shape), (2.0, 1.5, 3.0), (10.0, -4.0, 0.0))
    rng = np.random.default_rng(1)
    index = rng.uniform(0, np.array(shape) - 1, size=(200, 3))
    points = index @ vol.affine_lps[:3, :3].T + vol.affine_lps[:3, 3]
    values = resample.sample_points(vol.array, vol.affine_lps, points, order=1)
    np.testing.assert_allclose(values, 2.0 * index[:, 0] - 3.0 * index[:, 1] + 0.5 * index[:, 2] + 7.0, atol=1e-10)
    far = vol.point_of(np.array([-5.0, 3.0, 3.0]))[None]
    assert resample.sample_points(vol.array, vol.affine_lps, far)[0] == 0.0


def test_sample_points_keeps_point_shape() -> None:
    vol = _volume(np.ones((5, 5, 5)), (1.0, 1.0, 1.0), (0.0, 0.0, 0.0))
    points = np.full((2, 3, 4, 3), 2.0)
    assert resample.sample_points(vol.array, vol.affine_lps, points).shape == (2, 3, 4)


def test_onto_grid_matches_affine_transform_and_identity() -> None:
    rng = np.random.default_rng(2)
    src = _volume(rng.random((10, 11, 12)).astype(np.float32), (2.0, 2.0, 3.0), (0.0, 0.0, 0.0))
    dst = _volume(np.zeros((6, 7, 8), np.float32), (3.0, 2.5, 4.0), (1.0, -2.0, 3.0))
    matrix = np.linalg.inv(src.affine_lps) @ dst.affine_lps
    expected = ndimage.affine_transform(
        src.array, matrix[:3, :3], offset=matrix[:3, 3], output_shape=dst.shape, order=1, mode="constant", cval=0.0
    )
    out = resample.onto_grid(src.array, src.affine_lps, dst.affine_lps, dst.shape, order=1)
    np.testing.assert_array_equal(out, expected)
    same = resample.onto_grid(src.array, src.affine_lps, src.affine_lps, src.shape, order=1)
    np.testing.assert_allclose(same, src.array, rtol=0, atol=1e-6)


def test_onto_centred_grid_identity_and_constant() -> None:
    vol = Volume.centred(np.random.default_rng(3).random((8, 8, 8)), 4.0)
    centre = vol.point_of((np.asarray(vol.shape) - 1) / 2)
    same = resample.onto_centred_grid(vol.array, vol.affine_lps, vol.shape, 4.0, centre)
    np.testing.assert_allclose(same, vol.array, atol=1e-12)
    const = Volume.centred(np.full((20, 20, 20), 3.5), 2.0)
    inner = resample.onto_centred_grid(const.array, const.affine_lps, (5, 5, 5), 6.0, np.zeros(3))
    np.testing.assert_allclose(inner, 3.5, atol=1e-12)


def test_lowpass_for_import_matches_scipy_and_skips_similar_grids() -> None:
    rng = np.random.default_rng(4)
    array = rng.random((20, 20, 10))
    spacing = (1.0, 1.0, 4.0)
    ratio = 6.8 / np.asarray(spacing)
    expected = ndimage.gaussian_filter(array, np.where(ratio > 1.5, 0.42 * ratio, 0.0), mode="nearest")
    np.testing.assert_array_equal(resample.lowpass_for_import(array, spacing, (6.8, 6.8, 6.8)), expected)
    assert resample.lowpass_for_import(array, (6.0, 6.0, 6.0), (6.8, 6.8, 6.8)) is array
    const = np.full((20, 20, 20), 0.15)
    np.testing.assert_allclose(resample.lowpass_for_import(const, (1.0, 1.0, 1.0), (6.8, 7.0, 8.0)), 0.15)


def test_lowpass_partial_volume_matches_scipy_and_skips_upsampling() -> None:
    rng = np.random.default_rng(5)
    array = rng.random((16, 16, 16))
    spacing = (2.0, 3.0, 6.8)
    expected = ndimage.gaussian_filter(array, sigma=np.maximum(6.8 / np.asarray(spacing) - 1, 0) * 0.5)
    np.testing.assert_array_equal(resample.lowpass_partial_volume(array, spacing, 6.8), expected)
    assert resample.lowpass_partial_volume(array, (6.8, 6.8, 8.0), 6.8) is array
    const = np.full((16, 16, 16), 2.0)
    np.testing.assert_allclose(resample.lowpass_partial_volume(const, (1.0, 1.0, 1.0), 6.8), 2.0)


def test_zoom_to_shape_matches_scipy_zoom() -> None:
    rng = np.random.default_rng(6)
    array = rng.random((13, 17, 11)).astype(np.float32)
    shape = (9, 24, 11)
    expected = ndimage.zoom(array, [n / m for n, m in zip(shape, array.shape)], order=1, mode="nearest", grid_mode=True)
    out = resample.zoom_to_shape(array, shape)
    assert out.dtype == np.float32 and out.shape == shape
    np.testing.assert_array_equal(out, expected[: shape[0], : shape[1], : shape[2]].astype(np.float32))


def test_zoom_to_shape_identity_and_constant() -> None:
    array = np.random.default_rng(7).random((10, 12, 8)).astype(np.float32)
    np.testing.assert_allclose(resample.zoom_to_shape(array, array.shape), array, atol=1e-6)
    const = np.full((10, 12, 8), 4.25, np.float32)
    np.testing.assert_allclose(resample.zoom_to_shape(const, (14, 9, 16)), 4.25, atol=1e-5)


def test_zoom_to_shape_linear_ramp_inside() -> None:
    # grid_mode: output voxel centre c maps to input coordinate (c + 0.5) * m / n - 0.5; a linear
    # ramp is reproduced exactly wherever that lies inside the input (edges extend the end value).
    m, n = 10, 15
    array = np.tile(np.arange(m, dtype=np.float64)[:, None, None], (1, 3, 3))
    out = resample.zoom_to_shape(array, (n, 3, 3))[:, 1, 1]
    coord = (np.arange(n) + 0.5) * m / n - 0.5
    inside = (coord >= 0) & (coord <= m - 1)
    np.testing.assert_allclose(out[inside], coord[inside], atol=1e-5)
