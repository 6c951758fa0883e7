import json

import pytest
import torch

from conftest import make_meta_album, randomize_, read_csv
from rrrnet.backbone import resnet
from rrrnet.cli import main
from rrrnet.errors import ConfigError, RunError
from rrrnet.experiments import select
from rrrnet.experiments.select import (carry_over, forward_select, grow, relative_gain,
                                       select_blocks, selection_model_config)
from rrrnet.reduce import forward_order
from rrrnet.train import DataSpec, Recipe

FULL = (3, 4, 6, 3)
# one batch per epoch: every step trains the whole (unfrozen) network
TINY_RECIPE = Recipe(epochs=1, batch_size=12, ema_epochs=1, augment_ops=1, image_size=32, seed=0)


class CraftedCurve:
    """A ``train_and_score`` whose accuracies are given per step; models are step numbers."""

    def __init__(self, accuracies, order):
        self.accuracies, self.order, self.calls = accuracies, order, []

    def __call__(self, blocks, previous):
        step = self.order.index(blocks)
        self.calls.append((blocks, previous))
        return self.accuracies[step], step


def test_stops_at_the_first_step_whose_relative_gain_falls_below_epsilon():
    order = forward_order(FULL)
    # Accuracy* = 0.5; gains: (0.75-0.5)/0.5 = 0.5, (0.8125-0.75)/0.5 = 0.125, then 0.0625
    curve = CraftedCurve([0.5, 0.75, 0.8125, 0.84375, 0.9, 0.95], order)
    selection = forward_select(order, curve, epsilon=0.125)
    assert [r.relative_gain for r in selection.steps] == [None, 0.5, 0.125, 0.0625]
    assert [r.decision for r in selection.steps] == ["start", "added", "added", "stop"]
    assert selection.reference_accuracy == 0.5
    assert selection.stopped_at == 3
    # Algorithm 1 returns the network without the block that failed: 3.2.1.1 -> 3.1.1.1
    assert selection.chosen_blocks == (3, 1, 1, 1) == order[2]
    # exactly four trainings, each continuing from the previous model
    assert [c[0] for c in curve.calls] == order[:4]
    assert [c[1] for c in curve.calls] == [None, 0, 1, 2]
    assert selection.model == 3


def test_no_stop_runs_to_the_full_backbone_and_records_where_it_would_stop():
    order = forward_order(FULL)
    accuracies = [0.5, 0.75, 0.75] + [0.75 + 0.001 * i for i in range(len(order) - 3)]
    curve = CraftedCurve(accuracies, order)
    selection = forward_select(order, curve, epsilon=0.01, stop=False)
    assert len(curve.calls) == len(order) == 13 and selection.steps[-1].blocks == FULL
    assert selection.stopped_at == 2 and selection.chosen_blocks == (2, 1, 1, 1)
    assert [r.decision for r in selection.steps[:4]] == ["start", "added", "stop", "beyond"]
    assert selection.steps[3].relative_gain == 0.0
    assert selection.steps[4].relative_gain == pytest.approx(0.001 / 0.5)


def test_never_stopping_selects_the_full_backbone_and_cyclic_order_is_followed():
    order = forward_order(FULL, order="cyclic")
    curve = CraftedCurve([0.1 * (i + 1) / 2 for i in range(len(order))], order)
    selection = forward_select(order, curve, epsilon=0.0)
    assert [c[0] for c in curve.calls][:6] == [(1, 1, 1, 1), (2, 1, 1, 1), (2, 2, 1, 1),
                                               (2, 2, 2, 1), (2, 2, 2, 2), (3, 2, 2, 2)]
    assert selection.stopped_at is None and selection.chosen_blocks == FULL


def test_reference_accuracy_replaces_accuracy_star():
    order = forward_order(FULL)
    curve = CraftedCurve([0.5, 0.75, 0.875], order)
    # with Accuracy* = 0.5 the second gain is 0.25 (kept); with 1.0 it is 0.125 (stop)
    assert forward_select(order[:3], curve, 0.2).stopped_at is None
    chosen = forward_select(order[:3], curve, 0.2, reference_accuracy=1.0)
    assert chosen.stopped_at == 2 and chosen.reference_accuracy == 1.0
    assert relative_gain(0.25, 0.0, 0.0) == float("inf") and relative_gain(0.0, 0.0, 0.0) == 0.0


