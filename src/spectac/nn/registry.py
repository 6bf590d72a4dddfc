"""The one registry of network names: each entry builds its generator (and discriminator) from a
plain config dict, the same dict that is saved as config.json beside the weights.

| name         | generator                      | discriminator      | loss                    |
|--------------|--------------------------------|--------------------|-------------------------|
| unet-gan3d   | 3D U-Net                        | 3D patch (6 convs) | adversarial + lambda*L1 |
| unet3d       | 3D U-Net                        | -                  | L1                      |
| unet2d       | 2D U-Net over axial slices      | -                  | L1                      |
| pix2pix2d    | 2D U-Net over axial slices      | 2D patch, slices   | adversarial + lambda*L1 |
| resnet       | 3D dilated residual network     | -                  | L1                      |
| unet-gan3d-chang | the unet-gan3d networks on NC + the log Chang factor (spectac's own) | 3D patch | adversarial + lambda*L1 |

Every generator maps a normalised NC volume (B, 1, X, Y, Z) to the AC prediction of the same
shape (see :mod:`spectac.nn.heads` for the output rule). With the network option
``prior="chang"`` the input has a second channel, the log first-order Chang factor made from the
NC volume (:mod:`spectac.correction.prior`), and the network corrects on top of it.

Default sizes are chosen for a 2-core CPU (benchmarks/bench_inference.py): U-Net channels
(8, 16, 32, 64) run a 64^3 study in about 0.25 s and a training step in about 0.9 s; the
residual network keeps 12 features in four blocks (dilations 1, 2, 4, 8: a receptive field of
63 voxels, the whole body) because every one of its layers works at full resolution.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from torch import nn

from spectac.nn.discriminator import PatchDiscriminator
from spectac.nn.heads import ACPredictor, SliceWise
from spectac.nn.resnet import DilatedResNet
from spectac.nn.unet import UNet
from spectac.volume import SpectacError

Config = dict[str, Any]

_UNET = {"channels": [8, 16, 32, 64], "norm": "instance", "output": "log-ratio", "prior": "none"}
#: Input channels per prior: the normalised NC volume, plus the log Chang factor for "chang".
PRIOR_CHANNELS = {"none": 1, "chang": 2}
_GAN = {"disc_channels": 16, "disc_norm": "instance", "lambda_l1": 100.0}


@dataclass(frozen=True)
class ModelSpec:
    """One registered model: how to build it and how it is trained."""

    name: str
    description: str
    spatial_dims: int
    build_backbone: Callable[[int, Config], nn.Module]
    adversarial: bool
    defaults: Config = field(default_factory=dict)


def input_channels(config: Config) -> int:
    """Input channels of a resolved config's generator (configs saved before priors have none).

    Raises:
        SpectacError: an unknown prior, or a prior without the log-ratio output it builds on.
    """
    prior = config.get("prior", "none")
    if prior not in PRIOR_CHANNELS:
        raise SpectacError(f"unknown network prior {prior!r}; choose from {', '.join(PRIOR_CHANNELS)}")
    if prior != "none" and config.get("output", "log-ratio") != "log-ratio":
        raise SpectacError(f"the {prior} prior is a log correction factor: it needs output log-ratio, "
                           f"not {config.get('output')!r}")
    return PRIOR_CHANNELS[prior]


def _unet(spatial_dims: int, config: Config) -> nn.Module:
    return UNet(spatial_dims, input_channels(config), 1, channels=config["channels"], norm=config["norm"])


def _resnet(spatial_dims: int, config: Config) -> nn.Module:
    return DilatedResNet(spatial_dims, input_channels(config), 1, features=config["features"],
                         dilations=config["dilations"], norm=config["norm"])


REGISTRY: dict[str, ModelSpec] = {
    spec.name: spec
    for spec in (
        ModelSpec("unet-gan3d", "3D U-Net generator + 3D patch discriminator (the 3DUnet-GAN of Chu Minh Duc et al. 2023)", 3, _unet, True,
                  {**_UNET, **_GAN}),
        ModelSpec("unet3d", "3D U-Net trained with L1 only", 3, _unet, False, dict(_UNET)),
        ModelSpec("unet2d", "2D U-Net applied slice by slice (axial), L1 only", 2, _unet, False, dict(_UNET)),
        ModelSpec("pix2pix2d", "2D U-Net + 2D patch discriminator, slice by slice (pix2pix)", 2, _unet, True,
                  {**_UNET, **_GAN}),
        ModelSpec("resnet", "3D dilated residual network at full resolution (after Mostafapour et al.)", 3, _resnet,
                  False, {"features": 12, "dilations": [1, 2, 4, 8], "norm": "instance", "output": "log-ratio",
                   "prior": "none"}),
        ModelSpec("unet-gan3d-chang", "unet-gan3d on NC and the log first-order Chang factor, correcting on top of "
                  "Chang (spectac's own model)", 3, _unet, True, {**_UNET, **_GAN, "prior": "chang"}),
    )
}


def model_names() -> tuple[str, ...]:
    return tuple(REGISTRY)


def get_spec(name: str) -> ModelSpec:
    try:
        return REGISTRY[name]
    except KeyError:
        raise SpectacError(f"unknown model {name!r}; choose from {', '.join(REGISTRY)}") from None


def resolve_config(name: str, overrides: Config | None = None) -> Config:
    """The full network config of a model: its defaults updated by ``overrides``.

    Raises:
        SpectacError: unknown model name or an override the model does not have.
    """
    spec = get_spec(name)
    config = copy.deepcopy(spec.defaults)
    unknown = set(overrides or {}) - set(config) - {"model"}
    if unknown:
        raise SpectacError(f"model {name} has no option {', '.join(sorted(unknown))}; it has {', '.join(config)}")
    config.update({k: v for k, v in (overrides or {}).items() if k != "model"})
    input_channels(config)  # a bad prior fails here, before anything is built or written
    return {"model": name, **config}


def build_generator(config: Config) -> nn.Module:
    """The generator of a resolved config: (B, C, X, Y, Z) network input -> (B, 1, X, Y, Z) AC."""
    spec = get_spec(config["model"])
    backbone = spec.build_backbone(spec.spatial_dims, config)
    predictor = ACPredictor(backbone, config["output"], log_prior=input_channels(config) > 1)
    return SliceWise(predictor) if spec.spatial_dims == 2 else predictor


def build_discriminator(config: Config) -> nn.Module | None:
    """The discriminator of an adversarial model, else None: (B, C + 1, X, Y, Z), the generator's
    input concatenated with a real or generated AC volume -> patch logits."""
    spec = get_spec(config["model"])
    if not spec.adversarial:
        return None
    net = PatchDiscriminator(spec.spatial_dims, input_channels(config) + 1, channels=config["disc_channels"],
                             norm=config["disc_norm"])
    return SliceWise(net) if spec.spatial_dims == 2 else net
