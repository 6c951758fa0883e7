"""The events of the training loop and the state every listener receives.

The loop (:func:`rrrnet.training.loop.train`) fires, in this order::

    on_fit_start                      everything built, nothing trained (restore a checkpoint here)
      on_stump_ready                  after the frozen stump's BatchNorm warm-up (not on resume)
      on_epoch_start                  state.epoch is the epoch about to run (0-based)
        on_step_start(batch)          before the forward pass
        on_loss(batch, outputs)       the strategy's loss is state.loss: a listener may change
                                      it (e.g. add distillation's term) before backward
        on_step_end(batch, loss, outputs)   after the optimiser step
      on_train_epoch_end              the epoch's steps done, its row has the training figures
      on_validation_end(metrics)      after the evaluation data were scored (every eval_every)
      on_epoch_end                    the epoch's row appended to state.history, state.epoch + 1
    on_fit_end                        the final weights in place (not after an interruption)
    on_interrupt(error)               an exception (KeyboardInterrupt included) left the loop

A :class:`Callback` overrides the events it needs; ``order`` sorts listeners (lower first; the
built-in ones use 0-90, a user's callbacks default to 100, after them). A callback that holds
state across epochs names a ``state_key`` and implements ``state_dict``/``load_state_dict``: its
state then travels in every checkpoint, so a resumed run repeats an uninterrupted one exactly.

This is fastai's ``Learner``/``Callback`` design (every feature is a listener on a short loop)
with Lightning's hook names, cut to what rrrnet's training needs.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Sequence

if TYPE_CHECKING:  # typing only: this module loads nothing heavy
    import torch

EVENTS = ("on_fit_start", "on_stump_ready", "on_epoch_start", "on_step_start", "on_loss",
          "on_step_end",
          "on_train_epoch_end", "on_validation_end", "on_epoch_end", "on_fit_end", "on_interrupt")


class Callback:
    """A listener of the training loop; every event receives the :class:`TrainState`.

    ``order``: lower runs first. ``state_key``: the checkpoint entry of this callback's
    ``state_dict()`` (None: it keeps nothing across epochs). ``main_process_only``: in
    data-parallel training only rank 0 runs it (files, progress bars, loggers).
    """

    order: ClassVar[int] = 100
    state_key: ClassVar[str | None] = None
    main_process_only: ClassVar[bool] = False

    def setup(self, state: "TrainState") -> None:
        """Called once when attached, before any event: create what a checkpoint restores."""

    def on_fit_start(self, state: "TrainState") -> None: ...
    def on_stump_ready(self, state: "TrainState") -> None: ...
    def on_epoch_start(self, state: "TrainState") -> None: ...
    def on_step_start(self, state: "TrainState", batch: Sequence[Any]) -> None: ...
    def on_loss(self, state: "TrainState", batch: Sequence[Any],
                outputs: "torch.Tensor") -> None: ...
    def on_step_end(self, state: "TrainState", batch: Sequence[Any], loss: "torch.Tensor",
                    outputs: "torch.Tensor") -> None: ...
    def on_train_epoch_end(self, state: "TrainState") -> None: ...
    def on_validation_end(self, state: "TrainState", metrics: dict[str, Any]) -> None: ...
    def on_epoch_end(self, state: "TrainState") -> None: ...
    def on_fit_end(self, state: "TrainState") -> None: ...
    def on_interrupt(self, state: "TrainState", error: BaseException) -> None: ...

    def state_dict(self) -> Any:
        return None

    def load_state_dict(self, state: Any) -> None: ...

    # The old names (rrrnet 0.1): on_train_start/on_train_end still work.
    def on_train_start(self, state: "TrainState") -> None: ...
    def on_train_end(self, state: "TrainState") -> None: ...


_LEGACY = {"on_fit_start": "on_train_start", "on_fit_end": "on_train_end"}


@dataclass
class TrainState:
    """Everything that changes during training, handed to every listener.

    ``model``: the model being trained (for snapshot/FGE the one-branch trajectory model);
    ``full``: the model returned; ``forward``: what a training step runs (``model`` with its
    frozen stump folded, or its branches on cached stump features, or their data-parallel
    wrapper); ``epoch``: the epoch about to run or, after ``on_epoch_end``, the number finished;
    ``row``: the current epoch's history row; ``step``: optimiser steps so far. A listener sets
    ``stop`` to end after this epoch without final weights (an interruption, e.g. a test's),
    or ``stop_early`` to end with them (early stopping).
    """

    model: Any
    full: Any
    recipe: Any
    device: "torch.device"
    optimizer: Any
    strategy: Any
    precision: Any
    data: Any
    steps_per_epoch: int
    eval_prefix: str = "eval"
    progress: bool = True
    world: Any = None
    forward: Any = None
    eval_loader: Any = None
    eval_cached: bool = False
    ema: Any = None
    scaler: Any = None
    history: list[dict[str, Any]] = field(default_factory=list)
    row: dict[str, Any] = field(default_factory=dict)
    loss: Any = None                   # the current step's loss (on_loss may change it)
    epoch: int = 0
    step: int = 0
    setup_seconds: float = 0.0
    stump_ready: bool = False
    stop: bool = False
    stop_early: bool = False
    best_epoch: int | None = None      # early stopping: the epoch whose weights were kept
    fast: Any = None                   # the model with its frozen stump folded
    callbacks: list[Callback] = field(default_factory=list)

    @property
    def trajectory(self):
        """The snapshot/FGE trajectory (None for other strategies)."""
        return getattr(self.strategy, "trajectory", None)

    def attach(self, callbacks: Sequence[Callback]) -> None:
        """Listen with ``callbacks`` (sorted by order; rank 0's only ones dropped elsewhere)."""
        main = self.world is None or self.world.rank == 0
        chosen = [c for c in callbacks if main or not c.main_process_only]
        self.callbacks = sorted(chosen, key=lambda c: c.order)  # stable: equal orders as given
        for callback in self.callbacks:
            callback.setup(self)

    def fire(self, event: str, *args: Any) -> None:
        for callback in self.callbacks:
            getattr(callback, event)(self, *args)
            if event in _LEGACY:
                getattr(callback, _LEGACY[event])(self, *args)

    def state_dict(self) -> dict[str, Any]:
        """What a checkpoint holds: the trained part (the frozen stump is saved once, apart),
        the optimiser, the history, the last finished epoch, and each stateful listener's
        state under its ``state_key`` (``ema``, ``trajectory``, ...)."""
        from .stump import trained_part
        state = {"epoch": self.epoch - 1, "setup_seconds": self.setup_seconds, "step": self.step,
                 "model": trained_part(self.model).state_dict(),
                 "optimizer": self.optimizer.state_dict(), "history": self.history,
                 "ema": None, "trajectory": None}
        if self.scaler is not None:
            state["scaler"] = self.scaler.state_dict()
        state.update({c.state_key: c.state_dict() for c in self.callbacks if c.state_key})
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        from .stump import trained_part
        trained_part(self.model).load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.history, self.epoch = list(state["history"]), state["epoch"] + 1
        self.step = state.get("step", self.epoch * self.steps_per_epoch)
        self.setup_seconds += state.get("setup_seconds", 0.0)
        if self.scaler is not None and state.get("scaler") is not None:
            self.scaler.load_state_dict(state["scaler"])
        for callback in self.callbacks:
            if callback.state_key:
                callback.load_state_dict(state.get(callback.state_key))
