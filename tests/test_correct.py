"""`spectac correct` refuses what it must not correct: input already corrected or a mu-map, a grid
no SPECT camera makes, an output inside the input, an output that another run wrote meanwhile;
and it cleans up the leftovers of killed runs. DICOM in gives DICOM out, Chang on DICOM is Chang on the
volume, bad input is one line with exit 2, and an interrupted run leaves nothing half written."""

from __future__ import annotations

import inspect
import os
import subprocess
import sys
import warnings
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
import pytest
from dicom_helpers import blob_volume, context, quantum, tiny_dataset, tree_hash
from typer.testing import CliRunner

from spectac.cli import app
from spectac.io import atomic
from spectac.io.dicom import export_dataset_dicom, new_context, read_dicom_volume, write_dicom_series
from spectac.io.nifti import write_nifti
from spectac.volume import SpectacError, Volume

runner = CliRunner()
NC = {"derived": False, "attenuation_corrected": False}


def correct(*args: object) -> tuple[int, str]:
    result = runner.invoke(app, ["correct", *map(str, args)])
    return result.exit_code, " ".join(result.output.split())


def assert_refused(code: int, message: str, named: Path, *words: str) -> None:
    assert code == 2, message
    assert str(named) in message, message
    for word in words:
        assert word in message, (word, message)


def nc_dicom(path: Path, kind: str = "nm-multiframe", description: str = "STRESS IRNC", **kw) -> Path:
    write_dicom_series(blob_volume(), context(kind=kind), path, description, uid_seed=str(path), **{**NC, **kw})
    return path


