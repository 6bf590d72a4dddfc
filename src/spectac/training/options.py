"""How a network is trained: the options of ``spectac train`` and their checks.

Everything here is checked before a model folder is made, so a bad option is one line and
nothing on disk (:meth:`TrainOptions.check`, :func:`check_network`).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np

from spectac.nn.normalisation import DEFAULT_PERCENTILE
from spectac.training.data import PRESETS, Augmentation
from spectac.volume import SpectacError

#: Settings that may change between a run and its resumption (they do not change what an epoch does).
#: With a cosine schedule the number of epochs sets every epoch's learning rate, so it may not change.
RESUMABLE_CHANGES = ("epochs", "patience")
LR_SCHEDULES = ("constant", "cosine")


@dataclass
class TrainOptions:
    """How to train (saved in config.json under "training").

    Attributes:
        epochs: maximum number of epochs.
        batch_size: volumes per step.
        lr: Adam learning rate of generator and discriminator; None: 1e-3. pix2pix uses 2e-4, but
            on a 2-core CPU budget (about 10 epochs of 10 pairs) 2e-4 left the GAN far behind
            (test MAE 42 vs 18 counts at 1e-3; NC 56), and selection by validation L1 guards
            against the noisier curve.
        seed: seeds weights, data order and augmentation.
        patience: stop after this many epochs without a better validation L1 (0: never).
        min_delta: smallest decrease of the validation L1 that counts as better.
        augmentation: the ranges of the random augmentation (see :class:`Augmentation`; default
            the "clinic" preset: truncation, count level and noise, smoothing, shifts of 4 voxels).
        percentile: the NC percentile used as the normalisation scale.
        lr_schedule: "constant", or "cosine": the learning rate falls from ``lr`` to 1% of it
            along a half cosine over ``epochs`` (the late small steps settle the weights).
        init: a model folder or .pt of the same model and network whose generator weights
            start the run (fine-tuning, e.g. the shipped model on a clinic's own pairs); None:
            random initialisation from ``seed``.
        clean_target: train and select against each study's CT-AC of the expected counts
            (ac_expected.nii.gz of a dataset simulated with ``--expected-ac``) instead of its
            noisy CT-AC. The noisy target's L1 minimiser is the same image in expectation (for
            noise symmetric about it), but each study's target noise is a gradient the network
            cannot follow; with a few dozen training studies it stays in the weights (the network
            learns a part of CT-AC's noise texture). Simulation has the expected image; a clinic's
            pairs do not (an imported dataset has no ac_expected).
    """

    epochs: int = 60
    batch_size: int = 1
    lr: float | None = None
    seed: int = 0
    patience: int = 15
    min_delta: float = 1e-5
    augmentation: Augmentation = field(default_factory=Augmentation)
    percentile: float = DEFAULT_PERCENTILE
    lr_schedule: str = "constant"
    init: str | None = None
    clean_target: bool = False

    def check(self) -> None:
        """Refuse options no run can use, before anything is written (one line each).

        Raises:
            SpectacError: epochs < 1, batch size < 1, patience < 0, a learning rate that is not a
                finite positive number, a negative seed, an unknown schedule, or an augmentation
                range no draw can use.
        """
        def whole(value: Any) -> bool:
            return isinstance(value, (int, np.integer)) and not isinstance(value, bool)

        if not whole(self.epochs) or self.epochs < 1:
            raise SpectacError(f"--epochs must be a whole number of at least 1, got {self.epochs!r}")
        if not whole(self.batch_size) or self.batch_size < 1:
            raise SpectacError(f"--batch-size must be a whole number of at least 1, got {self.batch_size!r}")
        if not whole(self.patience) or self.patience < 0:
            raise SpectacError(f"--patience must be a whole number of at least 0 (0: never stop early), "
                               f"got {self.patience!r}")
        if not whole(self.seed) or not 0 <= self.seed < 2**63:
            raise SpectacError(f"--seed must be a non-negative whole number, got {self.seed!r}")
        if self.lr is not None:
            try:
                lr = float(self.lr)
            except (TypeError, ValueError):
                lr = float("nan")
            if isinstance(self.lr, bool) or not (math.isfinite(lr) and lr > 0):
                raise SpectacError(f"--lr must be a finite number above 0 such as 1e-3, got {self.lr!r}")
        if not (isinstance(self.min_delta, (int, float)) and math.isfinite(self.min_delta) and self.min_delta >= 0):
            raise SpectacError(f"min_delta must be a finite number of at least 0, got {self.min_delta!r}")
        if not (isinstance(self.percentile, (int, float)) and 0 < self.percentile <= 100):
            raise SpectacError(f"percentile must lie in (0, 100], got {self.percentile!r}")
        if not isinstance(self.augmentation, Augmentation):
            raise SpectacError(f"augmentation must be an Augmentation, got {type(self.augmentation).__name__}")
        self.augmentation.check()
        if not isinstance(self.clean_target, bool):
            raise SpectacError(f"clean_target must be true or false, got {self.clean_target!r}")
        if self.lr_schedule not in LR_SCHEDULES:
            raise SpectacError(
                f"unknown learning-rate schedule {self.lr_schedule!r}; choose from {', '.join(LR_SCHEDULES)}"
            )

    def resolved_lr(self, adversarial: bool) -> float:
        return float(self.lr) if self.lr is not None else 1e-3

    def lr_at(self, base: float, epoch: int) -> float:
        """The learning rate of ``epoch`` (1-based) under the schedule."""
        if self.lr_schedule == "constant" or self.epochs <= 1:
            return base
        progress = (epoch - 1) / (self.epochs - 1)
        return base * (0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * progress)))



def check_network(config: dict[str, Any]) -> None:
    """Refuse network sizes no network can be built with (a resolved config; one line each).

    Raises:
        SpectacError: U-Net channels that are not at least two whole numbers >= 1, ResNet features
            or dilations below 1.
    """
    def whole(value: Any) -> bool:
        return isinstance(value, (int, np.integer)) and not isinstance(value, bool) and value >= 1

    if "channels" in config:
        channels = config["channels"]
        if not isinstance(channels, (list, tuple)) or len(channels) < 2 or not all(whole(c) for c in channels):
            raise SpectacError(
                f"--channels {channels!r}: give at least two whole numbers of at least 1, e.g. 8,16,32,64"
            )
    if "features" in config and not whole(config["features"]):
        raise SpectacError(f"features must be a whole number of at least 1, got {config['features']!r}")
    dilations = config.get("dilations", [1])
    if not isinstance(dilations, (list, tuple)) or not dilations or not all(whole(d) for d in dilations):
        raise SpectacError(f"dilations must be whole numbers of at least 1, got {dilations!r}")




def augmentation_from(preset: str, settings: dict[str, Any] | None = None) -> Augmentation:
    """The augmentation of ``spectac train --augment PRESET --aug key=value ...``: a named preset
    (:data:`spectac.training.data.PRESETS`: clinic, basic, none) with single ranges replaced.

    Raises:
        SpectacError: an unknown preset or key, or a range no draw can use.
    """
    if preset not in PRESETS:
        raise SpectacError(f"unknown augmentation {preset!r}; choose from {', '.join(PRESETS)}")
    known = set(asdict(PRESETS[preset]))
    unknown = sorted(set(settings or {}) - known)
    if unknown:
        raise SpectacError(f"unknown augmentation setting {unknown[0]!r}; choose from {', '.join(sorted(known))}")
    augmentation = replace(PRESETS[preset], **(settings or {}))
    augmentation.check()
    return augmentation
