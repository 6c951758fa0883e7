import dataclasses
import math

import pytest
import torch

from conftest import make_meta_album
from rrrnet.ensembles import (FGETrajectory, SnapshotTrajectory, bootstrap_weights, fge_factor, fge_plan,
                              snapshot_bounds)
from rrrnet.errors import ConfigError
from rrrnet.model import ModelConfig
from rrrnet.train import DataSpec, Recipe, branch_loss, fit, load_checkpoint

# 3 classes x 4 training images, batches of 4: 3 optimiser steps per epoch.
TINY_MODEL = ModelConfig(arch="resnet18", blocks=(1, 1, 1, 1), branches=2, weights="none")
TINY_RECIPE = Recipe(epochs=2, batch_size=4, ema_epochs=1, warm_stump_epochs=1, image_size=32,
                     seed=5, fge_cycle_epochs=1, eval_every=0)
STEPS_PER_EPOCH = 3


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory):
    root = make_meta_album(tmp_path_factory.mktemp("data") / "tiny", classes=3, per_class=6)
    return DataSpec(root=str(root), train=4, test=2)


@pytest.fixture(scope="module")
def runs(tiny_data, tmp_path_factory):
    """One finished run per ensemble method (naive: see test_train.py)."""
    out = tmp_path_factory.mktemp("runs")
    return {name: fit(tiny_data, out / name, TINY_MODEL,
                      dataclasses.replace(TINY_RECIPE, ensemble=name), progress=False)
            for name in ("bagging", "snapshot", "fge")}


# --- bagging -----------------------------------------------------------------------------------

def test_bootstrap_samples_differ_per_branch_and_repeat_by_seed():
    w = bootstrap_weights(50, 3, seed=7)
    assert w.shape == (3, 50) and w.dtype == torch.float32
    assert torch.equal(w, w.round()) and (w >= 0).all()
    assert w.sum(dim=1).tolist() == [50.0, 50.0, 50.0]         # n draws with replacement
    assert not torch.equal(w[0], w[1]) and not torch.equal(w[1], w[2])
    assert ((w == 0).float().mean(dim=1) > 0.2).all()           # about 1/e left out of each sample
    assert torch.equal(w, bootstrap_weights(50, 3, seed=7))
    assert not torch.equal(w, bootstrap_weights(50, 3, seed=8))


def test_weighted_branch_loss_is_the_bootstrap_cross_entropy():
    g = torch.Generator().manual_seed(0)
    logits, labels = torch.randn(2, 4, 3, generator=g), torch.tensor([0, 2, 1, 2])
    weights = torch.tensor([[2.0, 0.0, 1.0, 1.0], [0.0, 3.0, 0.0, 1.0]])
    expected = 0.0
    for b in range(2):
        for i in range(4):
            p = logits[b, i].exp() / logits[b, i].exp().sum()
            expected += weights[b, i] * -math.log(p[labels[i]]) / 4
    assert branch_loss(logits, labels, weights).item() == pytest.approx(float(expected), rel=1e-6)
    ones = torch.ones(2, 4)
    torch.testing.assert_close(branch_loss(logits, labels, ones), branch_loss(logits, labels))


# --- schedules ---------------------------------------------------------------------------------

def _run_schedule(ensemble: str, epochs: int, steps: int, slots: int, **kwargs):
    """The learning rate of every step and the snapshots, with a parameter that holds its step."""
    module = torch.nn.Linear(1, 1, bias=False)
    optimizer = torch.optim.SGD(module.parameters(), lr=0.1)
    kind = {"snapshot": SnapshotTrajectory, "fge": FGETrajectory}[ensemble]
    trajectory = kind(optimizer, epochs, steps, slots, **kwargs)
    rates = []
    for step in range(epochs * steps):
        rates.append(optimizer.param_groups[0]["lr"])
        with torch.no_grad():
            module.weight.fill_(step)
        optimizer.step()  # no gradient: the weight keeps its value
        trajectory.after_step(module)
    return rates, trajectory


def test_snapshot_schedule_is_huangs_cosine_with_one_snapshot_per_cycle_end():
    rates, traj = _run_schedule("snapshot", epochs=4, steps=3, slots=3)  # T = 12, M = 3
    T, M, lr0 = 12, 3, 0.1
    huang = [lr0 / 2 * (math.cos(math.pi * ((t - 1) % math.ceil(T / M)) / math.ceil(T / M)) + 1)
             for t in range(1, T + 1)]
    assert rates == pytest.approx(huang, abs=1e-12)
    assert traj.steps == [3, 7, 11]
    assert [s["weight"].item() for s in traj.snapshots] == [3.0, 7.0, 11.0]  # the cycle ends


def test_snapshot_cycles_split_an_uneven_number_of_steps():
    assert snapshot_bounds(10, 3) == [0, 3, 6, 10]
    rates, traj = _run_schedule("snapshot", epochs=5, steps=2, slots=3)
    assert traj.steps == [2, 5, 9]
    assert rates[3] == rates[6] == pytest.approx(0.1)                # each cycle restarts at lr0
    assert rates[9] == pytest.approx(0.05 * (1 + math.cos(math.pi * 3 / 4)))


