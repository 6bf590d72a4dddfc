"""benchmarks/widen_unet.py: a U-Net grown to more channels computes what it computed before, and
``spectac train --init`` takes it; bad requests are refused with nothing written."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch
from benchmark_scripts import BENCHMARKS

from spectac.io.checkpoint import load_checkpoint, save_checkpoint
from spectac.nn.registry import build_generator, input_channels, resolve_config

SCRIPT = BENCHMARKS / "widen_unet.py"


def _checkpoint(path: Path, model: str, network: dict) -> dict:
    """A checkpoint of ``model`` with every weight random (the zero head of a fresh log-ratio
    network would hide a wrong widening: its output would not depend on the backbone)."""
    config = resolve_config(model, network)
    generator = build_generator(config)
    torch.manual_seed(1)
    with torch.no_grad():
        for p in generator.parameters():
            p.normal_(0.0, 0.3)
    save_checkpoint({"config": {"model": model, "network": config}, "generator": generator.state_dict()}, path)
    return config


def _widen(*args: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(SCRIPT), *map(str, args)], capture_output=True, text=True)


@pytest.mark.parametrize(("model", "old", "new"), [("unet-gan3d-chang", [4, 8, 8], [6, 8, 16]),
                                                    ("unet2d", [4, 8], [8, 12])])
def test_the_widened_network_computes_what_the_original_did(tmp_path: Path, model: str, old: list[int],
                                                             new: list[int]) -> None:
    config = _checkpoint(tmp_path / "a.pt", model, {"channels": old})
    done = _widen(tmp_path / "a.pt", tmp_path / "b.pt", "--channels", ",".join(map(str, new)))
    assert done.returncode == 0, done.stderr
    original, wide = load_checkpoint(tmp_path / "a.pt"), load_checkpoint(tmp_path / "b.pt")
    assert wide["config"]["network"]["channels"] == new
    nets = []
    for state in (original, wide):
        net = build_generator(resolve_config(model, state["config"]["network"]))
        net.load_state_dict(state["generator"])
        nets.append(net.eval())
    x = torch.rand(2, input_channels(config), 20, 12, 9)  # another shape than the script's own check
    x[:, 1:] -= 0.5
    with torch.no_grad():
        a, b = (net(x) for net in nets)
    assert float(a.std()) > 0.01  # the backbone's output matters here
    torch.testing.assert_close(b, a, rtol=1e-5, atol=1e-5 * float(a.abs().max()))
    # the new channels are there to be trained: fresh weights into them, not zeros
    first = next(k for k in wide["generator"] if k.endswith("encoders.0.0.conv.weight"))
    assert float(wide["generator"][first][old[0]:].abs().sum()) > 0


def test_training_starts_from_the_widened_checkpoint(tmp_path: Path) -> None:
    from spectac.training.train import _init_generator

    _checkpoint(tmp_path / "a.pt", "unet-gan3d-chang", {"channels": [4, 8]})
    assert _widen(tmp_path / "a.pt", tmp_path / "b.pt", "--channels", "4,16").returncode == 0
    network = resolve_config("unet-gan3d-chang", {"channels": [4, 16]})
    generator = build_generator(network)
    _init_generator(generator, tmp_path / "b.pt", "unet-gan3d-chang", network)
    wide = load_checkpoint(tmp_path / "b.pt")["generator"]
    for key, value in generator.state_dict().items():
        torch.testing.assert_close(value, wide[key])


@pytest.mark.parametrize(("model", "channels", "message"), [
    ("unet-gan3d-chang", "2,8", "does not widen the model's 4,8"),
    ("unet-gan3d-chang", "4,8,16", "does not widen"),
    ("unet-gan3d-chang", "4,x", "whole numbers"),
    ("resnet", "8,16", "not a U-Net"),
])
def test_a_request_that_is_no_widening_is_refused(tmp_path: Path, model: str, channels: str, message: str) -> None:
    _checkpoint(tmp_path / "a.pt", model, {"channels": [4, 8]} if model != "resnet" else {})
    done = _widen(tmp_path / "a.pt", tmp_path / "b.pt", "--channels", channels)
    assert done.returncode == 2 and message in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "b.pt").exists()


def test_an_existing_output_is_not_overwritten(tmp_path: Path) -> None:
    _checkpoint(tmp_path / "a.pt", "unet-gan3d-chang", {"channels": [4, 8]})
    (tmp_path / "b.pt").write_bytes(b"keep")
    done = _widen(tmp_path / "a.pt", tmp_path / "b.pt", "--channels", "4,16")
    assert done.returncode == 2 and "exists" in done.stderr
    assert (tmp_path / "b.pt").read_bytes() == b"keep"
