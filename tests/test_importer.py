"""`spectac import`: patient-wise splits, what is read from the input folders, where the output may
go, and pseudonymised patient IDs. (Pixel and geometry checks of the import are in test_dicom.py.)"""

from __future__ import annotations

import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from test_dicom import tiny_dataset, tree_hash
from typer.testing import CliRunner

from spectac.cli import app
from spectac.io.dataset import Dataset
from spectac.io.dicom import export_dataset_dicom
from spectac.io.importer import import_dicom_dataset
from spectac.simulate import SimulationConfig, _case_rows
from spectac.splitting import split_patients

runner = CliRunner()


@pytest.fixture(scope="module")
def ten_patients(tmp_path_factory) -> Path:
    """DICOM export of 10 patients with a rest and a stress study each: OUT/nc, OUT/ac, OUT/mu."""
    root = tmp_path_factory.mktemp("ten")
    tiny_dataset(root / "sim", patients=10, shape=(8, 8, 8))
    export_dataset_dicom(root / "sim", root / "dcm")
    return root / "dcm"


# ---- splits ----------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", [0, 1, 2, 7])
def test_import_splits_patients_in_the_asked_proportions(ten_patients, tmp_path, seed):
    out = tmp_path / "ds"
    summary = import_dicom_dataset(ten_patients / "nc", ten_patients / "ac", out, split="40/40/20", seed=seed)
    dataset = Dataset.open(out)
    assert summary["studies"] == 20 and summary["patients"] == 10
    sides: dict[str, set[str]] = {}
    for case in dataset.cases:
        sides.setdefault(case.patient_id, set()).add(case.split)
    assert all(len(s) == 1 for s in sides.values())  # no patient spans two splits
    per_patient = Counter(next(iter(s)) for s in sides.values())
    assert per_patient == {"train": 4, "val": 4, "test": 2}


def _old_simulate_assign_splits(patient_ids, proportions, seed):
    """simulate.assign_splits as it was before the shared splitter (kept here to pin its output)."""
    order = np.random.default_rng(np.random.SeedSequence([seed, 7919])).permutation(len(patient_ids))
    n = len(patient_ids)
    n_train = round(proportions[0] * n)
    n_val = min(round(proportions[1] * n), n - n_train)
    return {patient_ids[i]: "train" if rank < n_train else ("val" if rank < n_train + n_val else "test")
            for rank, i in enumerate(order)}


@pytest.mark.parametrize("split", ["40/40/20", "0/0/1", "1/1/1", "70/15/15"])
@pytest.mark.parametrize("seed", [0, 3, 101])
def test_simulated_cohorts_keep_their_splits(split, seed):
    config = SimulationConfig.build(split=split)
    for patients in (1, 2, 6, 10, 16, 100):
        ids = [f"P{i:03d}" for i in range(patients)]
        old = _old_simulate_assign_splits(ids, config.split, seed)
        assert split_patients(ids, config.split, seed) == old
        if patients <= 10:  # the cases.csv rows of a simulated cohort (draws phantoms: small only)
            assert {c.patient_id: c.split for c in _case_rows(seed, patients, config)} == old


def test_split_patients_refuses_a_study_list():
    with pytest.raises(ValueError, match="each patient once"):
        split_patients(["P1", "P1", "P2"], (0.4, 0.4, 0.2), 0)


# ---- what is read from the input folders ------------------------------------------------------


def two_patient_export(root: Path) -> Path:
    tiny_dataset(root / "sim", patients=2, shape=(8, 8, 8))
    export_dataset_dicom(root / "sim", root / "dcm")
    return root / "dcm"


def test_import_reads_only_regular_files_and_reports_what_it_skipped(tmp_path):
    """A FIFO in the input folder (reading it would wait forever), a link to a file outside and a
    linked series folder: none is read, all are reported, the import finishes."""
    dcm = two_patient_export(tmp_path)
    # patient 1's NC series move out of --nc and come back as a linked folder and a linked file
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    rest, stress = outside / "a", outside / "b"
    (dcm / "nc" / "p01_rest").rename(rest)
    (dcm / "nc" / "p01_stress").rename(stress)
    (dcm / "nc" / "linked-series").symlink_to(stress, target_is_directory=True)
    (dcm / "nc" / "linked-file.dcm").symlink_to(next(iter(sorted(rest.iterdir()))))
    os.mkfifo(dcm / "nc" / "pipe")
    before = tree_hash(dcm)
    command = [sys.executable, "-m", "spectac.cli", "import", "--nc", str(dcm / "nc"), "--ac", str(dcm / "ac"),
               "--out", str(tmp_path / "ds")]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path), "OMP_NUM_THREADS": "1"}
    result = subprocess.run(command, capture_output=True, text=True, timeout=120, env=env)  # hung before
    assert result.returncode == 0, result.stderr
    message = " ".join(result.stderr.split())
    assert "3 entries of the input folders were not read" in message, message
    assert "a FIFO" in message and "symbolic link" in message
    dataset = Dataset.open(tmp_path / "ds")
    assert {c.patient_id for c in dataset.cases} == {"P00"}  # nothing read through the links
    assert tree_hash(dcm) == before


def test_skipped_entries_are_in_the_summary_with_reasons(tmp_path):
    dcm = two_patient_export(tmp_path)
    (tmp_path / "outside.txt").write_text("x")
    (dcm / "nc" / "link.dcm").symlink_to(tmp_path / "outside.txt")
    (dcm / "nc" / "linked").symlink_to(tmp_path, target_is_directory=True)  # a loop, too
    summary = import_dicom_dataset(dcm / "nc", dcm / "ac", tmp_path / "ds")
    assert sorted(summary["skipped"], key=lambda s: s["path"]) == [
        {"path": str(dcm / "nc" / "link.dcm"), "reason": "symbolic link (not followed)"},
        {"path": str(dcm / "nc" / "linked"), "reason": "symbolic link to a folder (not followed)"},
    ]
    assert summary["studies"] == 4


# ---- where the output may go ------------------------------------------------------------------


@pytest.mark.parametrize("where", ["inside-nc", "inside-ac", "inside-mu", "is-nc", "contains-nc"])
def test_an_output_inside_an_input_is_refused_up_front(tmp_path, where):
    dcm = two_patient_export(tmp_path)
    out = {"inside-nc": dcm / "nc" / "ds", "inside-ac": dcm / "ac" / "sub" / "ds", "inside-mu": dcm / "mu" / "ds",
           "is-nc": dcm / "nc" / ".", "contains-nc": dcm}[where]
    before = tree_hash(dcm)
    result = runner.invoke(app, ["import", "--nc", str(dcm / "nc"), "--ac", str(dcm / "ac"), "--mu", str(dcm / "mu"),
                                 "--out", str(out)])
    assert result.exit_code == 2, result.output
    assert "choose an output outside the input folders" in " ".join(result.output.split())
    assert tree_hash(dcm) == before
