"""`spectac export-dicom` (io/dicom/export.py): a dataset exported and imported back."""

from __future__ import annotations

import numpy as np
import pytest
from dicom_helpers import tiny_dataset
from typer.testing import CliRunner

from spectac.cli import app
from spectac.io.dataset import Dataset

runner = CliRunner()


@pytest.mark.parametrize("mu_as", ["nm", "ct"])
def test_export_then_import_gives_the_dataset_back(tmp_path, mu_as):
    source = Dataset.open(tiny_dataset(tmp_path / "sim"))
    result = runner.invoke(app, ["export-dicom", "--data", str(source.root), "--out", str(tmp_path / "dcm"),
                                 "--mu-as", mu_as])
    assert result.exit_code == 0, result.output
    out = tmp_path / "imported"
    result = runner.invoke(app, ["import", "--nc", str(tmp_path / "dcm/nc"), "--ac", str(tmp_path / "dcm/ac"),
                                 "--mu", str(tmp_path / "dcm/mu"), "--out", str(out), "--split", "1/1/1",
                                 "--keep-patient-ids"])
    assert result.exit_code == 0, result.output
    imported = Dataset.open(out)
    assert imported.meta["source"] == "import"
    assert len(imported.cases) == len(source.cases)
    by_patient = {}
    for case in imported.cases:
        by_patient.setdefault(case.patient_id, set()).add(case.split)
        original = source.case(f"{case.patient_id.lower()}_{case.state}")
        assert case.sex == original.sex and case.bmi == pytest.approx(original.bmi, rel=1e-3)
        for name in ("nc", "ac", "mu"):
            a, b = imported.load(case.case_id, name), source.load(original.case_id, name)
            assert a.same_grid(b)
            scale = float(np.abs(b.array).max())
            tolerance = scale / 30000 if name != "mu" else 2e-3  # mu through HU: one HU is 1.5e-4 /cm
            assert np.abs(a.array - b.array).max() <= tolerance, (name, mu_as)
    assert all(len(splits) == 1 for splits in by_patient.values())  # rest and stress on one side
    assert {s for splits in by_patient.values() for s in splits} == {"train", "val", "test"}


def test_a_simulated_cohort_survives_export_and_import(tmp_path):
    """A clinic's workflow on a spectac-simulated patient: its NC, CT-AC and mu-map written as
    GE-style DICOM series, imported back as a training dataset: same volumes, same study pairs."""
    from spectac.simulate import SimulationConfig, simulate_cohort

    config = SimulationConfig.build(iterations=1, subsets=2, split="0/0/1")
    simulate_cohort(tmp_path / "sim", patients=1, seed=4, config=config)
    source = Dataset.open(tmp_path / "sim")
    result = runner.invoke(app, ["export-dicom", "--data", str(source.root), "--out", str(tmp_path / "dcm"),
                                 "--mu-as", "ct"])
    assert result.exit_code == 0, result.output
    result = runner.invoke(app, ["import", "--nc", str(tmp_path / "dcm/nc"), "--ac", str(tmp_path / "dcm/ac"),
                                 "--mu", str(tmp_path / "dcm/mu"), "--out", str(tmp_path / "ds"),
                                 "--keep-patient-ids"])
    assert result.exit_code == 0, result.output
    imported = Dataset.open(tmp_path / "ds")
    assert sorted(c.state for c in imported.cases) == ["rest", "stress"]
    assert imported.meta["protocol"]["arc_deg"] == 180.0
    for case in imported.cases:
        original = source.case(f"{case.patient_id}_{case.state}")
        assert case.sex == original.sex
        for name in ("nc", "ac", "mu"):
            a, b = imported.load(case.case_id, name), source.load(original.case_id, name)
            assert a.same_grid(b)
            tolerance = float(np.abs(b.array).max()) / 30000 if name != "mu" else 2e-3
            assert np.abs(a.array - b.array).max() <= tolerance, (case.case_id, name)

