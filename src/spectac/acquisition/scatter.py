"""A scatter component of the photopeak window: the primary projections blurred broadly."""

from __future__ import annotations

import numpy as np
import torch

from spectac.acquisition.protocol import Protocol


def scatter_projections(primary: torch.Tensor, protocol: Protocol, spacing_mm: float) -> torch.Tensor:
    """A scatter component: the primary projections convolved with a broad Gaussian, scaled so
    scatter is ``scatter_fraction`` of all counts in the photopeak window."""
    from scipy.ndimage import gaussian_filter

    sigma = protocol.scatter_fwhm_mm / (2 * np.sqrt(2 * np.log(2))) / spacing_mm
    broad = gaussian_filter(primary.numpy(), sigma=(0, sigma, sigma), mode="constant")
    sf = protocol.scatter_fraction
    return torch.from_numpy(broad * (sf / (1 - sf)) * primary.sum().item() / max(broad.sum(), 1e-9))
