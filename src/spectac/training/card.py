"""MODEL_CARD.md from what a model folder itself records: config.json, training_record.json and,
when measured, metrics.json. Two models trained on different data get different cards.

    from spectac.training.card import write_model_card
    write_model_card("runs/models/unet-gan3d")       # also run at the end of every `spectac train`

metrics.json (optional; written by scripts/install_model.py from `spectac evaluate`'s Table 1)::

    {"split": "test", "dataset": "cohort0", "studies": 40, "patients": 20,
     "command": "bash benchmarks/quality.sh data/cohort0 runs/main", "source": "BENCHMARKS.md",
     "table": ["| method | n | ME | ... |", "|---|...", "| unet-gan3d | 40 | ... |"]}
"""

from __future__ import annotations

import json
import shlex
from pathlib import Path
from typing import Any

import spectac.training.record as rec
from spectac.io import training_files as files
from spectac.io.training_files import CARD as CARD  # re-exported: the file names of a model folder
from spectac.io.training_files import METRICS as METRICS

PAPER = ("Chu Minh Duc et al., \"Effectiveness of using deep learning model with attenuation correction in "
         "myocardial perfusion imaging by SPECT\", Journal of 108 Clinical Medicine and Pharmacy, 2023, "
         "doi:10.52389/ydls.v18iYHHN.1928")

#: What each registered network follows (docs/models.md, "The registered models").
ORIGIN = {
    "unet-gan3d": "the 3DUnet-GAN of Chu Minh Duc et al. (2023, below): 3D U-Net generator, 3D patch "
                  "discriminator, GAN + 100 x L1",
    "unet3d": "the 3DUnet-GAN's generator trained by L1 alone (no discriminator)",
    "unet2d": "the same U-Net in 2D, applied to every axial slice, L1",
    "pix2pix2d": "pix2pix on axial slices: the 2D U-Net with a 2D patch discriminator, GAN + 100 x L1",
    "resnet": "a dilated residual network at full resolution after Mostafapour et al. (2021), L1",
    "unet-gan3d-chang": "spectac's own, not in the paper: unet-gan3d given the log first-order Chang "
                        "factor as a second input channel",
    "unet3d-mu": "spectac's own, not in the paper: the unet3d network trained to predict the mu-map from NC "
                 "and, when its config says so, the scatter-window image (the indirect route: deep-learning "
                 "mu-maps from the photopeak and scatter windows as in Shi et al., Eur J Nucl Med Mol Imaging "
                 "2020), used by `spectac correct --route indirect`",
}


def _fmt_hours(seconds: float | None) -> str:
    if seconds is None:
        return "not recorded"
    return f"{seconds / 3600:.2f} h" if seconds >= 360 else f"{seconds:.0f} s"


def rebuilt_command(config: dict[str, Any], folder: str) -> str:
    """The ``spectac train`` command equivalent to a stage's resolved config (when no argv was kept)."""
    training, network = config["training"], config["network"]
    args = ["spectac", "train", "--model", config["model"], "--data", str(config["data"]["dataset"]),
            "--out", folder, "--epochs", str(training["epochs"]), "--patience", str(training["patience"]),
            "--seed", str(training["seed"]), "--lr", f"{training['lr']:g}", "--lr-schedule",
            training.get("lr_schedule", "constant")]
    if training.get("batch_size", 1) != 1:
        args += ["--batch-size", str(training["batch_size"])]
    init = training.get("init")
    if init:
        args += ["--init", init["name"] if isinstance(init, dict) else str(init)]
    if training.get("clean_target"):
        args.append("--clean-target")
    for extra in config["data"].get("extra_train", []):
        args += ["--extra-train", str(extra["dataset"])]
    if "channels" in network:
        args += ["--channels", ",".join(str(c) for c in network["channels"])]
    return shlex.join(args + augmentation_args(training))


def recorded_augmentation(training: dict[str, Any]) -> dict[str, Any]:
    """A stage's augmentation ranges; a part recorded before it existed was off, and a config
    without any augmentation had the "basic" one."""
    from dataclasses import asdict

    from spectac.training.data import PRESETS

    return {**asdict(PRESETS["none"]), **training.get("augmentation", asdict(PRESETS["basic"]))}


def augmentation_args(training: dict[str, Any]) -> list[str]:
    """The ``--augment``/``--aug`` arguments that give a stage's recorded augmentation."""
    from dataclasses import asdict

    from spectac.training.data import PRESETS

    ranges = recorded_augmentation(training)
    for name, preset in PRESETS.items():
        if asdict(preset) == ranges:
            return ["--augment", name]
    none = asdict(PRESETS["none"])
    return ["--augment", "none", *[a for key, value in ranges.items() if value != none[key]
                                   for a in ("--aug", f"{key}={json.dumps(value)}")]]


