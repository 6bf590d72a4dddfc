"""The heart of the parametric phantom: LV myocardium with its defects, cavity, RV and atria.

The LV is a superquadric shell in the LV frame (:mod:`spectac.phantom.lv`); its normal uptake has
a mild smooth heterogeneity, apical thinning and a lower basal septum; defects are smooth angular,
longitudinal and transmural windows (:class:`spectac.phantom.population.Defect`). The truth
written to lv.json (geometry, defects, per-segment count loss) is computed here on the fine grid.
"""

from __future__ import annotations

import numpy as np

from spectac.phantom.grid import PointGrid
from spectac.phantom.lv import long_axis, lv_frame
from spectac.phantom.population import PatientParams
from spectac.segments import TERRITORY_SEGMENTS, Level, segment_of


def build_heart(
    p: PointGrid, params: PatientParams, state: str, shift: np.ndarray
) -> tuple[np.ndarray, dict, np.ndarray, np.ndarray]:
    """LV myocardium (with defects), blood pools and RV in patient coordinates ``p``; returns the
    myocardium mask, the truth (in the study's LPS frame: patient coordinates + ``shift``), the
    heart activity and the heart region.

    Evaluated on the smallest block of ``p`` holding the heart's bounding spheres
    (:func:`_heart_block`; everything outside is zero), not on the whole fine grid.
    """
    uptake = params.uptake[state]
    axis, anterior, septal = lv_frame(long_axis(params.lv_azimuth_deg, params.lv_elevation_deg))
    base = np.asarray(params.lv_base_mm, dtype=np.float32)
    full_shape = p.shape[:3]
    block = _heart_block(p, base.astype(np.float64), axis, septal, params.lv_length_mm, params.lv_radius_mm)
    p = p[block]
    rel = p - base
    l = rel @ axis.astype(np.float32)  # 0 at the base plane, grows toward the apex
    ra = rel @ anterior.astype(np.float32)
    rs = rel @ septal.astype(np.float32)
    rho = np.sqrt(ra**2 + rs**2)
    theta = np.degrees(np.arctan2(rs, ra))

    power = params.lv_shape_power
    length, radius, wall = params.lv_length_mm, params.lv_radius_mm, params.lv_wall_mm
    cavity_length = length - 0.8 * wall  # apical thinning
    cavity_radius = radius - wall
    lpos = np.maximum(l, 0.0)
    k_outer = ((lpos / length) ** power + (rho / radius) ** power) ** (1 / power)
    k_inner = ((lpos / cavity_length) ** power + (rho / cavity_radius) ** power) ** (1 / power)
    above_base = l >= 0.0
    myocardium = above_base & (k_outer <= 1.0) & (k_inner > 1.0)
    cavity = above_base & (k_inner <= 1.0)
    depth = np.clip((k_inner - 1.0) / np.maximum(k_inner - k_outer, 1e-6), 0.0, 1.0)  # 0 endo, 1 epi

    # Normal uptake: mild smooth heterogeneity, apical thinning and a lower basal septum.
    h = params.heterogeneity
    t = np.radians(theta)
    frac = l / cavity_length
    normal = 1.0 + h[0] * np.cos(t) + h[1] * np.sin(t) + h[2] * np.cos(2 * t) + h[3] * (frac - 0.5)
    normal -= 0.08 * np.clip((frac - 0.9) / 0.4, 0.0, 1.0)
    septal_weight = np.clip(np.cos(np.radians(theta - 90.0)), 0.0, 1.0)
    normal -= 0.08 * septal_weight * np.clip(1.0 - frac / 0.25, 0.0, 1.0)
    myo_uptake = uptake["myocardium"] * normal

    level = np.where(
        frac < 1 / 3, Level.BASAL, np.where(frac < 2 / 3, Level.MID, np.where(frac <= 1.0, Level.APICAL, Level.APEX))
    )
    segment = segment_of(theta, level)
    defect_weight = np.zeros_like(l)
    defects_truth = []
    for d in params.defects:
        severity = d.stress_severity if state == "stress" else d.rest_severity
        angular = np.abs(np.mod(theta - d.theta_deg + 180.0, 360.0) - 180.0)
        w_angle = _taper(d.half_width_deg - angular, 12.0)
        w_long = _taper(frac - d.l_from, 0.08) * _taper(d.l_to - frac, 0.08)
        w_wall = _taper(d.transmurality - depth, 0.15)
        weight = w_angle * w_long * w_wall
        defect_weight = np.maximum(defect_weight, severity * weight)
        inside = myocardium & (w_angle * w_long > 0.5)
        segs = sorted({int(s) for s in np.unique(segment[inside])})
        defects_truth.append(
            {
                "territory": d.territory,
                "type": d.type,
                "severity": float(severity),
                "segments": segs,
                "extent": float(inside.sum() / max(myocardium.sum(), 1)),
                "transmurality": d.transmurality,
                "theta_deg": d.theta_deg,
                "half_width_deg": d.half_width_deg,
            }
        )
    myo_uptake = myo_uptake * (1.0 - defect_weight)

    # Segment truth: mean count reduction in each segment (0 = normal).
    segment_defect = {}
    for s in range(1, 18):
        sel = myocardium & (segment == s)
        segment_defect[str(s)] = float(defect_weight[sel].mean()) if sel.any() else 0.0

    # RV: a thin crescent on the septal side; atria/outflow blood above the base.
    rv_centre = base + axis * (0.35 * length) + septal * (radius * 0.95)
    rel_rv = p - rv_centre.astype(np.float32)
    rv_l = rel_rv @ axis.astype(np.float32)
    rv_r = np.sqrt(np.maximum(np.sum(rel_rv**2, axis=-1) - rv_l**2, 0.0))
    rv_outer = (rv_l / (0.55 * length)) ** 2 + (rv_r / (radius * 1.05)) ** 2 <= 1.0
    rv_inner = (rv_l / (0.55 * length - 4.0)) ** 2 + (rv_r / (radius * 1.05 - 4.5)) ** 2 <= 1.0
    lv_outer = above_base & (k_outer <= 1.0)
    rv_wall = rv_outer & ~rv_inner & ~lv_outer
    rv_blood = rv_inner & ~lv_outer
    atria = (l < 0.0) & (l > -45.0) & (rho < radius * 1.1)

    heart_act = np.zeros(p.shape[:3], dtype=np.float32)
    heart_act[atria] = uptake["blood"]
    heart_act[rv_blood] = uptake["blood"]
    heart_act[rv_wall] = uptake["rv"]
    heart_act[cavity] = uptake["blood"]
    heart_act[myocardium] = myo_uptake[myocardium]
    region = atria | rv_outer | lv_outer

    base = base.astype(np.float64) + shift
    centroid = p[myocardium].astype(np.float64).mean(axis=0) + shift if myocardium.any() else base
    lv = {
        "center_mm": [float(v) for v in centroid],
        "base_mm": [float(v) for v in base],
        "apex_mm": [float(v) for v in base + axis * length],
        "long_axis": [float(v) for v in axis],
        "anterior": [float(v) for v in anterior],
        "septal": [float(v) for v in septal],
        "length_mm": float(length),
        "radius_mm": float(radius),
        "wall_mm": float(wall),
        "defects": defects_truth,
        "segment_defect": segment_defect,
        "territory_defect": {
            t: float(max(segment_defect[str(s)] for s in segs)) for t, segs in TERRITORY_SEGMENTS.items()
        },
    }
    return _embed(myocardium.astype(np.float32), full_shape, block), lv, _embed(heart_act, full_shape, block), \
        _embed(region, full_shape, block)


