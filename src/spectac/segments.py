"""The AHA 17-segment model and coronary territories (Cerqueira et al., Circulation 2002).

The one definition used by both the phantom (truth: which segments a defect covers) and
quantification (the polar-map segments and territories). Angles are AHA short-axis angles theta,
from ``anterior`` toward ``septal`` in degrees (the LV frame of :mod:`spectac.phantom.lv`).

Basal (1-6) and mid (7-12) segments are 60 degrees wide, centred on anterior 0, anteroseptal 60,
inferoseptal 120, inferior 180, inferolateral 240, anterolateral 300. Apical segments (13-16) are
90 degrees wide, centred on anterior 0, septal 90, inferior 180, lateral 270. Segment 17 is the
apical cap. Levels are :class:`Level` values: basal, mid and apical thirds of the cavity, and the
apex cap beyond its end.
"""

from __future__ import annotations

from enum import IntEnum

import numpy as np


class Level(IntEnum):
    """Long-axis level of the AHA model (usable in integer arrays: 0 basal ... 3 apex cap)."""

    BASAL = 0
    MID = 1
    APICAL = 2
    APEX = 3


N_SEGMENTS = 17
SEGMENT_NAMES = (
    "basal anterior", "basal anteroseptal", "basal inferoseptal", "basal inferior", "basal inferolateral",
    "basal anterolateral", "mid anterior", "mid anteroseptal", "mid inferoseptal", "mid inferior",
    "mid inferolateral", "mid anterolateral", "apical anterior", "apical septal", "apical inferior",
    "apical lateral", "apex",
)  # fmt: skip
"""Segment names; ``SEGMENT_NAMES[s - 1]`` is the name of segment s."""
TERRITORY_SEGMENTS: dict[str, tuple[int, ...]] = {
    "LAD": (1, 2, 7, 8, 13, 14, 17),
    "RCA": (3, 4, 9, 10, 15),
    "LCx": (5, 6, 11, 12, 16),
}
TERRITORIES = tuple(TERRITORY_SEGMENTS)
SEGMENT_TERRITORY = {s: t for t, segs in TERRITORY_SEGMENTS.items() for s in segs}


def segment_of(theta_deg: np.ndarray, level: Level | np.ndarray) -> np.ndarray:
    """AHA segment number (1-17) of short-axis angles at levels.

    Args:
        theta_deg: angle from anterior toward septal in degrees, any range.
        level: a :class:`Level`, or an integer array of :class:`Level` values broadcastable
            against ``theta_deg``.

    Returns:
        int array of segment numbers, the broadcast shape of the two.
    """
    theta = np.mod(np.asarray(theta_deg, dtype=np.float64), 360.0)
    level = np.asarray(level)
    if level.dtype.kind not in "iu" or np.any((level < Level.BASAL) | (level > Level.APEX)):
        raise ValueError(f"level must be Level values (0 basal ... 3 apex), got {level!r}")
    six = np.floor(np.mod(theta + 30.0, 360.0) / 60.0).astype(int)  # 0 anterior ... 5 anterolateral
    four = np.floor(np.mod(theta + 45.0, 360.0) / 90.0).astype(int)  # 0 anterior, 1 septal, 2 inf, 3 lat
    segment = np.where(
        level == Level.BASAL, 1 + six,
        np.where(level == Level.MID, 7 + six, np.where(level == Level.APICAL, 13 + four, 17)),
    )  # fmt: skip
    return segment.astype(int)
