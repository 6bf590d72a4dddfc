"""benchmarks/tpd_bands.py: the TPD agreement with CT-AC by band of CT-AC's TPD, pooled over runs."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
from benchmark_scripts import BENCHMARKS, load_benchmark

SCRIPT = BENCHMARKS / "tpd_bands.py"


def _clinical(run: Path, ac: list[float], net: list[float]) -> Path:
    ids = [f"P{i:03d}_stress" for i in range(len(ac))]
    run.mkdir()
    pd.DataFrame([{"case_id": c, "method": m, "tpd": t}
                  for m, tpds in (("ac", ac), ("net", net)) for c, t in zip(ids, tpds)]).to_csv(run / "clinical.csv")
    return run


def test_bands_pool_runs_and_count_misses_by_side(tmp_path: Path) -> None:
    bands = load_benchmark("tpd_bands")
    # two runs with the same case ids: pooled as four studies, not merged
    a = _clinical(tmp_path / "a", [1.0, 15.0], [1.5, 10.0])            # 15 -> 10: 5 below
    b = _clinical(tmp_path / "b", [2.0, 25.0, np.nan], [7.0, np.nan, 3.0])  # 2 -> 7 above; 25: no LV in net's
    table = bands.bands(bands.pooled_tpd([a, b]), [4.0, 20.0]).set_index("reference TPD")
    assert list(table.index) == ["0-4", "4-20", ">= 20", "all"]
    assert table.loc["0-4", ["studies", "within", "below", "above"]].tolist() == [2, 1, 0, 1]
    assert table.loc["0-4", "median difference"] == 2.75
    assert table.loc["4-20", ["studies", "within", "below", "above"]].tolist() == [1, 0, 1, 0]
    # a study without an LV in the method's image is a miss on neither side, and has no difference
    assert table.loc[">= 20", ["studies", "within", "below", "above"]].tolist() == [1, 0, 0, 0]
    assert np.isnan(table.loc[">= 20", "median difference"])
    # over all bands: the sums of the bands, the median of every difference
    assert table.loc["all", ["studies", "within", "below", "above"]].tolist() == [4, 1, 1, 1]
    assert table.loc["all", "median difference"] == 0.5  # of +0.5, -5, +5
    result = subprocess.run([sys.executable, str(SCRIPT), str(a), str(b), "--edges", "4,20"],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "| net | 0-4 | 2 | 50% (1/2) | +2.75 | 0 | 1 |" in result.stdout


def test_an_indirect_qc_csv_is_read_with_its_ct_ac_rows_as_the_reference(tmp_path: Path) -> None:
    bands = load_benchmark("tpd_bands")
    rows = [("P000_stress", "CT-AC", 10.0), ("P000_stress", "direct", 6.0), ("P000_stress", "in distribution", 11.0),
            ("P000_rest", "CT-AC", 1.0), ("P000_rest", "direct", 1.5), ("P000_rest", "in distribution", 1.0)]
    csv = tmp_path / "indirect.csv"
    pd.DataFrame(rows, columns=["case_id", "condition", "tpd"]).to_csv(csv, index=False)
    run = _clinical(tmp_path / "run", [12.0], [12.5])  # pooled with a run's clinical.csv
    table = bands.bands(bands.pooled_tpd([csv, run]), [4.0])
    by = {(r["method"], r["reference TPD"]): (r["studies"], r["within"], r["below"]) for r in table.to_dict("records")}
    assert by[("direct", ">= 4")] == (2, 0, 1)  # the run has no "direct": its study is a miss on neither side
    assert by[("in distribution", ">= 4")] == (2, 1, 0)
    assert by[("net", ">= 4")] == (2, 1, 0) and by[("direct", "0-4")] == (1, 1, 0)
    # the exact correction as the reference: CT-AC is then compared like the others (10 vs 11: within)
    table = bands.bands(bands.pooled_tpd([csv], "in distribution"), [4.0], "in distribution")
    by = {(r["method"], r["reference TPD"]): (r["studies"], r["within"], r["below"]) for r in table.to_dict("records")}
    assert by[("ac", ">= 4")] == (1, 1, 0) and by[("direct", ">= 4")] == (1, 0, 1)
    (tmp_path / "other.csv").write_text("case_id,tpd\nP000_stress,1.0\n")
    result = subprocess.run([sys.executable, str(SCRIPT), str(tmp_path / "other.csv")], capture_output=True, text=True)
    assert result.returncode == 2 and "no condition column" in result.stderr


def test_bad_input_exits_2(tmp_path: Path) -> None:
    a = _clinical(tmp_path / "a", [1.0], [1.0])
    (tmp_path / "empty").mkdir()
    for args in ((a, "--edges", "8,4"), (a, "--edges", "x"), (tmp_path / "empty",)):
        result = subprocess.run([sys.executable, str(SCRIPT), *map(str, args)], capture_output=True, text=True)
        assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1, result.stderr
