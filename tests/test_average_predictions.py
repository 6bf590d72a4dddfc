"""benchmarks/average_predictions.py: the weighted mean of two runs' predictions, written as
``spectac predict`` writes them; resumes; refuses runs that do not pair, writing nothing."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
from benchmark_scripts import BENCHMARKS

from spectac.io.nifti import read_nifti, write_nifti
from spectac.io.run import RunFolder
from spectac.volume import Volume

SCRIPT = BENCHMARKS / "average_predictions.py"
METHOD = "unet-gan3d-chang"


def _run_folder(root: Path, values: dict[str, float], dataset: str = "/data/cohort", origin=(0.0, 0.0, 0.0)) -> Path:
    folder = RunFolder(root)
    folder.write_prediction_config(METHOD, {"method": METHOD, "options": {"weights": str(root)}, "dataset": dataset,
                                            "split": "val"})
    rng = np.random.default_rng(len(str(root)))
    for case, value in values.items():
        array = value + rng.random((6, 5, 4)).astype(np.float32)
        write_nifti(Volume(array, (6.8, 6.8, 6.8), origin), folder.prediction_path(METHOD, case))
    return root


def _average(*args: Path | str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(SCRIPT), *map(str, args)], capture_output=True, text=True)


def test_writes_the_weighted_mean_and_records_its_sources(tmp_path: Path) -> None:
    a = _run_folder(tmp_path / "a", {"P001_rest": 10.0, "P001_stress": 20.0})
    b = _run_folder(tmp_path / "b", {"P001_rest": 30.0, "P001_stress": 5.0})
    out = tmp_path / "out"
    result = _average(a, b, out, "--weight", "0.25")
    assert result.returncode == 0, result.stderr
    assert "2 averaged, 0 already present" in result.stdout
    for case in ("P001_rest", "P001_stress"):
        va, vb, mean = (read_nifti(RunFolder(r).prediction_path(METHOD, case)) for r in (a, b, out))
        np.testing.assert_allclose(mean.array, 0.25 * va.array + 0.75 * vb.array, rtol=1e-6)
        assert mean.same_grid(va)
    config = json.loads(RunFolder(out).prediction_config(METHOD).read_text())
    assert config["options"]["ensemble"] == {"a": str(a.resolve()), "b": str(b.resolve()), "weight_a": 0.25}
    assert config["dataset"] == "/data/cohort"
    # run again: everything kept; with another weight: refused
    again = _average(a, b, out, "--weight", "0.25")
    assert again.returncode == 0 and "0 averaged, 2 already present" in again.stdout
    other = _average(a, b, out, "--weight", "0.5")
    assert other.returncode == 2 and len(other.stderr.strip().splitlines()) == 1


def test_runs_that_do_not_pair_are_refused_and_nothing_is_written(tmp_path: Path) -> None:
    a = _run_folder(tmp_path / "a", {"P001_rest": 1.0, "P001_stress": 2.0})
    cases = {
        "fewer studies": _run_folder(tmp_path / "b1", {"P001_rest": 1.0}),
        "another dataset": _run_folder(tmp_path / "b2", {"P001_rest": 1.0, "P001_stress": 2.0}, dataset="/other"),
        "another grid": _run_folder(tmp_path / "b3", {"P001_rest": 1.0, "P001_stress": 2.0}, origin=(5.0, 0.0, 0.0)),
        "no predictions": tmp_path / "b4",
    }
    for name, b in cases.items():
        out = tmp_path / f"out_{name.replace(' ', '_')}"
        result = _average(a, b, out)
        assert result.returncode == 2, (name, result.stderr)
        assert len(result.stderr.strip().splitlines()) == 1, (name, result.stderr)
        assert not out.exists(), name
    result = _average(a, a, tmp_path / "out_weight", "--weight", "1.5")
    assert result.returncode == 2 and not (tmp_path / "out_weight").exists()
