"""Patient-wise train/val/test proportions as the commands take them (``--split 40/40/20``)."""

from __future__ import annotations

import math

from spectac.volume import SpectacError


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
