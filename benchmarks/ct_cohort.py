"""A test cohort on real anatomy: studies simulated from phantoms made from one chest CT.

Run: python benchmarks/ct_cohort.py CT_DIR OUT [--seeds 8] [--states stress]

For each seed, ``spectac phantom --ct CT_DIR --seed S --state STATE`` places the parametric LV of
patient P000 of that seed (its size, orientation, uptake and defects) in the CT's heart, and
``spectac simulate --activity/--mu`` acquires and reconstructs it with the default protocol
(scatter windows included). The one-study datasets are then gathered into one dataset,
``OUT/cohort`` (case ids ``ct<S>_<state>``, all in the test split), which ``spectac predict`` and
``spectac evaluate`` score like the test split of a simulated cohort:

    bash benchmarks/quality.sh OUT/cohort runs/ct

The anatomy is the CT's for every study: this measures how networks trained on the parametric
torso carry over to a real body, not the spread over many bodies. Every step is skipped when its
output exists, so an interrupted run resumes.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
from pathlib import Path

from spectac.io.dataset import Case, Dataset, write_manifest


def run(*args: str) -> None:
    print("$ spectac " + " ".join(args), flush=True)
    subprocess.run([sys.executable, "-m", "spectac.cli", *args], check=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("ct")
    parser.add_argument("out", type=Path)
    parser.add_argument("--seeds", type=int, default=8)
    parser.add_argument("--states", default="stress", help="comma-separated: stress,rest")
    args = parser.parse_args()
    states = args.states.split(",")
    cases, meta = [], None
    cohort = args.out / "cohort"
    for seed in range(args.seeds):
        for state in states:
            name = f"ct{seed}_{state}"
            phantom, single = args.out / "phantoms" / name, args.out / "single" / name
            if not phantom.exists():
                run("phantom", "--ct", args.ct, "--out", str(phantom), "--seed", str(seed), "--state", state)
            if not (single / "dataset.json").exists():
                run("simulate", "--activity", str(phantom / "activity.nii.gz"), "--mu", str(phantom / "mu.nii.gz"),
                    "--out", str(single), "--seed", str(seed))
            source = Dataset.open(single)
            meta = dict(source.meta)
            study = cohort / "studies" / name
            if not study.exists():
                tmp = cohort / "studies" / f".{name}.tmp"
                shutil.rmtree(tmp, ignore_errors=True)
                shutil.copytree(source.study_dir("user_stress"), tmp)
                # the phantom's lv.json (geometry and defect truth) goes with the study
                shutil.copy(phantom / "lv.json", tmp / "lv.json")
                tmp.rename(study)
            lv = json.loads((phantom / "lv.json").read_text())
            defects = [d for d in lv.get("defects", []) if d.get("severity", 0) > 0]
            cases.append(Case(case_id=name, patient_id=f"ct{seed}", state=state, sex="U", split="test",
                              defect_type=defects[0]["type"] if defects else "none",
                              defect_territory=defects[0]["territory"] if defects else "",
                              defect_severity=round(float(defects[0]["severity"]), 4) if defects else 0.0))
    assert meta is not None
    meta.update(source="ct-cohort", ct=Path(args.ct).name, seeds=args.seeds)
    write_manifest(cohort, meta, cases)
    print(f"{len(cases)} studies in {cohort}")


if __name__ == "__main__":
    main()