def augmentation_text(training: dict[str, Any], target: str = "ac", scatter: bool = False) -> str:
    """One line saying what a stage's augmentation did (to a mu-map target: the shifts only; to a
    scatter-window image input: what it did to NC)."""
    a = recorded_augmentation(training)
    nc = "NC and the scatter image" if scatter else "NC"
    if target == "mu":
        a = {**a, "smooth_target": False}
    parts = []
    if a["truncation"] > 0 and a["truncation_max"] > 0:
        parts.append(f"lateral truncation with probability {a['truncation']:g}, up to {a['truncation_max']:.0%} of "
                     f"the body width a side")
    if a["counts"] > 1:
        parts.append(f"counts x{1 / a['counts']:.2g}-{a['counts']:g}"
                     + (f" with Poisson-like noise ({a['noise']:g})" if a["noise"] > 0 else ""))
    if a["intensity"] > 0:
        parts.append(f"intensity +-{a['intensity']:.0%}")
    if a["smooth_sigma"] > 0:
        parts.append(f"smoothing sigma 0-{a['smooth_sigma']:g} voxel of {nc}" + (" and AC" if a["smooth_target"] else ""))
    if a["shift_voxels"] > 0:
        parts.append(f"shifts up to {a['shift_voxels']} voxels" + (f" (of {nc} and the mu-map together)"
                                                                   if target == "mu" else ""))
    if scatter and (a["counts"] > 1 or a["truncation"] > 0):
        parts.append("counts and truncation alter the scatter image as NC (its own noise)")
    return ", ".join(parts) if parts else "none"


def _command(stage: dict[str, Any]) -> str:
    if stage.get("argv"):
        return shlex.join(stage["argv"])
    return rebuilt_command(stage["config"], stage.get("folder", "MODEL_DIR"))


def _hardware(hw: dict[str, Any] | None) -> str:
    if not hw:
        return "not recorded"
    parts = []
    if hw.get("torch"):
        parts.append(f"torch {hw['torch']}")
    if hw.get("threads") is not None:
        parts.append(f"{hw['threads']} thread{'s' if hw['threads'] != 1 else ''}")
    if hw.get("cpu"):
        cores = f" ({hw['cpu_count']} cores)" if hw.get("cpu_count") else ""
        parts.append(f"{hw['cpu']}{cores}")
    if hw.get("device") and hw["device"] != "cpu":
        parts.append(hw["device"])
    if hw.get("note"):
        parts.append(hw["note"])
    return ", ".join(parts)


def _dataset_lines(identity: dict[str, Any] | None, data: dict[str, Any]) -> list[str]:
    name = (identity or {}).get("name") or data.get("dataset", "unknown")
    lines = []
    source = (identity or {}).get("source", "unknown")
    if source == "simulation":
        sim = identity.get("simulation") or {}
        origin = (f"simulated by `spectac simulate --patients {sim.get('patients')} --seed {sim.get('seed')}`"
                  if sim.get("patients") is not None else "simulated by `spectac simulate`")
        if sim.get("config"):
            cfg = sim["config"]
            phantom = ", ".join(f"{k} {json.dumps(cfg[k])}" for k in sorted(cfg) if k not in ("protocol",))[:400]
            origin += f" (simulation settings: {phantom})"
    elif source == "import":
        origin = "imported SPECT/CT pairs (`spectac import`)"
    else:
        origin = f"source: {source}"
    lines.append(f"- Dataset `{name}`: {origin}.")
    splits = (identity or {}).get("splits")
    if splits:
        text = "; ".join(f"{s}: {v['studies']} studies of {v['patients']} patients" for s, v in splits.items())
        held = "; test held out" if "test" in splits else ""
        lines.append(f"- Splits (by patient): {text}. Fitted on train, selected on val{held}.")
    else:
        lines.append(f"- Used: {data.get('train_cases')} train / {data.get('val_cases')} val studies.")
    for extra in data.get("extra_train", []):
        lines.append(f"- Also trained on the {extra.get('train_cases')} train studies of dataset `{extra.get('dataset')}` "
                     f"(`--extra-train`; fingerprint: " + ", ".join(f"{k} `{v}`" for k, v in extra.get("fingerprint", {}).items())
                     + ").")
    shas = (identity or {}).get("sha256") or data.get("fingerprint")
    if shas:
        lines.append("- Fingerprint (sha256): " + ", ".join(f"{k} `{v}`" for k, v in shas.items()) + ".")
    else:
        lines.append("- Fingerprint: not recorded (the dataset was not on the machine that wrote this card).")
    if data.get("shape"):
        protocol = data.get("protocol") or {}
        orbit = (f"; acquisition {protocol.get('n_views')} views over {protocol.get('arc_deg')} deg"
                 if protocol.get("n_views") else "")
        lines.append(f"- Volumes {data['shape']} at {[round(float(x), 2) for x in data['spacing_mm']]} mm{orbit}.")
    return lines


