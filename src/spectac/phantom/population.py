"""The patients of a simulated cohort: what is drawn from the seed for each one.

:func:`draw_patient` draws a patient's parameters (sex, body size and fat from the BMI, the LV's
size, position and orientation, the diaphragm, breasts, ribs, uptake ratios at rest and stress,
perfusion defects) from a random generator; :func:`spectac.phantom.anatomy.build_phantom` turns
them into volumes. The parameters are saved with every study (lv.json ``phantom.params``).

Units: mm in the LPS patient frame (x left, y posterior, z head); uptake relative to normal
myocardium.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

from spectac.errors import SpectacError
from spectac.phantom.lv import long_axis, lv_frame
from spectac.phantom.torso import body_extent_mm

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
    type: str  # ischemia | infarct | mixed (scar with ischaemia: 0 < rest severity < stress severity)
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
    # Added with the clinical populations; "" in parameters saved before them (then the counts are
    # the old DEFAULT_COUNTS and the splanchnic uptake is the old mixed range).
    stress_type: str = ""  # exercise | vasodilator
    dose_protocol: str = ""  # one-day | two-day
    population: str = ""  # the preset the patient was drawn from
    # Added with the layered body wall; the defaults rebuild parameters saved before it.
    chest_wall_mm: float = 14.0
    breast_volume_ml: float = -1.0  # per breast; < 0: from breast_radius_mm
    gallbladder_uptake: dict[str, float] = field(default_factory=dict)
    bowel_loops_mm: list[list[float]] = field(default_factory=list)  # x, y, z, semi-axes x, y, z

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


#: A ``--bmi MEAN,SD`` population's body-mass index before the presets (kept for callers); the
#: presets draw a lognormal BMI (:data:`BMI_LOGNORMAL`). Every BMI is clipped to BMI_RANGE.
DEFAULT_BMI = (25.5, 4.5)
BMI_RANGE = (18.0, 50.0)
#: ln(BMI) ~ N(mu, sigma): P(BMI >= 30) = 0.42 and P(BMI >= 40) = 0.09, the US adult obesity and
#: severe-obesity prevalence of NHANES 2017-2018 (Hales CM et al., NCHS Data Brief 360, 2020:
#: 42.4% and 9.2%); median 28.5 kg/m2. Solved from the two quantiles: sigma = (ln 40 - ln 30) /
#: (z(0.91) - z(0.58)), mu = ln 30 - z(0.58) sigma.
BMI_LOGNORMAL = (3.3502, 0.2526)
#: The default simulation field (64 voxels of 6.8 mm) and the margin a body keeps from its edge
#: (a voxel and three SDs of the between-study position shift).
FIELD_MM = 64 * 6.8
FIELD_MARGIN_MM = 16.0


@dataclass(frozen=True)
class Population:
    """A clinical population preset: how often and how badly patients are diseased, and how they
    are stressed and dosed. Defect draws: :func:`_draw_defects`.

    ``vessels``: probabilities of 1, 2 and 3 diseased territories in a diseased patient;
    ``kinds``: probabilities of ischemia (stress only), infarct (fixed) and mixed (scar with
    peri-infarct ischaemia: rest severity between 0 and the stress severity).
    """

    name: str
    defect_probability: float
    vessels: tuple[float, float, float]
    kinds: tuple[float, float, float]
    severity: tuple[float, float]
    half_width_deg: tuple[float, float]
    transmurality: tuple[float, float]
    infarct_transmurality: tuple[float, float]
    vasodilator_share: float = 0.5
    one_day_share: float = 0.7


#: ``referral``: patients referred for MPI with known or suspected CAD. 80% have perfusion
#: defects, 35% of those in 2-3 territories, 30% of the defects mixed scar and ischaemia; the
#: prevalence, sizes and severities are calibrated so that the cohort's CT-AC stress TPD, simulated
#: and scored, is about 12 +- 9 as in clinical referral patients (benchmarks/population_tpd.py,
#: docs/simulation.md: the calibration and its figures). ``low-risk``: like the population before the
#: presets, milder: a single defect in 30% of patients, no mixed defects, lower severities.
POPULATIONS: dict[str, Population] = {
    "referral": Population("referral", 0.8, (0.65, 0.27, 0.08), (0.45, 0.25, 0.30), (0.5, 0.9), (25.0, 55.0),
                           (0.85, 1.0), (0.9, 1.0)),
    "low-risk": Population("low-risk", 0.3, (1.0, 0.0, 0.0), (0.6, 0.4, 0.0), (0.2, 0.55), (15.0, 30.0),
                           (0.4, 0.9), (0.5, 1.0)),
}
DEFAULT_POPULATION = "referral"


def population(name: str) -> Population:
    """The preset of a name (SpectacError naming the choices)."""
    if name not in POPULATIONS:
        raise SpectacError(f"unknown population {name!r}; choose from {', '.join(POPULATIONS)}")
    return POPULATIONS[name]


def _draw_bmi(rng: np.random.Generator, bmi_mean_sd: tuple[float, float] | None) -> float:
    """Lognormal BMI of the presets, or a normal one of ``--bmi MEAN,SD``; clipped to BMI_RANGE."""
    value = rng.lognormal(*BMI_LOGNORMAL) if bmi_mean_sd is None else rng.normal(*bmi_mean_sd)
    return float(np.clip(value, *BMI_RANGE))


def draw_patient(rng: np.random.Generator, patient_id: str, defect_probability: float | None = None,
                 bmi_mean_sd: tuple[float, float] | None = None,
                 population_name: str = DEFAULT_POPULATION, field_mm: float = FIELD_MM) -> PatientParams:
    """Draw a random patient: anatomy, uptake of rest and stress, and perfusion defects.

    ``population_name`` chooses the preset (:data:`POPULATIONS`); ``defect_probability``
    overrides its prevalence. ``bmi_mean_sd`` replaces the preset's lognormal BMI by a normal one
    (e.g. (36, 3) for an obese cohort, anatomy a model trained on the default population has
    rarely seen); body size, fat and breast size follow the BMI.
    The body is placed inside the transaxial ``field_mm`` (centred on the rotation axis) with a
    margin, moving the heart off the rotation axis as little as needed (see :func:`_fit_field`).
    """
    pop = population(population_name)
    sex = "M" if rng.random() < 0.55 else "F"
    bmi = _draw_bmi(rng, bmi_mean_sd)
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
    axis, _, _ = lv_frame(long_axis(azimuth, elevation))
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
    # Vasodilator stress (regadenoson, adenosine, dipyridamole) raises splanchnic blood flow and
    # tracer uptake: liver and gut at or above the myocardium are common; exercise diverts flow to
    # the muscles and lowers it (Hesse B et al., EANM/ESC procedural guidelines for myocardial
    # perfusion imaging, Eur J Nucl Med Mol Imaging 2005; Henzlova MJ et al., ASNC imaging
    # guidelines for SPECT nuclear cardiology procedures, J Nucl Cardiol 2016).
    vasodilator = rng.random() < pop.vasodilator_share
    splanchnic = {"liver": (0.8, 1.6), "gut": (0.6, 1.5), "bowel": (0.2, 1.5)} if vasodilator else \
        {"liver": (0.25, 0.7), "gut": (0.15, 0.7), "bowel": (0.0, 0.8)}
    state_uptake = {
        "stress": {
            "myocardium": 1.0,
            "rv": rng.uniform(0.35, 0.55),
            "blood": rng.uniform(0.06, 0.12),
            "liver": rng.uniform(*splanchnic["liver"]),
            "gut": rng.uniform(*splanchnic["gut"]),
            "bowel": rng.uniform(*splanchnic["bowel"]),
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
    prevalence = pop.defect_probability if defect_probability is None else defect_probability
    defects = _draw_defects(rng, pop) if rng.random() < prevalence else []
    one_day = rng.random() < pop.one_day_share
    params = PatientParams(
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
        stress_type="vasodilator" if vasodilator else "exercise",
        dose_protocol="one-day" if one_day else "two-day",
        population=pop.name,
    )
    # Drawn after everything else so the earlier draws keep their values for a seed (the field
    # placement below may still move or narrow the body).
    params.chest_wall_mm = float(rng.uniform(10.0, 20.0) if sex == "M" else rng.uniform(9.0, 16.0))
    if sex == "F":
        # Breast volume per breast rises with BMI (Coltman, Steele and McGhee, Ergonomics 2018);
        # 300 community women spanned < 350 ml to > 1200 ml (the same authors, Plast Reconstr Surg
        # 2019). Median ~350 ml at BMI 22, ~650 at 30, ~1150 at 38.
        params.breast_volume_ml = float(np.clip(350.0 * np.exp(0.075 * (bmi - 22.0) + rng.normal(0.0, 0.35)), 150.0, 1800.0))
    else:
        params.breast_volume_ml = 0.0
    params.gallbladder_uptake = {s: float(params.uptake[s]["liver"] * rng.uniform(0.0, 1.5)) for s in ("stress", "rest")}
    params.bowel_loops_mm = _draw_bowel(rng, lv_centre, diaphragm_left)
    _fit_field(params, field_mm)
    return params


def _draw_bowel(rng: np.random.Generator, lv_centre: np.ndarray, diaphragm_left: float) -> list[list[float]]:
    """Two or three bowel loops (small bowel, splenic flexure) under the left hemidiaphragm: in a
    quarter of patients the highest touches the diaphragm under the inferior wall, otherwise it
    lies 40-140 mm lower."""
    gap = rng.uniform(0.0, 15.0) if rng.random() < 0.25 else rng.uniform(40.0, 140.0)
    loops = []
    for k in range(int(rng.integers(2, 4))):
        semi = [float(v) for v in rng.uniform(18.0, 30.0, 3)]
        top = diaphragm_left - 8.0 - gap - (0.0 if k == 0 else rng.uniform(20.0, 60.0))
        loops.append([float(lv_centre[0] + rng.uniform(-35.0, 35.0)), float(lv_centre[1] + rng.uniform(-25.0, 25.0)),
                      float(top - semi[2])] + semi)
    return loops


def _fit_field(params: PatientParams, field_mm: float) -> None:
    """Move the patient (body, heart, bowel) in x/y just enough that the body with its breasts
    stays ``FIELD_MARGIN_MM`` inside the field. A body up to 15% wider than the field holds is
    narrowed to fit (the largest draws of the population are truncated at the field); a wider one
    (a small field) is a SpectacError."""
    half = field_mm / 2 - FIELD_MARGIN_MM
    volume = max(params.breast_volume_ml, 0.0)
    width, anterior, posterior = body_extent_mm(params.body_a_mm, params.body_b_mm, volume)
    for _ in range(5):
        if not half < width <= 1.15 * half:
            break
        params.body_a_mm = float(params.body_a_mm - (width - half) - 0.5)
        width, anterior, posterior = body_extent_mm(params.body_a_mm, params.body_b_mm, volume)
    if width > half or anterior + posterior > 2 * half:
        raise SpectacError(f"patient {params.patient_id}'s body ({2 * width:.0f} x {anterior + posterior:.0f} mm) does "
                           f"not fit the {field_mm:.0f} mm field with a {FIELD_MARGIN_MM:.0f} mm margin: use a larger grid")
    cx, cy = params.body_center_mm
    dx = float(np.clip(cx, -(half - width), half - width) - cx)
    dy = float(np.clip(cy, anterior - half, half - posterior) - cy)
    if dx == 0.0 and dy == 0.0:
        return
    params.body_center_mm = (cx + dx, cy + dy)
    params.lv_base_mm = (params.lv_base_mm[0] + dx, params.lv_base_mm[1] + dy, params.lv_base_mm[2])
    params.bowel_loops_mm = [[x + dx, y + dy, *rest] for x, y, *rest in params.bowel_loops_mm]


def _draw_defects(rng: np.random.Generator, pop: Population) -> list[Defect]:
    """The defects of a diseased patient: one per diseased territory (1-3, no territory twice)."""
    n = int(rng.choice([1, 2, 3], p=pop.vessels))
    territories = rng.choice(["LAD", "RCA", "LCx"], size=n, replace=False, p=[0.45, 0.3, 0.25])
    return [_draw_defect(rng, str(t), pop) for t in territories]


def _draw_defect(rng: np.random.Generator, territory: str, pop: Population) -> Defect:
    kind = str(rng.choice(["ischemia", "infarct", "mixed"], p=pop.kinds))
    if territory == "LAD":
        l_from, l_to = rng.uniform(0.0, 0.6), 1.3  # from the base or mid level through the apex
    else:
        l_from, l_to = 0.0, rng.uniform(0.5, 1.0)  # from the base toward the apex
    severity = rng.uniform(*pop.severity)
    # Infarcts are scars through most of the wall; ischaemia is mostly subendocardial.
    transmurality = rng.uniform(*(pop.transmurality if kind == "ischemia" else pop.infarct_transmurality))
    rest = {"ischemia": 0.0, "infarct": severity * rng.uniform(0.85, 1.0), "mixed": severity * rng.uniform(0.3, 0.7)}
    return Defect(
        territory=territory,
        type=kind,
        theta_deg=float(TERRITORY_ANGLE[territory] + rng.normal(0.0, 12.0)),
        half_width_deg=float(rng.uniform(*pop.half_width_deg)),
        l_from=float(l_from),
        l_to=float(l_to),
        transmurality=float(transmurality),
        stress_severity=float(severity),
        rest_severity=float(rest[kind]),
    )
