"""The built-in listeners of the training loop: every feature of training that is not the loop.

=================  ====  =====================================================================
callback           order what it does
=================  ====  =====================================================================
FrozenStump         900  warms the frozen stump's BatchNorm statistics, folds it, caches its
                         features where the images are not augmented (after every other
                         listener's on_fit_start: a restored checkpoint skips the warm-up)
LrSchedule           10  the learning rate of every step: constant (the paper's) or cosine,
                         after a linear warm-up
WeightAverage        20  the bias-corrected exponential moving average of the weights
TrainMetrics         30  the epoch's training loss and errors in its history row
EarlyStopping        40  stops when the kept weights' validation error has not improved for
                         ``patience`` evaluations, and restores the best
Progress             50  progress bars with an ETA (rank 0 only)
CSVLogger,           60  one line per epoch: loss, validation error, learning rate, time
TensorBoardLogger,       (rank 0 only; TensorBoard and MLflow are optional extras)
MLflowLogger
=================  ====  =====================================================================

The run folder's checkpoints are :class:`rrrnet.training.fit.RunFolder`; data-parallel
synchronisation is :class:`rrrnet.training.distributed.SyncReplicas`.
"""
from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import torch
from torch.optim.swa_utils import AveragedModel
from tqdm.auto import tqdm

from ..errors import ConfigError
from ..io import derive_seed, write_csv
from .events import Callback, TrainState
from .stump import feature_cache, trained_part, warm_stump, with_folded_stump
from .data import loader

WARM_UP_EPOCH = 10**6  # the stump warm-up's draws: a stream no training epoch uses
# The evaluation images' stump features are kept in memory up to this size (e.g. 400 images of
# ResNet_1.1.1.1 at 128 px: 200 MiB); beyond it the stump runs at every evaluation.
EVAL_CACHE_BYTES = 1 << 30


class FrozenStump(Callback):
    """The paper's frozen stump (Section 3.3): its BatchNorm statistics re-estimated on the
    training images (``warm_stump_epochs`` no-grad passes, their own augmentation draws), then
    frozen in eval mode. Training runs a folded copy of it; a frozen stump on unaugmented images
    computes the same features every epoch, so they are computed once (e.g. baseline [A]), and
    the evaluation images' features once where they fit in :data:`EVAL_CACHE_BYTES`."""

    order = 900

    def on_fit_start(self, state: TrainState) -> None:
        model, recipe, data = state.model, state.recipe, state.data
        if model.freeze_stump and not state.stump_ready:
            data.set_epoch(-1)  # warm-up draws of their own
            warm_stump(model, data.warm_up_loader(derive_seed(recipe.seed, WARM_UP_EPOCH)),
                       recipe.warm_stump_epochs, state.device, state.progress)
            state.stump_ready = True
            state.fire("on_stump_ready")
        fast = with_folded_stump(model, recipe.channels_last)
        views = data.augmented.views if data.augmented is not None else 1
        cached = data.from_dataset and model.freeze_stump and recipe.augment_ops == 0 \
            and views == 1
        state.forward = model.branches if cached else fast
        if cached:
            data.train_set = feature_cache(fast, loader(data.train_set, recipe.batch_size * 2,
                                                        False), state.device, state.progress,
                                           "stump features (train)")
        state.eval_loader, state.eval_cached = data.eval_loader, False
        if data.eval_loader is not None and recipe.eval_every and model.freeze_stump:
            features = feature_cache(fast, data.eval_loader, state.device, state.progress,
                                     "stump features (eval)",
                                     max_bytes=None if cached else EVAL_CACHE_BYTES)
            if features is not None:
                state.eval_loader = loader(features, recipe.batch_size * 2, False)
                state.eval_cached = True
        state.fast = fast


