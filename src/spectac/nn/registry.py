"""The one registry of network names: each entry builds its generator (and discriminator) from a
plain config dict, the same dict that is saved as config.json beside the weights.

Adding a network is one file in ``spectac/nn/`` (a ``torch.nn.Module`` class taking
``(spatial_dims, in_channels, out_channels, **options)``) and one row of :data:`REGISTRY` naming it
as ``"spectac.nn.<file>:<Class>"``. The command line (``spectac train --model``, ``predict
--method``, ``correct --method``), the correction methods (:mod:`spectac.correction.methods`), the
table of docs/models.md (``scripts/models_table.py``) and the tests read this table.

This module imports no torch: the command line reads names and options from it without loading
the networks, which are imported only when one is built (:func:`build_generator`).

Every generator maps a normalised NC volume (B, 1, X, Y, Z) to a prediction of the same shape:
the AC volume (target "ac", see :mod:`spectac.nn.heads` for the output rule), or for a model of
target "mu" the mu-map in 1/cm (the "indirect" route: ``spectac correct --route indirect``
reconstructs the raw projections with the predicted mu-map; e.g. Shi et al., "Deep learning-based
attenuation map generation for myocardial perfusion SPECT", Eur J Nucl Med Mol Imaging, 2020). With the network option
``prior="chang"`` the input has a second channel, the log first-order Chang factor made from the
NC volume (:mod:`spectac.correction.prior`), and the network corrects on top of it. A mu model
with the network option ``scatter_input`` true (unet3d-mu's default) takes the scatter-window image
(:mod:`spectac.reconstruction.scatter_image`) as its second channel, as Shi et al. do; configs saved
without the option take NC alone.

Default sizes are chosen for a 2-core CPU (benchmarks/bench_inference.py): U-Net channels
(8, 16, 32, 64) run a 64^3 study in about 0.25 s and a training step in about 0.9 s; the
residual network keeps 12 features in four blocks (dilations 1, 2, 4, 8: a receptive field of
63 voxels, the whole body) because every one of its layers works at full resolution.
"""

from __future__ import annotations

import copy
import importlib
from dataclasses import dataclass, field
from numbers import Integral, Real
from typing import TYPE_CHECKING, Any

from spectac.errors import SpectacError

if TYPE_CHECKING:
    from torch import nn

Config = dict[str, Any]

#: Input channels per prior: the normalised NC volume, plus the log Chang factor for "chang".
PRIOR_CHANNELS = {"none": 1, "chang": 2}
#: Options every model has, read by the output head (output, prior); the others of a model's
#: defaults are keyword arguments of its backbone class, except the adversarial ones below.
HEAD_OPTIONS = {"output": "log-ratio", "prior": "none"}
#: Options of the adversarial models: the patch discriminator and the weight of L1 in the loss.
GAN_OPTIONS = {"disc_channels": 16, "disc_norm": "instance", "lambda_l1": 100.0}
#: Options of the training loss of an AC model, not of its network: ``uptake_weight`` w weights
#: each voxel's L1 by 1 + w x (target / the target's maximum), normalised to a mean weight of 1, so
#: that the myocardium counts more than the background it is a small part of; 0 is plain L1.
#: ``log_weight`` adds that multiple of an L1 of the logs (:func:`spectac.training.steps.l1_loss`),
#: whose gradient is not scaled down where counts are few; 0 is none. ``uptake_reach`` r takes the
#: target of that weight as its maximum over r voxels around (a defect weighs as the wall around it);
#: 0 is each voxel's own. ``wall_weight`` adds that multiple of the mean error of the uptake relative
#: to the LV wall's mean over the truth's LV wall (:func:`spectac.training.steps.wall_term`: what a
#: polar map sees); 0 is none, and only simulated training studies (with lv.json) can have it.
#: ``wall_power`` is that term's exponent of the error: 1 (absolute) or 2 (squared).
LOSS_OPTIONS = {"uptake_weight": 0.0, "log_weight": 0.0, "uptake_reach": 0, "wall_weight": 0.0, "wall_power": 1}
#: The option of a mu model whose input has the scatter-window image as channel 1 (after NC, before
#: any prior's channels); absent (configs saved before it): NC alone.
SCATTER_INPUT = "scatter_input"
NOT_BACKBONE = {"model", *HEAD_OPTIONS, *GAN_OPTIONS, *LOSS_OPTIONS, SCATTER_INPUT}
#: What a model predicts: "ac", the attenuation-corrected image (counts, on the NC scale; a
#: correction method), or "mu", the mu-map in 1/cm at 140 keV (for ``correct --route indirect``).
TARGETS = ("ac", "mu")

_UNET = {"channels": [8, 16, 32, 64], "norm": "instance", **HEAD_OPTIONS}
_UNET_AC = {**_UNET, **LOSS_OPTIONS}


