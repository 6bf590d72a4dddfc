from __future__ import annotations

import os

import pytest
import torch

# Progress bars off in tests; fixed thread count keeps timings and reductions stable.
os.environ.setdefault("SPECTAC_PROGRESS", "0")
torch.set_num_threads(2)


@pytest.fixture(autouse=True)
def _pseudonym_key_in_tmp(tmp_path_factory, monkeypatch):
    """`spectac import` creates its pseudonym key where $SPECTAC_PSEUDONYM_KEY_FILE points: never
    in the home folder of whoever runs the tests."""
    monkeypatch.setenv("SPECTAC_PSEUDONYM_KEY_FILE", str(tmp_path_factory.mktemp("key") / "pseudonym.key"))
