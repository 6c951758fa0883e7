"""Train an RRR-Net with the paper's recipe: on your own model and data, or into a run folder.

Two layers, as in Torch-Pruning's and timm's APIs (the user keeps their model and data):

* :func:`train` trains any :class:`~rrrnet.recycle.BranchedResNet` (from :func:`rrrnet.build`,
  :func:`rrrnet.split`, :func:`rrrnet.load`) on a ``DataLoader`` of ready batches or on a
  ``Dataset`` of ``(image, label)`` pairs, and returns the trained model and its history.
* :func:`fit` is the CLI's ``rrrnet fit``: :func:`train` on a dataset folder's micro split, plus a
  run folder (:mod:`rrrnet.rundir`): configuration, history, atomic checkpoints after every
  epoch and exact resumption, through a :class:`Callback`.

The recipe (paper Appendix C, the authors' release): AdamW (lr 1e-3, weight decay 0.01), batch 32,
300 epochs, no schedule, an exponential moving average of the weights over the last 60 epochs,
two random augmentations per image. The frozen stump stays in eval mode; its BatchNorm statistics
are first re-estimated on the training images. Every branch has its own cross-entropy loss, and
all branches train in one fused pass per batch with the stump computed once
(``branch_views="shared"``), or each branch on its own augmentation draw (``"independent"``).
That is the paper's naive ensemble; ``Recipe.ensemble`` also offers bagging, Snapshot Ensemble and
Fast Geometric Ensembling (see :mod:`rrrnet.ensembles` for how each maps onto the fused model).

The weight average (:class:`Recipe`, ``ema_epochs``) is sound at any budget: it covers the last
``min(ema_epochs, ceil(epochs / 2))`` epochs, with the decay whose window (``1 / (1 - decay)``
optimiser steps) spans exactly those epochs, and it is bias-corrected like Adam's moments, so
the weights from before its start keep no share at all. 300 epochs with ``ema_epochs=60`` (the
paper) average the last 60 epochs with decay ``1 - 1 / (60 x steps per epoch)``, as always; a
12-epoch run averages its last 6 epochs instead of keeping 80% of its first step's weights.

Reproducibility: every random draw of epoch ``e`` (batch order, augmentation of each image and
view, dropout masks) derives from ``(seed, e)`` alone, so a resumed run repeats exactly what an
uninterrupted run would have done.
"""
from __future__ import annotations

import dataclasses
import math
import os
import time
from dataclasses import dataclass, field
from itertools import chain, repeat
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import numpy as np
import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel, update_bn
from torch.utils.data import DataLoader, Dataset, TensorDataset
from tqdm.auto import tqdm

from ._callable import callable_module
from .augment import train_transform
from .data import EvalImages, ImageDataset, Split, as_array, normalize
from .ensembles import (TRAJECTORY_ENSEMBLES, Indexed, Trajectory, assemble,
                        bootstrap_weights, check_ensemble, collection_steps, lr_of,
                        trajectory_model)
from .errors import ConfigError, RunError
from .evaluate import (error_summary, evaluate_model, evaluate_split,  # noqa: F401
                       is_dataset)
from .fold import frozen_copy
from .io import derive_seed, resolve_device, write_json
from .model import ModelConfig, blank, build, load, save
from .recycle import BranchedResNet
from .precision import Precision, resolve_precision
from .recipe import (BEFORE_OPTION, BRANCH_VIEWS, HISTORY_ONLY, RENAMED, DataSpec,  # noqa: F401 (re-exported)
                     Recipe)
from .rundir import (Comparison, clear_run, load_checkpoint, locked, prepare_run, read_config,
                     read_run, record, save_checkpoint, write_history)

_WARM_UP_EPOCH = 10**6  # the stump warm-up's draws: a stream no training epoch uses
# The evaluation images' stump features are kept in memory up to this size (e.g. 400 images of
# ResNet_1.1.1.1 at 128 px: 200 MiB); beyond it the stump runs at every evaluation.
EVAL_CACHE_BYTES = 1 << 30


# ---------------------------------------------------------------------------------------------
# Data: a Dataset of (image, label) pairs, resized, augmented (seeded per epoch, image and view)
# and normalised; or ready batches, used as given.
# ---------------------------------------------------------------------------------------------

