"""The parametric torso: lungs around the heart, the layered body wall, supine breasts, the
gallbladder and the body kept inside the field."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from spectac.errors import SpectacError
from spectac.phantom.anatomy import MU_BREAST, MU_FAT, build_phantom
from spectac.phantom.lv import long_axis, lv_frame
from spectac.phantom.population import FIELD_MM, draw_patient

SHAPE, SPACING = (64, 64, 64), 6.8


def _patient(sex: str, seed: int = 0, **kw):
    rng = np.random.default_rng(seed)
    while True:
        params = draw_patient(rng, "T", defect_probability=0.0, **kw)
        if params.sex == sex:
            return params


def _index(point) -> tuple[int, ...]:
    return tuple(np.round(np.asarray(point) / SPACING + (np.asarray(SHAPE) - 1) / 2).astype(int))


def test_lung_lateral_of_the_lateral_wall() -> None:
    for seed in range(3):
        params = _patient("M", seed)
        mu = build_phantom(params, "stress", SHAPE, SPACING, supersample=1).mu_map
        axis, _, septal = lv_frame(long_axis(params.lv_azimuth_deg, params.lv_elevation_deg))
        centre = np.asarray(params.lv_base_mm) + 0.4 * params.lv_length_mm * axis
        line = [mu[_index(centre - (params.lv_radius_mm + d) * septal)] for d in np.arange(5.0, 90.0, 3.0)]
        assert min(line) < 0.1, f"no lung lateral of the LV (seed {seed}): {np.round(line, 3)}"


def test_fat_thicker_anterior_than_posterior() -> None:
    params = _patient("M", 1)
    mu = build_phantom(params, "stress", SHAPE, SPACING, supersample=1).mu_map
    i, k = _index((params.body_center_mm[0], 0, params.lv_base_mm[2]))[0], _index((0, 0, params.lv_base_mm[2]))[2]
    column = mu[i, :, k]
    inside = np.flatnonzero(column > 0)
    fat = np.isclose(column, MU_FAT)
    middle = (inside[0] + inside[-1]) // 2
    anterior, posterior = fat[inside[0]:middle].sum(), fat[middle:inside[-1] + 1].sum()
    assert anterior > 1.5 * posterior > 0


def test_breast_volume_grows_with_bmi_and_is_what_is_drawn() -> None:
    rng = np.random.default_rng(3)
    women = [p for p in (draw_patient(rng, "T", 0.0) for _ in range(150)) if p.sex == "F"]
    bmi = np.array([p.bmi for p in women])
    volume = np.array([p.breast_volume_ml for p in women])
    assert np.corrcoef(bmi, volume)[0, 1] > 0.5
    assert 100 < volume.min() and volume.max() < 2000
    params = women[0]
    added = []
    for ml in (0.0, 300.0, 900.0):
        mu = build_phantom(dataclasses.replace(params, breast_volume_ml=ml), "stress", SHAPE, SPACING, supersample=2).mu_map
        added.append((mu > 0).sum() * SPACING**3 / 1000.0)
    # the breasts stand on the skin: the body grows by the two breasts' volume
    assert added[1] - added[0] == pytest.approx(600.0, rel=0.15)
    assert added[2] - added[0] == pytest.approx(1800.0, rel=0.15)
    mu = build_phantom(params, "stress", SHAPE, SPACING, supersample=1).mu_map
    assert np.isclose(mu, MU_BREAST).sum() > 0


def test_gallbladder_under_the_liver() -> None:
    params = _patient("M", 2)
    params.gallbladder_uptake = {"stress": 2.5, "rest": 2.5}
    act = build_phantom(params, "stress", SHAPE, SPACING, supersample=1).activity
    a, b = params.body_a_mm, params.body_b_mm
    cx, cy = params.body_center_mm
    centre = (cx - 0.3 * a, cy - 0.3 * b, params.diaphragm_right_mm - 118.0)
    assert act[_index(centre)] == pytest.approx(2.5)
    assert np.isclose(act, 2.5).sum() * SPACING**3 / 1000 == pytest.approx(4 / 3 * np.pi * 17 * 17 * 38 / 1000, rel=0.4)


def test_body_never_cut_by_the_field() -> None:
    rng = np.random.default_rng(11)
    shape, spacing = (32, 32, 32), FIELD_MM / 32
    for n in range(200):
        params = draw_patient(rng, f"T{n}", 0.0, bmi_mean_sd=(30.0, 7.0))
        body = build_phantom(params, "stress", shape, spacing, supersample=1).mu_map > 0
        faces = body[0].any() or body[-1].any() or body[:, 0].any() or body[:, -1].any()
        assert not faces, f"patient {n} (BMI {params.bmi}, {params.sex}) touches the field's edge"


def test_body_wider_than_the_field_is_refused() -> None:
    with pytest.raises(SpectacError, match="does not fit"):
        draw_patient(np.random.default_rng(0), "T", 0.0, field_mm=220.0)


@pytest.mark.parametrize("index", [0, 3])
def test_heart_on_its_block_equals_the_heart_on_the_whole_grid(monkeypatch: pytest.MonkeyPatch, index: int) -> None:
    """build_heart evaluates only the block around the heart; on the whole grid it gives the same
    activity, myocardium and truth (nothing of the heart lies outside the block)."""
    import spectac.phantom.heart as heart

    params = draw_patient(np.random.default_rng(index), f"T{index}", defect_probability=1.0)
    fast = build_phantom(params, "stress", (32, 32, 32), 13.6)
    monkeypatch.setattr(heart, "_heart_block", lambda p, *args: (slice(None),) * 3)
    whole = build_phantom(params, "stress", (32, 32, 32), 13.6)
    assert fast.myocardium.any()
    for a, b in ((fast.activity, whole.activity), (fast.mu_map, whole.mu_map), (fast.myocardium, whole.myocardium)):
        np.testing.assert_array_equal(a, b)
    assert fast.lv == whole.lv


@pytest.mark.parametrize("centre, semi", [
    ((10.0, -20.0, 5.0), (40.0, 25.0, 60.0)),  # inside the grid
    ((100.0, 0.0, -90.0), (50.0, 30.0, 40.0)),  # cut by two faces
    ((500.0, 0.0, 0.0), (20.0, 20.0, 20.0)),  # wholly outside
])
def test_ellipsoid_on_its_bounding_box_is_the_formula_on_the_whole_grid(centre, semi):
    from spectac.phantom.anatomy import _ellipsoid
    from spectac.phantom.grid import PointGrid

    axes = [(np.arange(n) - (n - 1) / 2) * 3.4 for n in (40, 36, 50)]
    p = np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1).astype(np.float32) - np.float32(1.7)
    whole = sum(((p[..., i] - centre[i]) / semi[i]) ** 2 for i in range(3)) <= 1.0
    np.testing.assert_array_equal(_ellipsoid(PointGrid(axes, (1.7, 1.7, 1.7)), centre, semi), whole)
    assert whole.any() == (centre[0] < 200)


def test_a_point_grid_block_holds_the_points_of_the_whole_meshgrid():
    from spectac.phantom.grid import PointGrid

    axes = [(np.arange(n) - (n - 1) / 2) * 3.4 for n in (12, 10, 14)]
    shift = (1.3, -2.9, 0.7)
    whole = np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1).astype(np.float32) - np.float32(shift)
    grid = PointGrid(axes, shift)
    assert grid.shape == whole.shape
    box = (slice(2, 9), slice(0, 10), slice(5, 6))
    np.testing.assert_array_equal(grid[box], whole[box])
    np.testing.assert_array_equal(grid[(slice(None),) * 3], whole)
    for i in range(3):
        np.testing.assert_array_equal(np.broadcast_to(grid.broadcast(i), whole.shape[:3]), whole[..., i])
