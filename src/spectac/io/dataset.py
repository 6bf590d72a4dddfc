"""The on-disk dataset (docs/architecture.md): dataset.json, cases.csv and one folder per study.

```
DATASET/
  dataset.json        format version, how it was made
  cases.csv           a row per study (see CASE_COLUMNS)
  studies/<case_id>/  nc.nii.gz, ac.nii.gz, and when known mu.nii.gz, truth.nii.gz, lv.json,
                      projections.npz (the counts of every energy window of a simulated study),
                      scatter.nii.gz (the scatter-window image, derived from projections.npz: the
                      simulator writes it, training adds it when missing), ac_expected.nii.gz
                      (``spectac simulate --expected-ac``: CT-AC of the expected counts)
```
Simulated and imported data meet here: everything downstream reads studies through
:class:`Dataset` and never knows where a study came from.
"""

from __future__ import annotations

import csv
import io as _io
import json
import re
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from spectac.io.atomic import atomic_dir, write_text_atomic
from spectac.io.nifti import STUDY_DESCRIPTIONS, read_nifti, read_nifti_header, write_nifti
from spectac.io.window_projections import FILE_NAME as PROJECTIONS_FILE
from spectac.io.window_projections import read_window_projections, window_projections_bytes
from spectac.volume import SpectacError, Volume

FORMAT_VERSION = 1
VOLUME_NAMES = ("nc", "ac", "mu", "truth", "scatter", "ac_expected")
#: Study volumes derived from the others, which may be added to an existing study folder (a cache).
DERIVED_NAMES = ("scatter",)
SPLITS = ("train", "val", "test")


@dataclass
class Case:
    """One study (a row of cases.csv). Defect fields are empty for imported clinical data.

    ``defect_type`` is "none", "ischemia" (stress defect only), "infarct" (rest and stress) or
    "mixed" (scar with ischaemia), several joined by "+" for multivessel disease;
    ``defect_territory`` is LAD, LCx or RCA, or several joined by "+"; ``defect_severity`` is the
    largest fractional count reduction of a defect core in this study (0 where this study shows no
    defect). The acquisition columns (added later, empty in older files): ``stress_type``
    (exercise | vasodilator), ``dose_protocol`` (one-day | two-day), ``orbit_deg`` (180 | 360),
    ``collimator`` (a key of spectac.acquisition.collimators, e.g. GE-LEHR).
    """

    case_id: str
    patient_id: str
    state: str  # rest | stress
    sex: str  # F | M
    bmi: float | None = None
    defect_type: str = ""
    defect_territory: str = ""
    defect_severity: float | None = None
    defect_extent: float | None = None  # fraction of the LV myocardium inside the defect
    split: str = ""
    stress_type: str = ""
    dose_protocol: str = ""
    orbit_deg: float | None = None
    collimator: str = ""

    @property
    def has_defect(self) -> bool | None:
        """Whether this study shows a perfusion defect (None when unknown)."""
        if self.defect_type == "":
            return None
        return bool(self.defect_severity and self.defect_severity > 0)


CASE_COLUMNS = tuple(f.name for f in fields(Case))


_UNSAFE_CHARS = re.compile(r"[\x00-\x1f\x7f/\\:]")


def check_case_id(case_id: str, where: str) -> str:
    """A case id names a folder (studies/<case_id>, and the study's folder in a run): it must be
    one plain path component. Refuses empty, ".", "..", hidden (".x"), absolute or separated
    ("a/b", "a\\b", "C:x") ids and control characters, which would write outside the folder."""
    if not case_id or case_id != case_id.strip() or case_id.startswith(".") or _UNSAFE_CHARS.search(case_id):
        raise SpectacError(
            f"{where}: case_id {case_id!r} is not a plain folder name "
            "(no path separators, no leading dot, no control characters, no surrounding spaces)"
        )
    return case_id


def _parse_case(row: dict[str, str], where: str) -> Case:
    missing = [c for c in ("case_id", "patient_id", "state", "sex") if not row.get(c)]
    if missing:
        raise SpectacError(f"{where}: row without {', '.join(missing)}")
    check_case_id(row["case_id"], where)

    def num(key: str) -> float | None:
        value = row.get(key, "")
        if value in ("", None):
            return None
        try:
            return float(value)
        except ValueError as exc:
            raise SpectacError(f"{where}: {key}={value!r} is not a number") from exc

    return Case(
        case_id=row["case_id"],
        patient_id=row["patient_id"],
        state=row["state"],
        sex=row["sex"],
        bmi=num("bmi"),
        defect_type=row.get("defect_type", "") or "",
        defect_territory=row.get("defect_territory", "") or "",
        defect_severity=num("defect_severity"),
        defect_extent=num("defect_extent"),
        split=row.get("split", "") or "",
        stress_type=row.get("stress_type", "") or "",
        dose_protocol=row.get("dose_protocol", "") or "",
        orbit_deg=num("orbit_deg"),
        collimator=row.get("collimator", "") or "",
    )


