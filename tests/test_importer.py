"""`spectac import`: patient-wise splits, what is read from the input folders, where the output may
go, and pseudonymised patient IDs; pixels and geometry of the imported series (resampling, LPS axes,
NC told from AC), and what it refuses."""

from __future__ import annotations

import gzip
import json
import os
import shutil
import stat
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from dicom_helpers import blob_volume, rotation, tiny_dataset, tree_hash
from typer.testing import CliRunner

from spectac.cli import app
from spectac.io.dataset import Dataset
from spectac.io.dicom import export_dataset_dicom, new_context, write_dicom_series
from spectac.io.importer import import_dicom_dataset, state_of
from spectac.io.pseudonym import pseudonym
from spectac.simulate import SimulationConfig, _case_rows
from spectac.splitting import split_patients
from spectac.volume import Volume

runner = CliRunner()


@pytest.fixture(scope="module")
def ten_patients(tmp_path_factory) -> Path:
    """DICOM export of 10 patients with a rest and a stress study each: OUT/nc, OUT/ac, OUT/mu."""
    root = tmp_path_factory.mktemp("ten")
    tiny_dataset(root / "sim", patients=10, shape=(16, 16, 16))
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
    tiny_dataset(root / "sim", patients=2, shape=(16, 16, 16))
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
               "--out", str(tmp_path / "ds"), "--keep-patient-ids"]
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


# ---- pseudonymised patient ids ----------------------------------------------------------------

MRN, NAME = "MRN-4711-0815", "DOE^JANE-XQZ"


def clinic_export(root: Path) -> Path:
    """A rest and a stress NC/AC pair of one patient, in folders named after the MRN (as clinics do)."""
    for i, state in enumerate(("REST", "STRESS")):
        study = f"1.2.826.0.1.3680043.8.498.6{i}"
        ctx = new_context(MRN, study, study + ".1", patient_name=NAME, sex="F", study_description=f"MPI {state}")
        nc = blob_volume(shape=(16, 16, 16), seed=i)
        write_dicom_series(nc, ctx, root / "nc" / MRN / state, f"{state} NC", derived=False, uid_seed=f"n{i}")
        write_dicom_series(nc.with_array(nc.array * 2), ctx, root / "ac" / MRN / state, f"{state} AC",
                           derived=False, uid_seed=f"a{i}")
    return root


def all_bytes(folder: Path) -> bytes:
    """Every file of a folder, gzipped ones uncompressed, and every path name."""
    chunks = []
    for path in sorted(folder.rglob("*")):
        chunks.append(str(path.relative_to(folder)).encode())
        if path.is_file():
            data = path.read_bytes()
            chunks.append(gzip.decompress(data) if path.suffix == ".gz" else data)
    return b"\n".join(chunks)


def import_clinic(src: Path, out: Path, *extra: str):
    result = runner.invoke(app, ["import", "--nc", str(src / "nc"), "--ac", str(src / "ac"), "--out", str(out),
                                 *extra])
    assert result.exit_code == 0, result.output
    return result


def test_patient_ids_are_pseudonymised_by_default_and_appear_nowhere(tmp_path, monkeypatch):
    src = clinic_export(tmp_path / "export")
    key_file = tmp_path / "home" / ".config" / "spectac" / "pseudonym.key"
    monkeypatch.setenv("SPECTAC_PSEUDONYM_KEY_FILE", str(key_file))
    result = import_clinic(src, tmp_path / "ds")
    assert f"created a new key in {key_file}" in result.output  # the CLI says where the key is
    assert key_file.is_file() and stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert len(bytes.fromhex(key_file.read_text().strip())) == 32
    dataset = Dataset.open(tmp_path / "ds")
    (patient,) = {c.patient_id for c in dataset.cases}
    assert patient == pseudonym(MRN, key_file.read_text().strip().encode())
    assert sorted(c.case_id for c in dataset.cases) == [f"{patient}_rest", f"{patient}_stress"]
    everything = all_bytes(tmp_path / "ds")
    for secret in (MRN, NAME, "4711-0815", "DOE", "XQZ", str(src)):
        assert secret.encode().lower() not in everything.lower(), secret


