"""OSEM of a camera's own projections with spectac's projector: the route that gives images of the
same kind as the training pairs (same system model, same OSEM, same post-filter), not the vendor's.

The grid: the transaxial plane has as many voxels as the detector row has bins, of the bin size,
centred on the rotation axis; the axial voxels are the detector's rows. The grid's place in the
patient frame is read from the file (see :func:`spectac.io.projections._grid_origin`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from spectac.acquisition.projector import SpectProjector
from spectac.acquisition.protocol import Protocol
from spectac.errors import SpectacError
from spectac.io.projections import Acquisition
from spectac.reconstruction.osem import ReconConfig, reconstruct
from spectac.volume import Volume, to_lps_axes


@dataclass(frozen=True)
class ProjectionRecon:
    """A reconstruction of an acquisition and what it was made with."""

    volume: Volume
    protocol: Protocol
    window: int
    collimator: str
    corrected: bool


def acquisition_grid(acquisition: Acquisition) -> Volume:
    """The empty reconstruction grid of an acquisition (LPS, axis-aligned)."""
    n_v, n_z = acquisition.matrix
    dv, dz = acquisition.pixel_mm
    return Volume(np.zeros((n_v, n_v, n_z), np.float32), (dv, dv, dz), acquisition.origin_mm)


def mu_on_grid(mu: Volume, grid: Volume, what: str = "--mu") -> np.ndarray:
    """The mu-map's values on the reconstruction grid: it must be that grid (axes may be permuted
    or flipped; no resampling)."""
    ordered, _ = to_lps_axes(mu)
    if not ordered.same_grid(grid, atol_mm=0.05 * min(grid.spacing)):
        raise SpectacError(
            f"{what}: its grid {ordered.shape} at {tuple(round(v, 1) for v in ordered.origin)} mm, spacing "
            f"{tuple(round(s, 3) for s in ordered.spacing)} is not the SPECT grid {grid.shape} at "
            f"{tuple(round(v, 1) for v in grid.origin)} mm, spacing {tuple(round(s, 3) for s in grid.spacing)}; "
            "resample it onto the SPECT grid first")
    array = ordered.array
    if array.min() < 0 or array.max() > 2.0:
        raise SpectacError(f"{what}: mu values must lie in [0, 2] 1/cm (got {array.min():.3g} to {array.max():.3g})")
    return array


def reconstruct_acquisition(
    acquisition: Acquisition,
    config: ReconConfig | None = None,
    window: str | int | float | None = None,
    collimator: str | None = None,
    mu: Volume | None = None,
) -> ProjectionRecon:
    """OSEM of one energy window (NC, or AC with a mu-map on the SPECT grid) and the post-filter.

    Same call as the simulator's: ``reconstruct(projections, SpectProjector(...), config)`` with the
    acquisition's views, radii and collimator.
    """
    config = config or ReconConfig()
    if config.subsets > acquisition.n_views:
        raise SpectacError(f"--subsets ({config.subsets}) cannot exceed the number of views ({acquisition.n_views})")
    w = acquisition.window_index(window)
    spec = acquisition.collimator_spec(collimator)
    protocol = acquisition.protocol(collimator=spec.key, window=w + 1)
    grid = acquisition_grid(acquisition)
    mu_array = None if mu is None else mu_on_grid(mu, grid)
    projector = SpectProjector(grid.shape, acquisition.pixel_mm[0], protocol, mu_map=mu_array, psf=config.psf,
                               radii_mm=acquisition.radii_mm, spacing_z_mm=acquisition.pixel_mm[1])
    projections = torch.from_numpy(np.ascontiguousarray(acquisition.counts[w]))
    array = reconstruct(projections, projector, config)
    return ProjectionRecon(grid.with_array(array), protocol, w, spec.key, mu is not None)
