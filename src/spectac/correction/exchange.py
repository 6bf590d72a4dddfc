"""Model exchange between sites: ``spectac export-model`` and ``spectac import-model``.

The archive and its manifest are :mod:`spectac.io.model_archive`'s; this module adds what needs
the networks: an archive's weights must load with the configuration beside them, and be weights of
the network the manifest names, before the model is installed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from spectac import __version__
from spectac.correction.deep import load_model, shipped_model_dir
from spectac.io import model_archive
from spectac.io.paths import check_output_outside
from spectac.nn.registry import REGISTRY
from spectac.volume import SpectacError


def _source(model: str | Path) -> Path:
    """A model folder, or the shipped folder of a registered network given by name."""
    path = Path(model)
    if not path.exists() and str(model) in REGISTRY:
        return shipped_model_dir(str(model))
    return path


def export_model(model: str | Path, out: str | Path, name: str | None = None) -> dict[str, Any]:
    """Write ``out`` (.zip) from a model folder (or a shipped model's name); returns the manifest.

    Raises:
        SpectacError: not a model folder, weights that do not load, an existing ``out``, or an
            output not named .zip.
    """
    folder = _source(model)
    if not Path(folder).exists():
        shipped = [name for name in REGISTRY if (shipped_model_dir(name) / "best.pt").is_file()]
        raise SpectacError(f"{model}: no such model folder, nor the name of a shipped model ({', '.join(shipped)})")
    if not str(out).lower().endswith(".zip"):
        raise SpectacError(f"{out}: name the archive .zip")
    if Path(out).exists() or Path(out).is_symlink():
        raise SpectacError(f"{out}: already exists; choose another archive name")
    check_output_outside(out, folder)
    members = model_archive.read_model_files(folder)
    load_model(folder)  # refuse to ship weights that do not load
    manifest = model_archive.build_manifest(name or folder.resolve().name, members, __version__)
    model_archive.write_archive(out, manifest, members)
    return manifest


def _check_installable(manifest: dict[str, Any]) -> Any:
    def check(folder: Path) -> None:
        loaded = load_model(folder)
        if loaded.name != manifest["model"] or loaded.name not in REGISTRY:
            raise SpectacError(f"the archive's weights are of {loaded.name}, its manifest says {manifest['model']}")
    return check


def import_model(archive: str | Path, name: str | None = None) -> dict[str, Any]:
    """Verify ``archive`` and install it as ``name`` (default: the manifest's) in the user's
    model folder; returns {"name", "model", "folder", "weights_sha256"}.

    Raises:
        SpectacError: see :mod:`spectac.io.model_archive` (hash mismatch, unknown format, ...), a
            network this spectac does not have, or weights that do not load.
    """
    manifest, members = model_archive.read_archive(archive)
    if manifest.get("model") not in REGISTRY:
        raise SpectacError(f"{archive}: network {manifest.get('model')!r} is not one of this spectac's "
                           f"({', '.join(REGISTRY)})")
    chosen = model_archive.check_name(name or manifest["name"])
    folder = model_archive.install(members, manifest, chosen, _check_installable(manifest))
    return {"name": chosen, "model": manifest["model"], "folder": folder, "weights_sha256": manifest["weights_sha256"]}
