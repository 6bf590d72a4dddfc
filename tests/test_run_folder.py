"""The run folder's layout is owned by spectac.io.run.RunFolder."""

from __future__ import annotations

from pathlib import Path

import pytest

from spectac.io.run import RunFolder
from spectac.volume import SpectacError


def test_run_folder_paths_and_methods(tmp_path: Path) -> None:
    run = RunFolder(tmp_path)
    assert run.methods() == []  # no predictions folder yet
    assert run.prediction_path("chang", "P000_rest") == tmp_path / "predictions" / "chang" / "P000_rest.nii.gz"
    assert run.predictions_dir("chang") == tmp_path / "predictions" / "chang"
    assert (run.metrics_csv, run.normals_npz, run.report_html) == (
        tmp_path / "metrics.csv", tmp_path / "normals.npz", tmp_path / "report.html")
    for method in ("unet3d", "nc", "chang"):
        run.write_prediction_config(method, {"method": method})
        run.prediction_path(method, "P000_rest").write_bytes(b"")
    (tmp_path / "predictions" / "empty").mkdir()  # a folder without predictions is no method
    assert run.methods() == ["nc", "chang", "unet3d"]
    assert run.prediction_files("nc") == {"P000_rest": run.prediction_path("nc", "P000_rest")}
    assert run.read_prediction_config("nc") == {"method": "nc"}
    assert run.read_prediction_config("other") is None
    run.prediction_config("nc").write_text("{")
    with pytest.raises(SpectacError, match="not valid JSON"):
        run.read_prediction_config("nc")
