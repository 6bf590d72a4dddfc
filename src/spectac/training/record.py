"""What made a model: ``training_record.json`` beside its weights, one stage per ``spectac train``.

A model folder's record lists every training stage that led to its weights, oldest first::

    {"format": 1, "model": "unet-gan3d", "stages": [
        {"stage": 1, "status": "finished", "folder": "unet-gan3d", "argv": [...], "config": {...},
         "seed": 0, "epochs": {"start": 1, "end": 30, "planned": 30}, "init": null,
         "dataset": {...}, "hardware": {...}, "wall_seconds": ..., "best": {...},
         "log": {"file": "log.csv", "rows": [...]}, "weights_sha256": {...}},
        ...]}

- A run resumed in the same folder (the same command again) appends a stage that starts where
  the last one ended; a stage cut short stays in the record as "interrupted".
- A warm restart (``--init FOLDER``) into a new folder starts its record with FOLDER's stages
  (marked ``inherited_from``), then its own: the record of the final weights is the whole history.
- Nothing machine-specific: the dataset is named by its folder name and identified by the sha256
  of its cases.csv and dataset.json; init weights by name and sha256; absolute paths in the
  command line are cut to ``.../<name>``. Wall times, thread count and CPU model are kept here,
  never in the checkpoints (which stay byte-reproducible).
"""

from __future__ import annotations

import datetime as _dt
import os
import platform
import re
from pathlib import Path
from typing import Any

import torch

from spectac.io import training_files as files
from spectac.io.training_files import RECORD as RECORD  # the record's file name, re-exported
from spectac.io.training_files import sha256_file as sha256_file  # re-exported for callers of the record

FORMAT = 1
_ABSOLUTE = re.compile(r"^(?:/|~|[A-Za-z]:[\\/]|\\\\)")


def is_absolute_path(text: str) -> bool:
    """A string that names a file by an absolute (machine-specific) path."""
    return bool(_ABSOLUTE.match(text))


def portable(text: str) -> str:
    """An absolute path becomes ``.../<its last part>``: nothing of this machine's layout is kept."""
    if not is_absolute_path(text):
        return text
    name = re.split(r"[\\/]+", text.rstrip("/\\"))[-1]
    return f".../{name}" if name else "..."


def portable_argv(argv: list[str]) -> list[str]:
    """The command line with the program as ``spectac`` and absolute paths cut (also ``--opt=/path``)."""
    if not argv:
        return []
    out = ["spectac" if Path(argv[0]).name in ("spectac", "__main__.py", "cli.py", "__init__.py") else portable(argv[0])]
    for arg in argv[1:]:
        if arg.startswith("--") and "=" in arg:
            key, value = arg.split("=", 1)
            out.append(f"{key}={portable(value)}")
        else:
            out.append(portable(arg))
    return out


def scrub(value: Any) -> Any:
    """``value`` with every absolute path string cut by :func:`portable` (a last safety net)."""
    if isinstance(value, str):
        return portable(value)
    if isinstance(value, dict):
        return {k: scrub(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [scrub(v) for v in value]
    return value


def dataset_identity(root: str | Path, meta: dict[str, Any], cases: list[Any]) -> dict[str, Any]:
    """Name, fingerprint, origin and split sizes of a dataset, without its location."""
    root = Path(root).resolve()
    splits: dict[str, dict[str, int]] = {}
    for case in cases:
        split = splits.setdefault(case.split or "none", {"studies": 0, "patients": 0})
        split["studies"] += 1
    for name in splits:
        splits[name]["patients"] = len({c.patient_id for c in cases if (c.split or "none") == name})
    identity: dict[str, Any] = {
        "name": root.name,
        "sha256": {"cases.csv": sha256_file(root / "cases.csv"), "dataset.json": sha256_file(root / "dataset.json")},
        "source": meta.get("source", "unknown"),
        "splits": dict(sorted(splits.items())),
    }
    if meta.get("source") == "simulation":
        identity["simulation"] = {k: meta.get(k) for k in ("seed", "patients", "config", "spectac_version")}
    elif meta.get("source") == "import":
        identity["import"] = meta.get("import")
    return scrub(identity)


def init_identity(init: str | Path | None, model: str) -> dict[str, Any] | None:
    """Name and sha256 of the weights a run starts from (``shipped:<model>`` for spectac's own)."""
    if init is None:
        return None
    path = Path(init)
    weights = files.weights_of(path)
    name = path.name if path.is_dir() else f"{path.parent.name}/{path.name}"
    try:
        from spectac.correction.deep import shipped_model_dir

        if weights.parent.resolve() == shipped_model_dir(model).resolve():
            name = f"shipped:{model}"
    except OSError:
        pass
    summary = files.weights_summary(weights)
    return {"name": name, "sha256": summary[1] if summary else None}


def _cpu_model() -> str:
    return files.cpu_model() or platform.processor() or platform.machine() or "unknown"


def hardware(device: str = "cpu") -> dict[str, Any]:
    """Where a stage ran: torch version, threads, CPU model and count, device (no host name)."""
    return {
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "cpu": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "device": device,
        "python": platform.python_version(),
        "system": f"{platform.system()} {platform.machine()}",
    }


def utc_now() -> str:
    return _dt.datetime.now(_dt.UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def read_record(folder: str | Path) -> dict[str, Any] | None:
    """The record of a model folder; None when it has none (or an unreadable one)."""
    return files.read_record_json(folder)


def write_record(folder: str | Path, record: dict[str, Any]) -> Path:
    """Write ``record`` to ``folder``, every absolute path in it cut first (:func:`scrub`)."""
    return files.write_record_json(folder, scrub(record))


def inherited(init: str | Path | None) -> dict[str, Any]:
    """What a run started with ``--init`` carries over from that model's record: its stages,
    marked as inherited, and ``reconstructed`` (the note of a record reconstructed from the
    project history) when it has one; {"stages": []} without a record."""
    if init is None:
        return {"stages": []}
    path = Path(init)
    record = read_record(path if path.is_dir() else path.parent)
    if record is None:
        return {"stages": []}
    source = path.name if path.is_dir() else path.parent.name
    stages = [{**stage, "inherited_from": stage.get("inherited_from", source)} for stage in record["stages"]]
    note = {"reconstructed": record["reconstructed"]} if record.get("reconstructed") else {}
    return {**note, "stages": stages}