def test_fge_schedule_is_garipovs_piecewise_linear_cycle():
    high, low, cycle, slots = 0.5, 0.005, 4, 3
    rates, traj = _run_schedule("fge", epochs=5, steps=4, slots=slots, fge_cycle_epochs=1,
                                fge_lr_high=high, fge_lr_low=low)
    start, collect = fge_plan(20, cycle, slots)
    assert start == 20 - 2 * 4 - 2 == 10 and collect == [11, 15, 19] == traj.steps
    a1, a2 = 0.1 * high, 0.1 * low
    for step, rate in enumerate(rates):
        if step < start:
            assert rate == pytest.approx(0.1)
            continue
        t = ((step - start) % cycle + 1) / cycle
        expected = (1 - 2 * t) * a1 + 2 * t * a2 if t <= 0.5 else (2 - 2 * t) * a2 + (2 * t - 1) * a1
        assert rate == pytest.approx(expected)
    assert [rates[s] for s in collect] == pytest.approx([a2] * slots)  # collected at the minimum
    assert fge_factor(start + 3, start, cycle, high, low) == pytest.approx(high)  # cycle end


def test_schedules_refuse_too_short_trainings():
    with pytest.raises(ConfigError, match="at least 4 training steps"):
        _run_schedule("snapshot", epochs=1, steps=3, slots=4)
    with pytest.raises(ConfigError, match="FGE with 8 branches"):
        _run_schedule("fge", epochs=10, steps=3, slots=8, fge_cycle_epochs=2)


@pytest.mark.parametrize("kwargs", [dict(ensemble="boosting"), dict(fge_cycle_epochs=0),
                                    dict(fge_lr_low=0.6), dict(fge_lr_low=0.0)])
def test_bad_ensemble_recipes(kwargs):
    with pytest.raises(ConfigError):
        Recipe(**kwargs)


# --- training ----------------------------------------------------------------------------------

def test_every_ensemble_method_trains_a_valid_model(runs):
    for name, result in runs.items():
        assert result.metrics["ensemble"] == name
        assert len(result.metrics["branch_errors"]) == 2 and 0 <= result.metrics["error"] <= 1
        assert result.model.eval()(torch.zeros(1, 3, 32, 32)).shape == (2, 1, 3)
    assert runs["bagging"].metrics["ema"]  # snapshots are raw weights, as in both papers:
    assert not runs["snapshot"].metrics["ema"] and not runs["fge"].metrics["ema"]


@pytest.mark.parametrize("name", ["snapshot", "fge"])
def test_trajectory_snapshots_fill_the_branch_slots(runs, name):
    result = runs[name]
    total = TINY_RECIPE.epochs * STEPS_PER_EPOCH
    expected = ([b - 1 for b in snapshot_bounds(total, 2)[1:]] if name == "snapshot"
                else fge_plan(total, STEPS_PER_EPOCH, 2)[1])
    assert result.metrics["snapshot_steps"] == expected
    checkpoint = load_checkpoint(result.out / "checkpoint.pt")
    snapshots = checkpoint["trajectory"]["snapshots"]
    slots = result.model.branch_states()
    for slot, snapshot in zip(slots, snapshots):
        # (the fused layout keeps one BatchNorm step counter for all branches, an unused scalar)
        assert all(torch.equal(slot[k], snapshot[k]) for k in snapshot
                   if not k.endswith("num_batches_tracked"))
    assert not torch.equal(slots[0]["fc.weight"], slots[1]["fc.weight"])
    # the last snapshot is the trajectory's final state, only one branch was trained
    assert all(torch.equal(snapshots[-1][k], v) for k, v in checkpoint["model"].items())
    assert result.history[-1]["snapshots"] == 2 and "train_error_b1" not in result.history[-1]


def test_impossible_trajectories_fail_before_writing_anything(tiny_data, tmp_path):
    recipe = dataclasses.replace(TINY_RECIPE, ensemble="snapshot")
    with pytest.raises(ConfigError, match="frozen"):
        fit(tiny_data, tmp_path / "run", dataclasses.replace(TINY_MODEL, freeze_stump=False),
            recipe, progress=False)
    recipe = dataclasses.replace(TINY_RECIPE, ensemble="fge", fge_cycle_epochs=2)
    with pytest.raises(ConfigError, match="FGE with 2 branches needs 2 cycles of 2 epochs"):
        fit(tiny_data, tmp_path / "run", TINY_MODEL, recipe, progress=False)
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("name", ["bagging", "snapshot", "fge"])
def test_resumed_run_equals_an_uninterrupted_one(runs, tiny_data, tmp_path, name):
    recipe = dataclasses.replace(TINY_RECIPE, ensemble=name)
    first = fit(tiny_data, tmp_path / "cut", TINY_MODEL, recipe, progress=False, stop_after=1)
    assert not first.metrics
    resumed = fit(tiny_data, tmp_path / "cut", TINY_MODEL, recipe, progress=False, resume=True)
    a, b = runs[name].model.state_dict(), resumed.model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    strip = [{k: v for k, v in row.items() if k != "seconds"} for row in runs[name].history]
    assert strip == [{k: v for k, v in row.items() if k != "seconds"} for row in resumed.history]
