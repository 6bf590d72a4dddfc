"""Chang attenuation correction: physics against PyTomography's attenuation model, contour robustness."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import ndimage

from spectac.acquisition.protocol import Protocol
from spectac.correction.chang import array_azimuths, body_contour, chang_factors, chang_first_order
from spectac.volume import Volume

SPACING = 6.8


def _grid(n: int) -> tuple[np.ndarray, np.ndarray]:
    x = (np.arange(n) - (n - 1) / 2) * SPACING
    return np.meshgrid(x, x, indexing="ij")


def _cylinder(n: int, nz: int, radius_mm: float, centre_mm: tuple[float, float] = (0.0, 0.0)) -> np.ndarray:
    x, y = _grid(n)
    disc = (x - centre_mm[0]) ** 2 + (y - centre_mm[1]) ** 2 < radius_mm**2
    return np.repeat(disc[:, :, None], nz, axis=2)


def _pytomography_average_probability(mu_map: np.ndarray, azimuths_deg: np.ndarray) -> np.ndarray:
    from pytomography.metadata.SPECT import SPECTObjectMeta, SPECTProjMeta
    from pytomography.transforms.SPECT import SPECTAttenuationTransform

    n, _, nz = mu_map.shape
    dr = SPACING / 10.0  # PyTomography works in cm
    object_meta = SPECTObjectMeta([dr, dr, dr], [n, n, nz])
    # PyTomography's scanner angle beta relates to our camera azimuth phi by beta = 270 - phi.
    proj_meta = SPECTProjMeta((n, nz), [dr, dr], 270.0 - azimuths_deg)
    transform = SPECTAttenuationTransform(attenuation_map=torch.tensor(mu_map, dtype=torch.float32))
    transform.configure(object_meta, proj_meta)
    return transform.compute_average_prob_matrix().cpu().numpy()


@pytest.mark.parametrize("arc", [180.0, 360.0])
@pytest.mark.parametrize("mu", [0.12, 0.153])
def test_first_order_factor_matches_pytomography(arc: float, mu: float) -> None:
    torch.set_num_threads(1)
    # Off-centre towards the patient's left and anterior, so that a wrong angle convention
    # (mirrored or rotated views) changes the answer.
    mask = _cylinder(48, 3, radius_mm=110.0, centre_mm=(40.0, -20.0))
    protocol = Protocol(n_views=60, arc_deg=arc)
    ours = chang_factors(mask, SPACING, protocol.azimuths_rad(), mu_per_cm=mu)
    reference = 1.0 / _pytomography_average_probability(mask * mu, protocol.azimuths_deg())
    # Compare away from the voxelised edge, where both discretisations differ by design.
    interior = ndimage.binary_erosion(mask, structure=ndimage.generate_binary_structure(2, 1)[:, :, None], iterations=3)
    ratio = ours[interior] / reference[interior]
    assert np.max(np.abs(ratio - 1)) < 0.01
    assert abs(np.mean(ratio) - 1) < 0.002
    assert ours[interior].max() > 1.5  # the attenuation is not negligible in this test
    assert np.all(ours[~mask] == 1.0)


def test_first_order_factor_is_lower_on_the_side_the_camera_sees() -> None:
    # The 180-degree cardiac arc (RAO 45 -> LPO 45) looks at the anterior and left side.
    mask = _cylinder(40, 3, radius_mm=120.0)
    factors = chang_factors(mask, SPACING, Protocol().azimuths_rad())[:, :, 1]
    c = 20  # near the centre
    left, right = factors[c + 14, c], factors[c - 15, c]  # +x is the patient's left
    anterior, posterior = factors[c, c - 15], factors[c, c + 14]  # -y is anterior
    assert left < right and anterior < posterior
    full = chang_factors(mask, SPACING, Protocol(arc_deg=360.0).azimuths_rad())[:, :, 1]
    assert abs(full[c + 14, c] - full[c - 15, c]) < 0.02 * full[c + 14, c]  # symmetric orbit


def test_factor_on_the_axis_of_a_centred_cylinder_is_analytic() -> None:
    mask = _cylinder(41, 3, radius_mm=100.0)
    factors = chang_factors(mask, SPACING, Protocol(arc_deg=360.0).azimuths_rad(), mu_per_cm=0.15)
    # At the centre every view sees the radius (plus the voxelisation of the disc edge).
    expected = np.exp(0.15 * 10.0)
    assert factors[20, 20, 1] == pytest.approx(expected, rel=0.02)


def test_array_azimuths_follow_a_flipped_grid() -> None:
    volume = Volume(np.zeros((4, 4, 4)), (1, 1, 1), direction=np.diag([-1.0, -1.0, 1.0]))
    phi = array_azimuths(volume, Protocol())
    expected = Protocol().azimuths_rad() + np.pi
    assert np.allclose(np.cos(phi), np.cos(expected), atol=1e-9)
    assert np.allclose(np.sin(phi), np.sin(expected), atol=1e-9)


# ---- body contour ------------------------------------------------------------------------------


def _torso(counts_per_voxel: float, liver: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A transaxially elliptic torso with dark lungs, a hot liver and a hot LV blob, blurred and
    Poisson-noisy like a low-count OSEM image. Returns (image, true body mask)."""
    n, nz = 48, 24
    x, y = _grid(n)
    z = (np.arange(nz) - (nz - 1) / 2) * SPACING
    x3, y3, z3 = x[:, :, None], y[:, :, None], z[None, None, :]
    body = np.broadcast_to((x3 / 150.0) ** 2 + (y3 / 105.0) ** 2 < 1, (n, n, nz))
    activity = body.astype(np.float64)
    for side in (-1, 1):
        lung = ((x3 - side * 70) / 45) ** 2 + (y3 / 60) ** 2 + ((z3 - 30) / 70) ** 2 < 1
        activity[lung & body] = 0.2
    liver_mask = ((x3 + 40) / 70) ** 2 + ((y3 - 5) / 60) ** 2 + ((z3 + 55) / 40) ** 2 < 1
    activity[liver_mask & body] = liver
    heart = ((x3 - 25) / 35) ** 2 + ((y3 + 30) / 35) ** 2 + ((z3 - 5) / 35) ** 2 < 1
    activity[heart & body] = 8.0
    blurred = ndimage.gaussian_filter(activity, 12.0 / 2.355 / SPACING)
    rng = np.random.default_rng(seed)
    noisy = rng.poisson(blurred * counts_per_voxel + 0.02 * counts_per_voxel) / counts_per_voxel
    return noisy.astype(np.float32), np.asarray(body)


