"""Simulated MPI cohorts: phantom -> acquisition -> NC and CT-AC OSEM -> dataset.

An orchestrator: it draws the patients, builds their phantoms (:mod:`spectac.phantom`), acquires
them (:mod:`spectac.acquisition.acquire`: count scale, the projections of every energy window with
scatter, Poisson noise), reconstructs them (:mod:`spectac.reconstruction.pair`: NC of the
photopeak; CT-AC with the mu-map and the windows' scatter estimate) and writes the studies, with
the window projections, through :mod:`spectac.io.dataset`.

Every random thing is drawn from the cohort seed: patient ``i`` gets the i-th child of
``SeedSequence(seed)``, so a study's bytes do not depend on the order, the number of workers, or
which studies were already written (a run is resumable). Each study is computed with one torch
thread so the same seed gives the same bytes on any machine setting; parallelism is over studies.
"""

from __future__ import annotations

import os
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from spectac import __version__
from spectac.acquisition.acquire import acquire_counts
from spectac.acquisition.collimators import find_collimator
from spectac.acquisition.projector import SpectProjector
from spectac.acquisition.protocol import Protocol
from spectac.io.dataset import (
    Case,
    Dataset,
    check_same_dataset,
    check_writable_dataset_folder,
    has_manifest,
    study_is_complete,
    write_manifest,
    write_study,
)
from spectac.io.nifti import read_nifti
from spectac.phantom.anatomy import build_phantom
from spectac.phantom.population import (
    BMI_RANGE,
    DEFAULT_POPULATION,
    FIELD_MM,
    POPULATIONS,
    PatientParams,
    draw_patient,
)
from spectac.progress import track
from spectac.reconstruction.osem import ReconConfig
from spectac.reconstruction.pair import reconstruct_ac, reconstruct_nc_ac
from spectac.reconstruction.scatter_image import cache_scatter_image
from spectac.resample import shift_mu
from spectac.splitting import parse_split, split_patients
from spectac.volume import SpectacError, Volume

STATES = ("stress", "rest")
# Expected total counts per study (mean, SD) when the user does not fix them: one-day protocol,
# a few million counts as clinical Tc-99m MPI acquisitions give.
DEFAULT_COUNTS = {"stress": (4.0e6, 0.6e6), "rest": (3.0e6, 0.45e6)}
#: Expected counts (mean, SD) of the dose protocols (PatientParams.dose_protocol). One-day
#: rest/stress: a low rest dose (~300-400 MBq) and a stress dose ~3x higher the same day; two-day:
#: the same high dose (~600-900 MBq) on both days (Hesse B et al., EANM/ESC procedural guidelines
#: for myocardial perfusion imaging, Eur J Nucl Med Mol Imaging 2005; Henzlova MJ et al., ASNC
#: imaging guidelines for SPECT nuclear cardiology procedures, J Nucl Cardiol 2016). Acquisition
#: times are alike, so the counts follow the activity. Patients saved before the dose protocols
#: ("") keep DEFAULT_COUNTS.
DOSE_COUNTS = {
    "one-day": {"stress": (4.5e6, 0.7e6), "rest": (1.5e6, 0.25e6)},
    "two-day": {"stress": (4.5e6, 0.7e6), "rest": (4.5e6, 0.7e6)},
}
#: CT-to-SPECT misregistration (SD in mm of the cranio-caudal shift; lateral and antero-posterior
#: SDs are MISREGISTRATION_TRANSAXIAL times it). Patients move between the CT and the SPECT, and
#: breathing differs (free-breathing SPECT against a CT at one phase), mostly along the long axis.
#: Reported: misregistration > 1 pixel in 73% of 248 studies (Kennedy JA, Israel O, Frenkel A,
#: J Nucl Med 2009),
#: shifts of several mm in x, y and z that change regional uptake (Goetze S et al., J Nucl Med
#: 2007). The default (7 mm; 4.2 mm transaxial) puts ~46% of studies beyond one 6.8 mm pixel
#: on some axis. The shift is drawn per study (stress and rest differ).
DEFAULT_MISREGISTRATION_MM = 7.0
MISREGISTRATION_TRANSAXIAL = 0.6
#: ``--protocol-mix``: orbits and collimators drawn per patient (both studies alike). The matrix
#: stays that of the cohort: training needs one grid.
PROTOCOL_MIX = {"orbit": {180.0: 0.7, 360.0: 0.3},
                "collimator": {"GE-LEHR": 0.45, "SIEMENS-LEHR": 0.35, "SIEMENS-LEUHR": 0.2}}