def test_the_same_key_gives_the_same_pseudonym_another_key_another(tmp_path):
    src = clinic_export(tmp_path / "export")
    key_a, key_b = tmp_path / "a.key", tmp_path / "b.key"
    import_clinic(src, tmp_path / "one", "--key-file", str(key_a))
    import_clinic(src, tmp_path / "two", "--key-file", str(key_a))
    import_clinic(src, tmp_path / "three", "--key-file", str(key_b))
    ids = {name: {c.patient_id for c in Dataset.open(tmp_path / name).cases} for name in ("one", "two", "three")}
    assert ids["one"] == ids["two"] and ids["one"] != ids["three"]
    assert all(len(v) == 1 and next(iter(v)).startswith("p-") for v in ids.values())
    assert stat.S_IMODE(key_b.stat().st_mode) == 0o600


def test_keep_patient_ids_opts_out(tmp_path):
    src = clinic_export(tmp_path / "export")
    import_clinic(src, tmp_path / "ds", "--keep-patient-ids")
    assert {c.patient_id for c in Dataset.open(tmp_path / "ds").cases} == {MRN}


def test_a_failed_import_creates_no_key_and_a_bad_key_is_one_line(tmp_path):
    (tmp_path / "empty").mkdir()
    key = tmp_path / "k" / "pseudonym.key"
    result = runner.invoke(app, ["import", "--nc", str(tmp_path / "empty"), "--ac", str(tmp_path / "empty"),
                                 "--out", str(tmp_path / "ds"), "--key-file", str(key)])
    assert result.exit_code == 2 and not key.exists()
    key.parent.mkdir()
    key.write_text("short")
    src = clinic_export(tmp_path / "export")
    result = runner.invoke(app, ["import", "--nc", str(src / "nc"), "--ac", str(src / "ac"),
                                 "--out", str(tmp_path / "ds"), "--key-file", str(key)])
    assert result.exit_code == 2 and "at least 16" in result.output
    assert not (tmp_path / "ds").exists()


# ---- series no SPECT camera makes --------------------------------------------------------------


def add_pair(root: Path, nc, study: str, patient: str = "P-ODD", ac=None) -> None:
    ctx = new_context(patient, study, study + ".1", sex="M", study_description="MPI REST")
    write_dicom_series(nc, ctx, root / "nc" / patient, "REST NC", derived=False, uid_seed=f"n{study}")
    write_dicom_series(nc.with_array(nc.array * 2) if ac is None else ac, ctx, root / "ac" / patient, "REST AC",
                       derived=False, uid_seed=f"a{study}")


@pytest.mark.parametrize(
    ("which", "volume", "reason"),
    [
        ("nc", blob_volume(shape=(16, 16, 8)), "NC series: 16x16x8 voxels: fewer than 16"),
        ("nc", blob_volume(shape=(16, 16, 16), spacing=(0.5, 0.5, 0.5)), "NC series: voxel size 0.5 x 0.5 x 0.5 mm"),
        ("ac", blob_volume(shape=(16, 16, 16)).with_array(blob_volume(shape=(16, 16, 16)).array - 300),
         "AC series: values down to"),
    ],
)
def test_import_skips_a_pair_with_a_series_no_spect_camera_makes(tmp_path, which, volume, reason):
    """The pair is left out with the reason in the summary (and on the terminal); the rest is imported."""
    src = clinic_export(tmp_path / "export")
    good = blob_volume(shape=(16, 16, 16), seed=5)
    add_pair(src, volume if which == "nc" else good, "1.2.826.0.1.3680043.8.498.99",
             ac=volume if which == "ac" else good)
    summary = import_dicom_dataset(src / "nc", src / "ac", tmp_path / "ds", keep_patient_ids=True)
    assert summary["studies"] == 2 and {c.patient_id for c in Dataset.open(tmp_path / "ds").cases} == {MRN}
    (entry,) = summary["skipped"]
    assert entry["reason"].startswith(reason) and entry["reason"].endswith("pair not imported")
    assert "P-ODD" in entry["path"] and f"/{which}/" in entry["path"]
    result = runner.invoke(app, ["import", "--nc", str(src / "nc"), "--ac", str(src / "ac"),
                                 "--out", str(tmp_path / "cli"), "--keep-patient-ids"])
    assert result.exit_code == 0, result.output
    assert "1 entries of the input folders were not read" in result.output and reason in " ".join(result.output.split())


