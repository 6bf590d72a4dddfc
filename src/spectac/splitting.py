"""Patient-wise train/val/test splits, one rule for simulated and imported datasets, and the
``--split 40/40/20`` proportions the commands take.

Rest and stress studies of one patient always fall on the same side, so the splitter takes each
patient once. The counts are ``round(train * n)`` and ``round(val * n)`` (at most what is left)
for train and val, the rest for test, so every split is within one patient of its share; the
patients are ordered by a permutation drawn from ``SeedSequence([seed, 7919])``. This is the rule
``spectac simulate`` has always used, so existing cohorts keep their splits.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from spectac.volume import SpectacError

SPLIT_NAMES = ("train", "val", "test")


def split_counts(n: int, proportions: Sequence[float]) -> tuple[int, int, int]:
    """How many of ``n`` patients go to train, val and test for ``proportions`` (summing to 1)."""
    n_train = round(proportions[0] * n)
    n_val = min(round(proportions[1] * n), n - n_train)
    return n_train, n_val, n - n_train - n_val


def split_patients(patient_ids: Sequence[str], proportions: Sequence[float], seed: int) -> dict[str, str]:
    """Assign each patient to "train", "val" or "test"; deterministic for a seed.

    Args:
        patient_ids: each patient once, in a fixed order (the permutation indexes this order).
        proportions: train, val and test shares summing to 1 (as parsed from "40/40/20").
        seed: the split seed.

    Raises:
        ValueError: a patient id given twice (a study list instead of a patient list).
    """
    ids = list(patient_ids)
    if len(set(ids)) != len(ids):
        raise ValueError("split_patients needs each patient once, got repeated patient ids")
    n_train, n_val, _ = split_counts(len(ids), proportions)
    order = np.random.default_rng(np.random.SeedSequence([seed, 7919])).permutation(len(ids))
    return {
        ids[i]: "train" if rank < n_train else ("val" if rank < n_train + n_val else "test")
        for rank, i in enumerate(order)
    }


def parse_split(text: str) -> tuple[float, float, float]:
    """Three train/val/test proportions "A/B/C", normalised to sum to 1.

    Each part must be a finite number >= 0 and their sum positive: "40/40/20", "1/1/1", "0/0/1".

    Raises:
        SpectacError: anything else (not three parts, NaN, infinity, negative, all zero).
    """
    try:
        parts = [float(p) for p in str(text).split("/")]
    except ValueError:
        parts = []
    total = sum(parts)
    if len(parts) != 3 or not all(p >= 0 for p in parts) or not 0 < total < math.inf:
        raise SpectacError(
            f"--split must be three finite non-negative numbers with a positive sum, "
            f"train/val/test like 40/40/20, got {text!r}"
        )
    return (parts[0] / total, parts[1] / total, parts[2] / total)