def _dice(a: np.ndarray, b: np.ndarray) -> float:
    return 2 * float(np.sum(a & b)) / float(a.sum() + b.sum())


@pytest.mark.parametrize(("counts", "liver"), [(200.0, 4.0), (3.0, 4.0), (200.0, 25.0), (3.0, 25.0)])
def test_body_contour_is_robust_to_hot_organs_and_low_counts(counts: float, liver: float) -> None:
    image, body = _torso(counts, liver, seed=int(counts + liver))
    mask = body_contour(image, SPACING)
    assert _dice(mask, body) > 0.95
    # the dark lungs are inside the contour, and nothing outside the body is taken
    assert mask[body].mean() > 0.95
    assert np.count_nonzero(mask & ~ndimage.binary_dilation(body, iterations=3)) == 0
    _, count = ndimage.label(mask)
    assert count == 1


def test_chang_first_order_raises_the_centre_of_a_uniform_nc_cylinder() -> None:
    mask = _cylinder(32, 4, radius_mm=90.0)
    nc = Volume.centred(ndimage.gaussian_filter(mask.astype(np.float32) * 100, 0.7), SPACING)
    corrected = chang_first_order(nc, Protocol(arc_deg=360.0), mu=0.12)
    assert corrected.same_grid(nc)
    ratio = corrected.array[16, 16, 1] / nc.array[16, 16, 1]
    assert ratio == pytest.approx(np.exp(0.12 * 9.0), rel=0.05)


