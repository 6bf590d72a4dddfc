"""The residual comparison network (after Mostafapour et al. 2021): a HighResNet-style stack of
dilated residual blocks at full resolution.

monai.networks.nets.HighResNet with its default widths takes over 2 s per 64^3 volume on two
cores even at 8/16/32 features, so this is a slimmer version of the same design built from the
shared blocks: one input convolution, residual blocks whose dilation grows (1, 2, 4, ...) to
widen the receptive field without downsampling, and a 1x1(x1) output convolution.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from spectac.nn.blocks import ResidualBlock, conv


class DilatedResNet(nn.Module):
    """Dilated residual network at full resolution.

    Args:
        spatial_dims: 2 or 3.
        in_channels, out_channels: 1 and 1 for NC -> AC.
        features: feature channels of every block.
        dilations: one residual block per entry, with that dilation.
        norm: "instance", "batch" or None.
    """

    def __init__(self, spatial_dims: int, in_channels: int = 1, out_channels: int = 1, features: int = 16,
                 dilations: Sequence[int] = (1, 2, 4, 8), norm: str | None = "instance") -> None:
        super().__init__()
        self.stem = conv(spatial_dims, in_channels, features, norm=norm, act="relu")
        self.blocks = nn.Sequential(*(ResidualBlock(spatial_dims, features, int(d), norm) for d in dilations))
        self.head = conv(spatial_dims, features, out_channels, kernel_size=1, norm=None, act=None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (B, in_channels, *spatial) -> (B, out_channels, *spatial)."""
        return self.head(self.blocks(self.stem(x)))