def test_resumption_trains_only_the_missing_steps():
    order = forward_order(FULL)
    curve = CraftedCurve([0.5, 0.75, 0.875, 0.9, 0.9], order)
    saved = []
    selection = forward_select(order, curve, 0.01, finished=[0.5, 0.75],
                               resume_model=lambda: "model of step 1",
                               on_step=lambda sel, model: saved.append((sel.steps[-1].step, model)))
    assert [c[0] for c in curve.calls] == order[2:5]
    assert curve.calls[0][1] == "model of step 1"
    assert saved == [(2, 2), (3, 3), (4, 4)] and selection.stopped_at == 4
    # a finished selection that already stopped trains nothing
    again = CraftedCurve([], order)
    done = forward_select(order, again, 0.01, finished=[0.5, 0.75, 0.875, 0.9, 0.9])
    assert again.calls == [] and done.stopped_at == 4 and done.chosen_blocks == order[3]


def test_growing_keeps_trained_tensors_and_takes_the_new_block_pretrained(tmp_path):
    checkpoint = tmp_path / "resnet18.pt"
    torch.save(randomize_(resnet("resnet18"), seed=5).state_dict(), checkpoint)
    pretrained = torch.load(checkpoint)
    small = grow(None, selection_model_config("resnet18", (1, 1, 1, 1), str(checkpoint),
                                              num_classes=4))
    randomize_(small, seed=9)  # stands for training: every tensor differs from the checkpoint
    big_config = selection_model_config("resnet18", (2, 1, 1, 1), str(checkpoint), num_classes=4)
    big = grow(small, big_config)
    trained, grown = small.state_dict(), big.state_dict()
    new = sorted(set(grown) - set(trained))
    assert new and all(k.startswith("stump.layer1.1.") for k in new)
    for key, value in trained.items():
        assert torch.equal(grown[key], value), key
    for key in new:
        assert torch.equal(grown[key], pretrained[key.removeprefix("stump.")]), key
    # (the premise: the carried tensors are not the pretrained ones)
    assert not torch.equal(grown["stump.layer1.0.conv1.weight"], pretrained["layer1.0.conv1.weight"])
    # carry_over reports what it could not carry: the new block
    assert carry_over(grow(None, big_config), small) == new


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory):
    root = make_meta_album(tmp_path_factory.mktemp("data") / "tiny", classes=4, per_class=6)
    return DataSpec(root=str(root), train=3, test=3)


@pytest.fixture(scope="module")
def selected(tiny_data, tmp_path_factory):
    """A tiny real selection with its control: resnet18, 32 px, one epoch per step."""
    out = tmp_path_factory.mktemp("selection") / "sel"
    report = select_blocks(tiny_data, out, arch="resnet18", weights="none", epsilon=10.0,
                           recipe=TINY_RECIPE, control=True, progress=False)
    return out, report


