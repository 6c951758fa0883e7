"""The frozen stump during training: what is trained behind it, its BatchNorm warm-up, its folded
copy, and its cached features.

The paper (Section 3.3, the authors' release) freezes the shared stump in eval mode after
re-estimating its BatchNorm statistics on the training images (10 no-grad passes). A frozen
stump never changes afterwards, which rrrnet turns into speed: training runs a copy with
BatchNorm folded (:func:`with_folded_stump`), and where the images are not augmented its
outputs are computed once (:func:`feature_cache`).
"""
from __future__ import annotations

from itertools import chain, repeat
from typing import Iterable

import torch
from torch import nn
from torch.optim.swa_utils import update_bn
from torch.utils.data import DataLoader, TensorDataset
from tqdm.auto import tqdm

from ..fold import frozen_copy
from ..recycle import BranchedResNet


def trained_part(model: BranchedResNet) -> nn.Module:
    """What training changes, and what checkpoints and the weight average hold: the branches
    when the stump is frozen (a constant ResNet-152 stump need not be copied every step), else
    the whole model."""
    return model.branches if model.freeze_stump else model


def to_device(x: torch.Tensor, device: torch.device) -> torch.Tensor:
    """``x`` on ``device``; images channels-last, as the trained model is by default
    (``Recipe.channels_last``; a model left NCHW still gets the right result)."""
    x = x.to(device, non_blocking=True)
    return x.contiguous(memory_format=torch.channels_last) if x.dim() == 4 else x


def warm_stump(model: BranchedResNet, loader: Iterable, passes: int, device: torch.device,
               progress: bool) -> None:
    """Re-estimate the frozen stump's BatchNorm statistics on the training images.

    ``update_bn`` resets the statistics and averages them over every batch of every pass
    (momentum None), then restores the stump's mode; the stump stays frozen throughout.
    """
    if passes == 0 or not any(isinstance(m, nn.modules.batchnorm._BatchNorm)
                              for m in model.stump.modules()):
        return
    batches = chain.from_iterable(repeat(loader, passes))
    total = passes * len(loader) if hasattr(loader, "__len__") else None
    stump_inputs = (x.flatten(0, 1) if x.dim() == 5 else x for x, *_ in
                    tqdm(batches, total=total, desc="warming stump BN", disable=not progress,
                         leave=False))
    with torch.no_grad():
        update_bn(stump_inputs, model.stump, device=device)
    model.stump.eval()


def with_folded_stump(model: BranchedResNet, channels_last: bool) -> BranchedResNet:
    """What training runs: ``model`` itself, or for a frozen stump, which never changes after its
    BatchNorm warm-up, the same branches behind a copy of the stump with BatchNorm folded and
    strided 1x1 convolutions subsampled (:func:`rrrnet.fold.frozen_copy`: exact up to float
    rounding, about a quarter less stump time on CPU). The model that is saved, averaged and
    finally evaluated keeps its own stump."""
    if not model.freeze_stump:
        return model
    stump = frozen_copy(model.stump, channels_last=channels_last)
    return BranchedResNet(stump, model.branches, model.plan, model.block, freeze_stump=True,
                          config=model.config)


def feature_cache(model: BranchedResNet, loader: DataLoader, device: torch.device,
                  progress: bool = False, desc: str = "stump features",
                  max_bytes: int | None = None) -> TensorDataset | None:
    """Stump outputs of every image once: with a frozen stump and no augmentation the branches can
    train on these instead of images (e.g. last-layer fine-tuning of a full backbone), and the
    evaluation images need their stump only once. ``max_bytes``: give up (None) once the
    features would hold more memory than that."""
    xs, ys, held = [], [], 0
    model.eval()
    with torch.no_grad():
        for x, y in tqdm(loader, desc=desc, disable=not progress, leave=False):
            xs.append(model.stump(to_device(x, device)).cpu())
            ys.append(y)
            held += xs[-1].numel() * xs[-1].element_size()
            if max_bytes is not None and held > max_bytes:
                return None
    return TensorDataset(torch.cat(xs), torch.cat(ys))
