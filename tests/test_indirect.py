"""The indirect route: a mu model (target "mu") trained on the datasets' mu-maps, and
`spectac correct --route indirect` = OSEM of the projections with the predicted mu-map, the same
physics as `spectac reconstruct --mu` with the true one."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy import ndimage
from typer.testing import CliRunner

from spectac.acquisition.acquire import acquire_windows
from spectac.acquisition.protocol import Protocol
from spectac.cli import app
from spectac.correction import deep, indirect
from spectac.correction.methods import METHODS
from spectac.errors import SpectacError
from spectac.io.dataset import Case, Dataset, write_manifest, write_study
from spectac.io.nifti import read_nifti, write_nifti
from spectac.io.projections import (
    EnergyWindow,
    acquisition_from_projections,
    read_projections,
    write_projections_dicom,
)
from spectac.nn.registry import REGISTRY, resolve_config
from spectac.reconstruction.scatter_image import scatter_image
from spectac.training.data import Augmentation, Draw, augment, load_pair, shift_zero_fill
from spectac.volume import Volume

torch.set_num_threads(1)
runner = CliRunner()
SPACING = 6.8
N = 20
SHIPPED_AC_MODEL = deep.shipped_model_dir("unet3d")


def _run(*args: object):
    return runner.invoke(app, [str(a) for a in args])


def _mu_dataset(root: Path, n: int = 16) -> Path:
    """Studies whose NC is an attenuated body and whose mu-map is that body (water, a lung block)."""
    rng = np.random.default_rng(0)
    cases = []
    c = (n - 1) / 2
    xx, yy, _ = np.meshgrid(*(np.arange(n) - c,) * 3, indexing="ij")
    for i in range(4):
        a, b = rng.uniform(0.3, 0.45) * n, rng.uniform(0.25, 0.35) * n
        body = ((xx / a) ** 2 + (yy / b) ** 2 <= 1).astype(np.float32)
        mu = 0.153 * body
        mu[int(c) - 4:int(c) - 1, int(c):int(c) + 3, :] *= 0.3
        ac = 100.0 * body
        nc = ac * np.exp(-2.0 * np.clip(1 - np.sqrt((xx / a) ** 2 + (yy / b) ** 2), 0, 1))
        grid = Volume.centred(nc.astype(np.float32), SPACING)
        case_id = f"p{i:02d}_rest"
        # an imported study's own scatter-window image (no projections.npz to make one from)
        scatter = grid.with_array(ndimage.gaussian_filter(30.0 * body, 1.5).astype(np.float32))
        write_study(root, case_id, {"nc": grid, "ac": grid.with_array(ac), "mu": grid.with_array(mu),
                                    "scatter": scatter})
        cases.append(Case(case_id, f"p{i:02d}", "rest", "F", split="train" if i < 3 else "val"))
    write_manifest(root, {"source": "test"}, cases)
    return root


@pytest.fixture(scope="module")
def mu_model(tmp_path_factory) -> Path:
    """A unet3d-mu trained one epoch by `spectac train` on a tiny dataset."""
    root = tmp_path_factory.mktemp("mu")
    data = _mu_dataset(root / "data")
    out = root / "unet3d-mu"
    result = _run("train", "--model", "unet3d-mu", "--data", data, "--out", out, "--epochs", 1, "--channels", "4,8")
    assert result.exit_code == 0, (result.output, result.exception)
    return out


def test_train_target_mu_writes_a_model_that_says_so(mu_model: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = json.loads((mu_model / "config.json").read_text())
    assert config["model"] == "unet3d-mu" and config["target"] == "mu"
    model = deep.load_model(mu_model)
    assert model.target == "mu" and model.config == config
    assert "mu-map in 1/cm" in (mu_model / "MODEL_CARD.md").read_text()
    # it takes NC and the scatter-window image, and says so
    assert config["network"]["scatter_input"] is True and config["inputs"]["channels"] == ["nc", "scatter"]
    assert config["inputs"]["scatter_image"]["osem"]["iterations"] == 2
    # the prediction is a mu-map: 1/cm, >= 0, on the NC grid, whatever the count level
    dataset = Dataset.open(mu_model.parent / "data")
    nc, scatter = dataset.load("p00_rest", "nc"), dataset.load("p00_rest", "scatter")
    mu = indirect.predict_mu(nc, model, scatter)
    assert mu.same_grid(nc) and mu.array.min() >= 0
    np.testing.assert_allclose(indirect.predict_mu(nc.with_array(10 * nc.array), model,
                                                   scatter.with_array(10 * scatter.array)).array, mu.array, atol=1e-5)
    # the network input is the training pair's, channel for channel
    seen = []
    monkeypatch.setattr(deep, "predict_normalised", lambda generator, x, *_: seen.append(x) or x[0])
    indirect.predict_mu(nc, model, scatter)
    np.testing.assert_allclose(seen[0], load_pair(dataset, "p00_rest", 99.9, target="mu", scatter=True).inputs(),
                               rtol=1e-6)
    # a mu model is no correction method; an AC model is
    assert "unet3d-mu" not in METHODS and "unet3d" in METHODS
    assert REGISTRY["unet3d-mu"].target == "mu" and REGISTRY["unet3d"].target == "ac"


def test_l1_steps_bring_the_predicted_mu_map_closer(mu_model: Path) -> None:
    """The mu model's training step learns the mu-map: the same batches and steps as
    `spectac train` (SupervisedStep on load_pairs(target="mu") batches) lower the L1 in 1/cm."""
    from spectac.nn.registry import build_generator
    from spectac.training.data import batches, load_pairs
    from spectac.training.steps import SupervisedStep, mean_l1

    torch.manual_seed(0)
    pairs = load_pairs(Dataset.open(mu_model.parent / "data"), "train", 99.9, target="mu", scatter=True)
    generator = build_generator(resolve_config("unet3d-mu", {"channels": [4, 8]}))
    step = SupervisedStep(generator, torch.optim.Adam(generator.parameters(), lr=3e-3))
    before = mean_l1(generator, batches(pairs, 3))
    for _ in range(25):
        for x, y in batches(pairs, 3):
            step(x, y)
    assert mean_l1(generator, batches(pairs, 3)) < 0.5 * before


def test_a_mu_model_keeps_the_direct_output_rule() -> None:
    """mu is no factor on NC: the log-ratio and residual rules are refused for a mu model."""
    assert resolve_config("unet3d-mu")["output"] == "direct"
    for output in ("log-ratio", "residual"):
        with pytest.raises(SpectacError, match="output must be direct"):
            resolve_config("unet3d-mu", {"output": output})


def test_mu_target_is_the_stored_mu_map_and_moves_with_the_input(mu_model: Path) -> None:
    """The target is mu.nii.gz in 1/cm (not on the NC scale); a shift moves input and target
    alike; counts, smoothing and truncation alter the NC input only."""
    dataset = Dataset.open(mu_model.parent / "data")
    pair = load_pair(dataset, "p00_rest", 99.9, target="mu")
    np.testing.assert_array_equal(pair.ac, dataset.load("p00_rest", "mu").array)
    shift = (2, -1, 1)
    plain = augment(pair, Augmentation(), Draw(shift=shift))
    np.testing.assert_array_equal(plain[0][0], shift_zero_fill(pair.nc, shift))
    np.testing.assert_array_equal(plain[1], shift_zero_fill(pair.ac, shift))
    inputs, target = augment(pair, Augmentation(), Draw(shift=shift, counts=0.5, sigma=0.8, cuts=(0.2, 0.1),
                                                        noise_seed=3))
    np.testing.assert_array_equal(target, shift_zero_fill(pair.ac, shift))
    assert not np.array_equal(inputs[0], plain[0][0])
    # an AC target takes the same alterations as its input
    ac_pair = load_pair(dataset, "p00_rest", 99.9)
    _, ac_target = augment(ac_pair, Augmentation(), Draw(shift=shift, counts=0.5))
    np.testing.assert_allclose(ac_target, 0.5 * shift_zero_fill(ac_pair.ac, shift), rtol=1e-6)


def test_mu_target_undoes_the_recorded_misregistration(tmp_path: Path) -> None:
    """A simulated study's mu.nii.gz is the CT's map displaced by the drawn misregistration
    (lv.json phantom.mu_shift_mm); the mu target is moved back onto the emission data: a shift of
    one voxel along x is undone exactly (linear interpolation at whole voxels), zeros entering."""
    n = 12
    mu = np.zeros((n, n, n), np.float32)
    mu[3:9, 4:8, 2:10] = 0.153
    grid = Volume.centred(np.ones((n, n, n), np.float32), SPACING)
    write_study(tmp_path, "p00_rest", {"nc": grid, "ac": grid, "mu": grid.with_array(mu)},
                lv={"phantom": {"mu_shift_mm": [SPACING, 0.0, 0.0]}})
    write_study(tmp_path, "p01_rest", {"nc": grid, "ac": grid, "mu": grid.with_array(mu)})
    write_manifest(tmp_path, {"source": "test"}, [Case("p00_rest", "p00", "rest", "F", split="train"),
                                                  Case("p01_rest", "p01", "rest", "F", split="train")])
    dataset = Dataset.open(tmp_path)
    moved = load_pair(dataset, "p00_rest", 99.9, target="mu").ac
    expected = np.zeros_like(mu)
    expected[:-1] = mu[1:]
    np.testing.assert_allclose(moved, expected, atol=1e-7)
    np.testing.assert_array_equal(load_pair(dataset, "p01_rest", 99.9, target="mu").ac, mu)  # none recorded


def _cylinder(n: int, radius: float) -> np.ndarray:
    c = (n - 1) / 2
    xx, yy = np.meshgrid(np.arange(n) - c, np.arange(n) - c, indexing="ij")
    return np.repeat(((xx**2 + yy**2) <= radius**2)[:, :, None], n, axis=2).astype(np.float32)


@pytest.fixture(scope="module")
def projections(tmp_path_factory) -> tuple[Path, Path, np.ndarray]:
    """A simulated four-window acquisition (photopeak, TEW pair, DEW window) as NM TOMO DICOM, and
    its true mu-map as NIfTI on the reconstruction grid."""
    root = tmp_path_factory.mktemp("tomo")
    protocol = Protocol(n_views=12, matrix=N, pixel_mm=SPACING)
    body = _cylinder(N, 7)
    truth, mu = 2000.0 * body, 0.153 * body
    mu[4:8, 8:12, :] *= 0.3
    truth[13, 6, 12] += 4.0e5
    windows, projector = acquire_windows(truth, mu, protocol, SPACING, np.random.default_rng(3))
    table = {w.name: w for w in protocol.windows}
    order = ["photopeak", "tew_lower", "tew_upper", "dew_lower"]
    acq = acquisition_from_projections([windows[n].numpy() for n in order], protocol, projector.radii_mm,
                                       [EnergyWindow(n, table[n].lower_kev, table[n].upper_kev) for n in order],
                                       "LEHR")
    path = write_projections_dicom(acq, root / "tomo.dcm")
    return path, write_nifti(Volume.centred(mu, SPACING), root / "mu.nii.gz"), mu


OSEM = ("--iterations", 2, "--subsets", 4)


def test_indirect_with_the_true_mu_is_reconstruct_with_the_true_mu(projections, mu_model: Path, tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """Physics against physics: a mu model that predicts the true mu-map makes the indirect route
    give `spectac reconstruct --mu TRUE_MU`'s image (TEW-corrected by default, as reconstruct), and
    the consistency index it prints is `spectac qc`'s of the unfiltered image and the mu-map."""
    path, mu_path, mu = projections
    seen = []

    def true_mu(nc: Volume, model: deep.DeepModel, scatter: Volume | None = None) -> Volume:
        seen.append((nc.array.copy(), model.target, scatter))
        return nc.with_array(mu)

    monkeypatch.setattr(indirect, "predict_mu", true_mu)
    out, mu_out = tmp_path / "indirect.nii.gz", tmp_path / "mu_pred.nii.gz"
    result = _run("correct", "--route", "indirect", path, "-o", out, "--weights", mu_model, "--mu-out", mu_out, *OSEM)
    assert result.exit_code == 0, (result.output, result.exception)
    expected = tmp_path / "reconstruct.nii.gz"
    assert _run("reconstruct", path, "-o", expected, "--mu", mu_path, *OSEM).exit_code == 0
    np.testing.assert_array_equal(read_nifti(out).array, read_nifti(expected).array)
    np.testing.assert_array_equal(read_nifti(mu_out).array, mu)
    # the network saw the NC reconstruction, as `spectac reconstruct` makes it
    nc = tmp_path / "nc.nii.gz"
    assert _run("reconstruct", path, "-o", nc, *OSEM).exit_code == 0
    np.testing.assert_array_equal(seen[0][0], read_nifti(nc).array)
    assert seen[0][1] == "mu"
    # and the scatter-window image of the recipe training used: OSEM of the DEW window
    acquisition = read_projections(path)
    expected_scatter = scatter_image(acquisition, acquisition.window_index())
    assert expected_scatter.role == "dew_lower"
    np.testing.assert_array_equal(seen[0][2].array, expected_scatter.volume.array)
    # the printed index is spectac qc's of the unfiltered image and the predicted mu-map
    unfiltered = tmp_path / "unfiltered.nii.gz"
    assert _run("reconstruct", path, "-o", unfiltered, "--mu", mu_out, "--cutoff", 0, *OSEM).exit_code == 0
    qc = _run("qc", path, "--image", unfiltered, "--mu", mu_out)
    assert qc.exit_code == 0, qc.output
    printed = re.search(r"consistency index D/E = (\S+)", " ".join(result.output.split()))
    assert printed is not None and f"index D/E = {printed.group(1)} " in " ".join(qc.output.split())

