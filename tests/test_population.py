"""Clinical populations, stress types, dose protocols, acquisition protocols and misregistration."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
from scipy import ndimage

from spectac.acquisition.collimators import COLLIMATORS, find_collimator
from spectac.acquisition.protocol import Protocol
from spectac.io.dataset import Dataset, write_manifest
from spectac.phantom.population import PatientParams, draw_patient
from spectac.reconstruction.osem import ReconConfig
from spectac.simulate import (
    SimulationConfig,
    _case_rows,
    collimator_key,
    patient_params,
    simulate_study,
    study_protocol,
)


def _cohort(population: str, n: int = 400) -> list[PatientParams]:
    return [patient_params(11, i, None, None, population) for i in range(n)]


def test_referral_has_multivessel_and_mixed_disease_low_risk_is_milder() -> None:
    referral, low = _cohort("referral"), _cohort("low-risk")
    sick = [p for p in referral if p.defects]
    multivessel = np.mean([len(p.defects) > 1 for p in sick])
    assert 0.25 < multivessel < 0.45  # 35% of the diseased by the preset
    assert all(len({d.territory for d in p.defects}) == len(p.defects) for p in sick)  # no territory twice
    mixed = [d for p in sick for d in p.defects if d.type == "mixed"]
    assert len(mixed) > 20 and all(0 < d.rest_severity < d.stress_severity for d in mixed)
    assert all(d.rest_severity == 0 for p in sick for d in p.defects if d.type == "ischemia")
    assert not any(len(p.defects) > 1 for p in low)
    assert np.mean([bool(p.defects) for p in low]) < np.mean([bool(p.defects) for p in referral]) - 0.3
    severity = {name: np.mean([d.stress_severity for p in c for d in p.defects]) for name, c in
                (("referral", referral), ("low", low))}
    assert severity["low"] < severity["referral"] - 0.05
    assert not any(d.type == "mixed" for p in low for d in p.defects)
    assert {p.population for p in low} == {"low-risk"} and {p.population for p in referral} == {"referral"}


def test_bmi_shares_match_the_us_adult_population() -> None:
    """NHANES 2017-2018 (Hales et al. 2020): 42.4% BMI >= 30, 9.2% >= 40."""
    rng = np.random.default_rng(0)
    bmi = np.array([draw_patient(rng, "X").bmi for _ in range(2000)])
    assert bmi.min() >= 18.0 and bmi.max() <= 50.0
    assert abs(np.mean(bmi >= 30) - 0.42) < 0.04
    assert abs(np.mean(bmi >= 40) - 0.09) < 0.025


def test_vasodilator_stress_raises_splanchnic_uptake() -> None:
    patients = _cohort("referral", 300)
    by_type = {t: [p.uptake["stress"]["liver"] for p in patients if p.stress_type == t] for t in ("vasodilator", "exercise")}
    assert 0.35 < len(by_type["vasodilator"]) / len(patients) < 0.65
    assert np.mean(by_type["vasodilator"]) > np.mean(by_type["exercise"]) + 0.5
    assert np.mean(np.array(by_type["vasodilator"]) >= 1.0) > 0.5 > np.mean(np.array(by_type["exercise"]) >= 1.0)
    assert {p.dose_protocol for p in patients} == {"one-day", "two-day"}


def test_old_params_and_cases_still_load(tmp_path: Path) -> None:
    new = patient_params(0, 0)
    old = {k: v for k, v in new.to_dict().items() if k not in ("stress_type", "dose_protocol", "population")}
    for d in old["defects"]:
        d["type"] = "infarct"
    loaded = PatientParams.from_dict(old)
    assert loaded.stress_type == "" and loaded.dose_protocol == "" and loaded.defects == [
        dataclasses.replace(d, type="infarct") for d in new.defects]
    (tmp_path / "dataset.json").write_text('{"format_version": 1}')
    (tmp_path / "cases.csv").write_text("case_id,patient_id,state,sex,bmi,defect_type,defect_territory,"
                                        "defect_severity,defect_extent,split\nP000_rest,P000,rest,F,24,none,,0,,train\n")
    case = Dataset.open(tmp_path).case("P000_rest")
    assert case.stress_type == "" and case.orbit_deg is None and case.collimator == ""
    old_protocol = Protocol().to_dict()
    del old_protocol["collimator"]["gap_mm"]
    assert Protocol.from_dict(old_protocol).collimator.gap_mm == 0.0  # simulated before the gap


def test_collimator_fwhm_at_10cm_is_the_published_figure() -> None:
    assert float(Protocol().collimator.fwhm_mm(100.0)) == pytest.approx(7.4, abs=0.05)  # GE LEHR
    published = {"GE-LEHR": 7.4, "SIEMENS-LEHR": 7.5, "SIEMENS-LEUHR": 6.0}
    for key, fwhm in published.items():
        assert float(find_collimator(key).collimator().fwhm_mm(100.0)) == pytest.approx(fwhm, abs=0.05)
    assert sum(1 for c in COLLIMATORS if c.published_fwhm_10cm_mm) == 3
    # the geometric resolution grows linearly with distance: sharper at the face than at 10 cm
    assert float(Protocol().collimator.fwhm_mm(0.0)) < 0.7 * 7.4


def test_a_mixed_cohort_records_each_studys_protocol(tmp_path: Path) -> None:
    config = SimulationConfig(protocol_mix=True)
    cases = _case_rows(2, 60, config)
    assert {c.orbit_deg for c in cases} == {180.0, 360.0}
    assert len({c.collimator for c in cases}) == 3
    for i in (0, 7, 31):
        protocol = study_protocol(2, i, config)
        rows = [c for c in cases if c.patient_id == f"P{i:03d}"]
        assert {(c.orbit_deg, c.collimator) for c in rows} == {(protocol.arc_deg, collimator_key(protocol))}
    write_manifest(tmp_path, {"source": "test"}, cases)
    back = Dataset.open(tmp_path).cases
    assert [(c.orbit_deg, c.collimator, c.stress_type, c.dose_protocol) for c in back] == [
        (c.orbit_deg, c.collimator, c.stress_type, c.dose_protocol) for c in cases]
    assert {c.collimator for c in _case_rows(2, 5, SimulationConfig())} == {"GE-LEHR"}


def test_misregistration_moves_the_saved_mu_and_not_the_truth() -> None:
    small = SimulationConfig(protocol=Protocol(n_views=12, pixel_mm=13.6), recon=ReconConfig(iterations=1, subsets=3),
                             shape=(32, 32, 32), supersample=1)
    params = patient_params(4, 1)
    runs = {}
    for sd in (0.0, 12.0):
        config = dataclasses.replace(small, misregistration_mm=sd)
        runs[sd] = simulate_study(params, "stress", config, np.random.default_rng(np.random.SeedSequence(9)))
    (still, info0), (moved, info1) = runs[0.0], runs[12.0]
    assert info0["mu_shift_mm"] == (0.0, 0.0, 0.0)
    shift = np.asarray(info1["mu_shift_mm"])
    assert np.abs(shift).max() > 3.0
    np.testing.assert_array_equal(still["truth"], moved["truth"])
    np.testing.assert_array_equal(still["nc"], moved["nc"])
    assert not np.array_equal(still["ac"], moved["ac"])
    # the body's centre of mass in mu moved by the drawn shift (LPS mm)
    com = [np.asarray(ndimage.center_of_mass(v["mu"])) * 13.6 for v in (still, moved)]
    np.testing.assert_allclose(com[1] - com[0], shift, atol=1.5)
