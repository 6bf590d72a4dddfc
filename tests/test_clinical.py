"""Clinical evaluation: the statistics against brute force, and `spectac evaluate` end to end on a
tiny dataset of synthetic LV shells (normals built from its training split)."""

from __future__ import annotations

import itertools
import re
import shutil
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from quant_shapes import draw_shell, shell_geometry
from scipy import ndimage
from scipy.stats import mannwhitneyu, wilcoxon
from sklearn.metrics import roc_auc_score

from spectac.evaluation.agreement import bland_altman, weighted_kappa
from spectac.evaluation.concordance import nc_ac_summary, nc_ac_table
from spectac.evaluation.detection import (
    _resampled_auc,
    auc_difference_ci,
    bootstrap_auc_ci,
    detection_table,
    roc_auc,
    roc_curve,
    threshold_table,
)
from spectac.evaluation.harness import evaluate_run
from spectac.evaluation.stats import holm, paired_wilcoxon
from spectac.evaluation.summary import patient_bootstrap_ci
from spectac.evaluation.truth import VISIBLE_SEGMENT_LOSS, study_truth
from spectac.io.dataset import Case, write_manifest, write_study
from spectac.io.nifti import read_nifti, write_nifti
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


@pytest.mark.parametrize("seed", range(10))
def test_roc_auc_is_the_mann_whitney_u_over_the_pairs(seed: int) -> None:
    """The independent reference: AUC = U / (n_pos n_neg) (scipy's U counts ties one half), also with
    +inf scores (a study without an LV); and the bootstrap's vectorised AUC of a resample is
    roc_auc_score of the resampled data."""
    rng = np.random.default_rng(seed)
    n = int(rng.integers(6, 60))
    scores = np.round(rng.normal(size=n), 1)
    scores[rng.random(n) < 0.1] = np.inf
    labels = rng.random(n) < 0.4
    labels[:2] = [True, False]
    u = mannwhitneyu(scores[labels], scores[~labels]).statistic
    assert roc_auc(scores, labels) == pytest.approx(u / (labels.sum() * (~labels).sum()))
    pos, neg = np.flatnonzero(labels), np.flatnonzero(~labels)
    take_pos, take_neg = rng.choice(pos, len(pos)), rng.choice(neg, len(neg))
    w_pos = np.bincount(np.searchsorted(pos, take_pos), minlength=len(pos))[None]
    w_neg = np.bincount(np.searchsorted(neg, take_neg), minlength=len(neg))[None]
    take = np.concatenate([take_pos, take_neg])
    finite = np.where(np.isinf(scores), 1e9, scores)
    assert _resampled_auc(scores, labels, w_pos, w_neg)[0] == pytest.approx(roc_auc_score(labels[take], finite[take]))


def _kappa_reference(a: np.ndarray, b: np.ndarray, k: int = 5) -> float:
    """Quadratic-weighted kappa from its definition: 1 - sum w O / sum w E."""
    observed = np.zeros((k, k))
    np.add.at(observed, (a.ravel(), b.ravel()), 1.0)
    observed /= observed.sum()
    expected = np.outer(observed.sum(axis=1), observed.sum(axis=0))
    i, j = np.indices((k, k))
    w = (i - j) ** 2
    return float(1 - (w * observed).sum() / (w * expected).sum())


def test_weighted_kappa_and_bland_altman() -> None:
    a = np.array([0, 1, 2, 3, 4, 0, 1])
    assert weighted_kappa(a, a) == pytest.approx(1.0)
    # two raters: observed [[1, 1], [0, 2]] over 4 items with 2 categories (quadratic = linear weights)
    # po_disagree = 1/4; expected marginals rows (1/2, 1/2), cols (1/4, 3/4) -> pe_disagree = 1/2
    assert weighted_kappa(np.array([0, 0, 1, 1]), np.array([0, 1, 1, 1]), categories=2) == pytest.approx(0.5)
    worse = weighted_kappa(a, np.clip(a + 2, 0, 4))
    assert worse < weighted_kappa(a, np.clip(a + 1, 0, 4)) < 1.0
    rng = np.random.default_rng(0)
    for _ in range(5):
        x = rng.integers(0, 5, size=(20, 17))
        y = np.clip(x + rng.integers(-1, 2, size=x.shape), 0, 4)
        assert weighted_kappa(x, y) == pytest.approx(_kappa_reference(x, y))
    assert np.isnan(weighted_kappa(np.zeros(17, int), np.zeros(17, int)))  # one category: undefined
    ba = bland_altman(np.array([3.0, 5.0, 7.0]), np.array([1.0, 4.0, 5.0]))
    assert ba["mean_diff"] == pytest.approx(5 / 3)
    assert ba["loa_high"] - ba["loa_low"] == pytest.approx(2 * 1.96 * np.std([2, 1, 2], ddof=1))


