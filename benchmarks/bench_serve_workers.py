"""How ``spectac serve``'s workers share the cores: the same queue of corrections (reports off, no
destinations) run by two worker threads in one process (one loaded network, one PyTorch thread
each), by two worker processes (one PyTorch thread each, as the node runs them), or by one worker
process with two PyTorch threads. The time counts from every worker having loaded the network to
the queue being empty.

    python benchmarks/bench_serve_workers.py --data DATASET [--studies 8] [--mode threads|processes|one]

Without ``--mode`` all three run, one after the other, each on a fresh work folder.
"""

from __future__ import annotations

import argparse
import multiprocessing
import shutil
import tempfile
import threading
import time
from pathlib import Path

from bench_serve import nc_study

from spectac.io.dataset import Dataset
from spectac.io.node_store import CORRECT, NodeStore
from spectac.node.config import config_from_dict


def queue(root: Path, data: Path, studies: int) -> NodeStore:
    """``studies`` NC studies of the dataset's test split queued as jobs in a fresh work folder."""
    dataset = Dataset.open(data)
    store = NodeStore(root / "work")
    store.create()
    for k in range(studies):
        _, ds = nc_study(root, k, dataset)
        store.store_instance(str(ds.SeriesInstanceUID), str(ds.SOPInstanceUID), (root / f"nc{k}.dcm").read_bytes())
        job_id = f"2026010{k:02d}T000000000000-bench{k}"
        store.take_series(str(ds.SeriesInstanceUID), job_id)
        store.write_job({"id": job_id, "status": "queued", "series_uid": str(ds.SeriesInstanceUID), "instances": 1})
        store.mark(job_id, CORRECT)
    return store


def config(root: Path):
    return config_from_dict({"ae_title": "BENCH", "port": 11112, "work": str(root / "work"), "report": False})


def process_worker(root: Path, threads: int, go, ready) -> None:
    import torch

    from spectac.node.pool import work
    from spectac.node.worker import Worker

    torch.set_num_threads(threads)
    store = NodeStore(root / "work")
    worker = Worker(config(root), store)
    worker.prepared()
    ready.put(1)
    go.wait()
    work(store, worker, lambda: not store.waiting(), lambda message: None)


def run(mode: str, data: Path, studies: int) -> float:
    root = Path(tempfile.mkdtemp(prefix=f"bench_workers_{mode}_"))
    try:
        store = queue(root, data, studies)
        if mode == "threads":
            import torch

            from spectac.node.pool import work
            from spectac.node.worker import Worker

            torch.set_num_threads(1)
            worker = Worker(config(root), store)
            worker.prepared()
            start = time.perf_counter()
            threads = [threading.Thread(target=work, args=(store, worker, lambda: not store.waiting(), lambda m: None))
                       for _ in range(2)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            return time.perf_counter() - start
        count, torch_threads = (2, 1) if mode == "processes" else (1, 2)
        context = multiprocessing.get_context("spawn")
        go, ready = context.Event(), context.Queue()
        processes = [context.Process(target=process_worker, args=(root, torch_threads, go, ready)) for _ in range(count)]
        for process in processes:
            process.start()
        for _ in processes:
            ready.get()
        start = time.perf_counter()
        go.set()
        for process in processes:
            process.join()
        return time.perf_counter() - start
    finally:
        shutil.rmtree(root, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, required=True, help="a simulated dataset (its test split's NC images)")
    parser.add_argument("--studies", type=int, default=8)
    parser.add_argument("--mode", choices=("threads", "processes", "one"))
    args = parser.parse_args()
    labels = {"threads": "2 worker threads in one process, 1 PyTorch thread each",
              "processes": "2 worker processes, 1 PyTorch thread each",
              "one": "1 worker process, 2 PyTorch threads"}
    for mode in [args.mode] if args.mode else list(labels):
        seconds = run(mode, args.data, args.studies)
        print(f"{labels[mode]}: {args.studies} corrections in {seconds:.1f} s", flush=True)


if __name__ == "__main__":
    main()
