"""The U-Net generator of the 3DUnet-GAN (Chu Minh Duc et al., J. 108 Clin. Med. Pharm. 2023):
3x3x3 convolutions with ReLU, in 2D or 3D."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from spectac.nn.blocks import DoubleConv, conv, pad_to_multiple


class UNet(nn.Module):
    """A U-Net: double 3x3(x3) convolutions + ReLU per level, max-pooling down, transposed
    convolutions up, skip connections by concatenation, a 1x1(x1) output convolution.

    Any input size works: the input is zero-padded to a multiple of ``2 ** (levels - 1)`` and the
    output cropped back.

    Args:
        spatial_dims: 2 (slices) or 3 (volumes).
        in_channels: input channels (1: the normalised NC image).
        out_channels: output channels.
        channels: feature channels per level, finest first; its length is the number of levels.
        norm: "instance", "batch" or None, after every convolution but the last.
    """

    def __init__(self, spatial_dims: int, in_channels: int = 1, out_channels: int = 1,
                 channels: Sequence[int] = (16, 32, 64, 128), norm: str | None = "instance") -> None:
        super().__init__()
        channels = tuple(int(c) for c in channels)
        if len(channels) < 2:
            raise ValueError("a U-Net needs at least two levels")
        self.spatial_dims = spatial_dims
        self.levels = len(channels)
        self.encoders = nn.ModuleList(
            DoubleConv(spatial_dims, c_in, c_out, norm)
            for c_in, c_out in zip((in_channels,) + channels[:-1], channels)
        )
        self.pool = (nn.MaxPool2d if spatial_dims == 2 else nn.MaxPool3d)(kernel_size=2)
        self.ups = nn.ModuleList(
            conv(spatial_dims, deep, shallow, kernel_size=2, strides=2, padding=0, norm=norm, act="relu", transposed=True)
            for deep, shallow in zip(channels[:0:-1], channels[-2::-1])
        )
        self.decoders = nn.ModuleList(
            DoubleConv(spatial_dims, 2 * shallow, shallow, norm) for shallow in channels[-2::-1]
        )
        self.head = conv(spatial_dims, channels[0], out_channels, kernel_size=1, norm=None, act=None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (B, in_channels, *spatial) -> (B, out_channels, *spatial)."""
        x, crop = pad_to_multiple(x, 2 ** (self.levels - 1))
        skips = []
        for i, encoder in enumerate(self.encoders):
            x = encoder(x if i == 0 else self.pool(x))
            skips.append(x)
        x = skips.pop()
        for up, decoder in zip(self.ups, self.decoders):
            x = decoder(torch.cat([up(x), skips.pop()], dim=1))
        return self.head(x)[crop]