class TrainingImages(Dataset):
    """Normalised training images, augmented with a seed fixed by (run seed, epoch, index, view):
    the one augmentation and seeding path of training.

    ``images`` yields ``(PIL image or uint8 HxWx3 array, label)``. With ``views > 1`` an item is
    ``[views, 3, H, W]``: one augmentation draw per branch.
    """

    def __init__(self, images: Dataset, augment_ops: int, views: int, seed: int,
                 size: int | None = None):
        self.images, self.views, self.seed, self.size, self.epoch = images, views, seed, size, 0
        self.augment = train_transform(augment_ops) if augment_ops > 0 else None

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int):
        image, label = self.images[index]
        image = as_array(image, self.size)
        tensors = [normalize(self._augmented(image, index, view)) for view in range(self.views)]
        return (tensors[0] if self.views == 1 else torch.stack(tensors)), int(label)

    def _augmented(self, image: np.ndarray, index: int, view: int) -> np.ndarray:
        if self.augment is None:
            return image
        # Re-seeded per draw (not per worker): the draw depends on nothing but these numbers.
        self.augment.reseed([self.seed, self.epoch + 1, index, view])
        return self.augment.compose(image=image)["image"]


def _loader(dataset: Dataset, batch_size: int, shuffle: bool, seed: int = 0,
            num_workers: int = 0) -> DataLoader:
    generator = torch.Generator().manual_seed(seed)
    return DataLoader(dataset, batch_size=batch_size, shuffle=shuffle, generator=generator,
                      num_workers=num_workers, drop_last=False)


# ---------------------------------------------------------------------------------------------
# The weight average.
# ---------------------------------------------------------------------------------------------

def bias_corrected_ema(decay: float):
    """``multi_avg_fn`` of :class:`~torch.optim.swa_utils.AveragedModel`: an exponential moving
    average with decay ``d``, bias-corrected like Adam's moments. The ``k``-th sample enters with
    weight ``(1 - d) / (1 - d^k)``: the first is copied (:class:`AveragedModel` does that), later
    ones are weighted ``d^(age)`` relative to the newest, normalised over the samples seen, so the
    weights before the average started keep no share."""
    @torch.no_grad()
    def update(averaged: list[torch.Tensor], current: list[torch.Tensor],
               num_averaged: torch.Tensor) -> None:
        k = int(num_averaged) + 1
        weight = (1.0 - decay) / (1.0 - decay ** k) if decay < 1 else 1.0 / k
        if torch.is_floating_point(averaged[0]):
            torch._foreach_lerp_(averaged, current, weight)
        else:  # e.g. BatchNorm's num_batches_tracked: the newest value
            for a, c in zip(averaged, current):
                a.copy_(c)
    return update


def averaged_part(model: BranchedResNet) -> nn.Module:
    """What the EMA averages: the branches when the stump is frozen (averaging constant weights
    would cost a full copy of e.g. ResNet-152 per step), else the whole model."""
    return model.branches if model.freeze_stump else model


def new_ema(model: BranchedResNet, recipe: Recipe, steps_per_epoch: int) -> AveragedModel:
    return AveragedModel(averaged_part(model), use_buffers=True,
                         multi_avg_fn=bias_corrected_ema(recipe.ema_decay(steps_per_epoch)))


# ---------------------------------------------------------------------------------------------
# One epoch, the stump warm-up, the loss.
# ---------------------------------------------------------------------------------------------

class TrainingDiverged(RunError):
    """The loss became NaN or infinite."""


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


def branch_loss(logits: torch.Tensor, labels: torch.Tensor,
                weights: torch.Tensor | None = None) -> torch.Tensor:
    """The naive ensemble's loss: every branch its own cross-entropy, summed over branches, so
    each branch receives exactly the gradient it would get if trained alone.

    ``weights`` ``[b, n]`` (bagging): branch ``k``'s loss is ``sum_i w[k, i] * CE[k, i] / n``,
    the images' multiplicities in its bootstrap sample (see :mod:`rrrnet.ensembles`).
    """
    b, n, c = logits.shape
    per_image = nn.functional.cross_entropy(logits.reshape(b * n, c), labels.repeat(b),
                                            reduction="none").view(b, n)
    per_branch = per_image.mean(dim=1) if weights is None else (per_image * weights).sum(dim=1) / n
    return per_branch.sum()


def _to_device(x: torch.Tensor, device: torch.device) -> torch.Tensor:
    x = x.to(device, non_blocking=True)
    # Channels-last input, as the trained model is by default (Recipe.channels_last); a model
    # left NCHW still gets the right result, the convolution converting the layout back.
    return x.contiguous(memory_format=torch.channels_last) if x.dim() == 4 else x