def hidden(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


# ---- 1. already corrected, spectac's own output, mu-maps -----------------------------------------


@pytest.mark.parametrize("kind", ["nm-multiframe", "slices"])
def test_vendor_ct_ac_series_is_refused_and_force_overrides_with_a_note(tmp_path, kind):
    source = nc_dicom(tmp_path / "ac_in", kind, "STRESS IRAC", attenuation_corrected=True)
    before = tree_hash(source)
    code, message = correct(source, "-o", tmp_path / "out", "--method", "chang")
    words = ("Corrected Image", "ATTN") if kind == "nm-multiframe" else ("attenuation-corrected", "IRAC")
    assert_refused(code, message, source, "already", "--force", *words)
    assert not (tmp_path / "out").exists() and tree_hash(source) == before

    code, message = correct(source, "-o", tmp_path / "out", "--method", "chang", "--force")
    assert code == 0, message
    assert "forced" in message
    header = pydicom.dcmread(next((tmp_path / "out").iterdir()), stop_before_pixels=True)
    assert str(header.ImageComments).startswith("forced: input is already attenuation-corrected")
    assert header.SeriesDescription.endswith("(forced)")
    # the forced output is spectac's own: refused in turn
    code, message = correct(tmp_path / "out", "-o", tmp_path / "again", "--method", "chang")
    assert_refused(code, message, tmp_path / "out", "already")


def test_scatter_corrected_series_is_refused(tmp_path):
    source = nc_dicom(tmp_path / "nc.dcm")
    ds = pydicom.dcmread(source)
    ds.CorrectedImage = ["UNIF", "COR", "SCAT"]
    ds.save_as(tmp_path / "sc.dcm")
    code, message = correct(tmp_path / "sc.dcm", "-o", tmp_path / "out", "--method", "nc")
    assert_refused(code, message, tmp_path / "sc.dcm", "scatter-corrected", "SCAT")


@pytest.mark.parametrize("kind", ["nm-multiframe", "slices"])
def test_spectac_output_is_refused_as_input(tmp_path, kind):
    source = nc_dicom(tmp_path / "nc", kind)
    code, message = correct(source, "-o", tmp_path / "ac", "--method", "chang")
    assert code == 0, message
    code, message = correct(tmp_path / "ac", "-o", tmp_path / "ac2", "--method", "chang")
    assert_refused(code, message, tmp_path / "ac", "spectac wrote", "spectac AC chang")
    assert not (tmp_path / "ac2").exists()
    # NIfTI written from DICOM carries the mark too
    code, message = correct(source, "-o", tmp_path / "ac.nii.gz", "--method", "chang")
    assert code == 0, message
    code, message = correct(tmp_path / "ac.nii.gz", "-o", tmp_path / "ac2.nii.gz", "--method", "chang")
    assert_refused(code, message, tmp_path / "ac.nii.gz", "already attenuation-corrected")
    # the nc method's copy is the NC image: it may be corrected
    code, message = correct(source, "-o", tmp_path / "copy", "--method", "nc")
    assert code == 0, message
    code, message = correct(tmp_path / "copy", "-o", tmp_path / "copy_ac", "--method", "chang")
    assert code == 0, message


@pytest.mark.parametrize("mu_as", ["nm", "ct"])
def test_exported_ac_and_mu_map_series_are_refused_nc_is_corrected(tmp_path, mu_as):
    data = tiny_dataset(tmp_path / "ds", patients=1)
    export_dataset_dicom(data, tmp_path / "export", mu_as=mu_as)
    case = "p00_rest"
    words = {"nm": ("attenuation map", "TRANSMISSION"), "ct": ("is a CT series",)}[mu_as]
    code, message = correct(tmp_path / "export/mu" / case, "-o", tmp_path / "o_mu", "--method", "chang")
    assert_refused(code, message, tmp_path / "export/mu" / case, *words)
    code, message = correct(tmp_path / "export/ac" / case, "-o", tmp_path / "o_ac", "--method", "chang")
    assert_refused(code, message, tmp_path / "export/ac" / case, "ATTN")
    code, message = correct(tmp_path / "export/nc" / case, "-o", tmp_path / "o_nc", "--method", "chang")
    assert code == 0, message


def test_nm_mu_map_recognised_by_description_or_units(tmp_path):
    source = nc_dicom(tmp_path / "nc.dcm")
    for name, change in {"desc": {"SeriesDescription": "CT mu map"}, "units": {"Units": "1/CM"}}.items():
        ds = pydicom.dcmread(source)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # pydicom: "/" is not a CS character, yet DICOM lists 1/CM
            for keyword, value in change.items():
                setattr(ds, keyword, value)
        ds.save_as(tmp_path / f"{name}.dcm")
        code, message = correct(tmp_path / f"{name}.dcm", "-o", tmp_path / f"out-{name}", "--method", "nc")
        assert_refused(code, message, tmp_path / f"{name}.dcm", "attenuation map")


def test_nifti_outputs_and_dataset_references_are_marked_and_refused(tmp_path):
    data = tiny_dataset(tmp_path / "ds", patients=1)
    study = data / "studies" / "p00_rest"
    for name, words in {"ac": ("already attenuation-corrected", "CT-AC"), "mu": ("attenuation map", "mu-map")}.items():
        code, message = correct(study / f"{name}.nii.gz", "-o", tmp_path / f"{name}_out.nii.gz", "--method", "chang")
        assert_refused(code, message, study / f"{name}.nii.gz", *words)
    code, message = correct(study / "nc.nii.gz", "-o", tmp_path / "ac.nii.gz", "--method", "chang")
    assert code == 0, message
    assert descrip(tmp_path / "ac.nii.gz").startswith("spectac AC chang")
    code, message = correct(tmp_path / "ac.nii.gz", "-o", tmp_path / "ac2.nii.gz", "--method", "chang")
    assert_refused(code, message, tmp_path / "ac.nii.gz", "already attenuation-corrected")
    assert not (tmp_path / "ac2.nii.gz").exists()
    code, message = correct(tmp_path / "ac.nii.gz", "-o", tmp_path / "ac2.nii.gz", "--method", "chang", "--force")
    assert code == 0, message
    assert "forced: input already corrected" in descrip(tmp_path / "ac2.nii.gz")


# ---- 2. implausible geometry and values, refused from the header ----------------------------------


def descrip(path: Path) -> str:
    return nib.load(str(path)).header["descrip"].item().decode()


def nifti(path: Path, shape=(20, 20, 20), spacing=(6.8, 6.8, 6.8), direction=None, values=None) -> Path:
    array = blob_volume(shape=shape).array if values is None else values
    volume = Volume(array, spacing, (0.0, 0.0, 0.0), np.eye(3) if direction is None else direction)
    write_nifti(volume, path)
    return path


def rotation_z(degrees: float) -> np.ndarray:
    t = np.radians(degrees)
    return np.array([[np.cos(t), -np.sin(t), 0], [np.sin(t), np.cos(t), 0], [0, 0, 1.0]])


NIFTI_CASES = {
    "huge-voxels": ({"spacing": (1e6, 1e6, 1e6)}, "voxel size"),
    "tiny-voxels": ({"spacing": (1e-6, 1e-6, 1e-6)}, "voxel size"),
    "half-mm": ({"spacing": (0.5, 0.5, 0.5), "shape": (128, 128, 128)}, "voxel size"),
    "one-slice": ({"shape": (64, 64, 1)}, "fewer than 16"),
    "thin-slab": ({"shape": (64, 64, 8)}, "fewer than 16"),
    "small-fov": ({"shape": (16, 16, 16), "spacing": (2.0, 2.0, 2.0)}, "field of view"),
    "oblique": ({"direction": rotation_z(20)}, "oblique"),
}


@pytest.mark.parametrize("case", list(NIFTI_CASES))
def test_implausible_nifti_geometry_is_refused(tmp_path, case):
    kwargs, words = NIFTI_CASES[case]
    path = nifti(tmp_path / "in.nii.gz", **kwargs)
    code, message = correct(path, "-o", tmp_path / "out.nii.gz", "--method", "nc")
    assert_refused(code, message, path, words)
    assert not (tmp_path / "out.nii.gz").exists()


def test_a_slightly_rounded_axis_aligned_volume_is_accepted(tmp_path):
    path = nifti(tmp_path / "in.nii.gz", direction=rotation_z(0.05))
    code, message = correct(path, "-o", tmp_path / "out.nii.gz", "--method", "nc")
    assert code == 0, message


def test_half_negative_volume_is_refused(tmp_path):
    values = blob_volume(shape=(20, 20, 20)).array
    path = nifti(tmp_path / "in.nii.gz", values=values - 0.5 * values.max())
    code, message = correct(path, "-o", tmp_path / "out.nii.gz", "--method", "chang")
    assert_refused(code, message, path, "negative")
    # an FBP-like undershoot of a few percent is fine
    slight = values.copy()
    slight[0, 0, 0] = -0.02 * values.max()
    path = nifti(tmp_path / "slight.nii.gz", values=slight)
    code, message = correct(path, "-o", tmp_path / "slight_out.nii.gz", "--method", "nc")
    assert code == 0, message


def test_a_512_cubed_nifti_is_refused_from_its_header(tmp_path):
    """The header claims 512^3 voxels and there are none behind it: refused without reading data."""
    header = nib.Nifti1Header()
    header.set_data_shape((512, 512, 512))
    header.set_data_dtype(np.float32)
    header.set_zooms((1.2, 1.2, 1.2))
    header.set_sform(np.diag([1.2, 1.2, 1.2, 1.0]), code=1)
    header["vox_offset"] = 352
    path = tmp_path / "big.nii"
    path.write_bytes(header.binaryblock + b"\x00" * 4)
    code, message = correct(path, "-o", tmp_path / "out.nii.gz", "--method", "nc")
    assert_refused(code, message, path, "512x512x512", "limit of 256", "resample")


@pytest.mark.parametrize(("keyword", "value", "words"), [
    ("SpacingBetweenSlices", "1e308", "voxel size"),
    ("PixelSpacing", ["1e6", "1e6"], "voxel size"),
    ("PixelSpacing", ["1e-6", "1e-6"], "voxel size"),
])
def test_implausible_dicom_geometry_is_refused_before_the_pixels_are_read(tmp_path, monkeypatch, keyword, value,
                                                                          words):
    from spectac.io.dicom import read as dicom_read

    ds = pydicom.dcmread(nc_dicom(tmp_path / "nc.dcm"))
    setattr(ds, keyword, value)
    ds.save_as(tmp_path / "bad.dcm")

    def no_pixels(*args):
        raise AssertionError("pixel data read before the geometry was checked")

    monkeypatch.setattr(dicom_read, "_pixels", no_pixels)
    code, message = correct(tmp_path / "bad.dcm", "-o", tmp_path / "out", "--method", "nc")
    assert_refused(code, message, tmp_path / "bad.dcm", words)


# ---- 3. the output never inside (or around) the input ---------------------------------------------


@pytest.mark.parametrize("name", ["out.nii.gz", "sub/out", "out.dcm"])
def test_output_inside_the_input_folder_is_refused(tmp_path, name):
    source = nc_dicom(tmp_path / "nc", "slices")
    before = tree_hash(source)
    code, message = correct(source, "-o", source / name, "--method", "nc")
    assert_refused(code, message, source / name, "inside the input")
    assert tree_hash(source) == before
    read_dicom_volume(source)  # still one series


def test_check_output_outside():
    from spectac.io.paths import check_output_outside

    check_output_outside("/a/c", "/a/b")
    check_output_outside("/a/b.dcm.out", "/a/b.dcm")
    for output, words in {"/a/b": "is the input", "/a/b/c/d.nii.gz": "inside the input",
                          "/a/b/../b/x": "inside the input", "/a": "contains the input"}.items():
        with pytest.raises(SpectacError, match=words):
            check_output_outside(output, "/a/b")


# ---- 4. two runs into one output: one result, one refusal -----------------------------------------


def test_nifti_output_appearing_during_the_run_is_not_replaced(tmp_path, monkeypatch):
    from spectac.io import nifti as nifti_module

    source = nifti(tmp_path / "nc.nii.gz")
    target = tmp_path / "ac.nii.gz"
    save = nifti_module.nib.save

    def racing_save(image, filename):
        save(image, filename)
        target.write_bytes(b"the other run")  # the other run publishes first

    monkeypatch.setattr(nifti_module.nib, "save", racing_save)
    code, message = correct(source, "-o", target, "--method", "nc")
    assert_refused(code, message, target, "already exists")
    assert target.read_bytes() == b"the other run"
    assert hidden(tmp_path) == []


@pytest.mark.parametrize("appears", ["full", "empty"])
def test_dicom_output_folder_appearing_during_the_run_is_not_replaced(tmp_path, monkeypatch, appears):
    from spectac.io.dicom import write as dicom_write

    source = nc_dicom(tmp_path / "nc.dcm")
    target = tmp_path / "ac"
    save = dicom_write._save

    def racing_save(ds, path):
        save(ds, path)
        target.mkdir()
        if appears == "full":
            (target / "other.dcm").write_bytes(b"the other run")

    monkeypatch.setattr(dicom_write, "_save", racing_save)
    code, message = correct(source, "-o", target, "--method", "nc")
    assert_refused(code, message, target, "already exists")
    assert sorted(p.name for p in target.iterdir()) == (["other.dcm"] if appears == "full" else [])
    assert hidden(tmp_path) == []


def test_atomic_path_without_replace_refuses_and_with_replace_replaces(tmp_path):
    target = tmp_path / "x.txt"
    target.write_text("first")
    with pytest.raises(SpectacError, match="already exists"), atomic.atomic_path(target, replace=False) as tmp:
        tmp.write_text("second")
    assert target.read_text() == "first" and hidden(tmp_path) == []
    with atomic.atomic_path(target) as tmp:
        tmp.write_text("second")
    assert target.read_text() == "second"


# ---- 5. leftovers of killed runs ------------------------------------------------------------------


def test_leftovers_of_dead_runs_are_removed_those_of_live_runs_kept(tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        stale_file = tmp_path / f".ac.nii.gz.{dead.pid}.abcd1234.tmp.nii.gz"
        stale_file.write_bytes(b"half")
        stale_dir = tmp_path / f".ac_dicom.{dead.pid}.abcd_123.tmp"
        stale_dir.mkdir()
        (stale_dir / "IM00001.dcm").write_bytes(b"half a series")
        busy = tmp_path / f".ac.nii.gz.{live.pid}.zzzz9999.tmp.nii.gz"
        busy.write_bytes(b"being written")
        other = tmp_path / f".other.nii.gz.{dead.pid}.abcd1234.tmp.nii.gz"  # another target's: not ours
        other.write_bytes(b"x")
        source = nifti(tmp_path / "nc.nii.gz")
        code, message = correct(source, "-o", tmp_path / "ac.nii.gz", "--method", "nc")
        assert code == 0, message
        assert not stale_file.exists()
        assert busy.read_bytes() == b"being written"
        assert other.exists()
        dicom_source = nc_dicom(tmp_path / "nc.dcm")
        code, message = correct(dicom_source, "-o", tmp_path / "ac_dicom", "--method", "nc")
        assert code == 0, message
        assert not stale_dir.exists()
    finally:
        live.kill()
        live.wait()


def test_temporary_names_carry_the_pid(tmp_path):
    with atomic.atomic_path(tmp_path / "x.nii.gz", suffix=".nii.gz") as tmp:
        assert tmp.name.startswith(f".x.nii.gz.{os.getpid()}.") and tmp.name.endswith(".tmp.nii.gz")
        tmp.write_bytes(b"")
    with atomic.atomic_dir(tmp_path / "d") as tmp:
        assert tmp.name.startswith(f".d.{os.getpid()}.")


# ---- 6. the default method ------------------------------------------------------------------------


def test_default_method_is_unet_gan3d_chang(tmp_path, monkeypatch):
    from spectac.correction import DEFAULT_METHOD, files

    assert DEFAULT_METHOD == "unet-gan3d-chang"
    assert inspect.signature(files.correct_path).parameters["method"].default == DEFAULT_METHOD
    seen = {}

    def fake(input, output, method, weights, **kw):
        seen["method"] = method
        return {"output": output, "kind": "nifti", "method": method, "shape": (1, 1, 1), "forced": None}

    monkeypatch.setattr(files, "correct_path", fake)
    code, message = correct(tmp_path / "x.nii.gz", "-o", tmp_path / "y.nii.gz")
    assert code == 0, message
    assert seen["method"] == "unet-gan3d-chang"


# ---- what the DICOM writer needs is checked before the correction runs ---------------------------


def test_dicom_without_study_uid_is_refused_before_the_correction_runs(tmp_path, monkeypatch):
    from spectac.correction import files

    source = nc_dicom(tmp_path / "nc.dcm")
    ds = pydicom.dcmread(source)
    del ds.StudyInstanceUID
    ds.save_as(source)

    def never(*args, **kwargs):
        raise AssertionError("the correction ran")

    monkeypatch.setattr(files, "correct_volume", never)
    result = runner.invoke(app, ["correct", str(source), "-o", str(tmp_path / "out"), "--method", "nc"])
    assert result.exit_code == 2, (result.output, result.exception)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "no Study Instance UID" in lines[0] and str(source) in " ".join(result.stderr.split())
    assert not (tmp_path / "out").exists() and sorted(p.name for p in tmp_path.iterdir()) == ["nc.dcm"]
    monkeypatch.undo()
    # NIfTI out needs no study to attach to
    code, message = correct(source, "-o", tmp_path / "out.nii.gz", "--method", "nc")
    assert code == 0, message


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

    # A folder mixing series is a batch now: tests/test_batch.py.
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

