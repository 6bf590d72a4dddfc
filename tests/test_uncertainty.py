"""The disagreement of a network with its partner: 0 with itself, blind to the count level, flagged
in every output above the threshold and not below it, skipped with --uncertainty off."""

from __future__ import annotations

import json

import numpy as np
import pydicom
import pytest
from dicom_helpers import context
from scipy import ndimage
from typer.testing import CliRunner

from spectac.cli import app
from spectac.correction import uncertainty
from spectac.correction.deep import resolve_model
from spectac.correction.files import correct_volume
from spectac.correction.ood import sidecar_path
from spectac.correction.uncertainty import body_mask, disagreement, network_disagreement, uncertainty_settings
from spectac.io.batch import read_batch_summary
from spectac.io.dicom import write_dicom_series
from spectac.io.nifti import write_nifti
from spectac.volume import Volume

runner = CliRunner()
MODEL = "unet-gan3d-chang"


def study(n: int = 32, spacing: float = 6.8, counts: float = 1.0e6, seed: int = 0) -> Volume:
    """A small NC-like study: an elliptic torso with a hot off-centre ring (the LV) and noise."""
    pts = np.stack(np.meshgrid(*[(np.arange(n) - (n - 1) / 2) * spacing for _ in range(3)], indexing="ij"), -1)
    torso = (pts[..., 0] / 90.0) ** 2 + (pts[..., 1] / 70.0) ** 2 <= 1
    r = np.linalg.norm(pts - np.array([20.0, 15.0, 0.0]), axis=-1)
    image = 0.1 * torso + (np.abs(r - 25.0) < 6.0)
    image = ndimage.gaussian_filter(image, 1.0) + np.random.default_rng(seed).random(image.shape) * 0.003 * torso
    return Volume.centred((image * counts / image.sum()).astype(np.float32), spacing)


def test_measure_is_zero_with_itself_symmetric_and_blind_to_scale():
    rng = np.random.default_rng(1)
    a, b = rng.random((8, 8, 8)), rng.random((8, 8, 8))
    body = a > 0.3
    assert disagreement(a, a, body) == 0.0
    assert disagreement(a, b, body) == pytest.approx(disagreement(b, a, body))
    assert disagreement(7.0 * a, 7.0 * b, body) == pytest.approx(disagreement(a, b, body), rel=1e-12)
    # by hand: |1-3| over the mean of 2
    assert disagreement(np.ones(4), np.full(4, 3.0)) == pytest.approx(1.0)


def test_a_network_with_itself_disagrees_by_zero(monkeypatch):
    model = resolve_model(MODEL)
    monkeypatch.setattr(uncertainty, "uncertainty_settings", lambda m: {"partner": m.name, "threshold": 0.0})
    nc = study()
    result = network_disagreement(nc, correct_volume(nc, MODEL), model)
    assert result["disagreement"] == 0.0 and result["flag"] is None  # 0 is not above a threshold of 0


def test_the_shipped_partners_disagreement_does_not_depend_on_the_count_level():
    model = resolve_model(MODEL)
    assert uncertainty_settings(model)["partner"] == "unet-gan3d"
    assert uncertainty_settings(resolve_model("unet-gan3d"))["partner"] == MODEL
    values = []
    for counts in (1.0e5, 1.0e7):
        nc = study(counts=counts)
        values.append(network_disagreement(nc, correct_volume(nc, MODEL), model)["disagreement"])
    assert values[0] > 0.01  # two different networks do disagree
    assert values[1] == pytest.approx(values[0], rel=1e-3)
    np.testing.assert_array_equal(body_mask(study(counts=1.0e5)), body_mask(study(counts=1.0e7)))


def correct(*args):
    result = runner.invoke(app, ["correct", *map(str, args)])
    return result.exit_code, result.output


def threshold(monkeypatch, value):
    """The shipped partner with a threshold of ``value`` in place of the calibrated one."""
    real = uncertainty.uncertainty_settings
    monkeypatch.setattr(uncertainty, "uncertainty_settings", lambda m: {**real(m), "threshold": value})


