"""The projector against physics: adjoint identity, PyTomography's system matrix, point sources,
and OSEM on a uniform water cylinder."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from spectac.acquisition.projector import SpectProjector
from spectac.acquisition.protocol import Protocol
from spectac.reconstruction.osem import osem

SPACING = 6.8


def cylinder(n: int, radius_vox: float, length: int | None = None) -> np.ndarray:
    c = (n - 1) / 2
    xx, yy = np.meshgrid(np.arange(n) - c, np.arange(n) - c, indexing="ij")
    disc = (xx**2 + yy**2) <= radius_vox**2
    vol = np.repeat(disc[:, :, None], n, axis=2).astype(np.float32)
    if length is not None:
        vol[:, :, : (n - length) // 2] = 0
        vol[:, :, (n + length) // 2 :] = 0
    return vol


@pytest.mark.parametrize("psf", [False, True])
@pytest.mark.parametrize("arc", [180.0, 360.0])
def test_adjoint_identity(psf: bool, arc: float) -> None:
    n = 20
    rng = np.random.default_rng(0)
    protocol = Protocol(n_views=12, arc_deg=arc)
    mu = 0.153 * cylinder(n, 7)
    projector = SpectProjector((n, n, n), SPACING, protocol, mu_map=mu, psf=psf)
    x = torch.from_numpy(rng.random((n, n, n)).astype(np.float32))
    y = torch.from_numpy(rng.random((12, n, n)).astype(np.float32))
    lhs = float((projector.forward(x).double() * y.double()).sum())
    rhs = float((x.double() * projector.backward(y).double()).sum())
    assert lhs == pytest.approx(rhs, rel=1e-5)
    # and on a subset of views
    views = torch.tensor([1, 5, 9])
    lhs = float((projector.forward(x, views).double() * y[views].double()).sum())
    rhs = float((x.double() * projector.backward(y[views], views).double()).sum())
    assert lhs == pytest.approx(rhs, rel=1e-5)


def _pytomography_forward(x: np.ndarray, mu: np.ndarray, protocol: Protocol, radius_mm: float, psf: bool):
    from pytomography.metadata.SPECT import SPECTObjectMeta, SPECTProjMeta, SPECTPSFMeta
    from pytomography.projectors.SPECT import SPECTSystemMatrix
    from pytomography.transforms.SPECT import SPECTAttenuationTransform, SPECTPSFTransform

    n = x.shape[0]
    object_meta = SPECTObjectMeta([SPACING / 10] * 3, [n, n, n])
    # PyTomography's scanner angle beta relates to our camera azimuth by beta = 270 - phi.
    beta = 270.0 - protocol.azimuths_deg()
    proj_meta = SPECTProjMeta((n, n), [SPACING / 10] * 2, beta, radii=np.full(len(beta), radius_mm / 10))
    transforms = [SPECTAttenuationTransform(torch.from_numpy(mu))]
    if psf:
        col = protocol.collimator

        def sigma_cm(r_cm, _unused):
            return float(col.fwhm_mm(10 * r_cm)) / 10 / (2 * np.sqrt(2 * np.log(2))) if np.isscalar(r_cm) else (
                col.fwhm_mm(10 * np.asarray(r_cm)) / 10 / (2 * np.sqrt(2 * np.log(2)))
            )

        transforms.append(SPECTPSFTransform(SPECTPSFMeta((1.0,), sigma_fit=sigma_cm, min_sigmas=4)))
    system = SPECTSystemMatrix(transforms, [], object_meta, proj_meta)
    return system.forward(torch.from_numpy(x)).numpy()


@pytest.mark.parametrize("psf,tolerance", [(False, 1e-4), (True, 0.01)])
def test_forward_matches_pytomography(psf: bool, tolerance: float) -> None:
    """Same physics as PyTomography's SPECTSystemMatrix (attenuation, collimator blur)."""
    n = 24
    rng = np.random.default_rng(1)
    from scipy.ndimage import gaussian_filter

    body = cylinder(n, 9)
    x = gaussian_filter(rng.random((n, n, n)).astype(np.float32), 1.5) * body
    x[16, 7, 12] += 4.0  # a hot spot off-centre: left-anterior
    mu = 0.153 * body
    mu[5:10, 9:15, :] *= 0.3  # a lung-like region breaks the symmetry
    protocol = Protocol(n_views=24)
    radius = 130.0
    ours = SpectProjector((n, n, n), SPACING, protocol, mu_map=mu, psf=psf, radii_mm=np.full(24, radius))
    mine = ours.forward(torch.from_numpy(x)).numpy() * protocol.n_views
    reference = _pytomography_forward(x, mu, protocol, radius, psf)
    assert np.abs(mine - reference).sum() / np.abs(reference).sum() < tolerance