#: Matrix -> pixel size of the simulation grid: 64 x 6.8 mm or 128 x 3.4 mm (same 435 mm field).
MATRIX_PIXEL_MM = {64: 6.8, 128: 3.4}


#: More counts than any clinical study (1e9) would take Poisson sampling beyond its range.
MAX_COUNTS = 1e9
#: ``--scatter``: simulated scatter corrected by TEW (default) or DEW in CT-AC, or no scatter.
SCATTER_CHOICES = ("tew", "dew", "none")


@dataclass(frozen=True)
class SimulationConfig:
    """The whole configuration of a simulation run (saved in dataset.json)."""

    protocol: Protocol = field(default_factory=Protocol)
    recon: ReconConfig = field(default_factory=ReconConfig)
    shape: tuple[int, int, int] = (64, 64, 64)
    counts: float | None = None  # None: drawn per study around DEFAULT_COUNTS
    split: tuple[float, float, float] = (0.4, 0.4, 0.2)
    defect_probability: float | None = None  # None: the population's
    position_shift_mm: float = 3.0  # SD of the patient shift between studies
    supersample: int = 2
    extra: dict[str, Any] = field(default_factory=dict)
    population: str = DEFAULT_POPULATION
    misregistration_mm: float = DEFAULT_MISREGISTRATION_MM
    protocol_mix: bool = False

    @classmethod
    def build(
        cls,
        counts: float | None = None,
        views: int = 60,
        arc: float = 180.0,
        iterations: int = 4,
        subsets: int = 6,
        scatter: str | bool = "tew",
        split: str = "40/40/20",
        bmi: tuple[float, float] | None = None,
        population: str = DEFAULT_POPULATION,
        misregistration_mm: float = DEFAULT_MISREGISTRATION_MM,
        collimator: str = "GE-LEHR",
        matrix: int = 64,
        protocol_mix: bool = False,
        defect_probability: float | None = None,
        expected_ac: bool = False,
    ) -> SimulationConfig:
        """Validated configuration from command-line values (SpectacError on bad values).

        ``scatter``: "tew" or "dew" (simulate scatter in every energy window; CT-AC corrects it
        with that estimate) or "none" (no scatter, no correction); True/False mean "tew"/"none".
        ``bmi`` (mean, SD) changes the population's body-mass index; it is kept in ``extra`` so
        that a default configuration saves exactly as before; so is ``expected_ac`` (every study
        also holds the CT-AC of its expected counts, see :func:`simulate_study`).
        """
        if bmi is not None and not (BMI_RANGE[0] <= bmi[0] <= BMI_RANGE[1] and 0 <= bmi[1] <= 15):
            raise SpectacError(f"--bmi mean must lie in {BMI_RANGE[0]:g}-{BMI_RANGE[1]:g} and SD in 0-15, got {bmi}")
        if counts is not None and not 0 < counts <= MAX_COUNTS:
            raise SpectacError(f"--counts must be positive and at most {MAX_COUNTS:.0e} per study, got {counts:g}")
        if iterations < 1 or subsets < 1:
            raise SpectacError("--iterations and --subsets must be at least 1")
        if views < 1:
            raise SpectacError(f"--views must be at least 1, got {views}")
        if subsets > views:
            raise SpectacError(f"--subsets ({subsets}) cannot exceed --views ({views})")
        method = {True: "tew", False: "none"}.get(scatter, scatter) if isinstance(scatter, bool) else scatter
        if method not in SCATTER_CHOICES:
            raise SpectacError(f"--scatter must be one of {', '.join(SCATTER_CHOICES)}, got {scatter!r}")
        if defect_probability is not None and not 0 <= defect_probability <= 1:
            raise SpectacError(f"--defect-probability must lie in 0-1, got {defect_probability:g}")
        if population not in POPULATIONS:
            raise SpectacError(f"--population must be one of {', '.join(POPULATIONS)}, got {population!r}")
        if not 0 <= misregistration_mm <= 30:
            raise SpectacError(f"--misregistration-mm must lie in 0-30, got {misregistration_mm:g}")
        if matrix not in MATRIX_PIXEL_MM:
            raise SpectacError(f"--matrix must be 64 or 128, got {matrix}")
        pixel = MATRIX_PIXEL_MM[matrix]
        protocol = Protocol.for_arc(arc, n_views=views, counts=counts or 4.0e6, scatter=method != "none", matrix=matrix,
                                    pixel_mm=pixel, collimator=find_collimator(collimator).collimator())
        return cls(
            protocol=protocol,
            recon=ReconConfig(iterations=iterations, subsets=subsets, scatter_correction=method),
            counts=counts,
            split=parse_split(split),
            shape=(matrix, matrix, matrix),
            extra={**({} if bmi is None else {"bmi": [float(bmi[0]), float(bmi[1])]}),
                   **({"expected_ac": True} if expected_ac else {})},
            population=population,
            misregistration_mm=float(misregistration_mm),
            protocol_mix=protocol_mix,
            defect_probability=defect_probability,
        )

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["protocol"] = self.protocol.to_dict()
        data["recon"] = self.recon.to_dict()
        return data

    @property
    def spacing_mm(self) -> float:
        return self.protocol.pixel_mm

    @property
    def expected_ac(self) -> bool:
        """Whether every study also holds ac_expected, the CT-AC of its expected counts
        (``--expected-ac``; kept in ``extra`` so that a default configuration saves as before)."""
        return bool(self.extra.get("expected_ac", False))

    @property
    def bmi_mean_sd(self) -> tuple[float, float] | None:
        """The population's normal BMI (mean, SD) of ``--bmi`` (``extra["bmi"]``), else None (the
        presets' lognormal BMI)."""
        bmi = self.extra.get("bmi")
        return (float(bmi[0]), float(bmi[1])) if bmi else None


