"""OSEM reconstruction and the clinical post-filter.

NC = OSEM with a system matrix without attenuation; CT-AC = OSEM with the mu-map in the system
matrix and, when the acquisition has scatter windows, their scatter estimate as an additive term of
the forward model (y ~ A x + s). Both model the collimator blur by default (resolution recovery, as clinical cardiac
software does).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass

import numpy as np
import torch

from spectac.acquisition.projector import SpectProjector


@dataclass(frozen=True)
class ReconConfig:
    """OSEM and post-filter settings (defaults give images like clinical cardiac OSEM).

    The Butterworth filter is applied in 3D: H(f) = 1 / sqrt(1 + (f / cutoff)^(2 order)), with f
    in cycles/cm.
    """

    iterations: int = 4
    subsets: int = 6
    psf: bool = True
    butterworth_cutoff_per_cm: float = 0.4
    butterworth_order: int = 10
    #: CT-AC scatter correction from the energy windows: "tew", "dew" or "none"
    #: (:mod:`spectac.reconstruction.scatter_windows`); NC never corrects scatter.
    scatter_correction: str = "tew"

    def to_dict(self) -> dict:
        return asdict(self)


def subset_views(n_views: int, n_subsets: int) -> list[torch.Tensor]:
    """Interleaved subsets of view indices (view i goes to subset i mod n_subsets)."""
    return [torch.arange(s, n_views, n_subsets) for s in range(n_subsets)]


@contextmanager
def one_thread() -> Iterator[None]:
    """Torch at one intra-op thread inside the block, the caller's count restored after.

    OSEM with the fast projector is thousands of small operations at 64^3, too small to gain from
    a second thread but each paying OpenMP's hand-over: in a whole `spectac correct --route
    indirect` process on an idle 2-core machine the reconstructions at two threads made it
    11.6-15 s against 7.2-7.8 s at one, and with one other busy process 85-173 s against 7.5 s
    (BENCHMARKS.md, "The indirect route's speed and OpenMP").
    """
    threads = torch.get_num_threads()
    if threads != 1:
        torch.set_num_threads(1)
    try:
        yield
    finally:
        if threads != 1:
            torch.set_num_threads(threads)


@torch.no_grad()
def osem(projections: torch.Tensor, projector: SpectProjector, iterations: int, subsets: int,
         background: torch.Tensor | None = None) -> torch.Tensor:
    """Ordered-subsets expectation maximisation (Hudson and Larkin, IEEE Trans Med Imaging 1994).

    Args:
        projections: (A, V, Z) measured counts.
        projector: the system matrix model.
        background: (A, V, Z) expected counts added to the model's forward projection, e.g. a
            scatter estimate from energy windows (y ~ Poisson(H x + s)); None: no additive term.

    Returns:
        (X, Y, Z) reconstructed object in counts.
    """
    if iterations < 1 or subsets < 1:
        raise ValueError("OSEM needs at least one iteration and one subset")
    projections = torch.as_tensor(projections, dtype=torch.float32)
    if background is not None:
        background = torch.as_tensor(background, dtype=torch.float32)
        if background.shape != projections.shape:
            raise ValueError(f"background {tuple(background.shape)} is not shaped like the projections "
                             f"{tuple(projections.shape)}")
    with one_thread():
        return _osem(projections, projector, iterations, subsets, background)


def _osem(projections: torch.Tensor, projector: SpectProjector, iterations: int, subsets: int,
          background: torch.Tensor | None) -> torch.Tensor:
    groups = subset_views(projector.n_views, subsets)
    sensitivities = [projector.sensitivity(views) for views in groups]
    x = torch.ones(projector.shape)
    # Voxels no view sees (outside the field of view) stay zero.
    seen = sum(sensitivities) > 1e-6 * max(float(s.max()) for s in sensitivities)
    x = x * seen
    for _ in range(iterations):
        for views, sensitivity in zip(groups, sensitivities):
            expected = projector.forward(x, views)
            if background is not None:
                expected = expected + background[views]
            ratio = projections[views] / torch.clamp(expected, min=1e-6)
            ratio = torch.where(expected > 1e-6, ratio, torch.zeros_like(ratio))
            update = projector.backward(ratio, views)
            x = torch.where(sensitivity > 1e-6, x * update / torch.clamp(sensitivity, min=1e-6), torch.zeros_like(x))
    return x


def butterworth_filter(volume: np.ndarray, spacing_mm: float, cutoff_per_cm: float, order: int) -> np.ndarray:
    """3D Butterworth low-pass filter in the frequency domain (cutoff in cycles/cm)."""
    if cutoff_per_cm <= 0:
        return volume
    # the real-input transform: the same filter as the complex fftn/ifftn pair (the response is
    # even in every frequency), on half the spectrum
    freqs = [np.fft.fftfreq(n, d=spacing_mm / 10.0) for n in volume.shape[:-1]]
    freqs.append(np.fft.rfftfreq(volume.shape[-1], d=spacing_mm / 10.0))
    fx, fy, fz = np.meshgrid(*freqs, indexing="ij", sparse=True)
    f = np.sqrt(fx**2 + fy**2 + fz**2)
    response = 1.0 / np.sqrt(1.0 + (f / cutoff_per_cm) ** (2 * order))
    axes = (0, 1, 2)  # named: NumPy 2 deprecates s= without axes
    filtered = np.fft.irfftn(np.fft.rfftn(volume, axes=axes) * response, s=volume.shape, axes=axes)
    return np.maximum(filtered, 0.0).astype(np.float32)


def reconstruct(projections: torch.Tensor, projector: SpectProjector, config: ReconConfig,
                background: torch.Tensor | None = None) -> np.ndarray:
    """OSEM then the post-filter: the image a clinical workstation would show, in counts.

    ``background``: an additive term of the model (see :func:`osem`), e.g. a scatter estimate.
    """
    x = osem(projections, projector, config.iterations, config.subsets, background)
    return butterworth_filter(
        x.numpy(), projector.spacing_mm, config.butterworth_cutoff_per_cm, config.butterworth_order
    )