@dataclass(frozen=True)
class ModelSpec:
    """One registered model: how to build it and how it is trained.

    Attributes:
        name: the name of the model on the command line and in config.json.
        description: one line for the command line's help and the table of docs/models.md.
        spatial_dims: 3 (whole volumes) or 2 (the backbone applied to every axial slice).
        backbone: ``"module:Class"``; ``Class(spatial_dims, in_channels, out_channels, **options)``
            with options the defaults that are not head or adversarial options.
        adversarial: trained with a patch discriminator (GAN + lambda_l1 x L1), else L1 alone.
        defaults: every network option of the model and its default; a user's override of an
            option the model does not have is refused.
        target: what the model predicts (:data:`TARGETS`): "ac" (a correction method of
            :mod:`spectac.correction.methods`) or "mu" (a mu-map, used by the indirect route only).
    """

    name: str
    description: str
    spatial_dims: int
    backbone: str
    adversarial: bool
    defaults: Config = field(default_factory=dict)
    target: str = "ac"

    def backbone_options(self, config: Config) -> Config:
        """The keyword arguments of the backbone class in a resolved config."""
        return {k: v for k, v in config.items() if k not in NOT_BACKBONE}


REGISTRY: dict[str, ModelSpec] = {
    spec.name: spec
    for spec in (
        ModelSpec("unet-gan3d", "3D U-Net generator + 3D patch discriminator (the 3DUnet-GAN of Chu Minh Duc et al. 2023)", 3,
                  "spectac.nn.unet:UNet", True, {**_UNET_AC, **GAN_OPTIONS}),
        ModelSpec("unet3d", "3D U-Net trained with L1 only", 3, "spectac.nn.unet:UNet", False, dict(_UNET_AC)),
        ModelSpec("unet2d", "2D U-Net applied slice by slice (axial), L1 only", 2, "spectac.nn.unet:UNet", False,
                  dict(_UNET_AC)),
        ModelSpec("pix2pix2d", "2D U-Net + 2D patch discriminator, slice by slice (pix2pix)", 2,
                  "spectac.nn.unet:UNet", True, {**_UNET_AC, **GAN_OPTIONS}),
        ModelSpec("resnet", "3D dilated residual network at full resolution (after Mostafapour et al.)", 3,
                  "spectac.nn.resnet:DilatedResNet", False,
                  {"features": 12, "dilations": [1, 2, 4, 8], "norm": "instance", **HEAD_OPTIONS, **LOSS_OPTIONS}),
        ModelSpec("unet-gan3d-chang", "unet-gan3d on NC and the log first-order Chang factor, correcting on top of "
                  "Chang (spectac's own model)", 3, "spectac.nn.unet:UNet", True,
                  {**_UNET_AC, **GAN_OPTIONS, "prior": "chang"}),
        ModelSpec("unet3d-mu", "3D U-Net predicting the mu-map (1/cm) from NC and the scatter-window image, L1; for "
                  "correct --route indirect", 3, "spectac.nn.unet:UNet", False,
                  {**_UNET, "output": "direct", SCATTER_INPUT: True}, target="mu"),
    )
}


def model_names() -> tuple[str, ...]:
    return tuple(REGISTRY)


def target_of(config: Config) -> str:
    """What a saved model config predicts: its "target" (configs saved before mu models: "ac")."""
    target = config.get("target", "ac")
    if target not in TARGETS:
        raise SpectacError(f"unknown model target {target!r}; choose from {', '.join(TARGETS)}")
    return str(target)


def get_spec(name: str) -> ModelSpec:
    try:
        return REGISTRY[name]
    except KeyError:
        raise SpectacError(f"unknown model {name!r}; choose from {', '.join(REGISTRY)}") from None


def takes_scatter(config: Config) -> bool:
    """Whether a resolved network config's input has the scatter-window image (channel 1)."""
    return bool(config.get(SCATTER_INPUT, False))


def input_channels(config: Config) -> int:
    """Input channels of a resolved config's generator: NC, the scatter-window image when it takes
    one (:func:`takes_scatter`), then the prior's channels (configs saved before priors have none).

    Raises:
        SpectacError: an unknown prior, or a prior without the log-ratio output it builds on.
    """
    prior = config.get("prior", "none")
    if prior not in PRIOR_CHANNELS:
        raise SpectacError(f"unknown network prior {prior!r}; choose from {', '.join(PRIOR_CHANNELS)}")
    if prior != "none" and config.get("output", "log-ratio") != "log-ratio":
        raise SpectacError(f"the {prior} prior is a log correction factor: it needs output log-ratio, "
                           f"not {config.get('output')!r}")
    return PRIOR_CHANNELS[prior] + int(takes_scatter(config))


def generator_config(config: Config) -> Config:
    """What of a resolved config shapes the generator's weights: all but the discriminator's and
    the loss's options (two runs that differ only there can start from each other's weights)."""
    return {k: v for k, v in config.items() if k not in GAN_OPTIONS and k not in LOSS_OPTIONS}


def _is_number(value: Any) -> bool:
    return isinstance(value, Real) and not isinstance(value, bool)


