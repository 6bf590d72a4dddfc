"""benchmarks/tpd_fixed_fit.py: each image's TPD on its own LV fit and on CT-AC's."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from benchmark_scripts import BENCHMARKS, load_benchmark
from quant_shapes import draw_shell, shell_geometry
from test_clinical import _dataset

from spectac.quant.normals import NormalDatabase

SCRIPT = BENCHMARKS / "tpd_fixed_fit.py"


def test_a_displaced_copy_agrees_on_its_own_fit_and_not_on_ct_acs() -> None:
    fixed = load_benchmark("tpd_fixed_fit")
    lad = (-30, 90, 0.0, 1.3, 0.4)  # an anterior defect the limits see
    ac = draw_shell(shell_geometry((1, -1, -1), (10, -10, 0)), shape=(40, 40, 40), supersample=2,
                    torso=True, defect=lad)
    shifted = ac.with_array(np.roll(ac.array, 2, axis=0))  # the same heart two voxels (13.6 mm) to the left
    tpd = fixed.study_tpds(ac, {"copy": ac, "shifted": shifted}, NormalDatabase.load(None), "M", "stress")
    assert tpd["ac"] > 5  # the defect scores
    assert tpd["copy"] == tpd["copy@ac-fit"] == tpd["ac"]
    # its own fit follows the heart: the TPD of the same polar map; CT-AC's fit misses its wall
    assert tpd["shifted"] == pytest.approx(tpd["ac"], abs=0.5)
    assert tpd["shifted@ac-fit"] > tpd["ac"] + 10
    blank = ac.with_array(np.zeros_like(ac.array))
    assert fixed.study_tpds(blank, {"copy": ac}, NormalDatabase.load(None), "M", "stress") is None


@pytest.fixture(scope="module")
def shell_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    plan = [("T0", "test", False), ("T1", "test", True)]
    return _dataset(tmp_path_factory.mktemp("fixed_fit"), plan, methods=("copy",))


def test_the_command_scores_every_study_and_writes_a_table_tpd_bands_reads(shell_run: Path) -> None:
    data, out = shell_run.parent / "data", shell_run.parent / "fixed.csv"
    result = subprocess.run([sys.executable, str(SCRIPT), str(data), str(shell_run), "--split", "test",
                             "--methods", "copy,nc", "--csv", str(out)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    table = pd.read_csv(out)
    assert len(table) == 4 * 5  # four studies: ac, copy, copy@ac-fit, nc, nc@ac-fit
    wide = table.pivot_table(index="case_id", columns="method", values="tpd")
    assert (wide["copy"] == wide["ac"]).all() and (wide["copy@ac-fit"] == wide["ac"]).all()
    assert "| copy@ac-fit | 0-4 |" in result.stdout
    bands = subprocess.run([sys.executable, str(BENCHMARKS / "tpd_bands.py"), str(out), "--edges", "1000"],
                           capture_output=True, text=True)
    assert bands.returncode == 0, bands.stderr
    assert "| copy | 0-1000 | 4 | 100% (4/4) |" in bands.stdout


def test_missing_predictions_exit_2_and_write_nothing(shell_run: Path) -> None:
    data, out = shell_run.parent / "data", shell_run.parent / "none.csv"
    result = subprocess.run([sys.executable, str(SCRIPT), str(data), str(shell_run), "--split", "test",
                             "--methods", "unet-gan3d-chang", "--csv", str(out)], capture_output=True, text=True)
    assert result.returncode == 2 and "not every test study has a prediction of unet-gan3d-chang" in result.stderr
    assert result.stderr.count("\n") == 1 and not out.exists()
