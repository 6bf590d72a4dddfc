"""benchmarks/goals.py: the MAE ratio with Chang's MAE from the run itself or, with --chang, from
another run of the same studies; TPD agreement counted over studies with an LV in both; a run
without Chang's MAE, or another run of a different size, or a run not yet evaluated, exits 2."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pandas as pd
from benchmark_scripts import BENCHMARKS

SCRIPT = BENCHMARKS / "goals.py"


def _run(folder: Path, maes: dict[str, float], n: int, tpd: dict[str, list[float]] | None = None) -> Path:
    folder.mkdir()
    pd.DataFrame([{"method": m, "n": n, "mae_mean": v} for m, v in maes.items()]).to_csv(folder / "table1.csv",
                                                                                          index=False)
    rows = [{"case_id": f"S{i}", "method": m, "tpd": t, "lv_confidence": "high"}
            for m, values in (tpd or {}).items() for i, t in enumerate(values)]
    pd.DataFrame(rows, columns=["case_id", "method", "tpd", "lv_confidence"]).to_csv(folder / "clinical.csv",
                                                                                    index=False)
    return folder


def _goals(*args: Path | str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(SCRIPT), *map(str, args)], capture_output=True, text=True)


def test_the_mae_ratio_takes_changs_mae_from_the_run_or_from_another(tmp_path: Path) -> None:
    tpd = {"ac": [5.0, 10.0, 3.0, 8.0], "net": [6.5, 13.0, float("nan"), 8.0]}  # within, 3 off, no LV, within
    own = _goals(_run(tmp_path / "own", {"chang": 10.0, "net": 2.0}, 4, tpd))
    assert own.returncode == 0, own.stderr
    assert "| net | 0.200 | 67% (2/3) |" in own.stdout
    shifted = _run(tmp_path / "shifted", {"net": 1.5}, 4, tpd)
    other = _goals(shifted, "--chang", tmp_path / "own")
    assert other.returncode == 0 and "| net | 0.150 | 67% (2/3) |" in other.stdout


def test_no_changs_mae_or_another_size_exits_2(tmp_path: Path) -> None:
    alone = _run(tmp_path / "alone", {"net": 1.5}, 4)
    refused = _goals(alone)
    assert refused.returncode == 2 and "no Chang row" in refused.stderr
    smaller = _run(tmp_path / "smaller", {"chang": 10.0}, 3)
    mismatch = _goals(alone, "--chang", smaller)
    assert mismatch.returncode == 2 and "another number of studies" in mismatch.stderr


def test_a_run_not_yet_evaluated_exits_2_with_one_line(tmp_path: Path) -> None:
    run = _run(tmp_path / "run", {"chang": 10.0, "net": 2.0}, 4, {"ac": [1.0], "net": [1.0]})
    (run / "clinical.csv").unlink()  # predicted and scored for table 1, not yet for the clinical scores
    refused = _goals(run)
    assert refused.returncode == 2 and refused.stderr.strip().splitlines() == [
        f"{run / 'clinical.csv'}: no such file; score the run with `spectac evaluate` first"]
