"""benchmarks/fit_changes.py: each side's agreement counts over its own CT-AC fits, images without an
LV, the fits that moved or were found on one side only; bad input exits 2."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
from benchmark_scripts import BENCHMARKS

SCRIPT = BENCHMARKS / "fit_changes.py"


def _clinical(ac: list[float], net: list[float]) -> pd.DataFrame:
    ids = ["A", "B", "C"]
    return pd.DataFrame([{"case_id": c, "method": m, "tpd": t}
                         for m, tpds in (("ac", ac), ("net", net)) for c, t in zip(ids, tpds)])


def _run(*args: Path | str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(SCRIPT), *map(str, args)], capture_output=True, text=True)


def test_counts_each_side_over_its_own_reference_and_lists_the_moves(tmp_path: Path) -> None:
    # after the change CT-AC's A is refitted (23.9 -> 0.5) and its C found; the network's B is lost
    tables = {"before": _clinical([23.9, 5.0, np.nan], [0.4, 5.5, 7.0]),
              "after": _clinical([0.5, 5.0, 7.5], [0.4, np.nan, 7.0 + 0.005])}
    for name, table in tables.items():
        (tmp_path / name).mkdir()
        table.to_csv(tmp_path / name / "clinical.csv", index=False)
    result = _run(tmp_path / "before", tmp_path / "after")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("before:") and "net 1/2" in lines[0] and "without an LV: 1 of 6" in lines[0]
    assert lines[1].startswith("after:") and "net 2/3" in lines[1] and "without an LV: 1 of 6" in lines[1]
    assert "by more than 0.01 points: 1, by more than 2: 1, found on one side only: 2" in lines[2]
    assert sorted(lines[3:]) == ["  A ac: 23.90 -> 0.50", "  B net: 5.50 -> no LV", "  C ac: no LV -> 7.50"]


def test_bad_input_exits_2(tmp_path: Path) -> None:
    for name, table in (("a", _clinical([1.0] * 3, [1.0] * 3)), ("b", _clinical([1.0] * 3, [1.0] * 3).iloc[:5])):
        (tmp_path / name).mkdir()
        table.to_csv(tmp_path / name / "clinical.csv", index=False)
    (tmp_path / "empty").mkdir()
    for args in ((tmp_path / "a",), (tmp_path / "a", tmp_path / "empty"), (tmp_path / "a", tmp_path / "b")):
        result = _run(*args)
        assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1, result.stderr