# ---- first-order error and iterative Chang on a reconstructed uniform cylinder ------------------


def _nc_cylinder(arc: float, mu: float) -> tuple[Volume, Protocol, np.ndarray]:
    """NC OSEM image of a uniform (100 counts/voxel) water cylinder of 10 cm radius, projected with
    the attenuation of the cylinder and reconstructed without it. Returns (NC, protocol, interior)."""
    from spectac.acquisition.projector import SpectProjector
    from spectac.reconstruction.osem import osem

    torch.set_num_threads(1)
    n, nz = 32, 4
    cylinder = _cylinder(n, nz, radius_mm=100.0)
    protocol = Protocol(n_views=60, arc_deg=arc, matrix=n)
    attenuating = SpectProjector(shape=(n, n, nz), spacing_mm=SPACING, protocol=protocol, mu_map=cylinder * mu, psf=False)
    plain = SpectProjector(shape=(n, n, nz), spacing_mm=SPACING, protocol=protocol, mu_map=None, psf=False)
    projections = attenuating.forward(torch.from_numpy(cylinder.astype(np.float32) * 100.0))
    nc = osem(projections, plain, 10, 6).numpy()
    interior = _cylinder(n, nz, radius_mm=80.0)  # away from the resolution-blurred edge
    return Volume.centred(nc, SPACING), protocol, interior


def _errors(image: np.ndarray, interior: np.ndarray) -> tuple[float, float, float]:
    values = image[interior] / 100.0
    return float(values.mean() - 1), float(values.std() / values.mean()), float(np.max(np.abs(values - 1)))


def test_first_order_chang_flattens_a_360_degree_cylinder_and_iterative_does_better() -> None:
    from spectac.correction.chang import chang_iterative

    nc, protocol, interior = _nc_cylinder(360.0, 0.12)
    nc_bias, _, _ = _errors(nc.array, interior)
    assert nc_bias < -0.4  # the NC image is far too low in a 20 cm cylinder
    bias1, cov1, worst1 = _errors(chang_first_order(nc, protocol, mu=0.12).array, interior)
    # Chang's first order is exact only for a point source; for a uniform 20 cm cylinder it
    # leaves a few percent bias and up to ~10% local error.
    assert abs(bias1) < 0.05 and cov1 < 0.04 and worst1 < 0.10
    bias2, cov2, worst2 = _errors(chang_iterative(nc, protocol, mu=0.12, iterations=2).array, interior)
    assert abs(bias2) < abs(bias1) and worst2 < worst1 and cov2 <= cov1


def test_iterative_chang_repairs_the_180_degree_first_order_distortion() -> None:
    from spectac.correction.chang import chang_iterative

    nc, protocol, interior = _nc_cylinder(180.0, 0.12)
    _, cov1, worst1 = _errors(chang_first_order(nc, protocol, mu=0.12).array, interior)
    assert cov1 > 0.15  # first order over-corrects the side away from a 180-degree arc
    _, cov3, worst3 = _errors(chang_iterative(nc, protocol, mu=0.12, iterations=3).array, interior)
    assert cov3 < 0.5 * cov1 and worst3 < 0.5 * worst1
    # the same study stored with flipped transaxial axes gives the same correction at the same place
    flipped = Volume(nc.array[::-1, ::-1].copy(), nc.spacing,
                     tuple(nc.point_of(np.array([nc.shape[0] - 1, nc.shape[1] - 1, 0]))), np.diag([-1.0, -1.0, 1.0]))
    again = chang_iterative(flipped, protocol, mu=0.12, iterations=3)
    np.testing.assert_allclose(again.array[::-1, ::-1], chang_iterative(nc, protocol, mu=0.12, iterations=3).array,
                               rtol=1e-3, atol=1e-2)
