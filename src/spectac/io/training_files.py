"""The files of a model folder (``spectac train``'s ``--out``): read and written here only.

The training modules (:mod:`spectac.training`) decide what goes in config.json, log.csv,
training_record.json and MODEL_CARD.md; this module holds the file names, the formats on disk
(JSON with one-space indent, log.csv's number formatting), the atomic writes and the folder's
lock. The weights themselves (best.pt, last.pt) are read and written by
:mod:`spectac.io.checkpoint`.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from spectac.io.atomic import write_text_atomic
from spectac.io.paths import (
    sha256_file as sha256_file,  # re-exported: the record and scripts use it from here
)
from spectac.volume import SpectacError

CONFIG = "config.json"
LOG = "log.csv"
RECORD = "training_record.json"
CARD = "MODEL_CARD.md"
METRICS = "metrics.json"
BEST = "best.pt"
LAST = "last.pt"
LOCK = ".lock"


def has_file(folder: str | Path, name: str) -> bool:
    """Whether ``folder``/``name`` is a file (a checkpoint to resume from, weights to describe)."""
    return (Path(folder) / name).is_file()


def weights_of(path: str | Path) -> Path:
    """The weights file ``--init`` names: a model folder's best.pt, or the .pt file itself."""
    path = Path(path)
    return path / BEST if path.is_dir() else path


def weights_summary(path: str | Path) -> tuple[int, str] | None:
    """(size in bytes, sha256) of a weights file, or None when there is none."""
    path = Path(path)
    if not path.is_file():
        return None
    return path.stat().st_size, sha256_file(path)


def read_config(folder: str | Path) -> dict[str, Any]:
    """``folder``/config.json."""
    return json.loads((Path(folder) / CONFIG).read_text())


def write_config(folder: str | Path, config: dict[str, Any]) -> Path:
    """``folder``/config.json (made with its parents if need be), atomically."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    write_text_atomic(folder / CONFIG, json.dumps(config, indent=1) + "\n")
    return folder / CONFIG


def read_config_if_any(folder: str | Path) -> dict[str, Any] | None:
    """``folder``/config.json, or None when there is none (a weights file without its folder).

    Raises:
        SpectacError: a config.json that is not a JSON object.
    """
    path = Path(folder) / CONFIG
    if not path.is_file():
        return None
    try:
        config = json.loads(path.read_text())
    except (ValueError, UnicodeDecodeError) as exc:
        raise SpectacError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(config, dict):
        raise SpectacError(f"{path}: not a JSON object")
    return config


def write_config_block(folder: str | Path, key: str, block: dict[str, Any]) -> Path:
    """Set ``key`` of ``folder``/config.json to ``block`` (the rest kept as it is), atomically.

    Raises:
        SpectacError: no config.json in ``folder`` (not a model folder).
    """
    config = read_config_if_any(folder)
    if config is None:
        raise SpectacError(f"{folder}: no {CONFIG}; not a model folder")
    config[key] = block
    return write_config(folder, config)


def read_metrics(folder: str | Path) -> dict[str, Any] | None:
    """``folder``/metrics.json (test-split metrics of an installed model), or None without one."""
    path = Path(folder) / METRICS
    return json.loads(path.read_text()) if path.is_file() else None


def read_record_json(folder: str | Path) -> dict[str, Any] | None:
    """``folder``/training_record.json as a dict with a list of stages; None when it is missing,
    unreadable or not a record."""
    path = Path(folder) / RECORD
    if not path.is_file():
        return None
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) and isinstance(record.get("stages"), list) else None


def write_record_json(folder: str | Path, record: dict[str, Any]) -> Path:
    """``folder``/training_record.json, atomically."""
    path = Path(folder) / RECORD
    write_text_atomic(path, json.dumps(record, indent=1) + "\n")
    return path


def write_card(folder: str | Path, text: str) -> Path:
    """``folder``/MODEL_CARD.md, atomically."""
    path = Path(folder) / CARD
    write_text_atomic(path, text)
    return path


def log_csv(history: list[dict[str, float]], seconds_of: dict[int, float]) -> str:
    """log.csv: the history rows with each epoch's wall time (empty when not known)."""
    rows = [{**row, "seconds": seconds_of.get(int(row["epoch"]))} for row in history]
    columns = list(dict.fromkeys(k for row in rows for k in row))
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in row.items()})
    return buffer.getvalue()


def write_log(folder: str | Path, history: list[dict[str, float]], seconds_of: dict[int, float]) -> Path:
    """``folder``/log.csv (see :func:`log_csv`), atomically."""
    path = Path(folder) / LOG
    write_text_atomic(path, log_csv(history, seconds_of))
    return path


def logged_seconds(folder: str | Path) -> dict[int, float]:
    """Epoch -> seconds from an existing log.csv (the wall times of the epochs before a resume)."""
    try:
        with (Path(folder) / LOG).open(newline="") as f:
            return {int(row["epoch"]): float(row["seconds"]) for row in csv.DictReader(f)
                    if row.get("epoch") and row.get("seconds")}
    except (OSError, ValueError, KeyError):
        return {}


def cpu_model() -> str | None:
    """The CPU model named by /proc/cpuinfo (Linux), or None where there is none."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith(("model name", "hardware", "cpu model")):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return None


@contextlib.contextmanager
def model_folder_lock(out: str | Path) -> Iterator[None]:
    """One trainer per model folder: two would overwrite each other's checkpoints. A folder this
    run made and left empty (it failed before writing anything: no dataset, missing init weights)
    is removed again, so a refused run leaves nothing behind."""
    out = Path(out)
    created = not out.exists()
    out.mkdir(parents=True, exist_ok=True)
    lock = out / LOCK
    for _ in range(2):
        try:
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            break
        except FileExistsError:
            try:
                pid = int(lock.read_text() or 0)
                os.kill(pid, 0)
            except (ValueError, ProcessLookupError, FileNotFoundError):
                lock.unlink(missing_ok=True)  # left by a killed run
                continue
            except PermissionError:
                pass
            raise SpectacError(f"{out} is being trained by process {pid}; wait for it or stop it") from None
    else:
        raise SpectacError(f"{out}: cannot take the training lock {lock}")
    try:
        os.write(fd, str(os.getpid()).encode())
        os.close(fd)
        yield
    finally:
        lock.unlink(missing_ok=True)
        if created and not any(out.iterdir()):
            out.rmdir()
