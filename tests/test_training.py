"""Training: a GAN step learns, checkpoints round-trip, `spectac train` writes and resumes,
`spectac correct` corrects a NIfTI study."""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from spectac.cli import app
from spectac.correction import deep
from spectac.correction.deep import correct_nc, load_model, resolve_model
from spectac.io.checkpoint import load_checkpoint, save_checkpoint
from spectac.io.dataset import Case, write_manifest, write_study
from spectac.io.nifti import read_nifti, write_nifti
from spectac.nn.registry import build_discriminator, build_generator, resolve_config
from spectac.training.data import Augmentation, augment_pair, shift_zero_fill
from spectac.training.record import sha256_file
from spectac.training.steps import AdversarialStep, L1Loss, l1_loss, set_requires_grad
from spectac.volume import SpectacError, Volume

torch.set_num_threads(1)
N = 16
TINY = "4,8"


def synthetic_pair(rng: np.random.Generator, n: int = N) -> tuple[np.ndarray, np.ndarray]:
    """AC: a smooth blob ("heart") in a body; NC: AC times an attenuation-like factor that falls
    with depth in an ellipsoidal body (a Chang-like exp(-mu * depth))."""
    x, y, z = np.meshgrid(*[np.linspace(-1, 1, n)] * 3, indexing="ij")
    a, b = rng.uniform(0.7, 0.9), rng.uniform(0.5, 0.7)
    body = (x / a) ** 2 + (y / b) ** 2
    centre = rng.uniform(-0.2, 0.2, size=3)
    heart = np.exp(-(((x - centre[0]) ** 2 + (y - centre[1]) ** 2 + (z - centre[2]) ** 2) / 0.05))
    ac = np.where(body < 1, 20.0 + 200.0 * heart, 0.0)
    factor = np.exp(-2.0 * np.clip(1 - np.sqrt(body), 0, 1))
    return (ac * factor).astype(np.float32), ac.astype(np.float32)