def model_card(model_dir: str | Path) -> str:
    """The model card of ``model_dir`` (config.json + training_record.json [+ metrics.json])."""
    folder = Path(model_dir)
    config = files.read_config(folder)
    record = rec.read_record(folder) or {"stages": []}
    metrics = files.read_metrics(folder)
    model, network, data = config["model"], config["network"], config.get("data", {})
    stages = record["stages"]
    last = stages[-1] if stages else {}
    identity = last.get("dataset")

    out = [f"# {model}: model card", ""]
    if record.get("reconstructed"):
        out += [f"> {record['reconstructed']}", ""]
    prior = (" and the log first-order Chang factor made from the NC image (docs/models.md)"
             if network.get("prior", "none") == "chang" else "")
    mu = config.get("target", "ac") == "mu"
    scatter = bool(network.get("scatter_input", False))
    if scatter:
        recipe = (config.get("inputs") or {}).get("scatter_image") or {}
        osem = recipe.get("osem") or {}
        prior += (" and the scatter-window image / its own percentile: OSEM of the broad window below the photopeak "
                  "(DEW's), else the narrow one (TEW's), without attenuation, "
                  f"{osem.get('iterations', '?')} iterations x {osem.get('subsets', '?')} subsets, "
                  f"{'PSF' if osem.get('psf') else 'no PSF'}, Butterworth {osem.get('butterworth_cutoff_per_cm', '?')} "
                  "cycles/cm (spectac.reconstruction.scatter_image; an acquisition without such a window is refused)")
    predicts = ("predictions: the mu-map in 1/cm at 140 keV (target mu)" if mu else "predictions in counts")
    out += ["## Model", "",
            f"- Follows {ORIGIN.get(model, 'spectac.nn.registry')}.",
            f"- Network: `{json.dumps(network)}`",
            f"- Input: NC / its {config['normalisation']['percentile']}th percentile{prior}; output rule "
            f"{network.get('output', 'log-ratio')}; {predicts}."]
    weights = files.weights_summary(folder / files.BEST)
    if weights is not None:
        best = last.get("best") or {}
        scale = "in 1/cm" if mu else "on the NC-normalised scale"
        selected = (f"; selected at epoch {best['epoch']} of stage {last.get('stage')} "
                    f"(validation L1 {best['val_l1']:.5f} {scale})" if best.get("epoch") else "")
        size, sha256 = weights
        out.append(f"- Weights: best.pt ({size / 1e6:.2f} MB, sha256 `{sha256[:16]}...`){selected}.")
    out += ["", "## Data", "", *_dataset_lines(identity, data), ""]

    out += ["## Training", ""]
    if stages:
        out += ["| stage | epochs | lr, schedule | seed | starts from | best epoch (val L1) | wall time | hardware |",
                "|---|---|---|---|---|---|---|---|"]
        total = 0.0
        for stage in stages:
            training = stage["config"]["training"]
            ep = stage.get("epochs", {})
            init = stage.get("init")
            start = (f"{init['name']}" if init else
                     "its own epoch " + str(ep.get("start", 1) - 1) if stage.get("resumed") else "random (seed)")
            best = stage.get("best") or {}
            best_text = f"{best['epoch']} ({best['val_l1']:.5f})" if best.get("epoch") else "-"
            status = "" if stage.get("status") in ("finished", None) else f" ({stage['status']})"
            total += stage.get("wall_seconds") or 0.0
            out.append(f"| {stage.get('stage')}{status} | {ep.get('start')}-{ep.get('end')} of {ep.get('planned')} "
                       f"| {training['lr']:g}, {training.get('lr_schedule', 'constant')} | {stage.get('seed')} "
                       f"| {start} | {best_text} | {_fmt_hours(stage.get('wall_seconds'))} "
                       f"| {_hardware(stage.get('hardware'))} |")
        target = config.get("target", "ac")
        out += ["", "Augmentation: " + "; ".join(f"stage {s.get('stage')}: "
                                                 f"{augmentation_text(s['config']['training'], target, scatter)}"
                                                 for s in stages) + "."]
        out += ["", "Commands, in order:", ""]
        out += [f"{s.get('stage')}. `{_command(s)}`" + (f" (in `{s['folder']}`)" if s.get("folder") and not s.get("argv")
                                                      else "") for s in stages]
        notes = [f"- Stage {s.get('stage')}"
                 + (f" (shipped in commit {s['shipped_in_commit']})" if s.get("shipped_in_commit") else "")
                 + (f": {s['note']}" if s.get("note") else "") + "."
                 for s in stages if s.get("note") or s.get("shipped_in_commit")]
        if notes:
            out += ["", *notes]
        out += ["", f"Total training time {_fmt_hours(total)}; the record of every stage (config, dataset, "
                "hardware, log rows) is training_record.json."]
    else:
        out.append("No training record (training_record.json) beside these weights.")
    out.append("")

    out += ["## Test-split metrics", ""]
    if metrics:
        where = f"`{metrics.get('dataset', identity and identity.get('name'))}`"
        size = (f" ({metrics['studies']} studies of {metrics['patients']} patients never seen in training or "
                "model selection)" if metrics.get("studies") else "")
        cmd = f" with `{metrics['command']}`" if metrics.get("command") else ""
        src = f" ({metrics['source']})" if metrics.get("source") else ""
        out += [f"Measured against CT-AC on the {metrics.get('split', 'test')} split of {where}{size}{cmd}{src}:",
                "", *metrics["table"]]
    else:
        test = ((identity or {}).get("splits") or {}).get("test")
        held = (f" ({test['studies']} studies of {test['patients']} patients held out)" if test else "")
        if mu:  # predict/evaluate score AC images; a mu model's images come from the projections
            out.append(f"Not measured yet on the test split{held}: its images are made by `spectac correct --route "
                       "indirect` from each study's raw projections (docs/projections.md).")
        else:
            out.append(f"Not measured yet on the test split{held}: `spectac predict --split test` then "
                       "`spectac evaluate` (docs/evaluation.md), and scripts/install_model.py --metrics.")
    out.append("")

    if mu:
        out += ["## Quality control", "", _qc_text(config.get("qc")), ""]

    out += ["## Limits", ""]
    if (identity or {}).get("source") == "simulation" or "simulate" in str(data.get("dataset", "")):
        out.append("Trained on simulated studies only; a clinic's camera, reconstruction and patients differ, so "
                   "retrain or fine-tune on local SPECT/CT pairs (`spectac import`, `spectac train --init`) "
                   "before clinical use.")
    else:
        out.append("Valid for studies like its training data (camera, reconstruction, population); check on "
                   "held-out local pairs before clinical use.")
    if mu:
        out.append("")
        out.append("The target is each study's stored mu-map moved back by the CT-to-SPECT misregistration the "
                   "simulator recorded (lv.json `phantom.mu_shift_mm`): the body that attenuated the projections. "
                   "Imported clinical pairs have no such record, and their CT's own misregistration is learnt on "
                   "average. " + ("The NC and scatter-window images" if scatter else "The NC image alone")
                   + " carry little about lungs and bone; check a study's consistency "
                   "index (printed by `correct --route indirect`).")
    out += ["", "## Reference", "", f"{PAPER}.", ""]
    return "\n".join(out)


