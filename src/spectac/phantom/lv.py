"""The left-ventricular coordinate frame.

LV frame: ``long_axis`` points from the centre of the base plane to the apex; ``anterior`` is
perpendicular to it toward the mid-anterior wall; ``septal`` is perpendicular to both toward the
mid-septum. The short-axis angle theta is measured from ``anterior`` toward ``septal`` (degrees).

This is the frame of clinical reorientation (transaxial -> HLA rotation about the patient's axis,
then VLA tilt): the long axis points left, anterior and inferior, the septum faces the right
ventricle (right and anterior, horizontal), and the anterior wall is what the short-axis display
puts at 12 o'clock: the patient's superior direction made perpendicular to the long axis (up,
slightly left and anterior), so that the inferior wall opposite it rests on the diaphragm.

The AHA 17-segment model and coronary territories on this frame are in :mod:`spectac.segments`.
Basal, mid and apical are thirds of the cavity length from the base plane.
"""

from __future__ import annotations

import numpy as np

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


def long_axis(azimuth_deg: float, elevation_deg: float) -> np.ndarray:
    """The LV long axis in LPS of a heart turned ``azimuth_deg`` from anterior toward the
    patient's left in the transverse plane, then tilted ``elevation_deg`` inferiorly."""
    az, el = np.deg2rad(azimuth_deg), np.deg2rad(elevation_deg)
    horizontal = np.array([np.sin(az), -np.cos(az), 0.0])  # anterior rotated toward the left
    return np.cos(el) * horizontal + np.sin(el) * np.array([0.0, 0.0, -1.0])
