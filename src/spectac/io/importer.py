"""``spectac import``: a training dataset from a clinic's pairs of NC and CT-AC SPECT series.

The clinic exports its studies as DICOM into two folders (NC and CT-AC reconstructions; any
layout, one or many series per folder) and optionally a third with the attenuation maps (a CT
series in HU or the vendor's NM mu-map series). Series are paired by Study Instance UID and
Patient ID, and within a study by rest/stress state when a study holds both. Every volume is
resampled onto the NC grid; the result is a dataset of DESIGN.md with ``source: import``.

CT to mu at 140 keV (bilinear model, after Blankespoor et al. 1996 / Brown et al. 2008):

    mu = MU_WATER * (1 + HU / 1000)                         for HU <= 0  (air-water mixtures)
    mu = MU_WATER + HU * (MU_BONE - MU_WATER) / HU_BONE     for HU > 0   (water-bone mixtures)

with MU_WATER = 0.1537 /cm (water at 140 keV), MU_BONE = 0.2830 /cm (cortical bone, 1.92 g/cm3,
mass attenuation 0.1474 cm2/g at 140 keV) and HU_BONE = 1900 (cortical bone on a 120 kVp CT);
mu is clipped at 0 below -1000 HU. The break at 0 HU exists because above water the CT's
effective energy (~70 keV) sees the photoelectric effect of calcium that 140 keV barely sees.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from scipy import ndimage

from spectac.acquisition.protocol import Protocol
from spectac.io.atomic import atomic_dir
from spectac.io.dataset import Case, write_manifest, write_study
from spectac.io.dicom import DicomContext, _dcmread, read_series, scan_series
from spectac.progress import track
from spectac.splits import parse_split
from spectac.volume import SpectacError, Volume, to_lps_axes

MU_WATER = 0.1537  # 1/cm at 140 keV
MU_BONE = 0.2830  # 1/cm, cortical bone at 140 keV
HU_BONE = 1900.0  # HU of cortical bone at 120 kVp

_STRESS = re.compile(
    r"stress|\bstr\b|\bexercise|adenosine|regadenoson|dipyridamole|dobutamine|lexiscan", re.IGNORECASE
)
_REST = re.compile(r"\brest|\brst\b", re.IGNORECASE)
_MU = re.compile(r"mu.?map|attenuation map|\bmu\b", re.IGNORECASE)
_AC = re.compile(r"\bAC\b|IRAC|CTAC|\bAC_|_AC\b|attenuation corrected", re.IGNORECASE)
_NC = re.compile(r"\bNC\b|IRNC|NOAC|\bNAC\b|\bNC_|_NC\b|non.?corrected|uncorrected", re.IGNORECASE)


def hu_to_mu(hu: np.ndarray) -> np.ndarray:
    """Linear attenuation coefficient at 140 keV (1/cm) from CT numbers (HU), bilinear model."""
    hu = np.asarray(hu, dtype=np.float32)
    mu = np.where(hu <= 0, MU_WATER * (1 + hu / 1000.0), MU_WATER + hu * (MU_BONE - MU_WATER) / HU_BONE)
    return np.clip(mu, 0, None).astype(np.float32)


def mu_to_hu(mu: np.ndarray) -> np.ndarray:
    """The inverse of :func:`hu_to_mu` (for mu >= 0): HU that give these mu at 140 keV."""
    mu = np.asarray(mu, dtype=np.float32)
    hu = np.where(
        mu <= MU_WATER, (mu / MU_WATER - 1) * 1000.0, (mu - MU_WATER) * HU_BONE / (MU_BONE - MU_WATER)
    )
    return hu.astype(np.float32)


def state_of(*texts: str) -> str:
    """'stress', 'rest' or 'unknown' from series/study descriptions and protocol names."""
    text = " ".join(t for t in texts if t)
    stress, rest = bool(_STRESS.search(text)), bool(_REST.search(text))
    if stress and not rest:
        return "stress"
    if rest and not stress:
        return "rest"
    return "unknown"


def resample_onto(volume: Volume, grid: Volume, order: int = 1, smooth: bool = True) -> Volume:
    """Resample a volume onto another's grid (trilinear by default; 0 outside the source).

    Args:
        volume: the source volume, any orientation.
        grid: the target grid (its array is not used).
        order: spline order of the interpolation.
        smooth: low-pass the source first when its voxels are much finer than the target's
            (a 1 mm CT onto a 6.8 mm SPECT grid), so the result is an average and not a sample.
    """
    source = volume.array
    if smooth:
        # Target voxel size seen along each source axis, in source voxels.
        ratio = min(grid.spacing) / np.asarray(volume.spacing)
        sigma = np.where(ratio > 1.5, 0.42 * ratio, 0.0)
        if np.any(sigma > 0):
            source = ndimage.gaussian_filter(source, sigma, mode="nearest")
    matrix = np.linalg.inv(volume.affine_lps) @ grid.affine_lps
    array = ndimage.affine_transform(
        source,
        matrix[:3, :3],
        offset=matrix[:3, 3],
        output_shape=grid.shape,
        order=order,
        mode="constant",
        cval=0.0,
    )
    return grid.with_array(array.astype(np.float32))


def overlap_fraction(volume: Volume, grid: Volume) -> float:
    """Fraction of the grid's voxel centres that lie inside the volume's field of view."""
    matrix = np.linalg.inv(volume.affine_lps) @ grid.affine_lps
    index = np.stack(np.meshgrid(*[np.arange(n) for n in grid.shape], indexing="ij"), axis=-1).reshape(-1, 3)
    inside = index @ matrix[:3, :3].T + matrix[:3, 3]
    ok = np.all((inside >= -0.5) & (inside <= np.asarray(volume.shape) - 0.5), axis=1)
    return float(ok.mean())


@dataclass
class SeriesInfo:
    """Header facts of one series, enough to pair it (pixels are read later)."""

    files: list[Path]
    where: Path
    series_uid: str
    attenuation_corrected: bool | None  # from Corrected Image (ATTN) or the description; None: unknown
    study_uid: str
    patient_id: str
    modality: str
    state: str
    sex: str
    bmi: float | None

    @property
    def key(self) -> tuple[str, str]:
        return (self.study_uid, self.patient_id)


def _series_info(files: list[Path], folder: Path) -> SeriesInfo:
    ds = _dcmread(files[0], header_only=True)

    def text(keyword: str) -> str:
        value = ds.get(keyword, "")
        return "" if value is None else str(value)

    bmi = None
    try:
        weight, height = float(ds.get("PatientWeight") or 0), float(ds.get("PatientSize") or 0)
        if weight > 0 and 0.5 < height < 2.5:
            bmi = weight / height**2
    except (TypeError, ValueError):
        bmi = None
    sex = text("PatientSex").upper()
    where = files[0] if len(files) == 1 else files[0].parent
    return SeriesInfo(
        files=files,
        where=where,
        series_uid=text("SeriesInstanceUID"),
        attenuation_corrected=_attenuation_corrected(ds.get("CorrectedImage"), text("SeriesDescription")),
        study_uid=text("StudyInstanceUID"),
        patient_id=text("PatientID"),
        modality=text("Modality").upper(),
        state=state_of(text("SeriesDescription"), text("StudyDescription"), text("ProtocolName")),
        sex=sex if sex in ("F", "M") else "U",
        bmi=bmi,
    )


def _attenuation_corrected(corrected: Any, description: str) -> bool | None:
    values = [
        str(v).upper() for v in (corrected if isinstance(corrected, (list, tuple)) else [corrected or ""])
    ]
    if _MU.search(description):
        return None  # an attenuation map, not an emission image
    if "ATTN" in values or _AC.search(description):
        return True
    if _NC.search(description):
        return False
    return None


def _scan(folder: str | Path, what: str) -> list[SeriesInfo]:
    folder = Path(folder)
    groups = scan_series(folder)
    if not groups:
        raise SpectacError(f"{folder}: no DICOM series found for {what}")
    return [_series_info(files, folder) for _, files in sorted(groups.items())]


def _pick(candidates: list[SeriesInfo], state: str) -> SeriesInfo | None:
    if len(candidates) == 1:
        return candidates[0]
    same = [c for c in candidates if c.state == state]
    return same[0] if len(same) == 1 else None


def pair_series(
    nc: list[SeriesInfo], ac: list[SeriesInfo], mu: list[SeriesInfo] | None = None
) -> tuple[list[tuple[SeriesInfo, SeriesInfo, SeriesInfo | None]], list[SeriesInfo]]:
    """Pair NC with AC (and mu) series of the same study and patient.

    Returns:
        (pairs, unpaired): (nc, ac, mu or None) triples, and the NC series left without an AC.
    """
    by_key_ac: dict[tuple[str, str], list[SeriesInfo]] = {}
    for info in ac:
        by_key_ac.setdefault(info.key, []).append(info)
    by_key_mu: dict[tuple[str, str], list[SeriesInfo]] = {}
    for info in mu or []:
        by_key_mu.setdefault(info.key, []).append(info)
    pairs, unpaired = [], []
    for info in nc:
        candidates = [c for c in by_key_ac.get(info.key, []) if c.series_uid != info.series_uid]
        partner = _pick(candidates, info.state)
        if partner is None:
            unpaired.append(info)
            continue
        mu_candidates = by_key_mu.get(info.key, [])
        mu_info = _pick(mu_candidates, info.state) or (mu_candidates[0] if mu_candidates else None)
        pairs.append((info, partner, mu_info))
    return pairs, unpaired


def _split_patients(patients: list[str], parts: tuple[float, float, float], seed: int) -> dict[str, str]:
    order = np.random.default_rng(seed).permutation(sorted(patients))
    n = len(order)
    bounds = np.round(np.cumsum(parts) / sum(parts) * n).astype(int)
    names = ("train", "val", "test")
    return {str(p): names[int(np.searchsorted(bounds, i, side="right"))] for i, p in enumerate(order)}


def _safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_-]+", "-", text).strip("-") or "x"


def _read(info: SeriesInfo, allowed: tuple[str, ...]) -> tuple[Volume, DicomContext]:
    return read_series(info.files, info.where, allowed)


def _mu_volume(info: SeriesInfo, grid: Volume) -> Volume:
    if info.modality == "CT":
        ct, _ = _read(info, ("CT",))
        mu = ct.with_array(hu_to_mu(ct.array))
    else:
        mu, _ = _read(info, ("NM", "PT"))
        # Vendor mu-maps store 1/cm, some scaled by 10^4 as integers (Siemens); water is ~0.15.
        if float(np.percentile(mu.array, 99.5)) > 5:
            mu = mu.with_array(mu.array / 10000.0)
        mu = mu.with_array(np.clip(mu.array, 0, None))
    if overlap_fraction(mu, grid) < 0.5:
        raise SpectacError(f"{info.where}: the mu-map does not cover the NC volume (different geometry)")
    return resample_onto(mu, grid)


def import_dicom_dataset(
    nc_dir: str | Path,
    ac_dir: str | Path,
    out: str | Path,
    mu_dir: str | Path | None = None,
    split: str = "40/40/20",
    seed: int = 0,
    arc: float = 180.0,
) -> dict[str, Any]:
    """Build a dataset from a clinic's NC and CT-AC DICOM series (see the module docstring).

    ``arc`` is the camera orbit of the acquisitions (180 or 360 degrees), stored as the dataset's
    protocol: Chang's correction (and a network's Chang prior) averages over the acquired views.

    Every series is read and checked before anything is written; the dataset folder then appears
    whole (written in a temporary folder and renamed), so a bad series leaves nothing behind.

    Returns:
        {"studies", "patients", "unpaired" (NC series without AC), "folder"}.

    Raises:
        SpectacError: an existing output, no pair found, an unreadable series, or an AC/mu series
            that does not cover the NC volume.
    """
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise SpectacError(f"{out}: already exists; choose a new dataset folder")
    protocol = Protocol.for_arc(arc)
    proportions = parse_split(split)  # before any series is read
    nc_series, ac_series = _scan(nc_dir, "--nc"), _scan(ac_dir, "--ac")
    if {s.series_uid for s in nc_series} & {s.series_uid for s in ac_series}:
        # One folder holds both: tell NC from AC by Corrected Image (ATTN) and the description.
        nc_series = [s for s in nc_series if s.attenuation_corrected is False]
        ac_series = [s for s in ac_series if s.attenuation_corrected is True]
    mu_series = _scan(mu_dir, "--mu") if mu_dir is not None else None
    pairs, unpaired = pair_series(nc_series, ac_series, mu_series)
    pairs.sort(key=lambda triple: (triple[0].patient_id, triple[0].state, triple[0].study_uid))
    if not pairs:
        raise SpectacError(
            f"{nc_dir}: no NC series has an AC series of the same study and patient in {ac_dir}"
        )
    studies: list[tuple[Case, dict[str, Volume]]] = []
    used_ids: set[str] = set()
    for nc_info, ac_info, mu_info in track(pairs, "import DICOM", total=len(pairs)):
        # stored with array axes along +x, +y, +z of LPS (DESIGN.md), as the methods expect them
        nc, _ = to_lps_axes(_read(nc_info, ("NM", "PT"))[0])
        ac, _ = to_lps_axes(_read(ac_info, ("NM", "PT"))[0])
        if overlap_fraction(ac, nc) < 0.5:
            raise SpectacError(
                f"{ac_info.where}: the AC volume does not cover the NC volume {nc_info.where} (different geometry)"
            )
        volumes = {"nc": nc, "ac": ac if ac.same_grid(nc) else resample_onto(ac, nc, smooth=False)}
        if mu_info is not None:
            volumes["mu"] = _mu_volume(mu_info, nc)
        base = f"{_safe(nc_info.patient_id)}_{nc_info.state}"
        case_id, k = base, 1
        while case_id in used_ids:
            k += 1
            case_id = f"{base}_{k}"
        used_ids.add(case_id)
        case = Case(
            case_id=case_id,
            patient_id=nc_info.patient_id or case_id,
            state=nc_info.state,
            sex=nc_info.sex,
            bmi=nc_info.bmi,
        )
        studies.append((case, volumes))
    splits = _split_patients([c.patient_id for c, _ in studies], proportions, seed)
    for case, _ in studies:
        case.split = splits[case.patient_id]
    meta = {
        "source": "import",
        "import": {
            "nc": str(nc_dir),
            "ac": str(ac_dir),
            "mu": None if mu_dir is None else str(mu_dir),
            "split": split,
            "seed": seed,
            "mu_model": "bilinear 140 keV (spectac.io.importer)",
        },
        "protocol": protocol.to_dict(),
    }
    with atomic_dir(out) as tmp:
        for case, volumes in studies:
            write_study(tmp, case.case_id, volumes)
        write_manifest(tmp, meta, [c for c, _ in studies])
    return {
        "studies": len(studies),
        "patients": len(set(splits)),
        "unpaired": [str(i.where) for i in unpaired],
        "folder": out,
    }


__all__ = [
    "hu_to_mu",
    "import_dicom_dataset",
    "mu_to_hu",
    "overlap_fraction",
    "pair_series",
    "resample_onto",
    "state_of",
]