def train_epoch(model: BranchedResNet, loader: Iterable, optimizer, ema, device: torch.device,
                progress: bool, desc: str, forward=None, sample_weights: torch.Tensor | None = None,
                after_step: Callable[[], None] | None = None,
                precision: Precision | None = None) -> dict[str, float]:
    """One pass over ``loader``; ``forward`` replaces ``model`` (e.g. ``model.branches`` on
    cached stump features). ``sample_weights`` ``[b, images]`` (bagging): the loader yields
    ``(x, y, index)`` and each branch's loss is weighted by its row. ``after_step`` runs after
    every optimiser step (a learning-rate schedule, snapshot collection). A non-finite loss
    raises :class:`TrainingDiverged` before the optimiser step."""
    model.train()
    forward = forward or model
    precision = precision or Precision("fp32", device.type)
    scaler = precision.scaler()
    total_loss, seen, wrong, branch_wrong, logits = 0.0, 0, 0, None, None
    for batch in tqdm(loader, desc=desc, disable=not progress, leave=False):
        x, y = _to_device(batch[0], device), batch[1].to(device, non_blocking=True)
        with precision.autocast():
            logits = forward(x).float()
        weights = None if sample_weights is None else sample_weights[:, batch[2].to(device)]
        loss = branch_loss(logits, y, weights)
        if not torch.isfinite(loss):
            raise TrainingDiverged(
                f"the training loss became {loss.item()} in {desc}; the learning rate "
                f"({lr_of(optimizer):g}) is probably too high for this model, or the inputs hold "
                f"NaN/inf values. Lower --lr and start again with --overwrite")
        optimizer.zero_grad(set_to_none=True)
        if scaler is None:
            loss.backward()
            optimizer.step()
        else:
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
        if ema is not None:
            ema.update_parameters(averaged_part(model))
        if after_step is not None:
            after_step()
        with torch.no_grad():
            total_loss += loss.item() * y.numel()
            seen += y.numel()
            wrong += (logits.softmax(-1).mean(0).argmax(-1) != y).sum().item()
            bw = (logits.argmax(-1) != y).sum(dim=1)
            branch_wrong = bw if branch_wrong is None else branch_wrong + bw
    if logits is None:
        raise ConfigError("the training data yielded no batches")
    row = {"loss": total_loss / seen / logits.shape[0], "train_error": wrong / seen}
    row.update({f"train_error_b{i}": v / seen for i, v in enumerate(branch_wrong.tolist())})
    return row


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
            xs.append(model.stump(_to_device(x, device)).cpu())
            ys.append(y)
            held += xs[-1].numel() * xs[-1].element_size()
            if max_bytes is not None and held > max_bytes:
                return None
    return TensorDataset(torch.cat(xs), torch.cat(ys))


# ---------------------------------------------------------------------------------------------
# The training API.
# ---------------------------------------------------------------------------------------------

