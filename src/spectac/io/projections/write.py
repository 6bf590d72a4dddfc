"""Raw projections written as a vendor-like NM TOMO DICOM file (GE single head or Siemens two heads,
optionally gated), and spectac's own projections as an :class:`Acquisition`: how simulated studies
travel the route a camera's do (:mod:`spectac.io.projections.read` reads them back).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence as DicomSequence
from pydicom.uid import ExplicitVRLittleEndian, generate_uid
from pydicom.valuerep import format_number_as_ds

from spectac.acquisition.protocol import Protocol
from spectac.errors import SpectacError
from spectac.io.atomic import atomic_path
from spectac.io.projections.read import NM_STORAGE, Acquisition, EnergyWindow


def _ds(value: float) -> str:
    return format_number_as_ds(float(value))


def write_projections_dicom(
    acquisition: Acquisition,
    path: str | Path,
    *,
    manufacturer: str = "GE MEDICAL SYSTEMS",
    detectors: int = 1,
    gates: int = 1,
    patient_id: str = "SPECTAC",
    frame_of_reference_uid: str | None = None,
    replace: bool = True,
) -> Path:
    """Write an acquisition as a camera would: one NM multi-frame TOMO (``gates`` > 1: GATED TOMO,
    counts split over the gates) file, frames ordered energy window, detector, (gate,) view.

    ``detectors=1`` is GE's layout (one detector vector, start angle and per-view radial
    positions in the Rotation Information Sequence); ``detectors=2`` is Siemens' (the views split
    in two halves, one per head, each with its own Start Angle and Radial Position in the Detector
    Information Sequence). The views of each detector must be evenly spaced. Counts must be
    integers in 0-65535 (uint16 pixels, as cameras write). The file is written atomically
    (:func:`spectac.io.atomic.atomic_path`); ``replace=False`` refuses an existing ``path``.
    """
    path = Path(path)
    counts = np.asarray(acquisition.counts)
    if counts.min() < 0 or counts.max() > 65535 or not np.all(counts == np.round(counts)):
        raise SpectacError("projection counts must be integers in 0-65535 to be written as uint16 pixels")
    n_windows, n_views, n_v, n_z = counts.shape
    if n_views % detectors:
        raise SpectacError(f"{n_views} views cannot be split over {detectors} detectors")
    per_detector = n_views // detectors
    theta = 90.0 - np.asarray(acquisition.azimuths_deg, dtype=np.float64)  # DICOM angles
    starts, steps, direction = [], [], None
    for d in range(detectors):
        t = theta[d * per_detector:(d + 1) * per_detector]
        diffs = np.diff(t) if per_detector > 1 else np.array([-1.0])
        if not np.allclose(diffs, diffs[0], atol=1e-6):
            raise SpectacError("the views of a detector must be evenly spaced to be written")
        this = "CW" if diffs[0] < 0 else "CC"
        if direction not in (None, this):
            raise SpectacError("the detectors must rotate the same way")
        direction = this
        starts.append(float(t[0] % 360.0))
        steps.append(abs(float(diffs[0])) if per_detector > 1 else 0.0)
    step = steps[0]
    dv, dz = acquisition.pixel_mm

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = NM_STORAGE
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = NM_STORAGE
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.Modality = "NM"
    ds.ImageType = ["ORIGINAL", "PRIMARY", "GATED TOMO" if gates > 1 else "TOMO", "EMISSION"]
    ds.Manufacturer = manufacturer
    ds.ManufacturerModelName = "spectac synthetic"
    ds.PatientName = patient_id
    ds.PatientID = patient_id
    ds.StudyInstanceUID = acquisition.study_uid or generate_uid()
    ds.SeriesInstanceUID = generate_uid()
    ds.FrameOfReferenceUID = frame_of_reference_uid or acquisition.frame_of_reference_uid or generate_uid()
    ds.SeriesNumber = 1
    ds.InstanceNumber = 1
    ds.PatientPosition = "HFS"

    windows = []
    for w in acquisition.windows:
        item = Dataset()
        rng = Dataset()
        rng.EnergyWindowLowerLimit = _ds(w.lower_kev)
        rng.EnergyWindowUpperLimit = _ds(w.upper_kev)
        item.EnergyWindowRangeSequence = DicomSequence([rng])
        item.EnergyWindowName = w.name
        windows.append(item)
    ds.EnergyWindowInformationSequence = DicomSequence(windows)
    ds.NumberOfEnergyWindows = n_windows

    radii = np.asarray(acquisition.radii_mm, dtype=np.float64)
    det_items = []
    ox, oy, oz = acquisition.origin_mm
    for d in range(detectors):
        item = Dataset()
        item.CollimatorGridName = acquisition.collimator
        item.CollimatorType = "PARA"
        item.FocalDistance = 0
        phi0 = math.radians(acquisition.azimuths_deg[d * per_detector])
        item.ImageOrientationPatient = [_ds(-math.sin(phi0)), _ds(math.cos(phi0)), "0", "0", "0", "-1"]
        item.ImagePositionPatient = [_ds(ox), _ds(oy), _ds(oz + (n_z - 1) * dz)]
        if detectors > 1:
            item.StartAngle = _ds(starts[d])
            item.RadialPosition = [_ds(r) for r in radii[d * per_detector:(d + 1) * per_detector]]
        det_items.append(item)
    ds.DetectorInformationSequence = DicomSequence(det_items)
    ds.NumberOfDetectors = detectors

    rot = Dataset()
    rot.StartAngle = _ds(starts[0])
    rot.AngularStep = _ds(step)
    rot.RotationDirection = direction
    rot.ScanArc = _ds(step * per_detector)
    rot.NumberOfFramesInRotation = per_detector
    rot.ActualFrameDuration = 20000
    rot.TableHeight = "150"
    if detectors == 1:
        rot.RadialPosition = [_ds(r) for r in radii]
    ds.RotationInformationSequence = DicomSequence([rot])
    ds.NumberOfRotations = 1
    ds.TypeOfDetectorMotion = "STEP AND SHOOT"

    frames, ew, dv_, rv, av, ts = [], [], [], [], [], []
    split = [np.floor(counts / gates)] * gates
    split[-1] = counts - np.floor(counts / gates) * (gates - 1)
    for w in range(n_windows):
        for d in range(detectors):
            for g in range(gates):
                for k in range(per_detector):
                    a = d * per_detector + k
                    frames.append(split[g][w, a].T[::-1, :])
                    ew.append(w + 1)
                    dv_.append(d + 1)
                    rv.append(1)
                    av.append(k + 1)
                    ts.append(g + 1)
    pixels = np.ascontiguousarray(np.stack(frames)).astype(np.uint16)
    ds.EnergyWindowVector = ew
    ds.DetectorVector = dv_
    ds.RotationVector = rv
    ds.AngularViewVector = av
    pointers = [0x00540010, 0x00540020, 0x00540050, 0x00540090]
    if gates > 1:
        ds.TimeSlotVector = ts
        ds.RRIntervalVector = [1] * len(ts)
        ds.NumberOfTimeSlots = gates
        ds.NumberOfRRIntervals = 1
        pointers = [0x00540010, 0x00540020, 0x00540050, 0x00540060, 0x00540070, 0x00540090]
    ds.FrameIncrementPointer = pointers
    ds.NumberOfFrames = len(frames)
    ds.Rows, ds.Columns = n_z, n_v
    ds.PixelSpacing = [_ds(dz), _ds(dv)]
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated = 16
    ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = 0
    ds.PixelData = pixels.tobytes()
    with atomic_path(path, ".dcm", replace=replace) as tmp:
        ds.save_as(str(tmp), enforce_file_format=True)
    return path


def acquisition_from_projections(
    projections: np.ndarray | Sequence[np.ndarray],
    protocol: Protocol,
    radii_mm: np.ndarray,
    windows: Sequence[EnergyWindow] = (EnergyWindow("Tc99m", 126.45, 154.55),),
    collimator: str = "LEHR",
    spacing_z_mm: float | None = None,
    origin_mm: tuple[float, float, float] | None = None,
) -> Acquisition:
    """An Acquisition of spectac's own projections ((views, V, Z) per window), e.g. simulated ones.

    ``origin_mm`` defaults to the centred grid of :meth:`spectac.volume.Volume.centred`.
    """
    stack = np.stack([np.asarray(p, dtype=np.float32) for p in projections]) if not isinstance(
        projections, np.ndarray) or np.asarray(projections).ndim == 4 else np.asarray(projections)[None]
    stack = np.asarray(stack, dtype=np.float32)
    if stack.ndim == 3:
        stack = stack[None]
    _, n_views, n_v, n_z = stack.shape
    dz = float(spacing_z_mm or protocol.pixel_mm)
    if origin_mm is None:
        origin_mm = (-(n_v - 1) / 2 * protocol.pixel_mm, -(n_v - 1) / 2 * protocol.pixel_mm, -(n_z - 1) / 2 * dz)
    return Acquisition(
        counts=stack,
        azimuths_deg=np.asarray(protocol.azimuths_deg(), dtype=np.float64),
        radii_mm=np.asarray(radii_mm, dtype=np.float64),
        detectors=np.ones(n_views, np.int64),
        pixel_mm=(float(protocol.pixel_mm), dz),
        windows=list(windows),
        collimator=collimator,
        manufacturer="GE MEDICAL SYSTEMS",
        origin_mm=tuple(float(o) for o in origin_mm),  # type: ignore[arg-type]
    )
