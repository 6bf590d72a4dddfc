"""Out-of-distribution warnings: a study unlike the simulated LEHR training data is flagged (and
refused with --strict); a simulated-like one is not."""

from __future__ import annotations

import json

import numpy as np
import pydicom
import pytest
from dicom_helpers import context
from quant_shapes import draw_shell, shell_geometry
from typer.testing import CliRunner

from spectac.cli import app
from spectac.correction.deep import resolve_model
from spectac.correction.ood import (
    IMAGE_COMMENTS_MAX,
    ood_comments,
    ood_flags,
    sidecar_path,
    training_reference,
)
from spectac.io.dicom import write_dicom_series
from spectac.io.nifti import read_nifti_header, write_nifti
from spectac.volume import Volume

runner = CliRunner()
TRAINING = training_reference(resolve_model("unet-gan3d-chang"))  # the shipped model, loaded
COUNTS = 4.0e6


def study(shape=(64, 64, 64), spacing=6.8, body=(150.0, 110.0), counts=COUNTS, seed=0) -> Volume:
    """A simulated-like NC study: a blurred LV shell in an elliptic torso, scaled to ``counts``."""
    heart = draw_shell(shell_geometry(), shape=shape, spacing=spacing, supersample=1, blur_mm=0)
    pts = np.stack(np.meshgrid(*[(np.arange(n) - (n - 1) / 2) * spacing for n in shape], indexing="ij"), -1)
    torso = (pts[..., 0] / body[0]) ** 2 + (pts[..., 1] / body[1]) ** 2 <= 1
    from scipy import ndimage

    image = np.where(heart.array > 0, 1.0, 0.08 * torso)
    image = ndimage.gaussian_filter(image, 12.0 / 2.355 / spacing)
    image += np.random.default_rng(seed).random(shape) * 0.002 * torso
    return Volume.centred((image * counts / image.sum()).astype(np.float32), spacing)


def test_simulated_like_study_has_no_flag():
    assert ood_flags(study(), None, TRAINING) == []


def test_small_field_czt_camera_is_flagged():
    header = {"Manufacturer": "GE MEDICAL SYSTEMS", "ManufacturerModelName": "Discovery NM 530c"}
    flags = ood_flags(study((70, 70, 50), 4.0, counts=1.5e6), header, TRAINING)
    text = " ".join(flags)
    assert "Discovery NM 530c" in text and "CZT" in text
    assert "voxels of 4x4x4 mm" in text
    assert "field of view 280x280x200 mm" in text


def test_collimator_not_lehr_is_flagged():
    header = {"Manufacturer": "SIEMENS", "DetectorInformationSequence": [{"CollimatorType": "FANB"}]}
    assert any("collimator FANB" in f for f in ood_flags(study(), header, TRAINING))
    assert ood_flags(study(), {"Manufacturer": "SIEMENS", "CollimatorType": "PARA"}, TRAINING) == []


def test_body_cut_by_the_field_is_flagged():
    flags = ood_flags(study(body=(300.0, 110.0)), None, TRAINING)
    assert any("body is cut by the field of view" in f for f in flags), flags


@pytest.mark.parametrize("factor", [0.1, 10.0])
def test_counts_far_from_training_are_flagged(factor):
    flags = ood_flags(study(counts=COUNTS * factor), None, TRAINING)
    assert len(flags) == 1 and "total counts" in flags[0], flags


def test_no_lv_is_flagged():
    image = study().array
    flat = Volume.centred(np.full_like(image, image.sum() / image.size), 6.8)
    assert "LV not found" in ood_flags(flat, None, TRAINING) or any("contrast" in f for f in ood_flags(flat, None, TRAINING))


def test_image_comments_keep_the_mark_within_the_limit():
    assert ood_comments("forced: x", ["a", "b"]) == "forced: x spectac OOD: a; b"
    long = ood_comments("x" * 20000, ["voxels differ"])
    assert len(long) <= IMAGE_COMMENTS_MAX and long.endswith("spectac OOD: voxels differ")
    assert ood_comments("keep", []) == "keep"


# ---- spectac correct ------------------------------------------------------------------------------


def czt_dicom(path):
    write_dicom_series(study((70, 70, 50), 4.0), context(), path, "STRESS NC", uid_seed=str(path), derived=False,
                       attenuation_corrected=False)
    ds = pydicom.dcmread(path)
    ds.Manufacturer, ds.ManufacturerModelName = "GE MEDICAL SYSTEMS", "Discovery NM 530c"
    ds.save_as(path)
    return path


def run(*args):
    result = runner.invoke(app, ["correct", *map(str, args)])
    return result.exit_code, result.output


def test_correct_warns_and_flags_the_dicom_output(tmp_path):
    source = czt_dicom(tmp_path / "czt.dcm")
    code, output = run(source, "-o", tmp_path / "out", "--method", "chang")
    assert code == 0, output
    warnings = [line for line in output.splitlines() if line.startswith("warning: ")]
    assert any("Discovery NM 530c" in w for w in warnings) and any("field of view" in w for w in warnings)
    header = pydicom.dcmread(next((tmp_path / "out").iterdir()), stop_before_pixels=True)
    assert str(header.ImageComments).startswith("spectac OOD: camera GE MEDICAL SYSTEMS Discovery NM 530c")


def test_correct_flags_the_nifti_output_with_a_sidecar(tmp_path):
    write_nifti(study(counts=COUNTS * 0.1), tmp_path / "low.nii.gz")
    out = tmp_path / "ac.nii.gz"
    code, output = run(tmp_path / "low.nii.gz", "-o", out, "--method", "chang")
    assert code == 0, output
    assert "warning: total counts" in output
    assert read_nifti_header(out).descrip.endswith(" OOD")
    flags = json.loads(sidecar_path(out).read_text())["spectac_ood_flags"]
    assert len(flags) == 1 and "total counts" in flags[0]
    # overwritten by an unflagged correction: the stale sidecar goes
    write_nifti(study(), tmp_path / "nc.nii.gz")
    code, output = run(tmp_path / "nc.nii.gz", "-o", out, "--method", "chang", "--overwrite")
    assert code == 0 and "warning" not in output, output
    assert not sidecar_path(out).exists()


def test_in_distribution_nifti_has_no_warning_and_no_sidecar(tmp_path):
    write_nifti(study(), tmp_path / "nc.nii.gz")
    code, output = run(tmp_path / "nc.nii.gz", "-o", tmp_path / "ac.nii.gz", "--method", "chang")
    assert code == 0 and "warning" not in output, output
    assert "OOD" not in read_nifti_header(tmp_path / "ac.nii.gz").descrip
    assert not sidecar_path(tmp_path / "ac.nii.gz").exists()


def test_strict_refuses_in_one_line_and_writes_nothing(tmp_path):
    source = czt_dicom(tmp_path / "czt.dcm")
    before = sorted(p.name for p in tmp_path.iterdir())
    code, output = run(source, "-o", tmp_path / "out", "--method", "chang", "--strict")
    assert code == 2, output
    assert len(output.strip().splitlines()) == 1 and "--strict" in output and "530c" in output
    assert sorted(p.name for p in tmp_path.iterdir()) == before
