"""The AHA 17-segment model (Cerqueira et al., Circulation 2002) on the polar-map layout.

Angles are AHA angles theta, from ``anterior`` toward ``septal``. Basal (1-6) and mid (7-12)
segments are 60 degrees wide: anterior centred at 0, anteroseptal 60, inferoseptal 120, inferior
180, inferolateral 240, anterolateral 300. Apical segments (13-16) are 90 degrees wide: anterior
0, septal 90, inferior 180, lateral 270. Segment 17 is the apical cap. Rings: the cap rings are
segment 17, the SA rings split into apical, mid and basal thirds (see :mod:`spectac.quant.polar`).
"""

from __future__ import annotations

import numpy as np

from spectac.quant.polar import ANGLES_DEG, N_ANGLES, N_CAP, N_RINGS, N_SA, PolarMap

N_SEGMENTS = 17
SEGMENT_NAMES = (
    "basal anterior", "basal anteroseptal", "basal inferoseptal", "basal inferior", "basal inferolateral",
    "basal anterolateral", "mid anterior", "mid anteroseptal", "mid inferoseptal", "mid inferior",
    "mid inferolateral", "mid anterolateral", "apical anterior", "apical septal", "apical inferior",
    "apical lateral", "apex",
)  # fmt: skip
TERRITORY_SEGMENTS: dict[str, tuple[int, ...]] = {
    "LAD": (1, 2, 7, 8, 13, 14, 17),
    "RCA": (3, 4, 9, 10, 15),
    "LCx": (5, 6, 11, 12, 16),
}
TERRITORIES = tuple(TERRITORY_SEGMENTS)


def segment_of_angle(theta_deg: np.ndarray, level: str) -> np.ndarray:
    """AHA segment number of AHA angles at a level ('basal', 'mid', 'apical' or 'apex')."""
    theta = np.asarray(theta_deg, dtype=np.float64) % 360
    if level == "basal":
        return 1 + ((theta + 30) % 360 // 60).astype(int)
    if level == "mid":
        return 7 + ((theta + 30) % 360 // 60).astype(int)
    if level == "apical":
        return 13 + ((theta + 45) % 360 // 90).astype(int)
    if level == "apex":
        return np.full(theta.shape, 17, dtype=int)
    raise ValueError(f"unknown level {level!r}")


def _segment_map() -> np.ndarray:
    seg = np.empty((N_RINGS, N_ANGLES), dtype=np.int64)
    third = N_SA // 3
    for ring in range(N_RINGS):
        if ring < N_CAP:
            level = "apex"
        elif ring < N_CAP + third:
            level = "apical"
        elif ring < N_CAP + 2 * third:
            level = "mid"
        else:
            level = "basal"
        seg[ring] = segment_of_angle(ANGLES_DEG, level)
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
