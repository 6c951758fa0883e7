"""The loss of a training step: the paper's naive-ensemble loss, summed over branches."""
from __future__ import annotations

import torch
from torch import nn


def branch_loss(logits: torch.Tensor, labels: torch.Tensor,
                weights: torch.Tensor | None = None,
                class_weights: torch.Tensor | None = None) -> torch.Tensor:
    """The naive ensemble's loss: every branch its own cross-entropy, summed over branches, so
    each branch receives exactly the gradient it would get if trained alone (the paper's
    Section 3.3: the branches are trained independently on the shared stump).

    ``weights`` ``[b, n]`` (bagging): branch ``k``'s loss is ``sum_i w[k, i] * CE[k, i] / n``,
    the images' multiplicities in its bootstrap sample (see :mod:`rrrnet.ensembles`).
    ``class_weights`` ``[classes]`` (``--balance weights``): each image's cross-entropy weighted
    by its class's weight, the weighted mean over the batch (as ``CrossEntropyLoss(weight=)``).
    """
    b, n, c = logits.shape
    per_image = nn.functional.cross_entropy(logits.reshape(b * n, c), labels.repeat(b),
                                            reduction="none").view(b, n)
    if class_weights is not None:
        image_weights = class_weights[labels]
        per_image = per_image * image_weights / image_weights.mean()
    per_branch = per_image.mean(dim=1) if weights is None else (per_image * weights).sum(dim=1) / n
    return per_branch.sum()
