"""Every training method is one class in one registry: the paper's five systems (Section 4.5)
and the ways to train a branch ensemble (Section 4.4 and :mod:`rrrnet.ensembles`).

A strategy answers two questions:

* **What is trained** (the paper's methods, looked up by their letter): :meth:`Strategy.model`
  turns the template ``ModelConfig`` into the method's model, :meth:`Strategy.recipe` applies
  its recipe changes. [A] ``last-layer``, [B] ``full``, [C] ``single``, [D] ``dropout``,
  [E] ``branches``.
* **How one step trains** (``Recipe.ensemble``): the loss of a batch, the model the optimiser
  sees, the final weights, and any state of its own. ``naive`` (the paper's: every branch its
  own cross-entropy on the same batch), ``bagging``, ``snapshot``, ``fge``. A strategy is a
  :class:`~rrrnet.training.events.Callback`, so it can listen to any event of the loop.

Adding a method means one new class with :func:`register`. The command line's ``--method`` and
``--ensemble`` choices, their help, ``docs/training.md`` and the benchmark read this registry;
no other code compares method names. This module loads no torch at import (``rrrnet --help``
reads it): the training parts import what they need when they run.
"""
from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

from ..errors import ConfigError
from .events import Callback

REDUCED = (1, 1, 1, 1)                  # ResNet_1.1.1.1, the paper's reduced network
DEFAULT_DROPOUT = 0.05                  # the paper's best rate for [D]
DROPOUT_RATES = (0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6)   # the rates the paper tried for [D]

_REGISTRY: dict[str, type["Strategy"]] = {}


def register(cls: type["Strategy"]) -> type["Strategy"]:
    """Class decorator: add a strategy under its ``name`` (and its paper letter, if any)."""
    for key in (cls.name, cls.paper):
        if key and key in _REGISTRY and _REGISTRY[key] is not cls:
            raise ValueError(f"a strategy named {key!r} is already registered")
    _REGISTRY[cls.name] = cls
    if cls.paper:
        _REGISTRY[cls.paper] = cls
    return cls


def get(name: str) -> "Strategy":
    """The strategy called ``name`` (or the paper's method of that letter)."""
    if name not in _REGISTRY:
        raise ConfigError(f"unknown method {name!r}; choose one of " + "; ".join(
            f"{key}: {cls.summary}" for key, cls in sorted(methods().items())))
    return _REGISTRY[name]()


def method(letter: str) -> "Strategy":
    """The paper's method ``letter`` (A-E)."""
    known = methods()
    if letter not in known:
        raise ConfigError(f"unknown method {letter!r}; choose one of "
                          + "; ".join(f"{k}: {cls.summary}" for k, cls in sorted(known.items())))
    return known[letter]()


def methods() -> dict[str, type["Strategy"]]:
    """The paper's methods by letter (A-E)."""
    return dict(sorted((cls.paper, cls) for cls in _unique() if cls.paper))


def ensembles() -> dict[str, type["Strategy"]]:
    """The ways to train the branches (``Recipe.ensemble``), by name."""
    return {cls.name: cls for cls in _unique() if cls.ensemble}


def _unique() -> list[type["Strategy"]]:
    return list(dict.fromkeys(_REGISTRY.values()))


def describe() -> str:
    """One line per strategy, for ``--help`` and the docs."""
    return "\n".join(f"{cls.name}{f' [{cls.paper}]' if cls.paper else ''}: {cls.summary}"
                     for cls in _unique())