def test_indirect_nm_dicom_output(projections, mu_model: Path, tmp_path: Path, monkeypatch) -> None:
    """NM DICOM out, as `reconstruct` writes it (RECON TOMO, ATTN and SCAT in Corrected Image)."""
    import pydicom

    path, _, mu = projections
    monkeypatch.setattr(indirect, "predict_mu", lambda nc, model, *_: nc.with_array(mu))
    out = tmp_path / "ac.dcm"
    result = _run("correct", "--route", "indirect", path, "-o", out, "--weights", mu_model, *OSEM)
    assert result.exit_code == 0, (result.output, result.exception)
    ds = pydicom.dcmread(out)
    assert list(ds.ImageType)[2] == "RECON TOMO"
    assert {"ATTN", "SCAT"} <= set(ds.CorrectedImage)
    assert "unet3d-mu" in ds.SeriesDescription


def _model_with_threshold(mu_model: Path, folder: Path, threshold: float | None) -> Path:
    """A copy of the mu model whose config.json holds a calibrated threshold (None: none)."""
    import shutil

    from spectac.io.training_files import write_config_block
    from spectac.reconstruction.consistency import qc_block

    shutil.copytree(mu_model, folder)
    if threshold is not None:
        write_config_block(folder, "qc", qc_block(threshold, 0.95, "test val split", 7))
    return folder


