"""Data-parallel training on one machine: seconds per step with 1 and 2 torchrun processes, and the
peak memory of a process, on a 1,000-study cohort streamed from disk.

Usage:
    python benchmarks/bench_ddp.py DATASET OUT [--studies 1000] [--processes 1,2] [--model unet3d]
        [--channels 4,8,16,32]

A cohort of ``--studies`` training studies is made in OUT/linked from DATASET's studies by
symbolic links (each study linked under several new ids, patients renamed so that each id is a
patient of its own) plus DATASET's first 20 validation studies, so it costs no disk and no
simulation; then, for each process count N, one epoch of

    torchrun --standalone --nproc-per-node N -m spectac.cli train --model MODEL --data OUT/linked
        --out OUT/run_N --epochs 1 --stream on --patience 0 --channels CHANNELS

with OMP_NUM_THREADS = (cores / N), so that every configuration uses the whole CPU. Printed: the
epoch's wall seconds (log.csv; it includes the validation pass), seconds per optimiser step (the
epoch divided by the steps of one rank: studies / N), and the peak resident memory of the largest
process (GNU time's ``%M`` of the torchrun command: the wait4 usage of a process folds in that of
the children it waited for, torchrun's workers). A small network (``--channels 4,8,16,32``) keeps the epoch to
minutes on a CPU; the figures then weigh data loading and gradient exchange more than a shipped
network's would. With ``--stream on`` a process holds one batch and the DataLoader's prefetch, not
the cohort: its memory should not grow with ``--studies`` (compare with a smaller ``--studies``).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

from spectac.io.dataset import Dataset, write_manifest


def linked_cohort(source: Path, out: Path, studies: int, val: int = 20) -> Path:
    """OUT with ``studies`` training studies linked from ``source``'s (cycled) and ``val`` of its
    validation studies; returns OUT."""
    ds = Dataset.open(source)
    train = [c for c in ds.cases if c.split == "train"]
    valid = [c for c in ds.cases if c.split == "val"][:val]
    (out / "studies").mkdir(parents=True, exist_ok=True)
    cases = []
    for i in range(studies):
        case = train[i % len(train)]
        new_id = f"L{i:05d}_{case.state}"
        link = out / "studies" / new_id
        if not link.exists():
            link.symlink_to(ds.study_dir(case.case_id).resolve(), target_is_directory=True)
        cases.append(replace(case, case_id=new_id, patient_id=f"L{i:05d}", split="train"))
    for case in valid:
        link = out / "studies" / case.case_id
        if not link.exists():
            link.symlink_to(ds.study_dir(case.case_id).resolve(), target_is_directory=True)
        cases.append(case)
    write_manifest(out, {**ds.meta, "linked_from": str(source.name), "studies": studies}, cases)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dataset", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--studies", type=int, default=1000)
    parser.add_argument("--processes", default="1,2")
    parser.add_argument("--model", default="unet3d")
    parser.add_argument("--channels", default="4,8,16,32")
    args = parser.parse_args()
    data = linked_cohort(args.dataset, args.out / f"linked{args.studies}", args.studies)
    cores = os.cpu_count() or 1
    print(f"{args.studies} training studies (linked), model {args.model} channels {args.channels}, "
          f"{cores} cores, --stream on\n")
    print("| processes | threads each | epoch s | s per step (one rank) | peak RSS of a process (MB) |")
    print("|---|---|---|---|---|")
    for n in (int(p) for p in args.processes.split(",")):
        run = args.out / f"run{args.studies}_{n}"
        env = {**os.environ, "OMP_NUM_THREADS": str(max(cores // n, 1)), "SPECTAC_PROGRESS": "0"}
        command = ["/usr/bin/time", "-f", "peak_kb=%M", str(Path(sys.executable).with_name("torchrun")), "--standalone", f"--nproc-per-node={n}", "-m",
                   "spectac.cli", "train", "--model", args.model, "--data", str(data), "--out", str(run),
                   "--epochs", "1", "--stream", "on", "--patience", "0", "--channels", args.channels]
        start = time.perf_counter()
        done = subprocess.run(command, env=env, capture_output=True, text=True)
        wall = time.perf_counter() - start
        if done.returncode != 0:
            print(done.stdout[-2000:], done.stderr[-2000:], file=sys.stderr)
            return 1
        rows = (run / "log.csv").read_text().splitlines()
        epoch = float(rows[-1].split(",")[-1])
        peak = int(next(line for line in reversed(done.stderr.splitlines()) if line.startswith("peak_kb="))[8:]) / 1024
        print(f"| {n} | {env['OMP_NUM_THREADS']} | {epoch:.0f} (process {wall:.0f}) | {epoch / (args.studies / n):.3f} "
              f"| {peak:.0f} |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
