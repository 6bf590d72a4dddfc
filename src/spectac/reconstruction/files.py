"""One raw projection file reconstructed to one output: the steps ``spectac reconstruct`` and
``spectac correct --route indirect`` share, so that both make and write their images the same way.

The order is the one that writes nothing half: the output is checked (:func:`check_output`) and
the file read with its window (:func:`open_projections`, which also checks that an NM DICOM output
can be attached to the projections' study) before OSEM runs (:func:`reconstruct_window`); the
image is written last (:func:`write_output`), as a NIfTI file or a new NM RECON TOMO series.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from spectac.errors import SpectacError
from spectac.io.nifti import write_nifti
from spectac.io.paths import ensure_writable_parent
from spectac.io.projections import Acquisition, read_projections
from spectac.io.projections.output import projection_context, write_reconstruction_dicom
from spectac.reconstruction.consistency import Consistency, consistency
from spectac.reconstruction.osem import ReconConfig, butterworth_filter, subset_views
from spectac.reconstruction.projections import (
    ProjectionRecon,
    acquisition_projector,
    acquisition_scatter,
    default_scatter_method,
    reconstruct_acquisition,
)
from spectac.volume import Volume

SCATTER_CHOICES = ("auto", "tew", "dew", "none")


def is_nifti(path: str | Path) -> bool:
    return str(path).lower().endswith((".nii", ".nii.gz"))


def scatter_choice(value: str) -> str:
    """A ``--scatter`` value (auto, tew, dew, none), checked."""
    value = value.lower()
    if value not in SCATTER_CHOICES:
        raise SpectacError(f"--scatter must be auto, tew, dew or none, got {value!r}")
    return value


def check_output(out: Path) -> bool:
    """Refuse an NM DICOM output that exists (it is a new ``.dcm`` file or a new or empty folder) and
    an output that cannot be written; returns whether it is NIfTI (an existing NIfTI file is
    replaced atomically, as ``spectac reconstruct`` always did; the indirect route refuses it)."""
    nifti = is_nifti(out)
    if not nifti and out.exists() and (out.suffix.lower() == ".dcm" or not out.is_dir() or any(out.iterdir())):
        raise SpectacError(f"{out}: already exists; choose a new .dcm file or folder for the NM DICOM output")
    ensure_writable_parent(out)
    return nifti


def open_projections(projections: Path, window: str | None, nifti: bool) -> tuple[Acquisition, int]:
    """The acquisition and its window (0-based); for an NM DICOM output, the file is checked to be
    one the writer can attach a series to (now, not after OSEM)."""
    acquisition = read_projections(projections)
    w = acquisition.window_index(window)
    if not nifti:
        projection_context(projections, w)
    return acquisition, w


@dataclass(frozen=True)
class WindowRecon:
    """A reconstruction and how it was made: the scatter method ("none", "tew" or "dew") and its
    estimate (None without), and the one-line kind (``NC``, ``AC+TEW``, ...)."""

    result: ProjectionRecon
    config: ReconConfig
    scatter: str
    estimate: np.ndarray | None

    @property
    def kind(self) -> str:
        return ("AC" if self.result.corrected else "NC") + ("" if self.scatter == "none" else f"+{self.scatter.upper()}")

    def description(self, extra: str = "") -> str:
        """The NIfTI descrip / DICOM Series Description: ``spectac AC+TEW OSEM 4x6 LEHR``."""
        text = f"spectac {self.kind} OSEM {self.config.iterations}x{self.config.subsets} {self.result.collimator}"
        return f"{text} {extra}" if extra else text


def reconstruct_window(acquisition: Acquisition, w: int, config: ReconConfig, collimator: str | None = None,
                       mu: Volume | None = None, scatter: str = "auto", keep_projector: bool = False) -> WindowRecon:
    """OSEM of window ``w`` (0-based), NC or AC with ``mu``, with the ``scatter`` correction
    ("auto": none for NC, and for AC TEW, else DEW, when the file has the windows); missing
    windows are refused before OSEM runs. ``keep_projector``: as
    :func:`~spectac.reconstruction.projections.reconstruct_acquisition`'s."""
    if scatter == "auto":
        scatter = default_scatter_method(acquisition, w, mu is not None)
    estimate = acquisition_scatter(acquisition, w, scatter)
    config = replace(config, scatter_correction=scatter)
    result = reconstruct_acquisition(acquisition, config, window=w + 1, collimator=collimator, mu=mu,
                                     scatter=estimate, keep_projector=keep_projector)
    return WindowRecon(result, config, scatter, estimate)


