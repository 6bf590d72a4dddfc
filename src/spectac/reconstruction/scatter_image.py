"""The scatter-window image: a mu model's second input, made the same way in training and inference.

Photons scattered in the body reach the camera in the energy windows below the photopeak; their
reconstruction is a blurred image of the whole body (lungs darker: less material to scatter in)
rather than of the tracer's organs, so it outlines what a CT would show. Shi et al., "Deep
learning-based attenuation map generation for myocardial perfusion SPECT", Eur J Nucl Med Mol
Imaging, 2020, give their network the photopeak and the scatter-window reconstructions for this
reason.

The recipe (:data:`RECIPE`, :func:`scatter_image`) is one function for both sides: training
(:func:`spectac.training.data.load_pair`, through the study's cached ``scatter.nii.gz``) and
``spectac correct --route indirect`` (:mod:`spectac.correction.indirect`) call it on an
:class:`~spectac.io.projections.Acquisition` (a simulated study's rebuilt one,
:func:`spectac.reconstruction.study.study_acquisition`, or a read projection file):

- the window: the broad window below the photopeak (DEW's, e.g. 92-125 keV for Tc-99m) when the
  acquisition has one, else the narrow window just below it (TEW's lower), found by keV range
  (:func:`spectac.reconstruction.projections.scatter_windows`); the broad window holds about ten
  times the counts of the narrow one and so gives the cleaner outline;
- OSEM without attenuation, 2 iterations of 6 subsets, no PSF, the clinical Butterworth
  post-filter (0.4 cycles/cm, order 10): the outline is all the network needs, and at 64^3 this
  costs about a second (a tenth of the NC's 4 iterations with PSF);
- the network sees it normalised by its own 99.9th percentile, like NC (so a camera with another
  window width gives the same range).

An acquisition without either window has no scatter image: a mu model that takes one refuses it
with one line (:func:`spectac.correction.indirect.correct_acquisition`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from spectac.errors import SpectacError
from spectac.io.dataset import Dataset
from spectac.io.nifti import STUDY_DESCRIPTIONS
from spectac.io.projections import Acquisition
from spectac.reconstruction.osem import ReconConfig
from spectac.reconstruction.projections import reconstruct_acquisition, scatter_windows
from spectac.reconstruction.study import study_acquisition
from spectac.volume import Volume

#: The OSEM of the scatter-window image (no scatter correction: the window is all scatter).
RECIPE = ReconConfig(iterations=2, subsets=6, psf=False, butterworth_cutoff_per_cm=0.4, butterworth_order=10,
                     scatter_correction="none")
#: Window roles the image is made from, in order of preference.
WINDOW_ROLES = ("dew_lower", "tew_lower")
#: The description a cached scatter image carries (it names :data:`RECIPE`: change both together);
#: a cache of another recipe is remade.
DESCRIPTION = STUDY_DESCRIPTIONS["scatter"]


@dataclass(frozen=True)
class ScatterImage:
    """A scatter-window reconstruction and the role of its window ("dew_lower" or "tew_lower")."""

    volume: Volume
    role: str


def scatter_window(acquisition: Acquisition, peak: int) -> tuple[str, int] | None:
    """The (role, 0-based index) of the window the scatter image is made from, or None when the
    acquisition has no window below the photopeak ``peak``."""
    roles = scatter_windows(acquisition, peak)
    return next(((role, roles[role]) for role in WINDOW_ROLES if role in roles), None)


def scatter_image(acquisition: Acquisition, peak: int, collimator: str | None = None) -> ScatterImage:
    """The scatter-window image of an acquisition (see the module docstring), on the grid of the
    photopeak's reconstruction, in counts.

    Raises:
        SpectacError: the acquisition has no window below the photopeak.
    """
    found = scatter_window(acquisition, peak)
    if found is None:
        have = ", ".join(str(w) for w in acquisition.windows)
        raise SpectacError(f"{acquisition.source or 'the acquisition'}: no energy window below the photopeak for "
                           f"the scatter-window image; the file has: {have}")
    role, index = found
    result = reconstruct_acquisition(acquisition, RECIPE, window=index + 1, collimator=collimator)
    return ScatterImage(result.volume, role)


def no_scatter_window_message(where: str, model: str, acquisition: Acquisition) -> str:
    """The one line refusing an acquisition without a scatter window for a model that needs one."""
    have = ", ".join(str(w) for w in acquisition.windows)
    return (f"{where}: the mu model {model} takes the scatter-window image as its second input, and this "
            f"acquisition has no energy window below the photopeak (it has: {have}); use --route direct, a CT "
            "mu-map (spectac reconstruct --mu), or an NC-only mu model (--weights)")


def study_scatter_image(dataset: Dataset, case_id: str) -> Volume:
    """A dataset study's scatter-window image: its cached ``scatter.nii.gz`` when made with today's
    recipe (:data:`DESCRIPTION`), else made from its projections.npz
    (:func:`spectac.reconstruction.study.study_acquisition`, :func:`scatter_image`) and cached in
    the study folder (atomically; the study's own files are not touched). A study imported with
    its own ``scatter.nii.gz`` (no projections) keeps it whatever its description.

    Raises:
        SpectacError: no usable cache and no projections.npz (an imported study), or projections
            without a window below the photopeak.
    """
    cached = dataset.has(case_id, "scatter")
    has_projections = (dataset.study_dir(case_id) / "projections.npz").is_file()
    if cached and (not has_projections or dataset.description(case_id, "scatter") == DESCRIPTION):
        return dataset.load(case_id, "scatter")
    if not has_projections:
        raise SpectacError(f"{dataset.study_dir(case_id)}: no scatter.nii.gz and no projections.npz to make it "
                           "from; a mu model with the scatter input needs every study's scatter-window image")
    acquisition = study_acquisition(dataset, case_id)
    image = scatter_image(acquisition, acquisition.window_index(None)).volume
    dataset.write_derived(case_id, "scatter", image)
    return image


def cache_scatter_image(out: str | Path, case_id: str) -> None:
    """Add the study's scatter-window image (scatter.nii.gz, the second input of the shipped mu
    model) once the study and the manifest are written: made from the written study exactly as
    training would make it when missing (:func:`study_scatter_image`),
    so a new cohort needs no backfill. A protocol without a window below the photopeak has none.
    One torch thread, as the studies' own OSEM: the same bytes whatever ``--workers``."""
    import torch

    dataset = Dataset.open(out)
    acquisition = study_acquisition(dataset, case_id)
    if scatter_window(acquisition, acquisition.window_index()) is None:
        return
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        study_scatter_image(dataset, case_id)
    finally:
        torch.set_num_threads(threads)
