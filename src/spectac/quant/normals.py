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

Building the limits of a group (:func:`limits_from_maps`):

1. each map starts from its robust maximum normalisation (:func:`~spectac.quant.polar.polar_map`);
2. iterative normalisation to the normal mean (Slomka et al., J Nucl Cardiol 2005), leave one
   out: ``NORMALISE_ROUNDS`` times, every map is normalised
   (:func:`~spectac.quant.scores.normalise_to_limits`) to the mean and SD of the *other* maps of
   the group, as a new patient is normalised to limits it is not part of; the limits are the mean
   and SD (ddof = 1) of the normalised maps;
3. quality check (:func:`quality_check`, groups of at least ``QC_MIN_STUDIES``): a map is rejected
   when its area-weighted mean |robust z| against the leave-one-out median of its group (robust SD
   1.4826 x MAD, floored at the scores' SD floor) is an outlier among the group's maps (above
   their median + ``QC_OUTLIER_MADS`` x 1.4826 x MAD and above ``QC_MIN_RATIO`` x the median), or
   when more than ``QC_MAX_EXTRACARDIAC`` of its LV is extracardiac. Rejected studies and why go
   to ``meta["rejected"]``; the limits are then rebuilt without them.
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
from spectac.quant.polar import N_ANGLES, N_RINGS, PolarMap, polar_map
from spectac.quant.scores import SD_FLOOR, NormalLimits, normalise_to_limits
from spectac.volume import SpectacError

FAMILIES = ("nc", "ac")
SEXES = ("F", "M", "all")
STATES = ("rest", "stress", "all")
MIN_STUDIES = 3
NORMALISE_ROUNDS = 3
QC_MIN_STUDIES = 6
QC_OUTLIER_MADS = 3.5
QC_MIN_RATIO = 1.5
QC_MAX_EXTRACARDIAC = 0.25
DEFAULT_NORMALS_PATH = Path(__file__).resolve().parents[1] / "data" / "normals" / "default.npz"


def method_family(method: str) -> str:
    """The normal-database family of a method: 'nc' for NC images, 'ac' for every AC method."""
    return "nc" if method == "nc" else "ac"


@dataclass
class NormalDatabase:
    """Normal limits per (family, sex, state); sex and state may be "all" (pooled)."""

    groups: dict[tuple[str, str, str], NormalLimits]
    meta: dict[str, Any] = field(default_factory=dict)

    def limits(self, family: str, sex: str, state: str, pool_states: bool = True) -> NormalLimits:
        """The limits for one image, falling back to pooled groups when a group is small.

        ``pool_states``: the SD is the stress and rest groups' pooled SD (same family and sex), the
        mean the state's own: a count loss then scores alike at stress and at rest, so a fixed scar
        gives SDS about 0 whatever the two states' sample SDs (docs/quantification.md, where
        spectac departs from QPS/4DM). False: the state's own SD, as QPS keeps them.
        """
        key = self.group_key(family, sex, state)
        group = self.groups[key]
        if pool_states and key[2] != "all":
            return NormalLimits(group.mean, self._pooled_sd(key[0], key[1], group), group.n)
        return group

    def group_key(self, family: str, sex: str, state: str) -> tuple[str, str, str]:
        """The (family, sex, state) group :meth:`limits` takes for an image: its own, or the first
        pooled one with at least ``MIN_STUDIES`` studies (what a report names as the limits used)."""
        for key in ((family, sex, state), (family, "all", state), (family, sex, "all"), (family, "all", "all")):
            group = self.groups.get(key)
            if group is not None and group.n >= MIN_STUDIES:
                return key
        raise SpectacError(
            f"the normal database has no {family} limits with at least {MIN_STUDIES} studies "
            f"for sex={sex} state={state}"
        )

    def _pooled_sd(self, family: str, sex: str, fallback: NormalLimits) -> np.ndarray:
        """SD per sample pooled over the stress and rest groups of a family and sex (weights n - 1);
        ``fallback``'s SD when either group is missing or small."""
        pair = [self.groups.get((family, sex, state)) for state in ("stress", "rest")]
        if any(g is None or g.n < MIN_STUDIES for g in pair):
            return fallback.sd
        dof = sum(g.n - 1 for g in pair)
        return np.sqrt(sum((g.n - 1) * g.sd.astype(np.float64) ** 2 for g in pair) / dof).astype(np.float32)

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


def _as_map(value: PolarMap | np.ndarray) -> PolarMap:
    if isinstance(value, PolarMap):
        return value
    values = np.asarray(value, dtype=np.float32)
    return PolarMap(values, np.full(values.shape, 1.0 / values.size), 1.0)


def _mean_sd(stack: np.ndarray) -> NormalLimits:
    sd = stack.std(axis=0, ddof=1) if len(stack) > 1 else np.zeros_like(stack[0])
    return NormalLimits(stack.mean(axis=0), sd, len(stack))


def normalised_maps(maps: list[PolarMap | np.ndarray]) -> np.ndarray:
    """(n, N_RINGS, N_ANGLES) the maps after leave-one-out iterative normalisation to the group mean
    (see the module docstring); a group of one is returned as it is."""
    pms = [_as_map(m) for m in maps]
    stack = np.stack([pm.values for pm in pms]).astype(np.float64)
    if len(pms) < 3:  # the others of a pair give no SD to judge "within normal limits" by
        return stack
    for _ in range(NORMALISE_ROUNDS):
        new = np.empty_like(stack)
        for j, pm in enumerate(pms):
            others = _mean_sd(np.delete(stack, j, axis=0))
            new[j] = pm.values * normalise_to_limits(pm.values, pm.weights, others, pm.myocardial)
        stack = new
    return stack


def limits_from_maps(maps: list[PolarMap | np.ndarray]) -> NormalLimits:
    """Mean and SD (ddof=1) of a group's normal polar maps after iterative normalisation."""
    return _mean_sd(normalised_maps(maps))


def quality_check(maps: list[PolarMap | np.ndarray]) -> list[str | None]:
    """For each map of a group: None when it passes, else why it is rejected (module docstring)."""
    pms = [_as_map(m) for m in maps]
    reasons: list[str | None] = [None] * len(pms)
    for j, pm in enumerate(pms):
        frac = float(np.sum(pm.weights * ~pm.myocardial) / np.sum(pm.weights))
        if frac > QC_MAX_EXTRACARDIAC:
            reasons[j] = f"extracardiac activity over {100 * frac:.0f}% of the LV"
    if len(pms) < QC_MIN_STUDIES:
        return reasons
    stack = normalised_maps(pms)
    dist = np.empty(len(pms))
    for j, pm in enumerate(pms):
        others = np.delete(stack, j, axis=0)
        median = np.median(others, axis=0)
        robust_sd = np.maximum(1.4826 * np.median(np.abs(others - median), axis=0), SD_FLOOR)
        dist[j] = float(np.sum(pm.weights * np.abs(stack[j] - median) / robust_sd) / np.sum(pm.weights))
    centre = float(np.median(dist))
    spread = 1.4826 * float(np.median(np.abs(dist - centre)))
    limit = max(centre + QC_OUTLIER_MADS * spread, QC_MIN_RATIO * centre)
    for j in range(len(pms)):
        if reasons[j] is None and dist[j] > limit:
            reasons[j] = f"polar map unlike the group: mean |robust z| {dist[j]:.2f} > {limit:.2f}"
    return reasons


def database_from_maps(
    records: list[tuple[str, str, str, PolarMap | np.ndarray]],
    meta: dict[str, Any] | None = None,
    names: list[str] | None = None,
    check: bool = True,
) -> NormalDatabase:
    """Group (family, sex, state, polar map) records into every exact and pooled group.

    Args:
        records: one per normal image; the map is a :class:`PolarMap` or its (N_RINGS, N_ANGLES)
            values (then equal sample weights and no extracardiac mask).
        meta: description saved with the database.
        names: a name per record (e.g. the case id) for ``meta["rejected"]``.
        check: run the quality check on every exact (family, sex, state) group first.
    """
    names = names if names is not None else [f"record {i}" for i in range(len(records))]
    rejected: list[dict[str, str]] = []
    keep = [True] * len(records)
    if check:
        for family in FAMILIES:
            for sex in {r[1] for r in records}:
                for state in {r[2] for r in records}:
                    idx = [i for i, r in enumerate(records) if r[:3] == (family, sex, state)]
                    for i, reason in zip(idx, quality_check([records[i][3] for i in idx])):
                        if reason is not None:
                            keep[i] = False
                            rejected.append({"study": names[i], "family": family, "reason": reason})
    kept = [r for r, k in zip(records, keep) if k]
    groups: dict[tuple[str, str, str], NormalLimits] = {}
    for family in FAMILIES:
        for sex in SEXES:
            for state in STATES:
                maps = [
                    v for f, s, st, v in kept
                    if f == family and sex in (s, "all") and state in (st, "all")
                ]  # fmt: skip
                if maps:
                    groups[(family, sex, state)] = limits_from_maps(maps)
    meta = {
        **(meta or {}),
        "normalisation": f"iterative to the leave-one-out group mean (Slomka 2005), {NORMALISE_ROUNDS} rounds",
        "quality_check": (f"robust z against the leave-one-out median: outlier > median + {QC_OUTLIER_MADS} MAD and "
                          f"> {QC_MIN_RATIO} x median (groups of >= {QC_MIN_STUDIES}); extracardiac > "
                          f"{QC_MAX_EXTRACARDIAC:.0%} of the LV") if check else "none",
        "rejected": rejected,
    }
    return NormalDatabase(groups, meta)


def build_normal_database(dataset: Dataset, split: str = "train") -> NormalDatabase:
    """Build NC and AC normal limits from the normal patients of one split of a dataset.

    Every normal study contributes its NC image to the 'nc' family and its CT-AC image to the 'ac'
    family, each through automatic LV detection and the maximal-count polar map, then the quality
    check and iterative normalisation of :func:`database_from_maps`.

    Raises:
        SpectacError: when the split holds no normal patients.
    """
    normals = [c for c in dataset.split(split) if c.defect_type == "none"]
    if not normals:
        raise SpectacError(f"{dataset.root}: no normal patients (defect_type none) in split {split!r}")
    records: list[tuple[str, str, str, PolarMap | np.ndarray]] = []
    names: list[str] = []
    failed: list[str] = []
    for case in track(normals, "normal database", total=len(normals)):
        for family in FAMILIES:
            volume = dataset.load(case.case_id, family)
            try:
                geom = detect_lv(volume)
            except SpectacError:
                failed.append(f"{case.case_id}/{family}")
                continue
            records.append((family, case.sex, case.state, polar_map(volume, geom)))
            names.append(f"{case.case_id}/{family}")
    meta = {
        "dataset": str(dataset.root),
        "split": split,
        "studies": len(normals),
        "patients": len({c.patient_id for c in normals}),
        "detection_failures": failed,
        "simulation": dataset.meta.get("simulation", dataset.meta.get("config")),
    }
    return database_from_maps(records, meta, names)
