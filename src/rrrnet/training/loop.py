"""The training loop: epochs of steps, and the events of :mod:`rrrnet.training.events`.

Everything that is not iterating listens: the strategy (:mod:`.strategies`) decides the loss
and the final weights, the callbacks (:mod:`.callbacks`) warm and fold the frozen stump, average
the weights, schedule the learning rate, record the history, stop early, show progress and log.

The recipe (paper Appendix C, the authors' release): AdamW (lr 1e-3, weight decay 0.01), batch
32, 300 epochs, no schedule, an exponential moving average of the weights over the last 60
epochs, two random augmentations per image; the frozen stump stays in eval mode after its
BatchNorm statistics are re-estimated on the training images. Every branch has its own
cross-entropy loss, and all branches train in one fused pass per batch with the stump computed
once (``branch_views="shared"``), or each branch on its own augmentation draw
(``"independent"``). Reproducibility: every random draw of epoch ``e`` (batch order,
augmentations, dropout masks) derives from ``(seed, e)`` alone, so a resumed run repeats
exactly what an uninterrupted one would have done.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Iterable, Sequence

import torch
from torch.utils.data import Dataset

from ..errors import ConfigError, RunError
from ..io import derive_seed, resolve_device
from ..evaluate import error_summary
from ..precision import resolve_precision
from ..recipe import Recipe
from ..recycle import BranchedResNet
from . import strategies
from .callbacks import (ClassBalance, EarlyStopping, FrozenStump, LrSchedule, Progress,
                        TrainMetrics, WeightAverage)
from .data import TrainingData
from .events import Callback, TrainState
from .stump import to_device


class TrainingDiverged(RunError):
    """The loss became NaN or infinite."""


@dataclass
class TrainResult:
    """``model``: the trained model, final (averaged, assembled or best) weights in place;
    ``history``: one dict per epoch; ``stopped``: a callback interrupted training (final weights
    not applied); ``best_epoch``: early stopping kept that epoch's weights."""

    model: BranchedResNet
    history: list[dict[str, Any]]
    setup_seconds: float = 0.0
    train_seconds: float = 0.0
    stopped: bool = False
    snapshot_steps: list[int] | None = None   # snapshot/FGE: the 0-based steps collected
    best_epoch: int | None = None


def train(model: BranchedResNet, train_data: Dataset | Iterable, recipe: Recipe | None = None, *,
          eval_data: Dataset | Iterable | None = None, device: str | torch.device | None = None,
          progress: bool = True, callbacks: Sequence[Callback] = (),
          eval_prefix: str = "eval", world: Any = None) -> TrainResult:
    """Train ``model`` (any :class:`~rrrnet.recycle.BranchedResNet`) with ``recipe``.

    ``train_data`` / ``eval_data``: a re-iterable of ready ``(images, labels)`` batches, used as
    given; or a ``Dataset`` of ``(PIL image or uint8 HxWx3 array, label)`` pairs, to which the
    recipe's resizing, seeded augmentation, batching and normalisation apply. With ``eval_data``
    the history holds, every ``recipe.eval_every`` epochs, the error of the raw weights
    (``{eval_prefix}_error``, per-branch errors, gain, disagreement) and of the averaged ones
    (``{eval_prefix}_error_ema``). ``callbacks`` listen to the loop's events after the built-in
    ones; ``world``: data-parallel training (:mod:`rrrnet.training.distributed`). Returns the
    model with its final weights in place (in its original memory format, on ``device``).
    """
    state = start(model, train_data, recipe or Recipe(), eval_data, device, progress,
                  eval_prefix, world)
    state.attach([state.strategy, *standard_callbacks(state), *callbacks])
    try:
        started = time.perf_counter()
        state.fire("on_fit_start")
        state.setup_seconds += time.perf_counter() - started
        for epoch in range(state.epoch, state.recipe.epochs):
            started = time.perf_counter()
            begin_epoch(state, epoch)
            state.fire("on_epoch_start")
            for batch in state.data.epoch_loader(derive_seed(state.recipe.seed, epoch)):
                state.fire("on_step_start", batch)
                loss, outputs = train_step(state, batch)
                state.fire("on_step_end", batch, loss, outputs)
            state.fire("on_train_epoch_end")
            if validation_due(state):
                state.fire("on_validation_end", validate(state))
            end_epoch(state, time.perf_counter() - started)
            state.fire("on_epoch_end")
            if state.stop or state.stop_early:
                break
    except BaseException as error:  # KeyboardInterrupt and SystemExit included
        state.fire("on_interrupt", error)
        raise
    return finish(state)


def start(model: BranchedResNet, train_data: Any, recipe: Recipe, eval_data: Any, device: Any,
          progress: bool, eval_prefix: str, world: Any) -> TrainState:
    """The state before anything trains: the strategy checked, the model on its device, the
    data, the optimiser (AdamW over what requires gradients) and the precision."""
    if not isinstance(model, BranchedResNet):
        raise ConfigError(f"train() needs a BranchedResNet (rrrnet.build, split or load), got "
                          f"{type(model).__name__}")
    strategy = strategies.get(recipe.ensemble)
    strategy.check(recipe, model.freeze_stump)
    device = resolve_device(recipe.device if device is None else device)
    trained = strategy.trained_model(model).to(device)
    if recipe.channels_last:
        trained.to(memory_format=torch.channels_last)
    views = trained.num_branches if recipe.branch_views == "independent" else 1
    data = TrainingData(train_data, eval_data, recipe, views, strategy.needs_dataset, world)
    steps_per_epoch = len(data.epoch_loader(0))
    recipe = recipe.for_steps(steps_per_epoch)   # min_steps: a short epoch lengthens the run
    optimizer = torch.optim.AdamW([p for p in trained.parameters() if p.requires_grad],
                                  lr=recipe.lr, weight_decay=recipe.weight_decay)
    precision = resolve_precision(recipe.precision, device)
    return TrainState(trained, model, recipe, device, optimizer, strategy, precision, data,
                      steps_per_epoch, eval_prefix, progress, world,
                      scaler=precision.scaler())