def test_the_threshold_is_read_from_the_mu_models_config(mu_model: Path, tmp_path: Path) -> None:
    """config.json's "qc" block is the model's threshold (a checkpoint holds none); a bad block is
    refused; the shipped mu model carries one."""
    assert deep.load_model(mu_model).qc_threshold is None
    folder = _model_with_threshold(mu_model, tmp_path / "m", 1.25)
    threshold = deep.load_model(folder).qc_threshold
    assert threshold is not None and threshold.value == 1.25
    assert threshold.source == "unet3d-mu: 95th percentile of 7 studies (test val split)"
    assert deep.mu_model_qc_threshold(folder) == threshold
    from spectac.training.card import model_card

    assert "Consistency threshold 1.25 (config.json `qc` block)" in model_card(folder)
    assert "No consistency threshold calibrated" in model_card(mu_model)
    config = json.loads((folder / "config.json").read_text())
    for bad in ({"threshold": "1.2"}, {"threshold": float("nan")}, {"threshold": -1.0}, [1.2]):
        (folder / "config.json").write_text(json.dumps({**config, "qc": bad}))
        with pytest.raises(SpectacError, match="qc"):
            deep.load_model(folder)
    shipped = deep.shipped_model_dir(deep.MU_MODEL)
    if (shipped / "best.pt").is_file():
        block = json.loads((shipped / "config.json").read_text())["qc"]
        assert deep.mu_model_qc_threshold().value == block["threshold"]  # type: ignore[union-attr]


