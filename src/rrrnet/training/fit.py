"""``rrrnet fit``: :func:`~rrrnet.training.loop.train` on a dataset folder, into a run folder.

The run folder (:mod:`rrrnet.rundir`) holds the configuration, the history, an atomic
checkpoint after every epoch (exact resumption) and, when finished, the model and its metrics;
:class:`RunFolder` is the listener that keeps it in step with training. In data-parallel
training (:mod:`.distributed`) only rank 0 writes it.
"""
from __future__ import annotations

import contextlib
import dataclasses
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

import torch

from ..data import ImageDataset, Split
from ..evaluate import evaluate_split
from ..io import resolve_device, write_json
from ..model import ModelConfig, blank, build, load, save
from ..recipe import BEFORE_OPTION, HISTORY_ONLY, RENAMED, DataSpec, Recipe
from ..recycle import BranchedResNet
from ..rundir import (Comparison, clear_run, load_checkpoint, locked, prepare_run, read_config,
                      read_run, record, save_checkpoint, write_history)
from . import strategies
from .callbacks import loggers
from .events import Callback, TrainState
from .loop import train

RUN_COMPARISON = Comparison(
    # Options added since a run was written take the values that run used (BEFORE_OPTION, or
    # their defaults); where the run executes may change between an interruption and its
    # resumption (HISTORY_ONLY).
    defaults={"recipe": {**dataclasses.asdict(Recipe()), **BEFORE_OPTION},
              "model": {"dropout": 0.0, "slice_bn": True},
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

    order, main_process_only = -10, False   # every process restores; rank 0 alone writes

    def __init__(self, out: Path, checkpoint: dict[str, Any] | None = None,
                 stop_after: int | None = None, writes: bool = True):
        self.out, self.checkpoint, self.stop_after, self.done = out, checkpoint, stop_after, 0
        self.writes = writes

    def on_fit_start(self, state: TrainState) -> None:
        if self.checkpoint is not None:
            state.load_state_dict(self.checkpoint)
            state.stump_ready = True  # loaded from stump.pt by fit()

    def on_stump_ready(self, state: TrainState) -> None:
        if self.writes:
            save_checkpoint(self.out / "stump.pt", {"model": state.model.stump.state_dict()})
            record(self.out, "stump.pt")

    def on_epoch_end(self, state: TrainState) -> None:
        if self.writes:
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
        progress: bool = True, stop_after: int | None = None,
        callbacks: Iterable[Callback] = (), world: Any = None) -> FitResult:
    """Train an RRR-Net on ``data`` into the run folder ``out``: :func:`train` on the split's
    training images; the history scores the validation images where the split has them
    (early stopping and the kept weights are chosen on them alone), else the test images;
    the test images are scored once more at the end, for ``metrics.json``.

    ``callbacks`` listen to the loop after the run folder's; ``world``: data-parallel training
    (:func:`rrrnet.training.distributed.world`). ``stop_after`` ends the process-equivalent
    of an interruption after that many epochs of this call (used to test resumption).
    """
    out, recipe = Path(out), recipe or Recipe()
    model_config = model_config or ModelConfig()
    strategy = strategies.get(recipe.ensemble)
    strategy.check(recipe, model_config.freeze_stump)
    device = resolve_device(recipe.device)
    split = data.load()
    model_config = dataclasses.replace(model_config, num_classes=len(split.train.classes))
    shard = 1 if world is None else world.size
    strategy.check_length(recipe, math.ceil(len(split.train) / shard / recipe.batch_size),
                          model_config.branches)
    if recipe.patience and not len(split.val):
        raise_no_validation(recipe)
    config = run_config(model_config, recipe, data, split.train.classes)
    main = world is None or world.rank == 0
    with locked(out) if main else contextlib.nullcontext():
        return _fit_locked(out, split, data, model_config, recipe, config, device, resume,
                           overwrite, progress and main, stop_after, list(callbacks), world)


def raise_no_validation(recipe: Recipe) -> None:
    from ..errors import ConfigError
    raise ConfigError(f"--patience {recipe.patience} stops on validation images, and this split "
                      f"has none: give --val N (images per class), or --patience 0")


def _fit_locked(out: Path, split: Split, data: DataSpec, model_config: ModelConfig,
                recipe: Recipe, config: dict[str, Any], device: torch.device, resume: bool,
                overwrite: bool, progress: bool, stop_after: int | None,
                callbacks: list[Callback], world: Any) -> FitResult:
    main = world is None or world.rank == 0
    resuming = _prepared(out, config, resume, overwrite, world)
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
        if main:
            clear_run(out)                                  # an earlier run (--overwrite) goes now
            # As asked (shift None stays None), so a resumption with the same options compares equal.
            write_json(out / "config.json", {**config, "resolved_shift": model.plan.shift})
            record(out, "config.json")

    size, resize = recipe.image_size, recipe.resize
    train_images = ImageDataset(split.train, size=size, resize=resize)
    test_images = ImageDataset(split.test, size=size, resize=resize)
    validating = len(split.val) > 0
    eval_images = ImageDataset(split.val, size=size, resize=resize) if validating else test_images
    folder = RunFolder(out, checkpoint, stop_after, writes=main)
    listeners = [folder, *(loggers(recipe.log, out) if main else []), *callbacks]
    result = train(model, train_images, recipe, eval_data=eval_images, device=device,
                   progress=progress, callbacks=listeners,
                   eval_prefix="val" if validating else "test", world=world)
    if result.stopped or not main:
        return FitResult(result.model, {}, result.history, out)
    final = result.model
    metrics = evaluate_split(final, split, recipe, device, test_images)  # images: whole model
    metrics.update(weights_used=final.config.weights, ema=recipe.uses_ema,
                   epochs=recipe.epochs, epochs_trained=len(result.history),
                   ensemble=recipe.ensemble, precision=recipe.precision,
                   setup_seconds=round(result.setup_seconds, 3),
                   train_seconds=round(result.train_seconds, 3))
    if result.best_epoch is not None:
        metrics["best_epoch"] = result.best_epoch   # early stopping kept this epoch's weights
    if result.snapshot_steps is not None:
        metrics["snapshot_steps"] = result.snapshot_steps  # 0-based optimiser steps
    save(final.cpu(), out / "model.pt")
    write_json(out / "metrics.json", metrics)
    record(out, "model.pt", "metrics.json")  # last: the run is finished
    return FitResult(final, metrics, result.history, out)


def _prepared(out: Path, config: dict[str, Any], resume: bool, overwrite: bool,
              world: Any) -> bool:
    """Rank 0 checks and claims the folder; the other processes wait for it, then resume
    from what it found."""
    if world is None:
        return prepare_run(out, config, resume, overwrite, RUN_COMPARISON)
    return world.from_main(lambda: prepare_run(out, config, resume, overwrite, RUN_COMPARISON))
