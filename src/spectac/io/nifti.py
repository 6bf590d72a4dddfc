"""NIfTI reading and writing: the RAS affine on disk, the LPS Volume in memory."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np

from spectac.io.atomic import atomic_path
from spectac.volume import SpectacError, Volume, check_finite


def read_nifti(path: str | Path, *, allow_nonfinite: bool = False) -> Volume:
    """Read a 3D NIfTI file into a Volume (float32, LPS).

    Raises:
        SpectacError: the file is missing, not NIfTI, not 3D, or holds NaN/inf values.
    """
    path = Path(path)
    if not path.is_file():
        raise SpectacError(f"{path}: no such file")
    try:
        image = nib.load(str(path))
        array = np.asarray(image.dataobj, dtype=np.float32)
    except Exception as exc:  # nibabel raises many kinds
        raise SpectacError(f"{path}: not a readable NIfTI file ({exc.__class__.__name__}: {exc})") from exc
    if array.ndim == 4 and array.shape[3] == 1:
        array = array[..., 0]
    if array.ndim != 3:
        raise SpectacError(f"{path}: expected a 3D volume, got shape {array.shape}")
    if not allow_nonfinite:
        check_finite(array, str(path))
    return Volume.from_ras_affine(array, image.affine)


def write_nifti(volume: Volume, path: str | Path) -> Path:
    """Write a Volume as a gzipped NIfTI with its RAS affine, atomically."""
    path = Path(path)
    image = nib.Nifti1Image(np.ascontiguousarray(volume.array, dtype=np.float32), volume.affine_ras)
    image.header.set_xyzt_units("mm")
    image.header.set_qform(volume.affine_ras, code=1)
    image.header.set_sform(volume.affine_ras, code=1)
    with atomic_path(path, suffix="".join(path.suffixes)) as tmp:
        nib.save(image, str(tmp))
    return path
