"""The LV geometry every quantification step shares: position, size and the clinical AHA frame
(:class:`LVGeometry`), the shell model's centroid, and how far two geometries are apart.

:mod:`spectac.quant.lv` finds it in an image; the simulator's truth (lv.json) is the same type.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from spectac.phantom.lv import aha_anterior
from spectac.volume import Volume

WALL_MM = 10.0  # nominal myocardial wall thickness used by the shell model
COVERAGE_LEVEL = 0.6  # wall_coverage counts the mid-wall points at >= this x the wall's 95th percentile
MIN_WALL_COVERAGE = 0.75  # below: low confidence (large defect or misfit)
MAX_HOT_SURROUNDINGS = 0.15  # above: low confidence (the fit may be pulled toward the neighbour)
SHAPE_POWER = 2.4  # exponent of the super-ellipsoid LV shape used for the centroid
BAND_MARGIN_MM = 4.0  # the polar map's search band half-width = wall/2 + this (fit error and blur)


@dataclass(frozen=True)
class LVGeometry:
    """The LV position, size and AHA frame in LPS millimetres.

    Attributes:
        center_mm: (3,) centroid of the LV myocardium.
        long_axis: (3,) unit vector from base to apex.
        anterior: (3,) unit vector perpendicular to ``long_axis`` toward the mid-anterior wall.
        septal: (3,) unit vector ``long_axis x anterior``, toward the mid-septum.
        radius_mm: mid-wall radius at the base.
        length_mm: distance from the base plane to the mid-wall apex.
        base_mm: (3,) centre of the base plane.
        wall_mm: wall thickness assumed or measured.
        score: the shell-fit contrast (image units; 0 when not fitted).
        wall_coverage: fraction of the fitted mid-wall at >= ``COVERAGE_LEVEL`` x its 95th percentile
            (about 1 for a normal wall; lower with large defects or a misfit); NaN when not fitted.
        hot_surroundings: fraction of the points 9 mm outside the fitted wall at >= ``HOT_LEVEL`` x
            the wall's median (liver, stomach or bowel against the wall); NaN when not fitted.
    """

    center_mm: np.ndarray
    long_axis: np.ndarray
    anterior: np.ndarray
    septal: np.ndarray
    radius_mm: float
    length_mm: float
    base_mm: np.ndarray
    wall_mm: float = WALL_MM
    score: float = 0.0
    wall_coverage: float = float("nan")
    hot_surroundings: float = float("nan")

    @property
    def confidence(self) -> str:
        """"high", "low" (with why) or "unknown" (not fitted): see docs/quantification.md."""
        if not np.isfinite(self.wall_coverage):
            return "unknown"
        why = []
        if self.hot_surroundings > MAX_HOT_SURROUNDINGS:
            why.append(f"hot activity against {100 * self.hot_surroundings:.0f}% of the wall")
        if self.wall_coverage < MIN_WALL_COVERAGE:
            why.append(f"only {100 * self.wall_coverage:.0f}% of the wall at >= {COVERAGE_LEVEL:.0%} of its maximum")
        if not apex_points_left(self.long_axis):
            why.append("the apex points to the patient's right: dextrocardia, or the fit turned the axis")
        return "high" if not why else "low: " + "; ".join(why) + " (check the axes)"

    @property
    def apex_mm(self) -> np.ndarray:
        """(3,) the epicardial apex."""
        return self.base_mm + (self.length_mm + self.wall_mm / 2) * self.long_axis

    @property
    def cavity_ml(self) -> float:
        """Volume of the LV cavity (inside the endocardial surface of the fitted shell) in mL."""
        return cavity_volume_ml(self.radius_mm, self.length_mm, self.wall_mm)

    @property
    def rotation(self) -> np.ndarray:
        """(3, 3) matrix whose rows are anterior, septal and long_axis (LPS -> LV frame)."""
        return np.stack([self.anterior, self.septal, self.long_axis])

    @classmethod
    def from_axes(
        cls,
        base_mm: np.ndarray,
        long_axis: np.ndarray,
        radius_mm: float,
        length_mm: float,
        wall_mm: float = WALL_MM,
        score: float = 0.0,
        anterior_hint: np.ndarray | None = None,
    ) -> LVGeometry:
        """The geometry of a shell with its base centre and long axis; the AHA frame is derived."""
        long_axis = _unit(np.asarray(long_axis, dtype=np.float64))
        anterior = aha_anterior(long_axis, anterior_hint)
        septal = np.cross(long_axis, anterior)
        base_mm = np.asarray(base_mm, dtype=np.float64)
        centre = base_mm + shell_centroid_offset(radius_mm, length_mm, wall_mm) * long_axis
        return cls(centre, long_axis, anterior, septal, float(radius_mm), float(length_mm), base_mm, wall_mm, score)

    @classmethod
    def from_lv_json(cls, lv: dict[str, Any]) -> LVGeometry:
        """The truth geometry written by the simulator (lv.json of a study: ``length_mm`` from the
        base plane to the epicardial apex, ``radius_mm`` the epicardial radius)."""
        long_axis = _unit(np.asarray(lv["long_axis"], dtype=np.float64))
        anterior = _unit(np.asarray(lv["anterior"], dtype=np.float64))
        septal = _unit(np.asarray(lv.get("septal", np.cross(long_axis, anterior)), dtype=np.float64))
        wall = float(lv.get("wall_mm", WALL_MM))
        center = np.asarray(lv["center_mm"], dtype=np.float64)
        if "base_mm" in lv:
            base = np.asarray(lv["base_mm"], dtype=np.float64)
        else:
            base = center - 0.4 * float(lv["length_mm"]) * long_axis
        if "apex_mm" in lv:
            length = float(np.dot(np.asarray(lv["apex_mm"]) - base, long_axis)) - wall / 2
        else:
            length = float(lv["length_mm"]) - wall / 2
        # the simulator's radius_mm is the outer (epicardial) radius at the base; ours is mid-wall
        return cls(center, long_axis, anterior, septal, float(lv["radius_mm"]) - wall / 2, length, base, wall)

    def to_dict(self) -> dict[str, Any]:
        return {
            "center_mm": self.center_mm.tolist(),
            "long_axis": self.long_axis.tolist(),
            "anterior": self.anterior.tolist(),
            "septal": self.septal.tolist(),
            "radius_mm": self.radius_mm,
            "length_mm": self.length_mm,
            "base_mm": self.base_mm.tolist(),
            "apex_mm": self.apex_mm.tolist(),
            "wall_mm": self.wall_mm,
            "score": self.score,
            "wall_coverage": self.wall_coverage,
            "hot_surroundings": self.hot_surroundings,
            "confidence": self.confidence,
        }


def wall_mask(grid: Volume, geom: LVGeometry, margin_mm: float = BAND_MARGIN_MM) -> np.ndarray:
    """(X, Y, Z) True at the voxels of ``grid`` within ``wall_mm`` / 2 + ``margin_mm`` of the LV
    mid-wall: between the half-ellipsoids of semi-axes (radius, radius, length) -/+ that distance,
    from that distance below the base plane to the apex. By default the region the polar map
    samples (:data:`BAND_MARGIN_MM`), for a loss or a statistic over the LV wall of an image on
    ``grid``."""
    h = geom.wall_mm / 2 + margin_mm
    local = (grid.world_coordinates() - geom.base_mm) @ geom.rotation.T  # anterior, septal, long axis
    across, along = np.hypot(local[..., 0], local[..., 1]), local[..., 2]
    r, ell = geom.radius_mm, geom.length_mm
    inside_outer = (across / (r + h)) ** 2 + (along / (ell + h)) ** 2 <= 1
    if r > h and ell > h:
        outside_inner = (across / (r - h)) ** 2 + (along / (ell - h)) ** 2 >= 1
    else:  # a wall thicker than the cavity: the whole ellipsoid
        outside_inner = np.ones_like(inside_outer)
    return inside_outer & outside_inner & (along >= -h)


def confidence_shortfall(wall_coverage: float, hot_surroundings: float) -> float:
    """How far a fit falls short of the two measured rules of :attr:`LVGeometry.confidence`: the hot
    fraction of its surroundings above ``MAX_HOT_SURROUNDINGS`` plus its wall coverage below
    ``MIN_WALL_COVERAGE``; 0 for a fit both rules call confident."""
    return max(hot_surroundings - MAX_HOT_SURROUNDINGS, 0.0) + max(MIN_WALL_COVERAGE - wall_coverage, 0.0)


def apex_points_left(long_axis: np.ndarray) -> bool:
    """Whether a base-to-apex axis (LPS) points to the patient's left (x > 0), as every LV's but a
    dextrocardia's does; the fit prefers such axes and the confidence calls others low."""
    return bool(long_axis[0] > 0)


