"""The two reconstructions of one acquisition, as a clinic makes them: NC (OSEM of the photopeak,
no attenuation, no scatter correction: what a SPECT-only camera gives) and CT-AC (the mu-map in the
system matrix and the energy-window scatter estimate as an additive term)."""

from __future__ import annotations

import numpy as np
import torch

from spectac.acquisition.projector import SpectProjector
from spectac.acquisition.protocol import Protocol
from spectac.reconstruction.osem import ReconConfig, reconstruct
from spectac.reconstruction.scatter_windows import scatter_estimate


def photopeak_scatter(
    windows: dict[str, torch.Tensor], protocol: Protocol, spacing_mm: float, method: str,
    spacing_z_mm: float | None = None,
) -> torch.Tensor | None:
    """The smoothed scatter estimate of the photopeak from the acquisition's windows, or None when
    ``method`` is "none" or the acquisition has only the photopeak."""
    if method == "none" or set(windows) <= {"photopeak"}:
        return None
    bounds = {w.name: (w.lower_kev, w.upper_kev) for w in protocol.windows}
    return scatter_estimate(windows, bounds, method, pixel_mm=(spacing_mm, spacing_z_mm or spacing_mm))


def reconstruct_nc_ac(
    projections: torch.Tensor | dict[str, torch.Tensor],
    ac_model: SpectProjector,
    mu_map: np.ndarray,
    protocol: Protocol,
    spacing_mm: float,
    recon: ReconConfig,
) -> dict[str, np.ndarray]:
    """{"nc", "ac"}: OSEM of the photopeak without and with attenuation (and, for CT-AC, the
    ``recon.scatter_correction`` estimate from the windows), on the orbit (radii) of ``ac_model``,
    the acquisition's projector (reused for CT-AC when the recon models the PSF).

    Args:
        projections: the photopeak's counts (A, V, Z), or the counts of every window by name.
    """
    windows = projections if isinstance(projections, dict) else {"photopeak": projections}
    nc_projector = SpectProjector(ac_model.shape, spacing_mm, protocol, mu_map=None, psf=recon.psf,
                                  radii_mm=ac_model.radii_mm)
    return {
        "nc": reconstruct(windows["photopeak"], nc_projector, recon),
        "ac": reconstruct_ac(windows, ac_model, mu_map, protocol, spacing_mm, recon),
    }


def reconstruct_ac(
    windows: dict[str, torch.Tensor], ac_model: SpectProjector, mu_map: np.ndarray, protocol: Protocol,
    spacing_mm: float, recon: ReconConfig,
) -> np.ndarray:
    """The CT-AC half of :func:`reconstruct_nc_ac`: OSEM of the photopeak with the mu-map and the
    windows' scatter estimate."""
    ac_projector = ac_model
    if not recon.psf:
        ac_projector = SpectProjector(ac_model.shape, spacing_mm, protocol, mu_map=mu_map, psf=False,
                                      radii_mm=ac_model.radii_mm)
    scatter = photopeak_scatter(windows, protocol, spacing_mm, recon.scatter_correction, ac_model.spacing_z_mm)
    return reconstruct(windows["photopeak"], ac_projector, recon, background=scatter)
