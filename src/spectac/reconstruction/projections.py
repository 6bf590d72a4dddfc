"""OSEM of a camera's own projections with spectac's projector: the route that gives images of the
same kind as the training pairs (same system model, same OSEM, same post-filter), not the vendor's.

The grid: the transaxial plane has as many voxels as the detector row has bins, of the bin size,
centred on the rotation axis; the axial voxels are the detector's rows. The grid's place in the
patient frame is read from the file (see :func:`spectac.io.projections._grid_origin`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from spectac import resample
from spectac.acquisition.projector import SpectProjector
from spectac.acquisition.protocol import Protocol
from spectac.errors import SpectacError
from spectac.io.projections import Acquisition
from spectac.reconstruction.osem import ReconConfig, reconstruct
from spectac.volume import Volume, to_lps_axes


@dataclass(frozen=True)
class ProjectionRecon:
    """A reconstruction of an acquisition and what it was made with.

    ``projector`` is the system model OSEM used (with its cached rotations and attenuation
    factors: 0.5 GB at 128^3 and 60 views), kept only when asked for
    (:func:`reconstruct_acquisition` ``keep_projector``) by a caller that projects the image again
    with the same model (the consistency index); it is not part of the result's identity."""

    volume: Volume
    protocol: Protocol
    window: int
    collimator: str
    corrected: bool
    projector: SpectProjector | None = field(default=None, repr=False, compare=False)


def acquisition_grid(acquisition: Acquisition) -> Volume:
    """The empty reconstruction grid of an acquisition (LPS, axis-aligned)."""
    n_v, n_z = acquisition.matrix
    dv, dz = acquisition.pixel_mm
    return Volume(np.zeros((n_v, n_v, n_z), np.float32), (dv, dv, dz), acquisition.origin_mm)


#: A mu-map on another grid must cover at least this fraction of the SPECT grid's voxels (a CT is
#: often shorter than the SPECT field; outside it the mu-map is 0, air).
MIN_MU_COVERAGE = 0.5
#: The largest mu a mu-map may hold, 1/cm (cortical bone is about 0.28 at 140 keV; metal more).
MAX_MU_PER_CM = 2.0


def on_grid(volume: Volume, grid: Volume, what: str, min_coverage: float) -> np.ndarray:
    """A volume's values on the reconstruction grid (the array as it is on that grid, else resampled).

    A volume on the SPECT grid (axes may be permuted or flipped) is taken as it is; any other grid
    (a CT's, a NIfTI in patient LPS) is resampled through both grids' LPS placement: trilinear, after
    the low-pass of :func:`spectac.resample.lowpass_for_import` when the source is much finer (each
    SPECT voxel gets the mean value it covers), 0 outside the source. Refused when the source covers
    less than ``min_coverage`` of the grid's voxels.
    """
    ordered, _ = to_lps_axes(volume)
    if ordered.same_grid(grid, atol_mm=0.05 * min(grid.spacing)):
        return ordered.array
    covered = coverage(volume, grid)
    if covered < min_coverage:
        raise SpectacError(
            f"{what}: covers {100 * covered:.0f}% of the SPECT grid {grid.shape} at "
            f"{tuple(round(v, 1) for v in grid.origin)} mm, spacing {tuple(round(s, 3) for s in grid.spacing)} "
            f"(needs {100 * min_coverage:.0f}%); is it of this acquisition?")
    source = resample.lowpass_for_import(volume.array.astype(np.float32), volume.spacing, grid.spacing)
    return resample.onto_grid(source, volume.affine_lps, grid.affine_lps, grid.shape, order=1).astype(np.float32)


def mu_on_grid(mu: Volume, grid: Volume, what: str = "--mu") -> np.ndarray:
    """The mu-map's values (1/cm) on the reconstruction grid (:func:`on_grid`; a mu-map of another
    grid must cover :data:`MIN_MU_COVERAGE` of it), checked to lie in [0, 2] 1/cm."""
    array = on_grid(mu, grid, what, MIN_MU_COVERAGE)
    if array.min() < 0 or array.max() > MAX_MU_PER_CM:
        raise SpectacError(f"{what}: mu values must lie in [0, {MAX_MU_PER_CM:g}] 1/cm (got {array.min():.3g} to {array.max():.3g})")
    return array


def coverage(volume: Volume, grid: Volume) -> float:
    """Fraction of the grid's voxel centres inside the volume's field of view (LPS placement)."""
    return resample.overlap_fraction(volume.affine_lps, volume.shape, grid.affine_lps, grid.shape)


def acquisition_projector(acquisition: Acquisition, window: int, collimator: str | None = None,
                          mu_array: np.ndarray | None = None, psf: bool = True) -> tuple[SpectProjector, Protocol, str]:
    """The system model of an acquisition's window (0-based): its own angles, per-view radii and the
    table's collimator, with attenuation when ``mu_array`` (on :func:`acquisition_grid`) is given.

    Returns (projector, protocol, collimator key).
    """
    spec = acquisition.collimator_spec(collimator)
    protocol = acquisition.protocol(collimator=spec.key, window=window + 1)
    grid = acquisition_grid(acquisition)
    projector = SpectProjector(grid.shape, acquisition.pixel_mm[0], protocol, mu_map=mu_array, psf=psf,
                               radii_mm=acquisition.radii_mm, spacing_z_mm=acquisition.pixel_mm[1])
    return projector, protocol, spec.key


