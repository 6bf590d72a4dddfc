"""Opening a dataset: cases.csv rows that would name a folder outside the dataset are refused."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from spectac.cli import app
from spectac.io.dataset import CASE_COLUMNS, Case, Dataset, write_manifest, write_study
from spectac.volume import SpectacError, Volume

runner = CliRunner()


def tree(path: Path) -> list[str]:
    return sorted(str(p.relative_to(path)) for p in path.rglob("*"))


def one_study_dataset(root: Path) -> Path:
    volume = Volume.centred(np.ones((8, 8, 8), np.float32), 6.8)
    write_study(root, "good_rest", {"nc": volume, "ac": volume})
    write_manifest(root, {"source": "test"}, [Case("good_rest", "P1", "rest", "F", split="test")])
    return root


def with_rows(root: Path, *case_ids: str) -> Path:
    """Append rows with these case ids to cases.csv (written by hand, as an editor would)."""
    rows = [",".join([cid, "P9", "rest", "F"] + [""] * (len(CASE_COLUMNS) - 5) + ["test"]) for cid in case_ids]
    with (root / "cases.csv").open("a") as f:
        f.write("\n".join(rows) + "\n")
    return root


@pytest.mark.parametrize(
    "case_id",
    ["../evil", "/tmp/x", "a/b", "a\\b", "..", ".", ".hidden", "nul\x01x", "C:x", " padded"],
)
def test_a_case_id_that_is_not_a_plain_folder_name_is_refused_naming_the_row(tmp_path, case_id):
    root = with_rows(one_study_dataset(tmp_path / "ds"), case_id)
    with pytest.raises(SpectacError) as caught:
        Dataset.open(root)
    message = str(caught.value)
    assert "line 3" in message and repr(case_id) in message and "\n" not in message


def test_duplicate_case_ids_are_refused_naming_both_lines(tmp_path):
    root = with_rows(one_study_dataset(tmp_path / "ds"), "good_rest")
    with pytest.raises(SpectacError, match=r"line 3: duplicate case_id 'good_rest' \(first on line 2\)"):
        Dataset.open(root)


def test_predict_on_escaping_case_ids_refuses_and_writes_nothing(tmp_path):
    root = with_rows(one_study_dataset(tmp_path / "ds"), "../evil", "/tmp/spectac-evil-case")
    before = tree(tmp_path)
    result = runner.invoke(app, ["predict", "--method", "nc", "--data", str(root), "--out", str(tmp_path / "run"),
                                 "--split", "all"])
    assert result.exit_code == 2, result.output
    assert "case_id '../evil'" in " ".join(result.output.split())
    assert tree(tmp_path) == before  # no run folder, no ../evil beside the dataset
    assert not Path("/tmp/spectac-evil-case").exists()


def test_write_study_refuses_an_escaping_case_id(tmp_path):
    volume = Volume.centred(np.ones((4, 4, 4), np.float32), 6.8)
    with pytest.raises(SpectacError):
        write_study(tmp_path / "ds", "../evil", {"nc": volume, "ac": volume})
    assert not (tmp_path / "evil").exists()
