"""``spectac correct``: correct one NC study from a file and write the result as the same kind.

A DICOM file or folder in gives a new derived DICOM series out (same patient, study and frame of
reference; see :mod:`spectac.io.dicom`), or a NIfTI file when the output is named ``.nii.gz``; a
NIfTI file in gives a NIfTI file out. The method is any registered in
:mod:`spectac.correction.run` (nc, chang, chang-iterative, the networks).

Clinical volumes come in any orientation (head-first or feet-first, frames head to feet, a NIfTI
x axis stored reversed); :func:`spectac.correction.run.apply_method` permutes and flips them
(never resamples) to the [x, y, z] LPS order the methods are made for and puts the result back on
the input grid.

Nothing is half-written and nothing is overwritten unless asked: an existing output is refused
(``overwrite=True`` replaces an existing file atomically; an existing folder is always refused).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from spectac.acquisition.protocol import Protocol
from spectac.correction.run import MethodContext, apply_method, get_method, resolve_options
from spectac.io.dicom import is_dicom_path, read_dicom_volume, write_dicom_series
from spectac.io.nifti import read_nifti, write_nifti
from spectac.volume import SpectacError, Volume


def correct_volume(nc: Volume, method: str, name: str = "input", protocol: Protocol | None = None,
                   **options: Any) -> Volume:
    """Apply a registered correction method to one NC volume; the result is on the NC grid.

    Args:
        nc: the NC volume, any axis-aligned orientation.
        method: a method name (``spectac.correction.run.available_methods()``).
        name: what to call the study in messages (the input file).
        protocol: the acquisition; None: each method's default (Chang: the standard 180-degree
            cardiac arc; a network: the orbit of its training data).
        **options: method options (None means the method's default).
    """
    spec = get_method(method)
    resolved = resolve_options(spec, options)
    state = spec.prepare(resolved) if spec.prepare is not None else None
    return apply_method(spec, nc, MethodContext(name, protocol, dict(resolved), state))


def _is_nifti(path: Path) -> bool:
    return path.name.lower().endswith((".nii", ".nii.gz"))


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
    overwrite: bool = False,
    arc: float | None = None,
    uid_seed: str | None = None,
    **options: Any,
) -> dict[str, Any]:
    """Correct a DICOM file/folder or a NIfTI file and write the result as the same kind.

    Args:
        input: an NM multi-frame file, a folder of one series, or a .nii/.nii.gz file.
        output: a new folder or .dcm file for DICOM (a .nii.gz name gives NIfTI from DICOM too);
            a .nii/.nii.gz file for NIfTI.
        method: correction method name.
        weights: a trained model folder or file for the network methods.
        overwrite: replace an existing output file (atomically) instead of refusing.
        arc: the camera orbit of the acquisition (180 or 360 degrees); None: the standard
            180-degree cardiac arc for Chang, the orbit of its training data for a network.
        uid_seed: deterministic DICOM UIDs (tests).
        **options: further method options.

    Returns:
        {"output", "kind" ("dicom" | "nifti"), "method", "shape"}.

    Raises:
        SpectacError: a missing or unreadable input, an output equal to the input or already
            there, an unknown method or option, or a volume the method cannot correct.
    """
    input, output = Path(input), Path(output)
    if not input.exists():
        raise SpectacError(f"{input}: no such file or folder")
    if input.resolve() == output.resolve():
        raise SpectacError(f"{output}: the output would overwrite the input; choose another -o")
    if output.is_dir() or (output.exists() and not overwrite):
        raise SpectacError(f"{output}: already exists; choose another -o"
                           + ("" if output.is_dir() else " or pass --overwrite"))
    nifti_out = _is_nifti(output)
    options = {**options, **_weights_option(method, weights)}
    get_method(method)  # an unknown method fails before the input is read
    protocol = None if arc is None else Protocol.for_arc(arc)
    if is_dicom_path(input):
        nc, context = read_dicom_volume(input)
        corrected = correct_volume(nc, method, str(input), protocol, **options)
        if nifti_out:
            write_nifti(corrected, output)
            return {"output": output, "kind": "nifti", "method": method, "shape": corrected.shape}
        model = _model_name(weights)
        uncorrected = method == "nc"  # a copy of the NC image: no ATTN in Corrected Image, not called AC
        write_dicom_series(corrected, context, output, method=method, model_name=model, uid_seed=uid_seed,
                           series_description="spectac NC (no correction)" if uncorrected else None,
                           attenuation_corrected=not uncorrected)
        return {"output": output, "kind": "dicom", "method": method, "shape": corrected.shape}
    if not _is_nifti(input):
        raise SpectacError(f"{input}: neither DICOM nor NIfTI (.nii, .nii.gz); give an NC study in one of these")
    if not nifti_out:
        raise SpectacError(f"{output}: a NIfTI input gives a NIfTI output; name it .nii or .nii.gz")
    nc = read_nifti(input)
    corrected = correct_volume(nc, method, str(input), protocol, **options)
    write_nifti(corrected, output)
    return {"output": output, "kind": "nifti", "method": method, "shape": corrected.shape}


def _model_name(weights: str | Path | None) -> str:
    """The model named in the series description: the model folder (not "best"), or the version."""
    if weights is None:
        return _model_version()
    path = Path(weights)
    return path.parent.name if path.is_file() and path.stem == "best" else path.stem


def _model_version() -> str:
    try:
        from importlib.metadata import version

        return f"v{version('spectac')}"
    except Exception:  # noqa: BLE001 - a source tree without metadata
        return ""
