"""``rrrnet fit``: :func:`~rrrnet.training.loop.train` on a dataset folder, into a run folder.

The run folder (:mod:`rrrnet.rundir`) holds the configuration, the history, an atomic
checkpoint after every epoch (exact resumption) and, when finished, the model and its metrics;
:class:`RunFolder` is the listener that keeps it in step with training. In data-parallel
training (:mod:`.distributed`) only rank 0 writes it.
"""
from __future__ import annotations

import contextlib
import csv
import dataclasses
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

import torch

from ..data import ImageDataset, Parts, Split, check_out_folder, write_split_files
from ..data.parts import SKIPPED_FILE, SPLIT_FILE
from ..errors import DataError, RunError
from ..evaluate import evaluate_split
from ..io import resolve_device
from ..model import ModelConfig, blank, build
from ..model import writer as model_writer
from ..recipe import (BEFORE_OPTION, DATA_BEFORE_OPTION, HISTORY_ONLY, INERT_WITHOUT, RENAMED,
                      DataSpec, Recipe)
from ..recycle import BranchedResNet
from ..run import Run
from ..checks import check_fields
from ..rundir import (Comparison, checkpoint_file, csv_file, finish_run, json_file, load_checkpoint,
                      locked, prepare_run, read_config, record, start_run, write_files)
from . import strategies
from .callbacks import loggers
from .data import steps_per_epoch as epoch_steps
from .events import Callback, TrainState
from .loop import train

RUN_COMPARISON = Comparison(
    # Options added since a run was written take the values that run used (BEFORE_OPTION, or
    # their defaults); where the run executes may change between an interruption and its
    # resumption (HISTORY_ONLY).
    defaults={"recipe": {**dataclasses.asdict(Recipe()), **BEFORE_OPTION},
              "model": {"dropout": 0.0, "slice_bn": True},
              "data": {"allow_outside_files": False, **DATA_BEFORE_OPTION}},
    # Bad images are always left out now (and listed in skipped.csv), as that option did.
    ignore={"recipe": HISTORY_ONLY, "model": ("weights",), "data": ("skip_bad_images",)},
    renamed=RENAMED, inert={"recipe": INERT_WITHOUT})


def run_config(model: ModelConfig, recipe: Recipe, data: DataSpec,
               classes: Iterable[str] = ()) -> dict[str, Any]:
    return {"model": model.to_dict(), "recipe": dataclasses.asdict(recipe),
            "data": data.to_dict(), "classes": list(classes)}


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
            write_files(self.out, {"stump.pt": checkpoint_file(
                {"model": state.model.stump.state_dict()})})

    def on_epoch_end(self, state: TrainState) -> None:
        if self.writes:   # one step under the manifest: a kill at any instant resumes
            write_files(self.out, {"history.csv": csv_file(state.history),
                                   "checkpoint.pt": checkpoint_file(state.state_dict())})
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
        callbacks: Iterable[Callback] = (), world: Any = None,
        parts: Parts | None = None) -> FitResult:
    """Train an RRR-Net on ``data`` into the run folder ``out``: :func:`train` on the split's
    training images; the history scores the validation images where the split has them
    (early stopping and the kept weights are chosen on them alone), else the test images;
    the test images are scored once, at the end, for ``metrics.json`` (without a test part
    it reports the validation figures, labelled so: :func:`rrrnet.evaluate.evaluate_split`).
    The run folder gets ``split.csv`` (every image used, with its part) and ``skipped.csv``
    (every file left out, and why) with its configuration, before training; ``out`` may not
    lie inside the dataset folder. ``parts``: ``data.load()`` when the caller has it already.

    ``callbacks`` listen to the loop after the run folder's; ``world``: data-parallel training
    (:func:`rrrnet.training.distributed.world`). ``stop_after`` ends the process-equivalent
    of an interruption after that many epochs of this call (used to test resumption).
    """
    out, recipe = Path(out), recipe or Recipe()
    model_config = model_config or ModelConfig()
    for options in (data, model_config, recipe):   # the API's values meet the CLI's checks
        check_fields(options)
    strategy = strategies.get(recipe.ensemble)
    strategy.check(recipe, model_config.freeze_stump)
    device = resolve_device(recipe.device)
    given = data
    if resume:
        data = as_written(out, data)
    split = parts if parts is not None and data == given else data.load()
    check_out_folder(split, out)
    if not len(split.val) and not len(split.test):
        raise DataError(f"the split of {split.root} ({split.rule}) leaves no validation or test "
                        f"images to score the model on; give a split with a test part, such as "
                        f"--split 0.8,0.1,0.1")
    model_config = dataclasses.replace(model_config, num_classes=len(split.train.classes))
    shard = 1 if world is None else world.size
    steps_per_epoch = epoch_steps(math.ceil(len(split.train) / shard), recipe.batch_size,
                                  recipe.image_size)
    recipe = recipe.for_steps(steps_per_epoch)   # --min-steps: what trains and what is recorded
    strategy.check_length(recipe, steps_per_epoch, model_config.branches)
    if recipe.patience and not len(split.val):
        raise_no_validation(recipe)
    if recipe.distill:   # the teacher's classes and image size, before anything is written
        from .distill import check_teacher
        check_teacher(recipe.distill, recipe.image_size, split.train.classes, out)
    config = run_config(model_config, recipe, data, split.train.classes)
    main = world is None or world.rank == 0
    with locked(out) if main else contextlib.nullcontext():
        return _fit_locked(out, split, data, model_config, recipe, config, device, resume,
                           overwrite, progress and main, stop_after, list(callbacks), world)


