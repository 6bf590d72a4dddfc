"""Scatter in every energy window: a depth- and attenuation-dependent model in the projector's frame.

A simplified effective-scatter-source model (after Frey & Tsui, IEEE Trans Nucl Sci 1993/1996,
and the broad-beam build-up picture behind Chang's "effective" mu), evaluated in each view's
rotated frame (U toward the camera), so it costs about one extra projection per window:

1. Amount. A photon emitted where the attenuation path integral toward the camera is
   l = integral of mu (the projector's transmission is exp(-l)) reaches the window as scatter with
   probability a_w (exp(-b_w l) - exp(-l)): broad-beam minus narrow-beam transmission, the scatter
   that builds up along the path. It grows with depth and with the density crossed (little
   through the lungs, much through the liver or a thick chest wall), and with body size.
2. Spread. The scatter is laid on the detector around the emission point, blurred by a Gaussian
   whose SD grows with the depth d below the body's camera-facing surface:
   sigma^2 = sigma_collimator(d + clearance)^2 + (s_w d)^2. The depths are grouped into a few
   slabs (linear interpolation between slab centres) and each slab is blurred in the Fourier
   domain, with zero padding so nothing wraps around; scatter spread past the detector is lost.

Every window has its own a_w, b_w and s_w (:class:`spectac.acquisition.windows.EnergyWindow`):
the lower DEW window counts more scatter from larger angles, so it is larger and broader.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from spectac.acquisition.projector import SpectProjector
from spectac.acquisition.windows import EnergyWindow

#: Number of depth slabs of the scatter blur.
N_SLABS = 6


def scatter_source(rotated: torch.Tensor, transmission: torch.Tensor, broad_beam: float,
                   path: torch.Tensor | None = None) -> torch.Tensor:
    """Counts of each rotated voxel reaching a window as scatter per unit amplitude:
    exp(-b l) - exp(-l) per count (``path`` = l = -log(transmission) when already computed)."""
    if path is None:
        path = _path_integral(transmission)
    # rotated * (exp(-b l) - transmission), in one new tensor: at 128^3 each temporary of a
    # chunk of views is 84 MB of fresh memory, whose page faults cost more than the arithmetic
    return torch.mul(path, -broad_beam).exp_().sub_(transmission).mul_(rotated)


def _path_integral(transmission: torch.Tensor) -> torch.Tensor:
    """l = -log(transmission) (transmission clamped at 1e-30), in one new tensor."""
    return torch.clamp(transmission, min=1e-30).log_().neg_()


def scatter_sources(rotated: torch.Tensor, transmission: torch.Tensor,
                    windows: tuple[EnergyWindow, ...]) -> dict[float, torch.Tensor]:
    """:func:`scatter_source` once per distinct b of ``windows`` (windows sharing b share it)."""
    path = _path_integral(transmission)
    return {b: scatter_source(rotated, transmission, b, path) for b in sorted({w.broad_beam for w in windows})}


def _depths_mm(projector: SpectProjector, views: torch.Tensor) -> np.ndarray:
    """(a, U) depth of each plane below the body's camera-facing extent (the orbit radius minus
    the clearance), mm, at least 0."""
    n = projector.shape[0]
    u = (np.arange(n) - (n - 1) / 2) * projector.spacing_mm
    surface = projector.radii_mm[views.numpy()] - projector.protocol.clearance_mm
    return np.maximum(surface[:, None] - u[None, :], 0.0)


def _slab_weights(depths: np.ndarray, centres: np.ndarray) -> torch.Tensor:
    """(a, U, K) linear interpolation weights of every plane's depth between the slab centres."""
    position = np.interp(depths, centres, np.arange(len(centres)))
    low = np.floor(position).astype(int)
    high = np.minimum(low + 1, len(centres) - 1)
    frac = position - low
    weights = np.zeros(depths.shape + (len(centres),), dtype=np.float32)
    np.put_along_axis(weights, low[..., None], (1 - frac)[..., None], axis=-1)
    extra = np.take_along_axis(weights, high[..., None], axis=-1) + frac[..., None]
    np.put_along_axis(weights, high[..., None], extra, axis=-1)
    return torch.from_numpy(weights)


