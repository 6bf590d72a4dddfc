"""The attenuation path integral (acquisition/attenuation.py), shared by the projector and Chang:
both against the analytic exp(-mu * chord) of a uniform cylinder."""

from __future__ import annotations

import numpy as np
import torch

from spectac.acquisition.attenuation import transmission
from spectac.acquisition.projector import SpectProjector
from spectac.acquisition.protocol import Protocol
from spectac.correction.chang import detection_probability

MU = 0.15  # 1/cm
N, NZ, SPACING = 64, 4, 4.0  # voxels, mm
RADIUS = 100.0  # mm, cylinder centred on the rotation axis
# The tolerance, in path length: the binary (voxelised) cylinder's rim is off the true circle by up
# to half a voxel, and the bilinear resampling (Chang's also back to the voxel centres) smears it
# a little more. Away from the rim, |log p + mu * chord| <= mu * 0.75 voxel (0.045 here, p within
# ~4.6 %) voxel by voxel, and <= mu * 0.3 voxel (0.018, p within ~1.8 %) on average. Measured:
# projector max 0.029 / mean 0.014; Chang max 0.036 / mean 0.009.
TOLERANCE = MU * 0.75 * SPACING / 10.0
MEAN_TOLERANCE = MU * 0.3 * SPACING / 10.0


def _cylinder() -> np.ndarray:
    c = (np.arange(N) - (N - 1) / 2) * SPACING
    x, y = np.meshgrid(c, c, indexing="ij")
    return np.repeat(((x**2 + y**2) <= RADIUS**2)[:, :, None], NZ, axis=2).astype(np.float32) * np.float32(MU)


def _chord_mm(px: np.ndarray, py: np.ndarray, phi: float) -> np.ndarray:
    """Distance from (px, py) to the cylinder's rim toward the camera at azimuth phi."""
    along = px * np.cos(phi) + py * np.sin(phi)
    return -along + np.sqrt(np.maximum(along**2 - (px**2 + py**2) + RADIUS**2, 0.0))


def test_transmission_is_the_midpoint_rule() -> None:
    mu = torch.tensor([[0.1, 0.2, 0.3, 0.0]])
    got = transmission(mu, 0.5, dim=1)
    expected = torch.exp(-torch.tensor([[0.1 / 2 + 0.2 + 0.3, 0.2 / 2 + 0.3, 0.3 / 2, 0.0]]) * 0.5)
    assert torch.allclose(got, expected, rtol=1e-6)


def test_projector_and_chang_match_the_analytic_cylinder() -> None:
    mu = _cylinder()
    c = (np.arange(N) - (N - 1) / 2) * SPACING
    inner = np.add.outer(c**2, c**2) <= (RADIUS - 2 * SPACING) ** 2  # away from the rim

    protocol = Protocol(n_views=8, arc_deg=360.0, start_deg=0.0)
    projector = SpectProjector((N, N, NZ), SPACING, protocol, mu_map=mu, psf=False)
    att = projector.rotated(torch.zeros((N, N, NZ)))[1].numpy()  # (A, Z, U, V), U toward the camera
    u, v = np.meshgrid(c, c, indexing="ij")
    for a, phi in enumerate(protocol.azimuths_rad()):
        # in the view's frame the point is u * (cos, sin) + v * (-sin, cos)
        analytic = -MU * _chord_mm(u * np.cos(phi) - v * np.sin(phi), u * np.sin(phi) + v * np.cos(phi), phi) / 10
        err = np.abs(np.log(att[a, 0]) - analytic)[inner]
        assert err.max() < TOLERANCE and err.mean() < MEAN_TOLERANCE, (a, err.max(), err.mean())

    x, y = np.meshgrid(c, c, indexing="ij")
    for phi in (0.0, 0.7, 2.0, 4.0):
        prob = detection_probability(mu, SPACING, np.array([phi])).numpy()[:, :, 0]
        analytic = -MU * _chord_mm(x, y, phi) / 10
        err = np.abs(np.log(prob) - analytic)[inner]
        assert err.max() < TOLERANCE and err.mean() < MEAN_TOLERANCE, (phi, err.max(), err.mean())
        # and the two agree with each other where their grids coincide (view 0 of the projector)
        if phi == 0.0:
            assert np.max(np.abs(np.log(prob) - np.log(att[0, 0]))[inner]) < TOLERANCE