def cases_to_csv(cases: list[Case]) -> str:
    buffer = _io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=CASE_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for case in cases:
        row = asdict(case)
        writer.writerow({k: ("" if v is None else (f"{v:.6g}" if isinstance(v, float) else v)) for k, v in row.items()})
    return buffer.getvalue()


class Dataset:
    """A dataset folder, opened for reading. Nothing is read behind the caller's back except
    dataset.json and cases.csv at opening."""

    def __init__(self, root: Path, meta: dict[str, Any], cases: list[Case]) -> None:
        self.root = root
        self.meta = meta
        self.cases = cases
        self._by_id = {c.case_id: c for c in cases}

    @classmethod
    def open(cls, root: str | Path) -> Dataset:
        root = Path(root)
        meta_path, cases_path = root / "dataset.json", root / "cases.csv"
        if not root.is_dir():
            raise SpectacError(f"{root}: no such dataset folder")
        for path in (meta_path, cases_path):
            if not path.is_file():
                raise SpectacError(f"{path}: missing; is {root} a spectac dataset?")
        try:
            meta = json.loads(meta_path.read_text())
        except json.JSONDecodeError as exc:
            raise SpectacError(f"{meta_path}: not valid JSON ({exc})") from exc
        if meta.get("format_version") != FORMAT_VERSION:
            raise SpectacError(f"{meta_path}: format_version {meta.get('format_version')} is not {FORMAT_VERSION}")
        cases: list[Case] = []
        first_line: dict[str, int] = {}
        with cases_path.open(newline="") as f:
            reader = csv.DictReader(f)
            for row in reader:
                line = reader.line_num  # the physical line, also after quoted newlines
                case = _parse_case(row, f"{cases_path} line {line}")
                if case.case_id in first_line:
                    raise SpectacError(
                        f"{cases_path} line {line}: duplicate case_id {case.case_id!r} (first on line "
                        f"{first_line[case.case_id]})"
                    )
                first_line[case.case_id] = line
                cases.append(case)
        return cls(root, meta, cases)

    def case(self, case_id: str) -> Case:
        try:
            return self._by_id[case_id]
        except KeyError:
            raise SpectacError(f"{self.root}: no case {case_id!r}") from None

    def split(self, name: str | None) -> list[Case]:
        """The cases of one split ('train', 'val', 'test'), or all cases for None/'all'."""
        if name in (None, "all"):
            return list(self.cases)
        if name not in SPLITS:
            raise SpectacError(f"unknown split {name!r}; choose from {', '.join(SPLITS)} or all")
        return [c for c in self.cases if c.split == name]

    def study_dir(self, case_id: str) -> Path:
        return self.root / "studies" / case_id

    def path(self, case_id: str, name: str) -> Path:
        return self.study_dir(case_id) / f"{name}.nii.gz"

    def has(self, case_id: str, name: str) -> bool:
        return self.path(case_id, name).is_file()

    def load(self, case_id: str, name: str) -> Volume:
        """Load one volume ('nc', 'ac', 'mu', 'truth', 'scatter' or 'ac_expected') of a study."""
        path = self.path(case_id, name)
        if not path.is_file():
            raise SpectacError(f"{path}: missing study volume")
        return read_nifti(path)

    def description(self, case_id: str, name: str) -> str:
        """The NIfTI description of one study volume (without reading its voxels)."""
        return read_nifti_header(self.path(case_id, name)).descrip

    def write_derived(self, case_id: str, name: str, volume: Volume) -> Path:
        """Add (or replace, atomically) a volume derived from the study's own files, e.g. the
        scatter-window image (:data:`DERIVED_NAMES`); the study's original files are never touched."""
        if name not in DERIVED_NAMES:
            raise ValueError(f"{name!r} is no derived study volume ({', '.join(DERIVED_NAMES)})")
        if not self.study_dir(case_id).is_dir():
            raise SpectacError(f"{self.study_dir(case_id)}: no such study folder")
        return write_nifti(volume, self.path(case_id, name), descrip=STUDY_DESCRIPTIONS[name])

    def projections(self, case_id: str) -> tuple[dict[str, Any], dict[str, tuple[float, float]]]:
        """The energy-window projections of a study (counts per window, keV bounds per window);
        see :mod:`spectac.io.window_projections`."""
        return read_window_projections(self.study_dir(case_id) / PROJECTIONS_FILE)

    def lv(self, case_id: str) -> dict[str, Any] | None:
        """The LV geometry and defect truth of a simulated study, or None."""
        path = self.study_dir(case_id) / "lv.json"
        return json.loads(path.read_text()) if path.is_file() else None