@dataclass
class TrainState:
    """Everything that changes during :func:`train`, handed to every :class:`Callback`.

    ``model`` is the model being trained (for snapshot/FGE the one-branch trajectory model),
    ``epoch`` the next epoch to run (0-based), ``history`` one row per finished epoch. A callback
    sets ``stop`` to end training after the current epoch, and ``stump_ready`` (in
    :meth:`Callback.on_train_start`) when it has restored a warmed-up stump itself.
    """

    model: BranchedResNet
    recipe: Recipe
    device: torch.device
    optimizer: torch.optim.Optimizer
    steps_per_epoch: int
    ema: AveragedModel | None = None
    trajectory: Trajectory | None = None
    history: list[dict[str, Any]] = field(default_factory=list)
    epoch: int = 0
    setup_seconds: float = 0.0
    stump_ready: bool = False
    stop: bool = False

    def state_dict(self) -> dict[str, Any]:
        """What a checkpoint holds: the trained part (the frozen stump is saved once, apart),
        the optimiser, the average, the trajectory, the history and the last finished epoch."""
        return {"epoch": self.epoch - 1, "setup_seconds": self.setup_seconds,
                "model": averaged_part(self.model).state_dict(),
                "optimizer": self.optimizer.state_dict(),
                "ema": None if self.ema is None else self.ema.state_dict(),
                "history": self.history,
                "trajectory": None if self.trajectory is None else self.trajectory.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        averaged_part(self.model).load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.history, self.epoch = list(state["history"]), state["epoch"] + 1
        self.setup_seconds += state.get("setup_seconds", 0.0)
        if state["ema"] is not None:
            self.ema = new_ema(self.model, self.recipe, self.steps_per_epoch)
            self.ema.load_state_dict(state["ema"])
        if self.trajectory is not None:
            self.trajectory.load_state_dict(state["trajectory"])


class Callback:
    """Hooks of :func:`train`; override the ones you need (all receive the :class:`TrainState`).

    ``on_train_start``: everything is built, nothing trained, the stump not yet warmed up (restore
    a checkpoint here); ``on_stump_ready``: after the frozen stump's BatchNorm warm-up;
    ``on_epoch_end``: after each epoch, its row appended to ``state.history``; ``on_train_end``:
    after the final weights are in place (not when a callback stopped training early).
    """

    def on_train_start(self, state: TrainState) -> None: ...
    def on_stump_ready(self, state: TrainState) -> None: ...
    def on_epoch_end(self, state: TrainState) -> None: ...
    def on_train_end(self, state: TrainState) -> None: ...


@dataclass
class TrainResult:
    """``model``: the trained model, final (averaged or assembled) weights in place; ``history``:
    one dict per epoch; ``stopped``: a callback ended training early (final weights not applied)."""

    model: BranchedResNet
    history: list[dict[str, Any]]
    setup_seconds: float = 0.0
    train_seconds: float = 0.0
    stopped: bool = False
    snapshot_steps: list[int] | None = None   # snapshot/FGE: the 0-based steps collected


class _TrainingData:
    """What :func:`train` iterates: a Dataset's images augmented and batched here (re-seeded
    per epoch), or the user's ready batches as given; and the evaluation batches."""

    def __init__(self, train_data: Any, eval_data: Any, recipe: Recipe, views: int):
        self.recipe, self.from_dataset = recipe, is_dataset(train_data)
        if not self.from_dataset and (views > 1 or recipe.ensemble == "bagging"):
            what = "bagging" if recipe.ensemble == "bagging" else "independent branch views"
            raise ConfigError(f"{what} need the training data as a Dataset of (image, label) "
                              f"pairs, not ready batches")
        if not self.from_dataset and not hasattr(train_data, "__len__"):
            raise ConfigError(f"ready batches must be re-iterable and have a length (a DataLoader "
                              f"or a list of (images, labels) batches), got "
                              f"{type(train_data).__name__}: a generator would be used up after "
                              f"one epoch")
        self.augmented = (TrainingImages(train_data, recipe.augment_ops, views, recipe.seed,
                                         recipe.image_size) if self.from_dataset else None)
        self.train_set: Any = self.augmented if self.from_dataset else train_data
        self.eval_loader = None
        if eval_data is not None:
            self.eval_loader = (_loader(EvalImages(eval_data, recipe.image_size),
                                        recipe.batch_size * 2, False)
                                if is_dataset(eval_data) else eval_data)

    def set_epoch(self, epoch: int) -> None:
        if self.augmented is not None:
            self.augmented.epoch = epoch

    def epoch_loader(self, seed: int) -> Iterable:
        if not self.from_dataset:
            return self.train_set
        return _loader(self.train_set, self.recipe.batch_size, True, seed,
                       self.recipe.num_workers)


def train(model: BranchedResNet, train_data: Dataset | Iterable, recipe: Recipe | None = None, *,
          eval_data: Dataset | Iterable | None = None, device: str | torch.device | None = None,
          progress: bool = True, callbacks: Sequence[Callback] = (),
          eval_prefix: str = "eval") -> TrainResult:
    """Train ``model`` (any :class:`~rrrnet.recycle.BranchedResNet`) with ``recipe``.

    ``train_data`` / ``eval_data``: a re-iterable of ready ``(images, labels)`` batches (e.g. a
    ``DataLoader`` of normalised float tensors ``[N, 3, H, W]``), used as given; or a ``Dataset``
    of ``(PIL image or uint8 HxWx3 array, label)`` pairs, to which the recipe's resizing
    (``image_size``), seeded augmentation (``augment_ops``, ``branch_views``), batching and
    ImageNet normalisation apply. Bagging and independent branch views need the ``Dataset`` form.

    Training is what :mod:`rrrnet.train` describes: the frozen stump's BatchNorm warm-up, the
    stump in eval mode, the fused naive-ensemble loss (or bagging, snapshot, FGE), the weight
    average. With ``eval_data`` the history holds, every ``recipe.eval_every`` epochs, the error
    of the raw weights (``{eval_prefix}_error``, with per-branch errors, ensemble gain and
    disagreement) and of the averaged weights (``{eval_prefix}_error_ema``) while the average
    runs. ``device``: overrides ``recipe.device``. Returns the model with its final weights in
    place (in its original memory format, on ``device``) and the history.
    """
    recipe = recipe or Recipe()
    if not isinstance(model, BranchedResNet):
        raise ConfigError(f"train() needs a BranchedResNet (rrrnet.build, split or load), got "
                          f"{type(model).__name__}")
    check_ensemble(recipe.ensemble, model.freeze_stump)
    device = resolve_device(recipe.device if device is None else device)
    precision = resolve_precision(recipe.precision, device)
    started = time.perf_counter()
    full = model
    trajectory_run = recipe.ensemble in TRAJECTORY_ENSEMBLES
    model = trajectory_model(full) if trajectory_run else full
    model.to(device)
    if recipe.channels_last:
        model.to(memory_format=torch.channels_last)

    views = model.num_branches if recipe.branch_views == "independent" else 1
    data = _TrainingData(train_data, eval_data, recipe, views)
    epoch_loader = data.epoch_loader
    eval_loader = data.eval_loader

    steps = len(epoch_loader(0))
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad],
                                  lr=recipe.lr, weight_decay=recipe.weight_decay)
    trajectory = after_step = None
    if trajectory_run:
        trajectory = Trajectory(recipe.ensemble, optimizer, recipe.epochs, steps, full.num_branches,
                                recipe.fge_cycle_epochs, recipe.fge_lr_high, recipe.fge_lr_low)
        after_step = lambda: trajectory.after_step(model.branches)  # noqa: E731
    state = TrainState(model, recipe, device, optimizer, steps, trajectory=trajectory)
    for callback in callbacks:
        callback.on_train_start(state)

    if model.freeze_stump and not state.stump_ready:
        data.set_epoch(-1)  # warm-up draws of their own
        warm_stump(model, epoch_loader(derive_seed(recipe.seed, _WARM_UP_EPOCH)),
                   recipe.warm_stump_epochs, device, progress)
        state.stump_ready = True
        for callback in callbacks:
            callback.on_stump_ready(state)

    fast = with_folded_stump(model, recipe.channels_last)
    # A frozen stump on unaugmented images computes the same features every epoch: compute
    # them once and train the branches on them (e.g. last-layer fine-tuning of a full backbone).
    cached = data.from_dataset and model.freeze_stump and recipe.augment_ops == 0 and views == 1
    forward = model.branches if cached else fast
    if cached:
        data.train_set = feature_cache(fast, _loader(data.train_set, recipe.batch_size * 2, False),
                                       device, progress, "stump features (train)")
    # The evaluation images are never augmented: behind a frozen stump their features are the
    # same at every evaluation, so they are computed once where they fit in EVAL_CACHE_BYTES.
    eval_cached = False
    if eval_loader is not None and recipe.eval_every and model.freeze_stump:
        features = feature_cache(fast, eval_loader, device, progress, "stump features (eval)",
                                 max_bytes=None if cached else EVAL_CACHE_BYTES)
        if features is not None:
            eval_loader, eval_cached = _loader(features, recipe.batch_size * 2, False), True
    sample_weights = None
    if recipe.ensemble == "bagging":
        sample_weights = bootstrap_weights(len(data.train_set), model.num_branches,
                                           recipe.seed).to(device)
        data.train_set = Indexed(data.train_set)
    state.setup_seconds += time.perf_counter() - started

    epochs = tqdm(range(state.epoch, recipe.epochs), desc="epochs", disable=not progress,
                  initial=state.epoch, total=recipe.epochs)
    for epoch in epochs:
        started = time.perf_counter()
        if state.ema is None and recipe.uses_ema and epoch >= recipe.ema_start:
            state.ema = new_ema(model, recipe, steps)
        data.set_epoch(epoch)
        torch.manual_seed(derive_seed(recipe.seed, epoch, 7))  # dropout masks of this epoch
        row: dict[str, Any] = {"epoch": epoch + 1}
        row.update(train_epoch(model, epoch_loader(derive_seed(recipe.seed, epoch)), optimizer,
                               state.ema, device, progress, f"epoch {epoch + 1}", forward,
                               sample_weights, after_step, precision))
        if trajectory is not None:
            row.update(lr=lr_of(optimizer), snapshots=len(trajectory.snapshots))
        if eval_loader is not None and recipe.eval_every and (epoch + 1) % recipe.eval_every == 0:
            row.update(_evaluated(model, fast, state.ema, eval_loader, device, eval_cached,
                                  eval_prefix))
        row["seconds"] = round(time.perf_counter() - started, 3)
        state.history.append(row)
        state.epoch = epoch + 1
        epochs.set_postfix(loss=f"{row['loss']:.3f}",
                           error=row.get(f"{eval_prefix}_error", "-"))
        for callback in callbacks:
            callback.on_epoch_end(state)
        if state.stop:
            break

    seconds = state.setup_seconds + sum(r["seconds"] for r in state.history)
    if state.stop and state.epoch < recipe.epochs:
        return TrainResult(model, state.history, state.setup_seconds, seconds, stopped=True)
    final = _final_weights(full, state)
    for callback in callbacks:
        callback.on_train_end(state)
    return TrainResult(final, state.history, state.setup_seconds, seconds,
                       snapshot_steps=None if trajectory is None else list(trajectory.steps))