class ClassBalance(Callback):
    """``--balance weights``: each class's loss weighted by ``N / (classes x count)`` (the
    inverse of its share of the training images, 1 on balanced data), handed to the strategy's
    loss. (``--balance sampler`` is the training data's: :func:`.data.balanced_sampler`.)"""

    order = 1

    def on_fit_start(self, state: TrainState) -> None:
        if state.recipe.balance != "weights":
            return
        from .data import class_counts
        counts = class_counts(state.data.labels()).double()
        if (counts == 0).any():
            raise ConfigError("--balance weights: a class has no training image; every class "
                              "needs at least one")
        weights = counts.sum() / (len(counts) * counts)
        state.strategy.class_weights = weights.float().to(state.device)


def lr_factor(step: int, total: int, warmup: int, schedule: str) -> float:
    """The learning rate of 0-based ``step`` as a multiple of ``Recipe.lr``: a linear warm-up
    over ``warmup`` steps (from ``1 / warmup``), then constant or a cosine from 1 to 0 over the
    remaining steps (Loshchilov & Hutter's SGDR without restarts). Stateless: a resumed run
    gets the same rates."""
    if step < warmup:
        return (step + 1) / warmup
    if schedule == "constant":
        return 1.0
    span = max(1, total - warmup)
    return 0.5 * (1.0 + math.cos(math.pi * min(step - warmup, span) / span))


class LrSchedule(Callback):
    """Sets every step's learning rate (:func:`lr_factor`); records the rate of each epoch's
    last step as the history's ``lr``. Snapshot and FGE set the rate themselves."""

    order = 10

    def on_step_start(self, state: TrainState, batch) -> None:
        r = state.recipe
        if state.strategy.trajectory_based or (r.schedule == "constant" and not r.warmup_epochs):
            return
        factor = lr_factor(state.step, r.epochs * state.steps_per_epoch,
                           min(r.warmup_epochs, r.epochs) * state.steps_per_epoch, r.schedule)
        for group in state.optimizer.param_groups:
            group["lr"] = r.lr * factor

    def on_train_epoch_end(self, state: TrainState) -> None:
        state.row["lr"] = state.optimizer.param_groups[0]["lr"]


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


def new_ema(model, recipe, steps_per_epoch: int) -> AveragedModel:
    return AveragedModel(trained_part(model), use_buffers=True,
                         multi_avg_fn=bias_corrected_ema(recipe.ema_decay(steps_per_epoch)))


class WeightAverage(Callback):
    """The paper's exponential moving average of the weights (the authors' release: the last 60
    of 300 epochs), over the last ``Recipe.ema_averaged_epochs`` epochs with the decay whose
    window spans them, bias-corrected (:func:`bias_corrected_ema`); ``state.ema`` while it runs.
    The final weights are the average's (:meth:`Strategy.final_model`)."""

    order, state_key = 20, "ema"

    def setup(self, state: TrainState) -> None:
        self.state = state

    def on_epoch_start(self, state: TrainState) -> None:
        r = state.recipe
        if state.ema is None and state.strategy.uses_ema(r) and state.epoch >= r.ema_start:
            state.ema = new_ema(state.model, r, state.steps_per_epoch)

    def on_step_end(self, state: TrainState, batch, loss, outputs) -> None:
        if state.ema is not None:
            state.ema.update_parameters(trained_part(state.model))

    def state_dict(self) -> Any:
        return None if self.state.ema is None else self.state.ema.state_dict()

    def load_state_dict(self, saved: Any) -> None:
        if saved is not None:
            state = self.state
            state.ema = new_ema(state.model, state.recipe, state.steps_per_epoch)
            state.ema.load_state_dict(saved)