def patient_params(seed: int, index: int, defect_probability: float | None = None,
                   bmi_mean_sd: tuple[float, float] | None = None,
                   population: str = DEFAULT_POPULATION, field_mm: float = FIELD_MM) -> PatientParams:
    child = np.random.SeedSequence(seed).spawn(index + 1)[index]
    return draw_patient(np.random.default_rng(child), f"P{index:03d}", defect_probability, bmi_mean_sd, population,
                        field_mm)


def config_patient(seed: int, index: int, config: SimulationConfig) -> PatientParams:
    """Patient ``index`` of a cohort with ``config``'s population."""
    return patient_params(seed, index, config.defect_probability, config.bmi_mean_sd, config.population,
                          min(config.shape[:2]) * config.spacing_mm)


def study_protocol(seed: int, index: int, config: SimulationConfig) -> Protocol:
    """The acquisition protocol of patient ``index``: the cohort's, or with ``protocol_mix`` an
    orbit and collimator drawn from :data:`PROTOCOL_MIX` (seeded by the patient, so stress and
    rest share them)."""
    if not config.protocol_mix:
        return config.protocol
    rng = np.random.default_rng(np.random.SeedSequence([seed, index, 3]))
    orbit = float(rng.choice(list(PROTOCOL_MIX["orbit"]), p=list(PROTOCOL_MIX["orbit"].values())))
    key = str(rng.choice(list(PROTOCOL_MIX["collimator"]), p=list(PROTOCOL_MIX["collimator"].values())))
    return replace(config.protocol, arc_deg=orbit, start_deg=Protocol.for_arc(orbit).start_deg,
                   collimator=find_collimator(key).collimator())


def collimator_key(protocol: Protocol) -> str:
    """The collimator table key of a protocol's collimator ("" when it is none of the table's)."""
    from spectac.acquisition.collimators import COLLIMATORS

    return next((c.key for c in COLLIMATORS if c.collimator() == protocol.collimator), "")


def misregistration_shift(rng: np.random.Generator, sd_mm: float) -> tuple[float, float, float]:
    """A CT-to-SPECT shift (LPS mm) of one study; see :data:`DEFAULT_MISREGISTRATION_MM`."""
    sd = np.array([MISREGISTRATION_TRANSAXIAL, MISREGISTRATION_TRANSAXIAL, 1.0]) * sd_mm
    return tuple(float(v) for v in rng.normal(0.0, 1.0, 3) * sd)


