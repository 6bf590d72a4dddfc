"""Activity and mu phantoms from a patient's chest CT: real anatomy, the parametric LV.

The networks of spectac learn attenuation from the anatomy they are trained on; the parametric
torso of :mod:`spectac.phantom.anatomy` has one kind of anatomy. This module makes a phantom from
any axial chest CT (``spectac phantom --ct``):

1. mu at 140 keV from HU by the kVp-dependent bilinear model (:func:`spectac.physics.hu_to_mu`).
2. Tissue classes by HU (:data:`HU_CLASSES`), the body (the largest connected component above
   -500 HU; in each slice the largest part after an 8 mm opening: the table and arms down beside
   the chest, lateral to the ribcage, are removed), the lungs (air inside the body: the largest one or two 3D
   components below -400 HU).
3. The heart: the largest soft-tissue blob (-30 to 150 HU) inside the convex hull of the lungs of
   each slice, in the slices where the lungs have at least a quarter of their largest area,
   after an erosion of 7 mm that detaches it from the aorta, chest wall and diaphragm (then
   dilated back). The LV centre is placed in it: the position nearest to (centroid + 20 mm left,
   10 mm inferior) that keeps the most of the LV's outer volume inside the blob, or ``--lv-centre``.
4. The LV (myocardium, cavity, RV, atria, perfusion defects) is the shell model of
   :mod:`spectac.phantom.heart` with the parameters :func:`draw_patient` draws from the seed
   (the long axis in the default clinical orientation), so a CT cohort has the defect statistics
   of the parametric cohort; its uptake ratios (blood, liver, gut, lung, tissue) too.
5. Liver: soft tissue below the right lung in the columns the right lung covers, down to 200 mm
   below its floor; the left-upper-quadrant gut (stomach wall, spleen) likewise under the left
   lung, 80 mm down and below the heart.
6. Resampled to the simulation grid made twice finer (128^3 at 3.4 mm, LPS axes, centred so that
   the LV centre lies 15 mm left, 15 mm anterior and 10 mm above the grid centre, as the
   technologist centres the heart); the heart is computed twice finer again and averaged.

The output frame is the CT's LPS frame shifted so that the grid centre is the origin (the frame of
the study ``spectac simulate --activity/--mu`` writes): lv.json holds for the phantom and for the
simulated study; phantom.json records where the grid centre lies in the CT.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from scipy import ndimage

from spectac import __version__
from spectac.acquisition.protocol import Protocol
from spectac.errors import SpectacError
from spectac.io.ct import CtSeries, read_ct_series
from spectac.phantom.grid import PointGrid
from spectac.phantom.heart import build_heart
from spectac.phantom.lv import long_axis, lv_frame
from spectac.phantom.population import PatientParams, draw_patient
from spectac.physics import MU_SOFT_TISSUE, bone_slope, hu_bone, hu_to_mu
from spectac.volume import Volume, to_lps_axes

#: Labels of the tissue map.
OUTSIDE, LUNG, FAT, SOFT, BONE, HEART, LIVER, GUT = range(8)
LABEL_NAMES = {OUTSIDE: "outside", LUNG: "lung", FAT: "fat", SOFT: "soft tissue", BONE: "bone",
               HEART: "heart (blood)", LIVER: "liver", GUT: "left upper quadrant gut"}
#: Tissue classes by HU inside the body: [low, high).
HU_CLASSES = {"lung": (-1000.0, -400.0), "fat": (-400.0, -30.0), "soft tissue": (-30.0, 150.0), "bone": (150.0, 1e9)}
BODY_HU = -500.0
ARM_NECK_MM = 8.0
HEART_HU = (-30.0, 150.0)
HEART_EROSION_MM = 7.0
HEART_MIN_ML = 100.0
LUNG_SLICE_FRACTION = 0.25
LIVER_DEPTH_MM = 200.0
GUT_DEPTH_MM = 80.0
SURFACE_MARGIN_MM = 15.0  # abdominal wall and back muscles are not liver or gut
#: Prior of the LV centre in the heart blob: left (x) and inferior (-z) of its centroid.
LV_PRIOR_OFFSET_MM = (20.0, 0.0, -10.0)
#: The LV centre relative to the grid centre (the rotation axis).
LV_OFFSET_MM = (15.0, -15.0, 10.0)
LUNG_MU_MAX = 0.12  # 1/cm: below, a voxel of the modelled heart holds lung in the CT
SIM_SHAPE = 64  # the grid of `spectac simulate` (SimulationConfig.shape)
SUPERSAMPLE = 2
WORKING_PIXEL_MM = 3.0
HEART_BOX_MM = 100.0


@dataclass
class CtPhantom:
    activity: Volume  # relative uptake (normal myocardium 1)
    mu: Volume  # 1/cm at 140 keV
    lv: dict[str, Any]
    description: dict[str, Any]
    labels: np.ndarray | None = field(default=None, repr=False)


def _disk(radius_mm: float, spacing: tuple[float, float]) -> np.ndarray:
    rx, ry = (max(1, int(np.floor(radius_mm / s))) for s in spacing)
    x, y = np.ogrid[-rx : rx + 1, -ry : ry + 1]
    return ((x * spacing[0]) ** 2 + (y * spacing[1]) ** 2) <= radius_mm**2


def _ball(radius_mm: float, spacing: tuple[float, float, float]) -> np.ndarray:
    r = [max(1, int(np.floor(radius_mm / s))) for s in spacing]
    x, y, z = np.ogrid[-r[0] : r[0] + 1, -r[1] : r[1] + 1, -r[2] : r[2] + 1]
    return ((x * spacing[0]) ** 2 + (y * spacing[1]) ** 2 + (z * spacing[2]) ** 2) <= radius_mm**2


def _largest(mask: np.ndarray, structure: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The largest connected component of a mask, and the sizes of all components (descending)."""
    lab, n = ndimage.label(mask, structure=structure)
    if n == 0:
        return np.zeros_like(mask), np.zeros(0, dtype=int)
    sizes = np.bincount(lab.ravel())[1:]
    return lab == (int(np.argmax(sizes)) + 1), np.sort(sizes)[::-1]


