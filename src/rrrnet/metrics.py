"""What :mod:`rrrnet.evaluate` and :mod:`rrrnet.uncertainty` both measure, in one place below
both: a model's branch (member) logits over data (:func:`collect_logits`, :func:`batches`) and
the measures of a prediction they share (entropy and its decomposition, NLL, ECE, and the
per-class scores that plain error hides on imbalanced classes: :func:`class_scores`).

Probabilities are ``[N, classes]``; member probabilities ``[m, N, classes]`` (the branches of an
RRR-Net, or Monte-Carlo dropout passes), whose prediction is their mean.
"""
from __future__ import annotations

from typing import Any, Iterable, Sequence

import numpy as np
import torch

ECE_BINS = 15
BINNINGS = ("width", "mass")


# ---------------------------------------------------------------------------------------------
# Logits of a model over data.
# ---------------------------------------------------------------------------------------------

def is_dataset(data: Any) -> bool:
    """A map-style Dataset of single examples (transformed here), as opposed to ready batches."""
    from torch.utils.data import DataLoader, Dataset
    return isinstance(data, Dataset) and not isinstance(data, DataLoader) \
        and hasattr(data, "__len__")


def batches(data: Any, image_size: int, batch_size: int) -> Iterable:
    """``data`` as batches: ready ``(images, labels)`` batches as they are, a Dataset of
    ``(image, label)`` pairs resized to ``image_size`` and normalised."""
    if not is_dataset(data):
        return data
    from torch.utils.data import DataLoader

    from .data import EvalImages
    return DataLoader(EvalImages(data, image_size), batch_size=batch_size)


