"""The patch discriminator of the 3DUnet-GAN (Chu Minh Duc et al., J. 108 Clin. Med. Pharm. 2023), in 2D or 3D."""

from __future__ import annotations

import torch
from torch import nn

from spectac.nn.blocks import conv, pad_to_multiple

#: Strides of the six convolutions, as the paper specifies: 2 for the first four, 1 for the last two.
STRIDES = (2, 2, 2, 2, 1, 1)
KERNEL_SIZE = 2


class PatchDiscriminator(nn.Module):
    """Six convolutions with kernel 2: stride 2 for the first four, 1 for the last two, with
    normalisation and LeakyReLU(0.2) between them (no normalisation after the first, as in
    pix2pix, and nothing after the last: it returns logits).

    The two stride-1 layers pad by one voxel, so the patch map never vanishes on small inputs
    (an axis of n voxels, padded to a multiple of 32, gives 2 * ceil(n / 32) + 2 patches).

    Args:
        spatial_dims: 2 or 3.
        in_channels: 2: the NC image concatenated with the real or generated AC image.
        channels: channels of the first layer; doubled per layer up to ``max_channels``.
        max_channels: channel cap.
        norm: "instance", "batch" or None.
    """

    def __init__(self, spatial_dims: int, in_channels: int = 2, channels: int = 16, max_channels: int = 128,
                 norm: str | None = "instance") -> None:
        super().__init__()
        widths = [min(channels * 2**i, max_channels) for i in range(len(STRIDES) - 1)] + [1]
        layers = []
        c_in = in_channels
        for i, (stride, c_out) in enumerate(zip(STRIDES, widths)):
            last = i == len(STRIDES) - 1
            layers.append(
                conv(
                    spatial_dims,
                    c_in,
                    c_out,
                    kernel_size=KERNEL_SIZE,
                    strides=stride,
                    padding=0 if stride == 2 else 1,
                    norm=None if (i == 0 or last) else norm,
                    act=None if last else "leakyrelu",
                )
            )
            c_in = c_out
        self.model = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (B, 2, *spatial) NC and AC, normalised -> (B, 1, *patches) real/fake logits.

        Axes are zero-padded to a multiple of 32 first, so that the fourth layer's map has at least
        two voxels per axis (instance normalisation needs more than one) on any input size.
        """
        return self.model(pad_to_multiple(x, 2 ** (STRIDES.count(2) + 1))[0])
