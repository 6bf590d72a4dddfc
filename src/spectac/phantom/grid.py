"""The points of a phantom's fine grid, made block by block.

The parametric phantom is drawn on an axis-aligned grid (2x supersampled: 256^3 points for a 128^3
study). Its coordinates (X, Y, Z, 3) would be 200 MB of float32 of which every organ needs only
the block around it, and each component varies along one axis only. :class:`PointGrid` keeps the
three axes and makes the (x, y, z) points of a block when asked, with the values the whole array
would hold.
"""

from __future__ import annotations

import numpy as np


class PointGrid:
    """The float32 (X, Y, Z, 3) points of an axis-aligned grid, materialised per block.

    Args:
        axes: the coordinates (mm) along x, y and z, each a 1-D array; they are cast to float32
            and ``offset`` (mm, float32) is subtracted, as from a float32 meshgrid.
    """

    def __init__(self, axes: list[np.ndarray], offset: tuple[float, float, float] = (0.0, 0.0, 0.0)) -> None:
        shift = np.asarray(offset, dtype=np.float32)
        self.axes = [np.asarray(ax).astype(np.float32) - shift[i] for i, ax in enumerate(axes)]
        self.shape = (*(len(ax) for ax in self.axes), 3)

    def line(self, i: int) -> np.ndarray:
        """The coordinates along axis ``i`` (every point of the grid has one of them as component i)."""
        return self.axes[i]

    def broadcast(self, i: int) -> np.ndarray:
        """Component ``i`` as a broadcastable (X, 1, 1), (1, Y, 1) or (1, 1, Z) array."""
        return _along(self.axes[i], i)

    def __getitem__(self, box: tuple[slice, slice, slice]) -> np.ndarray:
        """The (x, y, z) points of a block: a new float32 (bx, by, bz, 3) array."""
        lines = [ax[s] for ax, s in zip(self.axes, box, strict=True)]
        points = np.empty((*(len(line) for line in lines), 3), dtype=np.float32)
        for i, line in enumerate(lines):
            points[..., i] = _along(line, i)
        return points


def _along(line: np.ndarray, axis: int) -> np.ndarray:
    """A 1-D array shaped to broadcast along ``axis`` of a 3-D grid."""
    return line.reshape([-1 if j == axis else 1 for j in range(3)])