def _case(state: str = "stress", defect: str = "ischemia") -> Case:
    return Case("P_stress", "P", state, "F", defect_type=defect, defect_territory="LAD", defect_severity=0.3,
                split="test")


def _lv(losses: dict[int, float]) -> dict:
    return {"segment_defect": {str(s): losses.get(s, 0.0) for s in range(1, 18)}}


def test_truth_is_a_segment_loss_a_reader_could_see() -> None:
    assert VISIBLE_SEGMENT_LOSS == 0.10
    faint = study_truth(_case(), _lv({7: 0.05, 13: 0.04}))  # a nominal LAD defect losing 5%: normal
    assert faint.abnormal is False and faint.territories == frozenset() and faint.max_loss == pytest.approx(0.05)
    clear = study_truth(_case(), _lv({7: 0.20, 13: 0.12, 2: 0.05}))
    assert clear.abnormal is True and clear.segments == (7, 13) and clear.territories == {"LAD"}
    assert clear.source == "segments"
    # an LAD defect spilling into the anterolateral wall (segments 6 and 12 are LCx): both territories
    spill = study_truth(_case(), _lv({7: 0.25, 12: 0.15, 6: 0.11, 3: 0.09}))
    assert spill.territories == {"LAD", "LCx"} and spill.segments == (6, 7, 12)
    # no per-segment truth: the nominal defect of cases.csv; imported data: unknown
    nominal = study_truth(_case(), None)
    assert nominal.abnormal is True and nominal.territories == {"LAD"} and nominal.source == "nominal"
    assert study_truth(_case(defect=""), None).abnormal is None


def test_paired_bootstrap_of_an_auc_difference_is_narrower_on_correlated_methods() -> None:
    """Two methods sharing most of their score (as two corrections of the same images do): the
    paired interval contains the point estimate and is much narrower than the unpaired one."""
    rng = np.random.default_rng(4)
    labels = rng.random(80) < 0.4
    common = labels * 1.0 + rng.normal(0, 1.0, 80)
    a, b = common + rng.normal(0, 0.2, 80), common + rng.normal(0, 0.2, 80)
    diff, lo, hi = auc_difference_ci(a, b, labels, n=1000, seed=1)
    assert diff == pytest.approx(roc_auc(a, labels) - roc_auc(b, labels))
    assert lo <= diff <= hi
    _, ulo, uhi = auc_difference_ci(a, b, labels, n=1000, seed=1, paired=False)
    assert ulo <= diff <= uhi
    assert hi - lo < 0.5 * (uhi - ulo)
    assert auc_difference_ci(a, a, labels, n=200)[1:] == (0.0, 0.0)  # a method against itself


def test_holm_against_a_hand_computed_example() -> None:
    # sorted: 0.005 x4 = 0.02, 0.01 x3 = 0.03, 0.03 x2 = 0.06, 0.04 x1 = 0.04 -> 0.06 (monotone)
    np.testing.assert_allclose(holm(np.array([0.01, 0.04, 0.03, 0.005])), [0.03, 0.06, 0.06, 0.02])
    np.testing.assert_allclose(holm(np.array([0.5, np.nan, 0.4])), [0.8, np.nan, 0.8])  # NaN: not in the family
    np.testing.assert_allclose(holm(np.array([0.3, 0.9])), [0.6, 0.9])  # 0.3 x 2; 0.9 x 1
    np.testing.assert_allclose(holm(np.array([0.6, 0.9])), [1.0, 1.0])  # 0.6 x 2 = 1.2, capped at 1


