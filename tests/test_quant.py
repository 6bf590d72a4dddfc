"""Clinical quantification on synthetic LV shells: detection, reorientation, polar map, AHA segments,
normal limits, TPD and segment scores."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from quant_shapes import draw_shell, shell_geometry

from spectac.quant.geometry import axis_error_deg, cavity_volume_ml, centre_error_mm
from spectac.quant.lv import detect_lv
from spectac.quant.normals import NormalDatabase, database_from_maps, method_family
from spectac.quant.polar import N_CAP, N_RINGS, bullseye_image, polar_map
from spectac.quant.reorient import horizontal_long_axis, short_axis, vertical_long_axis
from spectac.quant.scores import score_polar_map
from spectac.quant.segments import SEGMENT_MAP, polar_segments
from spectac.quant.study import transient_ischemic_dilation
from spectac.segments import TERRITORY_SEGMENTS, Level, segment_of
from spectac.volume import SpectacError, Volume

SMALL = {"shape": (40, 40, 40), "supersample": 2}  # a 27 cm field of view is enough for a torso here
# (AHA angle of the cold spot, fraction of the mid-wall length from the base) -> segment
SPOTS = [
    (0, (0.04, 0.26), 1),
    (60, (0.04, 0.26), 2),
    (240, (0.04, 0.26), 5),
    (120, (0.38, 0.58), 9),
    (300, (0.38, 0.58), 12),
    (90, (0.68, 0.86), 14),
    (180, (0.68, 0.86), 15),
]


def test_aha_angle_layout() -> None:
    assert segment_of(np.array([0, 59, 61, 179, 181, 269, 271, 359]), Level.BASAL).tolist() == [1, 2, 2, 4, 4, 5, 6, 1]
    assert segment_of(np.array([0, 44, 46, 134, 136, 226, 314, 316]), Level.APICAL).tolist() == [
        13, 13, 14, 14, 15, 16, 16, 13,
    ]  # fmt: skip
    # the polar-map layout: apex cap in the centre rings, basal ring outermost
    assert set(SEGMENT_MAP[:N_CAP].ravel()) == {17}
    assert set(SEGMENT_MAP[-1].ravel()) == {1, 2, 3, 4, 5, 6}
    assert set(SEGMENT_MAP[N_CAP].ravel()) == {13, 14, 15, 16}


def test_detect_lv_on_shells_with_a_hot_liver() -> None:
    for axis, offset, liver in [((1, -1, -1), (20, -10, 5), 0.0), ((0.8, -1, -0.6), (10, 0, 0), 2.0)]:
        truth = shell_geometry(axis, offset)
        found = detect_lv(draw_shell(truth, torso=True, liver=liver, seed=1))
        assert axis_error_deg(found, truth) < 6.0
        assert centre_error_mm(found, truth) < 6.8
        assert np.degrees(np.arccos(found.anterior @ truth.anterior)) < 6.0
        assert found.septal @ np.array([-1.0, 0, 0]) > 0  # septum toward the patient's right


def test_detect_lv_fits_a_dilated_ventricle_and_says_how_confident_it_is() -> None:
    """A dilated LV (mid-wall radius 37 mm, beyond the old 32 mm cap) is fitted at its size; a clean
    shell gets high confidence, and the confidence measures are in the geometry's dict."""
    truth = shell_geometry((1, -1, -1), (10, -10, 0), radius=37.0, length=85.0)
    found = detect_lv(draw_shell(truth, shape=(56, 56, 56), torso=True, seed=2))
    assert axis_error_deg(found, truth) < 8.0 and abs(found.radius_mm - 37.0) < 4.0
    assert found.confidence == "high" and found.wall_coverage > 0.75 and found.hot_surroundings < 0.15
    assert found.to_dict()["confidence"] == "high"
    # the same fit turned so that its apex points to the patient's right is no fit to trust
    turned = dataclasses.replace(found, long_axis=found.long_axis * np.array([-1.0, 1.0, 1.0]))
    assert turned.confidence.startswith("low: the apex points to the patient's right")


