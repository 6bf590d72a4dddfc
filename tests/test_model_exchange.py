"""Model exchange: a shipped model exported, verified and installed again gives the same weights
and the same corrections; damaged, altered or newer archives are refused with nothing installed."""

from __future__ import annotations

import hashlib
import json
import zipfile
from pathlib import Path

import numpy as np
import pytest
from test_training import synthetic_pair
from typer.testing import CliRunner

from spectac.cli import app
from spectac.correction.deep import shipped_model_dir
from spectac.io.nifti import read_nifti, write_nifti
from spectac.io.onnx_model import RUNTIME_ENV
from spectac.volume import Volume


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _rewrite(archive: Path, out: Path, change: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(archive) as z, zipfile.ZipFile(out, "w") as w:
        for name in z.namelist():
            w.writestr(name, change.get(name, z.read(name)))
        for name in sorted(set(change) - set(z.namelist())):  # an added member
            w.writestr(name, change[name])
    return out


@pytest.fixture()
def models(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The user model folder, empty, under the test's temporary folder."""
    folder = tmp_path / "models"
    monkeypatch.setenv("SPECTAC_MODELS_DIR", str(folder))
    return folder


def test_a_shipped_model_round_trips_and_corrects_as_the_shipped_one(tmp_path: Path, models: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    # imported weights run in torch; the shipped ones too here, so the outputs are equal bit for bit
    # (the ONNX runtime agrees to float rounding: tests/test_onnx.py)
    monkeypatch.setenv(RUNTIME_ENV, "torch")
    runner = CliRunner()
    archive = tmp_path / "unet3d.zip"
    exported = runner.invoke(app, ["export-model", "unet3d", str(archive), "--name", "site-a"])
    assert exported.exit_code == 0, exported.output
    again = runner.invoke(app, ["export-model", str(shipped_model_dir("unet3d")), str(tmp_path / "b.zip"),
                                "--name", "site-a"])
    assert again.exit_code == 0 and (tmp_path / "b.zip").read_bytes() == archive.read_bytes()  # reproducible
    with zipfile.ZipFile(archive) as z:
        manifest = json.loads(z.read("manifest.json"))
    assert manifest["format"] == "spectac-model" and manifest["format_version"] == 1
    assert manifest["model"] == "unet3d" and manifest["name"] == "site-a"
    assert manifest["weights_sha256"] == _sha(shipped_model_dir("unet3d") / "best.pt")
    assert manifest["config"]["network"] and manifest["normalisation_percentile"] == 99.9
    assert manifest["card"] == "MODEL_CARD.md"

    imported = runner.invoke(app, ["import-model", str(archive)])
    assert imported.exit_code == 0, imported.output
    for name in ("best.pt", "config.json", "MODEL_CARD.md"):
        assert _sha(models / "site-a" / name) == _sha(shipped_model_dir("unet3d") / name)
    nc, _ = synthetic_pair(np.random.default_rng(4))
    write_nifti(Volume.centred(nc, 6.8), tmp_path / "nc.nii.gz")
    outputs = {}
    for label, extra in (("shipped", []), ("imported", ["--weights", "site-a"])):
        outputs[label] = tmp_path / f"{label}.nii.gz"
        result = runner.invoke(app, ["correct", str(tmp_path / "nc.nii.gz"), "-o", str(outputs[label]),
                                     "--method", "unet3d", *extra])
        assert result.exit_code == 0, result.output
    np.testing.assert_array_equal(read_nifti(outputs["imported"]).array, read_nifti(outputs["shipped"]).array)

    twice = runner.invoke(app, ["import-model", str(archive)])
    assert twice.exit_code == 2 and "already installed" in twice.output
    other = runner.invoke(app, ["import-model", str(archive), "--name", "site-b"])
    assert other.exit_code == 0 and (models / "site-b" / "best.pt").is_file()
    bad = runner.invoke(app, ["import-model", str(archive), "--name", "../up"])
    assert bad.exit_code == 2 and "no folders" in bad.output


def test_altered_or_newer_archives_are_refused_and_nothing_is_installed(tmp_path: Path, models: Path) -> None:
    runner = CliRunner()
    archive = tmp_path / "m.zip"
    assert runner.invoke(app, ["export-model", "unet3d", str(archive)]).exit_code == 0
    with zipfile.ZipFile(archive) as z:
        weights, manifest = bytearray(z.read("best.pt")), json.loads(z.read("manifest.json"))
    weights[-100] ^= 0xFF
    cases = {
        "altered": ({"best.pt": bytes(weights)}, "does not match its sha256"),
        "newer": ({"manifest.json": json.dumps({**manifest, "format_version": 99}).encode()}, "upgrade spectac"),
        "foreign": ({"manifest.json": json.dumps({**manifest, "format": "other"}).encode()}, "not a spectac-model"),
        "slip": ({"../evil.py": b"x"}, "unexpected member"),
    }
    for label, (change, message) in cases.items():
        result = runner.invoke(app, ["import-model", str(_rewrite(archive, tmp_path / f"{label}.zip", change))])
        assert result.exit_code == 2 and message in result.output, (label, result.output)
    (tmp_path / "junk.zip").write_bytes(b"not a zip")
    junk = runner.invoke(app, ["import-model", str(tmp_path / "junk.zip")])
    assert junk.exit_code == 2 and "not a readable spectac model archive" in junk.output
    assert not models.exists() or not any(p for p in models.iterdir() if not p.name.startswith("."))
    exists = runner.invoke(app, ["export-model", "unet3d", str(archive)])
    assert exists.exit_code == 2 and "already exists" in exists.output


def test_export_and_import_refuse_what_is_no_model_or_archive_in_one_line(tmp_path: Path, models: Path) -> None:
    """An archive is never written into the model folder it is made from; an existing archive is
    refused without offering an option export-model does not have; a folder given as an archive
    and a name that is neither a folder nor a shipped model are named for what they are."""
    runner = CliRunner()
    folder = tmp_path / "unet3d"
    for name in ("best.pt", "config.json"):
        folder.mkdir(exist_ok=True)
        (folder / name).write_bytes((shipped_model_dir("unet3d") / name).read_bytes())
    before = sorted(p.name for p in folder.iterdir())
    inside = runner.invoke(app, ["export-model", str(folder), str(folder / "m.zip")])
    assert inside.exit_code == 2 and "lies inside the input" in inside.output, inside.output
    assert sorted(p.name for p in folder.iterdir()) == before
    taken = tmp_path / "taken.zip"
    taken.write_bytes(b"earlier")
    exists = runner.invoke(app, ["export-model", str(folder), str(taken)])
    assert exists.exit_code == 2 and "already exists" in exists.output and "--overwrite" not in exists.output
    assert taken.read_bytes() == b"earlier"
    unknown = runner.invoke(app, ["export-model", "magic", str(tmp_path / "x.zip")])
    assert unknown.exit_code == 2 and "nor the name of a shipped model" in unknown.output and "unet3d" in unknown.output
    as_archive = runner.invoke(app, ["import-model", str(folder)])
    assert as_archive.exit_code == 2 and "a folder, not a model archive" in as_archive.output, as_archive.output
    assert not (tmp_path / "x.zip").exists() and not models.exists()