def test_wilcoxon_table_has_holm_and_says_why_a_test_is_undefined() -> None:
    rng = np.random.default_rng(0)
    rows = []
    for i in range(12):
        base = rng.normal(10, 1)
        for method, value in (("a", base), ("b", base + 0.5 + rng.normal(0, 0.2)), ("c", base)):
            rows.append({"case_id": f"s{i}", "method": method, "mae": value})
    tests = paired_wilcoxon(pd.DataFrame(rows), columns=("mae",)).set_index(["method_a", "method_b"])
    assert tests.loc[("a", "c"), "note"].startswith("n/a: every difference is 0")
    assert np.isnan(tests.loc[("a", "c"), "p_holm"])
    np.testing.assert_allclose(tests.loc[[("a", "b"), ("b", "c")], "p_holm"],
                               holm(tests.loc[[("a", "b"), ("b", "c")], "p_value"].to_numpy()))


def _stress_rows(method: str, truth_and_tpd: list[tuple[bool, float]]) -> list[dict]:
    rows = []
    for i, (abnormal, tpd) in enumerate(truth_and_tpd):
        rows.append({"case_id": f"p{i}_stress", "patient_id": f"p{i}", "state": "stress", "method": method,
                     "lv_found": not np.isnan(tpd), "tpd": tpd, "truth_abnormal": abnormal,
                     "truth_territories": "LAD" if abnormal else "", "has_defect": abnormal,
                     "tpd_LAD": tpd, "tpd_RCA": 0.0, "tpd_LCx": 0.0})
    return rows


def test_sensitivity_and_specificity_at_tpd_thresholds_against_a_hand_count() -> None:
    # abnormal: 12, 6, 4, 2, no LV (an abnormal call); normal: 0.5, 1, 3.5, 7
    data = [(True, 12.0), (True, 6.0), (True, 4.0), (True, 2.0), (True, np.nan),
            (False, 0.5), (False, 1.0), (False, 3.5), (False, 7.0)]
    table = threshold_table(pd.DataFrame(_stress_rows("x", data))).set_index("tpd_threshold")
    five, three = table.loc[5.0], table.loc[3.0]
    assert (five["tp"], five["fn"], five["tn"], five["fp"]) == (3, 2, 3, 1)  # 12, 6, no LV | 4, 2 ; 7
    assert five["sensitivity"] == pytest.approx(3 / 5) and five["specificity"] == pytest.approx(3 / 4)
    assert (three["tp"], three["fn"], three["tn"], three["fp"]) == (4, 1, 2, 2)
    assert five["sensitivity_ci_low"] < 0.6 < five["sensitivity_ci_high"]
    assert five["tpd_mean"] == pytest.approx(np.mean([12, 6, 4, 2, 0.5, 1, 3.5, 7]))
    assert five["lv_not_found"] == 1 and five["note"] == ""
    only_normal = threshold_table(pd.DataFrame(_stress_rows("x", [(False, 1.0), (False, 6.0)]))).iloc[0]
    assert np.isnan(only_normal["sensitivity"]) and only_normal["note"] == "n/a: no abnormal study"


def test_nc_beside_ac_counts_on_a_constructed_case() -> None:
    """Three stress studies, NC and one AC method; an LAD territory reads a defect when its
    segments sum to 2 or more.
    s0: true LAD defect seen in both; NC's inferior (RCA) attenuation artefact removed by AC.
    s1: normal; AC adds an LCx defect (a false one).
    s2: true RCA defect NC shows and AC loses; LV not found in AC for nothing else."""
    def row(case: str, method: str, segs: dict[int, int], truth: str) -> dict:
        r = {"case_id": case, "patient_id": case, "state": "stress", "method": method, "lv_found": True,
             "truth_abnormal": bool(truth), "truth_territories": truth}
        r.update({f"seg{s}": segs.get(s, 0) for s in range(1, 18)})
        return r

    rows = [
        row("s0", "nc", {7: 2, 13: 1, 4: 1, 10: 2}, "LAD"), row("s0", "dl", {7: 2, 13: 2}, "LAD"),
        row("s1", "nc", {}, ""), row("s1", "dl", {11: 1, 12: 1}, ""),
        row("s2", "nc", {4: 2, 10: 1}, "RCA"), row("s2", "dl", {4: 1}, "RCA"),
    ]
    table = nc_ac_table(pd.DataFrame(rows))
    assert len(table) == 3 * 3
    status = table.set_index(["case_id", "territory"])["status"]
    assert status[("s0", "LAD")] == "both" and status[("s0", "RCA")] == "removed by AC"
    assert status[("s1", "LCx")] == "added by AC" and status[("s2", "RCA")] == "removed by AC"
    summary = nc_ac_summary(table).iloc[0]
    assert (summary["both"], summary["added"], summary["removed"], summary["neither"]) == (1, 1, 2, 5)
    assert summary["both_defect"] == 1 and summary["added_normal"] == 1
    assert summary["removed_normal"] == 1 and summary["removed_defect"] == 1  # the artefact; the lost defect
    assert summary["neither_defect"] == 0 and summary["not_read"] == 0
    rows[-1]["lv_found"] = False
    table = nc_ac_table(pd.DataFrame(rows))
    assert (table["status"] == "n/a: LV not found in dl").sum() == 3
    assert nc_ac_summary(table).iloc[0]["not_read"] == 3


