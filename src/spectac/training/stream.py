"""Training studies read from disk as they are needed (``spectac train --stream``).

:func:`spectac.training.data.load_pairs` holds every pair of a split in memory (about 3 MB per
64^3 study with the Chang prior): fine for hundreds of studies, not for a clinic's archive.
:class:`StudyStream` is a torch ``Dataset`` whose item is one planned sample (a study index and
its augmentation draw, :func:`spectac.training.distributed.epoch_plan`): it reads the study through
:mod:`spectac.io` (:func:`spectac.training.data.load_pair`), normalises it, makes its prior and
augments it, in a DataLoader worker process. The plan is made in the main process from (seed,
epoch), so the samples, their order and their augmentation are those of the in-memory run, and the
weights are the same (tests/test_distributed.py).

Memory bound: a DataLoader with W workers keeps at most ``W x prefetch_factor`` batches in flight
(:data:`PREFETCH` = 2) plus the batch being trained on, so at most
``(W x 2 + 1) x batch_size`` studies are in memory per process, whatever the dataset's size
(``W`` = 0: one batch, read in the training process). The price is reading each study, and
remaking its Chang prior (0.4 s at 64^3), in every epoch: the workers hide it while the network
step is slower than the reading.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

from spectac.acquisition.protocol import Protocol
from spectac.io.dataset import Dataset
from spectac.training.data import Augmentation, load_pair, target_channels
from spectac.training.distributed import Item, sample

#: Batches each DataLoader worker reads ahead.
PREFETCH = 2
#: ``--stream auto`` streams when the train split has more studies than this.
AUTO_STREAM_STUDIES = 400


class StudyStream(torch.utils.data.Dataset):
    """The samples of one split, read per item (see the module docstring).

    Args:
        root: the dataset folder.
        case_ids: the split's studies; an item's index is a position in this list.
        percentile, prior, protocol, target, scatter, clean, wall: as :func:`spectac.training.data.load_pairs`.
        augmentation: the ranges the planned draws are applied with (None: none).
    """

    def __init__(self, root: str | Path, case_ids: list[str], percentile: float, prior: str,
                 protocol: Protocol | None, augmentation: Augmentation | None, target: str = "ac",
                 scatter: bool = False, clean: bool = False, wall: bool = False) -> None:
        self.root = Path(root)
        self.case_ids = list(case_ids)
        self.percentile, self.prior, self.protocol, self.target = percentile, prior, protocol, target
        self.augmentation, self.scatter, self.clean, self.wall = augmentation, scatter, clean, wall
        self._dataset: Dataset | None = None  # opened once per worker process

    def __len__(self) -> int:
        return len(self.case_ids)

    def __getitem__(self, item: Item) -> tuple[torch.Tensor, torch.Tensor]:
        index, draw = item
        if self._dataset is None:
            self._dataset = Dataset.open(self.root)
        pair = load_pair(self._dataset, self.case_ids[index], self.percentile, self.prior, self.protocol,
                         self.target, self.scatter, self.clean, self.wall)
        x, ac = sample(pair, draw, self.augmentation)
        return torch.from_numpy(np.ascontiguousarray(x)), torch.from_numpy(np.ascontiguousarray(target_channels(ac)))


class ChainedStream(torch.utils.data.Dataset):
    """Several :class:`StudyStream` one after another (``spectac train --extra-train``): item
    ``(i, draw)`` is the study at position ``i`` of the streams' concatenated studies, so a plan
    over ``len(self)`` studies samples every dataset's train split as one."""

    def __init__(self, streams: list[StudyStream]) -> None:
        self.streams = list(streams)
        self.starts = np.cumsum([0] + [len(s) for s in self.streams])

    def __len__(self) -> int:
        return int(self.starts[-1])

    def __getitem__(self, item: Item) -> tuple[torch.Tensor, torch.Tensor]:
        index, draw = item
        if not 0 <= index < len(self):
            raise IndexError(f"study {index} of {len(self)}")
        which = int(np.searchsorted(self.starts, index, side="right")) - 1
        return self.streams[which][(index - int(self.starts[which]), draw)]


def stream_batches(stream: StudyStream | ChainedStream, plan: list[list[Item]], workers: int,
                   device: Any = None) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """(inputs, ac) batches of a plan, read by ``workers`` DataLoader processes (0: in this one)."""
    loader = torch.utils.data.DataLoader(
        stream, batch_sampler=plan, num_workers=workers,
        prefetch_factor=PREFETCH if workers > 0 else None, persistent_workers=False,
    )
    for nc, ac in loader:
        yield (nc, ac) if device is None or device.type == "cpu" else (nc.to(device), ac.to(device))
