"""Is this volume something a SPECT camera could have made? Checked before any correction runs.

``spectac correct`` refuses a volume whose grid or values no myocardial perfusion SPECT
reconstruction has, rather than correcting it into a plausible-looking wrong result. The grid is
checked from the file header, before the voxels are read (a 512^3 file is refused in
milliseconds, not after filling 8 GB); the values once they are read.

Ranges and why:

- voxel size 1 to 20 mm along every axis (:data:`VOXEL_MM`): cardiac SPECT is reconstructed at
  3 to 7 mm (a 64 or 128 matrix on a 40-55 cm detector, zoomed or not); below 1 mm is a CT, an
  upsampled volume or a header in the wrong unit (metres, micrometres), above 20 mm a header
  error. A non-finite voxel size is refused too.
- 16 to 256 voxels along every axis (:data:`VOXELS_PER_AXIS`) and at most 256^3 in all
  (:data:`MAX_VOXELS`): a reconstruction is 64^3 or 128^3 (cropped: 30-70 slices); fewer than 16
  along an axis is a 2D image or a thin slab; more than 256 is not SPECT and would take
  gigabytes. Resample a finer volume to the camera's matrix (e.g. 128^3 at about 4 mm) first.
- 50 to 1000 mm of extent along every axis (:data:`EXTENT_MM`): the volume must hold a heart
  (about 10 cm long) and fit a camera's field of view (at most about 60 cm).
- axes along the patient axes: each direction cosine within 0.01 of 0 or +-1 (:data:`AXIS_TOL`,
  about 0.6 degrees). Transaxial SPECT slices are axis-aligned; the methods permute and flip
  axes but never resample, so an oblique volume (a reoriented short-axis series) is refused:
  give the transaxial reconstruction.
- values: no substantial negative part (:data:`NEGATIVE_FRACTION`): the lowest value must not be
  below -5 % of the highest. OSEM reconstructions are non-negative and filtered back-projection
  undershoots by a few percent at most; a volume half negative is a signed/unsigned or rescale
  error, or a difference image, not counts.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from spectac.volume import SpectacError

VOXEL_MM = (1.0, 20.0)
VOXELS_PER_AXIS = (16, 256)
MAX_VOXELS = 256**3
EXTENT_MM = (50.0, 1000.0)
AXIS_TOL = 0.01
NEGATIVE_FRACTION = 0.05


def _mm(values: Sequence[float]) -> str:
    return " x ".join(f"{v:.4g}" for v in values)


def check_plausible_geometry(
    shape: Sequence[int], spacing: Sequence[float], direction: np.ndarray, name: str
) -> None:
    """Refuse a grid no SPECT reconstruction has (the ranges are in the module docstring).

    Args:
        shape: voxels along the three array axes.
        spacing: voxel size along the array axes in mm.
        direction: (3, 3) direction cosines, column i the patient-frame direction of axis i.
        name: the file, named in the message.

    Raises:
        SpectacError: one line naming the file, what is wrong and the accepted range.
    """
    shape = tuple(int(n) for n in shape)
    spacing = tuple(float(s) for s in spacing)
    low, high = VOXELS_PER_AXIS
    if min(shape) < low:
        raise SpectacError(f"{name}: {'x'.join(map(str, shape))} voxels: fewer than {low} along an axis is a "
                           "2D image or a slab, not a SPECT volume")
    if max(shape) > high or int(np.prod(shape, dtype=np.int64)) > MAX_VOXELS:
        raise SpectacError(f"{name}: {'x'.join(map(str, shape))} voxels exceeds spectac's limit of {high} per "
                           f"axis ({high}^3 in all); SPECT is reconstructed on 64-128 matrices: resample to the "
                           "camera's matrix (e.g. 128^3 at about 4 mm) first")
    if not all(np.isfinite(spacing)):
        raise SpectacError(f"{name}: voxel size {_mm(spacing)} mm is not finite")
    low_mm, high_mm = VOXEL_MM
    if min(spacing) < low_mm or max(spacing) > high_mm:
        raise SpectacError(f"{name}: voxel size {_mm(spacing)} mm is outside what SPECT cameras produce "
                           f"({low_mm:g} to {high_mm:g} mm); check the header's units")
    extent = [n * s for n, s in zip(shape, spacing)]
    low_mm, high_mm = EXTENT_MM
    if min(extent) < low_mm or max(extent) > high_mm:
        raise SpectacError(f"{name}: a field of view of {_mm(extent)} mm is not a SPECT volume "
                           f"({low_mm:g} to {high_mm:g} mm along every axis)")
    d = np.asarray(direction, dtype=np.float64).reshape(3, 3)
    aligned = np.all(np.isfinite(d)) and np.all((np.abs(d) < AXIS_TOL) | (np.abs(np.abs(d) - 1) < AXIS_TOL))
    if not aligned or sorted(np.argmax(np.abs(d), axis=0).tolist()) != [0, 1, 2]:
        raise SpectacError(f"{name}: oblique orientation (axis directions {np.round(d.T, 3).tolist()}): spectac "
                           "corrects axis-aligned transaxial volumes; give the transaxial reconstruction, "
                           "not a reoriented one")


def check_plausible_values(array: np.ndarray, name: str) -> None:
    """Refuse a volume with a substantial negative part: min below -5 % of max (module docstring).

    Raises:
        SpectacError: one line naming the file and the two values.
    """
    if array.size == 0:
        return
    low, high = float(np.min(array)), float(np.max(array))
    if low < 0 and (high <= 0 or -low > NEGATIVE_FRACTION * high):
        raise SpectacError(f"{name}: values down to {low:.4g} against a maximum of {high:.4g}: more than "
                           f"{NEGATIVE_FRACTION:.0%} negative is not a SPECT reconstruction of counts "
                           "(a signed/unsigned or rescale error, or a difference image)")