def simulate_study(
    params: PatientParams, state: str, config: SimulationConfig, rng: np.random.Generator
) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """One study: the phantom of a patient in a state, acquired and reconstructed NC and CT-AC.

    The CT-AC reconstruction uses the mu-map displaced by a drawn misregistration
    (``config.misregistration_mm``; drawn from a child of ``rng``'s seed, so the truth, the
    projections and NC do not depend on it) and ``mu`` is that displaced map, what the clinic has.

    With ``config.expected_ac`` the CT-AC of the expected counts (no Poisson draw) is made as well:
    the image CT-AC scatters around, a noise-free training target (``spectac train
    --clean-target``).

    Returns:
        volumes: nc, ac, mu, truth and, with ``config.expected_ac``, ac_expected (X, Y, Z)
            float32 arrays (counts; mu in 1/cm);
        info: the LV truth (lv.json), the study's drawn acquisition values, the myocardium
            fraction map (not written to disk) and ``windows``, the counts of every energy window
            (projections.npz).
    """
    shift = tuple(float(v) for v in rng.normal(0.0, config.position_shift_mm, 3))
    phantom = build_phantom(
        params, state, config.shape, config.spacing_mm, shift_mm=shift, supersample=config.supersample
    )
    if config.counts is not None:
        counts = config.counts
    else:
        mean, sd = DOSE_COUNTS.get(params.dose_protocol, DEFAULT_COUNTS)[state]
        counts = float(max(rng.normal(mean, sd), 0.3 * mean))
    expected: dict[str, torch.Tensor] | None = {} if config.expected_ac else None
    truth, mu_map, windows, ac_model, scatter_fraction = acquire_counts(
        phantom.activity, phantom.mu_map, counts, config.protocol, config.spacing_mm, rng, expected)
    mu_shift = misregistration_shift(np.random.default_rng(rng.bit_generator.seed_seq.spawn(1)[0]),
                                     config.misregistration_mm)
    mu_clinic = shift_mu(mu_map, mu_shift, config.spacing_mm)
    if mu_clinic is not mu_map:  # the CT-AC projector models the displaced map, on the true orbit
        ac_model = SpectProjector(ac_model.shape, config.spacing_mm, config.protocol, mu_map=mu_clinic,
                                  psf=config.recon.psf, radii_mm=ac_model.radii_mm)
    volumes = reconstruct_pair(windows, ac_model, mu_clinic, config, expected)
    volumes.update(mu=mu_clinic, truth=truth)
    info = {
        "lv": phantom.lv,
        "counts": counts,
        "measured_counts": float(windows["photopeak"].sum()),
        "shift_mm": shift,
        "mu_shift_mm": mu_shift,
        "scatter_fraction": scatter_fraction,
        "myocardium": phantom.myocardium,
        "windows": {name: p.numpy() for name, p in windows.items()},
    }
    return volumes, info


def reconstruct_pair(
    projections: torch.Tensor | dict[str, torch.Tensor], ac_model: SpectProjector, mu_map: np.ndarray,
    config: SimulationConfig, expected: dict[str, torch.Tensor] | None = None,
) -> dict[str, np.ndarray]:
    """NC and CT-AC OSEM of one acquisition (the photopeak, or every window by name) with the run's
    reconstruction settings; with the ``expected`` windows (no Poisson draw) also their CT-AC,
    ``ac_expected``."""
    volumes = reconstruct_nc_ac(projections, ac_model, mu_map, config.protocol, config.spacing_mm, config.recon)
    if expected is not None:
        volumes["ac_expected"] = reconstruct_ac(expected, ac_model, mu_map, config.protocol, config.spacing_mm,
                                                config.recon)
    return volumes


def cohort_study(seed: int, index: int, state: str, config: SimulationConfig) -> tuple[dict, dict, dict]:
    """Study ``state`` of patient ``index`` of the cohort of ``seed``, exactly as ``spectac
    simulate`` makes it (the same bytes, whatever the cohort's size): (volumes, info, patient
    parameters)."""
    torch.set_num_threads(1)
    params = config_patient(seed, index, config)
    config = replace(config, protocol=study_protocol(seed, index, config))
    study_seed = np.random.SeedSequence([seed, index, STATES.index(state), 1])
    volumes, info = simulate_study(params, state, config, np.random.default_rng(study_seed))
    return volumes, info, params.to_dict()


