"""Attenuation maps for a camera's projections: a CT series converted to mu and checked to share
the acquisition's frame of reference.

Both the CT and the SPECT grid are placed in patient LPS millimetres by their own headers (the CT by
Image Position/Orientation (Patient) of its slices, the projections' grid by the first detector's
Image Position (Patient), :mod:`spectac.io.projections.read`). That is one coordinate system only
when both series carry the same Frame of Reference UID (DICOM PS3.3 C.7.4.1: same UID, same
patient-based coordinate system), as on a SPECT/CT's hybrid acquisition; a CT of another frame of
reference (another scanner, another day) would put the attenuation somewhere else in the body
without any visible error, so it is refused unless the user forces it.

The CT numbers are converted with spectac's bilinear model at the CT's tube voltage
(:func:`spectac.physics.hu_to_mu`, 140 keV, Tc-99m); :func:`~spectac.reconstruction.projections.mu_on_grid`
then resamples the mu-map onto the reconstruction grid.
"""

from __future__ import annotations

from spectac.errors import SpectacError
from spectac.io.ct import CtSeries
from spectac.io.projections import Acquisition
from spectac.physics import hu_to_mu
from spectac.volume import Volume


def check_same_frame(acquisition: Acquisition, frame_of_reference_uid: str, what: str, force: bool = False) -> None:
    """Refuse a mu-map source whose Frame of Reference UID is not the projections' (or unknown on
    either side) unless ``force``."""
    if force:
        return
    mine = acquisition.frame_of_reference_uid
    if not mine or not frame_of_reference_uid:
        side = what if not frame_of_reference_uid else acquisition.source or "the projections"
        raise SpectacError(f"{side}: no Frame of Reference UID, so the CT cannot be placed on the SPECT grid "
                           "with certainty; --force-frame uses both series' patient coordinates as they are")
    if mine != frame_of_reference_uid:
        raise SpectacError(f"{what}: Frame of Reference UID {frame_of_reference_uid} is not the projections' "
                           f"{mine} (another scanner or session); --force-frame uses it anyway")


def mu_from_ct(ct: CtSeries, acquisition: Acquisition, what: str, force_frame: bool = False) -> Volume:
    """The CT as a mu-map (1/cm at 140 keV, the CT's own grid) after the frame-of-reference check."""
    check_same_frame(acquisition, ct.frame_of_reference_uid, what, force_frame)
    return ct.volume.with_array(hu_to_mu(ct.volume.array, ct.kvp))