def test_detect_lv_finds_a_dextrocardia_and_says_to_check_it() -> None:
    """An apex pointing to the patient's right (dextrocardia) is found, not forced to the left by the
    preference for left-pointing fits, and its confidence says why to check the axes."""
    truth = shell_geometry((-1, -1, -1), (-10, -10, 0), radius=28.0, length=75.0)
    found = detect_lv(draw_shell(truth, shape=(56, 56, 56), torso=True, seed=3))
    assert axis_error_deg(found, truth) < 8.0
    assert found.confidence.startswith("low: the apex points to the patient's right")


def test_detect_lv_refuses_an_image_without_a_heart() -> None:
    with pytest.raises(SpectacError):
        detect_lv(Volume.centred(np.zeros((24, 24, 24), np.float32), 6.8))
    solid = np.zeros((32, 32, 32), np.float32)
    solid[10:22, 10:22, 10:22] = 1.0  # a solid cube: no hollow shell
    with pytest.raises(SpectacError):
        detect_lv(Volume.centred(solid, 6.8))
    # a blurred hot ball, LV-sized, in a torso: its edge has some shell contrast, but no cold cavity
    g = (np.indices((48, 48, 48)) - 23.5) * 6.8
    body = 0.1 * ((g[0] / 150) ** 2 + (g[1] / 100) ** 2 < 1)
    ball = 1.0 * ((g[0] - 30) ** 2 + (g[1] + 10) ** 2 + g[2] ** 2 < 20.0**2)
    from scipy import ndimage

    with pytest.raises(SpectacError, match="colder cavity"):
        detect_lv(Volume.centred(ndimage.gaussian_filter(body + ball, 1.2).astype(np.float32), 6.8))


def test_detect_lv_fits_the_other_blobs_before_refusing(monkeypatch: pytest.MonkeyPatch) -> None:
    """Four solid hot blobs (gut, 16 x the wall's uptake) outrank the LV as places to start a
    fit, and none gives a hollow shell: every other blob's best start is then fitted before the
    detector refuses, and the LV is found (the first pass alone refused this image)."""
    from scipy import ndimage

    import spectac.quant.lv as lv

    truth = shell_geometry((1, -1, -1), (10, -10, 0))
    image = draw_shell(truth, torso=True, seed=1)
    g = (np.indices(image.shape) - (np.array(image.shape)[:, None, None, None] - 1) / 2) * image.spacing[0]
    array = image.array.copy()
    for c in [(-60, 50, -80), (70, 60, -90), (-70, -40, 70), (60, -60, 80)]:
        ball = ((g[0] - c[0]) ** 2 + (g[1] - c[1]) ** 2 + (g[2] - c[2]) ** 2 < 15.0**2).astype(np.float32)
        array += 16.0 * ndimage.gaussian_filter(ball, 12 / 2.355 / image.spacing[0])
    hollow: list[bool] = []
    real_fit = lv._hollow_fit

    def counted(*args):  # noqa: ANN002, ANN202
        fit = real_fit(*args)
        hollow.append(bool(fit))
        return fit

    monkeypatch.setattr(lv, "_hollow_fit", counted)
    found = detect_lv(dataclasses.replace(image, array=array))
    first_pass = hollow[: lv.FIRST_FITS + 1]
    assert len(hollow) > len(first_pass) and not any(first_pass)  # the first pass found no shell
    assert centre_error_mm(found, truth) < 6.8 and axis_error_deg(found, truth) < 8.0
    assert found.confidence == "high"


