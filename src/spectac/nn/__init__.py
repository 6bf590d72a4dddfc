"""Networks that map an NC volume to an AC volume, and the registry of their names."""

from spectac.nn.discriminator import PatchDiscriminator
from spectac.nn.heads import ACPredictor, SliceWise
from spectac.nn.registry import build_discriminator, build_generator, model_names, resolve_config
from spectac.nn.resnet import DilatedResNet
from spectac.nn.unet import UNet

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