def standard_callbacks(state: TrainState) -> list[Callback]:
    """The built-in listeners the recipe asks for (see :mod:`.callbacks`)."""
    chosen = [ClassBalance(), FrozenStump(), LrSchedule(), WeightAverage(), TrainMetrics()]
    if state.recipe.patience:
        chosen.append(EarlyStopping(state.recipe.patience))
    if state.recipe.distill:
        from .distill import Distillation, teacher_from_run
        r = state.recipe
        teacher, precision = teacher_from_run(r.distill, r.image_size)
        chosen.append(Distillation(teacher, r.distill_temperature, r.distill_weight,
                                   r.distill_target, teacher_precision=precision))
    if state.progress:
        chosen.append(Progress())
    if state.world is not None and state.world.size > 1:
        from .distributed import SyncReplicas
        chosen.append(SyncReplicas())
    return chosen


def begin_epoch(state: TrainState, epoch: int) -> None:
    """The model in training mode (the frozen stump stays in eval mode), the epoch's row and
    its random streams: augmentations and dropout masks from ``(seed, epoch)`` alone."""
    state.model.train()
    state.epoch, state.row = epoch, {"epoch": epoch + 1}
    state.data.set_epoch(epoch)
    torch.manual_seed(derive_seed(state.recipe.seed, epoch, 7))  # dropout masks of this epoch


def train_step(state: TrainState, batch: Sequence[Any]) -> tuple[torch.Tensor, torch.Tensor]:
    """One optimiser step on ``batch``: forward (autocast at the recipe's precision), the
    strategy's loss (which ``on_loss`` listeners may change), backward (scaled for fp16),
    step. A non-finite loss raises :class:`TrainingDiverged` before the step."""
    x, y = to_device(batch[0], state.device), batch[1].to(state.device, non_blocking=True)
    with state.precision.autocast():
        outputs = state.forward(x).float()
    state.loss = state.strategy.loss(outputs, y, batch)
    state.fire("on_loss", batch, outputs)
    loss = state.loss
    if not torch.isfinite(loss):
        raise TrainingDiverged(
            f"the training loss became {loss.item()} in epoch {state.epoch + 1}; the learning "
            f"rate ({state.optimizer.param_groups[0]['lr']:g}) is probably too high for this "
            f"model, or the inputs hold NaN/inf values. Lower --lr and start again with "
            f"--overwrite")
    state.optimizer.zero_grad(set_to_none=True)
    if state.scaler is None:
        loss.backward()
        state.optimizer.step()
    else:
        state.scaler.scale(loss).backward()
        state.scaler.step(state.optimizer)
        state.scaler.update()
    state.step += 1
    return loss, outputs


def validation_due(state: TrainState) -> bool:
    every = state.recipe.eval_every
    return state.eval_loader is not None and bool(every) and (state.epoch + 1) % every == 0


@torch.no_grad()
def validate(state: TrainState) -> dict[str, Any]:
    """The history's evaluation columns: the raw weights' error summary, and the averaged
    weights' error while the average runs (in float32, on cached stump features where the
    frozen stump allowed them). Evaluation draws no random numbers and changes no weight."""
    model, prefix = state.model, state.eval_prefix
    forward = model.branches if state.eval_cached else state.fast
    metrics = {f"{prefix}_{k}": v for k, v in
               error_summary(model, state.eval_loader, state.device, forward).items()}
    if state.ema is not None:
        if not model.freeze_stump or state.eval_cached:
            averaged = state.ema.module
        else:
            averaged = BranchedResNet(state.fast.stump, state.ema.module, model.plan,
                                      model.block, freeze_stump=True)
        metrics[f"{prefix}_error_ema"] = error_summary(averaged, state.eval_loader,
                                                       state.device)["error"]
    state.row.update(metrics)
    return metrics


def end_epoch(state: TrainState, seconds: float) -> None:
    state.row["seconds"] = round(seconds, 3)
    state.history.append(state.row)
    state.epoch += 1


def finish(state: TrainState) -> TrainResult:
    """The result: after an interruption the model as it is; else the strategy's final weights
    (the average's, the snapshots', or as trained), then ``on_fit_end`` (early stopping puts
    the best weights in place there)."""
    seconds = state.setup_seconds + sum(r["seconds"] for r in state.history)
    if state.stop and state.epoch < state.recipe.epochs:
        return TrainResult(state.model, state.history, state.setup_seconds, seconds, stopped=True)
    final = state.strategy.final_model(state).to(memory_format=torch.contiguous_format)
    state.fire("on_fit_end")
    trajectory = state.trajectory
    return TrainResult(final, state.history, state.setup_seconds, seconds,
                       snapshot_steps=None if trajectory is None else list(trajectory.steps),
                       best_epoch=state.best_epoch)
