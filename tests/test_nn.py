"""Networks: shapes in 2D and 3D, the discriminator as the paper specifies it, the registry,
the output rule and the normalisation round trip."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from spectac.nn import ACPredictor, DilatedResNet, PatchDiscriminator, SliceWise, UNet
from spectac.nn.normalisation import denormalise, nc_scale, normalise
from spectac.nn.registry import (
    REGISTRY,
    build_discriminator,
    build_generator,
    input_channels,
    model_names,
    resolve_config,
)
from spectac.volume import SpectacError

torch.set_num_threads(1)


@pytest.mark.parametrize("spatial_dims", [2, 3])
@pytest.mark.parametrize("shape", [16, 20])
def test_unet_keeps_shape(spatial_dims: int, shape: int) -> None:
    net = UNet(spatial_dims, 1, 1, channels=(4, 8, 16))
    x = torch.rand(2, 1, *([shape] * spatial_dims))
    assert net(x).shape == x.shape


@pytest.mark.parametrize("spatial_dims", [2, 3])
def test_resnet_keeps_shape(spatial_dims: int) -> None:
    net = DilatedResNet(spatial_dims, 1, 1, features=4, dilations=(1, 2))
    x = torch.rand(2, 1, *([18] * spatial_dims))
    assert net(x).shape == x.shape


@pytest.mark.parametrize("name", model_names())
def test_registered_generators_map_volume_to_same_shape(name: str) -> None:
    config = resolve_config(name)  # the defaults: small enough for a 16 x 16 x 12 volume
    generator = build_generator(config)
    channels = input_channels(config)  # NC (and the log Chang factor, or the scatter-window image)
    assert channels == (2 if config.get("prior") == "chang" or config.get("scatter_input") else 1)
    x = torch.rand(2, channels, 16, 16, 12)
    y = generator(x)
    assert y.shape == (2, 1, 16, 16, 12)
    assert float(y.detach().min()) >= 0.0
    discriminator = build_discriminator(config)
    assert (discriminator is not None) == REGISTRY[name].adversarial
    if discriminator is not None:
        logits = discriminator(torch.cat([x, y], dim=1))
        assert logits.shape[:2] == (2, 1) and logits.ndim == 5


@pytest.mark.parametrize("spatial_dims", [2, 3])
def test_discriminator_is_as_the_paper_specifies(spatial_dims: int) -> None:
    disc = PatchDiscriminator(spatial_dims, in_channels=2)
    convs = [m for m in disc.modules() if isinstance(m, nn.modules.conv._ConvNd)]
    assert len(convs) == 6
    assert all(c.kernel_size == (2,) * spatial_dims for c in convs)
    assert [c.stride[0] for c in convs] == [2, 2, 2, 2, 1, 1]
    assert convs[0].in_channels == 2 and convs[-1].out_channels == 1
    norms = [m for m in disc.modules() if isinstance(m, (nn.InstanceNorm2d, nn.InstanceNorm3d))]
    acts = [m for m in disc.modules() if isinstance(m, nn.LeakyReLU)]
    assert len(acts) == 5 and len(norms) == 4  # between the six convolutions; none after the logits
    x = torch.rand(1, 2, *([32] * spatial_dims))
    assert disc(x).shape == (1, 1, *([32 // 16 + 2] * spatial_dims))


def test_slicewise_applies_the_same_2d_network_to_every_axial_slice() -> None:
    net2d = UNet(2, 1, 1, channels=(4, 8))
    x = torch.rand(1, 1, 8, 8, 5)
    y = SliceWise(net2d)(x)
    for z in range(5):
        torch.testing.assert_close(y[..., z], net2d(x[..., z]))


def test_log_ratio_head_starts_as_identity_and_stays_non_negative() -> None:
    model = ACPredictor(UNet(3, 1, 1, channels=(4, 8)), "log-ratio")
    x = torch.rand(1, 1, 8, 8, 8)
    torch.testing.assert_close(model(x), x)
    with torch.no_grad():
        for p in model.parameters():
            p.normal_()
    with torch.no_grad():
        assert float(model(x - 0.5).min()) >= 0.0


def test_log_prior_is_the_last_input_channel_whatever_comes_between() -> None:
    """An untrained (zero-head) predictor returns NC x exp(prior): with three inputs (NC, another
    image, the prior) the prior is the third, not the image beside NC."""
    model = ACPredictor(UNet(3, 3, 1, channels=(4, 8)), "log-ratio", log_prior=True)
    nc, other, prior = torch.rand(1, 1, 8, 8, 8), torch.rand(1, 1, 8, 8, 8), 0.5 * torch.rand(1, 1, 8, 8, 8)
    torch.testing.assert_close(model(torch.cat([nc, other, prior], dim=1)), nc * torch.exp(prior))


def test_unknown_model_and_option_are_user_errors() -> None:
    with pytest.raises(SpectacError, match="unknown model"):
        resolve_config("unet4d")
    with pytest.raises(SpectacError, match="no option"):
        resolve_config("unet3d", {"lambda_l1": 10})
    with pytest.raises(SpectacError, match="model resnet has no option channels"):
        resolve_config("resnet", {"channels": [4, 8]})


@pytest.mark.parametrize("name", model_names())
def test_every_registry_row_is_complete(name: str) -> None:
    """What the command line, the methods' table and docs/models.md read of a row."""
    spec = REGISTRY[name]
    assert spec.name == name and spec.description and "|" not in spec.description
    assert spec.spatial_dims in (2, 3)
    assert {"output", "prior"} <= set(spec.defaults)
    assert spec.adversarial == ({"disc_channels", "disc_norm", "lambda_l1"} <= set(spec.defaults))
    assert resolve_config(name, resolve_config(name)) == resolve_config(name)  # a saved config reads back


