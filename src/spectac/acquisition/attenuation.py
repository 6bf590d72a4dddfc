"""The attenuation path integral shared by the projector and Chang's correction.

Both :class:`spectac.acquisition.projector.SpectProjector` (the attenuation factors of the system
matrix) and :func:`spectac.correction.chang.detection_probability` (Chang's mean survival over the
views) use the same discretisation of exp(-integral of mu toward the camera): the mu-map is
resampled (bilinear ``grid_sample``) onto a grid whose one axis points toward the camera, and
along that axis the integral from a sample to the camera is the sum of mu over the samples beyond
it plus half of its own (the midpoint rule: the photon starts at the sample centre), times the
step. That 1-D step is :func:`transmission`; the two callers differ only in the rotated grids
(see their docstrings), not in the integral.
"""

from __future__ import annotations

import torch


def transmission(mu: torch.Tensor, step_cm: float, dim: int) -> torch.Tensor:
    """exp(-(sum of mu beyond each sample + half its own mu) * step) along axis ``dim``.

    Args:
        mu: linear attenuation coefficient (1/cm) on a grid whose axis ``dim`` points toward the
            camera (increasing index = closer to the camera).
        step_cm: sample spacing along ``dim``, cm.
        dim: the axis toward the camera.

    Returns:
        Tensor of ``mu``'s shape: the probability that a photon emitted at each sample and
        travelling toward the camera leaves the grid unattenuated.
    """
    # sum of mu from each sample to the camera, the sample itself included; then minus half its
    # own, in place: one full-size temporary fewer than the textbook expression, which matters
    # because this tensor holds every view of a batch (Chang ~0.1 s per study).
    integral = reverse_cumsum(mu, dim)
    return integral.sub_(mu, alpha=0.5).mul_(-step_cm).exp_()


def reverse_cumsum(values: torch.Tensor, dim: int) -> torch.Tensor:
    """Sum of ``values`` from each index to the end of axis ``dim`` (a new tensor).

    Along the last axis: flip, ``cumsum``, flip. Along any other axis, a running sum of whole
    slices from the far end: the same sums, several times faster than ``torch.cumsum`` on a
    strided axis (whose inner loop is not vectorised on CPU).
    """
    dim = dim % values.dim()
    if dim == values.dim() - 1:
        return torch.flip(torch.cumsum(torch.flip(values, dims=[dim]), dim=dim), dims=[dim])
    out = torch.empty_like(values)
    source, target = values.movedim(dim, 0), out.movedim(dim, 0)
    target[-1] = source[-1]
    for k in range(source.shape[0] - 2, -1, -1):
        torch.add(target[k + 1], source[k], out=target[k])
    return out
