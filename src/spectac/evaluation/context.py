"""What an evaluator of ``spectac evaluate`` gets, and what it returns.

An evaluator is a function ``evaluator(context: EvaluationContext) -> list[ReportSection]`` that
may write its own files into ``context.run`` (atomically); :mod:`spectac.evaluation.harness` runs
every evaluator of its table after the image metrics.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from spectac.evaluation.report import ReportSection
from spectac.io.dataset import Case, Dataset
from spectac.io.run import RunFolder


@dataclass
class EvaluationContext:
    """What an evaluator gets: the dataset, the run folder, the evaluated studies and methods,
    and the per-study image metrics (a DataFrame with :data:`CSV_COLUMNS`)."""

    dataset: Dataset
    run: Path
    split: str | None
    cases: list[Case]
    methods: list[str]
    metrics: pd.DataFrame
    outputs: dict[str, Path] = field(default_factory=dict)  # evaluators may record what they wrote
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)  # and tables the summary reads ("clinical")

    @property
    def folder(self) -> RunFolder:
        """The run's layout (its predictions and the paths of its files)."""
        return RunFolder(self.run)

    def prediction_path(self, method: str, case_id: str) -> Path:
        return self.folder.prediction_path(method, case_id)


Evaluator = Callable[[EvaluationContext], list[ReportSection]]