@pytest.mark.parametrize(
    ("name", "overrides", "match"),
    [
        ("unet3d", {"channels": 8}, "channels must be a list of numbers"),
        ("unet3d", {"channels": "8,16"}, "channels must be a list of numbers"),
        ("resnet", {"features": 4.5}, "features must be a whole number"),
        ("unet-gan3d", {"lambda_l1": "ten"}, "lambda_l1 must be a number"),
        ("unet3d", {"norm": 3}, "norm must be a string"),
        ("unet-gan3d-chang", {"uptake_weight": -1}, "uptake_weight must be >= 0"),
        ("unet-gan3d-chang", {"uptake_reach": -2}, "uptake_reach must be >= 0 voxels"),
        ("unet-gan3d-chang", {"uptake_reach": 1.5}, "uptake_reach must be a whole number"),
        ("unet3d", {"uptake_reach": 2}, "set uptake_weight > 0 too"),
        ("unet3d-mu", {"uptake_weight": 2}, "has no option uptake_weight"),
    ],
)
def test_network_options_of_another_kind_than_the_default_are_refused(name, overrides, match) -> None:
    with pytest.raises(SpectacError, match=match):
        resolve_config(name, overrides)


def test_network_options_keep_their_kind() -> None:
    config = resolve_config("resnet", {"features": 4.0, "dilations": (1, 2)})
    assert config["features"] == 4 and isinstance(config["features"], int) and config["dilations"] == [1, 2]
    assert resolve_config("unet-gan3d", {"lambda_l1": 10})["lambda_l1"] == 10


def test_the_registry_loads_no_torch() -> None:
    """The command line reads names and options without loading the networks."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    import spectac

    env = {**os.environ, "PYTHONPATH": str(Path(spectac.__file__).parents[1])}
    code = ("import sys, spectac.cli, spectac.correction.methods, spectac.nn.registry; "
            "print(sorted({'torch', 'scipy', 'numpy'} & set(sys.modules)))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env=env).stdout
    assert out.strip() == "[]"


def test_normalisation_round_trip_uses_nc_alone() -> None:
    rng = np.random.default_rng(0)
    nc = rng.gamma(2.0, 50.0, size=(16, 16, 16)).astype(np.float32)
    normalised, scale = normalise(nc)
    assert scale == pytest.approx(np.percentile(nc, 99.9), rel=1e-6)
    np.testing.assert_allclose(denormalise(normalised, scale), nc, rtol=1e-6)
    assert nc_scale(nc * 3) == pytest.approx(3 * scale, rel=1e-6)
    with pytest.raises(SpectacError, match="no positive counts"):
        normalise(np.zeros((4, 4, 4), np.float32))


@pytest.mark.parametrize("spatial_dims", [2, 3])
@pytest.mark.parametrize(
    "norm, act, transposed, strides, dilation",
    [("instance", "relu", False, 1, 1), ("instance", "leakyrelu", False, 2, 1), ("batch", "relu", False, 1, 2),
     (None, "relu", False, 1, 1), ("instance", None, False, 1, 3), (None, None, True, 1, 1), (None, None, False, 1, 1)],
)
def test_conv_block_is_monai_convolution(spatial_dims, norm, act, transposed, strides, dilation) -> None:
    """spectac's plain-torch block against MONAI's Convolution (the block the shipped weights were
    trained with): the same state-dict keys and shapes, and with the same weights the same output."""
    from monai.networks.blocks import Convolution

    from spectac.nn.blocks import conv

    padding = dilation
    ours = conv(spatial_dims, 3, 5, strides=strides, dilation=dilation, padding=padding, norm=norm, act=act,
                transposed=transposed)
    theirs = Convolution(spatial_dims, 3, 5, strides=strides, kernel_size=3, dilation=dilation, padding=padding,
                         output_padding=0 if transposed else None, is_transposed=transposed,
                         act={"relu": "RELU", "leakyrelu": ("LEAKYRELU", {"negative_slope": 0.2}), None: None}[act],
                         norm={"instance": ("INSTANCE", {"affine": True}), "batch": "BATCH", None: None}[norm],
                         conv_only=norm is None and act is None)
    assert {k: v.shape for k, v in ours.state_dict().items()} == {k: v.shape for k, v in theirs.state_dict().items()}
    torch.manual_seed(0)
    for tensor in theirs.state_dict().values():
        if tensor.is_floating_point():
            tensor.copy_(torch.randn_like(tensor).abs() + 0.1)
    ours.load_state_dict(theirs.state_dict(), strict=True)
    ours.train(), theirs.train()
    x = torch.randn(2, 3, *(9,) * spatial_dims)
    torch.testing.assert_close(ours(x), theirs(x), rtol=0, atol=0)
    ours.eval(), theirs.eval()
    torch.testing.assert_close(ours(x), theirs(x), rtol=0, atol=0)


def test_shipped_weights_load_strictly_into_the_plain_torch_networks() -> None:
    """Every shipped model's state dict fits its network exactly (load_state_dict is strict)."""
    from spectac.correction.deep import load_model, shipped_model_dir

    shipped = [name for name in REGISTRY if (shipped_model_dir(name) / "best.pt").is_file()]
    assert "unet-gan3d-chang" in shipped
    for name in shipped:
        assert load_model(shipped_model_dir(name)).name == name
