"""Clinical evaluation: the statistics against brute force, and `spectac evaluate` end to end on a
tiny dataset of synthetic LV shells (normals built from its training split)."""

from __future__ import annotations

import itertools
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from quant_shapes import draw_shell, shell_geometry

from spectac.evaluation.clinical import bland_altman, bootstrap_auc_ci, roc_auc, roc_curve, weighted_kappa
from spectac.evaluation.harness import evaluate_run
from spectac.io.dataset import Case, write_manifest, write_study
from spectac.volume import Volume


def test_roc_auc_equals_the_fraction_of_correctly_ordered_pairs() -> None:
    rng = np.random.default_rng(1)
    scores = np.round(rng.normal(size=40), 1)  # rounding makes ties
    labels = rng.random(40) < 0.4
    pairs = [(1.0 if p > n else 0.5 if p == n else 0.0) for p, n in itertools.product(scores[labels], scores[~labels])]
    assert roc_auc(scores, labels) == pytest.approx(np.mean(pairs))
    fpr, tpr = roc_curve(scores, labels)
    assert np.trapezoid(tpr, fpr) == pytest.approx(np.mean(pairs))
    lo, hi = bootstrap_auc_ci(scores, labels, n=300, seed=3)
    assert lo <= roc_auc(scores, labels) <= hi
    assert (lo, hi) == bootstrap_auc_ci(scores, labels, n=300, seed=3)  # seeded
    assert np.isnan(roc_auc(scores, np.zeros(40, bool)))


def test_weighted_kappa_and_bland_altman() -> None:
    a = np.array([0, 1, 2, 3, 4, 0, 1])
    assert weighted_kappa(a, a) == pytest.approx(1.0)
    # two raters: observed [[1, 1], [0, 2]] over 4 items with 2 categories (quadratic = linear weights)
    # po_disagree = 1/4; expected marginals rows (1/2, 1/2), cols (1/4, 3/4) -> pe_disagree = 1/2
    assert weighted_kappa(np.array([0, 0, 1, 1]), np.array([0, 1, 1, 1]), categories=2) == pytest.approx(0.5)
    worse = weighted_kappa(a, np.clip(a + 2, 0, 4))
    assert worse < weighted_kappa(a, np.clip(a + 1, 0, 4)) < 1.0
    ba = bland_altman(np.array([3.0, 5.0, 7.0]), np.array([1.0, 4.0, 5.0]))
    assert ba["mean_diff"] == pytest.approx(5 / 3)
    assert ba["loa_high"] - ba["loa_low"] == pytest.approx(2 * 1.96 * np.std([2, 1, 2], ddof=1))


def _study(truth, seed: int, defect=None) -> dict[str, Volume]:
    ac = draw_shell(truth, shape=(40, 40, 40), supersample=2, torso=True, liver=0.7, seed=seed, defect=defect)
    x = (np.arange(40) - 19.5) * 6.8
    depth = np.clip(1 - (x[None, :, None] + 100) / 250, 0, 1)  # posterior walls lose more counts in NC
    nc = ac.with_array((ac.array * (0.6 - 0.3 * depth)).astype(np.float32))
    return {"nc": nc, "ac": ac}