def body_mask(hu: np.ndarray, spacing: tuple[float, float, float]) -> tuple[np.ndarray, dict[str, int]]:
    """The body: above -500 HU, the largest 3D component after a 3 mm in-plane opening (thin
    mattress and table links cut), holes (lungs, airways) filled slice by slice. In each slice an
    8 mm opening separates parts joined by a narrow neck (an arm resting on the chest): the largest
    is the torso; the others are removed with the voxels nearer to them than to the torso: arms
    when they lie lateral to the ribcage (the x range of the torso's bone), other parts otherwise."""
    above = hu > BODY_HU
    opened = ndimage.binary_opening(above, structure=_disk(3.0, spacing[:2])[..., None])
    big, _ = _largest(opened)
    if not big.any():
        raise SpectacError("no body in the CT (nothing above -500 HU)")
    body = np.zeros_like(big)
    arms_slices, other_parts = 0, 0
    neck = _disk(ARM_NECK_MM, spacing[:2])
    for k in np.nonzero(big.any(axis=(0, 1)))[0]:
        filled = ndimage.binary_fill_holes(big[:, :, k])
        lab, n = ndimage.label(ndimage.binary_opening(filled, structure=neck))
        if n <= 1:
            body[:, :, k] = filled
            continue
        sizes = np.bincount(lab.ravel())[1:]
        keep = int(np.argmax(sizes)) + 1
        torso = lab == keep
        bone = torso & (hu[:, :, k] >= HU_CLASSES["bone"][0])
        xs = np.nonzero((bone if bone.any() else torso).any(axis=1))[0]
        lateral = False
        for i in range(1, n + 1):
            if i == keep:
                continue
            cx = float(np.nonzero(lab == i)[0].mean())
            if cx < xs.min() or cx > xs.max():
                lateral = True
            else:
                other_parts += 1
        arms_slices += int(lateral)
        nearer_torso = ndimage.distance_transform_edt(~torso) <= ndimage.distance_transform_edt(~((lab > 0) & ~torso))
        part = ndimage.label(filled & nearer_torso)[0]
        body[:, :, k] = part == np.bincount(part[torso]).argmax()
    return body, {"slices_with_arms_removed": arms_slices, "other_parts_removed": other_parts}