class Strategy(Callback):
    """A training method; override what differs from the naive ensemble.

    ``paper``: the letter of the paper's method it reproduces (None: not one of them);
    ``ensemble``: selectable as ``Recipe.ensemble``; ``options``: the Recipe/ModelConfig
    fields only this method reads; ``searched``: ranges ``rrrnet tune`` searches for it;
    ``trajectory``: its branches are snapshots of one trajectory (needs a frozen stump, takes
    the learning rate schedule itself, ensembles raw weights, no EMA);
    ``needs_dataset``: it needs a Dataset of images, not ready batches.
    """

    name: ClassVar[str] = ""
    summary: ClassVar[str] = ""
    paper: ClassVar[str | None] = None
    ensemble: ClassVar[bool] = False
    options: ClassVar[tuple[str, ...]] = ()
    searched: ClassVar[dict[str, tuple[float, float]]] = {}
    trajectory_based: ClassVar[bool] = False
    needs_dataset: ClassVar[str | None] = None
    stochastic: ClassVar[bool] = False   # Monte-Carlo passes make sense (dropout)
    needs_branches: ClassVar[bool] = False  # only means something with several branches
    class_weights: Any = None            # --balance weights: set by training.callbacks
    order = 5

    # -- what is trained -------------------------------------------------------------------
    def model(self, base: Any, full_blocks: tuple[int, ...], **options: Any) -> Any:
        """The method's ``ModelConfig`` from the template ``base``."""
        return base

    def recipe(self, recipe: Any) -> Any:
        """The method's ``Recipe`` from the shared one."""
        return recipe

    # -- how it trains ---------------------------------------------------------------------
    def check(self, recipe: Any, freeze_stump: bool) -> None:
        """Refuse combinations that have no meaning, before anything is written."""

    def check_length(self, recipe: Any, steps_per_epoch: int, branches: int) -> None:
        """Refuse a training too short for the method, before anything is written."""

    def uses_ema(self, recipe: Any) -> bool:
        return recipe.ema_epochs > 0

    def trained_model(self, full: Any) -> Any:
        """The model the optimiser trains (``full`` itself but for trajectories)."""
        return full

    def loss(self, outputs: Any, labels: Any, batch: Any) -> Any:
        """The naive ensemble's loss: every branch its own cross-entropy, summed over
        branches, so each receives exactly the gradient it would get if trained alone."""
        from .loss import branch_loss
        return branch_loss(outputs, labels, class_weights=self.class_weights)

    def final_model(self, state: Any) -> Any:
        """``state.full`` with its final weights in place: the average's, or as trained."""
        from .stump import trained_part
        if state.ema is not None:
            trained_part(state.full).load_state_dict(state.ema.module.state_dict())
        return state.full


@register
class Naive(Strategy):
    name, ensemble = "naive", True
    summary = "every branch its own cross-entropy on the same batch, one fused pass (the paper's)"


@register
class Branches(Naive):
    name, paper, ensemble = "branches", "E", False
    summary = "RRR-Net: ResNet_1.1.1.1 with 8 branches from conv4_1 (naive ensemble)"

    def model(self, base, full_blocks, **options):
        return dataclasses.replace(base, blocks=REDUCED, branches=8)


@register
class Single(Naive):
    name, paper, ensemble = "single", "C", False
    summary = "ResNet_1.1.1.1, one branch (reduced, not split)"

    def model(self, base, full_blocks, **options):
        return dataclasses.replace(base, blocks=REDUCED, branches=1)


@register
class Dropout(Single):
    name, paper = "single-dropout", "D"
    summary = "ResNet_1.1.1.1, one branch, dropout after every activation of layer3/layer4"
    options = ("dropout",)
    searched = {"dropout": (0.05, 0.6)}   # the paper tried 0.05 to 0.6
    stochastic = True

    def model(self, base, full_blocks, dropout: float | None = None, **options):
        rate = DEFAULT_DROPOUT if dropout is None else dropout
        return dataclasses.replace(super().model(base, full_blocks), dropout=rate)


@register
class LastLayer(Naive):
    name, paper, ensemble = "last-layer", "A", False
    summary = "ResNet-152, last layer fine-tuned (frozen backbone, new classifier)"

    def model(self, base, full_blocks, **options):
        return dataclasses.replace(base, blocks=full_blocks, branches=1, split_at="fc")

    def recipe(self, recipe):
        # Without augmentation the frozen backbone's features are computed once.
        return dataclasses.replace(recipe, augment_ops=0)


@register
class FullFineTune(Naive):
    name, paper, ensemble = "full", "B", False
    summary = "ResNet-152, all layers fine-tuned"

    def model(self, base, full_blocks, **options):
        return dataclasses.replace(base, blocks=full_blocks, branches=1, split_at="fc",
                                   freeze_stump=False)


