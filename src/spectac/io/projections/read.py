"""Raw SPECT projections from a camera's NM DICOM file (Image Type TOMO or GATED TOMO).

One multi-frame NM object holds every projection of an acquisition; each frame is one view of one
detector in one energy window (and one gate). The frame's place comes from the vectors named by
the Frame Increment Pointer: Energy Window, Detector, Rotation, (R-R Interval, Time Slot) and
Angular View Vector. Angles follow DICOM PS3.3 C.8.4.12 (NM Tomo Acquisition): Start Angle 0 is
the detector at the patient's back, angles increase counter-clockwise seen from the feet (from the
back toward the patient's left), CC adds Angular Step per view and CW subtracts it. In spectac's
azimuth convention (``phi`` from +x toward +y in LPS, anterior -90) a DICOM angle ``theta`` is
``phi = 90 - theta``. The start angle is read from the Detector Information Sequence when a camera
writes one per detector (Siemens, two heads), else from the Rotation Information Sequence (GE);
radial positions likewise (one per view or one per rotation).

Pixels: a frame's columns run along the detector row, the direction ``(-sin phi, cos phi, 0)``
(what GE writes as the first frame's Image Orientation (Patient)), its rows from head to feet.
spectac's projections are ``[view, v, z]`` with ``z`` from feet to head, so frame ``f`` becomes
``pixels[f][::-1, :].T``. This is PyTomography's reading of the same files (``parse_projection_dataset``;
tests/test_projections.py compares both on a GE Discovery 670 file).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataset import Dataset

from spectac.acquisition.collimators import AcquiredProtocol, CollimatorSpec, find_collimator
from spectac.acquisition.protocol import Protocol
from spectac.errors import SpectacError

NM_STORAGE = "1.2.840.10008.5.1.4.1.1.20"
PROJECTION_TYPES = ("TOMO", "GATED TOMO")
#: Image Type value 3 of NM objects that are not projections of a tomographic acquisition.
REFUSED_TYPES = {
    "STATIC": "a planar (STATIC) image",
    "DYNAMIC": "a planar dynamic acquisition",
    "GATED": "a planar gated acquisition",
    "WHOLE BODY": "a planar whole-body scan",
    "RECON TOMO": "a reconstructed volume, not raw projections (spectac correct reads it)",
    "RECON GATED TOMO": "a reconstructed gated volume, not raw projections",
}
#: Tc-99m's photopeak (keV): the default window of a myocardial perfusion study.
TC99M_KEV = 140.5


@dataclass(frozen=True)
class EnergyWindow:
    name: str
    lower_kev: float
    upper_kev: float

    @property
    def centre_kev(self) -> float:
        return (self.lower_kev + self.upper_kev) / 2

    def __str__(self) -> str:
        return f"{self.name or 'unnamed'} {self.lower_kev:g}-{self.upper_kev:g} keV"


@dataclass
class Acquisition:
    """The projections of one SPECT acquisition.

    Attributes:
        counts: (windows, views, V, Z) float32 counts; V along the detector row, Z from feet to head.
        azimuths_deg: (views,) camera azimuth of each view (spectac's convention, see module doc).
        radii_mm: (views,) distance of the detector face from the rotation axis.
        detectors: (views,) detector number (1-based) of each view.
        pixel_mm: (along V, along Z) bin size.
        windows: the energy windows, in the file's order.
        collimator: Collimator/Grid Name as written ("" if absent).
        manufacturer, model: of the camera.
        rotation_direction, start_angle_deg: of the first detector, as in the file (CW/CC, DICOM degrees).
        frame_of_reference_uid, patient_orientation: to place the study with a CT later.
        origin_mm: LPS position of the centre of voxel [0, 0, 0] of the reconstruction grid.
        gates: how many time slots were summed (1 for TOMO).
    """

    counts: np.ndarray
    azimuths_deg: np.ndarray
    radii_mm: np.ndarray
    detectors: np.ndarray
    pixel_mm: tuple[float, float]
    windows: list[EnergyWindow]
    collimator: str = ""
    manufacturer: str = ""
    model: str = ""
    rotation_direction: str = "CW"
    start_angle_deg: float = 0.0
    frame_of_reference_uid: str = ""
    study_uid: str = ""
    patient_orientation: str = ""
    origin_mm: tuple[float, float, float] = (0.0, 0.0, 0.0)
    image_type: str = "TOMO"
    gates: int = 1
    source: str = ""
    extra: dict = field(default_factory=dict)

    @property
    def n_views(self) -> int:
        return int(self.counts.shape[1])

    @property
    def n_detectors(self) -> int:
        return len(np.unique(self.detectors))

    @property
    def matrix(self) -> tuple[int, int]:
        """(V, Z): bins along the detector row and along the axis."""
        return int(self.counts.shape[2]), int(self.counts.shape[3])

    def window_index(self, choice: str | int | float | None = None) -> int:
        """The 0-based index of an energy window.

        ``choice``: None (the window holding Tc-99m's 140.5 keV), a 1-based window number as in the
        Energy Window Vector, a photon energy in keV (the window holding it) or a window name.
        """
        listing = "; ".join(f"{i + 1}: {w}" for i, w in enumerate(self.windows))
        where = f"{self.source}: " if self.source else ""
        if choice is None:
            hits = [i for i, w in enumerate(self.windows) if w.lower_kev <= TC99M_KEV <= w.upper_kev]
            if len(hits) == 1:
                return hits[0]
            raise SpectacError(f"{where}no single Tc-99m (140.5 keV) window; choose one with --window (windows {listing})")
        text = str(choice).strip()
        try:
            value = float(text)
        except ValueError:
            named = [i for i, w in enumerate(self.windows) if w.name.strip().lower() == text.lower()]
            if len(named) == 1:
                return named[0]
            raise SpectacError(f"{where}no single window named {text!r} (windows {listing})") from None
        if value.is_integer() and 1 <= value <= len(self.windows) and value < 20:
            return int(value) - 1
        hits = [i for i, w in enumerate(self.windows) if w.lower_kev <= value <= w.upper_kev]
        if len(hits) == 1:
            return hits[0]
        raise SpectacError(f"{where}no single window holds {value:g} keV (windows {listing})")

    def collimator_spec(self, name: str | None = None) -> CollimatorSpec:
        """The collimator of the table: ``name`` if given (--collimator), else the file's."""
        if name:
            return find_collimator(name, self.manufacturer)
        if not self.collimator:
            raise SpectacError(f"{self.source or 'the acquisition'}: no Collimator/Grid Name; give --collimator NAME")
        try:
            return find_collimator(self.collimator, self.manufacturer)
        except SpectacError as exc:
            raise SpectacError(f"{self.source}: {exc}") from None

    def protocol(self, collimator: str | None = None, window: str | int | float | None = None) -> Protocol:
        """spectac's Protocol of this acquisition: a plain :class:`Protocol` when the views are
        the evenly spaced, increasing azimuths of a 180 or 360 degree orbit, else an
        :class:`AcquiredProtocol` with the views' own angles (same projector either way)."""
        spec = self.collimator_spec(collimator)
        w = self.window_index(window)
        v, _ = self.matrix
        common = dict(matrix=v, pixel_mm=self.pixel_mm[0], counts=max(float(self.counts[w].sum()), 1.0),
                      collimator=spec.collimator())
        n = self.n_views
        phi = np.asarray(self.azimuths_deg, dtype=np.float64)
        for arc in (180.0, 360.0):
            plain = Protocol(n_views=n, arc_deg=arc, start_deg=float(phi[0]), **common)  # type: ignore[arg-type]
            if np.allclose(plain.azimuths_deg(), phi, atol=1e-6, rtol=0):
                return plain
        span = (phi.max() - phi.min()) * n / max(n - 1, 1)
        return AcquiredProtocol(n_views=n, arc_deg=360.0 if span > 270 else 180.0, start_deg=float(phi[0]),
                                angles_deg=tuple(float(a) for a in phi), **common)  # type: ignore[arg-type]


# ---- reading -----------------------------------------------------------------------------------

def _fail(path: Path, message: str) -> SpectacError:
    return SpectacError(f"{path}: {message}")


def _vector(ds: Dataset, keyword: str, frames: int, path: Path, required: bool = True) -> np.ndarray | None:
    if keyword not in ds or ds.data_element(keyword).value is None:
        if required:
            raise _fail(path, f"no {keyword}: cannot tell which projection each frame is")
        return None
    value = ds.data_element(keyword).value
    vector = np.atleast_1d(np.asarray(list(value) if not np.isscalar(value) else [value], dtype=np.int64))
    if len(vector) != frames:
        raise _fail(path, f"{keyword} has {len(vector)} values for {frames} frames (Number of Frames)")
    if vector.min() < 1:
        raise _fail(path, f"{keyword} holds values below 1")
    return vector


def _float(item: Dataset, keyword: str) -> float | None:
    if keyword not in item or item.data_element(keyword).value in (None, ""):
        return None
    try:
        return float(item.data_element(keyword).value)
    except (TypeError, ValueError):
        return None


def _floats(item: Dataset, keyword: str) -> np.ndarray | None:
    if keyword not in item or item.data_element(keyword).value in (None, ""):
        return None
    value = item.data_element(keyword).value
    try:
        return np.atleast_1d(np.asarray([float(v) for v in value] if not isinstance(value, (str, float, int))
                                        and hasattr(value, "__iter__") else [float(value)]))
    except (TypeError, ValueError):
        return None


def _item(seq_owner: Dataset, keyword: str, index: int) -> Dataset | None:
    seq = seq_owner.get(keyword)
    if seq is None or index >= len(seq):
        return None
    return seq[index]


def _windows(ds: Dataset, path: Path, n: int) -> list[EnergyWindow]:
    windows = []
    for i in range(n):
        item = _item(ds, "EnergyWindowInformationSequence", i)
        if item is None:
            raise _fail(path, f"energy window {i + 1} has no Energy Window Information Sequence item")
        ranges = item.get("EnergyWindowRangeSequence") or []
        lower = _float(ranges[0], "EnergyWindowLowerLimit") if ranges else None
        upper = _float(ranges[0], "EnergyWindowUpperLimit") if ranges else None
        if lower is None or upper is None:
            raise _fail(path, f"energy window {i + 1} has no energy range")
        windows.append(EnergyWindow(str(item.get("EnergyWindowName", "") or ""), lower, upper))
    return windows


def _orientation(ds: Dataset) -> str:
    parts = []
    for keyword in ("PatientOrientationCodeSequence", "PatientGantryRelationshipCodeSequence"):
        for item in ds.get(keyword) or []:
            parts.append(str(item.get("CodeMeaning", "")))
            for modifier in item.get("PatientOrientationModifierCodeSequence") or []:
                parts.append(str(modifier.get("CodeMeaning", "")))
    text = " ".join(p for p in parts if p)
    return text or str(ds.get("PatientPosition", "") or "")


def _grid_origin(ds: Dataset, columns: int, rows: int, dv: float, dz: float) -> tuple[float, float, float]:
    """LPS centre of voxel [0, 0, 0] of the reconstruction grid, as PyTomography places it
    (``_get_affine_spect_projections``): the first detector's Image Position (Patient) is the
    grid's corner at the top row; cameras writing y = 0 have the grid centred on the rotation axis
    at the table height."""
    item = _item(ds, "DetectorInformationSequence", 0)
    position = _floats(item, "ImagePositionPatient") if item is not None else None
    if position is None or len(position) != 3:
        return (-(columns - 1) / 2 * dv, -(columns - 1) / 2 * dv, -(rows - 1) / 2 * dz)
    sx, sy, sz = (float(p) for p in position)
    if sy == 0:
        sx -= (columns - 1) / 2 * dv
        sy -= (columns - 1) / 2 * dv
        rotation = _item(ds, "RotationInformationSequence", 0)
        sy -= (_float(rotation, "TableHeight") or 0.0) if rotation is not None else 0.0
    return (sx, sy, sz - (rows - 1) * dz)


def read_projections(path: str | Path) -> Acquisition:
    """Read a raw projection NM DICOM file (TOMO or GATED TOMO; gates are summed).

    Raises:
        SpectacError (one line naming the file): not DICOM, not NM projections (planar, whole-body,
        static, reconstructed), no angles, vectors that do not match the frames, a non-parallel
        collimator, or missing pixel spacing.
    """
    path = Path(path)
    if path.is_dir():
        raise SpectacError(f"{path}: a folder; give the raw projection file (NM TOMO DICOM) itself")
    if not path.is_file():
        raise SpectacError(f"{path}: no such file")
    if str(path).lower().endswith((".nii", ".nii.gz")):
        raise SpectacError(f"{path}: a NIfTI image, not raw projections (an NM TOMO DICOM file)")
    try:
        ds = pydicom.dcmread(str(path))
    except Exception as exc:  # pydicom raises many kinds
        raise _fail(path, f"not a readable DICOM file ({exc.__class__.__name__}: {exc})") from exc
    modality = str(ds.get("Modality", "") or "")
    if modality != "NM":
        raise _fail(path, f"Modality is {modality or 'missing'}, not NM: not SPECT projections")
    image_type = [str(v).upper() for v in (ds.get("ImageType") or [])]
    kind = image_type[2] if len(image_type) > 2 else ""
    if kind in REFUSED_TYPES:
        raise _fail(path, f"Image Type {kind}: {REFUSED_TYPES[kind]}; spectac reconstructs TOMO projections")
    if kind not in PROJECTION_TYPES:
        raise _fail(path, f"Image Type {'/'.join(image_type) or 'missing'}: not TOMO or GATED TOMO projections")
    if "PixelData" not in ds:
        raise _fail(path, "no pixel data")
    frames = int(ds.get("NumberOfFrames", 1) or 1)
    rotation_items = ds.get("RotationInformationSequence") or []
    if not rotation_items:
        raise _fail(path, "projections without angles (no Rotation Information Sequence)")

    energy = _vector(ds, "EnergyWindowVector", frames, path)
    detector = _vector(ds, "DetectorVector", frames, path)
    rotation = _vector(ds, "RotationVector", frames, path, required=False)
    view = _vector(ds, "AngularViewVector", frames, path)
    slot = _vector(ds, "TimeSlotVector", frames, path, required=kind == "GATED TOMO")
    interval = _vector(ds, "RRIntervalVector", frames, path, required=False)
    rotation = np.ones(frames, np.int64) if rotation is None else rotation
    for keyword, vector, count in (("EnergyWindowVector", energy, "NumberOfEnergyWindows"),
                                   ("DetectorVector", detector, "NumberOfDetectors"),
                                   ("RotationVector", rotation, "NumberOfRotations")):
        declared = ds.get(count)
        if declared is not None and vector.max() > int(declared):
            raise _fail(path, f"{keyword} refers to {vector.max()} but {count} is {int(declared)}")
    if rotation.max() > len(rotation_items):
        raise _fail(path, f"RotationVector refers to rotation {rotation.max()}, the file describes {len(rotation_items)}")

    # one view = one (detector, rotation, angular view); every view must be in every window and gate
    keys = sorted(set(zip(detector.tolist(), rotation.tolist(), view.tolist())))
    n_windows = int(energy.max())
    gates = sorted(set(zip((slot if slot is not None else np.ones(frames, np.int64)).tolist(),
                           (interval if interval is not None else np.ones(frames, np.int64)).tolist())))
    expected = len(keys) * n_windows * len(gates)
    if expected != frames:
        raise _fail(path, f"{frames} frames do not match the vectors ({n_windows} windows x {len(keys)} views x "
                          f"{len(gates)} gates = {expected})")
    windows = _windows(ds, path, n_windows)

    rows, columns = int(ds.Rows), int(ds.Columns)
    spacing = _floats(ds, "PixelSpacing")
    if spacing is None or len(spacing) != 2 or min(spacing) <= 0:
        raise _fail(path, "no valid Pixel Spacing")
    dz, dv = float(spacing[0]), float(spacing[1])  # between rows, between columns

    # angles and radii per view
    angles, radii = [], []
    for det, rot, k in keys:
        det_item = _item(ds, "DetectorInformationSequence", det - 1) or Dataset()
        rot_item = rotation_items[rot - 1]
        kind_of_collimator = str(det_item.get("CollimatorType", "PARA") or "PARA").upper()
        if kind_of_collimator not in ("PARA", ""):
            raise _fail(path, f"collimator type {kind_of_collimator}: spectac models parallel-hole collimators only")
        start = _float(det_item, "StartAngle")
        start = _float(rot_item, "StartAngle") if start is None else start
        step = _float(rot_item, "AngularStep")
        direction = str(rot_item.get("RotationDirection", "") or "").upper()
        if start is None or step is None or direction not in ("CW", "CC", "CCW"):
            raise _fail(path, "projections without angles (Start Angle, Angular Step or Rotation Direction missing)")
        per_rotation = rot_item.get("NumberOfFramesInRotation")
        if per_rotation is not None and k > int(per_rotation):
            raise _fail(path, f"AngularViewVector refers to view {k} of a rotation of {int(per_rotation)} views")
        theta = start + (k - 1) * step if direction in ("CC", "CCW") else start - (k - 1) * step
        angles.append(90.0 - theta)
        radius = _floats(det_item, "RadialPosition")
        radius = _floats(rot_item, "RadialPosition") if radius is None else radius
        if radius is None:
            raise _fail(path, f"no Radial Position for detector {det}: the collimator blur needs the orbit")
        if len(radius) == 1:
            radii.append(float(radius[0]))
        elif k <= len(radius):
            radii.append(float(radius[k - 1]))
        else:
            raise _fail(path, f"detector {det} has {len(radius)} radial positions for view {k}")
    radii_arr = np.asarray(radii)
    offset = _ge_radius_offset(ds, len(keys))
    if offset is not None:
        radii_arr = radii_arr + offset
    # the first view in [-180, 180), the others continuing it (no jump at +-180)
    azimuths = np.unwrap(np.asarray(angles, dtype=np.float64), period=360.0)
    azimuths = azimuths - 360.0 * np.floor((azimuths[0] + 180.0) / 360.0)

    try:
        pixels = ds.pixel_array
    except Exception as exc:
        raise _fail(path, f"unreadable pixel data ({exc.__class__.__name__}: {exc})") from exc
    pixels = np.asarray(pixels).reshape(frames, rows, columns)
    slope = float(ds.get("RescaleSlope", 1) or 1)
    intercept = float(ds.get("RescaleIntercept", 0) or 0)
    counts = np.zeros((n_windows, len(keys), columns, rows), np.float32)
    index = {key: i for i, key in enumerate(keys)}
    for f in range(frames):
        a = index[(int(detector[f]), int(rotation[f]), int(view[f]))]
        counts[energy[f] - 1, a] += (pixels[f][::-1, :].T * slope + intercept).astype(np.float32)

    first_rotation = rotation_items[0]
    first_detector = _item(ds, "DetectorInformationSequence", 0) or Dataset()
    start0 = _float(first_detector, "StartAngle")
    collimators = {str((_item(ds, "DetectorInformationSequence", d - 1) or Dataset()).get("CollimatorGridName", "")
                       or "").strip() for d in np.unique(detector)}
    collimators.discard("")
    if len(collimators) > 1:
        raise _fail(path, f"the detectors carry different collimators ({', '.join(sorted(collimators))})")
    return Acquisition(
        counts=counts,
        azimuths_deg=azimuths,
        radii_mm=radii_arr,
        detectors=np.asarray([k[0] for k in keys]),
        pixel_mm=(dv, dz),
        windows=windows,
        collimator=collimators.pop() if collimators else "",
        manufacturer=str(ds.get("Manufacturer", "") or ""),
        model=str(ds.get("ManufacturerModelName", "") or ""),
        rotation_direction=str(first_rotation.get("RotationDirection", "")),
        start_angle_deg=start0 if start0 is not None else float(_float(first_rotation, "StartAngle") or 0.0),
        frame_of_reference_uid=str(ds.get("FrameOfReferenceUID", "") or ""),
        study_uid=str(ds.get("StudyInstanceUID", "") or ""),
        patient_orientation=_orientation(ds),
        origin_mm=_grid_origin(ds, columns, rows, dv, dz),
        image_type=kind,
        gates=len(gates),
        source=str(path),
    )


def _ge_radius_offset(ds: Dataset, n_views: int) -> np.ndarray | None:
    """GE Xeleris' per-view radius offsets (private (0055,1022) item, (0013,101E): x, y, r per
    view), added as PyTomography does; absent from most files."""
    try:
        values = np.asarray(ds[0x0055, 0x1022][0][0x0013, 0x101E].value, dtype=np.float64).reshape(-1, 3)[:, -1]
    except Exception:
        return None
    return values if len(values) == n_views else None


# ---- writing (vendor-like files for tests and round trips) --------------------------------------