def _final_weights(full: BranchedResNet, state: TrainState) -> BranchedResNet:
    """``full`` with its final weights in place: the trajectory's snapshots in its branch slots
    (snapshot, FGE), or the averaged weights (EMA), or as trained."""
    if state.trajectory is not None:
        full.to(state.device)
        assemble(full, state.trajectory.snapshots)
    elif state.ema is not None:
        averaged_part(full).load_state_dict(state.ema.module.state_dict())
    return full.to(memory_format=torch.contiguous_format)


def _evaluated(model: BranchedResNet, fast: BranchedResNet, ema: AveragedModel | None, loader,
               device, cached: bool, prefix: str) -> dict[str, Any]:
    """The history's evaluation columns: raw weights, and the averaged ones while averaging.
    ``fast``: the model with its stump folded; ``cached``: ``loader`` holds stump features."""
    forward = model.branches if cached else fast
    row = {f"{prefix}_{k}": v for k, v in error_summary(model, loader, device, forward).items()}
    if ema is not None:
        if not model.freeze_stump:
            averaged = ema.module
        elif cached:
            averaged = ema.module  # the branches on cached stump features
        else:
            averaged = BranchedResNet(fast.stump, ema.module, model.plan, model.block,
                                      freeze_stump=True)
        row[f"{prefix}_error_ema"] = error_summary(averaged, loader, device)["error"]
    return row