def test_tiny_selection_writes_curve_selection_and_control_and_resumes(tiny_data, selected,
                                                                       monkeypatch):
    out, rep = selected
    # gain (anything <= 1) < 10: the first addition stops the selection, after two steps
    rows = read_csv(out / "curve.csv")
    assert [r["blocks"] for r in rows] == ["1.1.1.1", "2.1.1.1"]
    assert [r["decision"] for r in rows] == ["start", "stop"]
    assert [int(r["epochs_so_far"]) for r in rows] == [1, 2]
    assert int(rows[1]["total_blocks"]) == 5 and int(rows[1]["params"]) > int(rows[0]["params"])
    steps = json.loads((out / "seed-0" / "steps.json").read_text())["steps"]
    acc0, acc1 = steps[0]["accuracy"], steps[1]["accuracy"]
    assert float(rows[1]["relative_gain"]) == pytest.approx((acc1 - acc0) / acc0)
    selection = json.loads((out / "selection.json").read_text())
    assert selection["chosen_blocks"] == [1, 1, 1, 1] and selection["stopped_at"] == 1
    assert selection["reference_accuracy"] == acc0 and selection["epsilon"] == 10.0
    # the control: the start model trained once for both steps' epochs
    control = read_csv(out / "control.csv")
    assert control[0]["epochs"] == "2" and (out / "seed-0" / "control-2ep" / "metrics.json").exists()
    assert selection["control"]["mean_error"] == pytest.approx(float(control[0]["error"]))
    assert (out / "curve.png").stat().st_size > 0 and rep.summary[0]["seeds"] == 1
    # models kept: the selected step (0) and the last one (1)
    assert sorted(p.name for p in (out / "seed-0").glob("step-*.pt")) == ["step-000.pt",
                                                                         "step-001.pt"]

    with pytest.raises(RunError, match="--resume"):
        select_blocks(tiny_data, out, arch="resnet18", weights="none", recipe=TINY_RECIPE,
                      progress=False)

    trained = []
    real_call = select.StepTrainer.__call__

    def counting(self, blocks, previous):
        trained.append((blocks, previous is not None))
        return real_call(self, blocks, previous)
    monkeypatch.setattr(select.StepTrainer, "__call__", counting)
    # resuming with the same rule trains nothing; with --no-stop it continues after step 1
    select_blocks(tiny_data, out, arch="resnet18", weights="none", epsilon=10.0,
                  recipe=TINY_RECIPE, resume=True, progress=False)
    assert trained == []
    select_blocks(tiny_data, out, arch="resnet18", weights="none", epsilon=10.0, stop=False,
                  recipe=TINY_RECIPE, resume=True, progress=False)
    # resnet18 is 2.2.2.2: three more steps, each from the previous model (the first loaded)
    assert trained == [((2, 2, 1, 1), True), ((2, 2, 2, 1), True), ((2, 2, 2, 2), True)]
    rows = read_csv(out / "curve.csv")
    assert [r["decision"] for r in rows] == ["start", "stop", "beyond", "beyond", "beyond"]
    assert [float(r["accuracy"]) for r in rows[:2]] == [acc0, acc1]  # finished steps kept
    selection = json.loads((out / "selection.json").read_text())
    assert selection["chosen_blocks"] == [1, 1, 1, 1] and selection["stop"] is False
    assert sorted(p.name for p in (out / "seed-0").glob("step-*.pt")) == ["step-000.pt",
                                                                         "step-004.pt"]


def test_cli_select_blocks_json(tiny_data, selected, tmp_path, capsys):
    out, _ = selected
    options = ["--out", str(out), "--arch", "resnet18", "--weights", "none", "--epochs", "1",
               "--batch-size", "12", "--ema-epochs", "1", "--augment-ops", "1", "--image-size",
               "32", "--train", "3", "--test", "3", "--epsilon", "10", "--quiet"]
    # the same options continue the selection (--no-stop: to 2.2.2.2), a new rule re-decides
    code = main(["select-blocks", tiny_data.root, *options, "--resume", "--no-stop",
                 "--reference-accuracy", "0.5", "--json"])
    assert code == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed == json.loads((out / "selection.json").read_text())
    assert printed["reference_accuracy"] == 0.5 and printed["stop"] is False
    assert main(["select-blocks", tiny_data.root, *options]) == 2  # neither --resume nor --overwrite
    assert "--resume" in capsys.readouterr().err
    assert main(["select-blocks", tiny_data.root, *options, "--resume", "--order", "cyclic"]) == 2
    assert "other options" in capsys.readouterr().err
    assert main(["select-blocks", tiny_data.root, "--out", str(tmp_path / "bad"), "--arch",
                 "resnet18", "--weights", "none", "--reference-accuracy", "1.5"]) == 2
    with pytest.raises(ConfigError, match="--val"):
        select_blocks(tiny_data, tmp_path / "val", arch="resnet18", weights="none",
                      recipe=TINY_RECIPE, score_on="val", progress=False)
