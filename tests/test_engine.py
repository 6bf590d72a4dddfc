"""Simulation through a Dask cluster gives the bytes of a local run (skipped without dask)."""

from __future__ import annotations

from pathlib import Path

import pytest
from test_simulation import SMALL, digest

from spectac.engine import executor_factory
from spectac.simulate import simulate_cohort
from spectac.volume import SpectacError


def test_engine_choices_are_checked() -> None:
    assert executor_factory("local") is None
    with pytest.raises(SpectacError, match="choose local or dask"):
        executor_factory("ray")
    with pytest.raises(SpectacError, match="--scheduler goes with --engine dask"):
        executor_factory("local", "tcp://127.0.0.1:8786")


def test_a_dask_local_cluster_writes_the_bytes_of_the_local_engine(tmp_path: Path) -> None:
    pytest.importorskip("distributed")
    local, dask = tmp_path / "local", tmp_path / "dask"
    simulate_cohort(local, patients=2, seed=3, config=SMALL, workers=1)
    # one in-process worker thread keeps the test cheap; the tasks and the driver's writes are the real ones
    executor = executor_factory("dask", processes=False)
    assert simulate_cohort(dask, patients=2, seed=3, config=SMALL, workers=1, executor=executor) == \
        {"written": 4, "skipped": 0}
    assert digest(dask) == digest(local)
    # resumable: a removed study is simulated again on the cluster, the others skipped
    for f in (dask / "studies" / "P001_rest").iterdir():
        f.unlink()
    (dask / "studies" / "P001_rest").rmdir()
    assert simulate_cohort(dask, patients=2, seed=3, config=SMALL, workers=1, executor=executor) == \
        {"written": 1, "skipped": 3}
    assert digest(dask) == digest(local)
