"""A simulated study's raw acquisition, rebuilt in memory from its dataset folder.

A simulated study keeps the counts of every energy window (``projections.npz``) but no DICOM; this
module makes of them the :class:`~spectac.io.projections.Acquisition` that reading a projection
file gives, so that everything that takes raw projections (``spectac reconstruct``'s OSEM, the
consistency index, the indirect route: :func:`spectac.correction.indirect.correct_acquisition`)
runs on a dataset's studies without writing files.

What the acquisition needs and where it comes from:

- the views: the protocol in dataset.json, with the study's orbit (``orbit_deg``) and collimator
  (``collimator``) from cases.csv (``simulate --protocol-mix`` draws them per patient);
- the detector radius of every view: the simulator's orbit follows the body
  (:func:`spectac.acquisition.projector.body_radii_mm` of the attenuating body, mu > 0.01 1/cm,
  plus the protocol's clearance). projections.npz does not keep the radii; they are those of the
  stored mu-map's body less the CT-SPECT misregistration the simulator applied to it along each
  view's direction (a rigid shift moves the body's extent toward a camera by the shift's
  component). Interpolating the shifted map grows its outline by up to a voxel, so a radius may be
  a voxel off the acquisition's: the distance-dependent blur differs a little (the rebuilt NC
  differs from the stored one by about 0.1% of its maximum; tests/test_study_acquisition.py);
- the grid: the study's NIfTI grid (centred, cubic voxels of the protocol's pixel size).

With these, OSEM of the acquisition with the dataset's reconstruction settings
(:func:`study_recon_config`) gives the stored NC image, and with the stored mu-map and the TEW
estimate the stored CT-AC image, up to that blur.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from spectac.acquisition.collimators import COLLIMATORS
from spectac.acquisition.projector import body_radii_mm
from spectac.acquisition.protocol import Protocol
from spectac.errors import SpectacError
from spectac.io.dataset import Dataset, recorded_mu_shift
from spectac.io.projections import Acquisition, EnergyWindow, acquisition_from_projections
from spectac.reconstruction.osem import ReconConfig
from spectac.resample import shift_mu
from spectac.volume import Volume

#: mu (1/cm) above which a voxel is body when the orbit follows the body (as the projector's).
BODY_MU_PER_CM = 0.01


def true_mu(dataset: Dataset, case_id: str) -> Volume:
    """The attenuating body of a study's emission data: mu.nii.gz moved back by the recorded
    CT-SPECT misregistration (lv.json ``phantom.mu_shift_mm``; none recorded: mu.nii.gz itself)."""
    mu = dataset.load(case_id, "mu")
    back = tuple(-v for v in recorded_mu_shift(dataset, case_id))
    return mu.with_array(shift_mu(mu.array, back, float(mu.spacing[0])))


def study_protocol(dataset: Dataset, case_id: str) -> Protocol:
    """The acquisition protocol of one study: dataset.json's, with the study's orbit and collimator."""
    saved = dataset.meta.get("protocol")
    if not isinstance(saved, dict):
        raise SpectacError(f"{dataset.root}: dataset.json records no acquisition protocol (not a simulated dataset)")
    protocol = Protocol.from_dict(saved)
    case = dataset.case(case_id)
    if case.orbit_deg and float(case.orbit_deg) != protocol.arc_deg:
        arc = float(case.orbit_deg)
        protocol = replace(protocol, arc_deg=arc, start_deg=Protocol.for_arc(arc).start_deg)
    if case.collimator:
        spec = next((c for c in COLLIMATORS if c.key == case.collimator), None)
        if spec is None:
            raise SpectacError(f"{case_id}: unknown collimator {case.collimator!r} in cases.csv")
        protocol = replace(protocol, collimator=spec.collimator())
    return protocol


def collimator_key(protocol: Protocol) -> str:
    """The collimator table key of a protocol's collimator."""
    key = next((c.key for c in COLLIMATORS if c.collimator() == protocol.collimator), "")
    if not key:
        raise SpectacError(f"the protocol's collimator {protocol.collimator} is none of the collimator table's")
    return key


def study_recon_config(dataset: Dataset) -> ReconConfig:
    """The OSEM settings the dataset's NC and CT-AC were reconstructed with (dataset.json
    ``config.recon``); the defaults when none is recorded."""
    saved = (dataset.meta.get("config") or {}).get("recon")
    return ReconConfig(**saved) if isinstance(saved, dict) else ReconConfig()


def study_acquisition(dataset: Dataset, case_id: str) -> Acquisition:
    """The acquisition of a simulated study, from projections.npz (see the module docstring).

    Raises:
        SpectacError: no projections.npz or mu.nii.gz (an imported study), or projections that
            do not fit the study's protocol and grid.
    """
    if not dataset.has(case_id, "mu"):
        raise SpectacError(f"{dataset.study_dir(case_id)}: no mu.nii.gz; the orbit of a simulated study follows "
                           "its body")
    counts, bounds = dataset.projections(case_id)
    protocol = study_protocol(dataset, case_id)
    body = dataset.load(case_id, "mu")
    names = list(counts)
    shape = np.shape(counts[names[0]])
    if shape[0] != protocol.n_views or shape[1:] != (body.shape[0], body.shape[2]):
        raise SpectacError(f"{case_id}: projections {shape} do not fit {protocol.n_views} views of the "
                           f"{body.shape} grid")
    spacing = float(body.spacing[0])
    phi = protocol.azimuths_rad()
    shift = recorded_mu_shift(dataset, case_id)
    radii = body_radii_mm(body.array > BODY_MU_PER_CM, spacing, phi, protocol.clearance_mm) - (
        shift[0] * np.cos(phi) + shift[1] * np.sin(phi))
    acquisition = acquisition_from_projections(
        [np.asarray(counts[n], dtype=np.float32) for n in names], replace(protocol, pixel_mm=spacing), radii,
        [EnergyWindow(n, *bounds[n]) for n in names], collimator_key(protocol), spacing_z_mm=float(body.spacing[2]),
        origin_mm=tuple(float(o) for o in body.origin))
    return replace(acquisition, source=f"{dataset.root.name}/{case_id}")
