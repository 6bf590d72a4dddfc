"""Out-of-distribution warnings: is a study like the data the correction was trained on?

spectac's networks are trained only on simulated 180-degree LEHR parallel-hole studies (64^3 at
6.8 mm, 3-4 M counts; the model's ``config.json`` ``data`` block says which). A study from another
kind of camera (a CZT or pinhole cardiac camera), another grid or count level, a body cut by the
field of view or an image without a recognisable LV is still corrected, but :func:`ood_flags` says
why the result may not be trusted, one short sentence per reason (docs/models.md, "Out-of-
distribution warnings"). The thresholds are deliberately loose: a flag means "unlike anything the
model has seen", not "slightly unusual".
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np
from scipy import ndimage

from spectac.volume import Volume

#: The training data of the classical methods and of a model without a ``data`` block: spectac's
#: default simulation (spectac.acquisition.protocol.Protocol, spectac simulate).
DEFAULT_TRAINING = {"shape": [64, 64, 64], "spacing_mm": [6.8, 6.8, 6.8],
                    "protocol": {"arc_deg": 180.0, "matrix": 64, "pixel_mm": 6.8, "counts": 4.0e6,
                                 "collimator": {"hole_mm": 1.5, "length_mm": 35.0}}}

#: Camera names (Manufacturer, ManufacturerModelName, collimator fields) of the CZT, pinhole and
#: dedicated cardiac cameras: GE Discovery NM 530c / 570c (CZT, pinhole), Spectrum Dynamics
#: D-SPECT and VERITON (CZT, rotating parallel columns), GE Alcyone. Their resolution, sensitivity
#: and truncated field are nothing like the simulated LEHR camera.
CARDIAC_CAMERA = re.compile(r"CZT|pinhole|\b5[37]0c?\b|D-?SPECT|spectrum\s*dynamics|alcyone|veriton", re.I)
#: DICOM Collimator Type (0018,1181) defined terms other than PARA (parallel): pinhole, fan, cone,
#: slant, astigmatic, diverging, converging.
NON_PARALLEL = {"PINH", "FANB", "CONE", "SLNT", "ASTG", "DIVG", "CONV"}
#: Collimator names of medium/high energy collimators (not LEHR-like: thicker septa, lower
#: resolution, another point spread).
NON_LEHR_NAME = re.compile(r"\b(ME|HE|UHE|MEGP|HEGP|MELP|MEHS|HEHR)\b|medium|high\s*energy", re.I)

#: Voxel size: more than 25% from the training spacing changes the blur and the noise per voxel
#: beyond what the intensity/shift augmentation covered (clinical 6.4-6.8 mm grids stay within).
MAX_SPACING_DEVIATION = 0.25
#: Field of view: a transaxial extent below 70% of the training one (435 mm) is a small cardiac
#: field (the 530c's 70 x 4 mm = 280 mm); the network learned the attenuation of a whole chest
#: cross-section. Axially clinical studies are often cropped, so only below 40% is flagged.
MIN_TRANSAXIAL_FOV = 0.70
MIN_AXIAL_FOV = 0.40
#: Total counts: the training studies hold about 0.6-1.5x ``protocol.counts`` (simulate draws
#: around it, never below 0.3x); below 0.3x or above 3x the noise is unlike any training study. The
#: sum of the voxel values is compared: a count-preserving reconstruction keeps the acquired total
#: whatever the voxel size (values in Bq/mL or other units also end up here).
MIN_COUNT_RATIO, MAX_COUNT_RATIO = 0.3, 3.0
#: Body cut: the fraction of the voxels on the four transaxial faces inside the body outline. A
#: large simulated patient touches them (up to about 6% in the training cohort); a body cut by a
#: small field covers much more of them.
MAX_BODY_ON_FACES = 0.15
#: LV / background contrast (LV wall 95th percentile / body median): 7.5-17 on 28 simulated NC
#: studies (rest and stress); outside 3-35 (about half the lowest, twice the highest) the uptake
#: pattern is unlike training.
LV_CONTRAST_RANGE = (3.0, 35.0)


def training_reference(state: Any) -> dict[str, Any]:
    """What a prepared method was trained on: the ``data`` block of a loaded network's config
    (:class:`spectac.correction.deep.DeepModel`, whatever weights file it came from), or
    :data:`DEFAULT_TRAINING` for the classical methods (nc, Chang), which are compared with the
    default simulation."""
    data = getattr(state, "config", {}).get("data") if isinstance(getattr(state, "config", None), dict) else None
    if isinstance(data, dict) and data.get("shape") and data.get("spacing_mm"):
        return data
    return DEFAULT_TRAINING


def _header_text(header: Any, keyword: str) -> list[str]:
    """Values of a keyword at the top level of a header (pydicom Dataset or dict) and in its
    Detector Information Sequence items (where NM puts the collimator)."""
    if header is None:
        return []
    values = [header.get(keyword)]
    for item in header.get("DetectorInformationSequence", None) or []:
        values.append(item.get(keyword))
    return [str(v).strip() for v in values if v is not None and str(v).strip()]


def camera_flags(header: Any) -> list[str]:
    """A CZT/pinhole/cardiac camera or a non-LEHR collimator named in the DICOM header."""
    flags = []
    names = [*_header_text(header, "Manufacturer"), *_header_text(header, "ManufacturerModelName")]
    collimators = [*_header_text(header, "CollimatorGridName"), *_header_text(header, "CollimatorType")]
    camera = " ".join(dict.fromkeys(names))
    if any(CARDIAC_CAMERA.search(v) for v in names + collimators):
        flags.append(f"camera {camera or '(unnamed)'} is a CZT/pinhole cardiac camera; "
                     "the model was trained on parallel-hole LEHR data only")
    odd = sorted({v for v in _header_text(header, "CollimatorType") if v.upper() in NON_PARALLEL}
                 | {v for v in _header_text(header, "CollimatorGridName") if NON_LEHR_NAME.search(v)})
    if odd and not flags:
        flags.append(f"collimator {', '.join(odd)} is not LEHR-like parallel-hole; the model was trained on LEHR only")
    return flags


def _axial_axis(volume: Volume) -> int:
    """The array axis closest to the patient's head-foot (LPS z) direction."""
    return int(np.argmax(np.abs(np.asarray(volume.direction)[2, :])))


