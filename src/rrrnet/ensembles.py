"""How the branch ensemble is trained: naive (the paper's choice), bagging, Snapshot Ensemble, FGE.

``Recipe.ensemble`` picks one; :func:`rrrnet.train.fit` runs it. All four keep the fused model and
its parameter budget, and all are resumable bit for bit (their state is in the checkpoint).

* ``naive``: every branch its own cross-entropy on the same batch (:func:`rrrnet.train.branch_loss`),
  all branches in one fused pass. The paper's choice (Section 4.4).
* ``bagging`` (Breiman 1996): each branch trains on its own bootstrap sample of the training set,
  drawn once from the seed (:func:`bootstrap_weights`). Rather than one data loader per branch,
  the fused pass stays one pass: branch ``k``'s per-image loss is weighted by the image's
  multiplicity in bootstrap sample ``k`` and divided by the batch size. Over an epoch each branch
  then receives exactly the summed gradient of its bootstrap sample (an image drawn twice counts
  twice, one never drawn not at all), with the views shared between branches.
* ``snapshot`` (Huang et al. 2017) and ``fge`` (Garipov et al. 2018): one training trajectory
  whose ``b`` snapshots become the ``b`` branches, so the ensemble has the same shape and
  parameter budget as the naive one. Only one branch is trained: a single-branch model of the
  ``b``-branch width (branch 0's initial slice of the pretrained kernels, the shared stump) runs
  the trajectory (:func:`trajectory_model`), and its collected weights are loaded into the slots
  of the fused model at the end (:func:`assemble`); the other ``b - 1`` branches cost nothing.
  Their learning rate follows a schedule (:class:`Trajectory`), stepped after every optimiser step:

  - snapshot: ``b`` cosine cycles over the ``T`` steps of training,
    ``lr = lr0 / 2 * (1 + cos(pi * j / L))`` at step ``j`` of a cycle of ``L`` steps (Huang's
    Equation 2), with ``torch.optim.lr_scheduler.CosineAnnealingWarmRestarts``; the weights at
    the end of cycle ``k`` go into slot ``k``. Cycle ``k`` covers steps
    ``[floor(k T / b), floor((k + 1) T / b))``: when ``b`` divides ``T`` this is exactly Huang's
    ``ceil(T / M)`` cycles; otherwise lengths differ by one step instead of the last cycle being
    cut short before its learning rate has annealed.
  - fge: the recipe's constant learning rate first, then ``b`` cycles of ``c`` steps
    (``fge_cycle_epochs`` epochs) with Garipov's piecewise-linear rate through ``LambdaLR``:
    with ``t = (((i - 1) mod c) + 1) / c`` at FGE step ``i`` (1-based),
    ``lr = (1 - 2t) a1 + 2t a2`` for ``t <= 1/2`` and ``(2 - 2t) a2 + (2t - 1) a1`` after, where
    ``a1 = fge_lr_high * lr`` and ``a2 = fge_lr_low * lr`` (defaults 0.5 and 0.005: Garipov's
    0.05 and 0.0005 against the 0.1 of the training that precedes them). A model is collected
    at the middle of each cycle, where the rate reaches ``a2`` (the nearest step before it for
    an odd ``c``). The cycles are placed so that the last collection is the last step of
    training: no half cycle is trained only to be thrown away.

  Both papers ensemble the raw weights at those points, so the recipe's EMA does not apply to
  these two methods. They need a frozen stump: the branches share it, so it cannot move along
  the trajectory.
"""
from __future__ import annotations

import bisect
import dataclasses
from typing import Sequence

import numpy as np
import torch
from torch import nn
from torch.optim.lr_scheduler import CosineAnnealingWarmRestarts, LambdaLR
from torch.utils.data import Dataset

from .errors import ConfigError
from .recycle import (BranchedResNet, BranchStages, branch_dropout, load_branch_states,
                      stage_index)

_BAGGING_STREAM = 0xBA6  # keeps the bootstrap draws apart from every other draw of the seed