class TrainMetrics(Callback):
    """The history's training columns: mean loss per branch, the ensemble's training error
    (on the augmented images, raw weights) and each branch's."""

    order = 30

    def on_epoch_start(self, state: TrainState) -> None:
        self.loss, self.seen, self.wrong, self.branch_wrong = 0.0, 0, 0, None

    @torch.no_grad()
    def on_step_end(self, state: TrainState, batch, loss, outputs) -> None:
        y = batch[1].to(outputs.device)
        self.loss += loss.item() * y.numel()
        self.seen += y.numel()
        self.wrong += (outputs.softmax(-1).mean(0).argmax(-1) != y).sum().item()
        wrong = (outputs.argmax(-1) != y).sum(dim=1)
        self.branch_wrong = wrong if self.branch_wrong is None else self.branch_wrong + wrong

    def on_train_epoch_end(self, state: TrainState) -> None:
        if not self.seen:
            raise ConfigError("the training data yielded no batches")
        branches = len(self.branch_wrong)
        state.row.update(loss=self.loss / self.seen / branches,
                         train_error=self.wrong / self.seen)
        state.row.update({f"train_error_b{i}": v / self.seen
                          for i, v in enumerate(self.branch_wrong.tolist())})


class EarlyStopping(Callback):
    """Stops when the validation error of the weights that will be kept (the average's while it
    runs, else the raw ones) has not improved for ``patience`` evaluations, and puts the best
    of them in the final model. Ties keep the earlier weights."""

    order, state_key = 40, "early_stopping"

    def __init__(self, patience: int):
        if patience < 1:
            raise ConfigError(f"patience must be at least 1, got {patience}")
        self.patience, self.best, self.best_epoch, self.wait, self.weights = patience, None, 0, 0, None

    def setup(self, state: TrainState) -> None:
        if state.data.eval_loader is None:
            raise ConfigError("--patience needs validation data to stop on (fit: a val part, "
                              "e.g. --val N; the API: eval_data)")

    def on_validation_end(self, state: TrainState, metrics: dict[str, Any]) -> None:
        prefix = state.eval_prefix
        score = metrics.get(f"{prefix}_error_ema", metrics[f"{prefix}_error"])
        if self.best is None or score < self.best:
            kept = state.ema.module if state.ema is not None else trained_part(state.model)
            self.best, self.best_epoch, self.wait = score, state.epoch + 1, 0
            self.weights = {k: v.detach().cpu().clone() for k, v in kept.state_dict().items()}
        else:
            self.wait += 1
            state.stop_early = self.wait >= self.patience

    def on_fit_end(self, state: TrainState) -> None:
        if self.weights is not None:
            trained_part(state.full).load_state_dict(self.weights)
        state.best_epoch = self.best_epoch

    def state_dict(self) -> Any:
        return {"best": self.best, "best_epoch": self.best_epoch, "wait": self.wait,
                "weights": self.weights}

    def load_state_dict(self, saved: Any) -> None:
        if saved:
            self.best, self.best_epoch = saved["best"], saved["best_epoch"]
            self.wait, self.weights = saved["wait"], saved["weights"]


class Progress(Callback):
    """tqdm bars: the epochs (with an ETA, the loss and the latest validation error) and the
    steps of the current epoch."""

    order, main_process_only = 50, True

    def on_fit_start(self, state: TrainState) -> None:
        self.epochs = tqdm(total=state.recipe.epochs, initial=state.epoch, desc="epochs")
        self.steps = None

    def on_epoch_start(self, state: TrainState) -> None:
        self.steps = tqdm(total=state.steps_per_epoch, desc=f"epoch {state.epoch + 1}",
                          leave=False)

    def on_step_end(self, state: TrainState, batch, loss, outputs) -> None:
        self.steps.update()

    def on_epoch_end(self, state: TrainState) -> None:
        self.steps.close()
        row = state.history[-1]
        self.epochs.set_postfix(loss=f"{row['loss']:.3f}",
                                error=row.get(f"{state.eval_prefix}_error", "-"))
        self.epochs.update()

    def on_fit_end(self, state: TrainState) -> None:
        self.epochs.close()

    def on_interrupt(self, state: TrainState, error: BaseException) -> None:
        for bar in (self.steps, self.epochs):
            if bar is not None:
                bar.close()


LOGGED = ("loss", "lr", "seconds")


def logged(state: TrainState) -> dict[str, float]:
    """What the loggers write of the last epoch: loss, learning rate, seconds, and the
    validation errors (raw and averaged) where the epoch had them."""
    row, prefix = state.history[-1], state.eval_prefix
    keys = (*LOGGED, f"{prefix}_error", f"{prefix}_error_ema")
    return {k: float(row[k]) for k in keys if row.get(k) is not None}