def _write_simulated_study(out: Path, case_id: str, volumes: dict, info: dict, params: dict, config) -> None:
    spacing = config.spacing_mm
    vols = {name: Volume.centred(arr, spacing) for name, arr in volumes.items()}
    lv = dict(info["lv"])
    lv["phantom"] = {"params": params, "counts": info["counts"], "measured_counts": info["measured_counts"],
                     "mu_shift_mm": list(info["mu_shift_mm"]), "scatter_fraction": info["scatter_fraction"]}
    write_study(out, case_id, vols, lv=lv, projections=window_projections(info["windows"], config.protocol))
    cache_scatter_image(out, case_id)


def window_projections(windows: dict[str, np.ndarray], protocol: Protocol) -> tuple[dict, dict]:
    """(counts, keV bounds) of the acquired windows, for projections.npz."""
    bounds = {w.name: (w.lower_kev, w.upper_kev) for w in protocol.windows}
    if "photopeak" not in bounds:  # a protocol without its table: the standard 20% photopeak
        bounds["photopeak"] = (126.0, 154.0)
    return windows, {name: bounds[name] for name in windows}


def _case_rows(seed: int, patients: int, config: SimulationConfig) -> list[Case]:
    ids = [f"P{i:03d}" for i in range(patients)]
    splits = split_patients(ids, config.split, seed)
    cases = []
    for i, pid in enumerate(ids):
        params = config_patient(seed, i, config)
        protocol = study_protocol(seed, i, config)
        defects = params.defects
        for state in STATES:
            severity = max((d.stress_severity if state == "stress" else d.rest_severity for d in defects), default=0.0)
            cases.append(
                Case(
                    case_id=f"{pid}_{state}",
                    patient_id=pid,
                    state=state,
                    sex=params.sex,
                    bmi=params.bmi,
                    defect_type="+".join(d.type for d in defects) or "none",
                    defect_territory="+".join(d.territory for d in defects),
                    defect_severity=round(severity, 4),
                    defect_extent=None,
                    split=splits[pid],
                    stress_type=params.stress_type,
                    dose_protocol=params.dose_protocol,
                    orbit_deg=protocol.arc_deg,
                    collimator=collimator_key(protocol),
                )
            )
    return cases


def _dataset_meta(source: str, seed: int, config: SimulationConfig, **made_from: Any) -> dict[str, Any]:
    """dataset.json of a simulated dataset: how it was made (the seed checked first)."""
    if seed < 0:
        raise SpectacError(f"--seed must be a non-negative integer, got {seed}")
    return {"source": source, "spectac_version": __version__, "seed": seed, **made_from,
            "config": config.to_dict(), "protocol": config.protocol.to_dict()}


def simulate_cohort(
    out: str | Path, patients: int, seed: int, config: SimulationConfig, workers: int = 1, executor: Any = None
) -> dict[str, int]:
    """Simulate ``patients`` patients (a stress and a rest study each) into the dataset ``out``.

    Studies already present are skipped, so an interrupted run resumes. Returns counts of studies
    written and skipped.
    """
    if patients < 1:
        raise SpectacError(f"--patients must be at least 1, got {patients}")
    if workers < 1:
        raise SpectacError(f"--workers must be at least 1, got {workers}")
    out = Path(out)
    meta = _dataset_meta("simulation", seed, config, patients=patients)
    check_writable_dataset_folder(out)
    check_same_dataset(out, meta)
    cases = _case_rows(seed, patients, config)
    write_manifest(out, meta, cases)
    todo = [(i, state) for i in range(patients) for state in STATES if not study_is_complete(out, f"P{i:03d}_{state}")]
    skipped = 2 * patients - len(todo)
    if workers == 1 and executor is None:
        for i, state in track(todo, "simulating studies", total=len(todo)):
            volumes, info, params = cohort_study(seed, i, state, config)
            _write_simulated_study(out, f"P{i:03d}_{state}", volumes, info, params, config)
    else:
        with (executor or ProcessPoolExecutor)(max_workers=workers) as pool:  # executor: spectac.engine
            futures = {pool.submit(cohort_study, seed, i, state, config): (i, state) for i, state in todo}
            for future in track(as_completed(futures), "simulating studies", total=len(todo)):
                i, state = futures[future]
                volumes, info, params = future.result()
                _write_simulated_study(out, f"P{i:03d}_{state}", volumes, info, params, config)
    write_manifest(out, meta, _with_extents(out, cases))
    return {"written": len(todo), "skipped": skipped}