def test_the_qc_verdict_is_in_every_output(projections, mu_model: Path, tmp_path: Path, monkeypatch) -> None:
    """Flagged at a threshold below the index, not flagged above it, no flag without a threshold:
    on the console, in the NIfTI's sidecar JSON and description, in the DICOM Image Comments, in
    spectac qc's console line and CSV; --qc-threshold overrides the model's."""
    import pydicom
    from nibabel import load as nib_load

    path, mu_path, mu = projections
    monkeypatch.setattr(indirect, "predict_mu", lambda nc, model, *_: nc.with_array(mu))
    plain = tmp_path / "plain.nii.gz"
    result = _run("correct", "--route", "indirect", path, "-o", plain, "--weights", mu_model, *OSEM)
    assert result.exit_code == 0, (result.output, result.exception)
    assert "no threshold" in result.output
    record = json.loads((tmp_path / "plain.nii.gz.json").read_text())["spectac_qc"]
    assert record["flagged"] is None and record["threshold"] is None
    index = record["index"]
    low, high = index / 2, index * 2
    flagged_model = _model_with_threshold(mu_model, tmp_path / "low", low)
    for args, flagged in (((), True), (("--qc-threshold", high), False)):
        out = tmp_path / f"{flagged}.nii.gz"
        result = _run("correct", "--route", "indirect", path, "-o", out, "--weights", flagged_model, *OSEM, *args)
        assert result.exit_code == 0, (result.output, result.exception)
        text = " ".join(result.output.split())
        assert ("QC: FLAGGED" in text) == flagged and ("QC: NOT FLAGGED" in text) != flagged
        record = json.loads((tmp_path / f"{flagged}.nii.gz.json").read_text())["spectac_qc"]
        assert record["flagged"] is flagged and record["threshold"] == pytest.approx(low if flagged else high)
        assert record["index"] == pytest.approx(index)
        descrip = nib_load(out).header["descrip"].tobytes().decode().rstrip("\x00")
        assert descrip.endswith("QC FLAGGED") == flagged
        dcm = tmp_path / f"{flagged}.dcm"
        result = _run("correct", "--route", "indirect", path, "-o", dcm, "--weights", flagged_model, *OSEM, *args)
        assert result.exit_code == 0, (result.output, result.exception)
        comments = str(pydicom.dcmread(dcm, stop_before_pixels=True).ImageComments)
        assert comments.startswith("spectac QC: FLAGGED" if flagged else "spectac QC: NOT FLAGGED")
    # spectac qc: the model's threshold by default, --qc-threshold over it
    image = tmp_path / "ac.nii.gz"
    assert _run("reconstruct", path, "-o", image, "--mu", mu_path, "--cutoff", 0, *OSEM).exit_code == 0
    for args, flagged in (((), "true"), (("--qc-threshold", 1e6), "false")):
        csv = tmp_path / f"qc{flagged}.csv"
        result = _run("qc", path, "--image", image, "--mu", mu_path, "--weights", flagged_model, "--csv", csv, *args)
        assert result.exit_code == 0, result.output
        assert ("QC: FLAGGED" in " ".join(result.output.split())) == (flagged == "true")
        lines = csv.read_text().splitlines()
        assert lines[0].endswith(",threshold,flagged") and lines[-1].endswith(f",{flagged}")
    result = _run("qc", path, "--image", image, "--mu", mu_path, "--weights", mu_model)
    assert result.exit_code == 0 and "no threshold" in result.output
    line = _refused(_run("qc", path, "--image", image, "--mu", mu_path, "--qc-threshold", -1))
    assert "--qc-threshold" in line
    out = tmp_path / "neg.nii.gz"
    assert "--qc-threshold" in _refused(_run("correct", "--route", "indirect", path, "-o", out, "--weights", mu_model,
                                             "--qc-threshold", 0), out)


