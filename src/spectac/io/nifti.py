"""NIfTI reading and writing: the RAS affine on disk, the LPS Volume in memory.

spectac marks what it writes in the header's ``descrip`` field (80 characters), so that its
outputs are recognised when they come back as input: "spectac AC <method> ..." for a corrected
volume, "spectac NC (no correction)" for the ``nc`` method's copy, "spectac CT-AC reference" and
"spectac mu-map 1/cm" for the reference and attenuation map of a dataset study.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np

from spectac.io.atomic import atomic_path, write_text_atomic
from spectac.volume import LPS_TO_RAS, SpectacError, Volume, check_finite

#: ``descrip`` of the volumes of a dataset study, by name.
#: The scatter-window image's names its recipe (spectac.reconstruction.scatter_image): a cached one
#: of another recipe is remade.
STUDY_DESCRIPTIONS = {"nc": "spectac NC", "ac": "spectac CT-AC reference", "mu": "spectac mu-map 1/cm",
                      "scatter": "spectac scatter-window image OSEM 2x6 noPSF BW0.4/10"}


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


@dataclass(frozen=True)
class NiftiHeader:
    """What a NIfTI header says, read without the voxel data.

    Attributes:
        shape: voxels along the three array axes.
        spacing: voxel size along the array axes in mm (inf/NaN when the header says so).
        direction: (3, 3) LPS direction cosines of the array axes.
        descrip: the header's description text.
        affine_lps: 4x4 matrix mapping voxel indices to LPS mm (as :attr:`Volume.affine_lps`).
    """

    shape: tuple[int, int, int]
    spacing: tuple[float, float, float]
    direction: np.ndarray
    descrip: str
    affine_lps: np.ndarray

    def same_grid(self, other: NiftiHeader, atol_mm: float = 1e-3) -> bool:
        """Whether the two files' voxels lie on the same grid (:meth:`Volume.same_grid`'s rule)."""
        return self.shape == other.shape and bool(np.allclose(self.affine_lps, other.affine_lps, atol=atol_mm))


def read_nifti_header(path: str | Path) -> NiftiHeader:
    """The grid and description of a 3D NIfTI file, without reading its voxels.

    Raises:
        SpectacError: the file is missing, not NIfTI, or not 3D.
    """
    path = Path(path)
    if not path.is_file():
        raise SpectacError(f"{path}: no such file")
    try:
        image = nib.load(str(path))
        shape = tuple(int(n) for n in image.shape)
        affine = LPS_TO_RAS @ np.asarray(image.affine, dtype=np.float64)
        descrip = image.header["descrip"].item()
    except Exception as exc:  # nibabel raises many kinds
        raise SpectacError(f"{path}: not a readable NIfTI file ({exc.__class__.__name__}: {exc})") from exc
    if len(shape) == 4 and shape[3] == 1:
        shape = shape[:3]
    if len(shape) != 3:
        raise SpectacError(f"{path}: expected a 3D volume, got shape {shape}")
    with np.errstate(all="ignore"):
        spacing = np.sqrt((affine[:3, :3] ** 2).sum(axis=0))
        direction = affine[:3, :3] / np.where(spacing > 0, spacing, 1.0)[None, :]
    text = descrip.decode("latin-1", "replace") if isinstance(descrip, bytes) else str(descrip)
    return NiftiHeader(shape, tuple(float(s) for s in spacing), direction, text.strip("\x00 ").strip(), affine)


_AC_MARK = re.compile(r"\bAC\b")
#: The end of the descrip of an output corrected with ``force``.
NIFTI_FORCED_NOTE = "forced: input already corrected"


def nifti_description(method: str, model: str = "", note: str = "") -> str:
    """spectac's mark of a corrected volume: "spectac AC <method> <model> [<note>]" (the ``nc``
    method: "spectac NC (no correction)"); the note says when the correction was forced."""
    head = "spectac NC (no correction)" if method == "nc" else " ".join(p for p in ("spectac AC", method, model) if p)
    return f"{head} {note}".strip()


def nifti_refusal(descrip: str) -> str | None:
    """Why a NIfTI file must not be attenuation-corrected (again), from spectac's mark; None: it may be."""
    if not descrip.startswith("spectac"):
        return None
    if "mu-map" in descrip:
        return f"is an attenuation map spectac wrote (descrip {descrip!r}), not an NC emission study"
    if _AC_MARK.search(descrip) or "forced:" in descrip:
        return f"is already attenuation-corrected: spectac wrote it (descrip {descrip!r})"
    return None


def write_nifti(volume: Volume, path: str | Path, *, descrip: str = "", replace: bool = True) -> Path:
    """Write a Volume as a gzipped NIfTI with its RAS affine, atomically.

    Args:
        volume: the volume.
        path: a .nii or .nii.gz file.
        descrip: the header's description (80 characters at most are kept), spectac's mark.
        replace: replace an existing file; False: refuse it ("already exists"), also when it
            appears while this one is written.
    """
    path = Path(path)
    image = nib.Nifti1Image(np.ascontiguousarray(volume.array, dtype=np.float32), volume.affine_ras)
    image.header.set_xyzt_units("mm")
    image.header.set_qform(volume.affine_ras, code=1)
    image.header.set_sform(volume.affine_ras, code=1)
    if descrip:
        image.header["descrip"] = descrip.encode("ascii", "replace")[:79]
    with atomic_path(path, suffix="".join(path.suffixes), replace=replace) as tmp:
        nib.save(image, str(tmp))
    return path


def sidecar_path(output: str | Path) -> Path:
    """``<output>.json`` next to a NIfTI output (``study.nii.gz`` -> ``study.nii.gz.json``)."""
    output = Path(output)
    return output.with_name(output.name + ".json")


def write_sidecar(output: str | Path, key: str, values: list[str]) -> Path | None:
    """Write ``{key: values}`` to the sidecar JSON of a NIfTI output, atomically; with no values,
    remove the sidecar an earlier output of that name left, but only one holding ``key`` (one
    spectac wrote), never another program's."""
    path = sidecar_path(output)
    if not values:
        try:
            if key in json.loads(path.read_text()):
                path.unlink()
        except (OSError, ValueError, TypeError):
            pass
        return None
    write_text_atomic(path, json.dumps({key: values}, indent=1) + "\n")
    return path


def write_sidecar_record(output: str | Path, record: dict) -> Path:
    """Write ``record`` (JSON values) as the sidecar JSON of a NIfTI output, atomically (replacing
    one an earlier output of that name left)."""
    path = sidecar_path(output)
    write_text_atomic(path, json.dumps(record, indent=1) + "\n")
    return path
