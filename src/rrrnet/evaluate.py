"""Ensemble metrics: error, per-branch errors, NLL, calibration and uncertainty.

The ensemble's prediction is the average of the branches' softmax outputs. Uncertainty is split
the usual way: the predictive entropy H[mean p] is the total, the mean of the branches' own
entropies the expected aleatoric part, and their difference the mutual information between the
prediction and the branch (the part due to disagreement between branches).
"""
from __future__ import annotations

from typing import Any, Iterable

import torch

ECE_BINS = 15


@torch.no_grad()
def collect_logits(model: torch.nn.Module, loader: Iterable, device: torch.device | str = "cpu",
                   forward=None) -> tuple[torch.Tensor, torch.Tensor]:
    """Branch logits ``[b, N, classes]`` and labels ``[N]`` over a loader, in eval mode."""
    was_training = model.training
    model.eval()
    forward = forward or model
    logits, labels = [], []
    for x, y in loader:
        logits.append(forward(x.to(device)).float().cpu())
        labels.append(y)
    model.train(was_training)
    return torch.cat(logits, dim=1), torch.cat(labels)


def entropy(probs: torch.Tensor) -> torch.Tensor:
    return -(probs * probs.clamp_min(1e-12).log()).sum(-1)


def expected_calibration_error(probs: torch.Tensor, labels: torch.Tensor, bins: int = ECE_BINS) -> float:
    """ECE with equal-width confidence bins: sum over bins of |accuracy - confidence| x share."""
    confidence, predicted = probs.max(-1)
    correct = (predicted == labels).float()
    edges = torch.linspace(0, 1, bins + 1)
    ece = torch.zeros(())
    for low, high in zip(edges[:-1], edges[1:]):
        inside = (confidence > low) & (confidence <= high)
        if inside.any():
            ece += inside.float().mean() * (correct[inside].mean() - confidence[inside].mean()).abs()
    return ece.item()


def uncertainty(branch_probs: torch.Tensor) -> dict[str, torch.Tensor]:
    """Per-image predictive entropy, expected branch entropy and mutual information."""
    mean = branch_probs.mean(0)
    total = entropy(mean)
    aleatoric = entropy(branch_probs).mean(0)
    return {"entropy": total, "expected_entropy": aleatoric,
            "mutual_information": (total - aleatoric).clamp_min(0)}


def ensemble_metrics(logits: torch.Tensor, labels: torch.Tensor) -> dict[str, Any]:
    """Metrics of the branch ensemble from its logits ``[b, N, classes]``."""
    branch_probs = logits.softmax(-1)
    probs = branch_probs.mean(0)
    predicted = probs.argmax(-1)
    u = uncertainty(branch_probs)
    branch_errors = (logits.argmax(-1) != labels).float().mean(1)
    agreement = (logits.argmax(-1) == predicted).float().mean().item()
    return {
        "error": (predicted != labels).float().mean().item(),
        "branch_errors": branch_errors.tolist(),
        "mean_branch_error": branch_errors.mean().item(),
        "nll": torch.nn.functional.nll_loss(probs.clamp_min(1e-12).log(), labels).item(),
        "ece": expected_calibration_error(probs, labels),
        "mean_entropy": u["entropy"].mean().item(),
        "mean_mutual_information": u["mutual_information"].mean().item(),
        "branch_agreement": agreement,
        "images": int(labels.numel()),
        "branches": int(logits.shape[0]),
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
    u = uncertainty(branch_probs)
    probs = branch_probs.mean(0)
    return [{"top": top_k(p, classes, k), "entropy": round(u["entropy"][i].item(), 6),
             "mutual_information": round(u["mutual_information"][i].item(), 6)}
            for i, p in enumerate(probs)]
