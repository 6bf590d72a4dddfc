"""The folder ``spectac scores --out`` writes: ``<state>_polar.png`` per state and scores.json.

The folder is made if need be (an existing one is written into: a second scoring of the same
patient replaces its files); each file appears whole (:mod:`spectac.io.atomic`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from spectac.io.atomic import write_bytes_atomic, write_text_atomic


def write_scores_folder(out: str | Path, polar_pngs: dict[str, bytes], scores: dict[str, Any]) -> Path:
    """Write ``<state>_polar.png`` for each state of ``polar_pngs`` (PNG bytes), then scores.json."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    for state, png in polar_pngs.items():
        write_bytes_atomic(out / f"{state}_polar.png", png, suffix=".png")
    write_text_atomic(out / "scores.json", json.dumps(scores, indent=1))
    return out