# ---------------------------------------------------------------------------------------------
# A run folder around train(): the CLI's `rrrnet fit`.
# ---------------------------------------------------------------------------------------------

RUN_COMPARISON = Comparison(
    # Options added since a run was written take their defaults, which are what that run used;
    # where the run executes may change between an interruption and its resumption.
    defaults={"recipe": {**dataclasses.asdict(Recipe()), **BEFORE_OPTION}, "model": {"dropout": 0.0, "slice_bn": True},
              "data": {"allow_outside_files": False}},
    ignore={"recipe": HISTORY_ONLY, "model": ("weights",)},
    renamed=RENAMED)


def run_config(model: ModelConfig, recipe: Recipe, data: DataSpec,
               classes: Iterable[str] = ()) -> dict[str, Any]:
    return {"model": model.to_dict(), "recipe": dataclasses.asdict(recipe),
            "data": dataclasses.asdict(data), "classes": list(classes)}


class RunFolder(Callback):
    """Keeps a run folder in step with training: restores a checkpoint, saves the warmed-up
    stump once (``stump.pt``), and after every epoch the checkpoint and ``history.csv``.
    ``stop_after``: end after that many epochs of this process (tests of resumption)."""

    def __init__(self, out: Path, checkpoint: dict[str, Any] | None = None,
                 stop_after: int | None = None):
        self.out, self.checkpoint, self.stop_after, self.done = out, checkpoint, stop_after, 0

    def on_train_start(self, state: TrainState) -> None:
        if self.checkpoint is not None:
            state.load_state_dict(self.checkpoint)
            state.stump_ready = True  # loaded from stump.pt by fit()

    def on_stump_ready(self, state: TrainState) -> None:
        stump = {"model": state.model.stump.state_dict()}
        save_checkpoint(self.out / "stump.pt", stump)
        record(self.out, "stump.pt")

    def on_epoch_end(self, state: TrainState) -> None:
        save_checkpoint(self.out / "checkpoint.pt", state.state_dict())
        write_history(self.out / "history.csv", state.history)
        record(self.out, "checkpoint.pt", "history.csv")
        self.done += 1
        if self.stop_after is not None and self.done >= self.stop_after:
            state.stop = True


