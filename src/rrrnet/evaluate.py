"""Evaluation of a model on data, in one place: ensemble metrics (error, per-branch errors, NLL,
calibration, uncertainty), on a split (:func:`evaluate_split`, what ``fit`` and the benchmark
report), on any data (:func:`evaluate_model`, the Python API, ``rrrnet evaluate``), and the
history's per-epoch summary (:func:`error_summary`); a finished run on a dataset
(:func:`evaluate_run`, ``rrrnet evaluate``).

The ensemble's prediction is the average of the branches' softmax outputs. Uncertainty is split
the usual way: the predictive entropy H[mean p] is the total, the mean of the branches' own
entropies the expected aleatoric part, and their difference the mutual information between the
prediction and the branch (the part due to disagreement between branches).
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Iterable, Sequence

import torch
from torch.utils.data import DataLoader, Dataset

from .data import EvalImages, ImageDataset, LabelledImages, Split
from .errors import DataError
from .io import resolve_device
from .metrics import (batches, class_scores, collect_logits,  # noqa: F401  (is_dataset: train's)
                      decompose, expected_calibration_error, is_dataset, nll)
from .recipe import Recipe


def ensemble_metrics(logits: torch.Tensor, labels: torch.Tensor,
                     classes: Sequence[str] | None = None) -> dict[str, Any]:
    """Metrics of the branch ensemble from its logits ``[b, N, classes]``: error, per-branch
    errors, NLL, ECE, uncertainty, and the imbalance measures of
    :func:`rrrnet.metrics.class_scores` (``balanced_error``, ``macro_f1``, ``per_class``
    keyed by the ``classes`` names, else by "0", "1" ...)."""
    branch_probs = logits.softmax(-1)
    probs = branch_probs.mean(0)
    predicted = probs.argmax(-1)
    u = decompose(branch_probs)
    branch_errors = (logits.argmax(-1) != labels).float().mean(1)
    agreement = (logits.argmax(-1) == predicted).float().mean().item()
    return {
        "error": (predicted != labels).float().mean().item(),
        "branch_errors": branch_errors.tolist(),
        "mean_branch_error": branch_errors.mean().item(),
        "nll": nll(probs, labels),
        "ece": expected_calibration_error(probs, labels),
        "mean_entropy": u["total"].mean().item(),
        "mean_mutual_information": u["epistemic"].mean().item(),
        "branch_agreement": agreement,
        "images": int(labels.numel()),
        "branches": int(logits.shape[0]),
        **class_scores(predicted, labels, list(classes) if classes else logits.shape[-1]),
    }


def top_k(probs: torch.Tensor, classes: list[str], k: int) -> list[dict[str, Any]]:
    values, indices = probs.topk(min(k, probs.numel()))
    return [{"class": classes[i], "probability": round(v, 6)}
            for v, i in zip(values.tolist(), indices.tolist())]


@torch.no_grad()
def predict_images(model: torch.nn.Module, images: torch.Tensor, classes: list[str],
                   k: int = 5) -> list[dict[str, Any]]:
    """Top-k classes with the ensemble's probabilities and uncertainty, per image."""
    branch_probs = model.eval()(images).softmax(-1)
    u = decompose(branch_probs)
    probs = branch_probs.mean(0)
    return [{"top": top_k(p, classes, k), "entropy": round(u["total"][i].item(), 6),
             "mutual_information": round(u["epistemic"][i].item(), 6)}
            for i, p in enumerate(probs)]


def evaluate_model(model: torch.nn.Module, data: Dataset | Iterable, recipe: Recipe | None = None,
                   *, device: str | torch.device | None = None) -> dict[str, Any]:
    """The ensemble's metrics (:func:`rrrnet.evaluate.ensemble_metrics`: error, per-branch
    errors, NLL, ECE, uncertainty) on ``data``, in either of :func:`train`'s two forms; a
    ``Dataset`` is resized to ``recipe.image_size`` and normalised."""
    recipe = recipe or Recipe()
    device = resolve_device(recipe.device if device is None else device)
    loader = batches(data, recipe.image_size, recipe.batch_size * 2)
    model.to(device)
    return ensemble_metrics(*collect_logits(model, loader, device))