def _dataset(root: Path, plan: list[tuple[str, str, bool]], sexes: str = "MF") -> Path:
    """A dataset of shell studies: (patient, split, stress-only LAD defect) per patient."""
    data, run = root / "data", root / "run"
    rng = np.random.default_rng(7)
    cases, lad = [], (-30, 90, 0.0, 1.3, 0.3)
    for i, (patient, split, ischemia) in enumerate(plan):
        truth = shell_geometry(np.array([1.0, -1.0, -1.0]) + rng.normal(0, 0.1, 3), rng.normal(0, 5, 3) + [15, -10, 0])
        for state in ("rest", "stress"):
            shows = ischemia and state == "stress"
            write_study(data, f"{patient}_{state}", _study(truth, 10 * i + len(state), lad if shows else None))
            cases.append(Case(f"{patient}_{state}", patient, state, sexes[i % len(sexes)],
                              defect_type="ischemia" if ischemia
                              else "none", defect_territory="LAD" if ischemia else "",
                              defect_severity=0.7 if shows else 0.0, split=split))
    write_manifest(data, {"source": "test"}, cases)
    for case in cases:
        if case.split == "test":
            for method in ("nc", "copy"):
                folder = run / "predictions" / method
                folder.mkdir(parents=True, exist_ok=True)
                source = "nc" if method == "nc" else "ac"
                shutil.copy(data / "studies" / case.case_id / f"{source}.nii.gz", folder / f"{case.case_id}.nii.gz")
    return run


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # 6 normal training patients, 3 of each sex: every sex and state has the 3 studies limits need
    plan = [(f"N{i}", "train", False) for i in range(6)] + [("T0", "test", False), ("T1", "test", True),
                                                           ("T2", "test", True)]
    run = _dataset(tmp_path_factory.mktemp("clinical"), plan)
    evaluate_run(run.parent / "data", run, "test")
    return run


def test_evaluate_writes_clinical_tables(run: Path) -> None:
    clinical = pd.read_csv(run / "clinical.csv")
    assert sorted(set(clinical["method"])) == ["ac", "copy", "nc"]
    assert len(clinical) == 6 * 3 and clinical["lv_found"].all()
    assert (run / "normals.npz").is_file()  # built from the 6 normal training patients
    agreement = pd.read_csv(run / "clinical_agreement.csv").set_index("method")
    # a method that returns CT-AC itself agrees perfectly with CT-AC
    assert agreement.loc["copy", "tpd_abs_diff_mean"] == 0 and agreement.loc["copy", "tpd_within_1_pct"] == 100
    assert agreement.loc["copy", "segment_kappa"] == pytest.approx(1.0)
    assert agreement.loc["ac", "tpd_mean"] == pytest.approx(agreement.loc["copy", "tpd_mean"])
    # the LAD defects show: stress TPD of the ischaemic patients above the normal one, under AC
    stress = clinical[(clinical["state"] == "stress") & (clinical["method"] == "ac")].set_index("patient_id")
    assert min(stress.loc["T1", "tpd"], stress.loc["T2", "tpd"]) > stress.loc["T0", "tpd"] + 5
    assert stress.loc["T1", "tpd_LAD"] > stress.loc["T1", "tpd_RCA"]
    detection = pd.read_csv(run / "detection.csv").set_index(["method", "target"])
    assert detection.loc[("ac", "any"), "auc"] == 1.0 and detection.loc[("ac", "any"), "positives"] == 2
    patients = pd.read_csv(run / "clinical_patients.csv")
    row = patients[(patients["patient_id"] == "T1") & (patients["method"] == "ac")].iloc[0]
    assert row["sds"] == row["sss"] - row["srs"] and row["sds"] > 0
    # the reversibility scores that never go negative, and the count-based severity
    assert row["sds_seg"] >= row["sds"] and row["ischemic_tpd"] > 5
    assert (patients["sds_seg"] >= 0).all() and (patients["ischemic_tpd"] >= 0).all()
    assert stress.loc["T1", "count_deficit"] > stress.loc["T0", "count_deficit"] + 5
    report = (run / "report.html").read_text()
    assert "Clinical quantification against CT-AC" in report and "Defect detection" in report
    assert "built from the 6 normal patients" in report