def _qc_text(block: object) -> str:
    """The card's words on a mu model's consistency threshold (config.json ``qc``, docs/projections.md)."""
    if not isinstance(block, dict) or "threshold" not in block:
        return ("No consistency threshold calibrated: `correct --route indirect` and `qc` print the index "
                "without a flag. Calibrate one with `benchmarks/indirect_qc.py DATASET --mu-model DIR "
                "--write-threshold DIR` (config.json `qc` block, docs/projections.md).")
    quantile = block.get("quantile")
    how = f"the {100 * float(quantile):g}th percentile of" if isinstance(quantile, int | float) else "calibrated on"
    studies = f" {block['studies']}" if block.get("studies") is not None else ""
    on = f" ({block['calibrated_on']})" if block.get("calibrated_on") else ""
    return (f"Consistency threshold {block['threshold']} (config.json `qc` block): {how} the indirect route's index "
            f"on{studies} studies{on}. `correct --route indirect` flags a study whose index exceeds it, and "
            "`qc --weights` with this model (`--qc-threshold` overrides); it holds for the route's own OSEM "
            "settings and unfiltered image.")


def write_model_card(model_dir: str | Path) -> Path:
    """Write ``model_dir``/MODEL_CARD.md from its own record; returns its path."""
    return files.write_card(model_dir, model_card(model_dir))
