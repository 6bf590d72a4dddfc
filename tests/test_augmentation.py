"""Training augmentation: each part does what it says, disabled parts are the identity, the
"basic" preset draws exactly what earlier versions drew, and a seed fixes everything."""

from __future__ import annotations

from dataclasses import asdict, replace

import numpy as np
import pytest
from scipy import ndimage

from spectac.acquisition.protocol import Protocol
from spectac.correction.prior import chang_log_factors
from spectac.errors import SpectacError
from spectac.training.card import augmentation_args, augmentation_text
from spectac.training.data import PRESETS, Augmentation, Draw, Pair, augment, truncation_window
from spectac.training.options import augmentation_from
from spectac.training.train import _same_run
from spectac.volume import Volume

N = 32
NONE = PRESETS["none"]


def body_pair(prior: bool = False, uniform: bool = False) -> Pair:
    """An elliptical body (semi-axes 0.8 along x, 0.55 along y) with a hot blob, NC falling with depth."""
    x, y, z = np.meshgrid(*[np.linspace(-1, 1, N)] * 3, indexing="ij")
    body = (x / 0.8) ** 2 + (y / 0.55) ** 2 < 1
    heart = np.exp(-((x - 0.1) ** 2 + (y + 0.1) ** 2 + z**2) / 0.03)
    ac = np.where(body, 0.2 + (0 if uniform else 0.8 * heart), 0.0).astype(np.float32)
    nc = (ac if uniform else ac * np.exp(-1.5 * (1 - np.sqrt((x / 0.8) ** 2 + (y / 0.55) ** 2)).clip(0))).astype(np.float32)
    if uniform:
        nc = np.where(body, 1.0, 0.0).astype(np.float32)
    grid = Volume.centred(nc, 6.8)
    channels = chang_log_factors(grid)[None] if prior else None
    return Pair("p00_rest", nc, ac, 1.0, channels, "chang" if prior else "none", grid, Protocol())


def test_truncation_zeroes_outside_the_window_in_input_and_target_and_keeps_inside() -> None:
    pair = body_pair()
    columns = np.nonzero((pair.nc > 0.05 * pair.nc.max()).any(axis=(1, 2)))[0]
    width = columns[-1] + 1 - columns[0]
    for cuts in ((0.2, 0.0), (0.0, 0.15), (0.1, 0.2)):
        inputs, ac = augment(pair, NONE, Draw(cuts=cuts))
        kept = np.nonzero((inputs[0] > 0).any(axis=(1, 2)))[0]
        start, stop = kept[0], kept[-1] + 1
        assert abs((stop - start) - (1 - sum(cuts)) * width) <= 1  # the cut fraction of the body width
        assert (start > columns[0]) == (cuts[0] > 0) and (stop < columns[-1] + 1) == (cuts[1] > 0)
        assert not inputs[0][:start].any() and not inputs[0][stop:].any()
        assert not ac[:start].any() and not ac[stop:].any()
        np.testing.assert_array_equal(inputs[0][start:stop], pair.nc[start:stop])
        np.testing.assert_array_equal(ac[start:stop], pair.ac[start:stop])


def test_truncation_remakes_the_chang_prior_from_the_truncated_body() -> None:
    pair = body_pair(prior=True)
    inputs, _ = augment(pair, NONE, Draw(cuts=(0.2, 0.2)))
    window = truncation_window(pair.nc, (0.2, 0.2), NONE.body_fraction)
    outside = np.ones(N, bool)
    outside[window[0] : window[1]] = False
    assert not inputs[1][outside].any()  # log factor 0 (factor 1) outside the (truncated) body
    np.testing.assert_allclose(inputs[1], chang_log_factors(pair.grid.with_array(inputs[0])), atol=1e-6)
    # a narrower body attenuates less: the truncated prior is below the whole body's inside the window
    inside = inputs[0] > 0
    assert inputs[1][inside].mean() < pair.prior[0][inside].mean()


def test_count_factor_scales_nc_and_ac_and_prior_is_left_alone() -> None:
    pair = body_pair(prior=True)
    aug = replace(NONE, counts=2.0)
    inputs, ac = augment(pair, aug, Draw(counts=0.5))
    np.testing.assert_allclose(inputs[0], 0.5 * pair.nc, rtol=1e-6)
    np.testing.assert_allclose(ac, 0.5 * pair.ac, rtol=1e-6)
    np.testing.assert_array_equal(inputs[1], pair.prior[0])
    draws = [aug.draw(np.random.default_rng(s)).counts for s in range(400)]
    assert 0.5 <= min(draws) and max(draws) <= 2.0
    assert abs(np.mean(np.log(draws))) < 0.1  # log-uniform: symmetric in log around 1


def test_noise_variance_grows_as_counts_fall_like_poisson() -> None:
    pair = body_pair(uniform=True)  # NC = 1 inside the body
    aug = replace(NONE, counts=8.0, noise=0.01)
    inside = pair.nc > 0
    relative = []
    for c in (1.0, 0.8, 0.5, 0.25):
        inputs, ac = augment(pair, aug, Draw(counts=c, noise_seed=3))
        residual = inputs[0][inside] / c - 1.0
        relative.append(residual.var())
        np.testing.assert_allclose(ac, c * pair.ac, rtol=1e-6)  # the target gets no noise
        assert not inputs[0][~inside].any()  # no counts, no noise
        # relative variance of a study with c times the counts: noise * (1/c - 1) added
        assert relative[-1] == pytest.approx(0.01 * (1 / c - 1), rel=0.1, abs=1e-9)
    assert relative[0] == 0 and np.all(np.diff(relative) > 0)


