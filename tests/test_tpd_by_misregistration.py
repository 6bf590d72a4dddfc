"""benchmarks/tpd_by_misregistration.py: studies counted in the band of their CT-AC mu-map
displacement, within 2 TPD points or not, over all and over confident CT-AC fits; a study whose
corrected image has no LV is left out; bad input exits 2. benchmarks/indirect_qc.py: each route's
TPD agreement with the indirect route's (the exact correction with --mu-model oracle)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
from benchmark_scripts import BENCHMARKS, load_benchmark

SCRIPT = BENCHMARKS / "tpd_by_misregistration.py"


def test_studies_fall_in_the_band_of_their_displacement() -> None:
    script = load_benchmark("tpd_by_misregistration")
    ids = ["A", "B", "C", "D", "E"]
    ref_tpd = [5.0, 5.0, 5.0, 5.0, 5.0]
    net_tpd = [5.5, 8.0, 6.0, 10.0, np.nan]  # within, out (3 points), within, out, no LV
    confidence = ["high", "high", "low: hot activity", "high", "high"]
    clinical = pd.DataFrame(
        [{"case_id": c, "method": "ac", "tpd": t, "lv_confidence": q} for c, t, q in zip(ids, ref_tpd, confidence)]
        + [{"case_id": c, "method": "net", "tpd": t, "lv_confidence": "high"} for c, t in zip(ids, net_tpd)])
    shifts = pd.Series({"A": 1.0, "B": 5.9, "C": 6.0, "D": 12.0, "E": 2.0})
    table = script.agreement_by_band(clinical, shifts, [6.0]).set_index("shift_mm")
    assert list(table.index) == ["0-6", "6+"] and set(table["method"]) == {"net"}
    assert table.loc["0-6", ["within", "n", "within_confident", "n_confident"]].tolist() == [1, 2, 1, 2]
    assert table.loc["6+", ["within", "n", "within_confident", "n_confident"]].tolist() == [1, 2, 0, 1]
    assert script.share(1, 2) == "50% (1/2)" and script.share(0, 0) == "-"


def test_a_run_without_clinical_scores_exits_2(tmp_path: Path) -> None:
    result = subprocess.run([sys.executable, str(SCRIPT), str(tmp_path), str(tmp_path)], capture_output=True,
                            text=True)
    assert result.returncode == 2 and "no clinical.csv" in result.stderr
    bad = subprocess.run([sys.executable, str(SCRIPT), str(tmp_path), str(tmp_path), "--edges", "-1"],
                         capture_output=True, text=True)
    assert bad.returncode == 2 and "--edges" in bad.stderr


def test_indirect_qc_counts_agreement_with_the_indirect_route() -> None:
    module = load_benchmark("indirect_qc")
    indirect = module.INDIRECT
    rows = [("A", "nc", 9.0), ("A", "direct", 5.5), ("A", indirect, 4.0), ("A", "CT-AC", 7.0),
            ("B", "nc", 3.0), ("B", "direct", 1.0), ("B", indirect, 2.0), ("B", "CT-AC", 2.5),
            ("C", "nc", 3.0), ("C", "direct", np.nan), ("C", indirect, 2.0), ("C", "CT-AC", 2.0)]
    routes = pd.DataFrame(rows, columns=["case_id", "condition", "tpd"])
    labels = {"nc": "NC", "direct": "direct", indirect: "indirect", "CT-AC": "CT-AC"}
    # NC: 5 and 1 points off (1 of 3 within); direct: 1.5 and 1 (C has no LV: 2 of 2); CT-AC: 3, 0.5, 0
    assert module.agreement_with_indirect(routes, labels) == "NC 67% of 3, direct 100% of 2, CT-AC 67% of 3"
    assert module.agreement_with_indirect(routes[routes["condition"] != indirect], labels) == ""
