"""The two reconstructions of one acquisition: NC (no attenuation model) and CT-AC (the mu-map)."""

from __future__ import annotations

import numpy as np
import torch

from spectac.acquisition.projector import SpectProjector
from spectac.acquisition.protocol import Protocol
from spectac.reconstruction.osem import ReconConfig, reconstruct


def reconstruct_nc_ac(
    projections: torch.Tensor,
    ac_model: SpectProjector,
    mu_map: np.ndarray,
    protocol: Protocol,
    spacing_mm: float,
    recon: ReconConfig,
) -> dict[str, np.ndarray]:
    """{"nc", "ac"}: OSEM of the projections without and with attenuation, on the orbit (radii)
    of ``ac_model``, the acquisition's projector (reused for CT-AC when the recon models the PSF)."""
    shape, radii = ac_model.shape, ac_model.radii_mm
    ac_projector = ac_model
    if not recon.psf:
        ac_projector = SpectProjector(shape, spacing_mm, protocol, mu_map=mu_map, psf=False, radii_mm=radii)
    nc_projector = SpectProjector(shape, spacing_mm, protocol, mu_map=None, psf=recon.psf, radii_mm=radii)
    return {
        "nc": reconstruct(projections, nc_projector, recon),
        "ac": reconstruct(projections, ac_projector, recon),
    }