class CSVLogger(Callback):
    """``path``: one row per epoch (epoch, loss, validation errors, lr, seconds), rewritten
    atomically after each epoch, so that it always matches the checkpoint."""

    order, main_process_only = 60, True

    def __init__(self, path: str | os.PathLike):
        self.path, self.rows = Path(path), []

    def on_fit_start(self, state: TrainState) -> None:
        self.rows = [{"epoch": r["epoch"], **{k: r[k] for k in r if k in LOGGED or
                                              k.startswith(f"{state.eval_prefix}_error")}}
                     for r in state.history]

    def on_epoch_end(self, state: TrainState) -> None:
        self.rows.append({"epoch": state.epoch, **logged(state)})
        self.path.parent.mkdir(parents=True, exist_ok=True)
        write_csv(self.path, self.rows)


class TensorBoardLogger(Callback):
    """TensorBoard event files in ``log_dir`` (``pip install rrrnet[tensorboard]``)."""

    order, main_process_only = 60, True

    def __init__(self, log_dir: str | os.PathLike):
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            raise ConfigError("--log tensorboard needs the tensorboard package: pip install "
                              "'rrrnet[tensorboard]'") from None
        self.writer = SummaryWriter(str(log_dir))

    def on_epoch_end(self, state: TrainState) -> None:
        for key, value in logged(state).items():
            self.writer.add_scalar(key, value, state.epoch)
        self.writer.flush()

    def on_fit_end(self, state: TrainState) -> None:
        self.writer.close()

    def on_interrupt(self, state: TrainState, error: BaseException) -> None:
        self.writer.close()


class MLflowLogger(Callback):
    """An MLflow run in a local file store ``store`` (``pip install rrrnet[mlflow]``): the
    recipe as parameters, the logged figures as metrics per epoch."""

    order, main_process_only = 60, True

    def __init__(self, store: str | os.PathLike, run_name: str = "rrrnet"):
        try:
            import mlflow
        except ImportError:
            raise ConfigError("--log mlflow needs the mlflow package: pip install "
                              "'rrrnet[mlflow]'") from None
        self.mlflow, self.store, self.run_name = mlflow, Path(store).resolve(), run_name

    def on_fit_start(self, state: TrainState) -> None:
        import dataclasses
        self.store.mkdir(parents=True, exist_ok=True)
        self.mlflow.set_tracking_uri(self.store.as_uri())
        self.mlflow.start_run(run_name=self.run_name)
        self.mlflow.log_params({k: v for k, v in dataclasses.asdict(state.recipe).items()})

    def on_epoch_end(self, state: TrainState) -> None:
        self.mlflow.log_metrics(logged(state), step=state.epoch)

    def on_fit_end(self, state: TrainState) -> None:
        self.mlflow.end_run()

    def on_interrupt(self, state: TrainState, error: BaseException) -> None:
        self.mlflow.end_run(status="KILLED")


LOGGERS = {"csv": lambda folder: CSVLogger(Path(folder) / "logs" / "metrics.csv"),
           "tensorboard": lambda folder: TensorBoardLogger(Path(folder) / "logs" / "tensorboard"),
           "mlflow": lambda folder: MLflowLogger(Path(folder) / "logs" / "mlruns")}


def loggers(names: str, folder: str | os.PathLike) -> list[Callback]:
    """The loggers ``names`` (comma-separated: csv, tensorboard, mlflow; "" or none: none)
    writing under ``folder/logs``."""
    chosen = [n.strip() for n in names.split(",") if n.strip() and n.strip() != "none"]
    unknown = sorted(set(chosen) - set(LOGGERS))
    if unknown:
        raise ConfigError(f"unknown logger {', '.join(unknown)}; choose from "
                          f"{', '.join(LOGGERS)} (comma-separated)")
    return [LOGGERS[name](folder) for name in dict.fromkeys(chosen)]