def evaluate_split(model: torch.nn.Module, split: Split, recipe: Recipe, device: torch.device,
                   test_images: ImageDataset | None = None) -> dict[str, Any]:
    """Ensemble metrics of the test part (the headline figures), and of the validation part
    under ``val`` when the split has one. Without a test part the headline figures are the
    validation part's: ``scored_on`` says which part they are ("test" or "val"), and a
    ``note`` says that there was no test part and that the validation images also chose the
    kept weights. ``test_images``: the test images already decoded for training, to not read
    them again."""
    classes = list(split.train.classes)

    def metrics_on(images: LabelledImages, ready: ImageDataset | None = None) -> dict[str, Any]:
        images = ready or ImageDataset(images, size=recipe.image_size, resize=recipe.resize)
        loader = DataLoader(EvalImages(images, recipe.image_size), batch_size=recipe.batch_size * 2)
        return ensemble_metrics(*collect_logits(model, loader, device), classes)

    if not len(split.test) and not len(split.val):
        raise DataError("the split has neither test nor validation images to score the model "
                        "on; give a split with a test part, such as --split 0.8,0.1,0.1")
    val = metrics_on(split.val) if len(split.val) else None
    if len(split.test):
        metrics = {**metrics_on(split.test, test_images), "scored_on": "test"}
    else:
        metrics = {**val, "scored_on": "val",
                   "note": "no test part: these are the validation part's figures, and the "
                           "validation images also chose the kept weights (early stopping), "
                           "so they flatter the model; hold out a test part for a fair figure"}
    metrics["test_images"] = len(split.test)
    if val is not None:
        metrics["val"] = val
    metrics["classes"] = classes
    return metrics


def error_summary(model: torch.nn.Module, loader: Iterable, device: torch.device,
                  forward=None) -> dict[str, float]:
    """The ensemble's error, each branch's, their mean, the ensemble gain (mean branch error
    minus ensemble error) and the disagreement (share of branch predictions that differ from
    the ensemble's)."""
    logits, labels = collect_logits(model, loader, device, forward)
    m = ensemble_metrics(logits, labels)
    row = {"error": m["error"], "mean_branch_error": m["mean_branch_error"],
           "gain": m["mean_branch_error"] - m["error"],
           "disagreement": 1.0 - m["branch_agreement"]}
    row.update({f"error_b{i}": e for i, e in enumerate(m["branch_errors"])})
    return row


SPLITS = ("train", "val", "test", "all")


def evaluate_run(run: str | os.PathLike, data: str | os.PathLike, split: str = "test",
                 out: str | os.PathLike | None = None, skip_bad_images: bool = False,
                 device: str = "auto", analysis: bool = True,
                 top: int | None = None, overwrite: bool = False) -> tuple[Path, dict[str, Any]]:
    """Metrics of a finished run's model (or its int8 file) on ``split`` of ``data`` (the run's
    per-class split sizes; ``all``: every image), written to ``out`` (default:
    ``RUN/evaluate/<dataset>-<split>.json``, listed in the run's manifest).

    With ``analysis`` (the default) the error analysis of :mod:`rrrnet.interpret` goes beside
    it, into :func:`analysis_dir` (``RUN/evaluate/<dataset>/`` for the test split): confusion
    matrix, per-class results, the ``top`` most confidently wrong images, reliability diagram.
    The metrics then also hold ``balanced_error`` and ``analysis`` (that folder).

    An ``out`` that exists is replaced only with ``overwrite``; one that is a file the command
    reads (the run's own files, the dataset's) is refused, before anything is computed."""
    from .interpret import TOP_LOSSES, interpret_logits, write_files
    from .io import make_folder, write_json
    from .metrics import run_logits
    from .rundir import check_output, no_link, record
    if out:
        # the dataset, and an int8 file standing for its run, are read (a run folder's own
        # files are protected by name: evaluate/ inside it is where results go)
        reads = [data] + ([run] if Path(run).is_file() else [])
        out = check_output(out, inputs=reads, overwrite=overwrite)
    logits, labels, images, run = run_logits(run, data, split, skip_bad_images, device)
    metrics = ensemble_metrics(logits, labels, run.classes or list(images.classes))
    metrics.update(dataset=str(data), split=split)
    path = Path(out) if out else run.evaluate_path(data, split)
    written = []
    if analysis:
        interp = interpret_logits(logits, labels, run.classes or list(images.classes),
                                  [str(p) for p in images.paths],
                                  TOP_LOSSES if top is None else top,
                                  {"run": str(run.path), "dataset": str(data), "split": split})
        folder = no_link(analysis_dir(run, data, split))   # never written through a link
        written = write_files(interp, folder, title=f"{run.path.name}, {Path(data).name} {split}")
        metrics.update(balanced_error=interp.balanced_error, analysis=str(folder))
    make_folder(path.parent, "folder of --out", links=out is not None)  # checked: check_output
    write_json(path, metrics)
    if not run.is_quantized:
        names = [p.relative_to(run.path).as_posix() for p in written]
        if path.parent == run.evaluate_dir:
            names.append(path.relative_to(run.path).as_posix())
        if names:
            record(run.path, *names)
    return path, metrics


def analysis_dir(run, data: str | os.PathLike, split: str = "test") -> Path:
    """``RUN/evaluate/<data name>/`` (``<data name>-<split>`` for a split other than test):
    where :func:`evaluate_run` writes the error analysis of ``run`` (a :class:`rrrnet.Run`)."""
    name = Path(data).resolve().name if str(data) in (".", "") else Path(data).name
    return run.evaluate_dir / (name if split == "test" else f"{name}-{split}")
