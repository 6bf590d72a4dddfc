"""A SPECT acquisition of an activity through an attenuating body: the count scale, the expected
projections (attenuation, collimator response, optional scatter) and Poisson noise."""

from __future__ import annotations

import numpy as np
import torch

from spectac.acquisition.projector import SpectProjector
from spectac.acquisition.protocol import Protocol
from spectac.acquisition.scatter import scatter_projections
from spectac.volume import SpectacError


def scale_to_counts(
    activity: np.ndarray, mu_map: np.ndarray, counts: float, protocol: Protocol, spacing_mm: float
) -> tuple[np.ndarray, np.ndarray]:
    """Scale relative uptake so the noiseless attenuated projections hold ``counts`` in total.

    Returns (activity in counts, mu-map), both float32.
    """
    probe = SpectProjector(activity.shape, spacing_mm, protocol, mu_map=mu_map, psf=False)
    total = float(probe.forward(torch.from_numpy(activity)).sum())
    if total <= 0:
        raise SpectacError("the phantom has no activity inside the field of view")
    return (activity * (counts / total)).astype(np.float32), mu_map.astype(np.float32)


def poisson_counts(expected: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
    """Counting noise: a Poisson draw of every projection bin (float32)."""
    counts = rng.poisson(expected.numpy().astype(np.float64)).astype(np.float32)
    return torch.from_numpy(counts)


def acquire(
    truth: np.ndarray, mu_map: np.ndarray, protocol: Protocol, spacing_mm: float, rng: np.random.Generator
) -> tuple[torch.Tensor, SpectProjector]:
    """Noisy projections of an activity (in counts) through the attenuating body.

    Returns the Poisson projections (A, V, Z) and the projector with the mu-map (CT-AC model).
    """
    projector = SpectProjector(truth.shape, spacing_mm, protocol, mu_map=mu_map, psf=True)
    expected = projector.forward(torch.from_numpy(truth))
    if protocol.scatter:
        expected = expected + scatter_projections(expected, protocol, spacing_mm)
    return poisson_counts(expected, rng), projector
