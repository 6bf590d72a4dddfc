"""Networks that map an NC volume to an AC volume, and the registry of their names.

The networks (and torch) are imported on first use of one of them, so that reading the registry
(:mod:`spectac.nn.registry`, torch-free) stays fast for the command line's help.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from spectac.nn.registry import build_discriminator, build_generator, model_names, resolve_config

if TYPE_CHECKING:
    from spectac.nn.discriminator import PatchDiscriminator
    from spectac.nn.heads import ACPredictor, SliceWise
    from spectac.nn.resnet import DilatedResNet
    from spectac.nn.unet import UNet

_LAZY = {
    "ACPredictor": "spectac.nn.heads",
    "DilatedResNet": "spectac.nn.resnet",
    "PatchDiscriminator": "spectac.nn.discriminator",
    "SliceWise": "spectac.nn.heads",
    "UNet": "spectac.nn.unet",
}

__all__ = [
    "ACPredictor",
    "DilatedResNet",
    "PatchDiscriminator",
    "SliceWise",
    "UNet",
    "build_discriminator",
    "build_generator",
    "model_names",
    "resolve_config",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
