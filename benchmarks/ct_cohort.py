"""A test cohort on real anatomy: studies simulated from phantoms made from one chest CT.

Run: python benchmarks/ct_cohort.py CT_DIR OUT [--seeds 8] [--first-seed 0] [--states stress] [--train]

For each seed, ``spectac phantom --ct CT_DIR --seed S --state STATE`` places the parametric LV of
patient P000 of that seed (its size, orientation, uptake and defects) in the CT's heart, and
``spectac simulate --activity/--mu`` acquires and reconstructs it with the default protocol
(scatter windows included). The one-study datasets are then gathered into one dataset,
``OUT/cohort`` (case ids ``ct<S>_<state>``, all in the test split), which ``spectac predict`` and
``spectac evaluate`` score like the test split of a simulated cohort:

    bash benchmarks/quality.sh OUT/cohort runs/ct

The anatomy is the CT's for every study: this measures how networks trained on the parametric
torso carry over to a real body, not the spread over many bodies.

With ``--train`` the cohort is one to train on (the other direction: trained on the CT's anatomy,
tested on the parametric torso's test split): the patients of the last fifth of the seeds (at
least one) go to the val split, the others to train. ``--first-seed`` keeps such a cohort's seeds
apart from a test cohort's. Every step is skipped when its
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
    parser.add_argument("--first-seed", type=int, default=0)
    parser.add_argument("--states", default="stress", help="comma-separated: stress,rest")
    parser.add_argument("--train", action="store_true", help="train and val splits instead of test")
    args = parser.parse_args()
    states = args.states.split(",")
    cases, meta = [], None
    cohort = args.out / "cohort"
    seeds = range(args.first_seed, args.first_seed + args.seeds)
    n_val = max(1, args.seeds // 5) if args.train else 0
    for seed in seeds:
        split = "test" if not args.train else ("val" if seed >= seeds.stop - n_val else "train")
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
            cases.append(Case(case_id=name, patient_id=f"ct{seed}", state=state, sex="U", split=split,
                              defect_type=defects[0]["type"] if defects else "none",
                              defect_territory=defects[0]["territory"] if defects else "",
                              defect_severity=round(float(defects[0]["severity"]), 4) if defects else 0.0))
    assert meta is not None
    meta.update(source="ct-cohort", ct=Path(args.ct).name, seeds=args.seeds, first_seed=args.first_seed)
    write_manifest(cohort, meta, cases)
    print(f"{len(cases)} studies in {cohort}")


if __name__ == "__main__":
    main()
