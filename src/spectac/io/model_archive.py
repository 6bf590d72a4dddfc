"""A trained model as one file to hand to another site, and the folder of models a user imported.

``spectac export-model MODEL_DIR OUT.zip`` writes a zip of the model folder's files that matter
(:data:`MEMBERS`) and ``manifest.json``; ``spectac import-model OUT.zip [--name NAME]`` checks it
and installs the folder under :func:`user_models_dir`, where ``--weights NAME`` (``correct``,
``predict --set weights=NAME``) finds it. The idea follows
MONAI bundles (a versioned folder of weights, configuration and metadata) without their
configuration language: a spectac model is already described by its ``config.json``.

The manifest (format :data:`FORMAT`, version :data:`FORMAT_VERSION`)::

    format, format_version      what this is; a newer version is refused rather than guessed
    spectac_version             of the exporting installation
    name, model                 the exchange name, and the registered network (spectac.nn.registry)
    config                      the model's config.json (network, training, data, normalisation)
    normalisation_percentile    the NC percentile the inputs are scaled by
    card                        the file name of the model card (MODEL_CARD.md), or null
    weights_sha256              sha256 of best.pt
    files                       {member: sha256} for every other member

Import refuses (one line, nothing installed): a file that is not a zip, a missing or unreadable
manifest, another format or a newer version, a member not in :data:`MEMBERS` or a name with a
folder in it, a member missing or extra, any sha256 mismatch, an installed model of the same name,
and whatever the caller's check refuses (weights that do not load with their config). Members
are read into memory one by one (models are a few MB) and the folder appears whole
(:func:`spectac.io.atomic.atomic_dir`). Zips are written with fixed times, so the same model gives
the same bytes.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from spectac.io.atomic import atomic_dir, atomic_path
from spectac.volume import SpectacError

FORMAT = "spectac-model"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
WEIGHTS = "best.pt"
#: The files of a model folder an archive carries (best.pt and config.json are required).
MEMBERS = (WEIGHTS, "config.json", "MODEL_CARD.md", "training_record.json", "metrics.json")
REQUIRED = (WEIGHTS, "config.json")
MODELS_ENV = "SPECTAC_MODELS_DIR"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
_ZIP_TIME = (1980, 1, 1, 0, 0, 0)


def user_models_dir() -> Path:
    """Where imported models live: ``$SPECTAC_MODELS_DIR``, else ``$XDG_DATA_HOME/spectac/models``,
    else ``~/.local/share/spectac/models``."""
    if os.environ.get(MODELS_ENV):
        return Path(os.environ[MODELS_ENV])
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "spectac" / "models"


def check_name(name: str) -> str:
    """Raises: SpectacError: not a plain model name (letters, digits, ``.``, ``_``, ``-``)."""
    if not _NAME.match(name) or name in (".", ".."):
        raise SpectacError(f"model name {name!r}: use letters, digits, '.', '_' and '-' (no folders)")
    return name


def installed_model_dir(name: str) -> Path | None:
    """The folder of an imported model called ``name``, or None (also for a name that is not one)."""
    if not _NAME.match(name):
        return None
    folder = user_models_dir() / name
    return folder if (folder / WEIGHTS).is_file() else None


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def read_model_files(model_dir: str | Path) -> dict[str, bytes]:
    """The archived files of a model folder.

    Raises:
        SpectacError: not a folder, or no best.pt or config.json in it.
    """
    folder = Path(model_dir)
    if not folder.exists():
        raise SpectacError(f"{folder}: no such model folder")
    if not folder.is_dir():
        raise SpectacError(f"{folder}: not a model folder")
    for name in REQUIRED:
        if not (folder / name).is_file():
            raise SpectacError(f"{folder}: no {name}; is this a model folder written by spectac train?")
    return {name: (folder / name).read_bytes() for name in MEMBERS if (folder / name).is_file()}


def build_manifest(name: str, members: dict[str, bytes], spectac_version: str) -> dict[str, Any]:
    """The manifest of an archive of ``members`` (see the module docstring).

    Raises:
        SpectacError: config.json is not a JSON object naming the model.
    """
    try:
        config = json.loads(members["config.json"])
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise SpectacError(f"config.json: not valid JSON ({exc})") from None
    if not isinstance(config, dict) or not isinstance(config.get("model"), str):
        raise SpectacError("config.json: no model name in it")
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "spectac_version": spectac_version,
        "name": check_name(name),
        "model": config["model"],
        "config": config,
        "normalisation_percentile": config.get("normalisation", {}).get("percentile"),
        "card": "MODEL_CARD.md" if "MODEL_CARD.md" in members else None,
        "weights_sha256": _sha256(members[WEIGHTS]),
        "files": {k: _sha256(v) for k, v in sorted(members.items()) if k != WEIGHTS},
    }


def write_archive(out: str | Path, manifest: dict[str, Any], members: dict[str, bytes]) -> Path:
    """Write the zip atomically (manifest first, members in :data:`MEMBERS` order, fixed times)."""
    out = Path(out)
    with atomic_path(out, suffix=".zip", replace=False) as tmp, zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as z:
        entries = [(MANIFEST, json.dumps(manifest, indent=2, sort_keys=True).encode() + b"\n")]
        entries += [(name, members[name]) for name in MEMBERS if name in members]
        for name, data in entries:
            info = zipfile.ZipInfo(name, _ZIP_TIME)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            z.writestr(info, data)
    return out


def read_archive(archive: str | Path) -> tuple[dict[str, Any], dict[str, bytes]]:
    """The manifest and members of an archive, every hash verified.

    Raises:
        SpectacError: see the module docstring (the first problem found, in one line).
    """
    archive = Path(archive)
    if archive.is_dir():
        raise SpectacError(f"{archive}: a folder, not a model archive (the .zip spectac export-model writes)")
    if not archive.is_file():
        raise SpectacError(f"{archive}: no such file")
    try:
        with zipfile.ZipFile(archive) as z:
            names = z.namelist()
            if MANIFEST not in names:
                raise SpectacError(f"{archive}: no {MANIFEST}; not a spectac model archive")
            unknown = sorted(set(names) - {MANIFEST, *MEMBERS})
            if unknown or len(names) != len(set(names)):
                raise SpectacError(f"{archive}: unexpected member {(unknown or names)[0]!r}; refusing it")
            manifest = json.loads(z.read(MANIFEST))
            members = {name: z.read(name) for name in names if name != MANIFEST}
    except (zipfile.BadZipFile, json.JSONDecodeError, UnicodeDecodeError, OSError) as exc:
        raise SpectacError(f"{archive}: not a readable spectac model archive ({exc.__class__.__name__})") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise SpectacError(f"{archive}: the manifest is not a {FORMAT} manifest")
    version = manifest.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION or version < 1:
        raise SpectacError(f"{archive}: model archive format {version!r}; this spectac reads up to "
                           f"{FORMAT_VERSION} (upgrade spectac)")
    expected = {**(manifest.get("files") or {}), WEIGHTS: manifest.get("weights_sha256")}
    if set(expected) != set(members):
        missing = sorted(set(expected) ^ set(members))
        raise SpectacError(f"{archive}: members and manifest disagree about {missing[0]!r}")
    for name, data in members.items():
        if _sha256(data) != expected[name]:
            raise SpectacError(f"{archive}: {name} does not match its sha256 in the manifest; refusing a "
                               "damaged or altered model")
    check_name(str(manifest.get("name", "")))
    return manifest, members


def install(members: dict[str, bytes], manifest: dict[str, Any], name: str,
            check: Callable[[Path], None] | None = None) -> Path:
    """Install verified members as ``user_models_dir()/name`` (with the manifest), whole or not at
    all; ``check(folder)`` runs on the unpublished folder and refuses it by raising.

    Raises:
        SpectacError: a bad name, a model of that name already installed, or the check's refusal.
    """
    folder = user_models_dir() / check_name(name)
    if folder.exists():
        raise SpectacError(f"{folder}: a model called {name} is already installed; give --name or remove it")
    with atomic_dir(folder, replace=False) as tmp:
        for member, data in members.items():
            (tmp / member).write_bytes(data)
        (tmp / MANIFEST).write_text(json.dumps({**manifest, "name": name}, indent=2, sort_keys=True) + "\n")
        if check is not None:
            check(tmp)
    return folder