def _study(truth, seed: int, defect=None) -> dict[str, Volume]:
    ac = draw_shell(truth, shape=(40, 40, 40), supersample=2, torso=True, liver=0.7, seed=seed, defect=defect)
    x = (np.arange(40) - 19.5) * 6.8
    depth = np.clip(1 - (x[None, :, None] + 100) / 250, 0, 1)  # posterior walls lose more counts in NC
    nc = ac.with_array((ac.array * (0.6 - 0.3 * depth)).astype(np.float32))
    return {"nc": nc, "ac": ac}


def _dataset(root: Path, plan: list[tuple[str, str, bool]], sexes: str = "MF",
             methods: tuple[str, ...] = ("nc", "copy")) -> Path:
    """A dataset of shell studies: (patient, split, stress-only LAD defect) per patient; the run
    predicts them by ``methods``: nc (the NC image), copy (CT-AC itself), smooth (CT-AC smoothed)."""
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
            for method in methods:
                folder = run / "predictions" / method
                folder.mkdir(parents=True, exist_ok=True)
                source = data / "studies" / case.case_id / f"{'nc' if method == 'nc' else 'ac'}.nii.gz"
                if method == "smooth":
                    ac = read_nifti(source)
                    write_nifti(ac.with_array(ndimage.gaussian_filter(ac.array, 1.0).astype(np.float32)),
                                folder / f"{case.case_id}.nii.gz")
                else:
                    shutil.copy(source, folder / f"{case.case_id}.nii.gz")
    return run


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # 6 normal training patients, 3 of each sex: every sex and state has the 3 studies limits need
    plan = [(f"N{i}", "train", False) for i in range(6)] + [("T0", "test", False), ("T1", "test", True),
                                                           ("T2", "test", True)]
    run = _dataset(tmp_path_factory.mktemp("clinical"), plan, methods=("nc", "copy", "smooth"))
    evaluate_run(run.parent / "data", run, "test")
    return run


def test_evaluate_writes_clinical_tables(run: Path) -> None:
    clinical = pd.read_csv(run / "clinical.csv")
    assert sorted(set(clinical["method"])) == ["ac", "copy", "nc", "smooth"]
    assert len(clinical) == 6 * 4 and clinical["lv_found"].all()
    # every fit says how far to trust it (the synthetic hearts stand alone: confident)
    assert set(clinical["lv_confidence"]) == {"high"}
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
    # no lv.json in these shell studies: the nominal truth of cases.csv, said in the table
    assert (clinical["truth_source"] == "nominal").all()
    assert clinical.loc[clinical["state"] == "stress", "truth_abnormal"].sum() == 2 * 4  # 2 patients, 4 methods
    differences = pd.read_csv(run / "detection_differences.csv").set_index(["method", "compared_to", "target"])
    copy = differences.loc[("copy", "ac", "any")]
    assert (copy["auc_difference"], copy["ci_low"], copy["ci_high"]) == (0, 0, 0)  # CT-AC itself: paired, 0
    assert ("ac", "nc", "any") in differences.index
    thresholds = pd.read_csv(run / "detection_thresholds.csv").set_index(["method", "tpd_threshold"])
    assert thresholds.loc[("ac", 5.0), "tp"] == 2 and thresholds.loc[("ac", 5.0), "sensitivity"] == 1.0
    summary = pd.read_csv(run / "nc_vs_ac_summary.csv").set_index(["method", "state"])
    assert summary.loc[("ac", "stress"), "territories"] == 3 * 3
    assert summary.loc[("ac", "stress"), "both_defect"] + summary.loc[("ac", "stress"), "added_defect"] == 2
    nc_vs_ac = pd.read_csv(run / "nc_vs_ac.csv")
    assert set(nc_vs_ac["method"]) == {"copy", "smooth", "ac"}
    report = (run / "report.html").read_text()
    assert "Clinical quantification against CT-AC" in report and "Defect detection" in report
    assert "AUC differences against CT-AC and NC" in report and "NC beside AC" in report
    assert "TPD ≥ 5%" in report and "p (Holm)" in report
    assert "built from the 6 normal patients" in report
    assert ">nan<" not in report.lower() and "n/a: no abnormal study" in report  # a territory without defects


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
    rows = _stress_rows("x", [(True, 20.0), (True, 15.0), (False, 1.0), (False, 0.5), (True, np.nan)])
    table = detection_table(pd.DataFrame(rows)).set_index("target")
    assert table.loc["any", "n"] == 5 and table.loc["any", "lv_not_found"] == 1
    assert table.loc["any", "auc"] == 1.0  # the diseased study without an LV counts as a positive call
    assert table.loc["RCA", "note"] == "n/a: no abnormal study" and np.isnan(table.loc["RCA", "auc"])
    rows[-1]["truth_abnormal"], rows[-1]["truth_territories"] = False, ""  # now a false positive
    table = detection_table(pd.DataFrame(rows)).set_index("target")
    assert table.loc["any", "auc"] == pytest.approx(4 / 6)