def test_point_source_orientation_and_depth_blur() -> None:
    """A source on the patient's left projects onto the detector row facing it, and it is sharper
    in the view where the camera is near (left lateral) than where it is far (RAO)."""
    n = 32
    protocol = Protocol(n_views=60)
    x = np.zeros((n, n, n), np.float32)
    left, anterior, superior = 24, 10, 20  # x > centre: left; y < centre: anterior; z > centre: head
    x[left, anterior, superior] = 1.0
    projector = SpectProjector((n, n, n), SPACING, protocol, psf=True, radii_mm=np.full(60, 240.0))
    proj = projector.forward(torch.from_numpy(x)).numpy()
    azimuths = protocol.azimuths_deg()
    c = (n - 1) / 2
    for view in range(60):
        phi = np.deg2rad(azimuths[view])
        # detector row coordinate v is along (-sin phi, cos phi)
        expected_v = -(left - c) * np.sin(phi) + (anterior - c) * np.cos(phi) + c
        row = proj[view].sum(axis=1)
        centroid = float((row * np.arange(n)).sum() / row.sum())
        assert centroid == pytest.approx(expected_v, abs=0.3)
        assert int(np.argmax(proj[view].sum(axis=0))) == superior

    def width(view: int) -> float:
        row = proj[view].sum(axis=1)
        mean = (row * np.arange(n)).sum() / row.sum()
        return float(np.sqrt((row * (np.arange(n) - mean) ** 2).sum() / row.sum()))

    near = int(np.argmin(np.abs(azimuths - 0.0)))  # camera at the patient's left
    far = int(np.argmin(np.abs(azimuths + 135.0)))  # RAO 45: far from a left-sided source
    assert width(near) < width(far)


def test_uniform_cylinder_ac_flat_nc_central_loss() -> None:
    """OSEM of a noise-free water cylinder: with the mu-map it is flat; without, the centre loses
    counts (more photons are attenuated from the middle)."""
    n = 32
    body = cylinder(n, 12, length=24)
    mu = 0.153 * body
    protocol = Protocol(n_views=32, arc_deg=360.0, start_deg=-90.0)
    ac_model = SpectProjector((n, n, n), SPACING, protocol, mu_map=mu, psf=False)
    projections = ac_model.forward(torch.from_numpy(body * 1000.0))
    nc_model = SpectProjector((n, n, n), SPACING, protocol, mu_map=None, psf=False, radii_mm=ac_model.radii_mm)
    ac = osem(projections, ac_model, iterations=12, subsets=4).numpy()
    nc = osem(projections, nc_model, iterations=12, subsets=4).numpy()
    c = (n - 1) / 2
    xx, yy = np.meshgrid(np.arange(n) - c, np.arange(n) - c, indexing="ij")
    r = np.sqrt(xx**2 + yy**2)
    central_slices = slice(n // 2 - 4, n // 2 + 4)
    interior = (r <= 9)[:, :, None] & np.zeros((n, n, n), bool)
    interior[:, :, central_slices] = (r <= 9)[:, :, None]
    ac_in = ac[interior]
    assert abs(ac_in.mean() / 1000.0 - 1.0) < 0.03
    assert ac_in.std() / ac_in.mean() < 0.04
    centre = nc[:, :, central_slices][(r <= 2)].mean()
    rim = nc[:, :, central_slices][(r >= 8) & (r <= 10)].mean()
    assert centre / rim < 0.7
