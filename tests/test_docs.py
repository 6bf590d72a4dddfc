"""The documentation agrees with the code: the table of models in docs/models.md is the registry's."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from spectac.nn.registry import REGISTRY

ROOT = Path(__file__).resolve().parents[1]


def _models_table_script():
    spec = importlib.util.spec_from_file_location("models_table", ROOT / "scripts" / "models_table.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_models_doc_table_is_the_registry() -> None:
    """Fails after a change of REGISTRY until `python scripts/models_table.py --write` is run."""
    script = _models_table_script()
    doc = (ROOT / "docs" / "models.md").read_text()
    assert script.with_table(doc) == doc, "docs/models.md is out of date: run python scripts/models_table.py --write"
    rows = [line for line in script.table().splitlines()[2:]]
    assert [row.split(" | ")[0].strip("| `") for row in rows] == list(REGISTRY)
    for row, spec in zip(rows, REGISTRY.values(), strict=True):
        assert f" {spec.description} " in row
