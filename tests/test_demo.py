"""`spectac demo`, the main job, end to end on one patient: every part of the report is there, the
outputs are complete, and a second run resumes instead of starting over."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from spectac.cli import app
from spectac.demo import shipped_networks


def test_demo_writes_the_whole_report_and_resumes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SPECTAC_PROGRESS", "0")
    out = tmp_path / "demo"
    runner = CliRunner()
    result = runner.invoke(app, ["demo", "--out", str(out), "--patients", "1", "--workers", "1"])
    assert result.exit_code == 0, result.output
    run = out / "run"
    methods = {"nc", "chang", *shipped_networks()}
    assert shipped_networks(), "the package ships trained networks"
    metrics = pd.read_csv(run / "metrics.csv")
    assert set(metrics["method"]) == methods and len(metrics) == 2 * len(methods)  # rest + stress
    clinical = pd.read_csv(run / "clinical.csv")
    assert set(clinical["method"]) == methods | {"ac"}
    report = (run / "report.html").read_text()
    for section in ("Table 1", "Slices", "Polar maps", "TPD and SSS", "Bland-Altman", "Defect detection"):
        assert section in report, section
    assert "<script" not in report and report.count("data:image/png;base64,") >= 6  # self-contained
    assert report.strip().endswith("</html>")

    # a second run keeps the simulated studies and predictions it finds
    stamps = {p: p.stat().st_mtime_ns for p in (out / "data" / "studies").rglob("*.nii.gz")}
    stamps.update({p: p.stat().st_mtime_ns for p in (run / "predictions").rglob("*.nii.gz")})
    again = runner.invoke(app, ["demo", "--out", str(out), "--patients", "1", "--workers", "1"])
    assert again.exit_code == 0, again.output
    assert all(p.stat().st_mtime_ns == t for p, t in stamps.items())
