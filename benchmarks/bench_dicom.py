"""Speed of DICOM input/output: write and read an NM multi-frame volume and a folder of slices,
and `spectac import` of exported studies (median of repeats, seconds).

Usage:
    python benchmarks/bench_dicom.py [--repeats 5] [--studies 4]

Prints a Markdown table for BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from spectac.io.dataset import Case, write_manifest, write_study
from spectac.io.dicom import export_dataset_dicom, new_context, read_dicom_volume, write_dicom_series
from spectac.io.importer import import_dicom_dataset
from spectac.volume import Volume


def _volume(n: int, seed: int = 0) -> Volume:
    rng = np.random.default_rng(seed)
    return Volume.centred(rng.poisson(50.0, (n, n, n)).astype(np.float32), 6.8 * 64 / n)


def _median(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--studies", type=int, default=4)
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        counter = iter(range(10**6))
        for n in (64, 128):
            volume = _volume(n)
            for kind in ("nm-multiframe", "slices"):
                ctx = new_context("B", "1.2.826.0.1.3680043.8.498.1", "1.2.826.0.1.3680043.8.498.2", kind=kind)
                name = "nm.dcm" if kind == "nm-multiframe" else "slices"

                def write(ctx=ctx, name=name, volume=volume) -> None:
                    write_dicom_series(volume, ctx, root / f"w{next(counter)}" / name, "bench")

                write_s = _median(write, args.repeats)
                target = root / f"r{n}{kind}" / name
                write_dicom_series(volume, ctx, target, "bench")
                read_s = _median(lambda target=target: read_dicom_volume(target), args.repeats)
                rows.append((f"{kind} {n}^3", write_s, read_s))
        data = root / "data"
        cases = []
        for i in range(args.studies):
            v = _volume(64, i)
            write_study(data, f"s{i}", {"nc": v, "ac": v.with_array(v.array * 3), "mu": v.with_array(v.array * 0.003)})
            cases.append(Case(f"s{i}", f"P{i}", "stress", "F"))
        write_manifest(data, {"source": "bench"}, cases)
        start = time.perf_counter()
        export_dataset_dicom(data, root / "export", mu_as="ct")
        export_s = time.perf_counter() - start
        start = time.perf_counter()
        import_dicom_dataset(root / "export/nc", root / "export/ac", root / "imported", mu_dir=root / "export/mu")
        import_s = time.perf_counter() - start
    print(f"DICOM I/O on {platform.processor() or platform.machine()}, python {sys.version.split()[0]}, "
          f"median of {args.repeats}\n")
    print("| volume | write (s) | read (s) |\n| --- | --- | --- |")
    for name, w, r in rows:
        print(f"| {name} | {w:.3f} | {r:.3f} |")
    print(f"\nexport-dicom of {args.studies} 64^3 studies (NC, AC NM; mu as 64 CT slices): {export_s:.2f} s; "
          f"import with CT->mu and resampling: {import_s:.2f} s ({import_s / args.studies:.2f} s per study)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
