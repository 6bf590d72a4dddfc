"""`spectac correct FOLDER -o OUTDIR` on an archive folder: every series corrected, refused with
the single-study reason or skipped on a rerun; each output is what single-study `correct` gives for
that series; summary.csv lists them; a bad batch is one line, exit 2."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from dicom_helpers import blob_volume, context, tree_hash
from typer.testing import CliRunner

from spectac.cli import app
from spectac.correction.files import correct_path
from spectac.io.batch import list_batch, read_batch_summary
from spectac.io.dicom import read_dicom_volume, write_dicom_series
from spectac.io.nifti import read_nifti, write_nifti

runner = CliRunner()


def correct(*args: object) -> tuple[int, str]:
    result = runner.invoke(app, ["correct", *map(str, args)])
    return result.exit_code, " ".join(result.output.split())


def archive(root: Path) -> Path:
    """Two NC series (slices in a nested folder, one multi-frame file), a vendor CT-AC series
    (Corrected Image ATTN) and a report that is no DICOM."""
    folder = root / "archive"
    write_dicom_series(blob_volume(seed=1), context(kind="slices"), folder / "study1" / "rest_nc" / "series",
                       "REST IRNC", derived=False, attenuation_corrected=False, uid_seed="rest")
    write_dicom_series(blob_volume(seed=2), context(), folder / "study1" / "stress_nc.dcm", "STRESS IRNC",
                       derived=False, attenuation_corrected=False, uid_seed="stress")
    write_dicom_series(blob_volume(seed=3), context(), folder / "study2" / "stress_ac.dcm", "STRESS IRAC",
                       derived=False, attenuation_corrected=True, uid_seed="ac")
    (folder / "study1" / "report.txt").write_text("not an image\n")
    return folder


def test_batch_corrects_refuses_and_resumes(tmp_path):
    folder, out = archive(tmp_path), tmp_path / "out"
    listing = list_batch(folder)
    assert listing.is_batch and len(listing.items) == 3
    assert [i["reason"] for i in listing.ignored] == ["neither DICOM nor NIfTI"]

    code, message = correct(folder, "-o", out, "--method", "chang")
    assert code == 0, message
    rows = read_batch_summary(out / "summary.csv")
    assert {r["status"] for r in rows} <= {"corrected", "flagged", "refused"}
    done = [r for r in rows if r["status"] in ("corrected", "flagged")]
    refused = [r for r in rows if r["status"] == "refused"]
    assert len(rows) == 3 and len(done) == 2 and len(refused) == 1, rows
    assert refused[0]["input"].endswith("stress_ac.dcm") and refused[0]["output"] == ""
    assert sorted(p.name for p in out.iterdir()) == sorted([*(Path(r["output"]).name for r in done), "summary.csv"])
    assert all(r["reason"] for r in done if r["status"] == "flagged")  # the OOD reasons
    for word in ("already", "ATTN", "--force"):
        assert word in refused[0]["reason"] and word in message, (word, refused[0]["reason"])
    assert "report.txt" not in " ".join(r["input"] for r in rows)
    assert all(r["method"] == "chang" for r in rows)

    # Each output is what single-study correct gives for that series.
    for k, row in enumerate(done):
        single = correct_path(row["input"], tmp_path / f"single{k}", "chang")
        batch_volume, batch_context = read_dicom_volume(row["output"])
        single_volume, single_context = read_dicom_volume(single["output"])
        assert batch_volume.same_grid(single_volume) and batch_context.kind == single_context.kind
        np.testing.assert_array_equal(batch_volume.array, single_volume.array)

    # A rerun corrects nothing again and leaves the outputs byte for byte.
    before = {r["output"]: tree_hash(Path(r["output"])) for r in done}
    code, message = correct(folder, "-o", out, "--method", "chang")
    assert code == 0, message
    again = read_batch_summary(out / "summary.csv")
    assert [r["status"] for r in again] == ["skipped" if r in done else "refused" for r in rows]
    assert {r["output"]: tree_hash(Path(r["output"])) for r in done} == before


def test_batch_with_nifti_names_outputs_after_the_path(tmp_path):
    folder = tmp_path / "in"
    for name in ("a/rest.nii.gz", "b/rest.nii"):
        write_nifti(blob_volume(seed=len(name)), folder / name)
    code, message = correct(folder, "-o", tmp_path / "out", "--method", "chang")
    assert code == 0, message
    rows = read_batch_summary(tmp_path / "out" / "summary.csv")
    assert [Path(r["output"]).name for r in rows] == ["a__rest.nii.gz", "b__rest.nii.gz"]
    single = correct_path(folder / "b/rest.nii", tmp_path / "single.nii.gz", "chang")
    np.testing.assert_array_equal(read_nifti(rows[1]["output"]).array, read_nifti(single["output"]).array)


def test_a_folder_of_one_series_is_still_one_study(tmp_path):
    source = tmp_path / "one" / "nested"
    write_dicom_series(blob_volume(), context(kind="slices"), source, "REST IRNC", derived=False,
                       attenuation_corrected=False, uid_seed="one")
    code, message = correct(tmp_path / "one", "-o", tmp_path / "ac", "--method", "chang")
    assert code == 0, message
    assert read_dicom_volume(tmp_path / "ac")[0].shape == blob_volume().shape  # the series itself, no summary
    assert not (tmp_path / "ac" / "summary.csv").exists()


def test_bad_batches_are_one_line_exit_2(tmp_path):
    folder = archive(tmp_path)
    code, message = correct(folder, "-o", folder / "out", "--method", "chang")
    assert code == 2 and "inside the input" in message, message
    empty = tmp_path / "empty"
    (empty / "docs").mkdir(parents=True)
    (empty / "docs" / "notes.txt").write_text("x")
    code, message = correct(empty, "-o", tmp_path / "o2", "--method", "chang", "--batch")
    assert code == 2 and "nothing to correct" in message, message
    code, message = correct(folder, "-o", tmp_path / "o3", "--method", "chang", "--overwrite")
    assert code == 2 and "--overwrite does not apply" in message, message
    assert not (tmp_path / "o2").exists() and not (tmp_path / "o3").exists() and not (folder / "out").exists()


def test_series_sharing_a_folder_are_told_apart(tmp_path):
    """Slices of two series in one folder: each is its own row (the stray slice is a 2D image)."""
    folder = tmp_path / "mixed"
    write_dicom_series(blob_volume(), context(kind="slices"), folder, "A", derived=False,
                       attenuation_corrected=False, uid_seed="m1")
    write_dicom_series(blob_volume(seed=3), context(kind="slices"), tmp_path / "other", "B", derived=False,
                       attenuation_corrected=False, uid_seed="m2")
    (folder / "zz_other.dcm").write_bytes(next((tmp_path / "other").iterdir()).read_bytes())
    code, message = correct(folder, "-o", tmp_path / "out", "--method", "nc")
    assert code == 0, message
    rows = read_batch_summary(tmp_path / "out" / "summary.csv")
    assert sorted(r["status"] for r in rows)[1:] == ["refused"] and len(rows) == 2, rows
    refused = next(r for r in rows if r["status"] == "refused")
    assert "zz_other.dcm" in refused["reason"] and "2D image" in refused["reason"]
    written = next(r for r in rows if r["status"] != "refused")
    assert read_dicom_volume(written["output"])[0].shape == blob_volume().shape


def test_a_batch_with_report_writes_one_report_per_corrected_series(tmp_path):
    """--report acts per series (not a method option): each output gets its HTML and PDF."""
    folder = tmp_path / "in"
    for name in ("a/rest.nii.gz", "b/stress.nii.gz"):
        write_nifti(blob_volume(seed=len(name)), folder / name)
    code, message = correct(folder, "-o", tmp_path / "out", "--method", "chang", "--report", "--sex", "F")
    assert code == 0, message
    rows = read_batch_summary(tmp_path / "out" / "summary.csv")
    assert [r["status"] for r in rows] != [] and all(r["status"] in ("corrected", "flagged") for r in rows), rows
    for row in rows:
        stem = Path(row["output"]).name.removesuffix(".nii.gz")
        assert (tmp_path / "out" / f"{stem}.report.pdf").read_bytes().startswith(b"%PDF")
        assert "Not for diagnostic use" in (tmp_path / "out" / f"{stem}.report.html").read_text()