def test_roc_curve_starts_at_the_origin_even_with_infinite_scores() -> None:
    fpr, tpr = roc_curve(np.array([np.inf, 5.0, 1.0, 0.5]), np.array([True, True, False, False]))
    assert (fpr[0], tpr[0]) == (0.0, 0.0) and (fpr[-1], tpr[-1]) == (1.0, 1.0)
    assert tpr[1] == 0.5 and fpr[1] == 0.0  # the study called abnormal at every threshold


# ---- the report: summary first, no NaN, Holm as by hand ------------------------------------------


class _Tables(HTMLParser):
    """The report's section titles and tables (rows of cell texts), in document order."""

    def __init__(self) -> None:
        super().__init__()
        self.titles: list[str] = []
        self.tables: list[tuple[str, list[list[str]]]] = []
        self._cell: list[str] | None = None
        self._in_title = False

    def handle_starttag(self, tag: str, attrs: list) -> None:
        if tag == "h2":
            self._in_title = True
            self.titles.append("")
        elif tag == "table":
            self.tables.append((self.titles[-1] if self.titles else "", []))
        elif tag == "tr":
            self.tables[-1][1].append([])
        elif tag in ("td", "th"):
            self._cell = []

    def handle_endtag(self, tag: str) -> None:
        if tag == "h2":
            self._in_title = False
        elif tag in ("td", "th") and self._cell is not None:
            self.tables[-1][1][-1].append("".join(self._cell).strip())
            self._cell = None

    def handle_data(self, data: str) -> None:
        if self._in_title:
            self.titles[-1] += data
        if self._cell is not None:
            self._cell.append(data)


def _hand_holm(p: list[float]) -> list[float]:
    """Holm (Scand J Stat 1979) by its definition: the adjusted p of the i-th smallest is the
    largest of min(1, (m - j + 1) p_(j)) over j <= i."""
    m, order = len(p), sorted(range(len(p)), key=lambda i: p[i])
    adjusted = [0.0] * m
    for rank, i in enumerate(order, start=1):
        adjusted[i] = max(min(1.0, (m - j + 1) * p[order[j - 1]]) for j in range(1, rank + 1))
    return adjusted


