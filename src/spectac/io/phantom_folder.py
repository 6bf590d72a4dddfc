"""The folder ``spectac phantom --ct`` writes: activity.nii.gz, mu.nii.gz, lv.json, phantom.json.

The folder appears whole or not at all (:func:`spectac.io.atomic.atomic_dir`) and an existing
one is never replaced; :mod:`spectac.phantom.from_ct` builds what goes in it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from spectac.io.atomic import atomic_dir
from spectac.io.nifti import write_nifti
from spectac.volume import SpectacError, Volume


def refuse_existing(out: str | Path) -> Path:
    """``out`` as a Path, refused when something (even a dangling link) already has its name:
    checked before the CT is read, so a wrong --out fails at once."""
    out = Path(out)
    if out.exists() or out.is_symlink():
        raise SpectacError(f"{out}: already exists; choose a new --out")
    return out


def write_phantom_folder(out: str | Path, activity: Volume, mu: Volume, lv: dict[str, Any],
                         description: dict[str, Any]) -> Path:
    """Write the phantom folder ``out`` (activity and mu NIfTI, lv.json, phantom.json) atomically."""
    out = Path(out)
    with atomic_dir(out, replace=False) as tmp:
        write_nifti(activity, tmp / "activity.nii.gz", descrip="spectac CT phantom activity")
        write_nifti(mu, tmp / "mu.nii.gz", descrip="spectac CT phantom mu-map 1/cm 140 keV")
        (tmp / "lv.json").write_text(json.dumps(lv, indent=1))
        (tmp / "phantom.json").write_text(json.dumps(description, indent=1))
    return out
