"""DICOM in and out: round trips, dciodvfy, spectac import/export-dicom/correct, and bad input."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pydicom
import pytest
from typer.testing import CliRunner

from spectac.cli import app
from spectac.io.dataset import Case, Dataset, write_manifest, write_study
from spectac.io.dicom import (
    export_dataset_dicom,
    export_study_dicom,
    new_context,
    read_dicom_volume,
    write_dicom_series,
)
from spectac.io.importer import state_of
from spectac.physics import hu_to_mu, mu_to_hu
from spectac.volume import SpectacError, Volume, to_lps_axes

runner = CliRunner()


def rotation(axis: np.ndarray, degrees: float) -> np.ndarray:
    axis = np.asarray(axis, dtype=float) / np.linalg.norm(axis)
    k = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    t = np.radians(degrees)
    return np.eye(3) + np.sin(t) * k + (1 - np.cos(t)) * k @ k


def blob_volume(shape=(16, 18, 20), spacing=(6.8, 6.8, 6.8), seed=0, noise=20.0, **geometry) -> Volume:
    """A positive counts-like volume with structure (a smooth blob plus noise)."""
    rng = np.random.default_rng(seed)
    grid = np.stack(np.meshgrid(*[np.linspace(-1, 1, n) for n in shape], indexing="ij"))
    blob = 400 * np.exp(-4 * (grid**2).sum(0)) + rng.random(shape) * noise
    if geometry:
        return Volume(blob.astype(np.float32), spacing, **geometry)
    return Volume.centred(blob.astype(np.float32), spacing)


def context(**kw):
    return new_context("PAT1", "1.2.826.0.1.3680043.8.498.1", "1.2.826.0.1.3680043.8.498.2", sex="F", **kw)


def tree_hash(path: Path) -> str:
    digest = hashlib.sha256()
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    for f in files:
        digest.update(str(f.relative_to(path) if path.is_dir() else f.name).encode())
        digest.update(f.read_bytes())
    return digest.hexdigest()


def quantum(path: Path) -> float:
    files = [path] if path.is_file() else sorted(path.rglob("*.dcm"))
    return max(float(pydicom.dcmread(f, stop_before_pixels=True).RescaleSlope) for f in files)


# ---- round trips ---------------------------------------------------------------------------------

GEOMETRIES = {
    "axial": {},
    "oblique": {"origin": (-40.0, 12.5, 300.0), "direction": rotation([1, 2, 0.5], 23)},
    "anisotropic-coronal": {"origin": (10.0, -5.0, 7.0), "direction": np.array([[1, 0, 0], [0, 0, -1], [0, 1, 0.0]])},
}


@pytest.mark.parametrize("name", list(GEOMETRIES))
@pytest.mark.parametrize("kind", ["nm-multiframe", "slices"])
def test_round_trip_keeps_values_and_geometry(tmp_path, name, kind):
    spacing = (4.0, 5.0, 6.5) if name == "anisotropic-coronal" else (6.8, 6.8, 6.8)
    volume = blob_volume(spacing=spacing, **GEOMETRIES[name])
    out = tmp_path / ("nm.dcm" if kind == "nm-multiframe" else "slices")
    write_dicom_series(volume, context(kind=kind), out, "round trip", uid_seed="t")
    back, ctx = read_dicom_volume(out)
    assert ctx.kind == kind
    assert back.shape == volume.shape
    np.testing.assert_allclose(back.affine_lps, volume.affine_lps, atol=1e-6)
    step = quantum(out)
    assert step < volume.array.max() / 60000
    assert np.abs(back.array - volume.array).max() <= step / 2 + 1e-4


def test_frames_against_the_normal_are_reversed_on_write(tmp_path):
    """A left-handed grid (z against row x col) is written with its frames reversed: same voxels in space."""
    direction = np.diag([1.0, 1.0, -1.0])
    volume = blob_volume(origin=(0.0, 0.0, 100.0), direction=direction)
    write_dicom_series(volume, context(), tmp_path / "nm.dcm", "flip", uid_seed="t")
    back, _ = read_dicom_volume(tmp_path / "nm.dcm")
    flipped = back.array[:, :, ::-1]
    assert np.abs(flipped - volume.array).max() <= quantum(tmp_path / "nm.dcm") / 2 + 1e-4
    # voxel (i, j, k) of the input sits where voxel (i, j, nz-1-k) of the output sits
    for index in ([0, 0, 0], [3, 4, 5], [15, 17, 19]):
        mirrored = [index[0], index[1], volume.shape[2] - 1 - index[2]]
        np.testing.assert_allclose(back.point_of(np.array(mirrored)), volume.point_of(np.array(index)), atol=1e-6)


def test_slices_are_sorted_by_position_not_by_name(tmp_path):
    volume = blob_volume(direction=rotation([0, 0, 1], 90), origin=(1.0, 2.0, 3.0))
    out = tmp_path / "slices"
    write_dicom_series(volume, context(kind="slices"), out, "sort", uid_seed="t")
    files = sorted(out.iterdir())
    for i, f in enumerate(files):  # reverse the names: the reader must use positions
        f.rename(out / f"x{len(files) - i:03d}.dcm")
    back, _ = read_dicom_volume(out)
    np.testing.assert_allclose(back.affine_lps, volume.affine_lps, atol=1e-6)
    assert np.abs(back.array - volume.array).max() <= quantum(out) / 2 + 1e-4


def test_vendor_variants_of_the_nm_geometry_and_scaling(tmp_path):
    """Siemens-style top-level geometry, frames stored head to feet, Real World Value Mapping."""
    from pydicom.dataset import Dataset as DicomDataset
    from pydicom.sequence import Sequence as DicomSequence

    volume = blob_volume(origin=(-50.0, -60.0, -70.0), direction=rotation([0, 0, 1], 30))
    write_dicom_series(volume, context(), tmp_path / "nm.dcm", "NC", derived=False, uid_seed="v")
    reference, _ = read_dicom_volume(tmp_path / "nm.dcm")

    ds = pydicom.dcmread(tmp_path / "nm.dcm")
    del ds.DetectorInformationSequence[0].ImagePositionPatient
    del ds.DetectorInformationSequence[0].ImageOrientationPatient
    ds.save_as(tmp_path / "top.dcm")
    top, _ = read_dicom_volume(tmp_path / "top.dcm")
    np.testing.assert_allclose(top.affine_lps, reference.affine_lps, atol=1e-6)
    np.testing.assert_array_equal(top.array, reference.array)

    ds = pydicom.dcmread(tmp_path / "nm.dcm")  # the same slices stored from the last to the first
    frames = ds.pixel_array[::-1].copy()
    ds.PixelData = frames.tobytes()
    last = reference.point_of(np.array([0.0, 0.0, volume.shape[2] - 1]))
    ds.DetectorInformationSequence[0].ImagePositionPatient = [f"{v:.6f}" for v in last]
    ds.ImagePositionPatient = ds.DetectorInformationSequence[0].ImagePositionPatient
    ds.SpacingBetweenSlices = f"-{ds.SpacingBetweenSlices}"
    ds.save_as(tmp_path / "reversed.dcm")
    reversed_, _ = read_dicom_volume(tmp_path / "reversed.dcm")
    for index in ([0, 0, 0], [5, 6, 7]):
        mirrored = np.array([index[0], index[1], volume.shape[2] - 1 - index[2]])
        np.testing.assert_allclose(reversed_.point_of(mirrored), reference.point_of(np.array(index)), atol=1e-4)
        assert reversed_.array[tuple(mirrored)] == reference.array[tuple(index)]

    ds = pydicom.dcmread(tmp_path / "nm.dcm")
    mapping = DicomDataset()
    mapping.RealWorldValueSlope, mapping.RealWorldValueIntercept = ds.RescaleSlope, ds.RescaleIntercept
    mapping.RealWorldValueFirstValueMapped, mapping.RealWorldValueLastValueMapped = 0, 65535
    ds.RealWorldValueMappingSequence = DicomSequence([mapping])
    del ds.RescaleSlope, ds.RescaleIntercept
    ds.save_as(tmp_path / "rwvm.dcm")
    rwvm, _ = read_dicom_volume(tmp_path / "rwvm.dcm")
    np.testing.assert_array_equal(rwvm.array, reference.array)


def test_legacy_file_without_preamble_is_read(tmp_path):
    volume = blob_volume()
    write_dicom_series(volume, context(), tmp_path / "nm.dcm", "NC", derived=False, uid_seed="l")
    ds = pydicom.dcmread(tmp_path / "nm.dcm")
    del ds.file_meta
    ds.preamble = None
    pydicom.dcmwrite(tmp_path / "legacy", ds, implicit_vr=True, little_endian=True)
    assert (tmp_path / "legacy").read_bytes()[128:132] != b"DICM"
    back, _ = read_dicom_volume(tmp_path / "legacy")
    reference, _ = read_dicom_volume(tmp_path / "nm.dcm")
    np.testing.assert_array_equal(back.array, reference.array)
    np.testing.assert_allclose(back.affine_lps, reference.affine_lps)


def test_negative_values_survive_through_the_intercept(tmp_path):
    volume = blob_volume().with_array(blob_volume().array - 50)
    write_dicom_series(volume, context(), tmp_path / "nm.dcm", "neg", uid_seed="t")
    back, _ = read_dicom_volume(tmp_path / "nm.dcm")
    assert back.array.min() < 0
    assert np.abs(back.array - volume.array).max() <= quantum(tmp_path / "nm.dcm") / 2 + 1e-3


def test_derived_series_keeps_patient_study_frame_and_gets_new_uids(tmp_path):
    source = tmp_path / "src.dcm"
    write_dicom_series(blob_volume(), context(), source, "STRESS IRNC", derived=False, uid_seed="a")
    volume, ctx = read_dicom_volume(source)
    write_dicom_series(volume, ctx, tmp_path / "out", method="unet-gan3d", model_name="v0.1", uid_seed="b")
    a = pydicom.dcmread(source)
    b = pydicom.dcmread(next((tmp_path / "out").iterdir()))
    for keyword in ("PatientID", "PatientName", "PatientSex", "StudyInstanceUID", "FrameOfReferenceUID"):
        assert a[keyword].value == b[keyword].value
    assert a.SeriesInstanceUID != b.SeriesInstanceUID and a.SOPInstanceUID != b.SOPInstanceUID
    assert list(b.ImageType)[:1] == ["DERIVED"] and "ATTN" in list(b.CorrectedImage)
    assert b.SeriesDescription == "spectac AC unet-gan3d v0.1"
    assert b.SourceImageSequence[0].ReferencedSOPInstanceUID == a.SOPInstanceUID
    # deterministic UIDs with a seed, fresh ones without
    write_dicom_series(volume, ctx, tmp_path / "again", method="unet-gan3d", model_name="v0.1", uid_seed="b")
    assert pydicom.dcmread(next((tmp_path / "again").iterdir())).SOPInstanceUID == b.SOPInstanceUID
    write_dicom_series(volume, ctx, tmp_path / "fresh", method="unet-gan3d", model_name="v0.1")
    assert pydicom.dcmread(next((tmp_path / "fresh").iterdir())).SOPInstanceUID != b.SOPInstanceUID


def test_existing_output_folder_is_refused_and_kept(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    with pytest.raises(SpectacError, match="already exists"):
        write_dicom_series(blob_volume(), context(), out, "x")
    assert (out / "keep.txt").read_text() == "mine"


# ---- dciodvfy ------------------------------------------------------------------------------------


DCIODVFY_KINDS = ["nm-original", "nm-derived", "slices", "nm-derived-heart", "slices-derived-heart",
                  "nc-copy-heart", "export-nc", "export-ac", "export-mu-nm", "export-mu-ct"]


def _series_for_dciodvfy(tmp_path: Path, kind: str) -> tuple[Path, str]:
    """Write one series of ``kind`` the way spectac writes it; (folder or file, IOD dciodvfy names)."""
    volume = blob_volume(direction=rotation([0, 1, 1], 10))
    if kind == "nm-original":
        write_dicom_series(volume, context(), tmp_path / "out", "STRESS IRNC", derived=False, uid_seed="v")
        return tmp_path / "out", "NMImage"
    if kind.startswith("export-"):
        name = {"export-nc": "nc", "export-ac": "ac", "export-mu-nm": "mu", "export-mu-ct": "mu"}[kind]
        data = Dataset.open(tiny_dataset(tmp_path / "sim", patients=1))
        written = export_study_dicom(data, data.cases[0].case_id, tmp_path / "dcm",
                                     mu_as="ct" if kind == "export-mu-ct" else "nm")
        return written[name], "SCImage" if kind == "export-mu-ct" else "NMImage"
    # A derived series (a correction) of a source series as a clinic exports it: with "-heart" the
    # source names its body part (HEART), so dciodvfy checks the conditions that depend on it.
    slices = kind.startswith("slices")
    source = tmp_path / ("src" if slices else "src.dcm")
    write_dicom_series(volume, context(kind="slices" if slices else "nm-multiframe"), source, "NC", derived=False,
                       uid_seed="s")
    if kind.endswith("-heart"):
        for f in sorted(source.iterdir()) if slices else [source]:
            ds = pydicom.dcmread(f)
            ds.BodyPartExamined = "HEART"
            ds.save_as(f)
    volume, ctx = read_dicom_volume(source)
    if kind == "nc-copy-heart":  # what `spectac correct --method nc` writes
        write_dicom_series(volume, ctx, tmp_path / "out", method="nc", attenuation_corrected=False, uid_seed="v")
    else:
        write_dicom_series(volume, ctx, tmp_path / "out", method="unet-gan3d", model_name="v0.1", uid_seed="v")
    return tmp_path / "out", "SCImage" if slices else "NMImage"


@pytest.mark.skipif(shutil.which("dciodvfy") is None, reason="dciodvfy not installed (apt-get install dicom3tools)")
@pytest.mark.parametrize("kind", DCIODVFY_KINDS)
def test_dciodvfy_finds_no_errors(tmp_path, kind):
    """Every file of every kind of series spectac writes: not one dciodvfy line starting with Error."""
    out, iod = _series_for_dciodvfy(tmp_path, kind)
    files = sorted(out.rglob("*.dcm")) if out.is_dir() else [out]
    assert files
    for f in files:
        result = subprocess.run(["dciodvfy", str(f)], check=False, capture_output=True, text=True, timeout=60)
        lines = (result.stdout + result.stderr).splitlines()
        errors = [line for line in lines if line.startswith("Error")]
        warnings = sorted({line for line in lines if line.startswith("Warning")})
        print(f"dciodvfy {kind} {f.name}: {len(warnings)} distinct warnings", *warnings, sep="\n  ")
        assert iod in lines  # the IOD dciodvfy checked against
        assert not errors, f"{f}:\n" + "\n".join(errors)


# ---- import / export-dicom -----------------------------------------------------------------------


def tiny_dataset(root: Path, patients: int = 3, shape=(16, 16, 20)) -> Path:
    rng = np.random.default_rng(1)
    cases = []
    for p in range(patients):
        for state in ("rest", "stress"):
            case_id = f"p{p:02d}_{state}"
            ac = blob_volume(shape=shape, seed=p * 2 + (state == "stress"))
            mu = np.zeros(shape, np.float32)
            mu[2:-2, 2:-2, :] = 0.153
            mu[6:9, 6:9, :] = 0.25  # a bone-like rod
            mu[10:13, 3:6, :] = 0.04  # lung-like
            nc = ac.with_array(ac.array / (2 + rng.random()))
            write_study(root, case_id, {"nc": nc, "ac": ac, "mu": ac.with_array(mu)})
            cases.append(Case(case_id, f"P{p:02d}", state, "F" if p % 2 else "M", bmi=22.0 + p, split="test"))
    write_manifest(root, {"source": "test"}, cases)
    return root


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


def test_hu_to_mu_model():
    assert hu_to_mu(np.array([-1000.0]))[0] == pytest.approx(0.0, abs=1e-6)
    assert hu_to_mu(np.array([0.0]))[0] == pytest.approx(0.1537, rel=1e-4)
    assert hu_to_mu(np.array([1900.0]))[0] == pytest.approx(0.2830, rel=1e-4)
    mu = np.linspace(0, 0.3, 31, dtype=np.float32)
    np.testing.assert_allclose(hu_to_mu(mu_to_hu(mu)), mu, atol=1e-6)
    assert np.all(np.diff(hu_to_mu(np.linspace(-1200, 3000, 100))) >= 0)


def test_state_from_descriptions():
    assert state_of("STRESS IRAC") == "stress"
    assert state_of("Rest Tc99m MIBI") == "rest"
    assert state_of("Myocardial SPECT", "regadenoson MPI") == "stress"
    assert state_of("SPECT IRAC") == "unknown"


def test_lps_axes_reorder_round_trip():
    volume = blob_volume(origin=(5.0, 6.0, 7.0), direction=np.array([[0, 0, -1], [1, 0, 0], [0, -1, 0.0]]))
    ordered, order = to_lps_axes(volume)
    np.testing.assert_allclose(ordered.direction, np.eye(3), atol=1e-12)
    # the same voxel values at the same places
    for index in ([0, 0, 0], [2, 5, 7], [15, 17, 19]):
        point = volume.point_of(np.array(index))
        mapped = np.rint(ordered.index_of(point)).astype(int)
        assert ordered.array[tuple(mapped)] == volume.array[tuple(index)]
    assert not order.identity
    back = order.undo(ordered.array, volume)
    np.testing.assert_array_equal(back.array, volume.array)


# ---- spectac correct on DICOM --------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["nm-multiframe", "slices"])
def test_correct_dicom_in_gives_dicom_out(tmp_path, kind):
    volume = blob_volume(direction=np.diag([1.0, -1.0, -1.0]), origin=(0.0, 50.0, 100.0))
    source = tmp_path / ("nc.dcm" if kind == "nm-multiframe" else "nc")
    write_dicom_series(volume, context(kind=kind), source, "STRESS IRNC", derived=False, attenuation_corrected=False,
                       uid_seed="c")
    before = tree_hash(source)
    out = tmp_path / "ac"
    result = runner.invoke(app, ["correct", str(source), "-o", str(out), "--method", "nc"])
    assert result.exit_code == 0, result.output
    assert tree_hash(source) == before
    corrected, ctx = read_dicom_volume(out)
    original, _ = read_dicom_volume(source)
    assert ctx.kind == kind and corrected.same_grid(original)
    assert np.abs(corrected.array - original.array).max() <= quantum(out) / 2 + quantum(source) / 2 + 1e-4
    header = pydicom.dcmread(next(out.iterdir()), stop_before_pixels=True)
    # "nc" copies the NC image: named as such and not flagged attenuation-corrected
    assert header.SeriesDescription == "spectac NC (no correction)"
    assert "ATTN" not in list(header.get("CorrectedImage", []))


def test_correct_dicom_with_chang_matches_chang_on_the_volume(tmp_path):
    """The DICOM path (read, reorder axes, correct, put back, write) changes nothing physical."""
    from spectac.correction.chang import chang_first_order
    from spectac.correction.files import correct_path

    grid = np.stack(np.meshgrid(*[np.linspace(-1, 1, n) for n in (20, 20, 16)], indexing="ij"))
    body = np.where((grid[0] ** 2 + grid[1] ** 2) < 0.6, 50.0, 0.0) + 300 * np.exp(-8 * (grid**2).sum(0))
    volume = Volume(body.astype(np.float32), (6.8, 6.8, 6.8), origin=(64.6, 64.6, -51.0),
                    direction=np.diag([-1.0, -1.0, 1.0]))  # rows toward the patient's right
    write_dicom_series(volume, context(), tmp_path / "nc.dcm", "REST IRNC", derived=False, attenuation_corrected=False,
                       uid_seed="k")
    summary = correct_path(tmp_path / "nc.dcm", tmp_path / "ac", "chang", uid_seed="k2")
    assert summary["kind"] == "dicom"
    corrected, _ = read_dicom_volume(tmp_path / "ac")
    stored, _ = read_dicom_volume(tmp_path / "nc.dcm")
    expected = chang_first_order(stored)
    assert corrected.same_grid(stored)
    assert expected.array.max() > 1.5 * stored.array.max()  # Chang did correct something
    assert np.abs(corrected.array - expected.array).max() <= quantum(tmp_path / "ac") / 2 + 1e-3


# ---- bad input: one line naming the file, exit 2, nothing written, input untouched ---------------


NC = {"derived": False, "attenuation_corrected": False}  # what a camera's NC series says


def _bad_inputs(tmp: Path) -> dict[str, tuple[Path, str, str]]:
    """name -> (input path, file named in the message, expected words)."""
    cases = {}
    ct_ctx = new_context("P", "1.2.826.0.1.3680043.8.498.5", "1.2.826.0.1.3680043.8.498.6", modality="CT",
                         kind="slices")
    write_dicom_series(blob_volume(), ct_ctx, tmp / "ct", "CT", derived=False, uid_seed="ct")
    cases["ct-as-nm"] = (tmp / "ct", "ct", "is a CT series, expected NM/PT SPECT")

    write_dicom_series(blob_volume(shape=(16, 16, 1)), context(kind="slices"), tmp / "flat", "2D", **NC, uid_seed="2d")
    single = next((tmp / "flat").iterdir())
    cases["2d-image"] = (single, single.name, "2D image")

    write_dicom_series(blob_volume(), context(), tmp / "whole.dcm", "NC", **NC, uid_seed="w")
    data = (tmp / "whole.dcm").read_bytes()
    (tmp / "truncated.dcm").write_bytes(data[: len(data) // 2])
    cases["truncated"] = (tmp / "truncated.dcm", "truncated.dcm", "truncated")
    (tmp / "garbage.dcm").write_bytes(b"\x00" * 128 + b"DICM" + bytes(range(256)) * 4)
    cases["corrupt"] = (tmp / "garbage.dcm", "garbage.dcm", "DICOM")
    (tmp / "notdicom").write_text("hello")
    cases["not-dicom"] = (tmp / "notdicom", "notdicom", "not a DICOM file")

    write_dicom_series(blob_volume(), context(kind="slices"), tmp / "mixed", "A", **NC, uid_seed="m1")
    write_dicom_series(blob_volume(seed=3), context(kind="slices"), tmp / "other", "B", **NC, uid_seed="m2")
    shutil.move(next((tmp / "other").iterdir()), tmp / "mixed" / "zz_other.dcm")
    cases["mixed-series"] = (tmp / "mixed", "mixed", "mixed series")

    write_dicom_series(blob_volume(), context(kind="slices"), tmp / "gap", "G", **NC, uid_seed="g")
    sorted((tmp / "gap").iterdir())[5].unlink()
    cases["missing-slice"] = (tmp / "gap", "gap", "inconsistent spacing")

    ds = pydicom.dcmread(tmp / "whole.dcm")
    ds.RescaleSlope = "NaN"
    ds.save_as(tmp / "nan.dcm")
    cases["nan"] = (tmp / "nan.dcm", "nan.dcm", "NaN")
    write_dicom_series(blob_volume().with_array(np.zeros((16, 18, 20), np.float32)), context(), tmp / "zero.dcm",
                       "Z", **NC, uid_seed="z")
    cases["all-zero"] = (tmp / "zero.dcm", "zero.dcm", "all zero")
    cases["missing"] = (tmp / "absent.dcm", "absent.dcm", "no such file")
    return cases


def test_bad_inputs_give_one_line_exit_2_and_write_nothing(tmp_path):
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    for name, (path, named, words) in _bad_inputs(inputs).items():
        before = tree_hash(inputs)
        out = tmp_path / f"out-{name}"
        result = runner.invoke(app, ["correct", str(path), "-o", str(out), "--method", "nc"])
        message = " ".join(result.output.split())
        assert result.exit_code == 2, (name, result.output)
        assert named in message and words in message, (name, message)
        assert len(result.output.strip().splitlines()) == 1, (name, result.output)
        assert not out.exists(), name
        assert not [p for p in tmp_path.iterdir() if p.name.startswith(".out-")], name  # no temporary left
        assert tree_hash(inputs) == before, name


@pytest.mark.parametrize(
    ("name", "words"),
    [
        ("CT_small.dcm", "is a CT series, expected NM/PT SPECT"),
        ("MR_small.dcm", "is a MR series, expected NM/PT SPECT"),
        ("rtdose.dcm", "is a RTDOSE series"),
        ("MR_truncated.dcm", "MR_truncated.dcm"),
        ("no_meta.dcm", "not a DICOM file"),  # no preamble and nothing of an image
        ("SC_rgb_small_odd.dcm", "is a 2D image"),
    ],
)
def test_real_files_of_other_kinds_are_refused(name, words):
    """Files from real scanners (pydicom's test data): a clear refusal, never a crash."""
    path = Path(pydicom.data.get_testdata_file(name))
    before = tree_hash(path)
    with pytest.raises(SpectacError) as caught:
        read_dicom_volume(path)
    assert str(path) in str(caught.value)
    assert words in str(caught.value), str(caught.value)
    assert tree_hash(path) == before


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


def test_an_interrupted_correct_leaves_no_half_written_series(tmp_path, monkeypatch):
    """Ctrl-C while the slices of the new series are written: no output folder, no temporary left."""
    from spectac.correction.files import correct_path
    from spectac.io.dicom import write as dicom_write

    source = tmp_path / "nc"
    write_dicom_series(blob_volume(), context(kind="slices"), source, "REST NC", derived=False, uid_seed="i")
    before = tree_hash(source)
    save, calls = dicom_write._save, []

    def interrupted(ds, path):
        calls.append(path)
        if len(calls) == 3:
            raise KeyboardInterrupt
        save(ds, path)

    monkeypatch.setattr(dicom_write, "_save", interrupted)
    with pytest.raises(KeyboardInterrupt):
        correct_path(source, tmp_path / "ac", "nc", uid_seed="i2")
    assert len(calls) == 3
    assert not (tmp_path / "ac").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["nc"]  # no temporary folder left behind
    assert tree_hash(source) == before