def write_synthetic_dataset(root: Path, n_train: int = 4, n_val: int = 2, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    cases = []
    for i in range(n_train + n_val):
        nc, ac = synthetic_pair(rng)
        case_id = f"p{i:02d}_rest"
        write_study(root, case_id, {"nc": Volume.centred(nc, 6.8), "ac": Volume.centred(ac, 6.8)})
        cases.append(Case(case_id, f"p{i:02d}", "rest", "F", split="train" if i < n_train else "val"))
    write_manifest(root, {"source": "test"}, cases)
    return root


def test_gan_steps_lower_the_l1_term_on_a_tiny_case() -> None:
    torch.manual_seed(0)
    config = resolve_config("unet-gan3d", {"channels": [4, 8]})
    generator, discriminator = build_generator(config), build_discriminator(config)
    nc, ac = (torch.from_numpy(v)[None, None] / 200.0 for v in synthetic_pair(np.random.default_rng(1)))
    step = AdversarialStep(generator, discriminator, torch.optim.Adam(generator.parameters(), 2e-3, betas=(0.5, 0.999)),
                           torch.optim.Adam(discriminator.parameters(), 2e-4, betas=(0.5, 0.999)), lambda_l1=100.0)
    with torch.no_grad():
        before = float((generator(nc) - ac).abs().mean())
    losses = [step(nc, ac) for _ in range(12)]
    with torch.no_grad():
        after = float((generator(nc) - ac).abs().mean())
    assert after < 0.85 * before
    assert {"l1", "g_gan", "d"} <= set(losses[-1])
    # the discriminator is frozen while the generator learns and unfrozen for its own step
    assert not any(p.requires_grad for p in discriminator.parameters())
    set_requires_grad(discriminator, True)
    assert all(p.requires_grad for p in discriminator.parameters())


def test_checkpoint_round_trip_gives_identical_outputs(tmp_path: Path) -> None:
    torch.manual_seed(3)
    config = resolve_config("resnet", {"features": 4, "dilations": [1, 2]})
    generator = build_generator(config)
    with torch.no_grad():
        for p in generator.parameters():
            p.add_(0.1 * torch.randn_like(p))  # move the zero-initialised head away from identity
    save_checkpoint({"config": {"model": "resnet", "network": config}, "generator": generator.state_dict()},
                    tmp_path / "best.pt")
    model = load_model(tmp_path)
    x = torch.rand(1, 1, 12, 12, 12)
    with torch.no_grad():
        torch.testing.assert_close(model.generator(x), generator.eval()(x), rtol=0, atol=0)


def test_corrupt_or_missing_weights_are_user_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "best.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(SpectacError, match="not a readable checkpoint"):
        load_model(tmp_path)
    monkeypatch.setattr(deep, "shipped_model_dir", lambda name: tmp_path / "models" / name)
    with pytest.raises(SpectacError, match="no shipped weights for unet3d; train with spectac train or pass --weights"):
        resolve_model("unet3d")


def test_augmentation_moves_both_images_together() -> None:
    rng = np.random.default_rng(0)
    nc, ac = synthetic_pair(rng)
    draw = Augmentation(intensity=0.1, shift_voxels=2).draw(np.random.default_rng(5))
    factor, shift = draw.factor, draw.shift
    prior = np.log1p(nc)  # any second channel: it moves with the images but keeps its values
    inputs_a, ac_a = augment_pair(np.stack([nc, prior]), ac, factor, shift)
    assert 0.9 <= factor <= 1.1 and all(abs(s) <= 2 for s in shift)
    np.testing.assert_allclose(inputs_a[0], shift_zero_fill(nc, shift) * factor)
    np.testing.assert_allclose(inputs_a[1], shift_zero_fill(prior, shift))
    np.testing.assert_allclose(ac_a, shift_zero_fill(ac, shift) * factor)
    moved = shift_zero_fill(ac, (1, 0, -2))
    np.testing.assert_array_equal(moved[1:, :, :-2], ac[:-1, :, 2:])
    assert not moved[0].any() and not moved[:, :, -2:].any()


def _log_epochs(model_dir: Path) -> list[int]:
    with (model_dir / "log.csv").open() as f:
        return [int(row["epoch"]) for row in csv.DictReader(f)]


def test_train_cli_writes_best_weights_and_resumes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SPECTAC_PROGRESS", "0")
    data = write_synthetic_dataset(tmp_path / "data")
    out = tmp_path / "model"
    runner = CliRunner()
    args = ["train", "--model", "unet-gan3d", "--data", str(data), "--out", str(out), "--channels", TINY,
            "--seed", "1", "--patience", "0"]
    first = runner.invoke(app, args + ["--epochs", "2"])
    assert first.exit_code == 0, first.output
    assert _log_epochs(out) == [1, 2]
    config = json.loads((out / "config.json").read_text())
    assert config["model"] == "unet-gan3d" and config["network"]["channels"] == [4, 8]
    assert config["network"]["lambda_l1"] == 100.0 and config["data"]["train_cases"] == 4
    weights_after_2 = load_checkpoint(out / "last.pt")["generator"]

    # an interrupted run is the same as a finished shorter one: rerunning with more epochs resumes
    second = runner.invoke(app, args + ["--epochs", "3"])
    assert second.exit_code == 0, second.output
    assert "epochs 3-3" in second.output
    assert _log_epochs(out) == [1, 2, 3]
    last = load_checkpoint(out / "last.pt")
    assert last["epoch"] == 3
    assert any(not torch.equal(last["generator"][k], weights_after_2[k]) for k in weights_after_2)
    best = load_checkpoint(out / "best.pt")
    assert best["epoch"] == last["best_epoch"]

    again = runner.invoke(app, args + ["--epochs", "3"])
    assert again.exit_code == 0 and "nothing to do" in again.output

    other = runner.invoke(app, args[:-4] + ["--seed", "2", "--epochs", "4"])
    assert other.exit_code == 2 and "another configuration" in other.output

    # `spectac correct` on one NIfTI study with these weights
    nc = read_nifti(data / "studies" / "p05_rest" / "nc.nii.gz")
    target = tmp_path / "ac.nii.gz"
    result = runner.invoke(app, ["correct", str(data / "studies" / "p05_rest" / "nc.nii.gz"), "-o", str(target),
                                 "--method", "unet-gan3d", "--weights", str(out)])
    assert result.exit_code == 0, result.output
    ac = read_nifti(target)
    assert ac.same_grid(nc) and float(ac.array.min()) >= 0.0
    np.testing.assert_allclose(ac.array, correct_nc(nc, load_model(out)).array, rtol=1e-5, atol=1e-4)
    wrong = runner.invoke(app, ["correct", str(target), "-o", str(target), "--method", "unet-gan3d",
                                "--weights", str(out)])
    assert wrong.exit_code == 2 and "is the input" in wrong.output
    # `spectac predict` finds the registered network and uses these weights
    run = tmp_path / "run"
    predicted = runner.invoke(app, ["predict", "--method", "unet-gan3d", "--data", str(data), "--out", str(run),
                                    "--split", "val", "--set", f"weights={out}"])
    assert predicted.exit_code == 0, predicted.output
    np.testing.assert_allclose(read_nifti(run / "predictions" / "unet-gan3d" / "p05_rest.nii.gz").array, ac.array,
                               rtol=1e-5, atol=1e-4)
    mismatch = runner.invoke(app, ["correct", str(data / "studies" / "p05_rest" / "nc.nii.gz"), "-o",
                                   str(tmp_path / "x.nii.gz"), "--method", "unet3d",
                                   "--weights", str(out)])
    assert mismatch.exit_code == 2 and "weights of unet-gan3d" in mismatch.output


def test_correct_nc_predicts_in_counts_from_nc_alone(tmp_path: Path) -> None:
    torch.manual_seed(0)
    config = resolve_config("unet3d", {"channels": [4, 8]})
    save_checkpoint({"config": {"model": "unet3d", "network": config, "data": {"spacing_mm": [6.8] * 3}},
                     "generator": build_generator(config).state_dict()}, tmp_path / "best.pt")
    model = load_model(tmp_path / "best.pt")
    nc, _ = synthetic_pair(np.random.default_rng(2))
    volume = Volume.centred(nc, 6.8)
    # an untrained log-ratio model returns NC: the normalisation is undone exactly
    np.testing.assert_allclose(correct_nc(volume, model).array, nc, rtol=1e-5, atol=1e-4)
    # the prediction scales with the counts (the scale comes from the NC volume)
    np.testing.assert_allclose(correct_nc(volume.with_array(3 * nc), model).array, 3 * nc, rtol=1e-5, atol=1e-3)
    # a finer grid is resampled to the training voxel size and back onto the study's grid
    fine = Volume.centred(np.repeat(nc, 2, axis=2), (6.8, 6.8, 3.4))
    assert correct_nc(fine, model).same_grid(fine)
    write_nifti(volume, tmp_path / "nc.nii.gz")


def test_a_model_folder_being_trained_is_refused(tmp_path: Path) -> None:
    out = tmp_path / "model"
    out.mkdir()
    (out / ".lock").write_text(str(os.getpid()))  # a live process holds it
    result = CliRunner().invoke(app, ["train", "--model", "unet3d", "--data", str(tmp_path), "--out", str(out)])
    assert result.exit_code == 2 and "is being trained by process" in result.output
    (out / ".lock").write_text("999999999")  # a killed run's lock is taken over
    result = CliRunner().invoke(app, ["train", "--model", "unet3d", "--data", str(tmp_path / "none"), "--out", str(out)])
    assert result.exit_code == 2 and "no such dataset folder" in result.output
    assert not (out / ".lock").exists()


def test_fine_tuning_starts_from_the_given_weights_and_cosine_lowers_the_rate(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SPECTAC_PROGRESS", "0")
    data = write_synthetic_dataset(tmp_path / "data")
    runner = CliRunner()
    base = ["train", "--model", "unet3d", "--data", str(data), "--channels", TINY, "--patience", "0"]
    first = runner.invoke(app, [*base, "--out", str(tmp_path / "a"), "--epochs", "1", "--seed", "1"])
    assert first.exit_code == 0, first.output
    start = load_checkpoint(tmp_path / "a" / "last.pt")["generator"]

    # zero epochs of fine-tuning would be the given weights; one epoch moves away from them only by
    # the first step's size, whereas a fresh seed starts somewhere else entirely
    tuned = runner.invoke(app, [*base, "--out", str(tmp_path / "b"), "--epochs", "3", "--seed", "2",
                                "--init", str(tmp_path / "a"), "--lr-schedule", "cosine", "--lr", "1e-3"])
    assert tuned.exit_code == 0, tuned.output
    config = json.loads((tmp_path / "b" / "config.json").read_text())
    # the init weights by name and sha256, not by this machine's path
    assert config["training"]["init"] == {"name": "a", "sha256": sha256_file(tmp_path / "a" / "best.pt")}
    assert config["training"]["lr_schedule"] == "cosine"
    with (tmp_path / "b" / "log.csv").open() as f:
        rates = [float(row["lr"]) for row in csv.DictReader(f)]
    assert rates[0] == pytest.approx(1e-3) and rates[-1] == pytest.approx(1e-5) and rates[0] > rates[1] > rates[2]

    tuned_weights = load_checkpoint(tmp_path / "b" / "last.pt")["generator"]
    key = next(k for k in start if k.endswith("weight") and start[k].numel() > 8)
    moved_from_init = float((tuned_weights[key] - start[key]).abs().mean())
    torch.manual_seed(2)
    fresh = build_generator(resolve_config("unet3d", {"channels": [4, 8]}))
    moved_from_fresh = float((tuned_weights[key] - fresh.state_dict()[key]).abs().mean())
    assert moved_from_init < 0.5 * moved_from_fresh

    # with a cosine schedule, the epoch count fixes every rate: a resumption may not change it
    longer = runner.invoke(app, [*base, "--out", str(tmp_path / "b"), "--epochs", "4", "--seed", "2",
                                 "--init", str(tmp_path / "a"), "--lr-schedule", "cosine", "--lr", "1e-3"])
    assert longer.exit_code == 2 and "another configuration" in longer.output
    # weights of another model, and an unknown schedule, are refused before training
    wrong = runner.invoke(app, ["train", "--model", "resnet", "--data", str(data), "--out", str(tmp_path / "c"),
                                "--init", str(tmp_path / "a")])
    assert wrong.exit_code == 2 and "weights of resnet" in wrong.output
    bad = runner.invoke(app, [*base, "--out", str(tmp_path / "d"), "--lr-schedule", "linear"])
    assert bad.exit_code == 2 and "schedule" in bad.output
    assert not (tmp_path / "d").exists()
    # a loss weight is not part of the network: weights trained without it start a run with it,
    # whereas other channels are another network
    weighted = runner.invoke(app, [*base, "--out", str(tmp_path / "e"), "--epochs", "1", "--init", str(tmp_path / "a"),
                                   "--net", "uptake_weight=3"])
    assert weighted.exit_code == 0, weighted.output
    assert json.loads((tmp_path / "e" / "config.json").read_text())["network"]["uptake_weight"] == 3
    wider = runner.invoke(app, [*base[:-4], "--channels", "4,16", "--patience", "0", "--out", str(tmp_path / "f"),
                                "--init", str(tmp_path / "a")])
    assert wider.exit_code == 2 and "--init weights have network" in wider.output


def test_the_uptake_weighted_l1_is_a_weighted_mean_of_absolute_errors() -> None:
    rng = np.random.default_rng(3)
    target = rng.uniform(0, 2, size=(2, 1, 5, 6, 7)).astype(np.float32)
    prediction = target + rng.normal(0, 0.3, size=target.shape).astype(np.float32)
    p, t = torch.from_numpy(prediction), torch.from_numpy(target)
    # weight 0 is the mean absolute error (torch's L1Loss)
    assert float(l1_loss(p, t)) == pytest.approx(float(torch.nn.L1Loss()(p, t)), rel=1e-6)
    # weight w: 1 + w x target / its volume's maximum, a weighted mean (numpy, volume by volume)
    peak = target.reshape(2, -1).max(axis=1).reshape(2, 1, 1, 1, 1)
    weight = 1 + 3.0 * target / peak
    expected = (weight * np.abs(prediction - target)).sum() / weight.sum()
    assert float(l1_loss(p, t, 3.0)) == pytest.approx(float(expected), rel=1e-5)
    # the same error costs more at the hottest voxel than at the coldest
    hot = np.unravel_index(np.argmax(target[0]), target[0].shape)
    cold = np.unravel_index(np.argmin(target[0]), target[0].shape)
    at_hot, at_cold = t.clone(), t.clone()
    at_hot[(0, *hot)] += 1
    at_cold[(0, *cold)] += 1
    assert float(l1_loss(at_hot, t, 3.0)) > 3 * float(l1_loss(at_cold, t, 3.0))


def test_the_uptake_weight_with_a_reach_weighs_a_defect_as_the_wall_around_it() -> None:
    from scipy.ndimage import grey_dilation

    rng = np.random.default_rng(5)
    target = rng.uniform(0, 2, size=(2, 1, 6, 7, 8)).astype(np.float32)
    prediction = target + rng.normal(0, 0.3, size=target.shape).astype(np.float32)
    p, t = torch.from_numpy(prediction), torch.from_numpy(target)
    # the weight's target is scipy's grey dilation over the (2r + 1) cube (edges: the voxels inside)
    dilated = np.stack([grey_dilation(v[0], size=(5, 5, 5), mode="constant", cval=-np.inf)[None] for v in target])
    weight = 1 + 3.0 * dilated / target.reshape(2, -1).max(axis=1).reshape(2, 1, 1, 1, 1)
    expected = (weight * np.abs(prediction - target)).sum() / weight.sum()
    assert float(l1_loss(p, t, 3.0, uptake_reach=2)) == pytest.approx(float(expected), rel=1e-5)
    # a wall (1) with a defect (0.2) in its middle: filling the defect in costs as much as the same
    # error on the wall with a reach, a fifth of that without
    wall = torch.zeros(1, 1, 9, 9, 9)
    wall[0, 0, 1:8, 4, 4] = 1.0
    wall[0, 0, 4, 4, 4] = 0.2
    filled, raised = wall.clone(), wall.clone()
    filled[0, 0, 4, 4, 4] = 0.6
    raised[0, 0, 2, 4, 4] = 1.4
    assert float(l1_loss(filled, wall, 10.0, uptake_reach=1)) == pytest.approx(
        float(l1_loss(raised, wall, 10.0, uptake_reach=1)))
    assert float(l1_loss(filled, wall, 10.0)) < 0.3 * float(l1_loss(raised, wall, 10.0))
    # 2D volumes (the slice models) dilate over a square
    square = torch.zeros(1, 1, 5, 5)
    square[0, 0, 2, 2] = 1.0
    assert float(l1_loss(square + 0.5, square, 4.0, uptake_reach=1)) == pytest.approx(0.5)


def test_the_steps_loss_is_the_one_the_network_config_names() -> None:
    rng = np.random.default_rng(6)
    t = torch.from_numpy(rng.uniform(0, 2, size=(2, 1, 6, 7, 8)).astype(np.float32))
    p = t + torch.from_numpy(rng.normal(0, 0.3, size=t.shape).astype(np.float32))
    config = resolve_config("unet-gan3d", {"uptake_weight": 3.0, "log_weight": 0.2, "uptake_reach": 2})
    loss = L1Loss.from_network(config)
    assert float(loss(p, t)) == pytest.approx(float(l1_loss(p, t, 3.0, 0.2, 2)), rel=1e-6)
    assert float(loss(p, t)) != pytest.approx(float(l1_loss(p, t, 3.0, 0.2)), rel=1e-3)  # the reach counts
    # a config without loss options (a mu model's) is the plain L1
    assert float(L1Loss.from_network({})(p, t)) == pytest.approx(float((p - t).abs().mean()), rel=1e-6)


def test_an_untrained_chang_prior_model_is_first_order_chang(tmp_path: Path) -> None:
    from spectac.correction.chang import chang_first_order

    torch.manual_seed(0)
    config = resolve_config("unet3d", {"channels": [4, 8], "prior": "chang"})
    save_checkpoint({"config": {"model": "unet3d", "network": config, "data": {"spacing_mm": [6.8] * 3}},
                     "generator": build_generator(config).state_dict()}, tmp_path / "best.pt")
    model = load_model(tmp_path / "best.pt")
    nc, _ = synthetic_pair(np.random.default_rng(4), n=24)
    volume = Volume.centred(nc, 6.8)
    # zero-initialised head: AC = NC * exp(log Chang factor), i.e. Chang's own correction
    expected = chang_first_order(volume).array
    np.testing.assert_allclose(correct_nc(volume, model).array, expected, rtol=1e-4, atol=1e-3)
    assert float(expected.max()) > 1.5 * float(nc.max())  # the prior does correct something
    with pytest.raises(SpectacError, match="unknown network prior"):
        resolve_config("unet3d", {"prior": "ct"})


def test_train_with_the_chang_prior(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SPECTAC_PROGRESS", "0")
    data = write_synthetic_dataset(tmp_path / "data", n_train=2, n_val=1)
    out = tmp_path / "model"
    result = CliRunner().invoke(app, ["train", "--model", "pix2pix2d", "--data", str(data), "--out", str(out),
                                      "--channels", TINY, "--epochs", "1", "--prior", "chang",
                                      "--augment", "basic", "--aug", "truncation=1", "--aug", "counts=2"])
    assert result.exit_code == 0, result.output
    model = load_model(out)
    assert model.prior == "chang" and model.config["network"]["prior"] == "chang"
    # the augmentation is recorded and on the card
    augmentation = model.config["training"]["augmentation"]
    assert augmentation["truncation"] == 1 and augmentation["counts"] == 2 and augmentation["intensity"] == 0.1
    card = (out / "MODEL_CARD.md").read_text()
    assert "Augmentation: stage 1: lateral truncation with probability 1" in card and "--aug truncation=1" in card
    bad = CliRunner().invoke(app, ["train", "--data", str(data), "--out", str(tmp_path / "bad"), "--aug", "tilt=2"])
    assert bad.exit_code == 2 and "unknown augmentation setting 'tilt'" in bad.output
    assert not (tmp_path / "bad").exists()
    config = resolve_config("pix2pix2d", {"channels": [4, 8], "prior": "chang"})
    disc = build_discriminator(config)
    assert disc(torch.zeros(1, 3, 16, 16, 16)).shape[1] == 1  # NC, prior and AC
    nc = read_nifti(data / "studies" / "p02_rest" / "nc.nii.gz")
    assert correct_nc(nc, model).same_grid(nc)


def test_correct_nifti_is_independent_of_the_stored_axis_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A NIfTI file with its x axis stored reversed (as converters often write) is the same study:
    every method sees it with axes along +x, +y, +z of LPS, so the result is the same at the same
    place. A probe method that weights voxels by their array index x shows any slip."""
    from spectac.correction.methods import METHODS, Method

    def probe(nc: Volume, context: object) -> Volume:
        assert np.allclose(nc.direction, np.eye(3))  # what every method may rely on
        return nc.with_array(nc.array * (1.0 + np.arange(nc.shape[0], dtype=np.float32))[:, None, None])

    monkeypatch.setitem(METHODS, "probe-x", Method("probe-x", probe))
    nc, _ = synthetic_pair(np.random.default_rng(6), n=24)
    volume = Volume.centred(nc, 6.8)
    flipped = Volume(nc[::-1].copy(), volume.spacing, tuple(volume.point_of(np.array([23, 0, 0]))),
                     np.diag([-1.0, 1.0, 1.0]))
    write_nifti(volume, tmp_path / "plain.nii.gz")
    write_nifti(flipped, tmp_path / "flipped.nii.gz")
    runner = CliRunner()
    for name in ("plain", "flipped"):
        result = runner.invoke(app, ["correct", str(tmp_path / f"{name}.nii.gz"), "-o",
                                     str(tmp_path / f"{name}_ac.nii.gz"), "--method", "probe-x"])
        assert result.exit_code == 0, result.output
    plain, other = read_nifti(tmp_path / "plain_ac.nii.gz"), read_nifti(tmp_path / "flipped_ac.nii.gz")
    assert other.same_grid(flipped)
    np.testing.assert_allclose(other.array[::-1], plain.array, rtol=1e-5, atol=1e-3)

    # an existing output is kept unless --overwrite; an all-zero study is refused by name
    before = (tmp_path / "plain_ac.nii.gz").read_bytes()
    again = runner.invoke(app, ["correct", str(tmp_path / "plain.nii.gz"), "-o", str(tmp_path / "plain_ac.nii.gz"),
                                "--method", "nc"])
    assert again.exit_code == 2 and "already exists" in again.output
    assert (tmp_path / "plain_ac.nii.gz").read_bytes() == before
    forced = runner.invoke(app, ["correct", str(tmp_path / "plain.nii.gz"), "-o", str(tmp_path / "plain_ac.nii.gz"),
                                 "--method", "nc", "--overwrite"])
    assert forced.exit_code == 0, forced.output
    np.testing.assert_allclose(read_nifti(tmp_path / "plain_ac.nii.gz").array, nc, rtol=1e-6)
    write_nifti(volume.with_array(np.zeros_like(nc)), tmp_path / "zero.nii.gz")
    for method in ("nc", "chang"):
        zero = runner.invoke(app, ["correct", str(tmp_path / "zero.nii.gz"), "-o", str(tmp_path / "z.nii.gz"),
                                   "--method", method])
        assert zero.exit_code == 2 and "zero.nii.gz" in zero.output and "no counts" in zero.output
        assert len(zero.output.strip().splitlines()) == 1
    assert not (tmp_path / "z.nii.gz").exists()


def test_a_run_saved_before_newer_settings_still_resumes(tmp_path: Path) -> None:
    """A last.pt written by an earlier version lacks settings added since (schedule, init, prior,
    orbit): they take their defaults, so the same command still resumes it."""
    from dataclasses import asdict

    from spectac.acquisition.protocol import Protocol
    from spectac.training.train import TrainOptions, _same_run

    current = {"model": "unet3d", "network": resolve_config("unet3d"),
               "training": json.loads(json.dumps(asdict(TrainOptions()))),
               "data": {"dataset": "d", "protocol": Protocol().to_dict()}}
    old = json.loads(json.dumps(current))
    for key in ("lr_schedule", "init"):
        old["training"].pop(key)
    old["network"].pop("prior")
    old["data"].pop("protocol")
    assert _same_run(old, current)
    other = json.loads(json.dumps(current))
    other["training"]["seed"] = 5
    assert not _same_run(old, other)


def test_the_same_state_saves_to_the_same_bytes_under_any_file_name(tmp_path: Path) -> None:
    """torch names the archive inside a .pt after the file it writes: a temporary name made every
    save differ. The bytes must not depend on the name or on the moment."""
    torch.manual_seed(0)
    state = {"config": {"model": "resnet"}, "generator": build_generator(resolve_config("resnet")).state_dict(),
             "epoch": 3}
    a = save_checkpoint(state, tmp_path / "one" / "best.pt")
    b = save_checkpoint(state, tmp_path / "two" / "last.pt")
    assert a.read_bytes() == b.read_bytes()
    loaded = load_checkpoint(a)["generator"]
    assert all(torch.equal(loaded[k], v) for k, v in state["generator"].items())


def test_two_identical_trainings_write_byte_identical_checkpoints(tmp_path: Path) -> None:
    from spectac.training import TrainOptions, train_model

    data = write_synthetic_dataset(tmp_path / "data")
    options = TrainOptions(epochs=1, seed=1, patience=0)
    for name in ("a", "b"):
        train_model(data, tmp_path / name, "unet-gan3d", options, network={"channels": [4, 8]})
    for checkpoint in ("best.pt", "last.pt"):
        assert (tmp_path / "a" / checkpoint).read_bytes() == (tmp_path / "b" / checkpoint).read_bytes(), checkpoint
    # the wall times are in log.csv, not in the checkpoint
    assert all("seconds" not in row for row in load_checkpoint(tmp_path / "a" / "last.pt")["history"])
    with (tmp_path / "a" / "log.csv").open() as f:
        (row,) = csv.DictReader(f)
    assert float(row["seconds"]) > 0
    # a resumed run keeps the wall times of the epochs before it
    train_model(data, tmp_path / "a", "unet-gan3d", TrainOptions(epochs=2, seed=1, patience=0),
                network={"channels": [4, 8]})
    with (tmp_path / "a" / "log.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert [r["epoch"] for r in rows] == ["1", "2"] and rows[0]["seconds"] == row["seconds"]
    assert float(rows[1]["seconds"]) > 0


def test_clean_target_trains_against_the_expected_ct_ac_and_is_refused_without_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from spectac.io.dataset import Dataset
    from spectac.training.card import rebuilt_command
    from spectac.training.data import check_clean_target, load_pair

    monkeypatch.setenv("SPECTAC_PROGRESS", "0")
    data = write_synthetic_dataset(tmp_path / "data")
    runner = CliRunner()
    args = ["train", "--model", "unet-gan3d", "--data", str(data), "--channels", TINY, "--epochs", "1",
            "--seed", "1", "--clean-target"]
    refused = runner.invoke(app, args + ["--out", str(tmp_path / "m0")])
    assert refused.exit_code == 2 and "--expected-ac" in refused.output and len(refused.output.splitlines()) == 1
    assert not (tmp_path / "m0").exists()
    dataset = Dataset.open(data)
    for case in dataset.cases:  # a stand-in expected image that differs from the stored AC
        ac = dataset.load(case.case_id, "ac")
        write_nifti(ac.with_array(ac.array * np.float32(0.5)), dataset.path(case.case_id, "ac_expected"))
    clean, noisy = (load_pair(dataset, "p00_rest", 99.9, clean=c) for c in (True, False))
    np.testing.assert_array_equal(clean.nc, noisy.nc)
    np.testing.assert_allclose(clean.ac, 0.5 * noisy.ac, rtol=1e-6)
    with pytest.raises(SpectacError, match="not the mu map"):
        check_clean_target(dataset, "p00_rest", "mu", True)
    trained = runner.invoke(app, args + ["--out", str(tmp_path / "m1")])
    assert trained.exit_code == 0, trained.output
    config = json.loads((tmp_path / "m1" / "config.json").read_text())
    assert config["training"]["clean_target"] is True
    assert "--clean-target" in rebuilt_command(config, "m1")
    # validation is scored against the clean target too: the logged val L1 is the trained weights'
    # mean L1 against the halved AC
    from spectac.training.data import batches, load_pairs
    from spectac.training.steps import mean_l1

    generator = build_generator(config["network"])
    generator.load_state_dict(load_checkpoint(tmp_path / "m1" / "best.pt")["generator"])
    for clean_target, match in ((True, True), (False, False)):
        pairs = load_pairs(dataset, "val", config["training"]["percentile"], clean=clean_target)
        with torch.no_grad():
            l1 = mean_l1(generator, batches(pairs, 1))
        assert (abs(l1 - _val_l1(tmp_path / "m1")) < 1e-6 * max(l1, 1e-12)) == match, (clean_target, l1)


def test_extra_train_datasets_are_trained_on_recorded_and_refused_when_unusable(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from spectac.training.card import model_card, rebuilt_command

    monkeypatch.setenv("SPECTAC_PROGRESS", "0")
    data = write_synthetic_dataset(tmp_path / "data", n_train=2)
    extra = write_synthetic_dataset(tmp_path / "extra", n_train=3, n_val=1, seed=7)
    runner = CliRunner()
    base = ["train", "--model", "unet3d", "--data", str(data), "--channels", TINY, "--epochs", "1", "--seed", "1",
            "--augment", "none"]
    for name, more in (("alone", []), ("both", ["--extra-train", str(extra)])):
        result = runner.invoke(app, base + ["--out", str(tmp_path / name)] + more)
        assert result.exit_code == 0, result.output
    config = json.loads((tmp_path / "both" / "config.json").read_text())
    (recorded,) = config["data"]["extra_train"]
    assert recorded["dataset"] == "extra" and recorded["train_cases"] == 3
    assert recorded["fingerprint"]["cases.csv"] == sha256_file(extra / "cases.csv")
    assert config["data"]["train_cases"] == 2 and config["data"]["val_cases"] == 2  # val stays --data's
    assert "--extra-train extra" in rebuilt_command(config, "both")
    assert "3 train studies of dataset `extra`" in model_card(tmp_path / "both")
    assert "extra_train" not in json.loads((tmp_path / "alone" / "config.json").read_text())["data"]
    # the extra studies were trained on: five steps instead of two from the same seed
    weights = [load_checkpoint(tmp_path / n / "last.pt")["generator"] for n in ("alone", "both")]
    assert any(not torch.equal(weights[0][k], weights[1][k]) for k in weights[0])
    # a run is resumed only with the same extra datasets
    result = runner.invoke(app, base + ["--out", str(tmp_path / "both"), "--epochs", "2"])
    assert result.exit_code == 2 and "another configuration" in result.output

    # unusable extras: one line, exit 2, nothing written
    small = tmp_path / "small"
    rng = np.random.default_rng(3)
    nc, ac = synthetic_pair(rng, n=12)
    write_study(small, "q00_rest", {"nc": Volume.centred(nc, 6.8), "ac": Volume.centred(ac, 6.8)})
    write_manifest(small, {"source": "test"}, [Case("q00_rest", "q00", "rest", "F", split="train")])
    twin = tmp_path / "twin"
    for folder, seed in ((data, 0), (twin, 0)):  # two cohorts simulated with one seed hold the same patients
        if folder == twin:
            write_synthetic_dataset(twin, n_train=2, seed=1)
        meta = json.loads((folder / "dataset.json").read_text())
        (folder / "dataset.json").write_text(json.dumps({**meta, "source": "simulation", "seed": seed}))
    no_train = write_synthetic_dataset(tmp_path / "valonly", n_train=0, n_val=2, seed=2)
    for given, match in (([extra, extra], "given twice"), ([data], "given twice"), ([no_train], "no study in its train"),
                         ([small], "one network trains on one grid"), ([twin], "simulated with --data's seed"),
                         ([tmp_path / "missing"], "missing")):
        out = tmp_path / f"refused_{match.split()[0]}"
        args = base + ["--out", str(out)] + [a for x in given for a in ("--extra-train", str(x))]
        result = runner.invoke(app, args)
        assert result.exit_code == 2, (match, result.output)
        assert match in result.output and len(result.output.strip().splitlines()) == 1, result.output
        assert not out.exists()


def _val_l1(model_dir: Path) -> float:
    with open(model_dir / "log.csv") as f:
        return float(list(csv.DictReader(f))[-1]["val_l1"])


def test_the_log_term_keeps_the_median_and_lifts_the_gradient_where_counts_are_few() -> None:
    # both terms are minimised by the median (log is monotone): a constant prediction scanned over
    # a skewed set of target voxels finds the same minimum with the log term as without it
    rng = np.random.default_rng(0)
    target = torch.from_numpy(rng.gamma(0.5, 0.02, size=(1, 1, 4000)).astype(np.float32))
    grid = torch.linspace(0.0, 0.05, 501)

    def best(log_weight: float) -> float:
        losses = [float(l1_loss(torch.full_like(target, float(c)), target, 0.0, log_weight)) for c in grid]
        return float(grid[int(np.argmin(losses))])

    median = float(target.median())
    assert abs(best(0.0) - median) < 2e-4 and abs(best(1.0) - median) < 2e-4
    # a log-ratio prediction NC x exp(r): at a voxel of few counts the L1's gradient on r is tiny,
    # the log term's is not
    r = torch.zeros(1, 1, 2, requires_grad=True)
    nc = torch.tensor([[[1.0, 0.005]]])
    goal = torch.tensor([[[0.5, 0.0005]]])
    grads = []
    for log_weight in (0.0, 0.1):
        r.grad = None
        l1_loss(nc * torch.exp(r), goal, 0.0, log_weight).backward()
        grads.append(r.grad.clone())
    assert float(grads[0][0, 0, 1]) < 0.01 * float(grads[0][0, 0, 0])  # plain L1: 200x smaller at few counts
    assert float(grads[1][0, 0, 1]) > 5 * float(grads[0][0, 0, 1])
    assert torch.isclose(grads[1][0, 0, 0], grads[0][0, 0, 0], rtol=0.1)  # where counts are many: ~unchanged
    with pytest.raises(SpectacError, match="log_weight must be >= 0"):
        resolve_config("unet-gan3d-chang", {"log_weight": -1.0})


def test_the_wall_term_scores_the_uptake_relative_to_the_wall() -> None:
    from spectac.training.steps import split_target, wall_term

    rng = np.random.default_rng(8)
    target = rng.uniform(0.5, 2, size=(3, 1, 6, 7, 8)).astype(np.float32)
    prediction = target * rng.uniform(0.8, 1.2, size=target.shape).astype(np.float32)
    wall = (rng.uniform(size=target.shape) < 0.3).astype(np.float32)
    wall[2] = 0  # a study without a wall in the field does not count
    p, t, w = (torch.from_numpy(a) for a in (prediction, target, wall))
    # numpy: the mean over each wall of |p / its wall mean - t / its wall mean|, over the studies with one
    expected = []
    for b in range(2):
        on = wall[b] > 0
        expected.append(np.abs(prediction[b][on] / prediction[b][on].mean() - target[b][on] / target[b][on].mean()).mean())
    assert float(wall_term(p, t, w)) == pytest.approx(float(np.mean(expected)), rel=1e-5)
    squared = [((prediction[b][wall[b] > 0] / prediction[b][wall[b] > 0].mean()
                 - target[b][wall[b] > 0] / target[b][wall[b] > 0].mean()) ** 2).mean() for b in range(2)]
    assert float(wall_term(p, t, w, power=2)) == pytest.approx(float(np.mean(squared)), rel=1e-5)
    # blind to a common scale of the wall, not to a defect filled in
    assert float(wall_term(2.5 * t, t, w)) == pytest.approx(0.0, abs=1e-6)
    filled = t.clone()
    filled[0][w[0] > 0] = filled[0][w[0] > 0].mean()
    assert float(wall_term(filled, t, w)) > 0.05
    # the loss adds it at its weight when the target carries the wall, and refuses to run without one
    both = torch.cat([t, w], dim=1)
    assert split_target(both)[0].shape == t.shape and torch.equal(split_target(both)[1], w)
    loss = L1Loss(uptake_weight=3.0, wall_weight=0.5)
    assert float(loss(p, both)) == pytest.approx(float(l1_loss(p, t, 3.0) + 0.5 * wall_term(p, t, w)), rel=1e-6)
    assert float(L1Loss(uptake_weight=3.0)(p, both)) == pytest.approx(float(l1_loss(p, t, 3.0)), rel=1e-6)
    with pytest.raises(ValueError, match="wall mask"):
        loss(p, t)
    assert L1Loss.from_network(resolve_config("unet-gan3d", {"wall_weight": 0.5})).wall_weight == 0.5
    loss2 = L1Loss.from_network(resolve_config("unet-gan3d", {"wall_weight": 0.5, "wall_power": 2}))
    assert float(loss2(p, both)) == pytest.approx(float(l1_loss(p, t) + 0.5 * wall_term(p, t, w, 2)), rel=1e-6)
    with pytest.raises(SpectacError, match="wall_weight must be >= 0"):
        resolve_config("unet-gan3d", {"wall_weight": -1.0})
    with pytest.raises(SpectacError, match="wall_power must be 1"):
        resolve_config("unet-gan3d", {"wall_power": 3})


def test_a_squared_wall_error_keeps_an_uncertain_defect_at_its_mean_depth() -> None:
    # one input, two targets alike but for a defect (60% of the wall) in one of three: the best single
    # prediction under the absolute error has no defect (the median), under the squared one a defect
    # of about a third of its depth (the mean), which is what a score summed over studies needs
    from spectac.training.steps import wall_term

    wall = torch.ones(3, 1, 4, 4, 4)
    normal = torch.ones(1, 1, 4, 4, 4)
    defect = normal.clone()
    defect[..., :2] = 0.4
    targets = torch.cat([defect, normal, normal])
    depth = torch.zeros(1, requires_grad=True)
    optimiser = torch.optim.Adam([depth], lr=0.02)
    found = {}
    for power in (1, 2):
        depth.data.zero_()
        for _ in range(600):
            guess = normal.clone()
            guess[..., :2] = 1 - depth
            optimiser.zero_grad()
            wall_term(guess.expand(3, -1, -1, -1, -1), targets, wall, power).backward()
            optimiser.step()
        found[power] = float(depth.detach())
    assert abs(found[1]) < 0.05
    # a part of the defect's depth of 0.6 near a third (not exactly: each image is divided by its own mean)
    assert 0.2 < found[2] / 0.6 < 0.5


def test_the_wall_mask_moves_with_the_target_and_needs_the_lv_truth(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from dataclasses import replace

    from spectac.training.data import Draw, Pair, augment, batches

    rng = np.random.default_rng(9)
    nc, ac = synthetic_pair(rng)
    wall = np.zeros_like(ac)
    wall[6:10, 5:9, 7:11] = 1
    pair = Pair("p", nc, ac, 1.0, wall=wall)
    x, target = augment(pair, Augmentation(counts=0.0, smooth_sigma=0.0, truncation=0.0), Draw(shift=(2, -1, 3)))
    assert target.shape == (2, N, N, N)
    np.testing.assert_array_equal(x[0], shift_zero_fill(nc, (2, -1, 3)))
    np.testing.assert_array_equal(target[0], shift_zero_fill(ac, (2, -1, 3)))
    np.testing.assert_array_equal(target[1], shift_zero_fill(wall, (2, -1, 3)))
    # a truncated field zeroes the wall with the target
    cut = Augmentation(counts=0.0, smooth_sigma=0.0, truncation=1.0)
    _, truncated = augment(pair, cut, Draw(cuts=(0.0, 0.6)))
    assert truncated[0].max() > 0 and not truncated[1][truncated[0] == 0].any()
    assert 0 < truncated[1].sum() < wall.sum()
    (_, stacked), = batches([pair], 1)
    assert stacked.shape == (1, 2, N, N, N)
    (_, alone), = batches([replace(pair, wall=None)], 1)
    assert alone.shape == (1, 1, N, N, N)
    # a dataset without lv.json (not simulated) cannot train with the wall term: one line, exit 2
    monkeypatch.setenv("SPECTAC_PROGRESS", "0")
    data = write_synthetic_dataset(tmp_path / "data")
    result = CliRunner().invoke(app, ["train", "--model", "unet-gan3d", "--data", str(data), "--channels", TINY,
                                      "--epochs", "1", "--out", str(tmp_path / "m"), "--net", "wall_weight=1"])
    assert result.exit_code == 2 and "no lv.json" in result.output and len(result.output.splitlines()) == 1
    assert not (tmp_path / "m").exists()