def _with_extents(out: Path, cases: list[Case]) -> list[Case]:
    """The cases with ``defect_extent`` (fraction of the LV myocardium inside the defect of the
    study, from its lv.json) filled in for studies with a defect."""
    dataset = Dataset.open(out)
    for case in cases:
        lv = dataset.lv(case.case_id) if case.defect_type != "none" else None
        if lv is not None:
            extent = sum(float(d.get("extent", 0.0)) for d in lv.get("defects", []) if d.get("severity", 0) > 0)
            case.defect_extent = round(extent, 4)
    return cases


def simulate_user_phantom(
    activity_path: str | Path, mu_path: str | Path, out: str | Path, config: SimulationConfig, seed: int = 0
) -> Path:
    """Acquire and reconstruct a user's own phantom (e.g. from XCAT) into a one-study dataset.

    Both NIfTI files must share one grid; they are resampled onto the simulation grid (64^3 at
    the protocol's pixel size, centred on the phantom's centre).
    """
    activity = read_nifti(activity_path)
    mu = read_nifti(mu_path)
    if activity.shape != mu.shape:
        raise SpectacError(f"{mu_path}: shape {mu.shape} does not match the activity's {activity.shape}")
    if not activity.same_grid(mu, atol_mm=0.01):
        raise SpectacError(f"{mu_path}: its affine differs from the activity's; both must share one grid")
    if activity.array.min() < 0:
        raise SpectacError(f"{activity_path}: activity must not be negative")
    if mu.array.min() < 0 or mu.array.max() > 2.0:
        raise SpectacError(f"{mu_path}: mu values must lie in [0, 2] 1/cm at 140 keV (got {mu.array.max():.3g})")
    if activity.array.max() <= 0:
        raise SpectacError(f"{activity_path}: the activity is all zero")
    out = Path(out)
    meta = _dataset_meta("user-phantom", seed, config, activity=str(Path(activity_path).resolve()),
                         mu=str(Path(mu_path).resolve()))
    # sex unknown ("U"): quantification then uses the pooled normal limits
    case = Case(case_id="user_stress", patient_id="user", state="stress", sex="U", split="test")
    if has_manifest(out):
        check_same_dataset(out, meta, keys=("source", "seed", "activity", "mu", "config"))
        if study_is_complete(out, case.case_id):
            return out
    check_writable_dataset_folder(out)
    act = resample_to_simulation_grid(activity, config, mean_preserving=True)
    mu_map = resample_to_simulation_grid(mu, config, mean_preserving=False)
    rng = np.random.default_rng(np.random.SeedSequence([seed, 424242]))
    counts = config.counts or DEFAULT_COUNTS["stress"][0]
    torch.set_num_threads(1)
    expected: dict[str, torch.Tensor] | None = {} if config.expected_ac else None
    truth, mu_map, windows, ac_model, _ = acquire_counts(act, mu_map, counts, config.protocol, config.spacing_mm, rng,
                                                         expected)
    volumes = reconstruct_pair(windows, ac_model, mu_map, config, expected)
    volumes.update(mu=mu_map, truth=truth)
    window_counts = {name: p.numpy() for name, p in windows.items()}
    write_study(out, case.case_id, {k: Volume.centred(v, config.spacing_mm) for k, v in volumes.items()},
                projections=window_projections(window_counts, config.protocol))
    write_manifest(out, meta, [case])
    cache_scatter_image(out, case.case_id)
    return out


def resample_to_simulation_grid(volume: Volume, config: SimulationConfig, mean_preserving: bool) -> np.ndarray:
    """Resample a volume onto the simulation grid centred on the volume's own centre.

    Downsampling first smooths with a Gaussian matched to the size ratio so small structures keep
    their mean value (partial volume) instead of aliasing.
    """
    from spectac import resample

    array = volume.array
    if mean_preserving:
        array = resample.lowpass_partial_volume(array, volume.spacing, config.spacing_mm)
    centre = volume.point_of((np.asarray(volume.shape) - 1) / 2)
    out = resample.onto_centred_grid(array, volume.affine_lps, config.shape, config.spacing_mm, centre, order=1)
    return np.maximum(out, 0).astype(np.float32)


def default_workers() -> int:
    return max(1, min(4, os.cpu_count() or 1))
