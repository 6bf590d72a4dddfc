"""benchmarks/compare_runs.py, summarise_run.py and uncertainty.py: two runs' predictions compared
voxel by voxel (the table says how many are bit-identical and by how much the others differ; exit
1 when a study is missing on one side); a folder that is not yet a predicted or evaluated run, or
a split without studies, refused in one line with exit 2."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
from benchmark_scripts import BENCHMARKS

from spectac.io.nifti import write_nifti
from spectac.io.run import RunFolder
from spectac.volume import Volume


def _script(name: str, *args: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(BENCHMARKS / f"{name}.py"), *map(str, args)],
                          capture_output=True, text=True)


def _run(folder: Path, images: dict[str, np.ndarray]) -> Path:
    run = RunFolder(folder)
    run.predictions_dir("net").mkdir(parents=True)
    for case_id, array in images.items():
        write_nifti(Volume(array.astype(np.float32), (6.8, 6.8, 6.8)), run.prediction_path("net", case_id))
    return folder


def test_compare_runs_finds_a_changed_voxel_and_a_missing_study(tmp_path: Path) -> None:
    image = np.random.default_rng(0).random((8, 8, 8)) * 100
    changed = image.copy()
    changed[3, 4, 5] += 2.5
    a = _run(tmp_path / "a", {"S0": image, "S1": image})
    same = _script("compare_runs", a, _run(tmp_path / "b", {"S0": image, "S1": image}))
    assert same.returncode == 0, same.stderr
    assert "| net | 2 | 2 | 0 | 0 |" in same.stdout
    differ = _script("compare_runs", a, _run(tmp_path / "c", {"S0": image, "S1": changed}))
    assert differ.returncode == 0 and "| net | 2 | 1 | 2.5 |" in differ.stdout
    fewer = _script("compare_runs", a, _run(tmp_path / "d", {"S0": image}))
    assert fewer.returncode == 1 and "(sets differ)" in fewer.stdout


def test_a_folder_without_predictions_or_scores_is_refused_in_one_line(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    refused = _script("compare_runs", _run(tmp_path / "a", {"S0": np.ones((4, 4, 4))}), empty)
    assert refused.returncode == 2 and refused.stderr.strip().splitlines() == [
        f"{empty}: no predictions folder; run `spectac predict --out {empty}` first"]
    unscored = _script("summarise_run", tmp_path / "a")
    assert unscored.returncode == 2 and len(unscored.stderr.strip().splitlines()) == 1
    assert "table1.md: no such file; score the run with `spectac evaluate` first" in unscored.stderr


def test_uncertainty_refuses_a_split_without_studies(tmp_path: Path) -> None:
    from spectac.simulate import SimulationConfig, simulate_cohort

    data = tmp_path / "train_only"
    simulate_cohort(data, patients=1, seed=0, config=SimulationConfig.build(iterations=1, subsets=2, split="1/0/0"))
    refused = _script("uncertainty", data, "--conditions", "in")
    assert refused.returncode == 2 and refused.stderr.strip().splitlines() == [f"{data}: no study in the val split"]