def test_reoriented_views_put_the_anterior_wall_on_top_and_the_apex_where_expected() -> None:
    truth = shell_geometry((1, -0.7, -0.8), (10, -10, 0))
    volume = draw_shell(truth, defect=(-40, 40, 0.0, 1.1, 0.0), blur_mm=6.0)  # anterior wall removed
    sa = short_axis(volume, truth)
    mid = sa[sa.shape[0] // 2 + 2]  # a slice on the basal side of the centre
    rows = mid.shape[0]
    assert mid[: rows // 2].sum() < 0.5 * mid[rows // 2 :].sum()  # top half (anterior) cold
    hla, vla = horizontal_long_axis(volume, truth), vertical_long_axis(volume, truth)
    # HLA rows top = apex: the apex cap lies above the centre; VLA columns right = apex
    hla_mid, vla_mid = hla[hla.shape[0] // 2], vla[vla.shape[0] // 2]
    n = hla_mid.shape[0]
    assert hla_mid[: n // 2].sum() > 0 and np.argmax(hla_mid.sum(axis=1)) < n // 2 + 6
    assert vla_mid[:, n // 2 :].sum() > 0


def test_polar_map_of_a_uniform_shell_is_flat() -> None:
    truth = shell_geometry((1, -1, -1), (15, -10, 0))
    pm = polar_map(draw_shell(truth, shape=(72, 72, 72), spacing=4.0, supersample=2, blur_mm=10.0), truth)
    inner = pm.values[:-4]  # the outermost rings (10 mm) see the blurred edge of the open base
    assert np.abs(inner - np.median(inner)).max() < 0.06
    assert inner.std(axis=1).max() < 0.025  # no angular structure in any ring
    assert pm.values[-1].mean() < 0.8  # ... and the base edge is indeed there
    assert pm.weights.sum() == pytest.approx(1.0)
    img = bullseye_image(pm.values, 64)
    assert np.isnan(img[0, 0]) and np.isfinite(img[32, 32])


@pytest.mark.parametrize(("theta", "levels", "segment"), SPOTS)
def test_a_cold_spot_lands_in_its_aha_segment(theta: float, levels: tuple[float, float], segment: int) -> None:
    truth = shell_geometry((1, -1, -1), (15, -10, 0))
    volume = draw_shell(truth, defect=(theta - 22, theta + 22, *levels, 0.3), blur_mm=8.0)
    values = polar_segments(polar_map(volume, truth))
    assert int(np.argmin(values)) + 1 == segment


def test_a_cold_apex_lands_in_segment_17() -> None:
    truth = shell_geometry((1, -1, -1), (15, -10, 0))
    volume = draw_shell(truth, defect=(0, 359.9, 0.97, 1.3, 0.2), blur_mm=8.0)
    assert int(np.argmin(polar_segments(polar_map(volume, truth)))) + 1 == 17


@pytest.fixture(scope="module")
def normals() -> NormalDatabase:
    """AC limits from synthetic normal patients (shape, orientation and noise vary), scored the
    clinical way: detect_lv then the polar map."""
    rng = np.random.default_rng(0)
    records = []
    for i in range(8):
        axis = np.array([1.0, -1.0, -1.0]) + rng.normal(0, 0.15, 3)
        truth = shell_geometry(axis, rng.normal(0, 8, 3) + [15, -10, 0], radius=rng.uniform(24, 29),
                               length=rng.uniform(58, 68))
        volume = draw_shell(truth, torso=True, liver=rng.uniform(0.3, 1.2), seed=i, **SMALL)
        records.append(("ac", "F" if i % 2 else "M", "stress", polar_map(volume, detect_lv(volume)).values))
    return database_from_maps(records, {"source": "synthetic"})


def test_normal_patient_scores_near_zero_and_lad_defect_scores_abnormal(normals: NormalDatabase) -> None:
    limits = normals.limits(method_family("chang"), "M", "stress")
    truth = shell_geometry((1.1, -0.9, -1.0), (18, -6, 3), radius=26.0, length=63.0)
    normal = draw_shell(truth, torso=True, liver=0.8, seed=99, **SMALL)
    s_normal = score_polar_map(polar_map(normal, detect_lv(normal)), limits)
    assert s_normal.tpd < 3.0
    assert s_normal.summed_score <= 3

    # a transmural LAD defect: anterior and anteroseptal walls (-30 to 90 degrees) from the base to
    # the apex, 70% reduced
    lad = draw_shell(truth, torso=True, liver=0.8, seed=99, defect=(-30, 90, 0.0, 1.3, 0.3), **SMALL)
    s_lad = score_polar_map(polar_map(lad, detect_lv(lad)), limits)
    assert s_lad.tpd > 10.0
    assert s_lad.summed_score >= 10
    in_lad = np.isin(np.arange(1, 18), TERRITORY_SEGMENTS["LAD"])
    assert s_lad.segment_scores[in_lad].sum() > 3 * s_lad.segment_scores[~in_lad].sum()
    assert s_lad.territory_tpd("LAD") > 3 * max(s_lad.territory_tpd("RCA"), s_lad.territory_tpd("LCx"))


def test_normal_database_round_trip_and_fallback(normals: NormalDatabase, tmp_path) -> None:
    path = normals.save(tmp_path / "normals.npz")
    loaded = NormalDatabase.load(path)
    a, b = normals.limits("ac", "F", "stress"), loaded.limits("ac", "F", "stress")
    np.testing.assert_allclose(a.mean, b.mean, rtol=1e-6)
    np.testing.assert_allclose(a.sd, b.sd, rtol=1e-6)
    assert a.n == 4 and a.mean.shape == (N_RINGS, a.mean.shape[1])
    # no rest normals: the lookup falls back to the pooled-state group of the sex
    assert loaded.limits("ac", "M", "rest").n == 4
    with pytest.raises(SpectacError, match="nc limits"):
        loaded.limits("nc", "M", "stress")
    with pytest.raises(SpectacError, match="spectac normals"):
        NormalDatabase.load(tmp_path / "missing.npz")
    (tmp_path / "bad.npz").write_bytes(b"not a zip")
    with pytest.raises(SpectacError, match=r"bad\.npz"):
        NormalDatabase.load(tmp_path / "bad.npz")


def test_cavity_volume_of_an_ellipsoidal_shell_is_half_an_ellipsoid() -> None:
    a, c = 27.0 - 5.0, 60.0 - 5.0  # inner semi-axes of R 27, L 60, wall 10
    expected = 2 / 3 * np.pi * a * a * c / 1000.0
    assert cavity_volume_ml(27.0, 60.0, 10.0, power=2.0) == pytest.approx(expected, rel=2e-3)
    # blunter shells (the default exponent) hold more
    assert cavity_volume_ml(27.0, 60.0, 10.0) > expected


def test_tid_of_fitted_shells_follows_the_cavity_volumes() -> None:
    rest = shell_geometry(radius=27.0, length=60.0)
    dilated = shell_geometry(radius=30.0, length=66.0)
    true_ratio = cavity_volume_ml(30.0, 66.0, 10.0, power=2.0) / cavity_volume_ml(27.0, 60.0, 10.0, power=2.0)
    fit_rest = detect_lv(draw_shell(rest, shape=(56, 56, 56), torso=True, seed=3))
    fit_dilated = detect_lv(draw_shell(dilated, shape=(56, 56, 56), torso=True, seed=4))
    fit_again = detect_lv(draw_shell(rest, shape=(56, 56, 56), torso=True, seed=5))
    assert transient_ischemic_dilation(fit_dilated, fit_rest) == pytest.approx(true_ratio, abs=0.12)
    assert transient_ischemic_dilation(fit_again, fit_rest) == pytest.approx(1.0, abs=0.08)


def test_the_wall_mask_holds_the_shell_and_neither_its_cavity_nor_what_lies_beyond() -> None:
    from spectac.quant.geometry import wall_mask
    from spectac.quant.polar import sample_points

    geom = shell_geometry((1, -1, -1), (10, -5, 0))
    unblurred = draw_shell(geom, blur_mm=0.0)
    mask = wall_mask(unblurred, geom)
    # the rasterised shell (value 1 at its voxels, partial volume at its edges) lies in the mask
    wall = unblurred.array > 0.5
    assert wall.any() and (mask & wall).sum() >= 0.97 * wall.sum()
    # every mid-wall sample point of the polar map is in it, no point 2 voxels beyond the band is
    def inside(offset_mm: float) -> np.ndarray:
        points = sample_points(geom, np.array([offset_mm]))[..., 0, :].reshape(-1, 3)
        index = np.rint(np.stack([unblurred.index_of(p) for p in points])).astype(int)
        return mask[tuple(index.T)]

    assert inside(0.0).all()
    beyond = geom.wall_mm / 2 + 4.0 + 2 * 6.8
    assert not inside(beyond).any() and not inside(-beyond).any()
    # a thicker margin holds more, the cavity centre is in neither
    assert wall_mask(unblurred, geom, margin_mm=10.0).sum() > mask.sum()
    centre = np.rint(unblurred.index_of(geom.base_mm + 0.4 * geom.length_mm * geom.long_axis)).astype(int)
    assert not mask[tuple(centre)]


def test_a_confident_fit_outranks_a_slightly_better_one_of_low_confidence() -> None:
    """The detector's choice among hollow fits: a fit with hot activity against its wall and half
    its wall covered (a shell around the edge of the gut or liver) loses to a confident one unless
    its merit is higher by SHORTFALL_PENALTY x its shortfall; a large defect's low coverage alone
    does not lose the LV to a decoy of clearly lower merit."""
    import spectac.quant.lv as lv

    def params(centre: tuple[float, float, float]) -> np.ndarray:
        return np.array([*centre, *lv._axis_to_angles(lv.TYPICAL_LONG_AXIS), 24.0, 65.0])

    lv_fit = lv._Fit(0.389, params((28, -17, 8)), 0.0)
    decoy = lv._Fit(0.395, params((59, -3, -25)), 0.47)  # CT-AC of P040 rest, second validation cohort
    assert lv._winner([decoy, lv_fit]) is lv_fit
    clearly_better = lv._Fit(0.389 + lv.SHORTFALL_PENALTY * 0.47 + 0.01, decoy.p, 0.47)
    assert lv._winner([clearly_better, lv_fit]) is clearly_better
    large_defect = lv._Fit(0.42, params((28, -17, 8)), 0.3)  # 45% of the wall covered
    assert lv._winner([large_defect, lv._Fit(0.35, params((59, -3, -25)), 0.0)]) is large_defect
    # the merit threshold is on the merit, not on the penalised rank
    assert lv._winner([lv._Fit(lv.MIN_RELATIVE_CONTRAST + 0.01, lv_fit.p, 0.5)]) is not None
    assert lv._winner([lv._Fit(lv.MIN_RELATIVE_CONTRAST - 0.01, lv_fit.p, 0.0)]) is None


def test_the_confidence_shortfall_of_a_fit_answers_to_hot_activity_against_the_wall() -> None:
    """A shell fitted on a clean LV has no shortfall; with a hot ball against its lateral wall
    (stomach or bowel at the LV's level) the same start's fit falls short."""
    import spectac.quant.lv as lv

    truth = shell_geometry((1, -1, -1), (10, -10, 0))
    image = draw_shell(truth, torso=True, seed=1)
    start = np.array([*truth.base_mm, *lv._axis_to_angles(truth.long_axis), truth.radius_mm, truth.length_mm])

    def shortfall(volume: Volume) -> float:
        smooth = np.clip(volume.array, 0, None).astype(np.float32)
        sample = lv._Sampler(volume, smooth)
        fits = lv._hollow_fit(sample, start, truth.wall_mm, float(np.percentile(smooth, 99.9)), lambda p: 1.0)
        assert len(fits) == 1
        return fits[0].shortfall

    assert shortfall(image) == 0.0
    g = (np.indices(image.shape) - (np.array(image.shape)[:, None, None, None] - 1) / 2) * image.spacing[0]
    lateral = truth.center_mm - 40.0 * truth.septal  # 40 mm from the centre, away from the septum
    ball = ((g[0] - lateral[0]) ** 2 + (g[1] - lateral[1]) ** 2 + (g[2] - lateral[2]) ** 2 < 25.0**2)
    hot = dataclasses.replace(image, array=(image.array + 2.0 * ball).astype(np.float32))
    assert shortfall(hot) > 0.05


def test_detect_lv_finds_a_small_ventricle_whose_cavity_blurs_toward_its_wall() -> None:
    """A small LV (mid-wall radius 18 mm) blurred by the camera and the detector's smoothing keeps
    a cavity at over 0.9 x its wall; it is still an LV (a limit of 0.9 refused this image)."""
    truth = shell_geometry((1, -1, -1), (10, -10, 0), radius=18.0, length=60.0)
    found = detect_lv(draw_shell(truth, torso=True, seed=4))
    assert centre_error_mm(found, truth) < 6.8 and axis_error_deg(found, truth) < 8.0
