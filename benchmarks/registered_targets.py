"""A copy of a simulated dataset whose CT-AC is reconstructed with the body's own mu-map.

    PYTHONPATH=src OMP_NUM_THREADS=1 python benchmarks/registered_targets.py DATA OUT [--splits train,val]

A simulated study's CT-AC (ac.nii.gz) is reconstructed, as in clinics, with a mu-map displaced from
the body that attenuated the projections (lv.json ``phantom.mu_shift_mm``). A correction without a
CT cannot know that displacement; what it can learn is the image OSEM gives with the body's own
mu-map (the exact correction of ``benchmarks/indirect_qc.py --mu-model oracle``). OUT holds the
studies of ``--splits``, every file a symbolic link to DATA's except ac.nii.gz, which is that
reconstruction: OSEM of the study's projections (rebuilt in memory,
``spectac.reconstruction.study.study_acquisition``) with the true mu-map
(``spectac.reconstruction.study.true_mu``), the dataset's OSEM settings and TEW scatter
correction, as the simulator made ac.nii.gz with the displaced one. `spectac train --data OUT`
then learns that target. Resumes: a study whose ac.nii.gz exists is skipped; each is written
atomically. Exit 2 on a dataset without projections or misregistration records.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from spectac.errors import SpectacError
from spectac.io.atomic import write_text_atomic
from spectac.io.dataset import Dataset, cases_to_csv, recorded_mu_shift
from spectac.io.nifti import write_nifti
from spectac.reconstruction.files import reconstruct_window
from spectac.reconstruction.study import study_acquisition, study_recon_config, true_mu
from spectac.volume import Volume


def registered_ac(dataset: Dataset, case_id: str) -> Volume:
    """OSEM of the study's photopeak with the body's own mu-map and TEW, as the simulator's CT-AC."""
    acquisition = study_acquisition(dataset, case_id)
    return reconstruct_window(acquisition, acquisition.window_index(), study_recon_config(dataset), None,
                              true_mu(dataset, case_id)).result.volume


def checked_input(data: Path, out: Path, splits: str) -> tuple[Dataset, list]:
    """DATA's dataset and the studies of ``splits``, or a SpectacError naming what is wrong."""
    dataset = Dataset.open(data)
    cases = [c for s in splits.split(",") if s for c in dataset.split(s)]
    if not cases:
        raise SpectacError(f"{data}: no studies in the splits {splits!r}")
    if not any(any(recorded_mu_shift(dataset, c.case_id)) for c in cases):
        raise SpectacError(f"{data}: no CT-SPECT misregistration recorded: ac.nii.gz is registered already")
    if out.resolve() == data.resolve():
        raise SpectacError("OUT must be another folder than DATA")
    return dataset, cases


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--splits", default="train,val", help="splits to copy (default train,val)")
    args = parser.parse_args()
    try:
        dataset, cases = checked_input(args.data, args.out, args.splits)
    except SpectacError as exc:
        print(exc, file=sys.stderr)
        return 2
    (args.out / "studies").mkdir(parents=True, exist_ok=True)
    meta = {**dataset.meta, "registered_targets_of": args.data.resolve().name}
    write_text_atomic(args.out / "dataset.json", json.dumps(meta, indent=1, default=str))
    write_text_atomic(args.out / "cases.csv", cases_to_csv(cases))
    start = time.perf_counter()
    for i, case in enumerate(cases, 1):
        folder = args.out / "studies" / case.case_id
        folder.mkdir(exist_ok=True)
        for source in dataset.study_dir(case.case_id).iterdir():
            link = folder / source.name
            if source.name != "ac.nii.gz" and not link.exists():
                link.symlink_to(source.resolve())
        if not (folder / "ac.nii.gz").exists():
            try:
                write_nifti(registered_ac(dataset, case.case_id), folder / "ac.nii.gz",
                            descrip="spectac CT-AC with the body's own mu-map")
            except SpectacError as exc:
                print(f"{case.case_id}: {exc}", file=sys.stderr)
                return 2
        print(f"{i}/{len(cases)} {case.case_id}: {time.perf_counter() - start:.0f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
