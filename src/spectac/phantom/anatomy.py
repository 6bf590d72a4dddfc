"""A parametric anthropomorphic torso for myocardial perfusion SPECT, in the spirit of MCAT.

A random operation draws a patient's parameters from a seed (:func:`draw_patient`, saved with the
study); a deterministic one turns them into volumes (:func:`build_phantom`). The anatomy is what
makes attenuation artifacts in MPI: body size and fat from sex and BMI, lungs, spine, ribs and
sternum, the liver under the right hemidiaphragm, stomach and bowel, female breasts over the
anterior wall, the diaphragm height under the inferior wall.

Units: mm in the LPS patient frame (x left, y posterior, z head); mu in 1/cm at 140 keV;
activity as sestamibi uptake relative to normal myocardium (scaled to counts by the simulator).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

from spectac.phantom.lv import lv_frame
from spectac.physics import MU_SOFT_TISSUE
from spectac.segments import TERRITORY_SEGMENTS, Level, segment_of

MU_FAT = 0.138
MU_BONE = 0.28
MU_SPINE = 0.22  # vertebral body: cortical shell and cancellous bone, averaged
MU_BREAST = 0.146

# Centre of the short-axis angle range of each territory (degrees from anterior toward septal).
TERRITORY_ANGLE = {"LAD": 25.0, "RCA": 160.0, "LCx": 270.0}


@dataclass
class Defect:
    """A perfusion defect in the LV frame.

    ``theta_deg`` / ``half_width_deg``: angular centre and half width; ``l_from`` / ``l_to``:
    longitudinal range as fractions of the cavity length from the base (0) to the apex (1; values
    above 1 include the apical cap); ``transmurality``: fraction of the wall from the endocardium.
    ``stress_severity`` / ``rest_severity``: fractional count reduction in the core.
    """

    territory: str
    type: str  # ischemia | infarct
    theta_deg: float
    half_width_deg: float
    l_from: float
    l_to: float
    transmurality: float
    stress_severity: float
    rest_severity: float


@dataclass
class PatientParams:
    """Everything drawn for one patient; ``build_phantom`` needs nothing else."""

    patient_id: str
    sex: str
    bmi: float
    body_a_mm: float
    body_b_mm: float
    body_center_mm: tuple[float, float]
    fat_mm: float
    lv_base_mm: tuple[float, float, float]
    lv_azimuth_deg: float
    lv_elevation_deg: float
    lv_length_mm: float
    lv_radius_mm: float
    lv_wall_mm: float
    lv_shape_power: float
    diaphragm_right_mm: float
    diaphragm_left_drop_mm: float
    lung_mu: float
    breast_radius_mm: float
    breast_drop_mm: float
    rib_pitch_mm: float
    rib_phase_mm: float
    heterogeneity: tuple[float, ...]
    uptake: dict[str, dict[str, float]]
    defects: list[Defect] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> PatientParams:
        data = dict(data)
        data["defects"] = [Defect(**d) for d in data.get("defects", [])]
        data["body_center_mm"] = tuple(data["body_center_mm"])
        data["lv_base_mm"] = tuple(data["lv_base_mm"])
        data["heterogeneity"] = tuple(data["heterogeneity"])
        return cls(**data)


#: The population's body-mass index (mean, SD), clipped to BMI_RANGE.
DEFAULT_BMI = (25.5, 4.5)
BMI_RANGE = (17.0, 45.0)


def draw_patient(rng: np.random.Generator, patient_id: str, defect_probability: float = 0.5,
                 bmi_mean_sd: tuple[float, float] = DEFAULT_BMI) -> PatientParams:
    """Draw a random patient: anatomy, uptake of rest and stress, and perfusion defects.

    ``bmi_mean_sd`` sets the population (e.g. (36, 3) for an obese cohort, anatomy a model trained
    on the default population has rarely seen); body size, fat and breast size follow the BMI.
    """
    sex = "M" if rng.random() < 0.55 else "F"
    bmi = float(np.clip(rng.normal(*bmi_mean_sd), *BMI_RANGE))
    size = np.sqrt(bmi / 25.0)
    a = (165.0 if sex == "M" else 152.0) * size * rng.uniform(0.94, 1.06)
    b = (112.0 if sex == "M" else 104.0) * size**1.3 * rng.uniform(0.93, 1.07)
    a, b = float(min(a, 188.0)), float(min(b, 150.0))
    fat = float(np.clip(4.0 + 2.4 * (bmi - 19.0) + (4.0 if sex == "F" else 0.0) + rng.normal(0, 3), 3.0, 50.0))

    azimuth = rng.uniform(35.0, 60.0)  # long axis in the transverse plane, from anterior toward left
    elevation = rng.uniform(15.0, 40.0)  # inferior tilt of the long axis
    length = rng.uniform(72.0, 90.0) * (0.95 if sex == "F" else 1.0)
    radius = rng.uniform(27.0, 32.0) * (0.95 if sex == "F" else 1.0)
    wall = rng.uniform(9.0, 12.0)
    axis, _, _ = lv_frame(_long_axis(azimuth, elevation))
    # Place the LV centre near the rotation axis (as the technologist does), the base behind it.
    lv_centre = np.array([rng.uniform(5, 25), rng.uniform(-25, -5), rng.uniform(-5, 25)])
    base = lv_centre - axis * length * 0.4
    # The heart sits left and anterior of the body's midline.
    body_center = (float(lv_centre[0] - rng.uniform(40, 55)), float(lv_centre[1] + rng.uniform(25, 45)))

    # The inferior wall rests on the left hemidiaphragm; the right dome (over the liver) is higher.
    # A high diaphragm puts the inferior wall at the level of the abdomen (liver, stomach), the
    # classic source of inferior attenuation artifacts in men.
    inferior_wall_z = float(lv_centre[2] - length * 0.4 * np.sin(np.deg2rad(elevation)) - radius * np.cos(np.deg2rad(elevation)))
    diaphragm_left = inferior_wall_z + rng.uniform(5.0, 35.0) + (10.0 if sex == "M" else 0.0)
    diaphragm_left_drop = rng.uniform(10.0, 25.0)
    diaphragm_right = diaphragm_left + diaphragm_left_drop
    state_uptake = {
        "stress": {
            "myocardium": 1.0,
            "rv": rng.uniform(0.35, 0.55),
            "blood": rng.uniform(0.06, 0.12),
            "liver": rng.uniform(0.3, 0.9),
            "gut": rng.uniform(0.2, 1.0),
            "bowel": rng.uniform(0.0, 1.2),
            "lung": rng.uniform(0.03, 0.07),
            "tissue": rng.uniform(0.04, 0.08),
        },
        "rest": {
            "myocardium": 1.0,
            "rv": rng.uniform(0.3, 0.5),
            "blood": rng.uniform(0.08, 0.15),
            "liver": rng.uniform(0.6, 1.5),
            "gut": rng.uniform(0.3, 1.4),
            "bowel": rng.uniform(0.0, 1.5),
            "lung": rng.uniform(0.03, 0.06),
            "tissue": rng.uniform(0.05, 0.09),
        },
    }
    breast_radius = 0.0
    if sex == "F":
        breast_radius = float(np.clip(rng.normal(45.0 + 3.0 * (bmi - 22.0), 9.0), 30.0, 95.0))
    defects: list[Defect] = []
    if rng.random() < defect_probability:
        defects.append(_draw_defect(rng))
    return PatientParams(
        patient_id=patient_id,
        sex=sex,
        bmi=round(bmi, 2),
        body_a_mm=a,
        body_b_mm=b,
        body_center_mm=body_center,
        fat_mm=fat,
        lv_base_mm=tuple(float(v) for v in base),
        lv_azimuth_deg=float(azimuth),
        lv_elevation_deg=float(elevation),
        lv_length_mm=float(length),
        lv_radius_mm=float(radius),
        lv_wall_mm=float(wall),
        lv_shape_power=float(rng.uniform(2.1, 2.8)),
        diaphragm_right_mm=float(diaphragm_right),
        diaphragm_left_drop_mm=float(diaphragm_left_drop),
        lung_mu=float(rng.uniform(0.035, 0.055)),
        breast_radius_mm=breast_radius,
        # supine, the breast centre (nipple near the 4th intercostal space) lies at or above the LV
        # base, the inframammary fold near the inferior wall: the breast shadows the anterior wall
        breast_drop_mm=float(rng.uniform(-40.0, 10.0)),
        rib_pitch_mm=float(rng.uniform(25.0, 32.0)),
        rib_phase_mm=float(rng.uniform(0.0, 30.0)),
        heterogeneity=tuple(float(v) for v in rng.normal(0.0, 0.025, size=4)),
        uptake={k: {n: float(v) for n, v in d.items()} for k, d in state_uptake.items()},
        defects=defects,
    )


def _draw_defect(rng: np.random.Generator) -> Defect:
    territory = str(rng.choice(["LAD", "RCA", "LCx"], p=[0.45, 0.3, 0.25]))
    kind = "ischemia" if rng.random() < 0.6 else "infarct"
    if territory == "LAD":
        l_from, l_to = rng.uniform(0.0, 0.6), 1.3  # from the base or mid level through the apex
    else:
        l_from, l_to = 0.0, rng.uniform(0.5, 1.0)  # from the base toward the apex
    severity = rng.uniform(0.25, 0.7)
    return Defect(
        territory=territory,
        type=kind,
        theta_deg=float(TERRITORY_ANGLE[territory] + rng.normal(0.0, 12.0)),
        half_width_deg=float(rng.uniform(30.0, 65.0)),
        l_from=float(l_from),
        l_to=float(l_to),
        transmurality=float(rng.uniform(0.5, 1.0)),
        stress_severity=float(severity),
        rest_severity=float(severity * rng.uniform(0.85, 1.0)) if kind == "infarct" else 0.0,
    )


def _long_axis(azimuth_deg: float, elevation_deg: float) -> np.ndarray:
    az, el = np.deg2rad(azimuth_deg), np.deg2rad(elevation_deg)
    horizontal = np.array([np.sin(az), -np.cos(az), 0.0])  # anterior rotated toward the left
    return np.cos(el) * horizontal + np.sin(el) * np.array([0.0, 0.0, -1.0])


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


def _ellipsoid(p: np.ndarray, centre: tuple[float, ...], semi: tuple[float, ...]) -> np.ndarray:
    return sum(((p[..., i] - centre[i]) / semi[i]) ** 2 for i in range(3)) <= 1.0


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
    p = np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1).astype(np.float32)
    p -= np.asarray(shift_mm, dtype=np.float32)
    x, y, z = p[..., 0], p[..., 1], p[..., 2]
    uptake = params.uptake[state]

    cx, cy = params.body_center_mm
    a, b, fat = params.body_a_mm, params.body_b_mm, params.fat_mm
    rel_x, rel_y = x - cx, y - cy
    radial = np.sqrt((rel_x / a) ** 2 + (rel_y / b) ** 2)
    body = radial <= 1.0
    inner = np.sqrt((rel_x / (a - fat)) ** 2 + (rel_y / (b - fat)) ** 2) <= 1.0

    mu = np.where(body, MU_FAT, 0.0).astype(np.float32)
    mu[inner] = MU_SOFT_TISSUE
    act = np.where(body, 0.4 * uptake["tissue"], 0.0).astype(np.float32)
    act[inner] = uptake["tissue"]

    # Breasts (anterior chest, over the heart in most women)
    if params.breast_radius_mm > 0:
        r = params.breast_radius_mm
        z_breast = params.lv_base_mm[2] - params.breast_drop_mm
        for side in (-1.0, 1.0):
            centre = (cx + side * 0.42 * a, cy - b * np.sqrt(1 - 0.42**2) - 0.35 * r, z_breast)
            breast = _ellipsoid(p, centre, (r, 0.8 * r, 0.9 * r)) & (y < cy)
            mu[breast & ~inner] = MU_BREAST
            act[breast & ~inner] = 0.5 * uptake["tissue"]

    # Diaphragm: a dome per side; below it the abdomen, above it the lungs.
    z_right = params.diaphragm_right_mm
    z_left = z_right - params.diaphragm_left_drop_mm
    dome = np.where(rel_x < 0, z_right, z_left) - 0.0025 * ((np.abs(rel_x) - 0.45 * a) ** 2) - 0.002 * rel_y**2

    # Lungs
    lung_half = 0.36 * a
    for side, z_floor in ((-1.0, z_right), (1.0, z_left)):
        centre = (cx + side * 0.46 * a, cy + 0.08 * b, z_floor + 170.0)
        lung = _ellipsoid(p, centre, (lung_half, 0.72 * b, 190.0)) & (z > dome) & inner
        mu[lung] = params.lung_mu
        act[lung] = uptake["lung"]

    # Mediastinum behind the heart (aorta, oesophagus) down to the spine: soft tissue, not lung
    mediastinum = (np.abs(rel_x - 8.0) < 32.0) & (rel_y > -0.55 * b) & inner & (z > dome)
    mu[mediastinum] = MU_SOFT_TISSUE
    act[mediastinum] = uptake["tissue"]

    # Liver under the right hemidiaphragm, its left lobe reaching under the heart
    liver = _ellipsoid(p, (cx - 0.28 * a, cy + 0.05 * b, z_right - 75.0), (0.62 * a, 0.78 * b, 88.0))
    liver &= (z <= dome) & inner
    mu[liver] = MU_SOFT_TISSUE
    act[liver] = uptake["liver"]
    # Stomach (wall uptake) under the left hemidiaphragm, and a bowel loop lower down
    stomach = _ellipsoid(p, (cx + 0.42 * a, cy - 0.15 * b, z_left - 55.0), (0.22 * a, 0.35 * b, 48.0))
    stomach &= (z <= dome) & inner & ~liver
    act[stomach] = uptake["gut"]
    mu[stomach] = MU_SOFT_TISSUE
    bowel = _ellipsoid(p, (cx + 0.1 * a, cy - 0.2 * b, z_right - 175.0), (0.35 * a, 0.4 * b, 40.0)) & inner
    act[bowel] = np.maximum(act[bowel], uptake["bowel"])

    # Rib cage: elliptical bands sloping down toward the front, above the costal margin
    rib_a, rib_b = a - fat - 8.0, b - fat - 8.0
    rib_radial = np.sqrt((rel_x / rib_a) ** 2 + (rel_y / rib_b) ** 2)
    rib_z = z + 0.35 * (rel_y + b)  # ribs descend anteriorly
    in_band = np.mod(rib_z - params.rib_phase_mm, params.rib_pitch_mm) < 11.0
    ribs = (np.abs(rib_radial - 1.0) * np.minimum(rib_a, rib_b) < 6.0) & in_band & (z > z_right - 90.0)
    mu[ribs] = MU_BONE
    # Sternum and spine
    sternum = (np.abs(rel_x) < 16.0) & (rel_y < -(b - fat - 22.0)) & (rel_y > -(b - fat)) & (z > z_right - 60.0)
    mu[sternum & inner] = MU_BONE * 0.8
    spine = (rel_x**2 + (rel_y - 0.52 * b) ** 2) < 19.0**2
    mu[spine] = MU_SPINE

    # Heart: LV myocardium, cavity, RV, surrounded by soft tissue (mediastinum)
    myo_fraction, lv_truth, heart_act, heart_region = _heart(p, params, state, np.asarray(shift_mm, np.float64))
    mu[heart_region] = MU_SOFT_TISSUE
    act[heart_region] = heart_act[heart_region]

    mu = np.where(body | (mu > 0), mu, 0.0)
    return Phantom(
        activity=_downsample(act, supersample),
        mu_map=_downsample(mu, supersample),
        myocardium=_downsample(myo_fraction, supersample),
        lv={**lv_truth, "shift_mm": list(shift_mm)},
    )


def _heart(
    p: np.ndarray, params: PatientParams, state: str, shift: np.ndarray
) -> tuple[np.ndarray, dict, np.ndarray, np.ndarray]:
    """LV myocardium (with defects), blood pools and RV in patient coordinates ``p``; returns the
    myocardium mask, the truth (in the study's LPS frame: patient coordinates + ``shift``), the
    heart activity and the heart region."""
    uptake = params.uptake[state]
    axis, anterior, septal = lv_frame(_long_axis(params.lv_azimuth_deg, params.lv_elevation_deg))
    base = np.asarray(params.lv_base_mm, dtype=np.float32)
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
    return myocardium.astype(np.float32), lv, heart_act, region


def _taper(distance: np.ndarray, width: float) -> np.ndarray:
    """Smooth step: 0 for distance < -width/2, 1 for distance > width/2 (raised cosine)."""
    s = np.clip(distance / width + 0.5, 0.0, 1.0)
    return 0.5 - 0.5 * np.cos(np.pi * s)


def _downsample(volume: np.ndarray, factor: int) -> np.ndarray:
    if factor == 1:
        return volume.astype(np.float32)
    x, y, z = (n // factor for n in volume.shape)
    return volume.reshape(x, factor, y, factor, z, factor).mean(axis=(1, 3, 5)).astype(np.float32)
