"""Acquisition faults the consistency index should catch, made on an acquisition in memory.

They measure what ``spectac qc`` and the indirect route's index detect (benchmarks/indirect_qc.py,
BENCHMARKS.md): each returns a new :class:`~spectac.io.projections.Acquisition` with every energy
window altered alike (the scatter windows see the same body and motion as the photopeak), never
the input.

- :func:`truncated`: a body wider than the field of view: the outer bins of every detector row
  read nothing, as when the body reaches past the detector's edge (a small camera, a large
  patient, a detector placed off-centre);
- :func:`moved`: the patient moved axially between views: from a view on, the projections are
  displaced by whole detector rows (an upward creep of the heart; Friedman et al., J Nucl Med
  1989, described its artefacts), the rows entering empty;
- :func:`sub_arc`: only some of the views (a partial orbit, or an orbit of other extent than the
  training data's), with their own angles and radii.

A wrong attenuation map (another patient's, a misregistered CT) is no fault of the projections;
the benchmark gives the index another mu-map instead.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from spectac.errors import SpectacError
from spectac.io.projections import Acquisition


def truncated(acquisition: Acquisition, fraction: float) -> Acquisition:
    """The outer ``fraction`` of the bins of every detector row (along V) zeroed on each side."""
    if not 0 <= fraction < 0.5:
        raise SpectacError(f"the truncated fraction of each side must lie in [0, 0.5), got {fraction}")
    n = round(fraction * acquisition.matrix[0])
    counts = acquisition.counts.copy()
    if n:
        counts[:, :, :n] = 0
        counts[:, :, -n:] = 0
    return replace(acquisition, counts=counts)


def moved(acquisition: Acquisition, rows: int, from_view: int | None = None) -> Acquisition:
    """From view ``from_view`` on (default: the second half of the views, in acquisition order),
    the projections shifted by ``rows`` axial rows (positive toward the head), zeros entering."""
    start = acquisition.n_views // 2 if from_view is None else from_view
    if not 0 <= start <= acquisition.n_views:
        raise SpectacError(f"from_view must lie in [0, {acquisition.n_views}], got {start}")
    n_z = acquisition.matrix[1]
    if abs(rows) >= n_z:
        raise SpectacError(f"a shift of {rows} rows leaves nothing of {n_z} rows")
    counts = acquisition.counts.copy()
    part = acquisition.counts[:, start:]
    shifted = np.zeros_like(part)
    if rows >= 0:
        shifted[..., rows:] = part[..., :n_z - rows]
    else:
        shifted[..., :rows] = part[..., -rows:]
    counts[:, start:] = shifted
    return replace(acquisition, counts=counts)


def sub_arc(acquisition: Acquisition, views: slice | np.ndarray) -> Acquisition:
    """Only the chosen views (a slice or indices, in acquisition order), with their angles, radii
    and detectors."""
    index = np.arange(acquisition.n_views)[views]
    if index.size < 2:
        raise SpectacError(f"a sub-arc needs at least 2 views, got {index.size}")
    return replace(acquisition, counts=acquisition.counts[:, index].copy(),
                   azimuths_deg=acquisition.azimuths_deg[index], radii_mm=acquisition.radii_mm[index],
                   detectors=acquisition.detectors[index])
