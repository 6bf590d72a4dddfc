"""Building blocks shared by every network: one implementation for 2D and 3D (``spatial_dims``).

Each block is a thin layer over :class:`monai.networks.blocks.Convolution` so that normalisation
and activation are named the same way everywhere ("instance", "batch" or None; "relu" or
"leakyrelu").
"""

from __future__ import annotations

import torch
from monai.networks.blocks import Convolution
from torch import nn

NORMS = {
    "instance": ("INSTANCE", {"affine": True}),
    "batch": "BATCH",
    None: None,
    "none": None,
}
ACTIVATIONS = {
    "relu": "RELU",
    "leakyrelu": ("LEAKYRELU", {"negative_slope": 0.2}),
    None: None,
    "none": None,
}


def _norm(norm: str | None) -> str | tuple | None:
    if norm not in NORMS:
        raise ValueError(f"unknown normalisation {norm!r}; choose from instance, batch, none")
    return NORMS[norm]


def _act(act: str | None) -> str | tuple | None:
    if act not in ACTIVATIONS:
        raise ValueError(f"unknown activation {act!r}; choose from relu, leakyrelu, none")
    return ACTIVATIONS[act]


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
) -> Convolution:
    """One convolution followed by normalisation and activation (either may be None).

    ``padding=None`` keeps the spatial size for odd kernels ("same" padding, dilation included).
    """
    if padding is None:
        padding = dilation * (kernel_size - 1) // 2
    conv_only = norm in (None, "none") and act in (None, "none")
    return Convolution(
        spatial_dims,
        in_channels,
        out_channels,
        strides=strides,
        kernel_size=kernel_size,
        dilation=dilation,
        padding=padding,
        output_padding=0 if transposed else None,
        is_transposed=transposed,
        act=_act(act),
        norm=_norm(norm),
        conv_only=conv_only,
    )


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
    extra = [(-n) % multiple for n in spatial]
    if not any(extra):
        return x, (slice(None),) * x.ndim
    pad: list[int] = []
    for e in reversed(extra):  # F.pad takes the last axis first
        pad += [e // 2, e - e // 2]
    crop = (slice(None), slice(None)) + tuple(slice(e // 2, e // 2 + n) for e, n in zip(extra, spatial))
    return nn.functional.pad(x, pad), crop

