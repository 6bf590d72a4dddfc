"""One optimisation step: supervised (L1) or adversarial (pix2pix: GAN loss + lambda * L1).

The adversarial step reads as pix2pix does: ``backward_D`` on a real and a fake pair,
``backward_G`` with the discriminator frozen by ``set_requires_grad``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F


def set_requires_grad(nets: nn.Module | Iterable[nn.Module | None], requires_grad: bool) -> None:
    """Freeze or unfreeze networks (the discriminator is frozen while the generator learns)."""
    for net in [nets] if isinstance(nets, nn.Module) else nets:
        if net is not None:
            for param in net.parameters():
                param.requires_grad = requires_grad


#: The offset of the log-space term of :func:`l1_loss`, on the NC-normalised scale (1 is NC's 99.9th
#: percentile): about 1% of NC's high uptake, below which differences of counts do not count.
LOG_EPS = 0.01


def _dilate(volume: torch.Tensor, reach: int) -> torch.Tensor:
    """The maximum over the (2 reach + 1)-voxel square or cube around each voxel of (B, 1, ...) 2D or 3D."""
    pool = F.max_pool3d if volume.dim() == 5 else F.max_pool2d
    return pool(volume, 2 * reach + 1, stride=1, padding=reach)


def l1_loss(prediction: torch.Tensor, target: torch.Tensor, uptake_weight: float = 0.0,
            log_weight: float = 0.0, uptake_reach: int = 0) -> torch.Tensor:
    """Voxel-wise L1, optionally weighted towards high uptake, plus an optional log-space term.

    With ``uptake_weight`` w > 0 each voxel's absolute error is weighted by 1 + w x (target / the
    maximum of its volume's target), clipped to [1, 1 + w], and the sum is divided by the sum of the
    weights: a weighted mean, on the scale of plain L1. The myocardium, a few percent of the
    voxels, then counts up to 1 + w times as much as the background (the network option of the
    same name, :data:`spectac.nn.registry.LOSS_OPTIONS`). w = 0 is the mean absolute error.

    With ``uptake_reach`` r > 0 the target in that weight is first replaced by its maximum over the
    (2r + 1)-voxel cube around each voxel (a grey dilation): a perfusion defect, low in the
    target, then weighs as much as the wall around it instead of as little as its own counts. With
    r = 0 an infarct counts like background, and a network that fills it in a little pays little.

    With ``log_weight`` l > 0, l x the mean of |log(prediction + e) - log(target + e)| (e =
    :data:`LOG_EPS`) is added. A log-ratio network's prediction is NC x exp(r): the L1's gradient
    on r at a voxel is proportional to the prediction there, so where counts are few (the air
    around the body, where NC holds the scatter CT-AC removes) the plain L1 hardly moves r; the
    log term's gradient is not scaled down there.

    Args:
        prediction, target: (B, 1, ...) of the same shape.
    """
    error = (prediction - target).abs()
    if uptake_weight == 0:
        loss = error.mean()
    else:
        peak = target.flatten(1).amax(dim=1).clamp_min(torch.finfo(target.dtype).tiny)
        reach = target if uptake_reach <= 0 else _dilate(target, uptake_reach)
        relative = (reach / peak.view(-1, *([1] * (target.dim() - 1)))).clamp(0, 1)
        weight = 1 + uptake_weight * relative
        loss = (weight * error).sum() / weight.sum()
    if log_weight > 0:
        log_error = (torch.log(prediction.clamp_min(0) + LOG_EPS) - torch.log(target.clamp_min(0) + LOG_EPS)).abs()
        loss = loss + log_weight * log_error.mean()
    return loss


def wall_term(prediction: torch.Tensor, target: torch.Tensor, wall: torch.Tensor, power: int = 1) -> torch.Tensor:
    """The error of the relative uptake over the LV wall: per study, the mean over the wall mask of
    |prediction / its mean over the wall - target / its mean over the wall|, averaged over the
    studies whose mask is not empty (0 without one).

    A polar map is normalised to the wall's own maximum and TPD is read from it (Slomka et al., J
    Nucl Cardiol 2005), so what a perfusion score sees of an image is its uptake relative to the
    wall, not its counts: this term is blind to a common scale of the wall and weighs a defect by
    its depth relative to the wall around it. Dimensionless (0.1: a 10% mean error of the pattern).

    With ``power`` 2 the error is squared. An absolute error is least at the median of the targets
    an input may have, a squared one at their mean: where a network cannot tell whether a defect is
    there (present in, say, a third of the studies that look alike), the median has none and the
    mean a third of it: the squared error's best prediction keeps that share of the defect.

    Args:
        prediction, target: (B, 1, ...) of the same shape.
        wall: (B, 1, ...) 1 on the LV wall, 0 elsewhere (:func:`spectac.quant.geometry.wall_mask`).
    """
    dims = tuple(range(1, target.dim()))
    voxels = wall.sum(dim=dims)
    shape = (-1, *([1] * (target.dim() - 1)))
    tiny = torch.finfo(target.dtype).tiny

    def relative(image: torch.Tensor) -> torch.Tensor:
        mean = (image * wall).sum(dim=dims) / voxels.clamp_min(1)
        return image / mean.clamp_min(tiny).view(shape)

    error = (relative(prediction) - relative(target)).abs() ** power
    per_study = (error * wall).sum(dim=dims) / voxels.clamp_min(1)
    has_wall = voxels > 0
    return per_study[has_wall].mean() if bool(has_wall.any()) else prediction.sum() * 0


@dataclass(frozen=True)
class L1Loss:
    """The training L1 with its options, as :func:`l1_loss` takes them, and the LV-wall term
    (:func:`wall_term`): what a step calls.

    A target of two channels carries the LV wall mask in channel 1 (training pairs loaded with
    ``wall``, :func:`spectac.training.data.load_pair`); the L1 is over channel 0.

    Attributes:
        uptake_weight: the weight of high uptake (0: plain L1).
        log_weight: the weight of the log-space term (0: none).
        uptake_reach: the reach in voxels of the uptake weight (0: each voxel's own).
        wall_weight: the weight of :func:`wall_term` (0: none); needs the wall channel.
        wall_power: that term's exponent of the error (1: absolute, 2: squared).
    """

    uptake_weight: float = 0.0
    log_weight: float = 0.0
    uptake_reach: int = 0
    wall_weight: float = 0.0
    wall_power: int = 1

    @classmethod
    def from_network(cls, network: Mapping[str, Any]) -> L1Loss:
        """The loss a model's network config asks for (:data:`spectac.nn.registry.LOSS_OPTIONS`;
        a config without them, as a mu model's, gives the plain L1)."""
        return cls(float(network.get("uptake_weight", 0.0)), float(network.get("log_weight", 0.0)),
                   int(network.get("uptake_reach", 0)), float(network.get("wall_weight", 0.0)),
                   int(network.get("wall_power", 1)))

    def __call__(self, prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        image, wall = split_target(target)
        loss = l1_loss(prediction, image, self.uptake_weight, self.log_weight, self.uptake_reach)
        if self.wall_weight > 0:
            if wall is None:
                raise ValueError("the wall term needs the LV wall mask as the target's channel 1")
            loss = loss + self.wall_weight * wall_term(prediction, image, wall, self.wall_power)
        return loss


def split_target(target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(B, 1, ...) the target image and (B, 1, ...) the LV wall mask of a two-channel target (None
    for one channel)."""
    return (target, None) if target.shape[1] == 1 else (target[:, :1], target[:, 1:2])


class SupervisedStep:
    """Voxel-wise L1 between the generated and the CT-AC volume (unet3d, unet2d, resnet).

    Args:
        generator: (B, C, ...) network input (normalised NC, and prior channels) -> (B, 1, ...) AC.
        optimizer: optimiser of the generator.
        loss: the L1 and its options (default: plain L1).
    """

    adversarial = False
    #: The context of the forward passes (mixed precision on CUDA: :func:`spectac.devices.autocast`).
    autocast: Callable[[], AbstractContextManager[Any]] = nullcontext

    def __init__(self, generator: nn.Module, optimizer: torch.optim.Optimizer, loss: L1Loss = L1Loss()) -> None:
        self.generator = generator
        self.optimizer = optimizer
        self.loss = loss

    def __call__(self, nc: torch.Tensor, ac: torch.Tensor) -> dict[str, float]:
        """nc: (B, C, X, Y, Z) network input, ac: (B, 1, X, Y, Z) normalised (or (B, 2, X, Y, Z)
        with the LV wall mask, :class:`L1Loss`). Returns the losses."""
        self.generator.train()
        self.optimizer.zero_grad(set_to_none=True)
        with self.autocast():
            loss = self.loss(self.generator(nc).float(), ac)
        loss.backward()
        self.optimizer.step()
        return {"l1": loss.item()}


class AdversarialStep:
    """Conditional GAN step as in pix2pix: the discriminator sees NC concatenated with the real
    (CT-AC) or the generated AC; the generator minimises the GAN loss plus ``lambda_l1`` x L1.

    Args:
        generator: (B, C, ...) network input (normalised NC, and prior channels) -> (B, 1, ...) AC.
        discriminator: (B, C + 1, ...) the input and a real or generated AC -> patch logits.
        optimizer_g, optimizer_d: their optimisers.
        lambda_l1: weight of the L1 term (100 in pix2pix).
        loss: that L1 and its options (default: plain L1, as in pix2pix).
    """

    adversarial = True
    #: The context of the forward passes (as :attr:`SupervisedStep.autocast`).
    autocast: Callable[[], AbstractContextManager[Any]] = nullcontext
    #: Called on the discriminator between its backward and its step (a distributed run averages
    #: its gradients over the ranks there: :func:`spectac.training.distributed.average_gradients`).
    sync_discriminator: Callable[[nn.Module], None] | None = None

    def __init__(
        self,
        generator: nn.Module,
        discriminator: nn.Module,
        optimizer_g: torch.optim.Optimizer,
        optimizer_d: torch.optim.Optimizer,
        lambda_l1: float = 100.0,
        loss: L1Loss = L1Loss(),
    ) -> None:
        self.generator = generator
        self.discriminator = discriminator
        self.optimizer_g = optimizer_g
        self.optimizer_d = optimizer_d
        self.lambda_l1 = lambda_l1
        self.loss = loss
        self.gan = nn.BCEWithLogitsLoss()  # the "vanilla" GAN loss of pix2pix

    def _gan_loss(self, logits: torch.Tensor, real: bool) -> torch.Tensor:
        return self.gan(logits, torch.full_like(logits, 1.0 if real else 0.0))

    def backward_D(self, nc: torch.Tensor, ac: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
        """Discriminator loss on a real and a fake pair; the fake is detached from the generator."""
        loss_fake = self._gan_loss(self.discriminator(torch.cat([nc, fake.detach()], dim=1)), real=False)
        loss_real = self._gan_loss(self.discriminator(torch.cat([nc, split_target(ac)[0]], dim=1)), real=True)
        loss = 0.5 * (loss_fake + loss_real)
        loss.backward()
        return loss

    def backward_G(self, nc: torch.Tensor, ac: torch.Tensor, fake: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Generator loss: fool the discriminator, and stay close to CT-AC voxel by voxel."""
        loss_gan = self._gan_loss(self.discriminator(torch.cat([nc, fake], dim=1)), real=True)
        loss_l1 = self.loss(fake, ac)
        (loss_gan + self.lambda_l1 * loss_l1).backward()
        return loss_gan, loss_l1

    def __call__(self, nc: torch.Tensor, ac: torch.Tensor) -> dict[str, float]:
        """nc: (B, C, X, Y, Z) network input, ac: (B, 1, X, Y, Z) normalised (or (B, 2, X, Y, Z)
        with the LV wall mask, :class:`L1Loss`). Returns the losses."""
        self.generator.train()
        self.discriminator.train()
        with self.autocast():
            fake = self.generator(nc).float()

        set_requires_grad(self.discriminator, True)
        self.optimizer_d.zero_grad(set_to_none=True)
        with self.autocast():
            loss_d = self.backward_D(nc, ac, fake)
        if self.sync_discriminator is not None:
            self.sync_discriminator(self.discriminator)
        self.optimizer_d.step()

        set_requires_grad(self.discriminator, False)
        self.optimizer_g.zero_grad(set_to_none=True)
        with self.autocast():
            loss_gan, loss_l1 = self.backward_G(nc, ac, fake)
        self.optimizer_g.step()
        return {"l1": loss_l1.item(), "g_gan": loss_gan.item(), "d": loss_d.item()}


@torch.no_grad()
def l1_sums(generator: nn.Module, batches: Iterable[tuple[torch.Tensor, torch.Tensor]]) -> tuple[float, int]:
    """(summed absolute error, voxels) of the generator in eval mode over (nc, ac) batches."""
    generator.eval()
    total, count = 0.0, 0
    for nc, ac in batches:
        image = split_target(ac)[0]
        total += float((generator(nc) - image).abs().sum())
        count += image.numel()
    return total, count


def mean_l1(generator: nn.Module, batches: Iterable[tuple[torch.Tensor, torch.Tensor]]) -> float:
    """Mean voxel-wise L1 of the generator over (nc, ac) batches (the validation objective)."""
    total, count = l1_sums(generator, batches)
    return total / max(count, 1)
