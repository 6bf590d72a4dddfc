"""Intensity normalisation for the networks (docs/architecture.md): a scale from the NC volume alone.

The network sees ``nc / scale`` and predicts ``ac / scale``; the same scale, stored, turns the
prediction back into counts. The target, mu-map or truth never enter the scale, so inference
has exactly what training had.
"""

from __future__ import annotations

import numpy as np

from spectac.volume import SpectacError

#: A high percentile rather than the maximum: one hot noisy voxel must not set the scale.
DEFAULT_PERCENTILE = 99.9


def nc_scale(nc: np.ndarray, percentile: float = DEFAULT_PERCENTILE) -> float:
    """The normalisation scale of an NC volume: its ``percentile``-th percentile of counts.

    Raises:
        SpectacError: the volume holds no positive counts.
    """
    scale = float(np.percentile(np.clip(nc, 0, None), percentile))
    if not np.isfinite(scale) or scale <= 0:
        # a sparse volume: fall back to the maximum before giving up
        scale = float(np.max(nc)) if nc.size else 0.0
    if not np.isfinite(scale) or scale <= 0:
        raise SpectacError("the NC volume holds no positive counts; nothing to correct")
    return scale


def normalise(nc: np.ndarray, percentile: float = DEFAULT_PERCENTILE) -> tuple[np.ndarray, float]:
    """Scale an NC volume for a network. Negative values (possible after FBP) are set to 0.

    Returns:
        (X, Y, Z) float32 normalised NC, and the scale to undo it with :func:`denormalise`.
    """
    scale = nc_scale(nc, percentile)
    return (np.clip(nc, 0, None) / scale).astype(np.float32), scale


def denormalise(prediction: np.ndarray, scale: float) -> np.ndarray:
    """Return a normalised prediction to counts (float32, >= 0)."""
    return np.clip(prediction * scale, 0, None).astype(np.float32)