def test_report_leads_with_the_summary_has_no_nan_and_holm_matches_a_hand_holm(run: Path) -> None:
    report = re.sub(r'src="data:image/png;base64,[^"]*"', "", (run / "report.html").read_text())
    parser = _Tables()
    parser.feed(report)
    titles = parser.titles
    assert titles[0] == "Summary", titles
    first = [titles.index(t) for t in ("Clinical quantification against CT-AC (SSS and TPD)",
                                       "Defect detection against the phantom truth",
                                       "Image quality against CT-AC (Table 1)", "Paired Wilcoxon signed-rank tests")]
    assert first == sorted(first), titles
    assert not re.search(r"\bnan\b", report, re.IGNORECASE)
    # the summary: CT-AC itself agrees best; 3 test patients, so the caveat
    assert "Closest to CT-AC: copy" in report and "Caveat: only 3 patients" in report
    summary = next(rows for title, rows in parser.tables if title == "Summary")
    assert summary[1][0] == "copy" and summary[1][2] == "0.00 (0.00-0.00)" and summary[1][1] == "3 (6)"
    # Holm in the report equals a hand Holm of scipy's Wilcoxon p-values recomputed from metrics.csv
    mae = pd.read_csv(run / "metrics.csv").pivot(index="case_id", columns="method", values="mae")
    rows = next(rows for title, rows in parser.tables if title == "Paired Wilcoxon signed-rank tests")
    header, body = rows[0], rows[1:]
    assert len(body) == 3  # nc, copy, smooth: three pairs, one family
    p = [wilcoxon(mae[r[header.index("method a")]], mae[r[header.index("method b")]]).pvalue for r in body]
    for r, raw, expected in zip(body, p, _hand_holm(p)):
        assert r[header.index("p")] == f"{raw:.3g}" and r[header.index("p (Holm)")] == f"{expected:.3g}", r
    assert any(r[header.index("p (Holm)")] != r[header.index("p")] for r in body)  # adjusted, not the raw p


def test_patient_bootstrap_resamples_patients_not_studies() -> None:
    rng = np.random.default_rng(3)
    values, patients = rng.normal(5, 2, 12), np.array([f"p{i}" for i in range(12)])
    low, high = patient_bootstrap_ci(values, patients)
    assert low < values.mean() < high
    # every patient's study twice: the same patients, the same interval (a study bootstrap narrows it)
    assert patient_bootstrap_ci(np.repeat(values, 2), np.repeat(patients, 2)) == pytest.approx((low, high))
    # the percentile interval of the means of resampled patients, by brute force with the same draws
    draws = np.random.default_rng(0).integers(0, 12, size=(2000, 12))
    order = np.argsort(patients)  # np.unique sorts the labels
    means = values[order][draws].mean(axis=1)
    assert (low, high) == pytest.approx(tuple(np.percentile(means, [2.5, 97.5])))


def test_summary_names_a_correction_and_puts_nc_last_even_when_its_tpd_agrees_best() -> None:
    from spectac.evaluation.summary import summary_section, summary_table

    rows, clinical = [], []
    for i in range(4):
        case = f"p{i}_stress"
        for method, mae, tpd in (("nc", 9.0 + i, 5.0), ("dl", 2.0 + i, 6.0 + i % 2), ("chang", 5.0 + i, 9.0)):
            rows.append({"case_id": case, "method": method, "mae": mae, "ssim": 0.9})
            clinical.append({"case_id": case, "patient_id": f"p{i}", "method": method, "lv_found": True, "tpd": tpd})
        clinical.append({"case_id": case, "patient_id": f"p{i}", "method": "ac", "lv_found": True, "tpd": 5.0})
    metrics = pd.DataFrame(rows)
    table = summary_table(metrics, {f"p{i}_stress": f"p{i}" for i in range(4)}, pd.DataFrame(clinical))
    assert list(table["method"]) == ["dl", "chang", "nc"]
    assert table.set_index("method").loc["dl", "tpd_mean"] == pytest.approx(1.5)  # |6-5|, |7-5| alternating
    body = summary_section(table, paired_wilcoxon(metrics, columns=("mae",)), "test").body_html
    assert "Closest to CT-AC: dl" in body and "only 4 patients" in body and not re.search(r"\bnan\b", body)


def test_the_report_names_reference_fits_of_low_confidence() -> None:
    from spectac.evaluation.clinical_report import reference_fit_note

    clinical = pd.DataFrame({
        "case_id": ["A", "A", "B", "B"],
        "method": ["ac", "nc", "ac", "nc"],
        "lv_confidence": ["low: hot activity against 60% of the wall (check the axes)", "high", "high",
                          "low: only 50% of the wall at >= 60% of its maximum (check the axes)"],
    })
    note = reference_fit_note(clinical)
    # the reference's doubtful fit is named with its reason; another method's is not the reference's
    assert "A (hot activity against 60% of the wall" in note and "B (" not in note
    assert reference_fit_note(clinical.assign(lv_confidence="high")) == ""
    assert reference_fit_note(clinical.drop(columns="lv_confidence")) == ""  # runs before the column