def test_import_with_no_plausible_pair_is_refused_in_one_line(tmp_path):
    src = tmp_path / "export"
    add_pair(src, blob_volume(shape=(16, 16, 8)), "1.2.826.0.1.3680043.8.498.98")
    result = runner.invoke(app, ["import", "--nc", str(src / "nc"), "--ac", str(src / "ac"),
                                 "--out", str(tmp_path / "ds"), "--keep-patient-ids"])
    assert result.exit_code == 2
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "no pair left to import" in lines[0] and "fewer than 16" in lines[0]
    assert not (tmp_path / "ds").exists()


def test_an_ac_series_on_another_grid_is_imported_onto_the_nc_grid(tmp_path):
    """Only the NC grid must be a SPECT camera's: the AC is resampled onto it."""
    src = tmp_path / "export"
    nc = blob_volume(shape=(16, 16, 16))
    add_pair(src, nc, "1.2.826.0.1.3680043.8.498.97", ac=blob_volume(shape=(120, 120, 120), spacing=(0.9, 0.9, 0.9)))
    summary = import_dicom_dataset(src / "nc", src / "ac", tmp_path / "ds", keep_patient_ids=True)
    assert summary["studies"] == 1 and summary["skipped"] == []


# ---- import of DICOM series: pixels, geometry, refusals ------------------------------------------


def test_import_from_one_folder_tells_nc_from_ac(tmp_path):
    """A clinic exporting NC and AC series into one folder: told apart by Corrected Image / description."""
    source = Dataset.open(tiny_dataset(tmp_path / "sim", patients=1))
    export_dataset_dicom(source.root, tmp_path / "dcm")
    together = tmp_path / "together"
    for name in ("nc", "ac"):
        shutil.copytree(tmp_path / "dcm" / name, together / name)
    result = runner.invoke(app, ["import", "--nc", str(together), "--ac", str(together), "--out", str(tmp_path / "ds"),
                                 "--keep-patient-ids"])
    assert result.exit_code == 0, result.output
    imported = Dataset.open(tmp_path / "ds")
    assert sorted(c.state for c in imported.cases) == ["rest", "stress"]
    for case in imported.cases:
        original = f"{case.patient_id.lower()}_{case.state}"
        for name in ("nc", "ac"):
            a, b = imported.load(case.case_id, name), source.load(original, name)
            assert np.abs(a.array - b.array).max() <= b.array.max() / 30000, (case.case_id, name)


def write_pair(tmp_path, nc, ac, study, state, sex="O"):
    """Write NC and AC as two NM series of one study, in tmp_path/nc/s1 and tmp_path/ac/s1."""
    ctx = new_context("PX", study, study + ".1", sex=sex)
    write_dicom_series(nc, ctx, tmp_path / "nc/s1", f"{state} NC", derived=False, uid_seed="n")
    write_dicom_series(ac, ctx, tmp_path / "ac/s1", f"{state} AC", derived=False, uid_seed="a")


def import_pair(tmp_path):
    """`spectac import` of the pair that write_pair wrote, into tmp_path/ds."""
    return runner.invoke(app, ["import", "--nc", str(tmp_path / "nc"), "--ac", str(tmp_path / "ac"),
                               "--out", str(tmp_path / "ds")])


