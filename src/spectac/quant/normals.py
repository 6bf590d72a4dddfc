"""Normal databases: the mean and SD of every polar-map sample over normal patients.

Clinical software keeps separate normal limits for non-corrected and attenuation-corrected images
(their normal uptake patterns differ: NC images show the inferior and anterior attenuation
artefacts that are normal for NC). spectac keeps two method families:

- ``nc``: non-corrected images (method ``nc``), limits built from the NC images of normal patients;
- ``ac``: every attenuation-corrected image: CT-AC (method ``ac``), Chang, and the deep-learning
  methods. They are all meant to reproduce CT-AC, so they are scored against the CT-AC limits,
  built from the CT-AC images of normal patients. A method that fails to reproduce CT-AC then
  shows as perfusion deficits, which is the point of the comparison.

Within a family, limits exist per sex (F, M) and state (rest, stress), plus pooled groups ("all");
a lookup falls back to a pooled group when a group has fewer than ``MIN_STUDIES`` studies.
Normal patients are those of the training split with ``defect_type == "none"``; their polar maps
are made exactly as patients are scored (automatic :func:`~spectac.quant.lv.detect_lv`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from spectac.io.dataset import Dataset
from spectac.io.normals import read_normals_file, write_normals_file
from spectac.progress import track
from spectac.quant.lv import detect_lv
from spectac.quant.polar import N_ANGLES, N_RINGS, polar_map
from spectac.quant.scores import NormalLimits
from spectac.volume import SpectacError

FAMILIES = ("nc", "ac")
SEXES = ("F", "M", "all")
STATES = ("rest", "stress", "all")
MIN_STUDIES = 3
DEFAULT_NORMALS_PATH = Path(__file__).resolve().parents[1] / "data" / "normals" / "default.npz"


def method_family(method: str) -> str:
    """The normal-database family of a method: 'nc' for NC images, 'ac' for every AC method."""
    return "nc" if method == "nc" else "ac"


@dataclass
class NormalDatabase:
    """Normal limits per (family, sex, state); sex and state may be "all" (pooled)."""

    groups: dict[tuple[str, str, str], NormalLimits]
    meta: dict[str, Any] = field(default_factory=dict)

    def limits(self, family: str, sex: str, state: str) -> NormalLimits:
        """The limits for one image, falling back to pooled groups when a group is small."""
        for key in ((family, sex, state), (family, "all", state), (family, sex, "all"), (family, "all", "all")):
            group = self.groups.get(key)
            if group is not None and group.n >= MIN_STUDIES:
                return group
        raise SpectacError(
            f"the normal database has no {family} limits with at least {MIN_STUDIES} studies "
            f"for sex={sex} state={state}"
        )

    def save(self, path: str | Path) -> Path:
        arrays: dict[str, np.ndarray] = {}
        for (family, sex, state), lim in self.groups.items():
            arrays[f"{family}/{sex}/{state}/mean"] = lim.mean.astype(np.float32)
            arrays[f"{family}/{sex}/{state}/sd"] = lim.sd.astype(np.float32)
            arrays[f"{family}/{sex}/{state}/n"] = np.array(lim.n)
        meta = {**self.meta, "layout": [N_RINGS, N_ANGLES]}
        return write_normals_file(path, arrays, meta)

    @classmethod
    def load(cls, path: str | Path | None = None) -> NormalDatabase:
        """Load a normal database; None loads the one shipped with spectac for the default cohort."""
        path = DEFAULT_NORMALS_PATH if path is None else Path(path)
        arrays, meta = read_normals_file(path)
        if meta.get("layout") != [N_RINGS, N_ANGLES]:
            raise SpectacError(f"{path}: polar-map layout {meta.get('layout')} is not {[N_RINGS, N_ANGLES]}; rebuild it")
        groups = {}
        for key in arrays:
            if key.endswith("/mean"):
                family, sex, state, _ = key.split("/")
                prefix = f"{family}/{sex}/{state}"
                groups[(family, sex, state)] = NormalLimits(arrays[key], arrays[f"{prefix}/sd"], int(arrays[f"{prefix}/n"]))
        return cls(groups, meta)


def limits_from_maps(maps: list[np.ndarray]) -> NormalLimits:
    """Mean and SD (ddof=1) of a list of (N_RINGS, N_ANGLES) normal polar maps."""
    stack = np.stack(maps)
    sd = stack.std(axis=0, ddof=1) if len(maps) > 1 else np.zeros_like(stack[0])
    return NormalLimits(stack.mean(axis=0), sd, len(maps))


def database_from_maps(records: list[tuple[str, str, str, np.ndarray]], meta: dict[str, Any] | None = None) -> NormalDatabase:
    """Group (family, sex, state, polar-map values) records into every exact and pooled group."""
    groups: dict[tuple[str, str, str], NormalLimits] = {}
    for family in FAMILIES:
        for sex in SEXES:
            for state in STATES:
                maps = [
                    v for f, s, st, v in records
                    if f == family and sex in (s, "all") and state in (st, "all")
                ]  # fmt: skip
                if maps:
                    groups[(family, sex, state)] = limits_from_maps(maps)
    return NormalDatabase(groups, dict(meta or {}))


def build_normal_database(dataset: Dataset, split: str = "train") -> NormalDatabase:
    """Build NC and AC normal limits from the normal patients of one split of a dataset.

    Every normal study contributes its NC image to the 'nc' family and its CT-AC image to the 'ac'
    family, each through automatic LV detection and the maximal-count polar map.

    Raises:
        SpectacError: when the split holds no normal patients.
    """
    normals = [c for c in dataset.split(split) if c.defect_type == "none"]
    if not normals:
        raise SpectacError(f"{dataset.root}: no normal patients (defect_type none) in split {split!r}")
    records: list[tuple[str, str, str, np.ndarray]] = []
    failed: list[str] = []
    for case in track(normals, "normal database", total=len(normals)):
        for family in FAMILIES:
            volume = dataset.load(case.case_id, family)
            try:
                geom = detect_lv(volume)
            except SpectacError:
                failed.append(f"{case.case_id}/{family}")
                continue
            records.append((family, case.sex, case.state, polar_map(volume, geom).values))
    meta = {
        "dataset": str(dataset.root),
        "split": split,
        "studies": len(normals),
        "patients": len({c.patient_id for c in normals}),
        "detection_failures": failed,
        "simulation": dataset.meta.get("simulation", dataset.meta.get("config")),
    }
    return database_from_maps(records, meta)