def _unit(v: np.ndarray) -> np.ndarray:
    n = np.linalg.norm(v)
    if n == 0:
        raise ValueError("zero vector has no direction")
    return v / n


def shell_centroid_offset(radius_mm: float, length_mm: float, wall_mm: float, power: float = SHAPE_POWER) -> float:
    """Distance from the base plane to the centroid of the LV shell, along the axis.

    The shell lies between two super-ellipsoids of revolution ``(r/a)^p + (u/c)^p = 1`` (u >= 0):
    outer semi-axes (R + w/2, L + w/2), inner (R - w/2, L - w/2). Real and simulated LVs are blunter
    than ellipsoids (p = 2), so the default exponent is ``SHAPE_POWER``; the centroid is integrated
    numerically over slices.
    """
    ao, co = radius_mm + wall_mm / 2, length_mm + wall_mm / 2
    ai, ci = max(radius_mm - wall_mm / 2, 0.0), max(length_mm - wall_mm / 2, 1e-6)
    u = np.linspace(0.0, co, 400)
    outer = ao**2 * np.clip(1 - (u / co) ** power, 0, None) ** (2 / power)
    inner = ai**2 * np.clip(1 - (u / ci) ** power, 0, None) ** (2 / power)
    area = outer - inner  # cross-section area / pi
    return float(np.trapezoid(area * u, u) / np.trapezoid(area, u))


def cavity_volume_ml(radius_mm: float, length_mm: float, wall_mm: float, power: float = SHAPE_POWER) -> float:
    """Volume in mL of the inner super-ellipsoid of the shell of :func:`shell_centroid_offset`
    (semi-axes R - w/2 and L - w/2, cut at the base plane)."""
    ai, ci = max(radius_mm - wall_mm / 2, 0.0), max(length_mm - wall_mm / 2, 0.0)
    u = np.linspace(0.0, ci, 400)
    area = np.pi * ai**2 * np.clip(1 - (u / max(ci, 1e-6)) ** power, 0, None) ** (2 / power)
    return float(np.trapezoid(area, u) / 1000.0)


def axis_error_deg(a: LVGeometry, b: LVGeometry) -> float:
    """Angle in degrees between two long axes."""
    return float(np.degrees(np.arccos(np.clip(np.dot(a.long_axis, b.long_axis), -1.0, 1.0))))


def centre_error_mm(a: LVGeometry, b: LVGeometry) -> float:
    return float(np.linalg.norm(a.center_mm - b.center_mm))
