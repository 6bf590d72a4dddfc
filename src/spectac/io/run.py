"""The on-disk run folder: what ``spectac predict`` and ``spectac evaluate`` write.

```
RUN/
  predictions/<method>/   <case_id>.nii.gz per study, config.json (the method's resolved options)
  metrics.csv             image metrics, a row per study and method
  table1.csv, table1.md   mean +- SD per method (Table 1)
  figure3_boxplots.png    Figure 3
  wilcoxon.csv            paired Wilcoxon signed-rank tests
  normals.npz             the normal database the clinical scores used
  clinical.csv, clinical_patients.csv, clinical_agreement.csv, detection.csv
  report.html             the self-contained report
```
Like :class:`spectac.io.dataset.Dataset` owns the dataset's layout, :class:`RunFolder` owns this
one: every other module names a run's files through it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from spectac.io.atomic import write_text_atomic
from spectac.volume import SpectacError

if TYPE_CHECKING:  # pandas costs ~0.6 s to import; correct and predict never need it
    import pandas as pd

PREDICTION_SUFFIX = ".nii.gz"


def _run_file(name: str) -> property:
    """A read-only attribute of :class:`RunFolder`: ``RUN/<name>``."""
    return property(lambda self: self.root / name, doc=f"RUN/{name}")


class RunFolder:
    """The paths of a run folder (nothing is created or read when one is made)."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def __repr__(self) -> str:
        return f"RunFolder({str(self.root)!r})"

    # ---- predictions ----------------------------------------------------------------------

    @property
    def predictions_root(self) -> Path:
        return self.root / "predictions"

    def predictions_dir(self, method: str) -> Path:
        return self.predictions_root / method

    def prediction_path(self, method: str, case_id: str) -> Path:
        return self.predictions_dir(method) / f"{case_id}{PREDICTION_SUFFIX}"

    def has_prediction(self, method: str, case_id: str) -> bool:
        """Whether the study's prediction is there (each is written atomically: there means whole)."""
        return self.prediction_path(method, case_id).is_file()

    def prediction_config(self, method: str) -> Path:
        """The resolved options the method's predictions were made with."""
        return self.predictions_dir(method) / "config.json"

    def read_prediction_config(self, method: str) -> dict[str, Any] | None:
        """The options a method's predictions were made with (None: no predictions yet)."""
        path = self.prediction_config(method)
        if not path.is_file():
            return None
        try:
            return json.loads(path.read_text())
        except json.JSONDecodeError as exc:
            raise SpectacError(f"{path}: not valid JSON ({exc})") from exc

    def write_prediction_config(self, method: str, config: dict[str, Any]) -> Path:
        """Create the method's predictions folder and write its config.json (atomically)."""
        path = self.prediction_config(method)
        path.parent.mkdir(parents=True, exist_ok=True)
        write_text_atomic(path, json.dumps(config, indent=1, default=str) + "\n")
        return path

    def prediction_files(self, method: str) -> dict[str, Path]:
        """{case_id: path} of every prediction present for a method (sorted by file name)."""
        folder = self.predictions_dir(method)
        return {p.name[: -len(PREDICTION_SUFFIX)]: p for p in sorted(folder.glob(f"*{PREDICTION_SUFFIX}"))}

    def methods(self) -> list[str]:
        """The method folders holding at least one prediction, sorted with "nc" first ([] when
        there is no predictions folder)."""
        root = self.predictions_root
        if not root.is_dir():
            return []
        methods = [p.name for p in root.iterdir() if p.is_dir() and any(p.glob(f"*{PREDICTION_SUFFIX}"))]
        return sorted(methods, key=lambda m: (m != "nc", m))

    # ---- the files of an evaluation ---------------------------------------------------------

    @staticmethod
    def require_scored(*files: Path) -> None:
        """Raise a SpectacError naming the first of ``files`` (this run's evaluation outputs) that
        is missing: the run has not been scored yet."""
        for path in files:
            if not path.is_file():
                raise SpectacError(f"{path}: no such file; score the run with `spectac evaluate` first")

    def table_csv(self, name: str) -> Path:
        """A table an evaluator writes, ``RUN/<name>.csv`` (the clinical tables: see docs/evaluation.md)."""
        return self.root / f"{name}.csv"

    metrics_csv = _run_file("metrics.csv")
    table1_csv = _run_file("table1.csv")
    table1_md = _run_file("table1.md")
    figure3_png = _run_file("figure3_boxplots.png")
    wilcoxon_csv = _run_file("wilcoxon.csv")
    normals_npz = _run_file("normals.npz")
    clinical_csv = _run_file("clinical.csv")
    clinical_patients_csv = _run_file("clinical_patients.csv")
    clinical_agreement_csv = _run_file("clinical_agreement.csv")
    detection_csv = _run_file("detection.csv")
    report_html = _run_file("report.html")


# ---- writing a run's files (each atomically) -------------------------------------------------


def write_csv(frame: pd.DataFrame, path: str | Path) -> Path:
    """A table of a run as CSV (6 significant digits), atomically."""
    path = Path(path)
    write_text_atomic(path, frame.to_csv(index=False, float_format="%.6g"))
    return path

