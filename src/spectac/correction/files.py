"""``spectac correct`` for DICOM: correct one NC DICOM series and write a new derived DICOM series.

A DICOM file or folder in gives a new derived DICOM series out (same patient, study and frame of
reference; see :mod:`spectac.io.dicom`); a NIfTI file in is handed to
:func:`spectac.correction.deep.correct_file` and gives a NIfTI file out. The method is any
registered in :mod:`spectac.correction.run` (nc, chang, chang-iterative, the networks).

Clinical volumes come in any orientation (head-first or feet-first, frames head to feet or feet
to head); the methods were made on volumes whose array axes run along +x, +y, +z of LPS. The
volume is therefore permuted and flipped (never resampled) to that order before the method, and
the result put back on the input grid after it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from spectac.acquisition.protocol import Protocol
from spectac.correction.run import MethodContext, get_method, resolve_options
from spectac.io.dicom import is_dicom_path, read_dicom_volume, write_dicom_series
from spectac.io.nifti import write_nifti
from spectac.volume import SpectacError, Volume, check_finite


def to_lps_axes(volume: Volume) -> tuple[Volume, tuple[int, ...], tuple[bool, ...]]:
    """Permute and flip the array so its axes run along +x, +y, +z (no resampling).

    Returns:
        (volume on the reordered grid, perm, flips): ``array_new = flip(array.transpose(perm), flips)``.
        An oblique volume (an axis no nearer one LPS axis than the others) is returned unchanged.
    """
    d = volume.direction
    perm = tuple(int(np.argmax(np.abs(d[i, :]))) for i in range(3))  # array axis along LPS axis i
    if sorted(perm) != [0, 1, 2]:
        return volume, (0, 1, 2), (False, False, False)
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
    return Volume(np.ascontiguousarray(array), spacing, origin, direction), perm, flips  # type: ignore[arg-type]


def from_lps_axes(array: np.ndarray, grid: Volume, perm: tuple[int, ...], flips: tuple[bool, ...]) -> Volume:
    """Undo :func:`to_lps_axes` for a result array: the same values on the original grid."""
    for i in range(3):
        if flips[i]:
            array = np.flip(array, axis=i)
    return grid.with_array(np.ascontiguousarray(array.transpose(np.argsort(perm))))


def correct_volume(nc: Volume, method: str, name: str = "input", **options: Any) -> Volume:
    """Apply a registered correction method to one NC volume; the result is on the NC grid.

    Args:
        nc: the NC volume, any axis-aligned orientation.
        method: a method name (``spectac.correction.run.available_methods()``).
        name: what to call the study in messages.
        **options: method options (None means the method's default).
    """
    spec = get_method(method)
    resolved = resolve_options(spec, options)
    state = spec.prepare(resolved) if spec.prepare is not None else None
    ordered, perm, flips = to_lps_axes(nc)
    result = spec.predict(ordered, MethodContext(name, Protocol(), dict(resolved), state))
    if not isinstance(result, Volume) or result.shape != ordered.shape:
        raise SpectacError(f"method {method!r} returned a volume off the NC grid for {name}")
    check_finite(result.array, f"the {method} correction of {name}")
    return from_lps_axes(result.array, nc, perm, flips)


def _weights_option(method: str, weights: str | Path | None) -> dict[str, Any]:
    if weights is None:
        return {}
    defaults = get_method(method).defaults
    for key in ("weights", "checkpoint"):
        if key in defaults:
            return {key: str(weights)}
    raise SpectacError(f"method {method!r} takes no weights")


def correct_path(
    input: str | Path,
    output: str | Path,
    method: str,
    weights: str | Path | None = None,
    *,
    uid_seed: str | None = None,
    **options: Any,
) -> dict[str, Any]:
    """Correct a DICOM file/folder or a NIfTI file and write the result as the same kind.

    Args:
        input: an NM multi-frame file, a folder of one series, or a .nii/.nii.gz file.
        output: a new folder or .dcm file for DICOM (a .nii.gz name gives NIfTI from DICOM too);
            a .nii/.nii.gz file for NIfTI.
        method: correction method name.
        weights: a trained model file for the network methods.
        uid_seed: deterministic DICOM UIDs (tests).
        **options: further method options.

    Returns:
        {"output", "kind" ("dicom" | "nifti"), "method", "shape"}.
    """
    input, output = Path(input), Path(output)
    if not input.exists():
        raise SpectacError(f"{input}: no such file or folder")
    if input.resolve() == output.resolve():
        raise SpectacError(f"{output}: the output must differ from the input")
    nifti_out = output.name.lower().endswith((".nii", ".nii.gz"))
    options = {**options, **_weights_option(method, weights)}
    if is_dicom_path(input):
        nc, context = read_dicom_volume(input)
        corrected = correct_volume(nc, method, input.name, **options)
        if nifti_out:
            write_nifti(corrected, output)
            return {"output": output, "kind": "nifti", "method": method, "shape": corrected.shape}
        model = Path(weights).stem if weights is not None else _model_version()
        write_dicom_series(corrected, context, output, method=method, model_name=model, uid_seed=uid_seed)
        return {"output": output, "kind": "dicom", "method": method, "shape": corrected.shape}
    from spectac.correction.deep import correct_file

    written = correct_file(input, output, method, weights)
    return {"output": written, "kind": "nifti", "method": method, "shape": None}


def _model_version() -> str:
    try:
        from importlib.metadata import version

        return f"v{version('spectac')}"
    except Exception:  # noqa: BLE001 - a source tree without metadata
        return ""