def reconstruct_acquisition(
    acquisition: Acquisition,
    config: ReconConfig | None = None,
    window: str | int | float | None = None,
    collimator: str | None = None,
    mu: Volume | None = None,
    scatter: np.ndarray | None = None,
    keep_projector: bool = False,
) -> ProjectionRecon:
    """OSEM of one energy window (NC, or AC with a mu-map, resampled onto the SPECT grid) and the
    post-filter.

    Same call as the simulator's: ``reconstruct(projections, SpectProjector(...), config)`` with the
    acquisition's views, radii and collimator.

    ``scatter``: (views, V, Z) estimated scatter counts in the chosen window (e.g. a TEW or DEW
    estimate from the acquisition's other windows), added to the forward model inside OSEM; None
    reconstructs the photopeak as it is (the simulator's NC and AC).

    ``keep_projector``: return OSEM's projector with the result (``ProjectionRecon.projector``),
    else None, so that its caches are freed with OSEM.
    """
    config = config or ReconConfig()
    if config.subsets > acquisition.n_views:
        raise SpectacError(f"--subsets ({config.subsets}) cannot exceed the number of views ({acquisition.n_views})")
    w = acquisition.window_index(window)
    grid = acquisition_grid(acquisition)
    mu_array = None if mu is None else mu_on_grid(mu, grid)
    projector, protocol, key = acquisition_projector(acquisition, w, collimator, mu_array, config.psf)
    projections = torch.from_numpy(np.ascontiguousarray(acquisition.counts[w]))
    background = None
    if scatter is not None:
        if np.shape(scatter) != projections.shape:
            raise SpectacError(f"the scatter estimate {np.shape(scatter)} is not shaped like the projections "
                               f"{tuple(projections.shape)}")
        background = torch.from_numpy(np.ascontiguousarray(scatter, dtype=np.float32))
    array = reconstruct(projections, projector, config, background)
    return ProjectionRecon(grid.with_array(array), protocol, w, key, mu is not None,
                           projector if keep_projector else None)


#: Window roles found around a photopeak: keV a neighbour may lie from the photopeak's edge, and
#: the widest a TEW window may be, as a fraction of the photopeak's width.
ADJACENT_KEV = 2.0
NARROW_FRACTION = 0.5


def scatter_windows(acquisition: Acquisition, peak: int) -> dict[str, int]:
    """The acquisition's windows that serve the photopeak's scatter estimate, by role.

    ``tew_lower`` / ``tew_upper``: a narrow window (at most half the photopeak's width) ending within
    2 keV below / starting within 2 keV above the photopeak; ``dew_lower``: a broad window lying
    below the photopeak (ending within 2 keV of its lower edge or lower). Windows are matched by
    their keV ranges, not their names (vendors name them freely).
    """
    windows = acquisition.windows
    lo, hi = windows[peak].lower_kev, windows[peak].upper_kev
    width = hi - lo
    roles: dict[str, int] = {}
    for j, w in enumerate(windows):
        if j == peak:
            continue
        narrow = (w.upper_kev - w.lower_kev) <= NARROW_FRACTION * width
        if narrow and abs(w.upper_kev - lo) <= ADJACENT_KEV:
            roles.setdefault("tew_lower", j)
        elif narrow and abs(w.lower_kev - hi) <= ADJACENT_KEV:
            roles.setdefault("tew_upper", j)
        elif not narrow and w.upper_kev <= lo + ADJACENT_KEV:
            roles.setdefault("dew_lower", j)
    return roles


def acquisition_scatter(acquisition: Acquisition, peak: int, method: str) -> np.ndarray | None:
    """The smoothed TEW or DEW scatter estimate of the photopeak window ``peak`` (views, V, Z) from
    the acquisition's other windows (:func:`spectac.reconstruction.scatter_windows.scatter_estimate`),
    or None for ``method`` "none". SpectacError naming the windows when the method's are missing."""
    from spectac.reconstruction.scatter_windows import scatter_estimate

    if method == "none":
        return None
    roles = scatter_windows(acquisition, peak)
    needed = "tew_lower" if method == "tew" else "dew_lower"
    if needed not in roles:
        have = ", ".join(str(w) for w in acquisition.windows)
        what = ("a narrow window just below the photopeak" if method == "tew"
                else "a broad window below the photopeak")
        raise SpectacError(f"{method.upper()} scatter correction needs {what}; the file has: {have}")
    if method == "dew":
        roles.pop("tew_lower", None)
        roles.pop("tew_upper", None)
    names = {"photopeak": peak, **roles}
    counts = {name: acquisition.counts[j] for name, j in names.items()}
    bounds = {name: (acquisition.windows[j].lower_kev, acquisition.windows[j].upper_kev) for name, j in names.items()}
    return scatter_estimate(counts, bounds, method, pixel_mm=acquisition.pixel_mm).numpy()


def default_scatter_method(acquisition: Acquisition, peak: int, corrected: bool) -> str:
    """``auto``: no scatter correction for NC (what the networks take as input); for AC, TEW when the
    windows allow it (as the simulator's CT-AC), else DEW, else none."""
    if not corrected:
        return "none"
    roles = scatter_windows(acquisition, peak)
    return "tew" if "tew_lower" in roles else "dew" if "dew_lower" in roles else "none"
