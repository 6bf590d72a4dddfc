"""How a network pads its input to a multiple of its down-sampling factor, without torch.

A U-Net halves its grid ``levels - 1`` times, so the input is zero-padded to a multiple of
``2 ** (levels - 1)`` and the output cropped back (:func:`spectac.nn.blocks.pad_to_multiple`). The
ONNX runtime of :mod:`spectac.nn.onnx` pads the same way in numpy before the exported graph (which
takes multiples only) and crops after it; both use these two functions, so the pad is one rule.
"""

from __future__ import annotations

from collections.abc import Sequence


def pad_widths(spatial: Sequence[int], multiple: int | Sequence[int]) -> list[tuple[int, int]]:
    """(before, after) zero-padding per spatial axis up to a multiple (one per axis, or one for all);
    the odd voxel goes after."""
    multiples = [int(multiple)] * len(spatial) if isinstance(multiple, int) else [int(m) for m in multiple]
    extra = [(-int(n)) % m for n, m in zip(spatial, multiples)]
    return [(e // 2, e - e // 2) for e in extra]


def crop_slices(widths: Sequence[tuple[int, int]], spatial: Sequence[int]) -> tuple[slice, ...]:
    """The spatial index that crops a padded array back to ``spatial``."""
    return tuple(slice(before, before + int(n)) for (before, _), n in zip(widths, spatial))