# ---------------------------------------------------------------------------------------------
# Bagging.
# ---------------------------------------------------------------------------------------------

def bootstrap_weights(n: int, branches: int, seed: int) -> torch.Tensor:
    """``[branches, n]``: how often each of the ``n`` training images appears in each branch's
    bootstrap sample (``n`` draws with replacement), drawn once from ``seed``."""
    rng = np.random.default_rng([int(seed), _BAGGING_STREAM])
    counts = [np.bincount(rng.integers(0, n, size=n), minlength=n) for _ in range(branches)]
    return torch.as_tensor(np.stack(counts), dtype=torch.float32)


class Indexed(Dataset):
    """``dataset``'s items with their index appended, to look up per-image bootstrap weights."""

    def __init__(self, dataset: Dataset):
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int):
        return (*self.dataset[index], index)


# ---------------------------------------------------------------------------------------------
# Snapshot Ensemble and FGE: schedules and snapshot collection.
# ---------------------------------------------------------------------------------------------

def snapshot_bounds(total_steps: int, cycles: int) -> list[int]:
    """Step boundaries of the cosine cycles: cycle ``k`` covers ``[bounds[k], bounds[k + 1])``."""
    return [k * total_steps // cycles for k in range(cycles + 1)]


def snapshot_position(step: int, bounds: Sequence[int]) -> float:
    """``k + j / L``: cycle ``k``, ``j`` steps into it, of length ``L``; the "epoch" that
    ``CosineAnnealingWarmRestarts(T_0=1)`` turns into the learning rate of ``step``."""
    k = min(bisect.bisect_right(bounds, step), len(bounds) - 1) - 1
    return k + (step - bounds[k]) / (bounds[k + 1] - bounds[k])


def fge_plan(total_steps: int, cycle: int, slots: int) -> tuple[int, list[int]]:
    """The first FGE step and the steps after which a model is collected (0-based)."""
    half = cycle // 2
    start = total_steps - (slots - 1) * cycle - half
    return start, [start + half - 1 + k * cycle for k in range(slots)]


def fge_factor(step: int, start: int, cycle: int, high: float, low: float) -> float:
    """Garipov et al.'s piecewise-linear cyclic rate, as a multiple of the recipe's rate."""
    if step < start:
        return 1.0
    i = step - start + 1
    t = ((i - 1) % cycle + 1) / cycle
    return (1 - 2 * t) * high + 2 * t * low if t <= 0.5 else (2 - 2 * t) * low + (2 * t - 1) * high


def snapshot_collection_steps(epochs: int, steps_per_epoch: int, slots: int) -> list[int]:
    """The 0-based optimiser steps after which Snapshot Ensemble collects a model, one per
    slot (the end of each cosine cycle); a ConfigError when training is too short."""
    total = epochs * steps_per_epoch
    if total < slots:
        raise ConfigError(f"snapshot ensembling of {slots} branches needs at least {slots} "
                          f"training steps, got {total} ({epochs} epochs of {steps_per_epoch} "
                          f"batches); train longer or use fewer branches")
    return [b - 1 for b in snapshot_bounds(total, slots)[1:]]


def fge_collection_steps(epochs: int, steps_per_epoch: int, slots: int,
                         fge_cycle_epochs: int = 4) -> list[int]:
    """The 0-based optimiser steps after which FGE collects a model, one per slot (the middle
    of each cycle); a ConfigError when training is too short for ``slots`` cycles."""
    total, cycle = epochs * steps_per_epoch, fge_cycle_epochs * steps_per_epoch
    start, collect = fge_plan(total, cycle, slots)
    if cycle < 2 or start < 0:
        raise ConfigError(
            f"FGE with {slots} branches needs {slots} cycles of {fge_cycle_epochs} epochs "
            f"({cycle} steps, at least 2) within the {epochs} epochs; lower "
            f"fge_cycle_epochs, train longer or use fewer branches")
    return collect


class Trajectory:
    """The learning-rate schedule of a snapshot or FGE run and the snapshots it collects.

    :meth:`after_step` is called after every optimiser step; ``snapshots`` are per-branch state
    dicts (``groups=1`` keys), ``steps`` the 0-based steps after which they were taken.
    Subclasses set ``scheduler`` and :meth:`next_rate`.
    """

    def __init__(self, collect: list[int], total: int):
        self.collect, self.total = collect, total
        self.step, self.snapshots, self.steps = 0, [], []
        self.scheduler = None

    def next_rate(self) -> None:
        self.scheduler.step()

    def after_step(self, branch: nn.Module) -> None:
        if self.step in self.collect:
            self.snapshots.append({k: v.detach().cpu().clone()
                                   for k, v in branch.state_dict().items()})
            self.steps.append(self.step)
        self.step += 1
        if self.step < self.total:  # the rate of the next step
            self.next_rate()

    def state_dict(self) -> dict:
        return {"step": self.step, "snapshots": self.snapshots, "steps": self.steps,
                "scheduler": self.scheduler.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.step, self.snapshots, self.steps = state["step"], state["snapshots"], state["steps"]
        self.scheduler.load_state_dict(state["scheduler"])


class SnapshotTrajectory(Trajectory):
    """``slots`` cosine cycles over the training steps (Huang et al.'s Equation 2)."""

    def __init__(self, optimizer: torch.optim.Optimizer, epochs: int, steps_per_epoch: int,
                 slots: int):
        super().__init__(snapshot_collection_steps(epochs, steps_per_epoch, slots),
                         epochs * steps_per_epoch)
        self.bounds = snapshot_bounds(self.total, slots)
        self.scheduler = CosineAnnealingWarmRestarts(optimizer, T_0=1, eta_min=0.0)

    def next_rate(self) -> None:
        self.scheduler.step(snapshot_position(self.step, self.bounds))


class FGETrajectory(Trajectory):
    """The recipe's constant rate, then ``slots`` cycles of Garipov et al.'s piecewise-linear
    rate, a model collected at the middle of each."""

    def __init__(self, optimizer: torch.optim.Optimizer, epochs: int, steps_per_epoch: int,
                 slots: int, fge_cycle_epochs: int = 4, fge_lr_high: float = 0.5,
                 fge_lr_low: float = 0.005):
        super().__init__(fge_collection_steps(epochs, steps_per_epoch, slots, fge_cycle_epochs),
                         epochs * steps_per_epoch)
        cycle = fge_cycle_epochs * steps_per_epoch
        start = fge_plan(self.total, cycle, slots)[0]
        self.scheduler = LambdaLR(optimizer, lambda s: fge_factor(s, start, cycle, fge_lr_high,
                                                                 fge_lr_low))


def trajectory_model(full: BranchedResNet) -> BranchedResNet:
    """One branch of ``full``'s width, initialised as ``full``'s branch 0, on ``full``'s stump
    (shared, not copied): the model a snapshot or FGE trajectory trains."""
    first = stage_index(full.plan.split_at)
    plan = full.plan
    with torch.device(next(full.branches.parameters()).device):
        branch = BranchStages(full.block, plan.blocks[first:], plan.branch_planes, first,
                              full.stump.out_channels, plan.num_classes,
                              dropout=branch_dropout(full))
    branch.load_state_dict(full.branch_states()[0])
    # It carries the configuration of the model its snapshots will fill.
    return BranchedResNet(full.stump, branch, dataclasses.replace(plan, branches=1), full.block,
                          full.freeze_stump, full.config)


def assemble(full: BranchedResNet, snapshots: Sequence[dict[str, torch.Tensor]]) -> BranchedResNet:
    """Load one snapshot per branch slot of ``full`` (in place) and return it."""
    if len(snapshots) != full.num_branches:
        raise ConfigError(f"{len(snapshots)} snapshots for {full.num_branches} branches")
    device = next(full.branches.parameters()).device
    load_branch_states(full, [{k: v.to(device) for k, v in s.items()} for s in snapshots])
    return full


def lr_of(optimizer: torch.optim.Optimizer) -> float:
    return optimizer.param_groups[0]["lr"]

