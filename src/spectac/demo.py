"""`spectac demo`: the whole pipeline on a small simulated test cohort, in a few minutes.

simulate (fixed seed, all studies in the test split) -> NC, Chang and every network with shipped
weights -> image metrics and clinical scores -> RUN/report.html.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from spectac.correction.deep import WEIGHTS_NAME, shipped_model_dir
from spectac.correction.run import available_methods, predict_dataset
from spectac.evaluation.harness import evaluate_run
from spectac.simulate import SimulationConfig, simulate_cohort

DEMO_SEED = 2026
CLASSICAL_METHODS = ("nc", "chang")


def shipped_networks() -> list[str]:
    """Names of the registered networks that ship trained weights."""
    names = []
    for name in available_methods():
        if name in CLASSICAL_METHODS or name.startswith("chang"):
            continue
        if (shipped_model_dir(name) / WEIGHTS_NAME).is_file():
            names.append(name)
    return sorted(names)


def run_demo(out: str | Path, patients: int = 8, seed: int = DEMO_SEED, workers: int = 2) -> dict[str, Any]:
    """Run the demo into ``out`` (``out/data`` the cohort, ``out/run`` predictions and report).

    Resumable: studies and predictions already written are kept.
    """
    out = Path(out)
    data, run = out / "data", out / "run"
    # every demo patient is a test patient: the shipped networks never saw them (other seed)
    config = SimulationConfig.build(split="0/0/1")
    simulate_cohort(data, patients=patients, seed=seed, config=config, workers=workers)
    methods = [*CLASSICAL_METHODS, *shipped_networks()]
    for method in methods:
        predict_dataset(data, run, method, "test")
    summary = evaluate_run(data, run, "test")
    summary["networks"] = [m for m in methods if m not in CLASSICAL_METHODS]
    summary["data"], summary["run"] = data, run
    return summary
