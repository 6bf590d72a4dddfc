"""The AHA 17-segment model (:mod:`spectac.segments`) on the polar-map layout.

Rings: the cap rings are segment 17, the SA rings split into apical, mid and basal thirds (see
:mod:`spectac.quant.polar`). The model itself (segment numbers, names, territories) is
:mod:`spectac.segments`.
"""

from __future__ import annotations

import numpy as np

from spectac.quant.polar import ANGLES_DEG, N_ANGLES, N_CAP, N_RINGS, N_SA, PolarMap
from spectac.segments import N_SEGMENTS, TERRITORIES, TERRITORY_SEGMENTS, Level, segment_of


def _segment_map() -> np.ndarray:
    seg = np.empty((N_RINGS, N_ANGLES), dtype=np.int64)
    third = N_SA // 3
    for ring in range(N_RINGS):
        if ring < N_CAP:
            level = Level.APEX
        elif ring < N_CAP + third:
            level = Level.APICAL
        elif ring < N_CAP + 2 * third:
            level = Level.MID
        else:
            level = Level.BASAL
        seg[ring] = segment_of(ANGLES_DEG, level)
    return seg


SEGMENT_MAP = _segment_map()
"""(N_RINGS, N_ANGLES) AHA segment number (1-17) of every polar-map sample."""


def segment_values(values: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """(17,) area-weighted mean of polar-map samples in each segment (index 0 = segment 1).

    Args:
        values: (N_RINGS, N_ANGLES) polar-map samples (or any per-sample quantity).
        weights: (N_RINGS, N_ANGLES) sample areas.
    """
    flat = SEGMENT_MAP.ravel() - 1
    num = np.bincount(flat, weights=(values * weights).ravel(), minlength=N_SEGMENTS)
    den = np.bincount(flat, weights=weights.ravel(), minlength=N_SEGMENTS)
    return num / den


def polar_segments(pm: PolarMap) -> np.ndarray:
    """(17,) mean normalised uptake per AHA segment of a polar map."""
    return segment_values(pm.values, pm.weights)


def territory_mask(territory: str) -> np.ndarray:
    """(N_RINGS, N_ANGLES) boolean mask of the samples in a coronary territory (LAD, LCx, RCA)."""
    if territory not in TERRITORY_SEGMENTS:
        raise ValueError(f"unknown territory {territory!r}; choose from {', '.join(TERRITORIES)}")
    return np.isin(SEGMENT_MAP, TERRITORY_SEGMENTS[territory])
