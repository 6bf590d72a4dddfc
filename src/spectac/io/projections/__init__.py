"""Raw SPECT projections: read a camera's NM TOMO / GATED TOMO file (:mod:`.read`), write one
(:mod:`.write`)."""

from spectac.io.projections.read import Acquisition, EnergyWindow, read_projections
from spectac.io.projections.write import acquisition_from_projections, write_projections_dicom

__all__ = ["Acquisition", "EnergyWindow", "acquisition_from_projections", "read_projections",
           "write_projections_dicom"]
