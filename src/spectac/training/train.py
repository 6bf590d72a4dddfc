"""Train a registered network on a dataset: ``spectac train``.

MODEL_DIR after a run::

    config.json           the resolved configuration (model, network, training, normalisation,
                          data named and fingerprinted, never located: no machine path)
    best.pt               generator weights with the best validation L1, with the config inside
    last.pt               everything needed to resume (all weights, optimisers, epoch, loss history)
    log.csv               one row per epoch (losses, validation L1, learning rate, seconds)
    training_record.json  one stage per invocation: command line, config, seed, epochs, init
                          weights, dataset fingerprint, hardware, wall time, log rows
                          (:mod:`spectac.training.record`)
    MODEL_CARD.md         written from config + record (+ metrics.json) by :mod:`spectac.training.card`
    tensorboard/          the same curves for TensorBoard, when it is installed

Each epoch ends by writing best.pt (if improved), then last.pt, then log.csv, each atomically,
so a run killed at any moment resumes from the last finished epoch when the same command is run
again. Data order and augmentation are drawn from (seed, epoch), so a resumed run sees the same
batches as an uninterrupted one. The checkpoints hold no wall times (those are in log.csv only),
so the same command with the same seed writes byte-identical best.pt and last.pt.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch

import spectac.io.training_files as files
import spectac.training.distributed as ddp
import spectac.training.record as rec
from spectac import __version__
from spectac.acquisition.protocol import Protocol
from spectac.correction.chang import protocol_of
from spectac.devices import autocast, check_amp, resolve_device
from spectac.io.checkpoint import load_checkpoint, save_checkpoint
from spectac.io.dataset import Dataset
from spectac.nn.registry import (
    build_discriminator,
    build_generator,
    generator_config,
    get_spec,
    resolve_config,
    takes_scatter,
)
from spectac.progress import track
from spectac.reconstruction.scatter_image import DESCRIPTION, RECIPE, WINDOW_ROLES
from spectac.training.card import write_model_card
from spectac.training.data import PRESETS, batches, check_clean_target, check_extra_train, load_pairs
from spectac.training.options import RESUMABLE_CHANGES, TrainOptions, check_network
from spectac.training.steps import AdversarialStep, L1Loss, SupervisedStep, mean_l1
from spectac.training.stream import AUTO_STREAM_STUDIES, ChainedStream, StudyStream, stream_batches
from spectac.volume import SpectacError


def _build_config(model: str, network: dict[str, Any] | None, options: TrainOptions, dataset: Dataset,
                  train: list[str], n_val: int, extras: Sequence[Dataset] = ()) -> dict[str, Any]:
    spec = get_spec(model)
    training = asdict(options)
    training["lr"] = options.resolved_lr(spec.adversarial)
    training["betas"] = [0.5, 0.999] if spec.adversarial else [0.9, 0.999]
    training["init"] = rec.init_identity(options.init, model)  # name + sha256, not a path
    first = dataset.load(train[0], "nc")
    identity = rec.dataset_identity(dataset.root, dataset.meta, dataset.cases)
    resolved = resolve_config(model, network)
    data: dict[str, Any] = {
        "dataset": identity["name"],  # by name and fingerprint: no machine path
        "fingerprint": identity["sha256"],
        "train_cases": len(train),
        "val_cases": n_val,
        "shape": list(first.shape),
        "spacing_mm": list(first.spacing),
        "protocol": protocol_of(dataset.meta).to_dict(),  # the orbit a Chang prior was made for
    }
    if extras:  # the train splits of other datasets, trained on beside --data's (recorded only when given)
        data["extra_train"] = [
            {"dataset": e["name"], "fingerprint": e["sha256"], "train_cases": len(x.split("train"))}
            for x, e in ((x, rec.dataset_identity(x.root, x.meta, x.cases)) for x in extras)]
    return _as_saved({
        "model": model,
        "target": spec.target,  # what the network predicts: the AC image, or the mu-map in 1/cm
        "network": resolved,
        "inputs": model_inputs(resolved),
        "training": training,
        "normalisation": {"method": "nc-percentile", "percentile": options.percentile},
        "selection": "val-l1" if n_val else "train-l1",
        "data": data,
        "spectac_version": __version__,
    })


def model_inputs(network: dict[str, Any]) -> dict[str, Any]:
    """What the network's input channels are, for config.json: NC, the scatter-window image and
    the recipe it is made with (:mod:`spectac.reconstruction.scatter_image`), the prior."""
    channels = ["nc"] + (["scatter"] if takes_scatter(network) else [])
    if network.get("prior", "none") != "none":
        channels.append(f"prior:{network['prior']}")
    record: dict[str, Any] = {"channels": channels}
    if takes_scatter(network):
        record["scatter_image"] = {"windows": list(WINDOW_ROLES), "osem": RECIPE.to_dict(),
                                   "normalisation": "own percentile", "description": DESCRIPTION}
    return record


def _as_saved(config: dict[str, Any]) -> dict[str, Any]:
    """The config as config.json holds it (JSON types: lists, not tuples), so the copy inside
    every checkpoint equals the file."""
    return json.loads(json.dumps(config))


def _same_run(previous: dict[str, Any], current: dict[str, Any]) -> bool:
    def strip(config: dict[str, Any]) -> dict[str, Any]:
        config = json.loads(json.dumps(config))
        config.setdefault("target", "ac")  # runs saved before mu models predicted AC
        # settings added in later versions take their defaults in a run saved before them
        config["network"] = resolve_config(config["model"], config["network"])
        # an augmentation recorded before a part existed did not have that part
        before = config["training"].get("augmentation", asdict(PRESETS["basic"]))
        config["training"]["augmentation"] = {**asdict(PRESETS["none"]), **before}
        for key, value in json.loads(json.dumps(asdict(TrainOptions()))).items():
            config["training"].setdefault(key, value)
        config["data"].setdefault("protocol", json.loads(json.dumps(Protocol().to_dict())))  # as saved: lists
        # runs saved before the record kept the dataset's and the init weights' absolute paths
        config["data"]["dataset"] = Path(str(config["data"]["dataset"])).name
        config["data"].pop("fingerprint", None)
        init = config["training"].get("init")
        config["training"]["init"] = init.get("name") if isinstance(init, dict) else (
            None if init is None else Path(str(init)).name)
        fixed = ("epochs",) if config["training"].get("lr_schedule", "constant") != "constant" else ()
        config["training"].pop("world_size", None)  # a checkpoint resumes on any number of processes
        for key in RESUMABLE_CHANGES:
            if key not in fixed:
                config["training"].pop(key, None)
        config.pop("spectac_version", None)
        return config

    fingerprints = [c.get("data", {}).get("fingerprint") for c in (previous, current)]
    if all(fingerprints) and fingerprints[0] != fingerprints[1]:
        return False  # the same dataset name with other cases or settings
    return strip(previous) == strip(current)


def _summary_writer(out: Path, start_epoch: int) -> Any:
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:  # TensorBoard is optional; log.csv has the same numbers
        return None
    return SummaryWriter(str(out / "tensorboard"), purge_step=start_epoch)


def train_model(
    data: str | Path,
    out: str | Path,
    model: str,
    options: TrainOptions | None = None,
    network: dict[str, Any] | None = None,
    argv: list[str] | None = None,
    runtime: ddp.Runtime | None = None,
    extra_train: Sequence[str | Path] = (),
) -> dict[str, Any]:
    """Train ``model`` on the train split of ``data`` (and of every ``extra_train`` dataset),
    selecting by ``data``'s validation L1; resume if ``out`` holds an unfinished run of the same
    configuration.

    Args:
        data: dataset folder (spectac.io.dataset layout) with train (and val) cases.
        out: model folder to write (see the module docstring).
        model: a name of :mod:`spectac.nn.registry`.
        options: training options.
        network: overrides of the network defaults (e.g. {"channels": [8, 16, 32, 64]}).
        argv: the command line that asked for this run, kept (without absolute paths) in the
            stage it adds to training_record.json; None when not run from the command line.
        runtime: device, mixed precision, torchrun and streaming (:class:`ddp.Runtime`; default:
            one process on the CPU, studies in memory).
        extra_train: other dataset folders whose train splits are trained on too (e.g. a second
            simulated cohort, or a clinic's imported pairs beside spectac's cohort), each on
            ``data``'s grid (:func:`check_extra_train`); recorded by name and fingerprint.

    Returns:
        {"model", "out", "start_epoch", "epochs_run", "last_epoch", "best_epoch", "best_val_l1",
         "stopped_early", "seconds_per_epoch"}.

    Raises:
        SpectacError: unknown model, no training cases, an extra dataset no run can use,
            ``out`` holding a different run, or a device this machine lacks.
    """
    out = Path(out)
    # Everything the user chose is checked before the model folder is made.
    get_spec(model)
    options = options or TrainOptions()
    options.check()
    check_network(resolve_config(model, network))
    if options.clean_target or extra_train:
        dataset = Dataset.open(data)
        for case in dataset.split("train") + dataset.split("val"):
            check_clean_target(dataset, case.case_id, get_spec(model).target, options.clean_target)
        check_extra_train(dataset, [Dataset.open(x) for x in extra_train], get_spec(model).target,
                          options.clean_target)
    runtime = runtime or ddp.Runtime()
    runtime.check()
    device = resolve_device(runtime.device)
    check_amp(device, runtime.amp)
    ctx = ddp.context(device, runtime.distributed)
    try:
        if not ctx.main:  # only rank 0 writes, and holds the folder's lock
            summary = _train(data, out, model, options, network, argv, ctx, runtime, extra_train)
        else:
            with files.model_folder_lock(out):
                summary = _train(data, out, model, options, network, argv, ctx, runtime, extra_train)
    except BaseException:
        ddp.finish(ctx, wait=False)  # no barrier: the other ranks may never reach it
        raise
    ddp.finish(ctx)
    return summary


def _train(data: str | Path, out: Path, model: str, options: TrainOptions, network: dict[str, Any] | None,
           argv: list[str] | None, ctx: ddp.Context, runtime: ddp.Runtime,
           extra_train: Sequence[str | Path] = ()) -> dict[str, Any]:
    spec = get_spec(model)
    dataset = Dataset.open(data)
    extras = [Dataset.open(x) for x in extra_train]
    resolved = resolve_config(model, network)
    prior, scatter = resolved.get("prior", "none"), takes_scatter(resolved)
    wall = float(resolved.get("wall_weight", 0.0)) > 0  # train pairs carry their LV wall mask
    protocol = protocol_of(dataset.meta)
    train_ids = [c.case_id for c in dataset.split("train")]
    val_ids = [c.case_id for c in dataset.split("val")]
    if not train_ids:
        raise SpectacError(f"{dataset.root}: no study in the train split")
    n_train = len(train_ids) + sum(len(x.split("train")) for x in extras)
    streaming = runtime.stream == "on" or (runtime.stream == "auto" and n_train > AUTO_STREAM_STUDIES)
    planned = streaming or ctx.distributed  # the single-process in-memory run keeps its own loop
    if streaming:  # each dataset's studies with its own protocol (the orbit its Chang prior is made for)
        train: Any = ChainedStream([
            StudyStream(x.root, [c.case_id for c in x.split("train")], options.percentile, prior, protocol_of(x.meta),
                        options.augmentation, spec.target, scatter, options.clean_target, wall)
            for x in [dataset, *extras]])
        val: Any = StudyStream(dataset.root, val_ids, options.percentile, prior, protocol, None, spec.target, scatter,
                               options.clean_target)
    else:
        train = [pair for x in [dataset, *extras]
                 for pair in load_pairs(x, "train", options.percentile, prior, protocol_of(x.meta), spec.target,
                                        scatter, options.clean_target, wall)]
        val = load_pairs(dataset, "val", options.percentile, prior, protocol, spec.target, scatter,
                         options.clean_target)
    config = _build_config(model, network, options, dataset, train_ids, len(val_ids), extras)
    if ctx.distributed:
        config["training"]["world_size"] = ctx.world_size  # the global batch is batch_size x this

    def epoch_batches(rng: np.random.Generator | None) -> tuple[Any, int]:
        """This process's (inputs, ac) batches of the train (rng given) or val split, and their count."""
        pairs, augmentation = (train, options.augmentation) if rng is not None else (val, None)
        if not planned:
            n = -(-len(pairs) // options.batch_size)
            return ddp.to_device(batches(pairs, options.batch_size, rng, augmentation), ctx.device), n
        plan = ddp.epoch_plan(len(pairs), options.batch_size, rng, augmentation, ctx)
        if streaming:
            return stream_batches(pairs, plan, runtime.workers, ctx.device), len(plan)
        return ddp.planned_batches(pairs, plan, augmentation, ctx.device), len(plan)

    torch.manual_seed(options.seed)
    generator = build_generator(config["network"])
    last_path = out / files.LAST
    resuming = files.has_file(out, files.LAST)
    if options.init is not None and not resuming:  # a resumed run has its own weights
        _init_generator(generator, options.init, model, config["network"])
    discriminator = build_discriminator(config["network"])
    generator.to(ctx.device)
    if discriminator is not None:
        discriminator.to(ctx.device)
    lr, betas = config["training"]["lr"], tuple(config["training"]["betas"])
    optimizer_g = torch.optim.Adam(generator.parameters(), lr=lr, betas=betas)
    optimizer_d = torch.optim.Adam(discriminator.parameters(), lr=lr, betas=betas) if discriminator else None
    model_g = generator  # what the steps call: DDP-wrapped below in a distributed run
    loss = L1Loss.from_network(config["network"])
    if spec.adversarial:
        step: Any = AdversarialStep(model_g, discriminator, optimizer_g, optimizer_d, config["network"]["lambda_l1"],
                                    loss)
    else:
        step = SupervisedStep(model_g, optimizer_g, loss)

    state: dict[str, Any] = {"epoch": 0, "best_val_l1": float("inf"), "best_epoch": 0, "history": []}
    if resuming:
        last = load_checkpoint(last_path)
        if not _same_run(last["config"], config):
            raise SpectacError(
                f"{out} holds a run with another configuration (see its config.json); "
                "choose another --out or delete that folder"
            )
        generator.load_state_dict(last["generator"])
        optimizer_g.load_state_dict(last["optimizer_g"])
        if discriminator is not None:
            discriminator.load_state_dict(last["discriminator"])
            optimizer_d.load_state_dict(last["optimizer_d"])
        state = {k: last[k] for k in state}
    ddp.barrier(ctx)  # every rank has read last.pt before rank 0 writes anything
    if ctx.distributed:
        step.generator = model_g = ddp.wrap(generator, ctx)
        ddp.broadcast_module(discriminator, ctx)
        step.sync_discriminator = lambda module: ddp.average_gradients(module, ctx)
    if runtime.amp:
        step.autocast = lambda: autocast(ctx.device, True)
    main = ctx.main
    # Wall times live in log.csv, not in the checkpoints (whose bytes they would change).
    seconds_of = files.logged_seconds(out) if resuming and main else {}
    for row in state["history"]:
        elapsed = row.pop("seconds", None)  # a last.pt of an earlier version kept them
        if elapsed is not None:
            seconds_of.setdefault(int(row["epoch"]), float(elapsed))
    if main:
        files.write_config(out, config)

    start_epoch = state["epoch"] + 1
    stale = state["epoch"] - state["best_epoch"]
    stopped_early = options.patience > 0 and state["epoch"] > 0 and stale >= options.patience
    work = start_epoch <= options.epochs and not stopped_early
    writer = _summary_writer(out, start_epoch) if work and main else None
    record = rec.read_record(out) if resuming and main else None
    if record is None:  # a fresh run: the history of the weights it starts from comes first
        record = {"format": rec.FORMAT, "model": model, **rec.inherited(options.init)}
    for old in record["stages"]:
        if old.get("status") == "running" and "inherited_from" not in old:
            old["status"] = "interrupted"  # we hold the folder's lock: that run is gone
    stage: dict[str, Any] = {}
    if work and main:
        stage = {
            "stage": len(record["stages"]) + 1,
            "status": "running",
            "folder": out.resolve().name,
            "argv": rec.portable_argv(list(argv)) if argv else None,
            "config": config,
            "seed": options.seed,
            "epochs": {"start": start_epoch, "end": None, "planned": options.epochs},
            "resumed": start_epoch > 1,
            "init": config["training"]["init"] if start_epoch == 1 else None,
            "dataset": rec.dataset_identity(dataset.root, dataset.meta, dataset.cases),
            **({"extra_train": [rec.dataset_identity(x.root, x.meta, x.cases) for x in extras]} if extras else {}),
            "hardware": {**rec.hardware(str(ctx.device)), "processes": ctx.world_size},
            "started_utc": rec.utc_now(),
            "finished_utc": None,
            "wall_seconds": 0.0,
            "best": None,
            "log": {"file": "log.csv", "rows": []},
            "weights_sha256": None,
            "spectac_version": __version__,
        }
        record["stages"].append(stage)
        rec.write_record(out, record)
    stage_started = time.perf_counter()
    seconds: list[float] = []
    epoch = state["epoch"]
    try:
        for epoch in range(start_epoch, options.epochs + 1):
            if stopped_early:
                break
            started = time.perf_counter()
            rng = np.random.default_rng([options.seed, epoch])
            lr_epoch = options.lr_at(lr, epoch)
            for optimizer in (optimizer_g, optimizer_d):
                for group in optimizer.param_groups if optimizer is not None else ():
                    group["lr"] = lr_epoch
            losses: dict[str, list[float]] = {}
            train_batches, n_batches = epoch_batches(rng)
            if main:
                train_batches = track(train_batches, f"{model} epoch {epoch}/{options.epochs}", total=n_batches)
            for nc, ac in train_batches:
                for key, value in step(nc, ac).items():
                    losses.setdefault(key, []).append(value)
            if planned:  # the mean over the ranks of each rank's mean (equal numbers of steps)
                losses = dict(zip(losses, ([v] for v in ddp.mean_over_ranks([np.mean(v) for v in losses.values()], ctx))))
            train_l1 = float(np.mean(losses["l1"]))
            if not val_ids:
                val_l1 = train_l1
            elif planned:
                val_l1 = ddp.mean_l1(model_g, epoch_batches(None)[0], ctx)
            else:
                val_l1 = mean_l1(generator, epoch_batches(None)[0])
            elapsed = time.perf_counter() - started
            seconds.append(elapsed)
            row = {"epoch": epoch, **{f"train_{k}": float(np.mean(v)) for k, v in losses.items()},
                   "val_l1": val_l1, "lr": lr_epoch}
            state["history"].append(row)
            seconds_of[epoch] = elapsed
            state["epoch"] = epoch
            if val_l1 < state["best_val_l1"] - options.min_delta:
                state["best_val_l1"], state["best_epoch"] = val_l1, epoch
                if main:
                    save_checkpoint({"config": config, "generator": generator.state_dict(), "epoch": epoch,
                                     "val_l1": val_l1}, out / files.BEST)
            last = {"config": config, **state, "generator": generator.state_dict(), "optimizer_g": optimizer_g.state_dict()}
            if discriminator is not None:
                last.update(discriminator=discriminator.state_dict(), optimizer_d=optimizer_d.state_dict())
            if main:
                save_checkpoint(last, last_path)
                files.write_log(out, state["history"], seconds_of)
            _update_stage(out, record, stage, state, seconds_of, stage_started, epoch)
            if writer is not None:
                for key, value in {**row, "seconds": elapsed}.items():
                    if key != "epoch":
                        writer.add_scalar(key, value, epoch)
                writer.flush()
            if options.patience > 0 and epoch - state["best_epoch"] >= options.patience:
                stopped_early = True
                break
    except BaseException:  # interrupted (Ctrl-C) or failed: the record says so
        if stage:
            stage["status"] = "interrupted"
            rec.write_record(out, record)
        raise
    finally:
        if writer is not None:
            writer.close()
    if stage:
        stage["status"] = "stopped early" if stopped_early else "finished"
        stage["finished_utc"] = rec.utc_now()
        stage["weights_sha256"] = {name: files.sha256_file(out / name) for name in (files.BEST, files.LAST)
                                   if files.has_file(out, name)}
        rec.write_record(out, record)
    if main and rec.read_record(out) is not None:
        write_model_card(out)
    return {
        "model": model,
        "out": out,
        "start_epoch": start_epoch,
        "epochs_run": len(seconds),
        "last_epoch": state["epoch"],
        "best_epoch": state["best_epoch"],
        "best_val_l1": state["best_val_l1"],
        "stopped_early": stopped_early,
        "seconds_per_epoch": float(np.median(seconds)) if seconds else None,
        "rank": ctx.rank,
        "world_size": ctx.world_size,
    }


def _update_stage(out: Path, record: dict[str, Any], stage: dict[str, Any], state: dict[str, Any],
                  seconds_of: dict[int, float], started: float, epoch: int) -> None:
    """After each epoch: the stage's end, best, wall time and log rows so far, in training_record.json."""
    if not stage:
        return
    first = stage["epochs"]["start"]
    stage["epochs"]["end"] = epoch
    stage["wall_seconds"] = round(time.perf_counter() - started, 3)
    stage["best"] = {"epoch": state["best_epoch"], "val_l1": state["best_val_l1"]}
    stage["log"]["rows"] = [{**row, "seconds": seconds_of.get(int(row["epoch"]))} for row in state["history"]
                            if first <= int(row["epoch"]) <= epoch]
    rec.write_record(out, record)


def _init_generator(generator: torch.nn.Module, init: str | Path, model: str, network: dict[str, Any]) -> None:
    """Load the generator weights of ``init`` (model folder or .pt) into ``generator``.

    Raises:
        SpectacError: unreadable weights, or weights of another model or network configuration.
    """
    weights = files.weights_of(init)
    state = load_checkpoint(weights)
    saved = state.get("config", {}) if isinstance(state.get("config"), dict) else {}
    if saved.get("model") != model or "generator" not in state:
        raise SpectacError(f"{weights}: --init needs weights of {model}, these are of {saved.get('model', 'unknown')}")
    if generator_config(resolve_config(model, saved.get("network"))) != generator_config(network):
        raise SpectacError(f"{weights}: --init weights have network {saved.get('network')}, this run {network}")
    generator.load_state_dict(state["generator"])
