"""The one place the spatial conventions live.

A :class:`Volume` is a float32 array indexed ``[x, y, z]`` in the DICOM patient frame (LPS: x to
the patient's left, y to posterior, z to head), with its voxel spacing in mm, the LPS position of
the centre of voxel ``[0, 0, 0]`` in mm, and the direction cosines of the three array axes.
NIfTI files carry the matching RAS affine (``diag(-1, -1, 1, 1) @ affine_lps``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from spectac.errors import SpectacError

LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])


@dataclass(frozen=True)
class Volume:
    """A 3D image on a grid in the patient frame.

    Attributes:
        array: (X, Y, Z) float32 voxel values (counts, 1/cm, or labels).
        spacing: voxel size along the array axes in mm.
        origin: LPS position in mm of the centre of voxel [0, 0, 0].
        direction: (3, 3) direction cosines; column i is the LPS direction of array axis i.
    """

    array: np.ndarray
    spacing: tuple[float, float, float]
    origin: tuple[float, float, float] = (0.0, 0.0, 0.0)
    direction: np.ndarray = field(default_factory=lambda: np.eye(3))

    def __post_init__(self) -> None:
        if self.array.ndim != 3:
            raise SpectacError(f"a volume must be 3D, got shape {self.array.shape}")
        object.__setattr__(self, "array", np.asarray(self.array, dtype=np.float32))
        object.__setattr__(self, "spacing", tuple(float(s) for s in self.spacing))
        object.__setattr__(self, "origin", tuple(float(o) for o in self.origin))
        object.__setattr__(self, "direction", np.asarray(self.direction, dtype=np.float64).reshape(3, 3))
        if min(self.spacing) <= 0:
            raise SpectacError(f"voxel spacing must be positive, got {self.spacing}")

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(self.array.shape)  # type: ignore[return-value]

    @property
    def affine_lps(self) -> np.ndarray:
        """4x4 matrix mapping voxel indices (i, j, k, 1) to LPS mm."""
        affine = np.eye(4)
        affine[:3, :3] = self.direction * np.asarray(self.spacing)[None, :]
        affine[:3, 3] = self.origin
        return affine

    @property
    def affine_ras(self) -> np.ndarray:
        """4x4 matrix mapping voxel indices to RAS mm, as NIfTI stores it."""
        return LPS_TO_RAS @ self.affine_lps

    @classmethod
    def from_ras_affine(cls, array: np.ndarray, affine_ras: np.ndarray) -> Volume:
        affine_lps = LPS_TO_RAS @ np.asarray(affine_ras, dtype=np.float64)
        spacing = np.linalg.norm(affine_lps[:3, :3], axis=0)
        if np.any(spacing <= 0):
            raise SpectacError("the affine has a zero-length axis")
        direction = affine_lps[:3, :3] / spacing[None, :]
        return cls(array, tuple(spacing), tuple(affine_lps[:3, 3]), direction)

    @classmethod
    def centred(cls, array: np.ndarray, spacing: float | tuple[float, float, float]) -> Volume:
        """A volume on an axis-aligned LPS grid whose centre is the origin of the patient frame."""
        spacing = (spacing,) * 3 if np.isscalar(spacing) else tuple(spacing)  # type: ignore[assignment]
        origin = tuple(-(n - 1) / 2 * s for n, s in zip(array.shape, spacing))
        return cls(array, spacing, origin)  # type: ignore[arg-type]

    def with_array(self, array: np.ndarray) -> Volume:
        """The same grid with other voxel values."""
        if array.shape != self.array.shape:
            raise SpectacError(f"shape {array.shape} does not match the grid {self.array.shape}")
        return Volume(array, self.spacing, self.origin, self.direction)

    def same_grid(self, other: Volume, atol_mm: float = 1e-3) -> bool:
        return self.shape == other.shape and bool(np.allclose(self.affine_lps, other.affine_lps, atol=atol_mm))

    def world_coordinates(self, box: tuple[slice, ...] | None = None) -> np.ndarray:
        """(X, Y, Z, 3) LPS mm coordinates of every voxel centre, or of those in ``box`` (one
        slice per axis, steps of 1): ``world_coordinates()[box]``, without the whole grid."""
        ranges = [np.arange(n) for n in self.shape] if box is None else \
            [np.arange(n)[s] for n, s in zip(self.shape, box)]
        idx = np.stack(np.meshgrid(*ranges, indexing="ij"), axis=-1)
        return idx @ self.affine_lps[:3, :3].T + self.affine_lps[:3, 3]

    def index_of(self, point_lps: np.ndarray) -> np.ndarray:
        """Continuous voxel index of an LPS point in mm."""
        inv = np.linalg.inv(self.affine_lps)
        return inv[:3, :3] @ np.asarray(point_lps, dtype=np.float64) + inv[:3, 3]

    def point_of(self, index: np.ndarray) -> np.ndarray:
        """LPS point in mm of a continuous voxel index."""
        return self.affine_lps[:3, :3] @ np.asarray(index, dtype=np.float64) + self.affine_lps[:3, 3]


@dataclass(frozen=True)
class AxisOrder:
    """How :func:`to_lps_axes` reordered an array: ``new = flip(array.transpose(perm), flips)``."""

    perm: tuple[int, int, int] = (0, 1, 2)
    flips: tuple[bool, bool, bool] = (False, False, False)

    @property
    def identity(self) -> bool:
        return self.perm == (0, 1, 2) and not any(self.flips)

    def undo(self, array: np.ndarray, grid: Volume) -> Volume:
        """The values of a reordered ``array`` put back on the original ``grid``."""
        for i in range(3):
            if self.flips[i]:
                array = np.flip(array, axis=i)
        return grid.with_array(np.ascontiguousarray(array.transpose(np.argsort(self.perm))))


def to_lps_axes(volume: Volume) -> tuple[Volume, AxisOrder]:
    """Permute and flip the array (never resample) so its axes run along +x, +y, +z of LPS.

    Clinical volumes come in any axis-aligned orientation (head-first or feet-first, frames head
    to feet, a NIfTI file with a flipped x axis); the physics and the networks work on arrays
    indexed [x, y, z] in LPS. An oblique volume (an axis no nearer one LPS axis than the others)
    is returned unchanged.

    Returns:
        (the same image on the reordered grid, the :class:`AxisOrder` that undoes it).
    """
    d = volume.direction
    perm = tuple(int(np.argmax(np.abs(d[i, :]))) for i in range(3))  # array axis along LPS axis i
    if sorted(perm) != [0, 1, 2]:
        return volume, AxisOrder()
    flips = tuple(bool(d[i, perm[i]] < 0) for i in range(3))
    array = volume.array.transpose(perm)
    corner = np.zeros(3)
    for i in range(3):
        if flips[i]:
            array = np.flip(array, axis=i)
            corner[perm[i]] = volume.shape[perm[i]] - 1
    direction = d[:, list(perm)] * np.where(flips, -1.0, 1.0)[None, :]
    spacing = tuple(volume.spacing[p] for p in perm)
    origin = tuple(volume.point_of(corner))
    ordered = Volume(np.ascontiguousarray(array), spacing, origin, direction)  # type: ignore[arg-type]
    return ordered, AxisOrder(perm, flips)  # type: ignore[arg-type]


def check_finite(array: np.ndarray, what: str) -> None:
    """Raise a SpectacError when an array holds NaN or infinity."""
    if not np.all(np.isfinite(array)):
        raise SpectacError(f"{what} contains NaN or infinite values")