@register
class Bagging(Naive):
    """Each branch trains on its own bootstrap sample, drawn once from the seed; the fused pass
    stays one pass, each branch's per-image loss weighted by the image's multiplicity in its
    sample (:mod:`rrrnet.ensembles`)."""

    name, ensemble, needs_branches = "bagging", True, True
    summary = "each branch on its own bootstrap sample (Breiman 1996), one fused pass"
    needs_dataset = "bagging"

    weights = None

    def on_epoch_start(self, state):
        if self.weights is None:   # once, after the stump's feature cache replaced the images
            from ..ensembles import Indexed, bootstrap_weights
            self.weights = bootstrap_weights(len(state.data.train_set), state.model.num_branches,
                                             state.recipe.seed).to(state.device)
            state.data.train_set = Indexed(state.data.train_set)

    def loss(self, outputs, labels, batch):
        from .loss import branch_loss
        return branch_loss(outputs, labels, self.weights[:, batch[2].to(self.weights.device)],
                           self.class_weights)


@register
class Snapshot(Strategy):
    """One trajectory whose snapshots fill the branch slots (:mod:`rrrnet.ensembles`)."""

    name, ensemble, trajectory_based, needs_branches = "snapshot", True, True, True
    summary = "Snapshot Ensemble (Huang et al. 2017): b cosine cycles, one snapshot per branch"

    def check(self, recipe, freeze_stump):
        if not freeze_stump:
            raise ConfigError(f"--ensemble {self.name} collects branch snapshots along one "
                              f"trajectory, which needs the shared stump frozen; use naive or "
                              f"bagging to train all layers (freeze_stump=False)")
        if recipe.schedule != "constant" or recipe.warmup_epochs:
            raise ConfigError(f"--ensemble {self.name} sets the learning rate itself; use "
                              f"--schedule constant and --warmup-epochs 0 with it")
        if recipe.patience:
            raise ConfigError(f"--ensemble {self.name} assembles its branches at the end of "
                              f"training, so there is no model to stop early on; --patience 0")

    def check_length(self, recipe, steps_per_epoch, branches):
        from ..ensembles import snapshot_collection_steps
        snapshot_collection_steps(recipe.epochs, steps_per_epoch, branches)

    def uses_ema(self, recipe):
        return False  # both papers ensemble the raw weights at their collection points

    def trained_model(self, full):
        from ..ensembles import trajectory_model
        return trajectory_model(full)

    state_key = "trajectory"

    def setup(self, state):
        from ..ensembles import SnapshotTrajectory
        self.trajectory = SnapshotTrajectory(state.optimizer, state.recipe.epochs,
                                             state.steps_per_epoch, state.full.num_branches)

    def on_step_end(self, state, batch, loss, outputs):
        self.trajectory.after_step(state.model.branches)

    def on_train_epoch_end(self, state):
        state.row["snapshots"] = len(self.trajectory.snapshots)

    def state_dict(self):
        return self.trajectory.state_dict()

    def load_state_dict(self, saved):
        if saved is not None:
            self.trajectory.load_state_dict(saved)

    def final_model(self, state):
        from ..ensembles import assemble
        state.full.to(state.device)
        return assemble(state.full, self.trajectory.snapshots)


@register
class FGE(Snapshot):
    name = "fge"
    summary = ("Fast Geometric Ensembling (Garipov et al. 2018): constant rate, then b cyclic "
               "cycles of fge_cycle_epochs, one model per cycle")
    options = ("fge_cycle_epochs", "fge_lr_high", "fge_lr_low")

    def check_length(self, recipe, steps_per_epoch, branches):
        from ..ensembles import fge_collection_steps
        fge_collection_steps(recipe.epochs, steps_per_epoch, branches, recipe.fge_cycle_epochs)

    def setup(self, state):
        from ..ensembles import FGETrajectory
        r = state.recipe
        self.trajectory = FGETrajectory(state.optimizer, r.epochs, state.steps_per_epoch,
                                        state.full.num_branches, r.fge_cycle_epochs,
                                        r.fge_lr_high, r.fge_lr_low)
