"""How to train, importable without torch: the :class:`Recipe`, the :class:`DataSpec` of the images
it trains on, and the :class:`SearchSpace` that ``rrrnet tune`` searches.

Frozen dataclasses that round-trip through JSON (a run's ``config.json``, ``--config`` files).
The command line builds its options and their defaults from these, so ``rrrnet COMMAND --help``
answers without loading torch; training itself is :mod:`rrrnet.train`.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

from .checks import check_fields
from .errors import ConfigError
from .options import DEFAULT_MAX_EPOCHS, PRECISIONS
from .training.strategies import ensembles
from .training.strategies import get as get_strategy
from .training.strategies import method as paper_method

BRANCH_VIEWS = ("shared", "independent")
# The learning rate (training.callbacks.lr_factor); auto is resolved by Recipe.for_steps.
SCHEDULES = ("constant", "cosine", "auto")
BALANCES = ("none", "weights", "sampler")    # imbalanced classes (training.data, training.loss)
DISTILL_TARGETS = ("branches", "ensemble")   # what the teacher teaches (training.distill)
RESIZE_MODES = ("squash", "crop", "pad")     # how an image becomes square (data.resize_square)
# Recipe options that do not change the trained weights: where the run executes, and how often
# the history scores the evaluation images (evaluation draws no random numbers and leaves every
# weight and BatchNorm statistic as it is; tested). Resumption and benchmark cells ignore them.
HISTORY_ONLY = ("device", "num_workers", "eval_every", "log")
# Old spellings of recipe options, still read from configuration files and run folders.
RENAMED = {"warm_stem_epochs": "warm_stump_epochs"}
# What runs written before an option existed did, whatever its default is now: a run folder's or
# benchmark cell's configuration without the option is read with this value.
BEFORE_OPTION = {"precision": "fp32", "schedule": "constant", "warmup_epochs": 0, "patience": 0,
                 "log": "", "resize": "squash", "balance": "none", "distill": "",
                 "distill_temperature": 4.0, "distill_weight": 0.5, "distill_target": "branches",
                 "min_steps": 0}
# How far ``min_steps`` may lengthen a run: at most this many times its epochs (the quick
# recipe's 60 become at most the paper's 300).
LENGTHEN_AT_MOST = 5
# The quick recipe's least number of optimiser steps: the paper's 300 epochs of a 10-class
# micro split (200 images, batch 32) are 2,100 (docs/results/recipe/).
QUICK_MIN_STEPS = 2000


# Options that do nothing while another is off: a run without a teacher trains the same at any
# distillation temperature, so comparisons (resumption, benchmark cells, block selection) leave
# them out there.
INERT_WITHOUT = {"distill": ("distill_temperature", "distill_weight", "distill_target")}


def without_inert(recipe: dict[str, Any]) -> dict[str, Any]:
    """``recipe`` without the options that do nothing in it (:data:`INERT_WITHOUT`)."""
    inert = {k for switch, options in INERT_WITHOUT.items() if not recipe.get(switch)
             for k in options}
    return {k: v for k, v in recipe.items() if k not in inert}


def with_added_options(recipe: dict[str, Any]) -> dict[str, Any]:
    """A saved recipe (a run's or a cell's) with the options it predates filled in as it ran."""
    return {**BEFORE_OPTION, **renamed(recipe)}


def renamed(options: dict[str, Any]) -> dict[str, Any]:
    """``options`` with old option names (:data:`RENAMED`) replaced by the current ones."""
    return {RENAMED.get(k, k): v for k, v in options.items()}


@dataclass(frozen=True)
class Recipe:
    """How to train; the defaults are the paper's (:meth:`quick` is the practitioner's)."""

    epochs: int = 300
    min_steps: int = 0                # > 0: at least this many optimiser steps (for_steps)
    batch_size: int = 32
    lr: float = 1e-3
    weight_decay: float = 0.01
    ema_epochs: int = 60              # EMA over the last min(N, ceil(epochs/2)) epochs (0: none)
    ema_step_decay: float = 0.0       # > 0: this decay per step instead (the authors': 59/60)
    warm_stump_epochs: int = 10        # passes re-estimating the frozen stump's BN statistics
    augment_ops: int = 2              # augmentations drawn per image (0: none)
    branch_views: str = "shared"      # shared | independent (see the module docs)
    image_size: int = 128
    seed: int = 0
    eval_every: int = 1               # evaluation in the history every N epochs (0: only at the end)
    num_workers: int = 0
    device: str = "auto"              # auto | cpu | cuda
    channels_last: bool = True        # NHWC tensors: about 20% faster training on CPU here
    ensemble: str = "naive"           # naive | bagging | snapshot | fge (rrrnet.ensembles)
    fge_cycle_epochs: int = 4         # FGE: epochs per cycle (Garipov et al.: 2 to 4)
    fge_lr_high: float = 0.5          # FGE: cycle's highest rate, times lr
    fge_lr_low: float = 0.005         # FGE: cycle's lowest rate (where models are collected), times lr
    precision: str = "fp32"           # fp32 | bf16 | fp16 | auto: autocast of training steps
    schedule: str = "constant"        # constant (the paper's) | cosine | auto, after warmup_epochs
    warmup_epochs: int = 0            # linear learning-rate warm-up (epochs; at most all of them)
    patience: int = 0                 # stop after N evaluations without improvement (0: never)
    log: str = ""                     # loggers, comma-separated: csv, tensorboard, mlflow
    resize: str = "squash"            # squash | crop | pad: how images become square
    balance: str = "none"             # none | weights (class-weighted loss) | sampler (resampled)
    distill: str = ""                 # a teacher run folder: knowledge distillation (training.distill)
    distill_temperature: float = 8.0  # softening of both outputs (chosen: docs/results/distill)
    distill_weight: float = 0.5       # share of the distillation term in the loss (0..1)
    distill_target: str = "branches"  # branches: each distilled alone | ensemble: their average

    def __post_init__(self):
        check_fields(self)   # types first (rrrnet.checks): device=5 or epochs=1.5 are one line
        if self.branch_views not in BRANCH_VIEWS:
            raise ConfigError(f"branch_views must be shared or independent, got {self.branch_views!r}")
        if self.ensemble not in ensembles():
            raise ConfigError(f"ensemble must be one of {', '.join(ensembles())}, got {self.ensemble!r}")
        for name, choices in (("schedule", SCHEDULES), ("resize", RESIZE_MODES),
                              ("balance", BALANCES), ("distill_target", DISTILL_TARGETS)):
            if getattr(self, name) not in choices:
                raise ConfigError(f"{name} must be one of {', '.join(choices)}, got "
                                  f"{getattr(self, name)!r}")
        if not isinstance(self.log, str):
            raise ConfigError(f"log must be a comma-separated string of loggers, got {self.log!r}")
        if self.precision not in PRECISIONS:
            raise ConfigError(f"precision must be one of {', '.join(PRECISIONS)}, got {self.precision!r}")
        if self.fge_cycle_epochs < 1:
            raise ConfigError(f"fge_cycle_epochs must be at least 1, got {self.fge_cycle_epochs}")
        if not 0 < self.fge_lr_low <= self.fge_lr_high:
            raise ConfigError(f"FGE rates need 0 < fge_lr_low <= fge_lr_high, got "
                              f"{self.fge_lr_low} and {self.fge_lr_high}")
        if self.device not in ("auto", "cpu", "cuda") and not self.device.startswith("cuda:"):
            raise ConfigError(f"device must be auto, cpu or cuda, got {self.device!r}")
        for name in ("epochs", "batch_size", "image_size"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be at least 1, got {getattr(self, name)}")
        for name in ("ema_epochs", "warm_stump_epochs", "augment_ops", "eval_every", "num_workers",
                     "warmup_epochs", "patience", "min_steps"):
            if getattr(self, name) < 0:
                raise ConfigError(f"{name} must be >= 0, got {getattr(self, name)}")
        if not (isinstance(self.distill_temperature, (int, float))
                and math.isfinite(self.distill_temperature) and self.distill_temperature > 0):
            raise ConfigError(f"distill_temperature must be a finite positive number, got "
                              f"{self.distill_temperature!r}")
        if not (isinstance(self.distill_weight, (int, float)) and 0 <= self.distill_weight <= 1):
            raise ConfigError(f"distill_weight must be in [0, 1], got {self.distill_weight!r}")
        if not 0 <= self.ema_step_decay < 1:
            raise ConfigError(f"ema_step_decay must be in [0, 1), got {self.ema_step_decay}")
        for name in ("lr", "weight_decay"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0 \
                    or (name == "lr" and value == 0):
                raise ConfigError(f"{name} must be a finite {'positive' if name == 'lr' else 'non-negative'} "
                                  f"number, got {value!r}")

    @property
    def ema_averaged_epochs(self) -> int:
        """How many final epochs the average covers: ``min(ema_epochs, ceil(epochs / 2))``, so
        that the first half of a run, where the weights are furthest from their end, never
        enters it (0: no average)."""
        return min(self.ema_epochs, math.ceil(self.epochs / 2))

    def ema_decay(self, steps_per_epoch: int) -> float:
        """Decay whose averaging window (``1 / (1 - decay)`` steps) spans the averaged epochs;
        ``ema_step_decay`` when set (the authors' release: 59/60, a window of ~60 steps)."""
        if self.ema_step_decay:
            return self.ema_step_decay
        return 1.0 - 1.0 / max(1, self.ema_averaged_epochs * steps_per_epoch)

    @property
    def uses_ema(self) -> bool:
        """Snapshot and FGE ensemble raw weights at their cycle points, as their papers do."""
        return get_strategy(self.ensemble).uses_ema(self)

    def for_steps(self, steps_per_epoch: int) -> "Recipe":
        """This recipe for epochs of ``steps_per_epoch`` optimiser steps. Where ``epochs`` of
        them make fewer than ``min_steps`` steps (a small training set), the run is lengthened
        to ``ceil(min_steps / steps_per_epoch)`` epochs, at most :data:`LENGTHEN_AT_MOST`
        times ``epochs``, and every length counted in epochs grows with it (warm-up, weight
        average, evaluation interval; patience counts evaluations, so it lasts as many steps
        as before): the same run, measured in optimiser steps. Why: on 200 training images,
        60 epochs are 420 steps, and MNIST's error was still falling there.

        ``schedule="auto"`` resolves here: the paper's constant rate for a lengthened run, a
        cosine one otherwise. A lengthened run is a small training set run to its end, where
        the weight average over still-moving weights makes the ensemble (MNIST: constant
        within 0.2 points of the paper's recipe, cosine 1.8 behind); a run long enough by
        itself on a real folder ends by early stopping, before its average starts, where the
        annealed weights scored better (own-data: test error 25.9% against 29.1%, one seed;
        docs/results/recipe/). The result has ``min_steps`` 0 and a named schedule: it is
        what trains and what a run's ``config.json`` records, and it resolves to itself."""
        lengthen = bool(self.min_steps) and self.epochs * steps_per_epoch < self.min_steps
        schedule = self.schedule
        if schedule == "auto":
            schedule = "constant" if lengthen else "cosine"
        if not lengthen:
            return dataclasses.replace(self, min_steps=0, schedule=schedule)
        epochs = min(LENGTHEN_AT_MOST * self.epochs, math.ceil(self.min_steps / steps_per_epoch))
        factor = epochs / self.epochs

        def longer(n: int) -> int:
            return max(1, round(n * factor)) if n else 0
        return dataclasses.replace(self, epochs=epochs, min_steps=0, schedule=schedule,
                                   warmup_epochs=longer(self.warmup_epochs),
                                   ema_epochs=longer(self.ema_epochs),
                                   eval_every=longer(self.eval_every))

    @classmethod
    def quick(cls, **changes: Any) -> "Recipe":
        """The practitioner's recipe: ``rrrnet fit``'s defaults (``--recipe quick``). The
        paper's optimiser, augmentation and weight average, with what makes a first result on
        a new dataset come soonest: bf16 autocast where the CPU (or GPU) has it, 60 epochs
        after a 2-epoch warm-up, but at least 2,000 optimiser steps (up to 300 epochs on a
        small training set), at a cosine rate, or the paper's constant one where the step
        budget lengthened the run (``schedule="auto"``: :meth:`for_steps` says why), and early
        stopping after 10 evaluations without improvement where a validation part exists.
        ``changes`` override any field; ``epochs`` given without ``min_steps`` are the epochs
        trained, as a typed ``--epochs`` is."""
        quick = dict(epochs=60, min_steps=QUICK_MIN_STEPS, schedule="auto", warmup_epochs=2,
                     precision="auto", patience=10, ema_epochs=12)
        if "epochs" in changes and "min_steps" not in changes:
            quick["min_steps"] = 0
        return cls(**{**quick, **changes})

    @classmethod
    def paper(cls, **changes: Any) -> "Recipe":
        """The paper's recipe (``--recipe paper``): the field defaults."""
        return cls(**changes)

    @property
    def ema_start(self) -> int:
        """The first epoch (0-based) whose steps enter the average."""
        return self.epochs - self.ema_averaged_epochs


DATA_LAYOUTS = ("auto", "csv", "meta-album", "split-folders", "class-folders")  # data.LAYOUTS
# What runs and benchmark cells written before a data option existed did: the authors' micro
# split of a Meta-Album or class folder, every image kept (duplicates included).
DATA_BEFORE_OPTION = {"layout": "auto", "split": "micro", "labels": None, "split_seed": 0,
                      "keep_duplicates": True}


@dataclass(frozen=True)
class DataSpec:
    """Which images, and how they are split into train / val / test
    (:func:`rrrnet.data.load_parts`, which says every file used and every file left out).

    ``root``: the dataset folder (or a labels CSV; None with ``labels``: the CSV's folder).
    ``layout``: auto (recognised) | csv | meta-album | split-folders | class-folders.
    ``split``: None, the layout's default (the authors' micro split for Meta-Album, the
    folder's own parts for ``train/ val/ test/`` folders or a CSV with a part column, else a
    0.8/0.1/0.1 ratio split); ``"micro"``, the authors' per-class split of ``train``, ``val``,
    ``test`` images per class; or (train, val, test) ratios summing to 1 (a list in JSON, read
    back as a tuple). ``labels``: a CSV ``file,label[,part]``, paths relative to ``root`` when
    given, else to the CSV's folder. ``split_seed``: seeds the ratio split. It is the data's
    own (default 0), not the recipe's seed, so that runs of several training seeds are scored
    on the same test images. ``keep_duplicates``: keep exact copies (by SHA-256) instead of
    leaving them out; a val or test image also in train is otherwise removed from val or test.
    ``allow_outside_files``: a CSV may name files outside the dataset folder.
    ``skip_bad_images``: read from older configurations and ignored: unreadable files are
    always left out, and listed in the run's ``skipped.csv``.
    """

    root: str | None
    train: int = 20
    val: int = 0
    test: int = 20
    skip_bad_images: bool = False
    allow_outside_files: bool = False   # labels CSV rows may name files outside the folder
    layout: str = "auto"
    split: str | tuple[float, float, float] | None = None
    labels: str | None = None
    split_seed: int = 0
    keep_duplicates: bool = False

    def __post_init__(self):
        from .data.parts import parse_split
        if self.layout not in DATA_LAYOUTS:
            raise ConfigError(f"layout must be one of {', '.join(DATA_LAYOUTS)}, got {self.layout!r}")
        if self.root is None and self.labels is None:
            raise ConfigError("no dataset given: name a dataset folder or a labels CSV (--labels)")
        object.__setattr__(self, "split", parse_split(self.split))
        for name in ("root", "labels"):
            if getattr(self, name) is not None:
                object.__setattr__(self, name, str(getattr(self, name)))

    def load(self, on_progress=None):
        """The parts (:class:`rrrnet.data.Parts`, a :class:`rrrnet.data.Split`) with their
        account of every file; ``on_progress(done, total)`` as files are checked."""
        from .data import load_parts
        return load_parts(self.root, layout=self.layout, split=self.split, labels=self.labels,
                          seed=self.split_seed, micro_sizes=(self.train, self.val, self.test),
                          allow_outside_files=self.allow_outside_files,
                          keep_duplicates=self.keep_duplicates, on_progress=on_progress)

    def to_dict(self) -> dict[str, Any]:
        """The fields as JSON holds them (ratios as a list), as a run's ``config.json`` does."""
        values = dataclasses.asdict(self)
        if isinstance(self.split, tuple):
            values["split"] = list(self.split)
        return values


@dataclass(frozen=True)
class SearchSpace:
    """Ranges searched; learning rate and weight decay on a log scale.

    ``ema_fraction``: the EMA spans this fraction of the epochs, rounded (the paper: 60 of 300 =
    0.2; below half an epoch, no EMA). ``dropout`` is searched for method D only (the paper tried 0.05 to 0.6).
    """

    lr: tuple[float, float] = (1e-4, 3e-3)
    weight_decay: tuple[float, float] = (1e-4, 0.1)
    epochs: tuple[int, int] = (DEFAULT_MAX_EPOCHS // 4, DEFAULT_MAX_EPOCHS)
    ema_fraction: tuple[float, float] = (0.0, 0.4)
    dropout: tuple[float, float] = (0.05, 0.6)

    def __post_init__(self):
        for name in ("lr", "weight_decay"):
            low, high = getattr(self, name)
            if not 0 < low <= high:
                raise ConfigError(f"--{name.replace('_', '-')} range must be 0 < low <= high "
                                  f"(it is searched on a log scale), got {low}..{high}")
        low, high = self.epochs
        if not 1 <= low <= high:
            raise ConfigError(f"epochs range must be 1 <= --min-epochs <= --max-epochs, "
                              f"got {low}..{high}")
        low, high = self.ema_fraction
        if not 0 <= low <= high <= 1:
            raise ConfigError(f"--ema-fraction range must satisfy 0 <= low <= high <= 1, "
                              f"got {low}..{high}")
        low, high = self.dropout
        if not 0 <= low <= high < 1:
            raise ConfigError(f"--dropout range must satisfy 0 <= low <= high < 1, got {low}..{high}")

    @classmethod
    def for_budget(cls, max_epochs: int = DEFAULT_MAX_EPOCHS, min_epochs: int | None = None,
                   **ranges: Any) -> "SearchSpace":
        """Epochs from ``min_epochs`` (default a quarter of the budget) to ``max_epochs``."""
        if min_epochs is None:
            min_epochs = max(1, max_epochs // 4)
        return cls(epochs=(min_epochs, max_epochs), **ranges)

    def suggest(self, trial, method: str) -> dict[str, Any]:
        """One trial's hyper-parameters; ``ema_epochs`` is derived from the suggested fraction."""
        params = {
            "lr": trial.suggest_float("lr", *self.lr, log=True),
            "weight_decay": trial.suggest_float("weight_decay", *self.weight_decay, log=True),
            "epochs": trial.suggest_int("epochs", *self.epochs),
            "ema_fraction": trial.suggest_float("ema_fraction", *self.ema_fraction),
        }
        for name in paper_method(method).searched:   # e.g. [D]'s dropout rate
            params[name] = trial.suggest_float(name, *getattr(self, name))
        params["ema_epochs"] = ema_epochs(params["epochs"], params["ema_fraction"])
        return params

    def to_dict(self) -> dict[str, list]:
        return {k: list(v) for k, v in dataclasses.asdict(self).items()}


def ema_epochs(epochs: int, fraction: float) -> int:
    """EMA length in epochs, rounded: a fraction below half an epoch means no EMA."""
    return min(epochs, max(0, round(fraction * epochs)))
