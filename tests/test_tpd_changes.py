"""benchmarks/tpd_changes.py: studies counted within the TPD band in each run, the ones that leave
and enter it, how far a study's TPD moves; a study without an LV counts as a miss and is left out of
the moves; runs with other CT-AC scores, or no clinical.csv, exit 2."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
from benchmark_scripts import BENCHMARKS, load_benchmark

SCRIPT = BENCHMARKS / "tpd_changes.py"


def _clinical(net: list[float], ref: list[float] | None = None) -> pd.DataFrame:
    ref = ref or [5.0, 5.0, 5.0, 5.0, np.nan]
    ids = ["A", "B", "C", "D", "E"]
    return pd.DataFrame([{"case_id": c, "method": "ac", "tpd": t} for c, t in zip(ids, ref)]
                        + [{"case_id": c, "method": "net", "tpd": t} for c, t in zip(ids, net)])


def test_counts_and_moves_between_two_runs() -> None:
    script = load_benchmark("tpd_changes")
    a = _clinical([5.5, 7.5, 6.0, 9.0, 5.0])    # within, out, within, out; E has no CT-AC LV
    b = _clinical([5.5, 6.5, 8.0, np.nan, 5.0])  # within, entered, left, no LV (a miss)
    c = script.tpd_changes(a, b, "net")
    assert (c["studies"], c["within_a"], c["within_b"], c["left"], c["entered"]) == (4, 2, 2, 1, 1)
    # moves over A, B, C (D has no LV in B): 0, 1, 2
    assert (c["compared"], c["moved"], c["median_move"], c["max_move"]) == (3, 2, 1.0, 2.0)
    with np.testing.assert_raises(ValueError):
        script.tpd_changes(a, _clinical([5.5] * 5, ref=[5.0, 5.0, 5.0, 6.0, np.nan]), "net")
    with np.testing.assert_raises(ValueError):
        script.tpd_changes(a, b, "other")


def test_a_run_without_clinical_scores_or_other_references_exits_2(tmp_path: Path) -> None:
    for name, table in (("a", _clinical([5.0] * 5)), ("b", _clinical([5.0] * 5, ref=[1.0] * 5))):
        (tmp_path / name).mkdir()
        table.to_csv(tmp_path / name / "clinical.csv", index=False)
    (tmp_path / "empty").mkdir()
    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True)

    a, b, empty = (str(tmp_path / name) for name in ("a", "b", "empty"))
    for result in (run(a, empty), run(a, b, "--method", "net"), run(a, a, "--method", "other")):
        assert result.returncode == 2 and result.stderr.strip(), result.stderr
    ok = run(a, a, "--method", "net")
    assert ok.returncode == 0 and "4 (A) and 4 (B)" in ok.stdout