def test_above_the_threshold_every_output_is_flagged(tmp_path, monkeypatch):
    threshold(monkeypatch, 1e-6)
    write_nifti(study(), tmp_path / "nc.nii.gz")
    code, output = correct(tmp_path / "nc.nii.gz", "-o", tmp_path / "ac.nii.gz")
    assert code == 0, output
    assert "warning: the shipped networks disagree: D = " in output and "> threshold 0.00" in output
    assert "uncertainty: D = " in output and "against unet-gan3d" in output
    flags = json.loads(sidecar_path(tmp_path / "ac.nii.gz").read_text())["spectac_ood_flags"]
    assert any(f.startswith("the shipped networks disagree") for f in flags)

    dicom = tmp_path / "nc.dcm"
    write_dicom_series(study(), context(), dicom, "STRESS NC", uid_seed="u", derived=False, attenuation_corrected=False)
    code, output = correct(dicom, "-o", tmp_path / "out")
    assert code == 0, output
    comments = str(pydicom.dcmread(next((tmp_path / "out").iterdir()), stop_before_pixels=True).ImageComments)
    assert comments.startswith("spectac uncertainty: D = ") and "the shipped networks disagree" in comments

    code, output = correct(dicom, "-o", tmp_path / "strict", "--strict")
    assert code == 2 and not (tmp_path / "strict").exists(), output


def test_below_the_threshold_the_value_is_written_without_a_flag(tmp_path, monkeypatch):
    threshold(monkeypatch, 10.0)
    dicom = tmp_path / "nc.dcm"
    write_dicom_series(study(), context(), dicom, "STRESS NC", uid_seed="u", derived=False, attenuation_corrected=False)
    code, output = correct(dicom, "-o", tmp_path / "out")
    assert code == 0, output
    assert "uncertainty: D = " in output and "disagree" not in output
    comments = str(pydicom.dcmread(next((tmp_path / "out").iterdir()), stop_before_pixels=True).ImageComments)
    assert "spectac uncertainty: D = " in comments and "threshold 10.00" in comments and "disagree" not in comments


def test_uncertainty_off_skips_the_partner(tmp_path, monkeypatch):
    threshold(monkeypatch, 1e-6)

    def never(*args, **kwargs):
        raise AssertionError("the partner was run")

    monkeypatch.setattr(uncertainty, "partner_model", never)
    write_nifti(study(), tmp_path / "nc.nii.gz")
    code, output = correct(tmp_path / "nc.nii.gz", "-o", tmp_path / "ac.nii.gz", "--uncertainty", "off")
    assert code == 0, output
    assert "uncertainty: " not in output and "disagree" not in output
    code, output = correct(tmp_path / "nc.nii.gz", "-o", tmp_path / "x.nii.gz", "--uncertainty", "maybe")
    assert code == 2 and "--uncertainty must be on or off" in output


def test_methods_without_a_partner_are_not_checked(tmp_path, monkeypatch):
    monkeypatch.setattr(uncertainty, "partner_model", lambda *a, **k: pytest.fail("the partner was run"))
    write_nifti(study(), tmp_path / "nc.nii.gz")
    code, output = correct(tmp_path / "nc.nii.gz", "-o", tmp_path / "ac.nii.gz", "--method", "chang")
    assert code == 0 and "uncertainty: " not in output, output


def test_batch_summary_has_the_disagreement(tmp_path, monkeypatch):
    threshold(monkeypatch, 1e-6)
    folder = tmp_path / "archive"
    for seed in (1, 2):
        write_nifti(study(seed=seed), folder / f"s{seed}.nii.gz")
    code, output = correct(folder, "-o", tmp_path / "out")
    assert code == 0, output
    rows = read_batch_summary(tmp_path / "out" / "summary.csv")
    assert [r["status"] for r in rows] == ["flagged", "flagged"]
    assert all(float(r["disagreement"]) > 0 and "networks disagree" in r["reason"] for r in rows)


def test_the_study_report_states_the_disagreement():
    from types import SimpleNamespace

    from spectac.evaluation.study_report import flag_lines

    spread = {"partner": "unet-gan3d", "disagreement": 0.0912, "threshold": 0.1422, "flag": None}
    assert flag_lines(SimpleNamespace(facts={"ood_flags": [], "uncertainty": spread})) == [
        "Network disagreement: D = 0.091 against unet-gan3d (threshold 0.14)"]
    assert flag_lines(SimpleNamespace(facts={"ood_flags": [], "uncertainty": None})) == []