def raise_no_validation(recipe: Recipe) -> None:
    from ..errors import ConfigError
    raise ConfigError(f"--patience {recipe.patience} stops on validation images, and this split "
                      f"has none: add a val/ folder, a val ratio (--split 0.8,0.1,0.1) or --val N "
                      f"(with --split micro), or give --patience 0")


def as_written(out: Path, data: DataSpec) -> DataSpec:
    """``data`` for resuming the run in ``out``: the data options that run predates (absent
    from its ``config.json``) and that ``data`` leaves at their defaults take the values the
    run used (:data:`rrrnet.recipe.DATA_BEFORE_OPTION`: the micro split, duplicates kept), so
    that it goes on with the images it started with."""
    if not (out / "config.json").exists():
        return data
    saved = read_config(out).get("data") or {}
    default = {f.name: f.default for f in dataclasses.fields(DataSpec)}
    changes = {k: v for k, v in DATA_BEFORE_OPTION.items()
               if k not in saved and getattr(data, k) == default[k]}
    return dataclasses.replace(data, **changes) if changes else data


def _fit_locked(out: Path, split: Split, data: DataSpec, model_config: ModelConfig,
                recipe: Recipe, config: dict[str, Any], device: torch.device, resume: bool,
                overwrite: bool, progress: bool, stop_after: int | None,
                callbacks: list[Callback], world: Any) -> FitResult:
    main = world is None or world.rank == 0
    resuming = _prepared(out, config, resume, overwrite, world)
    if resuming and (out / "metrics.json").exists():
        finished = Run(out).require_finished()   # the one reader of run folders
        return FitResult(finished.model, finished.metrics, finished.history, out)
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
            # An earlier run (--overwrite) is set aside now, and comes back if this one fails.
            start_run(out, replace=overwrite)
            # As asked (shift None stays None), so a resumption with the same options compares equal.
            write_files(out, {"config.json": json_file({**config,
                                                        "resolved_shift": model.plan.shift})})
    if main:
        _account_for_images(out, split, resuming)

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
    write_files(out, {"model.pt": (model_writer(final.cpu()), "wb"),
                      "metrics.json": json_file(metrics)})   # the run is finished
    finish_run(out)                                          # what it replaced goes now
    return FitResult(final, metrics, result.history, out)


def _account_for_images(out: Path, split: Split, resuming: bool) -> None:
    """Write ``split.csv`` and ``skipped.csv`` (a new run, or one that predates them); a
    resumed run whose ``split.csv`` lists other images than the dataset gives now is refused."""
    if resuming and (out / SPLIT_FILE).exists():
        with open(out / SPLIT_FILE, newline="") as handle:
            before = list(csv.DictReader(handle))
        now = split.used
        if before != now:
            changed = len({tuple(r.values()) for r in before} ^ {tuple(r.values()) for r in now})
            raise RunError(f"{out} was trained on other images: {changed} rows of its "
                           f"{SPLIT_FILE} differ from the dataset's split now (files added, "
                           f"removed or moved); restore the dataset, or --overwrite to start again")
        return
    write_split_files(split, out)
    record(out, SPLIT_FILE, SKIPPED_FILE)


def _prepared(out: Path, config: dict[str, Any], resume: bool, overwrite: bool,
              world: Any) -> bool:
    """Rank 0 checks and claims the folder; the other processes wait for it, then resume
    from what it found."""
    if world is None:
        return prepare_run(out, config, resume, overwrite, RUN_COMPARISON)
    return world.from_main(lambda: prepare_run(out, config, resume, overwrite, RUN_COMPARISON))
