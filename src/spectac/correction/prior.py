"""What a network sees: the normalised NC volume and, optionally, a physics prior made from it.

The "chang" prior is the logarithm of the first-order Chang correction factor (uniform mu inside
the body contour found in the NC image; :mod:`spectac.correction.chang`). It tells a network,
voxel by voxel, how much attenuation a uniform body of this shape would cause along the camera
orbit: global geometry that a convolutional network otherwise has to infer from the image
through its whole receptive field. It is computed from the NC volume alone (no CT, no target),
so inference has exactly what training had.

Channels of the network input (C, X, Y, Z; the count per prior is
:data:`spectac.nn.registry.PRIOR_CHANNELS`):
    0: NC / scale (see :mod:`spectac.nn.normalisation`);
    1: log Chang factor (prior "chang" only; 0 outside the body).
"""

from __future__ import annotations

import numpy as np

from spectac.acquisition.protocol import Protocol
from spectac.correction.chang import DEFAULT_MU_PER_CM, array_azimuths, body_contour, chang_factors
from spectac.nn.registry import PRIOR_CHANNELS
from spectac.volume import SpectacError, Volume


def chang_log_factors(nc: Volume, protocol: Protocol | None = None, mu: float = DEFAULT_MU_PER_CM) -> np.ndarray:
    """(X, Y, Z) float32 log of the first-order Chang factors of an NC volume (0 outside the body)."""
    protocol = protocol or Protocol()
    mask = body_contour(nc.array, nc.spacing)
    factors = chang_factors(mask, nc.spacing, array_azimuths(nc, protocol), mu)
    return np.log(factors).astype(np.float32)


def prior_channels(nc: Volume, prior: str, protocol: Protocol | None = None) -> np.ndarray:
    """(C - 1, X, Y, Z) the prior channels of a study (empty for prior "none")."""
    if prior not in PRIOR_CHANNELS:
        raise SpectacError(f"unknown network prior {prior!r}; choose from {', '.join(PRIOR_CHANNELS)}")
    if prior == "none":
        return np.zeros((0, *nc.shape), dtype=np.float32)
    return chang_log_factors(nc, protocol)[None]
