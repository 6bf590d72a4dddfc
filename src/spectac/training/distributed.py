"""Data-parallel training over several processes (``torchrun ... -m spectac.cli train``).

torchrun (or SLURM's srun running torchrun) starts one process per device and sets RANK,
WORLD_SIZE, LOCAL_RANK, MASTER_ADDR and MASTER_PORT; :func:`context` reads them and joins the
process group (gloo on the CPU, NCCL on CUDA). The generator is wrapped in torch's
DistributedDataParallel (Li et al., "PyTorch Distributed: experiences on accelerating data
parallel training", VLDB 2020), which averages its gradients across the ranks during the backward
pass. The patch discriminator is not wrapped: the pix2pix step calls it three times per step,
twice before one backward and once with its parameters frozen, which DDP's gradient bucketing
does not follow; its gradients are averaged with one all-reduce after its backward
(:func:`average_gradients`), the same arithmetic.

Each epoch's plan (:func:`epoch_plan`) is the single-process one: the permutation and the
augmentation draws come from (seed, epoch) exactly as :func:`spectac.training.data.batches`
draws them, cut into global batches of ``batch_size x world_size``; rank r takes positions
``r*batch_size ...`` of each. Like torch's DistributedSampler the permutation is padded by
wrapping around to a multiple of the world size, so every rank steps the same number of times
and the average of the ranks' mean losses is the mean over the global batch. With a number of
training studies that is a multiple of the world size the run therefore takes the same steps as
one process with ``--batch-size`` equal to the global batch, augmentation included; the weights
agree to float reduction order (tests/test_distributed.py).

Only rank 0 writes (checkpoints, log, record, card); the saved generator is the plain module's
state dict, so a checkpoint resumes on any world size.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from spectac.training.data import Augmentation, Draw, Pair, augment, target_channels
from spectac.training.steps import l1_sums
from spectac.volume import SpectacError

#: One sample of a plan: the index of a study and its augmentation draw (None: not augmented).
Item = tuple[int, Draw | None]


@dataclass(frozen=True)
class Context:
    """The process's place in a run: rank, world size, local rank, device."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: Any = None

    @property
    def main(self) -> bool:
        """The process that writes files."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def launched_by_torchrun() -> bool:
    """True when torchrun (or an equivalent launcher) set WORLD_SIZE above 1."""
    try:
        return int(os.environ.get("WORLD_SIZE", "1")) > 1
    except ValueError:
        return False


def context(device: Any, distributed: bool | None = None) -> Context:
    """Join the process group when launched by torchrun (``distributed`` None: detect from the
    environment) and give this process its context; on CUDA each rank takes cuda:LOCAL_RANK.

    Raises:
        SpectacError: distributed asked for without torchrun's environment variables.
    """
    if distributed is None:
        distributed = launched_by_torchrun()
    if not distributed:
        return Context(device=device)
    try:
        rank, world, local = (int(os.environ[k]) for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK"))
    except (KeyError, ValueError):
        raise SpectacError("--distributed needs RANK, WORLD_SIZE and LOCAL_RANK: launch with torchrun "
                           "(docs/scaling.md)") from None
    import torch.distributed as dist

    if device.type == "cuda":
        device = torch.device("cuda", local)
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return Context(rank, world, local, device)


def finish(ctx: Context, wait: bool = True) -> None:
    """Leave the process group: after a barrier when the run ended normally (``wait``); at once
    after an error, so the process exits and torchrun stops the other ranks."""
    if ctx.distributed:
        import torch.distributed as dist

        if dist.is_initialized():
            if wait:
                dist.barrier()
            dist.destroy_process_group()


def barrier(ctx: Context) -> None:
    if ctx.distributed:
        torch.distributed.barrier()


def wrap(generator: torch.nn.Module, ctx: Context) -> torch.nn.Module:
    """The generator as the steps call it: DDP-wrapped in a distributed run (this broadcasts rank
    0's weights, so every rank starts equal), the module itself otherwise."""
    if not ctx.distributed:
        return generator
    from torch.nn.parallel import DistributedDataParallel

    ids = [ctx.device.index] if ctx.device.type == "cuda" else None
    return DistributedDataParallel(generator, device_ids=ids)


def average_gradients(module: torch.nn.Module | None, ctx: Context) -> None:
    """Average the gradients of ``module`` over the ranks (the discriminator's; see the module doc)."""
    if module is None or not ctx.distributed:
        return
    for param in module.parameters():
        if param.grad is not None:
            torch.distributed.all_reduce(param.grad, op=torch.distributed.ReduceOp.SUM)
            param.grad /= ctx.world_size


def broadcast_module(module: torch.nn.Module | None, ctx: Context) -> None:
    """Give every rank rank 0's parameters and buffers (the discriminator at the start)."""
    if module is None or not ctx.distributed:
        return
    for tensor in list(module.parameters()) + list(module.buffers()):
        torch.distributed.broadcast(tensor.data, src=0)


def mean_over_ranks(values: Sequence[float], ctx: Context) -> list[float]:
    """The mean over the ranks of each value (the epoch's loss means, for the log)."""
    if not ctx.distributed:
        return [float(v) for v in values]
    tensor = torch.tensor([float(v) for v in values], dtype=torch.float64)
    torch.distributed.all_reduce(tensor, op=torch.distributed.ReduceOp.SUM)
    return (tensor / ctx.world_size).tolist()


def sum_over_ranks(values: Sequence[float], ctx: Context) -> list[float]:
    if not ctx.distributed:
        return [float(v) for v in values]
    tensor = torch.tensor([float(v) for v in values], dtype=torch.float64)
    torch.distributed.all_reduce(tensor, op=torch.distributed.ReduceOp.SUM)
    return tensor.tolist()


def epoch_plan(n: int, batch_size: int, rng: np.random.Generator | None, augmentation: Augmentation | None,
               ctx: Context) -> list[list[Item]]:
    """This rank's batches of one epoch: ``batch_size`` items from each global batch of
    ``batch_size x world_size`` (see the module docstring); with ``rng`` None, the studies in
    order and unaugmented (validation), split round-robin without padding."""
    world, rank = ctx.world_size, ctx.rank
    if rng is None:
        mine = list(range(rank, n, world))
        return [[(i, None) for i in mine[s : s + batch_size]] for s in range(0, len(mine), batch_size)]
    order = [int(i) for i in rng.permutation(n)]
    # drawn in the order batches() draws them, so one process reproduces the single-process run
    draws: list[Draw | None] = [augmentation.draw(rng) if augmentation is not None else None for _ in order]
    pad = (-len(order)) % world
    order += order[:pad]
    draws += draws[:pad]
    step = batch_size * world
    plan = []
    for start in range(0, len(order), step):
        chunk = list(zip(order[start : start + step], draws[start : start + step]))
        share = len(chunk) // world
        plan.append(chunk[rank * share : (rank + 1) * share])
    return plan


def sample(pair: Pair, draw: Draw | None, augmentation: Augmentation | None) -> tuple[np.ndarray, np.ndarray]:
    """The network input (C, X, Y, Z) and target (X, Y, Z) of one planned item."""
    if draw is None or augmentation is None:
        return pair.inputs(), pair.targets()
    return augment(pair, augmentation, draw)


def planned_batches(pairs: Sequence[Pair], plan: list[list[Item]], augmentation: Augmentation | None,
                    device: Any = None) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """(inputs, ac) batches of in-memory pairs along a plan, on ``device``."""
    for batch in plan:
        xs, acs = zip(*(sample(pairs[i], draw, augmentation) for i, draw in batch))
        nc, ac = torch.from_numpy(np.stack(xs)), torch.from_numpy(np.stack([target_channels(a) for a in acs]))
        yield (nc, ac) if device is None or device.type == "cpu" else (nc.to(device), ac.to(device))


def mean_l1(generator: torch.nn.Module, batches: Iterator[tuple[torch.Tensor, torch.Tensor]], ctx: Context) -> float:
    """Mean voxel-wise L1 over this rank's share of the validation studies, summed over the ranks
    (the same number as one process computing it over all of them)."""
    total, count = sum_over_ranks(list(l1_sums(generator, batches)), ctx)
    return total / max(count, 1)


@dataclass(frozen=True)
class Runtime:
    """Where and how a training runs, none of which changes what it learns (so none of it is in
    config.json): device (a ``--device`` value), mixed precision on CUDA, distributed (None:
    detect torchrun), streaming from disk ("off", "on", or "auto": above
    :data:`spectac.training.stream.AUTO_STREAM_STUDIES` training studies) and DataLoader workers."""

    device: str | None = "cpu"
    amp: bool = False
    distributed: bool | None = None
    stream: str = "off"
    workers: int = 0

    def check(self) -> None:
        """Raises: SpectacError: an unknown --stream value, a negative number of workers, or
        workers without streaming."""
        if self.stream not in ("off", "on", "auto"):
            raise SpectacError(f"--stream {self.stream!r}: choose off, on or auto")
        if isinstance(self.workers, bool) or not isinstance(self.workers, int) or self.workers < 0:
            raise SpectacError(f"--workers must be a whole number of at least 0, got {self.workers!r}")
        if self.workers and self.stream == "off":
            raise SpectacError("--workers reads streamed studies: give it with --stream on or auto")


def to_device(batches: Iterator[tuple[torch.Tensor, torch.Tensor]], device: Any) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """The batches moved to ``device`` (untouched on the CPU)."""
    for nc, ac in batches:
        yield (nc, ac) if device is None or device.type == "cpu" else (nc.to(device), ac.to(device))