def _refused(result, *absent: Path) -> str:
    assert result.exit_code == 2, (result.output, result.exception)
    lines = result.output.strip().splitlines()
    assert len(lines) == 1, result.output
    assert all(not p.exists() for p in absent)
    return lines[0]


def test_bad_inputs_are_refused_and_nothing_is_written(projections, mu_model: Path, tmp_path: Path) -> None:
    path, mu_path, _ = projections
    out, mu_out = tmp_path / "out.nii.gz", tmp_path / "mu_out.nii.gz"
    # a reconstructed image is no projection file
    line = _refused(_run("correct", "--route", "indirect", mu_path, "-o", out, "--weights", mu_model), out)
    assert "raw projections" in line
    # an AC model for the indirect route, a mu model for the direct route
    if (SHIPPED_AC_MODEL / "best.pt").is_file():
        line = _refused(_run("correct", "--route", "indirect", path, "-o", out, "--weights", SHIPPED_AC_MODEL,
                             "--mu-out", mu_out), out, mu_out)
        assert "not mu-maps" in line
    nc = tmp_path / "nc.nii.gz"
    assert _run("reconstruct", path, "-o", nc, *OSEM).exit_code == 0
    line = _refused(_run("correct", nc, "-o", out, "--method", "unet3d", "--weights", mu_model), out)
    assert "mu-map model" in line and "--route indirect" in line
    # options of the other route
    _refused(_run("correct", nc, "-o", out, "--mu-out", mu_out), out, mu_out)
    _refused(_run("correct", "--route", "indirect", path, "-o", out, "--method", "chang"), out)
    _refused(_run("correct", "--route", "sideways", path, "-o", out), out)
    # an existing --mu-out
    mu_out.write_bytes(b"keep")
    _refused(_run("correct", "--route", "indirect", path, "-o", out, "--weights", mu_model, "--mu-out", mu_out), out)
    assert mu_out.read_bytes() == b"keep"