def has_manifest(root: str | Path) -> bool:
    """Whether a folder already holds a dataset's dataset.json."""
    return (Path(root) / "dataset.json").exists()


def study_is_complete(root: str | Path, case_id: str) -> bool:
    """A study folder exists only when whole (written atomically), so existence means complete."""
    study = Path(root) / "studies" / case_id
    return (study / "nc.nii.gz").is_file() and (study / "ac.nii.gz").is_file()


def write_study(
    root: str | Path,
    case_id: str,
    volumes: dict[str, Volume],
    lv: dict[str, Any] | None = None,
    projections: tuple[dict[str, Any], dict[str, tuple[float, float]]] | None = None,
) -> Path:
    """Write a study folder atomically: it appears with all its files or not at all.

    ``projections``: (counts per energy window, keV bounds per window) for projections.npz.
    """
    for name in volumes:
        if name not in VOLUME_NAMES:
            raise ValueError(f"unknown study volume {name!r}")
    if "nc" not in volumes or "ac" not in volumes:
        raise ValueError("a study needs at least nc and ac")
    check_case_id(case_id, f"{root}: study")
    final = Path(root) / "studies" / case_id
    with atomic_dir(final) as tmp:
        for name, volume in volumes.items():
            write_nifti(volume, tmp / f"{name}.nii.gz", descrip=STUDY_DESCRIPTIONS.get(name, ""))
        if lv is not None:
            (tmp / "lv.json").write_text(json.dumps(lv, indent=1))
        if projections is not None:
            (tmp / PROJECTIONS_FILE).write_bytes(window_projections_bytes(*projections))
    return final


def write_manifest(root: str | Path, meta: dict[str, Any], cases: list[Case]) -> None:
    """Write dataset.json and cases.csv (each atomically)."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    meta = {"format_version": FORMAT_VERSION, **meta}
    write_text_atomic(root / "dataset.json", json.dumps(meta, indent=1, default=str))
    write_text_atomic(root / "cases.csv", cases_to_csv(cases))


def check_writable_dataset_folder(root: str | Path) -> None:
    """Create the dataset folder if needed and make sure a file can be written in it."""
    root = Path(root)
    try:
        root.mkdir(parents=True, exist_ok=True)
        probe = root / ".spectac-write-test"
        probe.write_text("")
        probe.unlink()
    except OSError as exc:
        raise SpectacError(f"{root}: cannot write the dataset here ({exc.strerror or exc})") from exc


def check_same_dataset(root: str | Path, meta: dict[str, Any],
                       keys: tuple[str, ...] = ("source", "seed", "patients", "config")) -> None:
    """A folder holding another dataset must not be mixed with this one: the ``keys`` of its
    dataset.json, when there is one, must equal those of ``meta``."""
    root = Path(root)
    path = root / "dataset.json"
    if not path.exists():
        return
    try:
        old = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise SpectacError(f"{path}: exists but is not valid JSON; choose another --out") from exc
    if any(json.dumps(old.get(k), sort_keys=True, default=str) != json.dumps(meta.get(k), sort_keys=True, default=str) for k in keys):
        raise SpectacError(f"{root}: holds a different dataset ({old.get('source', 'unknown source')}, other seed, "
                           "size, phantom or settings); choose another --out")


def recorded_mu_shift(dataset: Dataset, case_id: str) -> tuple[float, float, float]:
    """The CT-SPECT misregistration (mm) the simulator applied to a study's stored mu-map, or zeros
    (imported studies, older datasets)."""
    lv = dataset.lv(case_id) or {}
    shift = (lv.get("phantom") or {}).get("mu_shift_mm") or (0.0, 0.0, 0.0)
    return tuple(float(v) for v in shift)
