"""spectac predict / evaluate end to end on a tiny dataset, and their refusals of bad input."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from spectac.cli import app
from spectac.correction.methods import METHODS, Method, MethodContext
from spectac.correction.run import predict_dataset
from spectac.evaluation.harness import EVALUATORS
from spectac.evaluation.metrics import compute_mae
from spectac.evaluation.report import ReportSection
from spectac.io.dataset import Case, write_manifest, write_study
from spectac.io.nifti import read_nifti, write_nifti
from spectac.volume import SpectacError, Volume

N = 20
SPACING = 6.8


LV_AXIS = np.array([1.0, -1.0, -1.0]) / np.sqrt(3.0)  # base -> apex: left, anterior, inferior
LV_BASE = np.array([5.0, 0.0, 10.0])


def _lv_shell(gx: np.ndarray, gy: np.ndarray, gz: np.ndarray) -> np.ndarray:
    """An LV-like half-ellipsoidal shell (length 60 mm, radius 28 mm, wall 10 mm), open at the base."""
    rel = np.stack([gx, gy, gz], axis=-1) - LV_BASE
    along = rel @ LV_AXIS
    radial = np.linalg.norm(rel - along[..., None] * LV_AXIS, axis=-1)
    outer = (along / 60.0) ** 2 + (radial / 28.0) ** 2 <= 1
    inner = (along / 50.0) ** 2 + (radial / 18.0) ** 2 <= 1
    return (along >= 0) & outer & ~inner


def _lv_centroid() -> np.ndarray:
    x = (np.arange(N) - (N - 1) / 2) * SPACING
    grid = np.stack(np.meshgrid(x, x, x, indexing="ij"), axis=-1)
    return grid[_lv_shell(grid[..., 0], grid[..., 1], grid[..., 2])].mean(axis=0)


def _study(seed: int) -> dict[str, Volume]:
    """A 20^3 torso-like study: uniform body, hot LV-like shell; AC ~ 3x NC in the centre."""
    rng = np.random.default_rng(seed)
    x = (np.arange(N) - (N - 1) / 2) * SPACING
    gx, gy, gz = np.meshgrid(x, x, x, indexing="ij")
    body = (gx / 60.0) ** 2 + (gy / 50.0) ** 2 < 1
    lv = _lv_shell(gx, gy, gz)
    ac = np.where(body, 10.0, 0.0) + np.where(lv, 90.0, 0.0) + rng.normal(0, 0.5, body.shape) * body
    depth = np.clip(1 - (gx / 60.0) ** 2 - (gy / 50.0) ** 2, 0, 1)
    nc = ac / (1 + 2 * depth)
    return {"nc": Volume.centred(nc.astype(np.float32), SPACING), "ac": Volume.centred(ac.astype(np.float32), SPACING)}


@pytest.fixture()
def dataset(tmp_path: Path) -> Path:
    root = tmp_path / "data"
    cases = []
    for i, (patient, state) in enumerate([("P0", "rest"), ("P0", "stress"), ("P1", "rest"), ("P1", "stress")]):
        case_id = f"{patient}_{state}"
        write_study(root, case_id, _study(i))
        cases.append(Case(case_id, patient, state, "F", split="test"))
    write_manifest(root, {"source": "test", "protocol": {"n_views": 30, "arc_deg": 360.0, "matrix": N}}, cases)
    return root


def _run(args: list[str]) -> tuple[int, str]:
    result = CliRunner().invoke(app, args, env={"SPECTAC_PROGRESS": "0"})
    if result.exit_code not in (0, 2):  # an unexpected exception: show it in the assertion
        return result.exit_code, repr(result.exception)
    return result.exit_code, result.output  # stdout and stderr together


def test_predict_then_evaluate_writes_every_output(dataset: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    for method in ("nc", "chang"):
        code, out = _run(["predict", "--method", method, "--data", str(dataset), "--out", str(run)])
        assert code == 0, out
    files = sorted((run / "predictions" / "chang").glob("*.nii.gz"))
    assert [f.name for f in files] == [f"{c}.nii.gz" for c in ("P0_rest", "P0_stress", "P1_rest", "P1_stress")]
    config = json.loads((run / "predictions" / "chang" / "config.json").read_text())
    assert config["options"] == {"mu": 0.12} and config["protocol"]["arc_deg"] == 360.0
    # the nc method is the NC image itself
    nc = read_nifti(run / "predictions" / "nc" / "P0_rest.nii.gz")
    assert np.array_equal(nc.array, read_nifti(dataset / "studies" / "P0_rest" / "nc.nii.gz").array)

    code, out = _run(["evaluate", "--data", str(dataset), "--run", str(run)])
    assert code == 0, out
    metrics = pd.read_csv(run / "metrics.csv")
    assert len(metrics) == 8 and set(metrics["method"]) == {"nc", "chang"}
    for column in ("me", "mae", "rmse", "ssim", "psnr", "nmae", "nrmse", "heart_mae", "heart_ssim"):
        assert metrics[column].notna().all()
    # metrics.csv holds what the metric functions give on the files
    row = metrics[(metrics["case_id"] == "P1_rest") & (metrics["method"] == "nc")].iloc[0]
    ref = read_nifti(dataset / "studies" / "P1_rest" / "ac.nii.gz").array
    pred = read_nifti(run / "predictions" / "nc" / "P1_rest.nii.gz").array
    assert row["mae"] == pytest.approx(compute_mae(pred, ref), rel=1e-5)
    # Chang brings the NC image closer to the reference (NC is attenuated everywhere here)
    mean_mae = metrics.groupby("method")["mae"].mean()
    assert mean_mae["chang"] < mean_mae["nc"]
    table = pd.read_csv(run / "table1.csv")
    assert list(table["method"]) == ["nc", "chang"] and (table["n"] == 4).all()
    assert table.loc[table["method"] == "nc", "mae_mean"].item() == pytest.approx(
        metrics.loc[metrics["method"] == "nc", "mae"].mean()
    )
    assert "± " in (run / "table1.md").read_text()
    assert (run / "figure3_boxplots.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    tests = pd.read_csv(run / "wilcoxon.csv")
    assert {"metric", "method_a", "method_b", "p_value"} <= set(tests.columns)
    report = (run / "report.html").read_text()
    assert "data:image/png;base64," in report and "Table 1" in report


def test_predict_resumes_and_refuses_other_options(dataset: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    first = predict_dataset(dataset, run, "chang", "test", mu=0.153)
    assert first["written"] == 4
    target = run / "predictions" / "chang" / "P0_rest.nii.gz"
    before = target.stat().st_mtime_ns
    again = predict_dataset(dataset, run, "chang", "test", mu=0.153)
    assert again == {**again, "written": 0, "skipped": 4} and target.stat().st_mtime_ns == before
    code, out = _run(["predict", "--method", "chang", "--data", str(dataset), "--out", str(run), "--mu", "0.12"])
    assert code == 2 and "config.json" in out and "other options" in out
    code, out = _run(["predict", "--method", "nope", "--data", str(dataset), "--out", str(run)])
    assert code == 2 and "unknown method" in out
    code, out = _run(["predict", "--method", "nc", "--data", str(dataset), "--out", str(run), "--set", "mu=1"])
    assert code == 2 and "takes no option mu" in out


def test_evaluate_refuses_a_run_without_predictions(dataset: Path, tmp_path: Path) -> None:
    code, out = _run(["evaluate", "--data", str(dataset), "--run", str(tmp_path / "empty")])
    assert code == 2 and "predictions" in out and len(out.strip().splitlines()) == 1


def test_evaluate_refuses_a_prediction_of_another_shape(dataset: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    predict_dataset(dataset, run, "nc", "test")
    bad = run / "predictions" / "nc" / "P1_stress.nii.gz"
    write_nifti(Volume.centred(np.ones((N, N, N - 2), np.float32), SPACING), bad)
    code, out = _run(["evaluate", "--data", str(dataset), "--run", str(run)])
    assert code == 2 and str(bad) in out.replace("\n", "") and "shape" in out
    assert not (run / "metrics.csv").exists()  # nothing half written


def test_evaluate_refuses_a_missing_study_or_prediction(dataset: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    predict_dataset(dataset, run, "nc", "test")
    missing_pred = run / "predictions" / "nc" / "P0_stress.nii.gz"
    missing_pred.unlink()
    code, out = _run(["evaluate", "--data", str(dataset), "--run", str(run)])
    assert code == 2 and str(missing_pred) in out.replace("\n", "")
    predict_dataset(dataset, run, "nc", "test")  # resumes: writes the missing one back
    reference = dataset / "studies" / "P1_rest" / "ac.nii.gz"
    reference.unlink()
    code, out = _run(["evaluate", "--data", str(dataset), "--run", str(run)])
    assert code == 2 and str(reference) in out.replace("\n", "")
    assert not (run / "metrics.csv").exists()


def test_registered_methods_and_evaluators_are_used(dataset: Path, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[str] = []

    def halve(nc: Volume, context: MethodContext) -> Volume:
        seen.append(context.case_id)
        assert context.state == "loaded" and context.options == {"factor": 0.5}
        return nc.with_array(nc.array * context.options["factor"])

    monkeypatch.setitem(METHODS, "halve-test", Method("halve-test", halve, lambda options, threads: "loaded", {"factor": 1.0}))
    run = tmp_path / "run"
    predict_dataset(dataset, run, "halve-test", "test", factor=0.5)
    assert sorted(seen) == ["P0_rest", "P0_stress", "P1_rest", "P1_stress"]

    def extra(context):  # the evaluator signature of the harness
        path = context.run / "extra.csv"
        path.write_text(f"{len(context.metrics)}\n")
        context.outputs["extra"] = path
        return [ReportSection("Extra section", "<p>extra body</p>", order=250)]

    monkeypatch.setitem(EVALUATORS, "extra-test", extra)
    code, out = _run(["evaluate", "--data", str(dataset), "--run", str(run)])
    assert code == 0, out
    assert (run / "extra.csv").read_text() == "4\n"
    assert "extra body" in (run / "report.html").read_text()


def test_heart_region_is_centred_on_the_lv() -> None:
    from spectac.evaluation.heart import HEART_RADIUS_MM, heart_region
    from spectac.quant.centre import find_lv_centre, lv_centre

    reference = _study(0)["ac"]
    true_centre = _lv_centroid()  # the hot shell of _study
    assert np.linalg.norm(lv_centre(reference) - true_centre) < 8.0
    assert np.linalg.norm(find_lv_centre(reference) - true_centre) < 8.0  # the fallback alone
    region = heart_region(reference)
    # the region is the ball of HEART_RADIUS_MM around the detected centre, clipped to the grid
    coords = reference.world_coordinates()
    ball = np.linalg.norm(coords - lv_centre(reference), axis=-1) <= HEART_RADIUS_MM
    assert (region == ball).mean() > 0.99 and region[tuple(np.round(reference.index_of(true_centre)).astype(int))]


def test_lv_maximum_is_the_myocardium_not_a_hotter_liver() -> None:
    """NMAE is in percent of the LV maximum: a liver twice as hot beside the heart must not set it."""
    from quant_shapes import draw_shell, shell_geometry

    from spectac.evaluation.heart import heart_region_and_lv_max

    geom = shell_geometry()
    alone = draw_shell(geom, torso=True, blur_mm=12.0)
    with_liver = draw_shell(geom, torso=True, liver=2.0, blur_mm=12.0)
    region, lv_max = heart_region_and_lv_max(with_liver)
    assert float(with_liver.array[region].max()) > 1.5 * lv_max  # the region does hold the liver
    assert lv_max == pytest.approx(heart_region_and_lv_max(alone)[1], rel=0.1)


def test_predict_refuses_a_study_of_implausible_grid_naming_it_before_writing(dataset: Path, tmp_path: Path) -> None:
    """The checks of `spectac correct`: every grid is read from the headers before anything is written."""
    thin = Volume.centred(np.ones((N, N, 8), np.float32), SPACING)
    write_nifti(thin, dataset / "studies" / "P1_rest" / "nc.nii.gz")
    run = tmp_path / "run"
    result = CliRunner().invoke(app, ["predict", "--method", "nc", "--data", str(dataset), "--out", str(run)],
                                env={"SPECTAC_PROGRESS": "0"})
    assert result.exit_code == 2, result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "study P1_rest: 20x20x8 voxels: fewer than 16" in lines[0]
    assert not run.exists()
    write_nifti(Volume.centred(np.ones((N, N, N), np.float32), 0.5), dataset / "studies" / "P1_rest" / "nc.nii.gz")
    with pytest.raises(SpectacError, match=r"study P1_rest: voxel size 0.5 x 0.5 x 0.5 mm"):
        predict_dataset(dataset, run, "nc", "test")
    assert not run.exists()


def test_predict_refuses_a_study_of_negative_values_naming_it(dataset: Path, tmp_path: Path) -> None:
    nc = read_nifti(dataset / "studies" / "P1_stress" / "nc.nii.gz")
    write_nifti(nc.with_array(nc.array - nc.array.max()), dataset / "studies" / "P1_stress" / "nc.nii.gz")
    code, out = _run(["predict", "--method", "nc", "--data", str(dataset), "--out", str(tmp_path / "run")])
    assert code == 2 and "study P1_stress: values down to" in " ".join(out.split())


def test_evaluate_scores_every_method_and_ct_ac_against_the_truth(tmp_path: Path) -> None:
    root, cases = tmp_path / "data", []
    for i, case_id in enumerate(("P0_stress", "P1_stress")):
        volumes = _study(i)
        body = volumes["ac"].array > 5
        truth = np.where(body, 10.0, 0.0) + np.where(volumes["ac"].array > 50, 90.0, 0.0)  # the noiseless AC
        write_study(root, case_id, {**volumes, "truth": Volume.centred(truth.astype(np.float32), SPACING)})
        cases.append(Case(case_id, case_id[:2], "stress", "F", split="test"))
    write_manifest(root, {"source": "test", "protocol": {"n_views": 30, "arc_deg": 360.0, "matrix": N}}, cases)
    run = tmp_path / "run"
    assert _run(["predict", "--method", "nc", "--data", str(root), "--out", str(run)])[0] == 0
    code, out = _run(["evaluate", "--data", str(root), "--run", str(run)])
    assert code == 0, out
    frame = pd.read_csv(run / "metrics_truth.csv")
    assert sorted(set(frame["method"])) == ["ac", "nc"] and len(frame) == 4
    mae = frame.groupby("method")["mae"].mean()
    assert mae["ac"] < 0.2 * mae["nc"]  # CT-AC is the truth plus noise; NC is attenuated
    assert "against the phantom truth" in (run / "report.html").read_text()