def test_a_mu_map_beyond_any_tissue_is_refused(projections, mu_model: Path, tmp_path: Path, monkeypatch) -> None:
    path, _, _ = projections
    monkeypatch.setattr(indirect, "predict_mu", lambda nc, model, *_: nc.with_array(np.full(nc.shape, 3.0, np.float32)))
    out, mu_out = tmp_path / "out.nii.gz", tmp_path / "mu.nii.gz"
    line = _refused(_run("correct", "--route", "indirect", path, "-o", out, "--weights", mu_model, "--mu-out", mu_out,
                         *OSEM), out, mu_out)
    assert "beyond any tissue" in line


def test_no_mu_model_installed_is_one_clear_line(projections, tmp_path: Path, monkeypatch) -> None:
    path, _, _ = projections
    monkeypatch.setattr(deep, "shipped_model_dir", lambda name: tmp_path / "nothing" / name)
    out = tmp_path / "out.nii.gz"
    line = _refused(_run("correct", "--route", "indirect", path, "-o", out), out)
    assert "no mu model is installed" in line


def test_the_indirect_route_writes_the_study_report(projections, mu_model: Path, tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """--report beside the output: NC is the NC OSEM the mu model saw, AC the written image; the
    page names the mu model and its weights' SHA-256 (hashed here) and carries the printed
    consistency index, FLAGGED below it and not flagged above it; a taken report file is refused
    with nothing written."""
    import hashlib

    from spectac.evaluation import study_report

    path, _, mu = projections
    seen: dict[str, np.ndarray] = {}

    def true_mu(nc: Volume, model: deep.DeepModel, *_: object) -> Volume:
        seen["mu model"] = nc.array.copy()
        return nc.with_array(mu)

    build = study_report.build_study_report

    def recording(nc: Volume, corrected: Volume, *args, **kwargs):
        seen["nc"], seen["ac"] = nc.array.copy(), corrected.array.copy()
        return build(nc, corrected, *args, **kwargs)

    monkeypatch.setattr(indirect, "predict_mu", true_mu)
    monkeypatch.setattr(study_report, "build_study_report", recording)
    sha = hashlib.sha256((mu_model / "best.pt").read_bytes()).hexdigest()
    for threshold, flagged in ((1e-6, True), (1e6, False)):
        out = tmp_path / f"{flagged}.nii.gz"
        result = _run("correct", "--route", "indirect", path, "-o", out, "--weights", mu_model, *OSEM, "--report",
                      "--qc-threshold", threshold)
        assert result.exit_code == 0, (result.output, result.exception)
        printed = re.search(r"consistency index D/E = (\S+)", " ".join(result.output.split()))
        assert printed is not None
        html = (tmp_path / f"{flagged}.report.html").read_text()
        assert (tmp_path / f"{flagged}.report.pdf").read_bytes().startswith(b"%PDF")
        assert f"D/E = {printed.group(1)} " in html
        assert ("Consistency QC (indirect route): FLAGGED" in html) == flagged
        assert ("Consistency QC (indirect route): NOT FLAGGED" in html) != flagged
        assert "<td>Method</td><td>indirect</td>" in html and "<td>Model</td><td>unet3d-mu</td>" in html
        assert sha in html
        np.testing.assert_array_equal(seen["nc"], seen["mu model"])
        np.testing.assert_array_equal(seen["ac"], read_nifti(out).array)
    # a taken report file: refused, nothing written, the file kept
    out = tmp_path / "taken.nii.gz"
    (tmp_path / "taken.report.pdf").write_bytes(b"keep")
    line = _refused(_run("correct", "--route", "indirect", path, "-o", out, "--weights", mu_model, "--report"),
                    out, tmp_path / "taken.report.html", tmp_path / "taken.nii.gz.json")
    assert "report file already exists" in line and "--overwrite" not in line  # the route has none
    assert (tmp_path / "taken.report.pdf").read_bytes() == b"keep"
    # --sex and --state belong to the report, on this route too
    assert "--report" in _refused(_run("correct", "--route", "indirect", path, "-o", out, "--weights", mu_model,
                                       "--state", "rest"), out)


def test_augmentation_treats_the_scatter_image_as_nc(mu_model: Path) -> None:
    """The scatter-window image (channel 1) is an image of the same acquisition: the shift, the
    truncation window (found on NC), the count factor and the smoothing act on it as on NC; its
    noise is its own, and NC's draws are those of the same pair without it."""
    dataset = Dataset.open(mu_model.parent / "data")
    pair = load_pair(dataset, "p00_rest", 99.9, target="mu", scatter=True)
    alone = load_pair(dataset, "p00_rest", 99.9, target="mu")
    assert pair.inputs().shape == (2, *pair.nc.shape) and pair.images == 2 and alone.images == 1
    np.testing.assert_array_equal(pair.inputs()[0], alone.inputs()[0])
    quiet = Augmentation(noise=0.0)
    shift = (2, -1, 1)
    (x, _), (nc_only, _) = (augment(p, quiet, Draw(shift=shift, counts=0.5)) for p in (pair, alone))
    np.testing.assert_allclose(x[1], 0.5 * shift_zero_fill(pair.scatter, shift), rtol=1e-6)
    np.testing.assert_array_equal(x[0], nc_only[0])
    cut, _ = augment(pair, quiet, Draw(cuts=(0.3, 0.0)))
    outside = cut[0].max(axis=(1, 2)) == 0  # the columns the window zeroes in NC ...
    assert outside.any() and (cut[1][outside] == 0).all() and (cut[1][~outside] == pair.scatter[~outside]).all()
    smooth, _ = augment(pair, quiet, Draw(sigma=0.8))
    np.testing.assert_allclose(smooth[1], ndimage.gaussian_filter(pair.scatter, 0.8, mode="constant"), rtol=1e-5)
    noisy, _ = augment(pair, Augmentation(), Draw(counts=0.5, noise_seed=3))
    noisy_alone, _ = augment(alone, Augmentation(), Draw(counts=0.5, noise_seed=3))
    np.testing.assert_array_equal(noisy[0], noisy_alone[0])
    assert not np.allclose(noisy[1], 0.5 * pair.scatter)


def _photopeak_only(projections_path: Path, folder: Path) -> Path:
    """The fixture's acquisition with its photopeak window alone, as NM TOMO DICOM."""
    from dataclasses import replace

    acquisition = read_projections(projections_path)
    w = acquisition.window_index()
    single = replace(acquisition, counts=acquisition.counts[w : w + 1], windows=[acquisition.windows[w]])
    return write_projections_dicom(single, folder / "photopeak.dcm")


def test_without_a_scatter_window_the_route_refuses_or_takes_an_nc_only_model(projections, mu_model: Path,
                                                                                tmp_path: Path, monkeypatch) -> None:
    """No window below the photopeak: the shipped kind of mu model (NC + scatter image) refuses
    with one line before any OSEM and writes nothing; an NC-only mu model (scatter_input false)
    corrects the same file."""
    from spectac.training.options import TrainOptions
    from spectac.training.train import train_model

    path, _, _ = projections
    single = _photopeak_only(path, tmp_path)
    out = tmp_path / "out.nii.gz"
    with monkeypatch.context() as patched:
        patched.setattr(indirect, "reconstruct_window", lambda *a, **k: pytest.fail("OSEM ran"))
        line = _refused(_run("correct", "--route", "indirect", single, "-o", out, "--weights", mu_model), out)
    assert "no energy window below the photopeak" in line and "--route direct" in line
    nc_only = tmp_path / "nc-only"
    train_model(mu_model.parent / "data", nc_only, "unet3d-mu", TrainOptions(epochs=1),
                {"channels": [4, 8], "scatter_input": False})
    config = json.loads((nc_only / "config.json").read_text())
    assert config["inputs"]["channels"] == ["nc"] and "scatter_image" not in config["inputs"]
    result = _run("correct", "--route", "indirect", single, "-o", out, "--weights", nc_only, *OSEM)
    assert result.exit_code == 0, (result.output, result.exception)
    assert read_nifti(out).shape == (N, N, N)
