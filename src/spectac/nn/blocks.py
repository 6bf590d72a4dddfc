"""Building blocks shared by every network: one implementation for 2D and 3D (``spatial_dims``).

:func:`conv` is one convolution followed by normalisation and activation ("instance", "batch" or
None; "relu" or "leakyrelu"), laid out as MONAI's ``monai.networks.blocks.Convolution`` lays it
out (children ``conv`` and ``adn``, the latter with ``N`` and ``A``; Cardoso et al., MONAI,
arXiv:2211.02701, 2022): the shipped weights were trained with that block, and its state-dict keys
are theirs. It is written here in plain torch because importing MONAI costs about 1.3 s, most of
``spectac correct``'s start-up; tests/test_nn.py checks it against MONAI's block, layer by layer.
"""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn

from spectac.nn.padding import crop_slices, pad_widths

NORMS = ("instance", "batch", None, "none")
ACTIVATIONS = ("relu", "leakyrelu", None, "none")
LEAKY_SLOPE = 0.2


def _norm(norm: str | None, spatial_dims: int, channels: int) -> nn.Module | None:
    if norm not in NORMS:
        raise ValueError(f"unknown normalisation {norm!r}; choose from instance, batch, none")
    if norm == "instance":
        return (nn.InstanceNorm2d if spatial_dims == 2 else nn.InstanceNorm3d)(channels, affine=True)
    if norm == "batch":
        return (nn.BatchNorm2d if spatial_dims == 2 else nn.BatchNorm3d)(channels)
    return None


def _act(act: str | None) -> nn.Module | None:
    if act not in ACTIVATIONS:
        raise ValueError(f"unknown activation {act!r}; choose from relu, leakyrelu, none")
    if act == "relu":
        return nn.ReLU()
    if act == "leakyrelu":
        return nn.LeakyReLU(negative_slope=LEAKY_SLOPE)
    return None


def conv(
    spatial_dims: int,
    in_channels: int,
    out_channels: int,
    *,
    kernel_size: int = 3,
    strides: int = 1,
    dilation: int = 1,
    padding: int | None = None,
    norm: str | None = "instance",
    act: str | None = "relu",
    transposed: bool = False,
) -> nn.Sequential:
    """One convolution followed by normalisation and activation (either may be None).

    ``padding=None`` keeps the spatial size for odd kernels ("same" padding, dilation included).
    """
    if padding is None:
        padding = dilation * (kernel_size - 1) // 2
    if spatial_dims not in (2, 3):
        raise ValueError(f"spatial_dims must be 2 or 3, got {spatial_dims}")
    if transposed:
        layer = (nn.ConvTranspose2d if spatial_dims == 2 else nn.ConvTranspose3d)(
            in_channels, out_channels, kernel_size, stride=strides, padding=padding, output_padding=0,
            dilation=dilation)
    else:
        layer = (nn.Conv2d if spatial_dims == 2 else nn.Conv3d)(
            in_channels, out_channels, kernel_size, stride=strides, padding=padding, dilation=dilation)
    block = nn.Sequential(OrderedDict(conv=layer))
    adn = nn.Sequential()
    for name, module in (("N", _norm(norm, spatial_dims, out_channels)), ("A", _act(act))):
        if module is not None:
            adn.add_module(name, module)
    if len(adn):
        block.add_module("adn", adn)
    return block


class DoubleConv(nn.Sequential):
    """Two 3x3(x3) convolutions, each with normalisation and ReLU: one U-Net level.

    Args:
        spatial_dims: 2 or 3.
        in_channels, out_channels: channel counts.
        norm: "instance", "batch" or None.
    """

    def __init__(self, spatial_dims: int, in_channels: int, out_channels: int, norm: str | None = "instance") -> None:
        super().__init__(
            conv(spatial_dims, in_channels, out_channels, norm=norm, act="relu"),
            conv(spatial_dims, out_channels, out_channels, norm=norm, act="relu"),
        )


class ResidualBlock(nn.Module):
    """A dilated residual block at full resolution (HighResNet style).

    ``y = relu(x + norm(conv(relu(norm(conv(x))))))`` with both convolutions dilated by ``dilation``,
    so the receptive field grows without downsampling.

    Args:
        spatial_dims: 2 or 3.
        channels: feature channels (input and output).
        dilation: dilation of both 3x3(x3) convolutions.
        norm: "instance", "batch" or None.
    """

    def __init__(self, spatial_dims: int, channels: int, dilation: int = 1, norm: str | None = "instance") -> None:
        super().__init__()
        self.body = nn.Sequential(
            conv(spatial_dims, channels, channels, dilation=dilation, norm=norm, act="relu"),
            conv(spatial_dims, channels, channels, dilation=dilation, norm=norm, act=None),
        )
        self.act = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (B, C, *spatial) -> (B, C, *spatial)."""
        return self.act(x + self.body(x))


def pad_to_multiple(x: torch.Tensor, multiple: int) -> tuple[torch.Tensor, tuple[slice, ...]]:
    """Zero-pad the spatial axes of ``x`` (B, C, *spatial) up to a multiple of ``multiple``.

    Returns the padded tensor and the index that crops it back to the input size. Zero is the
    right fill: outside the patient there are no counts.
    """
    spatial = x.shape[2:]
    widths = pad_widths(spatial, multiple)
    if not any(before or after for before, after in widths):
        return x, (slice(None),) * x.ndim
    pad: list[int] = []
    for before, after in reversed(widths):  # F.pad takes the last axis first
        pad += [before, after]
    return nn.functional.pad(x, pad), (slice(None), slice(None), *crop_slices(widths, spatial))