def test_evaluate_with_too_few_normals_uses_the_shipped_limits_and_says_why(tmp_path: Path) -> None:
    """2 normal training patients (4 studies): no group reaches 3 studies, so the shipped limits
    score the run (no error, nothing saved), and the report says so and why."""
    from spectac.evaluation.clinical import choose_normals
    from spectac.io.dataset import Dataset
    from spectac.quant.normals import NormalDatabase

    run = _dataset(tmp_path, [("N0", "train", False), ("N1", "train", False), ("T0", "test", True)])
    data = run.parent / "data"
    db, note = choose_normals(Dataset.open(data), run, save_to=run / "normals.npz")
    assert db.meta == NormalDatabase.load(None).meta
    assert "shipped with spectac" in note and "at least 3 normal studies of each sex and state" in note
    assert "M stress: 1" in note
    assert not (run / "normals.npz").exists()
    evaluate_run(data, run, "test")
    assert not (run / "normals.npz").exists()
    clinical = pd.read_csv(run / "clinical.csv")
    assert clinical["tpd"].notna().all()
    assert "shipped with spectac" in (run / "report.html").read_text()


def test_normals_and_detect_lv_commands(run: Path, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from spectac.cli import app
    from spectac.quant.normals import NormalDatabase

    data = run.parent / "data"
    invoke = CliRunner().invoke
    env = {"SPECTAC_PROGRESS": "0"}
    result = invoke(app, ["normals", "--data", str(data), "--out", str(tmp_path / "n.npz")], env=env)
    assert result.exit_code == 0, result.output
    assert "6 normal patients, 12 studies" in result.output
    built, shipped_by_run = NormalDatabase.load(tmp_path / "n.npz"), NormalDatabase.load(run / "normals.npz")
    np.testing.assert_allclose(built.limits("ac", "F", "rest").mean, shipped_by_run.limits("ac", "F", "rest").mean)
    # bad input: one line naming the problem, exit 2, nothing written
    for args, message in [
        (["normals", "--data", str(tmp_path / "nope"), "--out", str(tmp_path / "m.npz")], "no such dataset"),
        (["normals", "--data", str(data), "--out", str(tmp_path / "m.txt")], "is an .npz file"),
        (["detect-lv", "--data", str(data)], "no study with an lv.json"),
    ]:
        result = invoke(app, args, env=env)
        assert result.exit_code == 2 and message in result.output and len(result.output.strip().splitlines()) == 1
    assert not (tmp_path / "m.npz").exists() and not (tmp_path / "m.txt").exists()


def test_detection_keeps_a_study_whose_lv_was_not_found_as_an_abnormal_call() -> None:
    from spectac.evaluation.clinical import detection_table

    rows = []
    for i, (defect, tpd) in enumerate([(True, 20.0), (True, 15.0), (False, 1.0), (False, 0.5), (True, np.nan)]):
        rows.append({"case_id": f"p{i}_stress", "patient_id": f"p{i}", "state": "stress", "method": "x",
                     "lv_found": not np.isnan(tpd), "tpd": tpd, "has_defect": defect,
                     "defect_territories": "LAD" if defect else "", "tpd_LAD": tpd, "tpd_RCA": 0.0, "tpd_LCx": 0.0})
    table = detection_table(pd.DataFrame(rows)).set_index("target")
    assert table.loc["any", "n"] == 5 and table.loc["any", "lv_not_found"] == 1
    assert table.loc["any", "auc"] == 1.0  # the diseased study without an LV counts as a positive call
    rows[-1]["has_defect"], rows[-1]["defect_territories"] = False, ""  # now a false positive
    table = detection_table(pd.DataFrame(rows)).set_index("target")
    assert table.loc["any", "auc"] == pytest.approx(4 / 6)


def test_roc_curve_starts_at_the_origin_even_with_infinite_scores() -> None:
    fpr, tpr = roc_curve(np.array([np.inf, 5.0, 1.0, 0.5]), np.array([True, True, False, False]))
    assert (fpr[0], tpr[0]) == (0.0, 0.0) and (fpr[-1], tpr[-1]) == (1.0, 1.0)
    assert tpr[1] == 0.5 and fpr[1] == 0.0  # the study called abnormal at every threshold
