"""``spectac import``: a training dataset from a clinic's pairs of NC and CT-AC SPECT series.

The clinic exports its studies as DICOM into two folders (NC and CT-AC reconstructions; any
layout, one or many series per folder) and optionally a third with the attenuation maps (a CT
series in HU or the vendor's NM mu-map series). Series are paired by Study Instance UID and
Patient ID, and within a study by rest/stress state when a study holds both. Every volume is
resampled onto the NC grid; the result is a dataset (:mod:`spectac.io.dataset`) with ``source: import``.

CT series are converted to mu at 140 keV by :func:`spectac.physics.hu_to_mu`.

A pair whose NC series has a grid or values no SPECT reconstruction has (the checks of
``spectac correct``, :mod:`spectac.correction.checks`: a planar image, a CT-sized matrix, an
oblique short-axis reformat, a header in the wrong unit, a mostly negative volume), or whose AC
series has such values (its grid may differ: it is resampled onto the NC grid), is skipped, not
imported: it is listed in the summary's ``skipped`` entries with the reason, one line each, and the
other pairs are imported. An archive folder often holds such series beside the reconstructions,
and one of them should not stop the import of the rest; when no pair is left the import is refused.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from spectac import resample
from spectac.acquisition.protocol import Protocol
from spectac.correction.checks import check_plausible_geometry, check_plausible_values
from spectac.io.atomic import atomic_dir
from spectac.io.dataset import Case, write_manifest, write_study
from spectac.io.dicom import (
    AC_TEXT,
    MU_TEXT,
    NC_TEXT,
    DicomContext,
    dcmread_checked,
    read_series,
    scan_series,
)
from spectac.io.paths import check_output_outside, regular_files
from spectac.io.pseudonym import DIGITS, create_key, default_key_file, key_id, pseudonym, read_key
from spectac.physics import hu_to_mu
from spectac.progress import track
from spectac.splitting import parse_split, split_patients
from spectac.volume import SpectacError, Volume, to_lps_axes

_STRESS = re.compile(
    r"stress|\bstr\b|\bexercise|adenosine|regadenoson|dipyridamole|dobutamine|lexiscan", re.IGNORECASE
)
_REST = re.compile(r"\brest|\brst\b", re.IGNORECASE)
_MU, _AC, _NC = MU_TEXT, AC_TEXT, NC_TEXT


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
        source = resample.lowpass_for_import(source, volume.spacing, grid.spacing)
    array = resample.onto_grid(source, volume.affine_lps, grid.affine_lps, grid.shape, order)
    return grid.with_array(array.astype(np.float32))


def overlap_fraction(volume: Volume, grid: Volume) -> float:
    """Fraction of the grid's voxel centres that lie inside the volume's field of view."""
    return resample.overlap_fraction(volume.affine_lps, volume.shape, grid.affine_lps, grid.shape)


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
    ds = dcmread_checked(files[0], header_only=True)

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


def _scan(folder: str | Path, what: str, skipped: list[dict[str, str]]) -> list[SeriesInfo]:
    """The series under ``folder``, read from its regular files only (see :func:`regular_files`);
    what was left out is added to ``skipped``."""
    folder = Path(folder)
    if not folder.is_dir():
        raise SpectacError(f"{folder}: no such folder")
    files, left_out = regular_files(folder)
    skipped.extend(s for s in left_out if s not in skipped)  # --nc and --ac may be one folder
    groups = scan_series(folder, files)
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


def _implausible(volume: Volume, what: str, grid: bool = True) -> str | None:
    """Why ``volume`` is no SPECT reconstruction (one line), or None; ``grid=False`` checks the
    values alone (the AC series, resampled onto the NC grid, may come on another grid)."""
    try:
        if grid:
            check_plausible_geometry(volume.shape, volume.spacing, volume.direction, what)
        check_plausible_values(volume.array, what)
    except SpectacError as exc:
        return str(exc)
    return None


def import_dicom_dataset(
    nc_dir: str | Path,
    ac_dir: str | Path,
    out: str | Path,
    mu_dir: str | Path | None = None,
    split: str = "40/40/20",
    seed: int = 0,
    arc: float = 180.0,
    keep_patient_ids: bool = False,
    key_file: str | Path | None = None,
) -> dict[str, Any]:
    """Build a dataset from a clinic's NC and CT-AC DICOM series (see the module docstring).

    Patient IDs are pseudonymised (see :mod:`spectac.io.pseudonym`) with the key in ``key_file``
    (default :func:`~spectac.io.pseudonym.default_key_file`; created, 0600, when missing) unless
    ``keep_patient_ids``; the dataset then holds neither the Patient IDs nor the source paths.

    ``arc`` is the camera orbit of the acquisitions (180 or 360 degrees), stored as the dataset's
    protocol: Chang's correction (and a network's Chang prior) averages over the acquired views.

    Every series is read and checked before anything is written; the dataset folder then appears
    whole (written in a temporary folder and renamed), so a bad series leaves nothing behind.

    Returns:
        {"studies", "patients", "unpaired" (NC series without AC), "skipped" (entries of the input
        folders not read: symbolic links, FIFOs, devices, and series no SPECT camera makes, with
        their pair; each {"path", "reason"}), "folder",
        "key_file" (None with ``keep_patient_ids``), "key_created"}.

    Raises:
        SpectacError: an existing output, no pair found (or none left by the plausibility checks),
            an unreadable series, or an AC/mu series that does not cover the NC volume.
    """
    out = Path(out)
    check_output_outside(out, nc_dir, ac_dir, mu_dir)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise SpectacError(f"{out}: already exists; choose a new dataset folder")
    protocol = Protocol.for_arc(arc)
    proportions = parse_split(split)  # before any series is read
    key_path = Path(key_file).expanduser() if key_file is not None else default_key_file()
    key = None
    if not keep_patient_ids:
        if key_path.resolve() == out.resolve() or out.resolve() in key_path.resolve().parents:
            raise SpectacError(f"{key_path}: the pseudonym key must not lie inside the dataset {out}")
        key = read_key(key_path)  # a bad key file fails before the slow part
    skipped: list[dict[str, str]] = []
    nc_series, ac_series = _scan(nc_dir, "--nc", skipped), _scan(ac_dir, "--ac", skipped)
    if {s.series_uid for s in nc_series} & {s.series_uid for s in ac_series}:
        # One folder holds both: tell NC from AC by Corrected Image (ATTN) and the description.
        nc_series = [s for s in nc_series if s.attenuation_corrected is False]
        ac_series = [s for s in ac_series if s.attenuation_corrected is True]
    mu_series = _scan(mu_dir, "--mu", skipped) if mu_dir is not None else None
    pairs, unpaired = pair_series(nc_series, ac_series, mu_series)
    if not pairs:
        raise SpectacError(
            f"{nc_dir}: no NC series has an AC series of the same study and patient in {ac_dir}"
        )
    read: list[tuple[SeriesInfo, dict[str, Volume]]] = []
    for nc_info, ac_info, mu_info in track(pairs, "import DICOM", total=len(pairs)):
        # stored with array axes along +x, +y, +z of LPS (docs/architecture.md), as the methods expect them
        nc, ac = _read(nc_info, ("NM", "PT"))[0], _read(ac_info, ("NM", "PT"))[0]
        refusals = [(info.where, reason) for info, reason in
                    ((nc_info, _implausible(nc, "NC series")), (ac_info, _implausible(ac, "AC series", grid=False))) if reason]
        if refusals:
            skipped.extend({"path": str(where), "reason": f"{reason}; pair not imported"} for where, reason in refusals)
            continue
        nc, _ = to_lps_axes(nc)
        ac, _ = to_lps_axes(ac)
        if overlap_fraction(ac, nc) < 0.5:
            raise SpectacError(
                f"{ac_info.where}: the AC volume does not cover the NC volume {nc_info.where} (different geometry)"
            )
        volumes = {"nc": nc, "ac": ac if ac.same_grid(nc) else resample_onto(ac, nc, smooth=False)}
        if mu_info is not None:
            volumes["mu"] = _mu_volume(mu_info, nc)
        read.append((nc_info, volumes))
    if not read:
        first = skipped[-1]
        raise SpectacError(f"{nc_dir}: no pair left to import: {len(pairs)} skipped as no SPECT "
                           f"reconstruction, e.g. {first['path']}: {first['reason']}")
    # Every series is read: only now may a missing key be created (a failed import leaves nothing).
    key_created = False
    if not keep_patient_ids and key is None:
        key, key_created = create_key(key_path), True
    names = _patient_names(read, key)
    read.sort(key=lambda item: (names[id(item[0])], item[0].state, item[0].study_uid))
    studies: list[tuple[Case, dict[str, Volume]]] = []
    used_ids: set[str] = set()
    for nc_info, volumes in read:
        base = f"{_safe(names[id(nc_info)])}_{nc_info.state}"
        case_id, k = base, 1
        while case_id in used_ids:
            k += 1
            case_id = f"{base}_{k}"
        used_ids.add(case_id)
        case = Case(
            case_id=case_id,
            patient_id=names[id(nc_info)] or case_id,
            state=nc_info.state,
            sex=nc_info.sex,
            bmi=nc_info.bmi,
        )
        studies.append((case, volumes))
    patients = sorted({c.patient_id for c, _ in studies})  # each patient once, however many studies
    splits = split_patients(patients, proportions, seed)
    for case, _ in studies:
        case.split = splits[case.patient_id]
    settings: dict[str, Any] = {
        "split": split,
        "seed": seed,
        "mu_model": "bilinear 140 keV (spectac.io.importer)",
    }
    if keep_patient_ids:
        settings.update(nc=str(nc_dir), ac=str(ac_dir), mu=None if mu_dir is None else str(mu_dir))
        settings["patient_ids"] = "kept"
    else:
        # No source paths: clinics often name export folders after the patient.
        settings["patient_ids"] = f"pseudonymised: p- and {DIGITS} hex digits of HMAC-SHA256(key, PatientID)"
        settings["key_id"] = key_id(key)
    meta = {"source": "import", "import": settings, "protocol": protocol.to_dict()}
    with atomic_dir(out) as tmp:
        for case, volumes in studies:
            write_study(tmp, case.case_id, volumes)
        write_manifest(tmp, meta, [c for c, _ in studies])
    return {
        "studies": len(studies),
        "patients": len(set(splits)),
        "unpaired": [str(i.where) for i in unpaired],
        "skipped": skipped,
        "folder": out,
        "key_file": None if keep_patient_ids else key_path,
        "key_created": key_created,
    }


def _patient_names(read: list[tuple[SeriesInfo, dict[str, Volume]]], key: bytes | None) -> dict[int, str]:
    """The patient name of each NC series in the dataset (by ``id``): its Patient ID as given when
    ``key`` is None, else the pseudonym of the Patient ID (of the Study Instance UID when the
    series has no Patient ID, so the studies of one visit stay together)."""
    if key is None:
        return {id(info): info.patient_id for info, _ in read}
    names, origin = {}, {}
    for info, _ in read:
        identity = info.patient_id or f"study {info.study_uid}"
        name = pseudonym(identity, key)
        if origin.setdefault(name, identity) != identity:  # 48 bits: never seen, but never silent
            raise SpectacError(f"{info.where}: two patients share the pseudonym {name}; use another key")
        names[id(info)] = name
    return names


__all__ = [
    "import_dicom_dataset",
    "overlap_fraction",
    "pair_series",
    "resample_onto",
    "state_of",
]