def grid_flags(volume: Volume, training: dict[str, Any]) -> list[str]:
    """Voxel size and field of view against the training grid."""
    flags = []
    spacing = np.asarray(volume.spacing, float)
    ref_spacing = np.asarray(training["spacing_mm"], float)
    ref_extent = np.asarray(training["shape"], float) * ref_spacing
    deviation = np.abs(spacing / ref_spacing - 1)
    if deviation.max() > MAX_SPACING_DEVIATION:
        flags.append(f"voxels of {'x'.join(f'{s:g}' for s in spacing)} mm differ by {deviation.max():.0%} "
                     f"from the {ref_spacing[0]:g} mm of the training data")
    extent = np.asarray(volume.shape, float) * spacing
    axial = _axial_axis(volume)
    ratio = extent / ref_extent
    transaxial = min(ratio[i] for i in range(3) if i != axial)
    if transaxial < MIN_TRANSAXIAL_FOV or ratio[axial] < MIN_AXIAL_FOV:
        flags.append(f"field of view {'x'.join(f'{e:.0f}' for e in extent)} mm is much smaller than the "
                     f"training {ref_extent[0]:.0f} mm (a small cardiac field?)")
    return flags


def count_flags(volume: Volume, training: dict[str, Any]) -> list[str]:
    """Total counts (sum of the voxel values) against the training count level."""
    expected = float(training.get("protocol", {}).get("counts") or DEFAULT_TRAINING["protocol"]["counts"])
    total = float(np.clip(np.asarray(volume.array, np.float64), 0, None).sum())
    ratio = total / expected
    if not MIN_COUNT_RATIO <= ratio <= MAX_COUNT_RATIO:
        return [f"total counts {total:.3g} are {ratio:.2g}x the training level {expected:.3g} "
                f"(trained on {MIN_COUNT_RATIO:g}-{MAX_COUNT_RATIO:g}x)"]
    return []


def body_on_faces(mask: np.ndarray, axial: int) -> float:
    """Fraction of the voxels on the four faces along the transaxial axes that are inside the body."""
    faces = []
    for axis in range(3):
        if axis != axial:
            faces += [np.take(mask, 0, axis=axis).ravel(), np.take(mask, -1, axis=axis).ravel()]
    return float(np.concatenate(faces).mean())