def test_import_resamples_ac_onto_the_nc_grid(tmp_path):
    """A linear field survives trilinear resampling exactly: any offset or axis mix-up would show."""
    grid = blob_volume(shape=(16, 16, 16))
    world = grid.world_coordinates()
    linear = 500 + world @ np.array([1.0, 2.0, -1.5])
    nc = grid.with_array(linear)
    ac_grid = Volume(np.zeros((30, 28, 26), np.float32), (4.0, 4.5, 5.0), origin=(-58.0, -62.0, -60.0),
                     direction=rotation([1, 1, 0], 12))
    ac = ac_grid.with_array(500 + ac_grid.world_coordinates() @ np.array([1.0, 2.0, -1.5]))
    write_pair(tmp_path, nc, ac, "1.2.826.0.1.3680043.8.498.77", "REST", sex="M")
    result = import_pair(tmp_path)
    assert result.exit_code == 0, result.output
    dataset = Dataset.open(tmp_path / "ds")
    (case,) = dataset.cases
    assert case.state == "rest" and case.sex == "M"
    back = dataset.load(case.case_id, "ac")
    assert back.same_grid(nc)
    inside = back.array > 0  # voxels of the NC grid that the AC field of view covers
    assert inside.mean() > 0.5
    assert np.abs(back.array[inside] - linear[inside]).max() < 0.05


def test_state_from_descriptions():
    assert state_of("STRESS IRAC") == "stress"
    assert state_of("Rest Tc99m MIBI") == "rest"
    assert state_of("Myocardial SPECT", "regadenoson MPI") == "stress"
    assert state_of("SPECT IRAC") == "unknown"


def test_import_stores_volumes_with_lps_axes(tmp_path):
    """An NM series whose frames run head to feet and rows anterior to posterior reversed (a common
    vendor layout) is stored with axes along +x, +y, +z, the order the methods are made for."""
    nc = blob_volume(direction=np.diag([1.0, -1.0, -1.0]), origin=(0.0, 50.0, 100.0))
    ac = nc.with_array(nc.array * 2)
    write_pair(tmp_path, nc, ac, "1.2.826.0.1.3680043.8.498.81", "STRESS", sex="F")
    result = import_pair(tmp_path)
    assert result.exit_code == 0, result.output
    dataset = Dataset.open(tmp_path / "ds")
    (case,) = dataset.cases
    stored_nc, stored_ac = dataset.load(case.case_id, "nc"), dataset.load(case.case_id, "ac")
    np.testing.assert_allclose(stored_nc.direction, np.eye(3), atol=1e-9)
    assert stored_ac.same_grid(stored_nc)
    for index in ([0, 0, 0], [3, 9, 17], [15, 17, 19]):  # the same value at the same place
        point = nc.point_of(np.array(index))
        mapped = tuple(np.rint(stored_nc.index_of(point)).astype(int))
        assert stored_nc.array[mapped] == pytest.approx(nc.array[tuple(index)], rel=1e-3, abs=0.05)
        assert stored_ac.array[mapped] == pytest.approx(ac.array[tuple(index)], rel=1e-3, abs=0.05)


def test_import_refuses_ac_of_another_geometry(tmp_path):
    nc = blob_volume()
    far = Volume(nc.array, nc.spacing, origin=(900.0, 0.0, 0.0))
    write_pair(tmp_path, nc, far, "1.2.826.0.1.3680043.8.498.90", "STRESS")
    before = tree_hash(tmp_path / "ac")
    result = import_pair(tmp_path)
    message = " ".join(result.output.split())
    assert result.exit_code == 2, result.output
    assert "different geometry" in message and str(tmp_path / "ac/s1") in message
    assert not (tmp_path / "ds").exists()
    assert tree_hash(tmp_path / "ac") == before


def test_import_refuses_an_existing_dataset_and_empty_folders(tmp_path):
    (tmp_path / "empty").mkdir()
    result = runner.invoke(app, ["import", "--nc", str(tmp_path / "empty"), "--ac", str(tmp_path / "empty"),
                                 "--out", str(tmp_path / "ds")])
    assert result.exit_code == 2 and "no DICOM series" in result.output
    assert not (tmp_path / "ds").exists()
    (tmp_path / "ds").mkdir()
    (tmp_path / "ds" / "dataset.json").write_text(json.dumps({"x": 1}))
    result = runner.invoke(app, ["import", "--nc", str(tmp_path / "empty"), "--ac", str(tmp_path / "empty"),
                                 "--out", str(tmp_path / "ds")])
    assert result.exit_code == 2 and "already exists" in result.output
    assert json.loads((tmp_path / "ds" / "dataset.json").read_text()) == {"x": 1}