def gaussian_blur_fft(planes: torch.Tensor, sigma_mm: np.ndarray, spacing_mm: tuple[float, float]) -> torch.Tensor:
    """Blur (K, a, Z, V) planes, slab k by a Gaussian of SD ``sigma_mm[k]``, and sum the slabs:
    (a, Z, V). Zero padded to twice the size (no wrap-around)."""
    _, _, nz, nv = planes.shape
    spectrum = torch.fft.rfft2(planes, s=(2 * nz, 2 * nv))
    fz = torch.fft.fftfreq(2 * nz, d=spacing_mm[0])[:, None]
    fv = torch.fft.rfftfreq(2 * nv, d=spacing_mm[1])[None, :]
    f2 = (fz**2 + fv**2).to(torch.float32)
    sigma = torch.as_tensor(sigma_mm, dtype=torch.float32)[:, None, None, None]
    transfer = torch.exp(-2 * math.pi**2 * sigma**2 * f2)
    summed = (spectrum * transfer).sum(dim=0)
    return torch.fft.irfft2(summed, s=(2 * nz, 2 * nv))[:, :nz, :nv]


def slab_centres_mm(projector: SpectProjector, views: torch.Tensor | None = None) -> np.ndarray:
    """The depths (mm) of the :data:`N_SLABS` slab centres: evenly from 0 to the deepest plane of
    the views (default all)."""
    views = torch.arange(projector.n_views) if views is None else torch.as_tensor(views, dtype=torch.long)
    return np.linspace(0.0, max(float(_depths_mm(projector, views).max()), projector.spacing_mm), N_SLABS)


@torch.no_grad()
def scatter_projections(
    source: torch.Tensor,
    projector: SpectProjector,
    window: EnergyWindow,
    views: torch.Tensor | None = None,
    centres_mm: np.ndarray | None = None,
) -> torch.Tensor:
    """Expected scatter counts (a, V, Z) in ``window`` of an object already in the views' frames.

    Args:
        source: :func:`scatter_source` of the object (counts, :meth:`SpectProjector.rotated`) with
            the window's b, (a, Z, U, V).
        projector: the acquisition's projector (orbit radii, clearance, collimator, 1/A scale).
        window: the window's scatter parameters.
        centres_mm: the slab centres (:func:`slab_centres_mm`), default those of ``views``; a
            study projected a few views at a time passes those of all its views, so every chunk
            uses the same slabs.
    """
    views = torch.arange(projector.n_views) if views is None else torch.as_tensor(views, dtype=torch.long)
    depths = _depths_mm(projector, views)
    centres = slab_centres_mm(projector, views) if centres_mm is None else np.asarray(centres_mm, dtype=np.float64)
    weights = _slab_weights(depths, centres)  # (a, U, K)
    # the sum over planes as one batched product on the projector's (a, U, V, Z) memory: the
    # einsum "azuv,auk->kazv" it equals bit for bit copied the strided source first (15x slower)
    a, nz, nu, nv = source.shape
    planes = source.permute(0, 2, 3, 1).reshape(a, nu, nv * nz)
    slabs = torch.bmm(weights.transpose(1, 2), planes).reshape(a, -1, nv, nz).permute(1, 0, 3, 2)  # (K, a, Z, V)
    collimator_mm = projector.protocol.collimator.fwhm_mm(centres + projector.protocol.clearance_mm)
    sigma_mm = np.sqrt((collimator_mm / (2 * math.sqrt(2 * math.log(2)))) ** 2 + (window.spread * centres) ** 2)
    blurred = gaussian_blur_fft(slabs, sigma_mm, (projector.spacing_z_mm, projector.spacing_mm))
    return torch.clamp(blurred, min=0.0).permute(0, 2, 1) * (window.scatter / projector.n_views)
