"""Checks on where outputs go relative to their inputs."""

from __future__ import annotations

from pathlib import Path

from spectac.volume import SpectacError


def check_output_apart(input: str | Path, output: str | Path) -> None:
    """Refuse an output that is the input, lies inside the input folder, or contains the input.

    Writing into an input folder changes the input (a DICOM series folder with a NIfTI file in it no
    longer reads as one series); writing a folder around the input would hold it. Paths are compared
    after resolving links and ``..``.

    Raises:
        SpectacError: one line naming the output and the input.
    """
    source, target = Path(input).resolve(), Path(output).resolve()
    if target == source:
        raise SpectacError(f"{output}: the output would overwrite the input; choose another -o")
    if source in target.parents:
        raise SpectacError(f"{output}: the output would be written inside the input {input}; choose a place outside it")
    if target in source.parents:
        raise SpectacError(f"{output}: the output would contain the input {input}; choose a place outside it")