def lv_contrast(volume: Volume, body: np.ndarray) -> float:
    """LV wall (95th percentile within the fitted LV) over the body median; raises when no LV."""
    from spectac.quant.lv import detect_lv

    geom = detect_lv(volume)
    array = np.clip(np.asarray(volume.array, np.float64), 0, None)
    smooth = ndimage.gaussian_filter(array, [6.0 / s for s in volume.spacing])
    # the ball lies within reach / spacing voxels of its centre along each array axis (the
    # direction cosines are orthonormal): only that box of the grid is measured
    reach = geom.radius_mm + geom.wall_mm
    centre = np.rint(volume.index_of(geom.center_mm)).astype(int)
    steps = np.ceil(reach / np.asarray(volume.spacing)).astype(int) + 1
    box = tuple(slice(max(c - r, 0), max(c + r + 1, 0)) for c, r in zip(centre, steps))
    near = np.linalg.norm(volume.world_coordinates(box) - geom.center_mm, axis=-1) <= reach
    background = float(np.median(array[body])) if body.any() else 0.0
    if not near.any() or background <= 0:
        return float("nan")
    return float(np.percentile(smooth[box][near], 95)) / background


def image_flags(volume: Volume) -> list[str]:
    """A body cut by the field of view; the LV missing or of unusual contrast."""
    from spectac.correction.chang import body_contour
    from spectac.errors import SpectacError

    flags = []
    try:
        body = body_contour(volume.array, volume.spacing)
    except SpectacError:
        return ["no body outline found in the image"]
    on_faces = body_on_faces(body, _axial_axis(volume))
    if on_faces > MAX_BODY_ON_FACES:
        flags.append(f"the body is cut by the field of view ({on_faces:.0%} of the side faces inside it); "
                     "the model was trained on whole chest cross-sections")
    try:
        contrast = lv_contrast(volume, body)
    except (SpectacError, ValueError, np.linalg.LinAlgError):
        return [*flags, "LV not found"]
    low, high = LV_CONTRAST_RANGE
    if not low <= contrast <= high:
        flags.append(f"LV/background contrast {contrast:.3g} is outside the training range {low:g}-{high:g}")
    return flags


def ood_flags(volume: Volume, header_info: Any = None, model: dict[str, Any] | None = None) -> list[str]:
    """Why a study is unlike the training data of the model, one short sentence each ([]: like it).

    Args:
        volume: the NC study as read (any axis-aligned orientation, counts).
        header_info: the DICOM header (pydicom Dataset or dict), or None (NIfTI).
        model: the ``data`` block of the model's config.json (:func:`training_reference`);
            None: :data:`DEFAULT_TRAINING`.
    """
    training = model or DEFAULT_TRAINING
    return [*camera_flags(header_info), *grid_flags(volume, training), *count_flags(volume, training),
            *image_flags(volume)]


#: DICOM Image Comments (0020,4000) is LT: at most 10240 characters.
IMAGE_COMMENTS_MAX = 10240
OOD_PREFIX = "spectac OOD: "


def ood_comments(existing: str, flags: list[str]) -> str:
    """Image Comments with "spectac OOD: <flags>" appended to the existing ones, within the LT
    limit: the existing text is shortened first, so the OOD mark always stays whole at the front
    of its part (the flags themselves are cut only when they alone exceed the limit)."""
    if not flags:
        return existing
    mark = (OOD_PREFIX + "; ".join(flags))[:IMAGE_COMMENTS_MAX]
    if not existing:
        return mark
    room = IMAGE_COMMENTS_MAX - len(mark) - 1
    return f"{existing[:room]} {mark}" if room > 0 else mark


def sidecar_path(output: str | Path) -> Path:
    """``<output>.json`` next to a NIfTI output (``study.nii.gz`` -> ``study.nii.gz.json``)."""
    from spectac.io.nifti import sidecar_path as nifti_sidecar_path

    return nifti_sidecar_path(output)


def write_ood_sidecar(output: str | Path, flags: list[str]) -> Path | None:
    """Write the flags of a NIfTI output to its sidecar JSON, atomically; without flags, remove
    the sidecar an earlier flagged output of that name left (only one spectac wrote)."""
    from spectac.io.nifti import write_sidecar

    return write_sidecar(output, "spectac_ood_flags", flags)