def _heart_block(p: PointGrid, base: np.ndarray, axis: np.ndarray, septal: np.ndarray, length: float,
                 radius: float) -> tuple[slice, slice, slice]:
    """Index block of the (X, Y, Z, 3) points ``p`` that holds every point of the heart: the
    spheres around the LV (0 <= l <= length, rho <= radius), the atria (-45 < l < 0,
    rho < 1.1 radius) and the RV ellipsoid, with a 2 mm margin (empty block when none is inside)."""
    spheres = (
        (base + axis * (length / 2), np.hypot(length / 2, radius)),
        (base - axis * 22.5, np.hypot(22.5, 1.1 * radius)),
        (base + axis * (0.35 * length) + septal * (radius * 0.95), np.hypot(0.55 * length, 1.05 * radius)),
    )
    lo = np.min([c - r for c, r in spheres], axis=0) - 2.0
    hi = np.max([c + r for c, r in spheres], axis=0) + 2.0
    # the grid is axis-aligned: a point is inside when each of its coordinates is, so the block
    # is the run of each axis inside, or empty on every axis when one axis has none
    lo, hi = lo.astype(np.float32), hi.astype(np.float32)
    hits = [np.flatnonzero((p.line(dim) >= lo[dim]) & (p.line(dim) <= hi[dim])) for dim in range(3)]
    if any(hit.size == 0 for hit in hits):
        return (slice(0, 0),) * 3
    return tuple(slice(int(hit[0]), int(hit[-1]) + 1) for hit in hits)


def _embed(values: np.ndarray, shape: tuple[int, ...], block: tuple[slice, slice, slice]) -> np.ndarray:
    """``values`` of the block placed in a zero (False) array of the whole grid."""
    full = np.zeros(shape, dtype=values.dtype)
    full[block] = values
    return full


def _taper(distance: np.ndarray, width: float) -> np.ndarray:
    """Smooth step: 0 for distance < -width/2, 1 for distance > width/2 (raised cosine)."""
    s = np.clip(distance / width + 0.5, 0.0, 1.0)
    return 0.5 - 0.5 * np.cos(np.pi * s)