def _checked_option(model: str, key: str, value: Any, default: Any) -> Any:
    """``value`` of network option ``key`` if it has the kind of the option's default (a list of
    numbers, a whole number, a number, a string, true/false); tuples become lists.

    Raises:
        SpectacError: a value of another kind (one line naming the model, option and default).
    """
    def refuse(kind: str) -> SpectacError:
        return SpectacError(f"model {model}: option {key} must be {kind} (default {default!r}), got {value!r}")

    if isinstance(default, list | tuple):
        if not isinstance(value, list | tuple) or not all(_is_number(v) for v in value):
            raise refuse("a list of numbers")
        return list(value)
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise refuse("true or false")
    elif isinstance(default, Integral):
        if not (_is_number(value) and float(value) == int(value)):
            raise refuse("a whole number")
        return int(value)
    elif isinstance(default, Real):
        if not _is_number(value):
            raise refuse("a number")
    elif isinstance(default, str) and not isinstance(value, str):
        raise refuse("a string")
    return value


def resolve_config(name: str, overrides: Config | None = None) -> Config:
    """The full network config of a model: its defaults updated by ``overrides``.

    Raises:
        SpectacError: unknown model name, an override the model does not have, an override of
            another kind than the option's default, or a mu model with an output rule relative to NC.
    """
    spec = get_spec(name)
    config = copy.deepcopy(spec.defaults)
    overrides = {k: v for k, v in (overrides or {}).items() if k != "model"}
    unknown = set(overrides) - set(config)
    if unknown:
        raise SpectacError(f"model {name} has no option {', '.join(sorted(unknown))}; it has {', '.join(config)}")
    config.update({k: _checked_option(name, k, v, config[k]) for k, v in overrides.items()})
    if config.get("uptake_weight", 0.0) < 0:  # 1 + w x (target / max) must stay a positive weight
        raise SpectacError(f"model {name}: option uptake_weight must be >= 0, got {config['uptake_weight']!r}")
    if config.get("uptake_reach", 0) < 0:
        raise SpectacError(f"model {name}: option uptake_reach must be >= 0 voxels, got {config['uptake_reach']!r}")
    if config.get("uptake_reach", 0) > 0 and config.get("uptake_weight", 0.0) == 0:  # it would change nothing
        raise SpectacError(f"model {name}: option uptake_reach reaches the uptake weight; set uptake_weight > 0 too")
    if config.get("log_weight", 0.0) < 0:
        raise SpectacError(f"model {name}: option log_weight must be >= 0, got {config['log_weight']!r}")
    if config.get("wall_weight", 0.0) < 0:
        raise SpectacError(f"model {name}: option wall_weight must be >= 0, got {config['wall_weight']!r}")
    if config.get("wall_power", 1) not in (1, 2):
        raise SpectacError(f"model {name}: option wall_power must be 1 (absolute error) or 2 (squared), "
                           f"got {config['wall_power']!r}")
    if takes_scatter(config) and spec.target != "mu":
        raise SpectacError(f"model {name}: only a mu model takes the scatter-window image")
    if spec.target == "mu" and config["output"] != "direct":
        raise SpectacError(f"model {name} predicts a mu-map, not a factor on NC: its output must be direct, "
                           f"not {config['output']!r}")
    input_channels(config)  # a bad prior fails here, before anything is built or written
    return {"model": name, **config}


def _backbone_class(spec: ModelSpec) -> type[nn.Module]:
    module, _, attribute = spec.backbone.partition(":")
    return getattr(importlib.import_module(module), attribute)  # type: ignore[no-any-return]


def build_generator(config: Config) -> nn.Module:
    """The generator of a resolved config: (B, C, X, Y, Z) network input -> (B, 1, X, Y, Z) AC.

    Raises:
        SpectacError: options the backbone refuses (its ValueError, as one line).
    """
    from spectac.nn.heads import ACPredictor, SliceWise

    spec = get_spec(config["model"])
    options = spec.backbone_options(config)
    try:
        backbone = _backbone_class(spec)(spec.spatial_dims, input_channels(config), 1, **options)
    except ValueError as exc:
        raise SpectacError(f"model {spec.name}: {exc} (options {options})") from None
    predictor = ACPredictor(backbone, config["output"], log_prior=config.get("prior", "none") != "none")
    return SliceWise(predictor) if spec.spatial_dims == 2 else predictor


def build_discriminator(config: Config) -> nn.Module | None:
    """The discriminator of an adversarial model, else None: (B, C + 1, X, Y, Z), the generator's
    input concatenated with a real or generated AC volume -> patch logits."""
    spec = get_spec(config["model"])
    if not spec.adversarial:
        return None
    from spectac.nn.discriminator import PatchDiscriminator
    from spectac.nn.heads import SliceWise

    net = PatchDiscriminator(spec.spatial_dims, input_channels(config) + 1, channels=config["disc_channels"],
                             norm=config["disc_norm"])
    return SliceWise(net) if spec.spatial_dims == 2 else net
