"""Reference (slow) projector: spectac's SpectProjector as it was before the fast path (sparse
bilinear rotation, depthwise-convolution blur), kept verbatim so tests can check that the fast
projector computes the same system matrix (tests/test_projector_fast.py).

A batched rotate-and-sum SPECT projector with attenuation and distance-dependent collimator blur.

The system matrix is H = (1/A) sum_views Sum_u PSF_{view,u} Att_{view} Rot_{view}, the same model as
PyTomography's ``SPECTSystemMatrix`` with ``SPECTAttenuationTransform`` and ``SPECTPSFTransform``
(tests compare the two), but evaluated for all views at once:

- Rot: bilinear resampling of the object onto a grid (u, v, z) per view, u along the direction
  toward the camera, v along the detector row, z axial (one ``grid_sample`` call for all views);
- Att: the probability that a photon emitted in a voxel reaches the camera,
  exp(-(sum of mu beyond the voxel + half its own mu) * du), precomputed once per mu-map
  (:func:`spectac.acquisition.attenuation.transmission`, the same path integral as Chang's
  correction; the factors stay in each view's rotated frame, where they are applied);
- PSF: a Gaussian whose variance grows with distance from the collimator, applied by incremental
  blurring (Wallis and Miller): planes are summed from the farthest to the nearest, and between
  two planes the running sum is blurred by the variance increment, so every plane ends with the
  blur of its own distance. The increments are exact-variance 3-tap kernels.

The 1/A factor makes an object in *counts* (what each voxel would contribute to the whole
acquisition without attenuation) project to the expected counts per projection bin: sum(H x) is the
expected total count of the study.

``backward`` is the exact adjoint (transpose) of ``forward``: the adjoint of bilinear resampling
(grid_sample's input gradient), the same attenuation factors, and the blur steps in reverse order
(the 3-tap kernels are symmetric). Activity outside the cylinder inscribed in the transaxial grid
is outside the camera's view and contributes nothing.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from spectac.acquisition.attenuation import transmission
from spectac.acquisition.protocol import Protocol

# Largest variance (in pixels^2) one 3-tap step may add; larger increments are split into
# several steps so the kernel weights stay positive and Gaussian-like.
_MAX_STEP_VARIANCE = 0.25


def body_radii_mm(mask: np.ndarray, spacing_mm: float, azimuths_rad: np.ndarray, clearance_mm: float) -> np.ndarray:
    """Radius of rotation per view that follows the body: the body's extent toward the camera
    plus a clearance (the detector face distance from the rotation axis, in mm).

    Args:
        mask: (X, Y, Z) bool body mask, rotation axis through the grid centre.
    """
    nx, ny = mask.shape[:2]
    xs = (np.arange(nx) - (nx - 1) / 2) * spacing_mm
    ys = (np.arange(ny) - (ny - 1) / 2) * spacing_mm
    footprint = mask.any(axis=2)
    px, py = np.meshgrid(xs, ys, indexing="ij")
    px, py = px[footprint], py[footprint]
    if px.size == 0:
        return np.full(len(azimuths_rad), clearance_mm + spacing_mm)
    extent = np.array([np.max(px * math.cos(a) + py * math.sin(a)) for a in azimuths_rad])
    return extent + spacing_mm / 2 + clearance_mm


class SpectProjector:
    """Forward and back projection for a parallel-hole SPECT camera on a cubic-voxel grid.

    Args:
        shape: (X, Y, Z) object grid; X == Y (transaxial), the rotation axis is z through the centre.
        spacing_mm: transaxial voxel size in mm (the projection bins have the same size).
        protocol: views and collimator.
        mu_map: (X, Y, Z) attenuation map in 1/cm, or None for no attenuation (NC).
        psf: model the distance-dependent collimator blur.
        radii_mm: (views,) detector distance from the rotation axis; default: following the
            mu-map's body outline plus the protocol's clearance, or a circular orbit just outside
            the grid when there is no mu-map.
        spacing_z_mm: axial voxel size, default ``spacing_mm``.
    """

    def __init__(
        self,
        shape: tuple[int, int, int],
        spacing_mm: float,
        protocol: Protocol,
        mu_map: np.ndarray | torch.Tensor | None = None,
        psf: bool = True,
        radii_mm: np.ndarray | None = None,
        spacing_z_mm: float | None = None,
    ) -> None:
        nx, ny, nz = shape
        if nx != ny:
            raise ValueError(f"the transaxial grid must be square, got {shape}")
        self.shape = (nx, ny, nz)
        self.spacing_mm = float(spacing_mm)
        self.spacing_z_mm = float(spacing_z_mm or spacing_mm)
        self.protocol = protocol
        self.azimuths = torch.as_tensor(protocol.azimuths_rad(), dtype=torch.float32)
        self.n_views = len(self.azimuths)
        if radii_mm is None:
            if mu_map is not None:
                mu_np = mu_map.detach().cpu().numpy() if isinstance(mu_map, torch.Tensor) else np.asarray(mu_map)
                radii_mm = body_radii_mm(mu_np > 0.01, spacing_mm, protocol.azimuths_rad(), protocol.clearance_mm)
            else:
                radii_mm = np.full(self.n_views, nx / 2 * spacing_mm + protocol.clearance_mm)
        self.radii_mm = np.asarray(radii_mm, dtype=np.float64)
        if self.radii_mm.shape != (self.n_views,):
            raise ValueError(f"need one radius per view ({self.n_views}), got {self.radii_mm.shape}")
        self._grid = self._sampling_grid()
        self._attenuation = None if mu_map is None else self._attenuation_factors(torch.as_tensor(mu_map))
        self.psf = psf
        if psf:
            self._blur_steps, self._final_blur = self._blur_schedule()

    # -- geometry -------------------------------------------------------------------------
    def _sampling_grid(self) -> torch.Tensor:
        """(A, U, V, 2) normalised grid_sample coordinates of the rotated frame per view."""
        n = self.shape[0]
        coords = (torch.arange(n, dtype=torch.float32) - (n - 1) / 2) * self.spacing_mm
        u, v = torch.meshgrid(coords, coords, indexing="ij")
        cos, sin = torch.cos(self.azimuths)[:, None, None], torch.sin(self.azimuths)[:, None, None]
        # point = u * (cos, sin) + v * (-sin, cos); u toward the camera, v along the detector row
        px = u * cos - v * sin
        py = u * sin + v * cos
        half = (n - 1) / 2 * self.spacing_mm
        # input is laid out (A, Z, X, Y): grid[..., 0] indexes Y (width), grid[..., 1] indexes X
        return torch.stack((py / half, px / half), dim=-1)

    def _rotate(self, x: torch.Tensor, views: torch.Tensor) -> torch.Tensor:
        """(X, Y, Z) -> (a, Z, U, V) object resampled in the frame of each view."""
        img = x.permute(2, 0, 1).unsqueeze(0).expand(len(views), -1, -1, -1)
        return F.grid_sample(img, self._grid[views], mode="bilinear", padding_mode="zeros", align_corners=True)

    def _rotate_adjoint(self, y: torch.Tensor, views: torch.Tensor) -> torch.Tensor:
        """Adjoint of ``_rotate``: (a, Z, U, V) -> (X, Y, Z)."""
        nx, ny, nz = self.shape
        template = torch.zeros((len(views), nz, nx, ny), dtype=y.dtype)
        grad_input, _ = torch.ops.aten.grid_sampler_2d_backward(
            y.contiguous(), template, self._grid[views], 0, 0, True, [True, False]
        )
        return grad_input.sum(dim=0).permute(1, 2, 0)

    def _attenuation_factors(self, mu_map: torch.Tensor) -> torch.Tensor:
        """(A, Z, U, V) probability of reaching the camera from each rotated voxel.

        The path integral is :func:`~spectac.acquisition.attenuation.transmission`, shared with
        :func:`spectac.correction.chang.detection_probability`; only the grid differs: here the
        projector's own (U, V) grid per view (square, the field of view's inscribed cylinder) and
        no resampling back to the voxels, since the system matrix works in the rotated frame.
        """
        views = torch.arange(self.n_views)
        mu_rot = self._rotate(mu_map.float(), views)
        return transmission(mu_rot, self.spacing_mm / 10.0, dim=2)

    def _blur_schedule(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Variance increments (pixels^2) per view and plane, split into safe 3-tap steps.

        Returns:
            steps: (U, R, A) variance of each of R repeated 3-tap steps applied before adding plane u
                (steps[0] is unused); final: (R_final, A) blur applied after the nearest plane.
        """
        n = self.shape[0]
        u = (np.arange(n) - (n - 1) / 2) * self.spacing_mm
        distance = self.radii_mm[None, :] - u[:, None]  # (U, A) plane to collimator face
        sigma_mm = self.protocol.collimator.fwhm_mm(distance) / (2 * math.sqrt(2 * math.log(2)))
        variance = (sigma_mm / self.spacing_mm) ** 2  # (U, A), decreasing with u
        increments = np.zeros_like(variance)
        increments[1:] = np.maximum(variance[:-1] - variance[1:], 0.0)
        repeats = max(1, math.ceil(increments.max() / _MAX_STEP_VARIANCE))
        steps = np.repeat((increments / repeats)[:, None, :], repeats, axis=1)
        final = variance[-1]
        final_repeats = max(1, math.ceil(final.max() / _MAX_STEP_VARIANCE))
        final_steps = np.repeat((final / final_repeats)[None, :], final_repeats, axis=0)
        return torch.as_tensor(steps, dtype=torch.float32), torch.as_tensor(final_steps, dtype=torch.float32)

    @staticmethod
    def _blur(p: torch.Tensor, variance: torch.Tensor) -> torch.Tensor:
        """Symmetric 3-tap blur of variance ``variance`` (a,) along the last two axes of (a, Z, V)."""
        w = (variance / 2)[:, None, None]
        p = p * (1 - 2 * w) + w * (F.pad(p[..., 1:], (0, 1)) + F.pad(p[..., :-1], (1, 0)))
        p = p * (1 - 2 * w) + w * (F.pad(p[:, 1:, :], (0, 0, 0, 1)) + F.pad(p[:, :-1, :], (0, 0, 1, 0)))
        return p

    # -- projection -----------------------------------------------------------------------
    def _views(self, views: torch.Tensor | np.ndarray | None) -> torch.Tensor:
        if views is None:
            return torch.arange(self.n_views)
        return torch.as_tensor(views, dtype=torch.long)

    @torch.no_grad()
    def forward(self, x: torch.Tensor, views: torch.Tensor | np.ndarray | None = None) -> torch.Tensor:
        """Project an object.

        Args:
            x: (X, Y, Z) object in counts.
            views: indices of the views to project (default all).

        Returns:
            (a, V, Z) expected counts per projection bin (V along the detector row).
        """
        views = self._views(views)
        y, transmission = self.rotated(x, views)
        if transmission is not None:
            y = y * transmission
        return self.project_rotated(y, views)

    @torch.no_grad()
    def rotated(
        self, x: torch.Tensor, views: torch.Tensor | np.ndarray | None = None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The object in each view's frame (a, Z, U, V) (U toward the camera) and the transmission
        factors there (None without a mu-map): what the scatter model needs besides ``forward``."""
        views = self._views(views)
        y = self._rotate(torch.as_tensor(x, dtype=torch.float32), views)
        return y, None if self._attenuation is None else self._attenuation[views]

    @torch.no_grad()
    def project_rotated(self, y: torch.Tensor, views: torch.Tensor | np.ndarray | None = None) -> torch.Tensor:
        """Sum an already rotated and attenuated object (a, Z, U, V) toward the camera with the
        collimator blur: (a, V, Z) expected counts."""
        views = self._views(views)
        if self.psf:
            steps, final = self._blur_steps[:, :, views], self._final_blur[:, views]
            proj = y[:, :, 0, :]
            for k in range(1, y.shape[2]):
                for r in range(steps.shape[1]):
                    proj = self._blur(proj, steps[k, r])
                proj = proj + y[:, :, k, :]
            for r in range(final.shape[0]):
                proj = self._blur(proj, final[r])
        else:
            proj = y.sum(dim=2)
        return proj.permute(0, 2, 1) / self.n_views

    @torch.no_grad()
    def backward(self, p: torch.Tensor, views: torch.Tensor | np.ndarray | None = None) -> torch.Tensor:
        """Back-project projections with the exact transpose of ``forward``.

        Args:
            p: (a, V, Z) projections of the given views.

        Returns:
            (X, Y, Z) back projection.
        """
        views = self._views(views)
        nu = self.shape[0]
        g = torch.as_tensor(p, dtype=torch.float32).permute(0, 2, 1) / self.n_views  # (a, Z, V)
        if self.psf:
            steps, final = self._blur_steps[:, :, views], self._final_blur[:, views]
            for r in reversed(range(final.shape[0])):
                g = self._blur(g, final[r])
            planes = [g]
            for k in range(nu - 1, 0, -1):
                for r in reversed(range(steps.shape[1])):
                    g = self._blur(g, steps[k, r])
                planes.append(g)
            y = torch.stack(planes[::-1], dim=2)  # (a, Z, U, V)
        else:
            y = g.unsqueeze(2).expand(-1, -1, nu, -1)
        if self._attenuation is not None:
            y = y * self._attenuation[views]
        return self._rotate_adjoint(y, views)

    def sensitivity(self, views: torch.Tensor | np.ndarray | None = None) -> torch.Tensor:
        """H^T 1 for the given views: (X, Y, Z)."""
        views = self._views(views)
        ones = torch.ones((len(views), self.shape[1], self.shape[2]))
        return self.backward(ones, views)