def post_filtered(recon: WindowRecon, cutoff_per_cm: float, order: int) -> WindowRecon:
    """An unfiltered reconstruction (``butterworth_cutoff_per_cm`` 0) with the post-filter applied
    afterwards: the same image as :func:`reconstruct_window` with that filter (it filters the OSEM
    image the same way), for a caller that also needs the unfiltered one (the consistency index)."""
    volume = recon.result.volume
    filtered = butterworth_filter(volume.array, volume.spacing[0], cutoff_per_cm, order)
    config = replace(recon.config, butterworth_cutoff_per_cm=cutoff_per_cm, butterworth_order=order)
    return replace(recon, result=replace(recon.result, volume=volume.with_array(filtered)), config=config)


def write_output(recon: WindowRecon, out: Path, nifti: bool, projections: Path, description: str,
                 image_comments: str = "") -> None:
    """Write the image as NIfTI, or as a new NM RECON TOMO series in the projections' study (with
    ``image_comments`` as every image's Image Comments)."""
    if nifti:
        write_nifti(recon.result.volume, out, descrip=description)
    else:
        write_reconstruction_dicom(recon.result.volume, projections, recon.result.window, out, description,
                                   recon.result.corrected, recon.scatter != "none", image_comments)


def acquisition_consistency(acquisition: Acquisition, w: int, image: np.ndarray, mu: np.ndarray,
                            collimator: str | None = None, psf: bool = True,
                            scatter: str = "auto") -> tuple[Consistency, str, str]:
    """The consistency index (:mod:`spectac.reconstruction.consistency`) of an AC image and its
    mu-map, both on the acquisition's grid, with window ``w``'s counts; ``scatter`` "auto" adds the
    TEW (else DEW) estimate when the file has the windows. Returns (index, collimator key, scatter)."""
    projector, _, key = acquisition_projector(acquisition, w, collimator, mu, psf)
    if scatter == "auto":
        scatter = default_scatter_method(acquisition, w, corrected=True)
    result = consistency(acquisition.counts[w], image, projector, acquisition_scatter(acquisition, w, scatter))
    return result, key, scatter


def reconstruct_consistent(acquisition: Acquisition, w: int, config: ReconConfig, collimator: str | None,
                           mu: Volume, scatter: str = "auto") -> tuple[WindowRecon, Consistency]:
    """AC OSEM of window ``w`` with ``mu`` (on the acquisition's grid) and the ``scatter``
    correction, and the consistency index of that image before its post-filter (the filter removes
    signal that is in the data and raises the index) with the same mu-map and scatter estimate.
    Returns (the post-filtered reconstruction, as :func:`reconstruct_window` makes it; the index)."""
    unfiltered = reconstruct_window(acquisition, w, replace(config, butterworth_cutoff_per_cm=0.0), collimator, mu,
                                    scatter, keep_projector=True)
    # OSEM's own system model and scatter estimate: the projector's rotations and attenuation factors
    # are cached per OSEM subset, so the index projects subset by subset
    projector = unfiltered.result.projector
    qc = consistency(acquisition.counts[w], unfiltered.result.volume.array, projector, unfiltered.estimate,
                     subset_views(projector.n_views, config.subsets))
    unfiltered = replace(unfiltered, result=replace(unfiltered.result, projector=None))  # its caches go with it
    return post_filtered(unfiltered, config.butterworth_cutoff_per_cm, config.butterworth_order), qc
