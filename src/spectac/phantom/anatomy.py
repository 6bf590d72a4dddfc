"""A parametric anthropomorphic torso for myocardial perfusion SPECT, in the spirit of MCAT.

A random operation draws a patient's parameters from a seed
(:func:`spectac.phantom.population.draw_patient`, saved with the study); a deterministic one turns
them into volumes (:func:`build_phantom`; the heart in :mod:`spectac.phantom.heart`, the body wall
and breasts in :mod:`spectac.phantom.torso`). The anatomy is what makes attenuation artifacts in
MPI: body size and a layered wall (fat varying around the body, chest-wall muscle, ribs) from sex
and BMI; lungs filling the thoracic cavity around the heart (the heart in the cardiac notch of
the left lung, lung lateral of the lateral wall); the mediastinum, sternum and spine; the
diaphragm domes pressed down under the heart; liver, gallbladder, stomach and bowel loops under
them; female breasts lying supine over the anterior chest. Arms are raised (not in the field).

Units: mm in the LPS patient frame (x left, y posterior, z head); mu in 1/cm at 140 keV;
activity as sestamibi uptake relative to normal myocardium (scaled to counts by the simulator).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from spectac.phantom.grid import PointGrid
from spectac.phantom.heart import build_heart
from spectac.phantom.lv import long_axis
from spectac.phantom.population import PatientParams
from spectac.phantom.torso import body_layers, breast_height_mm
from spectac.physics import MU_SOFT_TISSUE

MU_FAT = 0.138
MU_BONE = 0.28
MU_SPINE = 0.22  # vertebral body: cortical shell and cancellous bone, averaged
MU_BREAST = 0.146


@dataclass
class Phantom:
    """Volumes of one study on the simulation grid, and its LV truth.

    activity: relative uptake (myocardium 1); mu_map: 1/cm at 140 keV; myocardium: fraction of
    each voxel that is LV myocardium; lv: the geometry and defect truth written to lv.json.
    """

    activity: np.ndarray
    mu_map: np.ndarray
    myocardium: np.ndarray
    lv: dict


def _ellipsoid(p: PointGrid, centre: tuple[float, ...], semi: tuple[float, ...]) -> np.ndarray:
    """Points of the axis-aligned grid ``p`` (X, Y, Z, 3) inside an ellipsoid. Only its bounding
    box (plus a voxel) is evaluated: beyond it one term of the sum alone exceeds 1."""
    box = []
    for i in range(3):
        line = p.line(i)
        inside = np.flatnonzero(np.abs(line - centre[i]) <= abs(semi[i]))
        if inside.size == 0:
            return np.zeros(p.shape[:-1], dtype=bool)
        box.append(slice(max(int(inside[0]) - 1, 0), int(inside[-1]) + 2))
    sub = p[tuple(box)]
    out = np.zeros(p.shape[:-1], dtype=bool)
    out[tuple(box)] = sum(((sub[..., i] - centre[i]) / semi[i]) ** 2 for i in range(3)) <= 1.0
    return out


def build_phantom(
    params: PatientParams,
    state: str,
    shape: tuple[int, int, int] = (64, 64, 64),
    spacing_mm: float = 6.8,
    shift_mm: tuple[float, float, float] = (0.0, 0.0, 0.0),
    supersample: int = 2,
) -> Phantom:
    """Turn a patient's parameters into the activity and mu-map of one study.

    Args:
        state: "rest" or "stress" (uptake ratios and defect severities differ).
        shape, spacing_mm: the grid, centred on the rotation axis.
        shift_mm: patient position shift of this study (LPS mm).
        supersample: each voxel is the mean of supersample^3 sub-voxels (partial volume).
    """
    if state not in ("rest", "stress"):
        raise ValueError(f"state must be rest or stress, got {state!r}")
    fine_shape = tuple(n * supersample for n in shape)
    fine_spacing = spacing_mm / supersample
    axes = [(np.arange(n) - (n - 1) / 2) * fine_spacing for n in fine_shape]
    # the float32 points, made only for the blocks that organs need (the whole array would be
    # 200 MB at 128^3, 2x supersampled)
    p = PointGrid(axes, shift_mm)
    # x varies along the first axis only, y the second, z the third: each is kept as a broadcastable
    # line, so whatever depends on x and y alone (the body outline, its layers, the diaphragm's
    # height) is computed on one plane rather than the whole fine grid, with the same values
    x, y, z = p.broadcast(0), p.broadcast(1), p.broadcast(2)
    full = p.shape[:3]
    uptake = params.uptake[state]

    cx, cy = params.body_center_mm
    a, b = params.body_a_mm, params.body_b_mm
    rel_x, rel_y = x - cx, y - cy
    z_right = params.diaphragm_right_mm
    z_left = z_right - params.diaphragm_left_drop_mm
    # Diaphragm: a dome per side; below it the abdomen, above it the lungs.
    # Each dome peaks at the mid-clavicular line (0.45 a from the midline) and falls steeply
    # laterally and behind (the costophrenic recesses: lung beside the lateral wall and behind the
    # inferior wall) and medially toward the central tendon, on which the heart rests.
    off = np.abs(rel_x) - 0.45 * a
    dome = (np.where(rel_x < 0, z_right, z_left) - np.where(off > 0, 0.005, 0.010) * off**2
            - np.where(rel_y > 0, 0.003, 0.002) * rel_y**2)
    # The heart presses the diaphragm down to its inferior wall (the cardiac impression): around
    # it the diaphragm rises at a slope of 1 (the cardiophrenic angle), so lung lies beside the
    # lateral wall down to the level of the inferior wall.
    axis = long_axis(params.lv_azimuth_deg, params.lv_elevation_deg)
    lv_centre = np.asarray(params.lv_base_mm) + 0.4 * params.lv_length_mm * axis
    elevation = np.deg2rad(params.lv_elevation_deg)
    z_inferior = lv_centre[2] - 0.4 * params.lv_length_mm * np.sin(elevation) - params.lv_radius_mm * np.cos(elevation)
    beyond = np.maximum(np.hypot(x - lv_centre[0], y - lv_centre[1]) - params.lv_radius_mm - 10.0, 0.0)
    dome = np.minimum(dome, z_inferior + 1.0 * beyond)

    # Body wall: skin-to-cavity layers of fat and muscle whose thickness varies around the body.
    layers = body_layers(a, b, params.fat_mm, params.chest_wall_mm, params.bmi, z_right - 30.0, rel_x, rel_y, z)
    body = layers["depth"] >= 0.0
    cavity = layers["depth"] >= layers["fat"] + layers["muscle"]  # inside the rib cage / abdominal wall
    subcutaneous = body & (layers["depth"] < layers["fat"])
    # every full-grid array is filled in place (np.copyto): on a 2x supersampled 128^3 grid each
    # fresh float64 temporary costs more than the work done in it
    mu = np.zeros(full, dtype=np.float32)
    np.copyto(mu, np.float32(MU_SOFT_TISSUE), where=body)
    np.copyto(mu, np.float32(MU_FAT), where=subcutaneous)
    act = np.zeros(full, dtype=np.float32)
    np.copyto(act, np.float32(uptake["tissue"]), where=body)
    np.copyto(act, np.float32(0.4 * uptake["tissue"]), where=subcutaneous)

    # Breasts (women): supine glandular and fatty tissue spread over the anterolateral chest wall
    dz = z - (params.lv_base_mm[2] - params.breast_drop_mm)
    top = breast_height_mm(breast_volume_ml(params), layers["phi"], layers["edge"], dz)
    breast = (top > 0) & (-layers["depth"] <= top) & (layers["depth"] < layers["fat"])
    np.copyto(mu, np.float32(MU_BREAST), where=breast)
    np.copyto(act, np.float32(0.5 * uptake["tissue"]), where=breast)

    # Mediastinum (great vessels, oesophagus, pericardial fat) from the sternum to the spine; the
    # lungs fill the rest of the thoracic cavity above the diaphragm, wrapping the heart laterally
    # and anterolaterally (the heart lies in the cardiac notch of the left lung).
    mediastinum = (np.abs(rel_x - 8.0) < 32.0) & cavity & (z > dome)
    # The bare area: in front of the right half of the LV the heart touches the anterior chest
    # wall (pericardium and fat, no lung), the lung covering only its left, lateral part; above
    # it the anterior mediastinum (fat, thymus remnant) behind the sternum.
    notch = (x > cx - 24.0) & (x < lv_centre[0] + 0.25 * params.lv_radius_mm) & (y < lv_centre[1])
    notch = notch & (z > lv_centre[2] - params.lv_radius_mm - 10.0) & (z < lv_centre[2] + params.lv_radius_mm + 40.0)
    mediastinum |= notch & cavity & (z > dome)
    lung = cavity & (z > dome) & ~mediastinum
    np.copyto(mu, np.float32(params.lung_mu), where=lung)
    np.copyto(act, np.float32(uptake["lung"]), where=lung)

    # Liver under the right hemidiaphragm, its left lobe reaching under the heart
    liver = _ellipsoid(p, (cx - 0.28 * a, cy + 0.05 * b, z_right - 75.0), (0.62 * a, 0.78 * b, 88.0))
    liver &= (z <= dome) & cavity
    np.copyto(mu, np.float32(MU_SOFT_TISSUE), where=liver)
    np.copyto(act, np.float32(uptake["liver"]), where=liver)
    # Gallbladder in its fossa under the right lobe (bile: sestamibi is excreted through the liver)
    gallbladder = _ellipsoid(p, (cx - 0.3 * a, cy - 0.3 * b, z_right - 118.0), (17.0, 17.0, 38.0)) & cavity
    np.copyto(mu, np.float32(MU_SOFT_TISSUE), where=gallbladder)
    np.copyto(act, np.float32(params.gallbladder_uptake.get(state, 0.0)), where=gallbladder)
    # Stomach (wall uptake) under the left hemidiaphragm, and bowel loops lower down
    stomach = _ellipsoid(p, (cx + 0.42 * a, cy - 0.15 * b, z_left - 55.0), (0.22 * a, 0.35 * b, 48.0))
    stomach &= (z <= dome) & cavity & ~liver
    np.copyto(act, np.float32(uptake["gut"]), where=stomach)
    np.copyto(mu, np.float32(MU_SOFT_TISSUE), where=stomach)
    loops = params.bowel_loops_mm or [(cx + 0.1 * a, cy - 0.2 * b, z_right - 175.0, 0.35 * a, 0.4 * b, 40.0)]
    for bx, by, bz, *semi in loops:
        bowel = _ellipsoid(p, (bx, by, bz), tuple(semi)) & cavity & (z <= dome) & ~liver & ~gallbladder
        np.maximum(act, np.float32(uptake["bowel"]), out=act, where=bowel)

    # Rib cage: bands in the inner chest wall sloping down toward the front, above the costal margin
    rib_depth = layers["fat"] + layers["muscle"]
    rib_depth -= 7.0
    rib_z = z + 0.35 * (rel_y + b)  # ribs descend anteriorly
    in_band = np.mod(rib_z - params.rib_phase_mm, params.rib_pitch_mm) < 11.0
    off_rib = np.abs(np.subtract(layers["depth"], rib_depth, out=rib_depth), out=rib_depth)  # |depth - rib depth|
    ribs = (off_rib < 5.0) & in_band & (z > z_right - 90.0)
    np.copyto(mu, np.float32(MU_BONE), where=ribs)
    # Sternum and spine
    anterior_wall = (rel_y < 0) & (layers["depth"] > layers["fat"]) & (layers["depth"] < layers["fat"] + 18.0)
    sternum = (np.abs(rel_x) < 16.0) & anterior_wall & (z > z_right - 60.0)
    np.copyto(mu, np.float32(MU_BONE * 0.8), where=sternum)
    spine = (rel_x**2 + (rel_y - 0.52 * b) ** 2) < 19.0**2
    np.copyto(mu, np.float32(MU_SPINE), where=spine)

    # Heart: LV myocardium, cavity, RV, surrounded by soft tissue (mediastinum)
    myo_fraction, lv_truth, heart_act, heart_region = build_heart(p, params, state, np.asarray(shift_mm, np.float64))
    np.copyto(mu, np.float32(MU_SOFT_TISSUE), where=heart_region)
    np.copyto(act, heart_act, where=heart_region)

    return Phantom(
        activity=_downsample(act, supersample),
        mu_map=_downsample(mu, supersample),
        myocardium=_downsample(myo_fraction, supersample),
        lv={**lv_truth, "shift_mm": list(shift_mm)},
    )


def _downsample(volume: np.ndarray, factor: int) -> np.ndarray:
    if factor == 1:
        return volume.astype(np.float32)
    x, y, z = (n // factor for n in volume.shape)
    return volume.reshape(x, factor, y, factor, z, factor).mean(axis=(1, 3, 5)).astype(np.float32)


def breast_volume_ml(params: PatientParams) -> float:
    """Volume of one breast in ml (0 for men); parameters drawn before breast volumes were drawn
    (breast_volume_ml < 0) take that of their breast_radius_mm."""
    if params.sex != "F" or params.breast_radius_mm <= 0:
        return 0.0
    if params.breast_volume_ml >= 0:
        return float(params.breast_volume_ml)
    r = params.breast_radius_mm
    return float(2.0 / 3.0 * np.pi * r * 0.8 * r * 0.9 * r / 1000.0)
