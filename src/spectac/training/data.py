"""Training pairs from a dataset, and augmentation that respects the physics.

Each pair is the normalised NC volume and the AC volume on the same NC-derived scale
(:mod:`spectac.nn.normalisation`), whole (64^3 at 6.8 mm for the simulated cohort): attenuation
depends on the whole body, so no cropping to the heart. A network with a prior also gets the
prior's channels, made from the NC volume as inference makes them
(:mod:`spectac.correction.prior`).

Augmentation follows the seed -> parameters -> deterministic operation pattern: a small global
intensity scale and a small zero-filled shift, the same for NC and AC. There are no flips or
rotations: they would put the heart on the wrong side of the body or turn the body against
the camera orbit, which changes the attenuation the network has to learn. The intensity factor
applies to NC and AC only: a prior's log correction factor does not depend on the dose.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from spectac.acquisition.protocol import Protocol
from spectac.correction.prior import prior_channels
from spectac.io.dataset import Dataset
from spectac.nn.normalisation import normalise
from spectac.progress import track
from spectac.volume import SpectacError


@dataclass(frozen=True)
class Pair:
    """One training study: normalised NC and AC, (X, Y, Z) float32, the NC scale, and the prior
    channels (P, X, Y, Z) (P = 0 without a prior)."""

    case_id: str
    nc: np.ndarray
    ac: np.ndarray
    scale: float
    prior: np.ndarray | None = None

    def inputs(self) -> np.ndarray:
        """(C, X, Y, Z) the network input: NC, then the prior channels."""
        if self.prior is None or len(self.prior) == 0:
            return self.nc[None]
        return np.concatenate([self.nc[None], self.prior])


def load_pairs(dataset: Dataset, split: str, percentile: float, prior: str = "none",
               protocol: Protocol | None = None) -> list[Pair]:
    """Load and normalise the NC/AC pairs of one split (empty list if the split is empty), with
    the channels of ``prior`` made from each NC volume under the dataset's ``protocol``.

    Raises:
        SpectacError: a study's NC and AC are not on one grid, or volumes differ in shape.
    """
    pairs = []
    cases = dataset.split(split)
    for case in track(cases, f"load {split}", total=len(cases)):
        nc, ac = dataset.load(case.case_id, "nc"), dataset.load(case.case_id, "ac")
        if not nc.same_grid(ac):
            raise SpectacError(f"{dataset.study_dir(case.case_id)}: nc and ac are not on the same grid")
        nc_n, scale = normalise(nc.array, percentile)
        pairs.append(Pair(case.case_id, nc_n, (np.clip(ac.array, 0, None) / scale).astype(np.float32), scale,
                          prior_channels(nc, prior, protocol)))
    shapes = {p.nc.shape for p in pairs}
    if len(shapes) > 1:
        raise SpectacError(f"{dataset.root}: studies of the {split} split differ in shape ({sorted(shapes)})")
    return pairs


@dataclass(frozen=True)
class Augmentation:
    """Ranges of the random augmentation (0 disables a part).

    Attributes:
        intensity: the pair is multiplied by a factor drawn from [1 - intensity, 1 + intensity].
        shift_voxels: integer shift per axis drawn from [-shift_voxels, shift_voxels].
    """

    intensity: float = 0.1
    shift_voxels: int = 3

    def draw(self, rng: np.random.Generator) -> tuple[float, tuple[int, int, int]]:
        """Draw (intensity factor, shift) for one pair."""
        factor = float(rng.uniform(1 - self.intensity, 1 + self.intensity)) if self.intensity > 0 else 1.0
        shift = tuple(int(s) for s in rng.integers(-self.shift_voxels, self.shift_voxels + 1, size=3))
        return factor, shift  # type: ignore[return-value]


def shift_zero_fill(volume: np.ndarray, shift: Sequence[int]) -> np.ndarray:
    """Shift an (X, Y, Z) array by whole voxels, filling with zeros (no counts outside the field)."""
    out = np.zeros_like(volume)
    src, dst = [], []
    for s, n in zip(shift, volume.shape):
        src.append(slice(max(0, -s), n - max(0, s)))
        dst.append(slice(max(0, s), n - max(0, -s)))
    out[tuple(dst)] = volume[tuple(src)]
    return out


def augment_pair(inputs: np.ndarray, ac: np.ndarray, factor: float, shift: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
    """Apply one shift to the network input (C, X, Y, Z) and the AC volume (X, Y, Z), and one
    intensity factor to the NC channel (0) and the AC volume."""
    shifted = np.stack([shift_zero_fill(channel, shift) for channel in inputs])
    shifted[0] *= factor
    return shifted, shift_zero_fill(ac, shift) * factor


def batches(
    pairs: Sequence[Pair],
    batch_size: int,
    rng: np.random.Generator | None = None,
    augmentation: Augmentation | None = None,
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Yield (inputs, ac) batches, (B, C, X, Y, Z) and (B, 1, X, Y, Z); shuffled and augmented
    when ``rng`` is given."""
    order = rng.permutation(len(pairs)) if rng is not None else np.arange(len(pairs))
    for start in range(0, len(order), batch_size):
        inputs, acs = [], []
        for i in order[start : start + batch_size]:
            x, ac = pairs[i].inputs(), pairs[i].ac
            if rng is not None and augmentation is not None:
                x, ac = augment_pair(x, ac, *augmentation.draw(rng))
            inputs.append(x)
            acs.append(ac)
        yield torch.from_numpy(np.stack(inputs)), torch.from_numpy(np.stack(acs)[:, None])