@torch.no_grad()
def collect_logits(model: torch.nn.Module, loader: Iterable, device: torch.device | str = "cpu",
                   forward=None, keep_mode: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """Branch logits ``[b, N, classes]`` and labels ``[N]`` over a loader, in eval mode
    (``keep_mode``: in the modes the modules are in, e.g. Monte-Carlo dropout)."""
    was_training = model.training
    if not keep_mode:
        model.eval()
    forward = forward or model
    logits, labels = [], []
    for x, y in loader:
        logits.append(forward(x.to(device)).float().cpu())
        labels.append(y)
    model.train(was_training)
    return torch.cat(logits, dim=1), torch.cat(labels)


SPLITS = ("train", "val", "test", "all")


def run_logits(run: Any, data: Any, split: str = "test", skip_bad_images: bool = False,
               device: Any = "auto", batch_size: int = 64):
    """A finished run's branch logits ``[b, N, classes]`` and labels on ``split`` of dataset
    ``data`` (the run's own parts, :meth:`rrrnet.run.Run.split`: on the dataset it was trained
    on, exactly the images of its ``split.csv``; ``all``: every image,
    :meth:`rrrnet.run.Run.images`), its images read as the run was trained
    (:attr:`rrrnet.run.Run.preprocessing`). Returns ``(logits, labels, images, run)``,
    ``images`` the :class:`~rrrnet.data.LabelledImages` scored, in order."""
    from torch.utils.data import DataLoader

    from .data import EvalImages, ImageDataset
    from .errors import RunError
    from .io import resolve_device
    from .run import Run
    run = Run(run).require_finished()
    if split not in SPLITS:
        raise RunError(f"--split must be train, val, test or all, got {split!r}")
    if split == "val" and "layout" not in run.data and run.data and not run.data.get("val"):
        raise RunError(f"{run.path} was trained without a validation split (fit --val N makes "
                       f"one); evaluate --split test, train or all")
    if split != "all" and not run.data:
        raise RunError(f"{run.config_path} records no data split; use --split all")
    images = run.images(data, split, skip_bad_images)
    if not len(images):
        raise RunError(f"{data} has no {split} images as {run.path} splits it"
                       + (" (the run was trained without a validation split, or this dataset "
                          "has none)" if split == "val" else "")
                       + "; evaluate another --split, or --split all")
    size, resize = run.image_size, run.resize
    loader = DataLoader(EvalImages(ImageDataset(images, size=size, resize=resize, cache=False),
                                   size, resize), batch_size=batch_size)
    device = resolve_device(device)
    model = run.model.to(device)
    logits, labels = collect_logits(model, loader, device)
    return logits, labels, images, run


# ---------------------------------------------------------------------------------------------
# Measures of a prediction.
# ---------------------------------------------------------------------------------------------

def entropy(probs: torch.Tensor) -> torch.Tensor:
    """Shannon entropy (nats) over the last axis; ``0 log 0 = 0``."""
    return -(probs * probs.clamp_min(1e-12).log()).sum(-1)


def decompose(member_probs: torch.Tensor) -> dict[str, torch.Tensor]:
    """Per image: ``total`` = H[mean prediction] = ``aleatoric`` (mean member entropy) +
    ``epistemic`` (mutual information, the members' disagreement, >= 0)."""
    mean = member_probs.mean(0)
    total = entropy(mean)
    aleatoric = entropy(member_probs).mean(0)
    return {"total": total, "aleatoric": aleatoric,
            "epistemic": (total - aleatoric).clamp_min(0)}


def nll(probs: torch.Tensor, labels: torch.Tensor) -> float:
    return torch.nn.functional.nll_loss(probs.clamp_min(1e-12).log(), labels).item()


def class_scores(predicted: torch.Tensor, labels: torch.Tensor,
                 classes: Sequence[str] | int) -> dict[str, Any]:
    """What plain error hides on imbalanced classes, from hard predictions ``[N]``:

    ``per_class``: ``{class name: {precision, recall, f1, support}}`` for every class
    (``classes``: the names, or their number; names are then "0", "1" ...). Precision is
    None for a class never predicted, recall None for a class without images (support 0);
    F1 = 2 TP / (2 TP + FP + FN), so 0 for a class with images that is never predicted right
    (None only for a class neither present nor predicted). ``balanced_error``: 1 - the mean
    recall over the classes present in ``labels``; ``macro_f1``: the mean F1 over the same
    classes (None for both without labels).
    """
    names = [str(c) for c in range(classes)] if isinstance(classes, int) else list(classes)
    k = len(names)
    predicted, labels = predicted.long().cpu(), labels.long().cpu()
    support = torch.bincount(labels, minlength=k)[:k].tolist()
    guessed = torch.bincount(predicted, minlength=k)[:k].tolist()
    right = torch.bincount(labels[predicted == labels], minlength=k)[:k].tolist()
    per_class, recalls, f1s = {}, [], []
    for name, n, g, tp in zip(names, support, guessed, right):
        f1 = 2 * tp / (n + g) if n + g else None      # 2TP + FP + FN = support + predicted
        per_class[name] = {"precision": tp / g if g else None, "recall": tp / n if n else None,
                           "f1": f1, "support": n}
        if n:
            recalls.append(tp / n)
            f1s.append(f1)
    return {"balanced_error": 1.0 - sum(recalls) / len(recalls) if recalls else None,
            "macro_f1": sum(f1s) / len(f1s) if f1s else None,
            "per_class": per_class}


def expected_calibration_error(probs: torch.Tensor, labels: torch.Tensor, bins: int = ECE_BINS,
                               binning: str = "width") -> float:
    """ECE: the sum over confidence bins of |accuracy - mean confidence| x share of images.
    ``width``: equal-width bins over (0, 1]; ``mass``: bins holding equal numbers of images
    (sorted by confidence, split as evenly as possible)."""
    if binning not in BINNINGS:
        raise ValueError(f"binning must be width or mass, got {binning!r}")
    confidence, predicted = probs.max(-1)
    correct = (predicted == labels).double()
    confidence = confidence.double()
    n = len(labels)
    if binning == "width":
        edges = torch.linspace(0, 1, bins + 1, dtype=torch.float64)
        groups = [(confidence > low) & (confidence <= high)
                  for low, high in zip(edges[:-1], edges[1:])]
    else:
        order = confidence.argsort()
        groups = []
        for part in np.array_split(order.numpy(), bins):
            mask = torch.zeros(n, dtype=torch.bool)
            mask[torch.as_tensor(part, dtype=torch.long)] = True
            groups.append(mask)
    ece = 0.0
    for inside in groups:
        if inside.any():
            ece += inside.double().mean().item() * abs(correct[inside].mean().item()
                                                        - confidence[inside].mean().item())
    return ece
