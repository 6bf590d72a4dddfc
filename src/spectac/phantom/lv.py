"""The left-ventricular coordinate frame, the AHA 17-segment model and coronary territories.

LV frame: ``long_axis`` points from the centre of the base plane to the apex; ``anterior`` is
perpendicular to it toward the mid-anterior wall; ``septal`` is perpendicular to both toward the
mid-septum. The short-axis angle theta is measured from ``anterior`` toward ``septal`` (degrees).

This is the frame of clinical reorientation (transaxial -> HLA rotation about the patient's axis,
then VLA tilt): the long axis points left, anterior and inferior, the septum faces the right
ventricle (right and anterior, horizontal), and the anterior wall is what the short-axis display
puts at 12 o'clock: the patient's superior direction made perpendicular to the long axis (up,
slightly left and anterior), so that the inferior wall opposite it rests on the diaphragm.

AHA segments (Cerqueira et al. 2002): basal 1-6 and mid 7-12 are 60 degrees wide, centred on
anterior 0, anteroseptal 60, inferoseptal 120, inferior 180, inferolateral 240, anterolateral 300;
apical 13-16 are 90 degrees wide, centred on anterior 0, septal 90, inferior 180, lateral 270;
17 is the apical cap beyond the end of the cavity. Basal, mid and apical are thirds of the cavity
length from the base plane.
"""

from __future__ import annotations

import numpy as np

TERRITORY_SEGMENTS: dict[str, tuple[int, ...]] = {
    "LAD": (1, 2, 7, 8, 13, 14, 17),
    "RCA": (3, 4, 9, 10, 15),
    "LCx": (5, 6, 11, 12, 16),
}
TERRITORIES = tuple(TERRITORY_SEGMENTS)
SEGMENT_TERRITORY = {s: t for t, segs in TERRITORY_SEGMENTS.items() for s in segs}
SEGMENT_NAMES = {
    1: "basal anterior", 2: "basal anteroseptal", 3: "basal inferoseptal", 4: "basal inferior",
    5: "basal inferolateral", 6: "basal anterolateral", 7: "mid anterior", 8: "mid anteroseptal",
    9: "mid inferoseptal", 10: "mid inferior", 11: "mid inferolateral", 12: "mid anterolateral",
    13: "apical anterior", 14: "apical septal", 15: "apical inferior", 16: "apical lateral", 17: "apex",
}


SUPERIOR_LPS = np.array([0.0, 0.0, 1.0])
ANTERIOR_LPS = np.array([0.0, -1.0, 0.0])


def aha_anterior(long_axis: np.ndarray, reference: np.ndarray | None = None) -> np.ndarray:
    """The AHA anterior direction of a long axis: ``reference`` (default: the patient's superior,
    +z) made perpendicular to the axis; the patient's anterior (-y) for a vertical axis."""
    axis = np.asarray(long_axis, dtype=np.float64)
    axis = axis / np.linalg.norm(axis)
    ref = SUPERIOR_LPS if reference is None else np.asarray(reference, dtype=np.float64)
    a = ref - np.dot(ref, axis) * axis
    if np.linalg.norm(a) < 1e-6:
        a = ANTERIOR_LPS - np.dot(ANTERIOR_LPS, axis) * axis
    return a / np.linalg.norm(a)


def lv_frame(long_axis: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Orthonormal (long_axis, anterior, septal) frame from a long axis in LPS (see the module
    docstring): ``anterior`` from :func:`aha_anterior`, ``septal = long_axis x anterior``, which
    points to the patient's right for a long axis pointing left."""
    axis = np.asarray(long_axis, dtype=np.float64)
    axis = axis / np.linalg.norm(axis)
    anterior = aha_anterior(axis)
    return axis, anterior, np.cross(axis, anterior)


def segment_of(theta_deg: np.ndarray, level: np.ndarray) -> np.ndarray:
    """AHA segment number for short-axis angles and levels.

    Args:
        theta_deg: angle from anterior toward septal, any range.
        level: 0 basal, 1 mid, 2 apical, 3 apex cap (integer array of the same shape).

    Returns:
        int array of segment numbers 1-17.
    """
    theta = np.mod(np.asarray(theta_deg, dtype=np.float64), 360.0)
    level = np.asarray(level)
    six = np.floor(np.mod(theta + 30.0, 360.0) / 60.0).astype(int)  # 0 anterior ... 5 anterolateral
    four = np.floor(np.mod(theta + 45.0, 360.0) / 90.0).astype(int)  # 0 anterior, 1 septal, 2 inf, 3 lat
    segment = np.where(level == 0, 1 + six, np.where(level == 1, 7 + six, np.where(level == 2, 13 + four, 17)))
    return segment.astype(int)
