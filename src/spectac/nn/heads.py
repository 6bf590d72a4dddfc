"""Wrappers that turn a backbone into an NC -> AC predictor on whole volumes."""

from __future__ import annotations

import torch
from torch import nn

#: How the backbone's output r becomes the AC prediction (x is the normalised NC volume, >= 0).
#: "log-ratio": AC = x * exp(r): attenuation correction is a multiplicative, smooth, dose-free
#:   factor (as Chang's), so the network learns log(AC / NC); AC >= 0 by construction; with a
#:   zero-initialised head the untrained model returns NC. The default.
#: "residual": AC = relu(x + r).
#: "direct": AC = relu(r).
OUTPUT_MODES = ("log-ratio", "residual", "direct")

#: exp(+-8) bounds the correction factor; real factors are 1-20.
MAX_LOG_RATIO = 8.0


class ACPredictor(nn.Module):
    """A backbone (B, C, ...) -> (B, 1, ...) and the rule that turns its output into AC.

    Channel 0 of the input is the normalised NC volume. With ``log_prior`` the last channel is a
    prior log correction factor (the Chang prior of :mod:`spectac.correction.prior`; the inputs are
    NC, any other images, then the prior, as :func:`spectac.nn.registry.input_channels` orders
    them) and the log-ratio rule becomes AC = NC * exp(prior + r): the network learns what the
    prior misses, and an untrained (zero-head) network returns the prior's correction.

    Args:
        backbone: network with C input channels and one output channel, same spatial size.
        output: one of OUTPUT_MODES.
        log_prior: whether the last input channel is a log correction factor to build on.
    """

    def __init__(self, backbone: nn.Module, output: str = "log-ratio", log_prior: bool = False) -> None:
        super().__init__()
        if output not in OUTPUT_MODES:
            raise ValueError(f"unknown output mode {output!r}; choose from {', '.join(OUTPUT_MODES)}")
        if log_prior and output != "log-ratio":
            raise ValueError("a log prior needs the log-ratio output")
        self.backbone = backbone
        self.output = output
        self.log_prior = log_prior
        if output == "log-ratio":
            head = _last_conv(backbone)
            if head is not None:  # start from "AC = NC", a sane first guess
                nn.init.zeros_(head.weight)
                if head.bias is not None:
                    nn.init.zeros_(head.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (B, C, *spatial), channel 0 normalised NC -> (B, 1, *spatial) normalised AC, >= 0."""
        nc = x[:, :1].clamp_min(0)
        r = self.backbone(torch.cat([nc, x[:, 1:]], dim=1))
        if self.log_prior:
            r = r + x[:, -1:]
        if self.output == "log-ratio":
            return nc * torch.exp(r.clamp(-MAX_LOG_RATIO, MAX_LOG_RATIO))
        if self.output == "residual":
            return torch.relu(nc + r)
        return torch.relu(r)


def _last_conv(module: nn.Module) -> nn.modules.conv._ConvNd | None:
    convs = [m for m in module.modules() if isinstance(m, nn.modules.conv._ConvNd)]
    return convs[-1] if convs else None


class SliceWise(nn.Module):
    """Apply a 2D network to every axial slice of a volume: (B, C, X, Y, Z) -> (B, C', X, Y, Z').

    The slices become the batch, so a slice-wise model is trained and applied on whole volumes
    like a 3D one. For a patch discriminator the output's last axis is the slices' patch maps.

    Args:
        net2d: a network for (N, C, X, Y) images.
    """

    def __init__(self, net2d: nn.Module) -> None:
        super().__init__()
        self.net2d = net2d

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (B, C, X, Y, Z) -> (B, C', X', Y', Z) with the 2D network applied per axial slice."""
        b, c, nx, ny, nz = x.shape
        slices = x.permute(0, 4, 1, 2, 3).reshape(b * nz, c, nx, ny)
        out = self.net2d(slices)
        return out.reshape(b, nz, *out.shape[1:]).permute(0, 2, 3, 4, 1)