def lung_mask(hu: np.ndarray, body: np.ndarray) -> np.ndarray:
    """Air inside the body below -400 HU: its largest 3D component, and the second when it holds at
    least 30% as much (lungs not joined by the airways in the field)."""
    lab, n = ndimage.label(body & (hu < HU_CLASSES["lung"][1]))
    if n == 0:
        return np.zeros_like(body)
    sizes = np.bincount(lab.ravel())[1:]
    order = np.argsort(sizes)[::-1]
    keep = [order[0] + 1] + ([order[1] + 1] if n > 1 and sizes[order[1]] >= 0.3 * sizes[order[0]] else [])
    return np.isin(lab, keep)


def _hull_mask(points: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    from scipy.spatial import ConvexHull, Delaunay, QhullError

    try:
        hull = ConvexHull(points)
        tri = Delaunay(points[hull.vertices])
    except (QhullError, ValueError):
        return np.zeros(shape, dtype=bool)
    lo, hi = points.min(axis=0).astype(int), points.max(axis=0).astype(int) + 1
    gx, gy = np.mgrid[lo[0] : hi[0], lo[1] : hi[1]]
    inside = tri.find_simplex(np.column_stack([gx.ravel(), gy.ravel()])) >= 0
    mask = np.zeros(shape, dtype=bool)
    mask[lo[0] : hi[0], lo[1] : hi[1]] = inside.reshape(gx.shape)
    return mask


def heart_mask(hu: np.ndarray, body: np.ndarray, lungs: np.ndarray, spacing: tuple[float, float, float]) -> np.ndarray:
    """The heart by the rule of the module docstring (3.); empty when none is found."""
    area = lungs.sum(axis=(0, 1))
    if area.max() == 0:
        return np.zeros_like(lungs)
    slices = np.nonzero(area >= LUNG_SLICE_FRACTION * area.max())[0]
    envelope = np.zeros_like(lungs)
    for k in slices:
        pts = np.argwhere(lungs[:, :, k])
        if len(pts) >= 3:
            envelope[:, :, k] = _hull_mask(pts.astype(float), lungs.shape[:2])
    candidate = envelope & body & ~lungs & (hu >= HEART_HU[0]) & (hu < HEART_HU[1])
    ball = _ball(HEART_EROSION_MM, spacing)
    core, _ = _largest(ndimage.binary_erosion(candidate, structure=ball))
    if not core.any():
        return core
    return ndimage.binary_dilation(core, structure=ball, mask=candidate)


def _lv_outer_points(params: PatientParams) -> np.ndarray:
    """Points (mm, relative to the LV centre) filling the LV's outer volume, for the placement."""
    axis, anterior, septal = lv_frame(long_axis(params.lv_azimuth_deg, params.lv_elevation_deg))
    length, radius, power = params.lv_length_mm, params.lv_radius_mm, params.lv_shape_power
    g = np.arange(-radius, radius + 1e-6, 4.0)
    ls = np.arange(0.0, length + 1e-6, 4.0)
    a, s, l = np.meshgrid(g, g, ls, indexing="ij")
    rho = np.sqrt(a**2 + s**2)
    inside = ((l / length) ** power + (rho / radius) ** power) <= 1.0
    pts = np.outer(l[inside], axis) + np.outer(a[inside], anterior) + np.outer(s[inside], septal)
    return pts - axis * length * 0.4  # the centre is 0.4 of the length from the base


def place_lv(heart: Volume, params: PatientParams) -> tuple[np.ndarray, float]:
    """The LV centre (LPS mm) in a heart mask: of the positions within 30 mm of the prior (heart
    centroid + LV_PRIOR_OFFSET_MM) on a 5 mm lattice, the one with the largest fraction of the LV's
    outer volume inside the heart, ties to the nearest. Returns (centre, that fraction)."""
    idx = np.argwhere(heart.array > 0)
    centroid = heart.point_of(idx.mean(axis=0))
    prior = centroid + np.asarray(LV_PRIOR_OFFSET_MM)
    shape = _lv_outer_points(params)
    inv = np.linalg.inv(heart.affine_lps)
    best, best_score = prior, -1.0
    steps = np.arange(-30.0, 30.1, 5.0)
    for dx in steps:
        for dy in steps:
            for dz in steps:
                d = np.array([dx, dy, dz])
                dist = float(np.linalg.norm(d))
                if dist > 30.0:
                    continue
                pts = shape + prior + d
                ijk = np.rint(pts @ inv[:3, :3].T + inv[:3, 3]).astype(int)
                ok = np.all((ijk >= 0) & (ijk < np.asarray(heart.shape)), axis=1)
                inside = np.zeros(len(pts), dtype=bool)
                inside[ok] = heart.array[ijk[ok, 0], ijk[ok, 1], ijk[ok, 2]] > 0
                score = float(inside.mean()) - 1e-4 * dist
                if score > best_score:
                    best, best_score = prior + d, score
    return best, float(best_score + 0.0)


def _under(lungs: np.ndarray, side: np.ndarray, depth_vox: int) -> np.ndarray:
    """Voxels below the lowest lung voxel of their (x, y) column, in the columns where the lungs of
    ``side`` lie, down to ``depth_vox`` slices."""
    lung = lungs & side
    has = lung.any(axis=2)
    floor = np.where(has, np.argmax(lung, axis=2), -1)  # lowest lung slice per column
    k = np.arange(lungs.shape[2])[None, None, :]
    return has[..., None] & (k < floor[..., None]) & (k >= floor[..., None] - depth_vox)


def tissue_labels(hu: np.ndarray, body: np.ndarray, lungs: np.ndarray, heart: np.ndarray,
                  spacing: tuple[float, float, float], midline_x: int) -> np.ndarray:
    """The label map (LABEL_NAMES) by the rules of the module docstring."""
    labels = np.zeros(hu.shape, dtype=np.uint8)
    labels[body & (hu < HU_CLASSES["fat"][1])] = FAT
    labels[body & (hu >= HU_CLASSES["soft tissue"][0])] = SOFT
    labels[body & (hu >= HU_CLASSES["bone"][0])] = BONE
    labels[body & (hu < HU_CLASSES["lung"][1])] = FAT  # gas outside the lungs (bowel): fat's uptake
    labels[lungs] = LUNG
    soft = body & (hu >= HU_CLASSES["soft tissue"][0]) & (hu < HU_CLASSES["soft tissue"][1])
    deep = ndimage.binary_erosion(body, structure=_disk(SURFACE_MARGIN_MM, spacing[:2])[..., None])
    right = np.zeros_like(lungs)
    right[:midline_x] = True
    near_heart = ndimage.binary_dilation(heart, structure=_ball(10.0, spacing)) if heart.any() else heart
    liver_zone = _under(lungs, right, int(LIVER_DEPTH_MM / spacing[2])) & soft & deep & ~near_heart
    liver, _ = _largest(ndimage.binary_opening(liver_zone, structure=_ball(4.0, spacing)))
    labels[liver] = LIVER
    gut_zone = _under(lungs, ~right, int(GUT_DEPTH_MM / spacing[2])) & soft & deep & ~near_heart & ~liver
    if heart.any():
        gut_zone[:, :, int(np.nonzero(heart.any(axis=(0, 1)))[0].min()) :] = False
    labels[gut_zone] = GUT
    labels[heart] = HEART
    return labels


def _parse_seed(seed: int) -> np.random.Generator:
    if seed < 0:
        raise SpectacError(f"--seed must be a non-negative integer, got {seed}")
    # the first child of the cohort seed: the LV, uptake and defects of patient P000 of
    # `spectac simulate --seed SEED`
    return np.random.default_rng(np.random.SeedSequence(seed).spawn(1)[0])


def build_ct_phantom(
    ct: CtSeries,
    seed: int = 0,
    state: str = "stress",
    lv_centre_mm: tuple[float, float, float] | None = None,
    defect_probability: float = 0.5,
) -> CtPhantom:
    """Turn a CT series into an activity and mu phantom (see the module docstring)."""
    if state not in ("stress", "rest"):
        raise SpectacError(f"--state must be stress or rest, got {state!r}")
    if not 0.0 <= defect_probability <= 1.0:
        raise SpectacError(f"--defect-probability must lie in 0-1, got {defect_probability:g}")
    try:
        kvp_bone = hu_bone(ct.kvp)
    except ValueError as exc:
        raise SpectacError(f"{exc} (KVP of the CT {ct.kvp:g})") from None
    params = draw_patient(_parse_seed(seed), "CT", defect_probability)
    work, _ = to_lps_axes(ct.volume)
    hu = work.array
    spacing = work.spacing
    body, body_report = body_mask(hu, spacing)
    lungs = lung_mask(hu, body)
    voxel_ml = float(np.prod(spacing)) / 1000.0
    lung_ml = float(lungs.sum()) * voxel_ml
    heart = heart_mask(hu, body, lungs, spacing) if lung_ml > 300 else np.zeros_like(lungs)
    heart_ml = float(heart.sum()) * voxel_ml
    if lv_centre_mm is None:
        if lung_ml <= 300:
            raise SpectacError(f"no heart found in the CT field: no lungs ({lung_ml:.0f} mL of air inside the body); "
                               "is it a chest CT? (--lv-centre X,Y,Z places the LV by hand)")
        if heart_ml < HEART_MIN_ML:
            raise SpectacError(f"no heart found in the CT field (the soft tissue between the lungs holds "
                               f"{heart_ml:.0f} mL, less than {HEART_MIN_ML:g}); give --lv-centre X,Y,Z in mm (LPS)")
        centre, fit = place_lv(work.with_array(heart.astype(np.float32)), params)
        how = "found"
    else:
        centre, fit = np.asarray(lv_centre_mm, dtype=np.float64), None
        ijk = np.rint(work.index_of(centre)).astype(int)
        if np.any(ijk < 0) or np.any(ijk >= np.asarray(work.shape)):
            raise SpectacError(f"--lv-centre {list(lv_centre_mm)} lies outside the CT field")
        if not body[tuple(ijk)]:
            raise SpectacError(f"--lv-centre {list(lv_centre_mm)} lies outside the body")
        how = "--lv-centre"
    lung_x = np.argwhere(lungs)[:, 0]
    midline = int(np.median(lung_x)) if len(lung_x) else hu.shape[0] // 2
    labels = tissue_labels(hu, body, lungs, heart, spacing, midline)

    axis = lv_frame(long_axis(params.lv_azimuth_deg, params.lv_elevation_deg))[0]
    params = dataclasses.replace(params, lv_base_mm=tuple(float(v) for v in centre - axis * params.lv_length_mm * 0.4))
    grid_centre = centre - np.asarray(LV_OFFSET_MM)
    fine_spacing = Protocol().pixel_mm / SUPERSAMPLE
    n = SIM_SHAPE * SUPERSAMPLE
    out_axes = [(np.arange(n) - (n - 1) / 2) * fine_spacing for _ in range(3)]
    uptake = params.uptake[state]
    table = np.zeros(8, dtype=np.float32)
    table[[LUNG, FAT, SOFT, BONE, HEART, LIVER, GUT]] = [
        uptake["lung"], 0.4 * uptake["tissue"], uptake["tissue"], uptake["tissue"], uptake["blood"],
        uptake["liver"], uptake["gut"]]

    def sample(points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        index = np.moveaxis(points @ np.linalg.inv(work.affine_lps)[:3, :3].T + np.linalg.inv(work.affine_lps)[:3, 3], -1, 0)
        h = ndimage.map_coordinates(hu, index, order=1, mode="constant", cval=-1000.0)
        lab = ndimage.map_coordinates(labels, index, order=0, mode="constant", cval=0)
        return h, lab

    grid = np.stack(np.meshgrid(*out_axes, indexing="ij"), axis=-1).astype(np.float32) + grid_centre.astype(np.float32)
    hu_out, lab_out = sample(grid)
    del grid
    mu = np.where(lab_out > 0, hu_to_mu(hu_out, ct.kvp), 0.0).astype(np.float32)
    act = table[lab_out]

    # The LV model, twice finer, in a box around the LV, averaged onto the grid.
    half = int(np.ceil(HEART_BOX_MM / fine_spacing))
    c_idx = np.rint((centre - grid_centre) / fine_spacing + (n - 1) / 2).astype(int)
    lo = np.clip(c_idx - half, 0, n)
    hi = np.clip(c_idx + half, 0, n)
    sub = [(np.arange(lo[i], hi[i]) - (n - 1) / 2)[:, None] * fine_spacing
           + ((np.arange(SUPERSAMPLE) + 0.5) / SUPERSAMPLE - 0.5)[None, :] * fine_spacing for i in range(3)]
    sub = [s.ravel() for s in sub]
    grid = PointGrid(sub, tuple(-grid_centre))  # points + the grid centre
    myo, lv, heart_act, region = build_heart(grid, params, state, np.zeros(3))
    hu_f, lab_f = sample(grid[(slice(None),) * 3])
    act_f = table[lab_f]
    act_f[region] = heart_act[region]
    mu_f = np.where(lab_f > 0, hu_to_mu(hu_f, ct.kvp), 0.0).astype(np.float32)
    lifted = region & (mu_f < LUNG_MU_MAX)
    mu_f[lifted] = MU_SOFT_TISSUE  # the modelled heart is never in lung

    def down(v: np.ndarray) -> np.ndarray:
        x, y, z = (s // SUPERSAMPLE for s in v.shape)
        return v.reshape(x, SUPERSAMPLE, y, SUPERSAMPLE, z, SUPERSAMPLE).mean(axis=(1, 3, 5)).astype(np.float32)

    box = tuple(slice(lo[i], hi[i]) for i in range(3))
    act[box] = down(act_f)
    mu[box] = down(mu_f)
    myo_fraction_ml = float(myo.sum()) * (fine_spacing / SUPERSAMPLE) ** 3 / 1000.0
    del grid, hu_f, lab_f, act_f, mu_f, heart_act

    # lv.json in the output frame (the grid centre is the origin)
    for key in ("center_mm", "base_mm", "apex_mm"):
        lv[key] = [float(v) for v in np.asarray(lv[key]) - grid_centre]
    lv["shift_mm"] = [0.0, 0.0, 0.0]
    lv["phantom"] = {"source": "ct", "seed": seed, "state": state, "params": params.to_dict()}

    counts = {LABEL_NAMES[i]: round(float((labels == i).sum()) * voxel_ml, 1) for i in range(1, 8)}
    description = {
        "source": "ct",
        "spectac_version": __version__,
        "ct": ct.describe(),
        "seed": seed,
        "state": state,
        "defect_probability": defect_probability,
        "conversion": {
            "model": "bilinear at 140 keV, kVp-dependent bone slope (Carney et al. 2006 ratios)",
            "kvp": ct.kvp,
            "hu_of_cortical_bone": round(kvp_bone, 1),
            "slope_above_0_hu_per_cm": float(f"{bone_slope(ct.kvp):.6g}"),
        },
        "rules": {
            "hu_classes": {k: list(v) if v[1] < 1e8 else [v[0], None] for k, v in HU_CLASSES.items()},
            "body": f"largest component above {BODY_HU:g} HU; per slice the largest 2D component (table, arms removed)",
            "lungs": "air inside the body below -400 HU: largest one or two 3D components",
            "heart": (f"largest {HEART_HU[0]:g}..{HEART_HU[1]:g} HU blob inside the lungs' convex hull per slice "
                      f"(slices with >= {LUNG_SLICE_FRACTION:g} of the largest lung area), {HEART_EROSION_MM:g} mm "
                      "erosion then dilation"),
            "lv_centre": how,
            "lv_axis": "default clinical orientation drawn by draw_patient (azimuth, elevation)",
            "liver": f"soft tissue below the right lung, {LIVER_DEPTH_MM:g} mm, {SURFACE_MARGIN_MM:g} mm inside the skin",
            "gut": f"soft tissue below the left lung, {GUT_DEPTH_MM:g} mm, below the heart",
            "uptake": "draw_patient uptake of the state: lung, fat 0.4 x tissue, soft tissue and bone tissue, "
                      "heart blob blood, liver, gut; the LV model (myocardium, cavity, RV, atria) overwrites",
        },
        "body": {**body_report, "lung_ml": round(lung_ml, 1), "heart_ml": round(heart_ml, 1),
                 "label_ml": counts, "myocardium_ml": round(myo_fraction_ml, 1),
                 "heart_voxels_lifted_to_soft_tissue": int(lifted.sum())},
        "lv": {"placed_by": how, "fraction_inside_heart": None if fit is None else round(fit, 3),
               "centre_ct_mm": [round(float(v), 2) for v in centre]},
        "grid": {"shape": [n, n, n], "spacing_mm": fine_spacing, "frame": "LPS axes, grid centre at the origin",
                 "centre_in_ct_mm": [round(float(v), 2) for v in grid_centre]},
    }
    out_vol = lambda a: Volume.centred(a, fine_spacing)  # noqa: E731
    return CtPhantom(out_vol(act), out_vol(mu), lv, description, labels)


def parse_point(text: str, flag: str = "--lv-centre") -> tuple[float, float, float]:
    try:
        values = tuple(float(v) for v in text.split(","))
    except ValueError:
        values = ()
    if len(values) != 3 or not all(np.isfinite(values)):
        raise SpectacError(f"{flag} expects X,Y,Z in mm (LPS), got {text!r}")
    return values  # type: ignore[return-value]


def write_ct_phantom(
    ct_dir: str | Path,
    out: str | Path,
    kvp: float | None = None,
    seed: int = 0,
    state: str = "stress",
    lv_centre_mm: tuple[float, float, float] | None = None,
    defect_probability: float = 0.5,
) -> CtPhantom:
    """Read a CT series, build its phantom and write DIR/{activity,mu}.nii.gz, lv.json and
    phantom.json as one folder that appears whole; an existing ``out`` is refused."""
    from spectac.io.phantom_folder import refuse_existing, write_phantom_folder

    out = refuse_existing(out)
    ct = read_ct_series(ct_dir, kvp=kvp, max_pixel_mm=WORKING_PIXEL_MM)
    phantom = build_ct_phantom(ct, seed=seed, state=state, lv_centre_mm=lv_centre_mm,
                               defect_probability=defect_probability)
    write_phantom_folder(out, phantom.activity, phantom.mu, phantom.lv, phantom.description)
    return phantom
