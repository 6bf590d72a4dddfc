"""Wall and CPU time of whole ``spectac correct`` processes (start-up included), ONNX runtime
against torch, interleaved so that the load of the machine falls on both alike.

    PYTHONPATH=src python benchmarks/bench_correct_process.py NC.nii.gz [--runs 5] [--threads 2]
        [--uncertainty on|off] [--method unet-gan3d-chang]

Each run is ``python -m spectac.cli correct NC -o OUT`` in a new process, the ONNX way (the default
for shipped weights) and the torch way (``SPECTAC_RUNTIME=torch``) in turn, with
``OMP_NUM_THREADS`` = ``--threads`` (onnxruntime and torch read it). Reported per way: median, min
and max wall seconds and the median CPU seconds (user + system of the child: the figure to trust on
a shared machine), whether the process imported torch (checked in the child after the command,
one extra run per way), and the largest difference between the two ways' outputs relative to the
maximum. Prints a Markdown snippet for BENCHMARKS.md.

spectac's own modules are byte-compiled first (``compileall``), as pip does when it installs a
package and as Python does on a first run: with ``PYTHONDONTWRITEBYTECODE`` set and an editable
install, every process would otherwise compile them from source again (about 0.1 s measured).
"""

from __future__ import annotations

import argparse
import compileall
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from spectac.io.nifti import read_nifti

#: Runs ``spectac correct`` as the command line does, then says whether torch was imported.
PROBE = """
import runpy, sys
sys.argv = ["spectac", "correct", *sys.argv[1:]]
try:
    runpy.run_module("spectac.cli", run_name="__main__")
except SystemExit as exc:
    code = exc.code
print("torch imported" if "torch" in sys.modules else "torch not imported", file=sys.stderr)
sys.exit(code)
"""
WAYS = {"onnx": {}, "torch": {"SPECTAC_RUNTIME": "torch"}}


def run_once(args: list[str], env: dict[str, str]) -> tuple[float, float, str]:
    """(wall s, child CPU s, stderr) of one process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(args, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(args)} failed:\n{done.stderr}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, done.stderr


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("nc", type=Path)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--uncertainty", choices=("on", "off"), default="on")
    parser.add_argument("--method", default=None)
    args = parser.parse_args()
    src = str(Path(__file__).resolve().parents[1] / "src")
    base = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "MKL_NUM_THREADS": str(args.threads),
            "SPECTAC_PROGRESS": "0", "PYTHONPATH": os.pathsep.join(p for p in (src, os.environ.get("PYTHONPATH")) if p)}
    base.pop("SPECTAC_RUNTIME", None)
    compileall.compile_dir(str(Path(src) / "spectac"), quiet=1)
    options = ["--uncertainty", args.uncertainty] + (["--method", args.method] if args.method else [])
    times: dict[str, list[tuple[float, float]]] = {way: [] for way in WAYS}
    imported: dict[str, str] = {}
    outputs: dict[str, np.ndarray] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for way, extra in WAYS.items():  # the torch check, and one warm-up run each (file cache)
            out = Path(tmp) / f"{way}-probe.nii.gz"
            _, _, err = run_once([sys.executable, "-c", PROBE, str(args.nc), "-o", str(out), *options],
                                 {**base, **extra})
            imported[way] = "yes" if "torch imported" in err else "no"
            outputs[way] = read_nifti(out).array
        for i in range(args.runs):
            for way, extra in WAYS.items():
                out = Path(tmp) / f"{way}-{i}.nii.gz"
                wall, cpu, _ = run_once([sys.executable, "-m", "spectac.cli", "correct", str(args.nc), "-o", str(out),
                                         *options], {**base, **extra})
                times[way].append((wall, cpu))
    difference = float(np.abs(outputs["onnx"] - outputs["torch"]).max() / np.abs(outputs["torch"]).max())
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    command = (f"python benchmarks/bench_correct_process.py {args.nc} --runs {args.runs} --threads {args.threads} "
               f"--uncertainty {args.uncertainty}" + (f" --method {args.method}" if args.method else ""))
    print(f"`{command}` on {platform.processor() or platform.machine()} ({os.cpu_count()} CPUs), "
          f"load average {load:.1f} at the end, {args.runs} runs per way interleaved, spectac "
          "byte-compiled:\n")
    print("| runtime | wall median (s) | min | max | CPU median (s) | torch imported |")
    print("|---|---|---|---|---|---|")
    for way in WAYS:
        wall = [w for w, _ in times[way]]
        cpu = [c for _, c in times[way]]
        print(f"| {way} | {statistics.median(wall):.2f} | {min(wall):.2f} | {max(wall):.2f} | "
              f"{statistics.median(cpu):.2f} | {imported[way]} |")
    print(f"\nmax |onnx - torch| / max |torch| of the two outputs: {difference:.1e}")


if __name__ == "__main__":
    main()
