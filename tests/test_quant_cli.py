"""`spectac quantify`: one patient's stress (and rest) image scored from the command line."""

from __future__ import annotations

import json
from pathlib import Path

from quant_shapes import draw_shell, shell_geometry
from typer.testing import CliRunner

from spectac.cli import app
from spectac.io.nifti import write_nifti


def test_quantify_scores_a_patient_and_writes_polar_maps(tmp_path: Path) -> None:
    truth = shell_geometry((1.0, -1.0, -1.0), (15, -10, 0))
    shape = {"shape": (40, 40, 40), "supersample": 2, "torso": True, "liver": 0.7}
    write_nifti(draw_shell(truth, seed=1, defect=(-30, 90, 0.0, 1.3, 0.3), **shape), tmp_path / "stress.nii.gz")
    write_nifti(draw_shell(truth, seed=2, **shape), tmp_path / "rest.nii.gz")
    out = tmp_path / "q"
    result = CliRunner().invoke(app, ["quantify", str(tmp_path / "stress.nii.gz"), "--rest", str(tmp_path / "rest.nii.gz"),
                                      "--out", str(out)], env={"SPECTAC_PROGRESS": "0"})
    assert result.exit_code == 0, result.output
    assert "pooled" in result.output  # a NIfTI carries no PatientSex: say what was assumed
    scores = json.loads((out / "scores.json").read_text())
    assert scores["sex"] == "all" and scores["sds_seg"] >= 0 and scores["ischemic_tpd"] >= 0
    assert scores["stress_tpd"] > scores["rest_tpd"]
    assert (out / "stress_polar.png").stat().st_size > 0 and (out / "rest_polar.png").is_file()
    bad = CliRunner().invoke(app, ["quantify", str(tmp_path / "stress.nii.gz"), "--sex", "X"], env={"SPECTAC_PROGRESS": "0"})
    assert bad.exit_code == 2 and "--sex must be F or M" in bad.output


def test_quantify_reads_patient_sex_from_dicom(tmp_path: Path) -> None:
    from spectac.io.dicom import new_context, write_dicom_series

    truth = shell_geometry((1.0, -1.0, -1.0), (15, -10, 0))
    volume = draw_shell(truth, seed=3, shape=(40, 40, 40), supersample=2, torso=True, liver=0.7)
    context = new_context("P1", "1.2.826.0.1.3680043.2.1125.1", "1.2.826.0.1.3680043.2.1125.2", sex="F")
    path = write_dicom_series(volume, context, tmp_path / "dicom", uid_seed="quantify-test")
    result = CliRunner().invoke(app, ["quantify", str(path)], env={"SPECTAC_PROGRESS": "0"})
    assert result.exit_code == 0, result.output
    assert "sex F (PatientSex of the DICOM)" in result.output and "stress_tpd" in result.output


def test_quantify_says_the_patient_position_and_warns_when_prone(tmp_path: Path) -> None:
    from spectac.io.dicom import new_context, write_dicom_series

    truth = shell_geometry((1.0, -1.0, -1.0), (15, -10, 0))
    volume = draw_shell(truth, seed=4, shape=(40, 40, 40), supersample=2, torso=True, liver=0.7)
    context = new_context("P2", "1.2.826.0.1.3680043.2.1125.3", "1.2.826.0.1.3680043.2.1125.4", sex="M")
    context.series["00185100"] = {"vr": "CS", "Value": ["HFP"]}
    path = write_dicom_series(volume, context, tmp_path / "dicom", uid_seed="quantify-prone")
    result = CliRunner().invoke(app, ["quantify", str(path), "--out", str(tmp_path / "q")], env={"SPECTAC_PROGRESS": "0"})
    assert result.exit_code == 0, result.output
    assert "HFP: WARNING, not supine" in result.output and "LV fit confidence" in result.output
    scores = json.loads((tmp_path / "q" / "scores.json").read_text())
    assert scores["position"]["stress"].startswith("HFP") and scores["lv_confidence"]["stress"]


def test_position_notes() -> None:
    from spectac.quant.study import patient_position, position_note

    assert patient_position({}) == "" and patient_position({"00185100": {"vr": "CS", "Value": ["ffs "]}}) == "FFS"
    assert "missing: assumed supine" in position_note("")
    assert "supine, as the normal limits" in position_note("HFS")
    assert "WARNING" in position_note("FFP") and "assumed supine" in position_note("XYZ")
