"""A SPECT acquisition of an activity through an attenuating body: the count scale, the expected
projections of every energy window (primary photons with attenuation and collimator response,
and scatter) and Poisson noise drawn independently in every window."""

from __future__ import annotations

import numpy as np
import torch

from spectac.acquisition.projector import SpectProjector
from spectac.acquisition.protocol import Protocol
from spectac.acquisition.scatter import scatter_projections, scatter_source, scatter_sources, slab_centres_mm
from spectac.acquisition.windows import window_named
from spectac.volume import SpectacError


def scale_to_counts(
    activity: np.ndarray, mu_map: np.ndarray, counts: float, protocol: Protocol, spacing_mm: float
) -> tuple[np.ndarray, np.ndarray]:
    """Scale relative uptake so the noiseless photopeak window (primary, plus scatter when the
    protocol simulates it) holds ``counts`` in total.

    Returns (activity in counts, mu-map), both float32.
    """
    probe = SpectProjector(activity.shape, spacing_mm, protocol, mu_map=mu_map, psf=False)
    rotated, transmission = probe.rotated(torch.from_numpy(activity))
    total = float((rotated * transmission).sum())
    if protocol.scatter:
        peak = window_named(protocol.windows, "photopeak")
        total += peak.scatter * float(scatter_source(rotated, transmission, peak.broad_beam).sum())
    total /= probe.n_views
    if total <= 0:
        raise SpectacError("the phantom has no activity inside the field of view")
    return (activity * (counts / total)).astype(np.float32), mu_map.astype(np.float32)


def poisson_counts(expected: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
    """Counting noise: a Poisson draw of every projection bin (float32)."""
    counts = rng.poisson(expected.numpy().astype(np.float64)).astype(np.float32)
    return torch.from_numpy(counts)


#: Views projected at a time by :func:`window_components`: the rotated object, its transmission and
#: scatter sources of a few views at once instead of all (at 128^3 and 60 views each would be 0.5 GB).
VIEW_CHUNK = 10


@torch.no_grad()
def window_components(
    truth: np.ndarray, projector: SpectProjector, protocol: Protocol
) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """Noiseless (primary, scatter) projections (A, V, Z) of every energy window.

    The photopeak's primary is ``projector.forward(truth)``; another window counts the fraction of
    primaries its energy range takes from the Gaussian energy response, relative to the
    photopeak's. Without ``protocol.scatter`` only the photopeak is returned, with zero scatter.
    Computed :data:`VIEW_CHUNK` views at a time (every view is independent; the scatter slabs are
    those of all views).
    """
    x = torch.from_numpy(np.asarray(truth, dtype=np.float32))
    with_scatter = protocol.scatter and projector.has_attenuation
    centres = slab_centres_mm(projector) if with_scatter else None
    peak = window_named(protocol.windows, "photopeak").primary_fraction() if with_scatter else 1.0
    chunks: list[dict[str, tuple[torch.Tensor, torch.Tensor]]] = []
    for start in range(0, projector.n_views, VIEW_CHUNK):
        views = torch.arange(start, min(start + VIEW_CHUNK, projector.n_views))
        rotated, transmission = projector.rotated(x, views)
        primary = projector.project_rotated(rotated if transmission is None else rotated * transmission, views)
        if not with_scatter:
            chunks.append({"photopeak": (primary, torch.zeros_like(primary))})
            continue
        sources = scatter_sources(rotated, transmission, protocol.windows)
        chunks.append({
            w.name: (primary * (w.primary_fraction() / peak),
                     scatter_projections(sources[w.broad_beam], projector, w, views, centres))
            for w in protocol.windows
        })
    return {name: (torch.cat([c[name][0] for c in chunks]), torch.cat([c[name][1] for c in chunks]))
            for name in chunks[0]}


def acquire_windows(
    truth: np.ndarray, mu_map: np.ndarray, protocol: Protocol, spacing_mm: float, rng: np.random.Generator
) -> tuple[dict[str, torch.Tensor], SpectProjector]:
    """Noisy projections of every energy window (independent Poisson draws, in the order of
    ``protocol.windows``) and the projector with the mu-map (the CT-AC model)."""
    projector = SpectProjector(truth.shape, spacing_mm, protocol, mu_map=mu_map, psf=True)
    components = window_components(truth, projector, protocol)
    return {name: poisson_counts(p + s, rng) for name, (p, s) in components.items()}, projector


def expected_counts(
    activity: np.ndarray, mu_map: np.ndarray, counts: float, protocol: Protocol, spacing_mm: float,
) -> tuple[np.ndarray, np.ndarray, dict[str, torch.Tensor], SpectProjector, float]:
    """The expected (noise-free) counts of every energy window, with the activity scaled so the
    noiseless photopeak (primary and scatter) holds ``counts``: one projection (the acquisition
    is linear in the activity). Returns (activity in counts, mu-map, expected windows in the order
    of ``protocol.windows``, projector, the photopeak's scatter fraction: scatter / all counts)."""
    mu_map = mu_map.astype(np.float32)
    projector = SpectProjector(activity.shape, spacing_mm, protocol, mu_map=mu_map, psf=True)
    components = window_components(activity, projector, protocol)
    total = float(sum(part.sum() for part in components["photopeak"]))
    if total <= 0:
        raise SpectacError("the phantom has no activity inside the field of view")
    scale = counts / total
    expected = {name: (p + s) * scale for name, (p, s) in components.items()}
    scatter_fraction = float(components["photopeak"][1].sum()) / total
    return (activity * scale).astype(np.float32), mu_map, expected, projector, scatter_fraction


def acquire_counts(
    activity: np.ndarray, mu_map: np.ndarray, counts: float, protocol: Protocol, spacing_mm: float,
    rng: np.random.Generator, expected_out: dict[str, torch.Tensor] | None = None,
) -> tuple[np.ndarray, np.ndarray, dict[str, torch.Tensor], SpectProjector, float]:
    """:func:`expected_counts` and a Poisson draw of every window (in the order of
    ``protocol.windows``). Returns (activity in counts, mu-map, noisy windows, projector, the
    noiseless photopeak's scatter fraction); ``expected_out``, when given, receives the expected
    windows."""
    truth, mu_map, expected, projector, scatter_fraction = expected_counts(activity, mu_map, counts, protocol,
                                                                          spacing_mm)
    if expected_out is not None:
        expected_out.update(expected)
    windows = {name: poisson_counts(e, rng) for name, e in expected.items()}
    return truth, mu_map, windows, projector, scatter_fraction


def acquire(
    truth: np.ndarray, mu_map: np.ndarray, protocol: Protocol, spacing_mm: float, rng: np.random.Generator
) -> tuple[torch.Tensor, SpectProjector]:
    """Noisy photopeak projections (A, V, Z) (primary and, when simulated, scatter) and the
    projector with the mu-map. The other windows: :func:`acquire_windows`."""
    windows, projector = acquire_windows(truth, mu_map, protocol, spacing_mm, rng)
    return windows["photopeak"], projector
