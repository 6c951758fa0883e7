"""What the model got wrong, as data: the confusion matrix, per-class results, the most
confidently wrong images and the reliability bins (fastai's ``ClassificationInterpretation``,
with the branches' decomposed uncertainty next to every number).

    interp = rrrnet.interpret("runs/E", "data/flowers")        # the run's test split
    interp.confusion, interp.normalised_confusion               # [classes, classes], rows true
    interp.per_class      # rows: class, support, predicted, precision, recall, f1, error,
                          #       mean_entropy, mean_mutual_information
    interp.top_losses     # rows: file, true, predicted, probability, true_probability, loss,
                          #       entropy, mutual_information (most confidently wrong first)
    interp.reliability    # bins: low, high, share, accuracy, confidence
    interp.error, interp.balanced_error
    write_files(interp, folder)   # confusion.csv/.png, per_class.csv, top_losses.csv/.png, ...

``rrrnet evaluate RUN DATA`` writes those files into ``RUN/evaluate/<data name>/``
(:func:`rrrnet.evaluate.evaluate_run`). Entropy is the total predictive entropy H[mean p], mutual
information its part due to the branches' disagreement (:func:`rrrnet.metrics.decompose`).
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from .metrics import decompose, expected_calibration_error
from .uncertainty import reliability as reliability_bins

TOP_LOSSES = 16          # images in top_losses.csv / .png
FILES = ("confusion.csv", "confusion_normalised.csv", "confusion.png", "per_class.csv",
         "top_losses.csv", "top_losses.png", "reliability.png")


@dataclass(frozen=True)
class Interpretation:
    """A model's predictions on labelled images, analysed. Arrays are numpy; rows are dicts
    ready for CSV."""

    classes: list[str]
    files: list[str]                   # per image ("" where unknown)
    labels: np.ndarray                 # [N] true class indices
    probs: np.ndarray                  # [N, classes] the ensemble's mean prediction
    entropy: np.ndarray                # [N] total predictive entropy (nats)
    mutual_information: np.ndarray     # [N] the branches' disagreement (nats)
    confusion: np.ndarray              # [classes, classes] counts, row = true, column = predicted
    per_class: list[dict[str, Any]]
    top_losses: list[dict[str, Any]]
    reliability: list[dict[str, Any]]
    ece: float
    branches: int = 1
    meta: dict[str, Any] = field(default_factory=dict)   # run, dataset, split

    @property
    def predicted(self) -> np.ndarray:
        return self.probs.argmax(-1)

    @property
    def images(self) -> int:
        return int(len(self.labels))

    @property
    def error(self) -> float:
        return float((self.predicted != self.labels).mean()) if self.images else math.nan

    @property
    def balanced_error(self) -> float:
        """1 - the mean recall over the classes that have images."""
        return balanced_error(self.confusion)

    @property
    def normalised_confusion(self) -> np.ndarray:
        return normalise_rows(self.confusion)


# ---------------------------------------------------------------------------------------------
# The pieces, each from plain arrays.
# ---------------------------------------------------------------------------------------------

def confusion_matrix(labels: Sequence[int], predicted: Sequence[int], classes: int) -> np.ndarray:
    """Counts ``[classes, classes]``: row = true class, column = predicted class."""
    matrix = np.zeros((classes, classes), dtype=np.int64)
    np.add.at(matrix, (np.asarray(labels, dtype=np.int64), np.asarray(predicted, dtype=np.int64)),
              1)
    return matrix


def normalise_rows(confusion: np.ndarray) -> np.ndarray:
    """Each row divided by its sum (the share of a true class predicted as each class); rows
    of classes without images stay 0."""
    totals = confusion.sum(1, keepdims=True)
    return np.divide(confusion, totals, out=np.zeros(confusion.shape), where=totals > 0)


def balanced_error(confusion: np.ndarray) -> float:
    """1 - mean recall over the classes with images (NaN without any image)."""
    support = confusion.sum(1)
    present = support > 0
    if not present.any():
        return math.nan
    recall = np.diag(confusion)[present] / support[present]
    return float(1.0 - recall.mean())


def per_class_rows(confusion: np.ndarray, classes: Sequence[str], labels: np.ndarray,
                   entropy: np.ndarray, mutual_information: np.ndarray) -> list[dict[str, Any]]:
    """Per class: support (its images), predicted (images predicted as it), precision, recall,
    F1 = 2 TP / (2 TP + FP + FN) (as :func:`rrrnet.metrics.class_scores`: 0 for a class with
    images never predicted right; None where undefined: precision of a class never predicted,
    recall of a class without images, F1 of a class neither present nor predicted), error
    (1 - recall), and the mean entropy and mutual information of its images."""
    rows = []
    for c, name in enumerate(classes):
        support, predicted, hits = int(confusion[c].sum()), int(confusion[:, c].sum()), \
            int(confusion[c, c])
        precision = hits / predicted if predicted else None
        recall = hits / support if support else None
        f1 = 2 * hits / (support + predicted) if support + predicted else None  # 2TP/(2TP+FP+FN)
        mine = labels == c
        rows.append({"class": name, "support": support, "predicted": predicted,
                     "precision": _round(precision), "recall": _round(recall), "f1": _round(f1),
                     "error": _round(None if recall is None else 1 - recall),
                     "mean_entropy": _round(float(entropy[mine].mean()) if mine.any() else None),
                     "mean_mutual_information": _round(float(mutual_information[mine].mean())
                                                       if mine.any() else None)})
    return rows


def top_loss_rows(probs: np.ndarray, labels: np.ndarray, classes: Sequence[str],
                  files: Sequence[str], entropy: np.ndarray, mutual_information: np.ndarray,
                  top: int = TOP_LOSSES) -> list[dict[str, Any]]:
    """The ``top`` most confidently wrong images: the misclassified ones, highest predicted
    probability first (ties: higher loss first). ``loss`` is -log p(true class)."""
    predicted = probs.argmax(-1)
    index = np.arange(len(labels))
    true_p = probs[index, labels]
    wrong = np.flatnonzero(predicted != labels)
    order = sorted(wrong, key=lambda i: (-probs[i, predicted[i]], math.log(max(true_p[i], 1e-12))))
    rows = []
    for rank, i in enumerate(order[:top], start=1):
        rows.append({"rank": rank, "file": files[i], "true": classes[labels[i]],
                     "predicted": classes[predicted[i]],
                     "probability": _round(float(probs[i, predicted[i]])),
                     "true_probability": _round(float(true_p[i])),
                     "loss": _round(-math.log(max(float(true_p[i]), 1e-12))),
                     "entropy": _round(float(entropy[i])),
                     "mutual_information": _round(float(mutual_information[i]))})
    return rows


def interpret_logits(member_logits: torch.Tensor, labels: torch.Tensor, classes: Sequence[str],
                     files: Sequence[str] | None = None, top: int = TOP_LOSSES,
                     meta: dict[str, Any] | None = None) -> Interpretation:
    """The interpretation of branch (member) logits ``[b, N, classes]`` with true ``labels``."""
    member_probs = member_logits.float().softmax(-1)
    probs_t = member_probs.mean(0)
    parts = decompose(member_probs)
    probs = probs_t.numpy().astype(np.float64)
    y = labels.numpy().astype(np.int64)
    entropy = parts["total"].numpy().astype(np.float64)
    mi = parts["epistemic"].numpy().astype(np.float64)
    files = [str(f) for f in files] if files is not None else [""] * len(y)
    confusion = confusion_matrix(y, probs.argmax(-1), len(classes))
    return Interpretation(
        classes=list(classes), files=files, labels=y, probs=probs, entropy=entropy,
        mutual_information=mi, confusion=confusion,
        per_class=per_class_rows(confusion, classes, y, entropy, mi),
        top_losses=top_loss_rows(probs, y, classes, files, entropy, mi, top),
        reliability=reliability_bins(probs_t, labels),
        ece=expected_calibration_error(probs_t, labels),
        branches=int(member_logits.shape[0]), meta=dict(meta or {}))


def interpret(run: str | os.PathLike, data: str | os.PathLike, split: str = "test",
              top: int = TOP_LOSSES, skip_bad_images: bool = False,
              device: str = "auto") -> Interpretation:
    """The interpretation of a finished run's model (or its int8 file) on ``split`` of ``data``
    (the run's parts, :meth:`rrrnet.run.Run.split`; ``all``: every image). Nothing is
    written: see :func:`write_files`, or ``rrrnet evaluate``."""
    from .metrics import run_logits
    logits, labels, images, run_ = run_logits(run, data, split, skip_bad_images, device)
    return interpret_logits(logits, labels, run_.classes or list(images.classes),
                            [str(p) for p in images.paths], top,
                            {"run": str(run_.path), "dataset": str(data), "split": split})


# ---------------------------------------------------------------------------------------------
# Files.
# ---------------------------------------------------------------------------------------------

def write_files(interp: Interpretation, folder: str | os.PathLike, title: str = "",
                thumbnails: bool = True) -> list[Path]:
    """Write :data:`FILES` into ``folder``: the confusion matrix as counts and row-normalised
    (CSV, rows true class, columns predicted; one figure of both), per_class.csv,
    top_losses.csv with its thumbnail grid, and the reliability diagram."""
    from .io import write_csv
    from .report import interpret_figures as figures
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, matrix in (("confusion.csv", interp.confusion),
                         ("confusion_normalised.csv", np.round(interp.normalised_confusion, 6))):
        rows = [{"true": c, **{p: (int(v) if name == "confusion.csv" else float(v))
                               for p, v in zip(interp.classes, row)}}
                for c, row in zip(interp.classes, matrix)]
        write_csv(folder / name, rows, ["true", *interp.classes])
        paths.append(folder / name)
    write_csv(folder / "per_class.csv", interp.per_class, PER_CLASS_COLUMNS)
    write_csv(folder / "top_losses.csv", interp.top_losses, TOP_LOSS_COLUMNS)
    paths += [folder / "per_class.csv", folder / "top_losses.csv"]
    paths.append(figures.save(figures.confusion_figure(interp, title), folder / "confusion.png"))
    paths.append(figures.save(figures.top_losses_figure(interp, thumbnails=thumbnails),
                              folder / "top_losses.png"))
    paths.append(figures.save(figures.reliability_figure(interp, title),
                              folder / "reliability.png"))
    return paths


PER_CLASS_COLUMNS = ("class", "support", "predicted", "precision", "recall", "f1", "error",
                     "mean_entropy", "mean_mutual_information")
TOP_LOSS_COLUMNS = ("rank", "file", "true", "predicted", "probability", "true_probability",
                    "loss", "entropy", "mutual_information")


def _round(value: float | None, digits: int = 6) -> float | None:
    return None if value is None else round(float(value), digits)


def _install() -> None:
    from ._callable import callable_module
    callable_module(__name__, interpret)  # rrrnet.interpret(run, data) is this module


_install()