@dataclass
class FitResult:
    model: BranchedResNet
    metrics: dict[str, Any]
    history: list[dict[str, Any]]
    out: Path


def fit(data: DataSpec, out: str | os.PathLike, model_config: ModelConfig | None = None,
        recipe: Recipe | None = None, resume: bool = False, overwrite: bool = False,
        progress: bool = True, stop_after: int | None = None) -> FitResult:
    """Train an RRR-Net on ``data`` into the run folder ``out``: :func:`train` on the micro
    split's training images, the test images evaluated in the history, plus the run folder.

    ``stop_after`` ends the process-equivalent of an interruption after that many epochs of this
    call (used to test resumption); the checkpoint is left as an interrupted run leaves it.
    """
    out, recipe = Path(out), recipe or Recipe()
    model_config = model_config or ModelConfig()
    check_ensemble(recipe.ensemble, model_config.freeze_stump)
    device = resolve_device(recipe.device)
    split = data.load()
    model_config = dataclasses.replace(model_config, num_classes=len(split.train.classes))
    if recipe.ensemble in TRAJECTORY_ENSEMBLES:  # too short a training fails before any file
        collection_steps(recipe.ensemble, recipe.epochs, math.ceil(len(split.train) /
                         recipe.batch_size), model_config.branches, recipe.fge_cycle_epochs)
    config = run_config(model_config, recipe, data, split.train.classes)
    with locked(out):
        return _fit_locked(out, split, data, model_config, recipe, config, device, resume,
                           overwrite, progress, stop_after)


def _fit_locked(out: Path, split: Split, data: DataSpec, model_config: ModelConfig,
                recipe: Recipe, config: dict[str, Any], device: torch.device, resume: bool,
                overwrite: bool, progress: bool, stop_after: int | None) -> FitResult:
    resuming = prepare_run(out, config, resume, overwrite, RUN_COMPARISON)
    if resuming and (out / "metrics.json").exists():
        finished = read_run(out)
        return FitResult(load(finished.model_path), finished.metrics, finished.history, out)
    torch.manual_seed(recipe.seed)
    checkpoint = None
    if resuming:
        checkpoint = load_checkpoint(out / "checkpoint.pt")
        saved_weights = read_config(out)["model"]["weights"]
        model = blank(dataclasses.replace(model_config, weights=saved_weights))
        if model.freeze_stump:
            model.stump.load_state_dict(load_checkpoint(out / "stump.pt")["model"])
    else:
        model = build(model_config, progress=progress)  # the weights load: now the run can start
        clear_run(out)                                  # an earlier run (--overwrite) goes now
        # As asked (shift None stays None), so a resumption with the same options compares equal.
        write_json(out / "config.json", {**config, "resolved_shift": model.plan.shift})
        record(out, "config.json")

    train_images = ImageDataset(split.train, size=recipe.image_size)
    test_images = ImageDataset(split.test, size=recipe.image_size)
    folder = RunFolder(out, checkpoint, stop_after)
    result = train(model, train_images, recipe, eval_data=test_images, device=device,
                   progress=progress, callbacks=[folder], eval_prefix="test")
    if result.stopped:
        return FitResult(result.model, {}, result.history, out)
    final = result.model
    metrics = evaluate_split(final, split, recipe, device, test_images)  # images: whole model
    metrics.update(weights_used=final.config.weights, ema=recipe.uses_ema,
                   epochs=recipe.epochs, ensemble=recipe.ensemble,
                   setup_seconds=round(result.setup_seconds, 3),
                   train_seconds=round(result.train_seconds, 3))
    if result.snapshot_steps is not None:
        metrics["snapshot_steps"] = result.snapshot_steps  # 0-based optimiser steps
    save(final.cpu(), out / "model.pt")
    write_json(out / "metrics.json", metrics)
    record(out, "model.pt", "metrics.json")  # last: the run is finished
    return FitResult(final, metrics, result.history, out)


callable_module(__name__, train)  # rrrnet.train(model, data) is this module, called