def test_smoothing_spreads_a_point_by_sigma_in_input_and_target() -> None:
    nc = np.zeros((N, N, N), np.float32)
    nc[N // 2, N // 2, N // 2] = 1.0
    pair = Pair("p", nc, nc.copy(), 1.0, grid=Volume.centred(nc, 6.8))
    inputs, ac = augment(pair, replace(NONE, smooth_sigma=1.0), Draw(sigma=0.8))
    idx = np.arange(N) - N // 2
    profile = inputs[0].sum(axis=(1, 2))
    assert profile.sum() == pytest.approx(1.0, rel=1e-4)
    assert (profile * idx**2).sum() == pytest.approx(0.8**2, rel=0.05)  # variance sigma^2 per axis
    np.testing.assert_allclose(ac, inputs[0])
    _, sharp = augment(pair, replace(NONE, smooth_sigma=1.0, smooth_target=False), Draw(sigma=0.8))
    np.testing.assert_array_equal(sharp, nc)


def test_shift_moves_all_channels_and_target_together() -> None:
    pair = body_pair(prior=True)
    inputs, ac = augment(pair, NONE, Draw(shift=(4, -4, 2)))
    com = ndimage.center_of_mass
    for moved, still in ((inputs[0], pair.nc), (inputs[1], pair.prior[0]), (ac, pair.ac)):
        np.testing.assert_array_equal(moved[4:, : N - 4, 2:], still[: N - 4, 4:, : N - 2])
    assert com(ac)[0] > com(pair.ac)[0]
    assert all(abs(s) <= 4 for seed in range(50) for s in Augmentation().draw(np.random.default_rng(seed)).shift)


def test_disabled_is_the_identity_and_basic_draws_what_earlier_versions_drew() -> None:
    pair = body_pair(prior=True)
    rng = np.random.default_rng(7)
    draw = NONE.draw(rng)
    inputs, ac = augment(pair, NONE, draw)
    np.testing.assert_array_equal(inputs, pair.inputs())
    np.testing.assert_array_equal(ac, pair.ac)
    # earlier versions: factor ~ U(0.9, 1.1), then a shift in [-3, 3]^3, and nothing else drawn
    rng_new, rng_old = np.random.default_rng(5), np.random.default_rng(5)
    draw = PRESETS["basic"].draw(rng_new)
    factor = float(rng_old.uniform(0.9, 1.1))
    shift = tuple(int(s) for s in rng_old.integers(-3, 4, size=3))
    assert (draw.factor, draw.shift) == (factor, shift)
    assert rng_new.uniform() == rng_old.uniform()
    inputs, ac = augment(pair, PRESETS["basic"], draw)
    np.testing.assert_array_equal(inputs[1], augment(pair, NONE, Draw(shift=shift))[0][1])
    np.testing.assert_allclose(ac, augment(pair, NONE, Draw(shift=shift))[1] * factor, rtol=1e-6)


def test_a_seed_fixes_every_part() -> None:
    pair = body_pair(prior=True)
    aug = replace(Augmentation(), truncation=1.0)
    a = augment(pair, aug, aug.draw(np.random.default_rng(11)))
    b = augment(pair, aug, aug.draw(np.random.default_rng(11)))
    c = augment(pair, aug, aug.draw(np.random.default_rng(12)))
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    assert not np.array_equal(a[0], c[0])


def test_presets_options_record_and_resume() -> None:
    assert augmentation_from("clinic") == Augmentation()
    assert augmentation_from("none", {"truncation": 0.5}).truncation == 0.5
    with pytest.raises(SpectacError, match="unknown augmentation 'x'"):
        augmentation_from("x")
    with pytest.raises(SpectacError, match="unknown augmentation setting 'sigma'"):
        augmentation_from("clinic", {"sigma": 1})
    with pytest.raises(SpectacError, match="truncation must lie in"):
        augmentation_from("clinic", {"truncation": 1.5})
    with pytest.raises(SpectacError, match="counts is the largest count ratio"):
        augmentation_from("clinic", {"counts": 0.5})
    # the card's command gives back the recorded augmentation
    for aug in (Augmentation(), PRESETS["basic"], replace(NONE, truncation=0.4, smooth_sigma=0.5)):
        args = augmentation_args({"augmentation": asdict(aug)})
        settings = {k: v for k, v in (a.split("=") for a in args[3::2])}
        parsed = {k: (float(v) if v not in ("true", "false") else v == "true") for k, v in settings.items()}
        assert augmentation_from(args[1], parsed) == aug
    assert augmentation_text({"augmentation": {"intensity": 0.1, "shift_voxels": 3}}) == "intensity +-10%, shifts up to 3 voxels"
    # a run recorded before the new parts existed resumes with --augment basic, not with clinic
    old = {"model": "unet3d", "network": {}, "data": {"dataset": "d"},
           "training": {"augmentation": {"intensity": 0.1, "shift_voxels": 3}, "epochs": 2}}
    for preset, same in (("basic", True), ("clinic", False)):
        current = {**old, "training": {"augmentation": asdict(PRESETS[preset]), "epochs": 2}}
        assert _same_run(old, current) is same
