import errno
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from conftest import make_meta_album, randomize_
from rrrnet.errors import ConfigError, RunError
from rrrnet.model import ModelConfig, build, load
from rrrnet.fold import batchnorm_count
from rrrnet.train import (DataSpec, Recipe, branch_loss, fit, load_checkpoint,
                          with_folded_stump)

TINY_MODEL = ModelConfig(arch="resnet18", blocks=(1, 1, 1, 1), branches=2, weights="none")
TINY_RECIPE = Recipe(epochs=3, batch_size=8, ema_epochs=2, warm_stump_epochs=1, image_size=32,
                     seed=3)


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory):
    root = make_meta_album(tmp_path_factory.mktemp("data") / "tiny", classes=4, per_class=12)
    return DataSpec(root=str(root), train=6, test=6)


def test_ema_window_spans_the_last_epochs():
    recipe = Recipe(epochs=300, ema_epochs=60)
    assert recipe.ema_start == 240
    decay = recipe.ema_decay(steps_per_epoch=13)
    assert decay == pytest.approx(1 - 1 / (60 * 13))
    # the weight of an update 60 epochs back has fallen to about 1/e
    assert decay ** (60 * 13) == pytest.approx(0.3677, abs=1e-3)
    # a run shorter than twice the window averages its second half, with a window to match
    short = Recipe(epochs=10, ema_epochs=60)
    assert (short.ema_start, short.ema_averaged_epochs) == (5, 5)
    assert short.ema_decay(steps_per_epoch=13) == pytest.approx(1 - 1 / (5 * 13))
    assert Recipe(epochs=3, ema_epochs=60).ema_start == 1
    assert Recipe(epochs=1, ema_epochs=60).ema_start == 0


def test_the_average_is_bias_corrected():
    """Samples w_1..w_n with decay d: sum_k d^(n-k) w_k / sum_k d^(n-k), by hand; the weights
    before the average started keep no share."""
    from torch.optim.swa_utils import AveragedModel
    from rrrnet.train import bias_corrected_ema
    decay, values = 0.5, [4.0, 8.0, 0.0, 2.0]
    param = torch.nn.Parameter(torch.tensor([100.0]))  # the weights before the average started
    ema = AveragedModel(torch.nn.ParameterList([param]), multi_avg_fn=bias_corrected_ema(decay))
    for v in values:
        param.data.fill_(v)
        ema.update_parameters(torch.nn.ParameterList([param]))
    n = len(values)
    weights = [decay ** (n - 1 - k) for k in range(n)]
    expected = sum(w * v for w, v in zip(weights, values)) / sum(weights)  # 22 / 15
    assert ema.module[0].item() == pytest.approx(expected)


@pytest.mark.slow
def test_a_short_run_keeps_its_accuracy_with_the_default_average(tmp_path):
    """3 epochs with the default ema_epochs (60): the averaged model ends within a few points of
    the same run without averaging (the average used to keep ~95% of the first step's weights),
    both well above chance (95% error on 20 classes)."""
    from rrrnet.demo import demo_data
    config = ModelConfig(arch="resnet18", blocks=(1, 1, 1, 1), branches=2, split_at="layer2",
                         weights="none")
    data = DataSpec(root=str(demo_data()))
    errors = {}
    for ema_epochs in (60, 0):
        recipe = Recipe(epochs=3, ema_epochs=ema_epochs, warm_stump_epochs=1, image_size=48,
                        eval_every=0, seed=1)
        errors[ema_epochs] = fit(data, tmp_path / f"ema{ema_epochs}", config, recipe,
                                 progress=False).metrics["error"]
    assert abs(errors[60] - errors[0]) <= 0.04, errors
    assert max(errors.values()) < 0.8, errors


def test_history_shows_raw_and_averaged_errors(tiny_data, tmp_path):
    recipe = Recipe(**{**TINY_RECIPE.__dict__, "epochs": 4, "ema_epochs": 60})
    result = fit(tiny_data, tmp_path / "run", TINY_MODEL, recipe, progress=False)
    rows = result.history
    assert [r.get("test_error_ema") is not None for r in rows] == [False, False, True, True]
    for row in rows:
        assert 0 <= row["test_error"] <= 1 and 0 <= row["test_disagreement"] <= 1
        assert row["test_gain"] == pytest.approx(row["test_mean_branch_error"] - row["test_error"])
    # the last row's averaged error is the final model's
    assert rows[-1]["test_error_ema"] == pytest.approx(result.metrics["error"])


@pytest.mark.parametrize("lr", [float("inf"), 1e12])
def test_divergence_stops_with_a_clear_error(tiny_data, tmp_path, lr):
    if lr == float("inf"):
        with pytest.raises(ConfigError, match=r"lr .*must be a finite"):
            Recipe(lr=lr)
        return
    recipe = Recipe(**{**TINY_RECIPE.__dict__, "lr": lr, "epochs": 3})
    with pytest.raises(RunError, match="loss became .*in epoch .*Lower --lr"):
        fit(tiny_data, tmp_path / "run", TINY_MODEL, recipe, progress=False)
    assert not (tmp_path / "run" / "metrics.json").exists()


@pytest.mark.parametrize("channels_last", [False, True])
def test_training_runs_the_frozen_stump_folded_with_the_same_outputs(channels_last):
    model = randomize_(build(ModelConfig(arch="resnet50", blocks=(1, 1, 1, 1), branches=4,
                                         num_classes=5, weights="none")))
    model.train()  # branches in train mode, the frozen stump stays in eval
    fast = with_folded_stump(model, channels_last)
    assert fast.branches is model.branches                   # the trained part is shared
    assert batchnorm_count(fast.stump) == 0 < batchnorm_count(model.stump)
    x = torch.randn(3, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(fast.stump(x), model.stump(x), rtol=1e-4, atol=1e-4)
        model.eval()
        torch.testing.assert_close(fast(x), model(x), rtol=1e-4, atol=1e-4)
        views = torch.randn(2, 4, 3, 64, 64)                 # one view per branch
        torch.testing.assert_close(fast(views), model(views), rtol=1e-4, atol=1e-4)
    # A trained stump is run as it is.
    trained = build(ModelConfig(arch="resnet18", blocks=(1, 1, 1, 1), branches=2,
                                freeze_stump=False, weights="none"))
    assert with_folded_stump(trained, channels_last) is trained


def test_branch_loss_is_the_sum_of_per_branch_cross_entropies():
    logits, labels = torch.randn(3, 5, 4), torch.randint(0, 4, (5,))
    expected = sum(torch.nn.functional.cross_entropy(logits[b], labels) for b in range(3))
    torch.testing.assert_close(branch_loss(logits, labels), expected)


@pytest.mark.parametrize("kwargs", [dict(branch_views="both"), dict(epochs=0), dict(device="tpu"),
                                    dict(ema_epochs=-1), dict(lr=-1), dict(lr=float("nan")),
                                    dict(lr=0), dict(weight_decay=-1), dict(image_size=0)])
def test_bad_recipes(kwargs):
    with pytest.raises(ConfigError):
        Recipe(**kwargs)


def test_fit_writes_a_complete_run(tiny_data, tmp_path):
    result = fit(tiny_data, tmp_path / "run", TINY_MODEL, TINY_RECIPE, progress=False)
    names = sorted(p.name for p in (tmp_path / "run").iterdir() if not p.name.startswith("."))
    assert names == ["checkpoint.pt", "config.json", "history.csv", "manifest.json",
                     "metrics.json", "model.pt", "skipped.csv", "split.csv", "stump.pt"]
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())["files"]
    assert sorted(manifest) == [n for n in names if n != "manifest.json"]
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["classes"] == ["class_0", "class_1", "class_2", "class_3"]
    assert config["model"]["num_classes"] == 4 and config["recipe"]["epochs"] == 3
    header = (tmp_path / "run" / "history.csv").read_text().splitlines()[0].split(",")
    for column in ("epoch", "loss", "train_error", "train_error_b0", "train_error_b1",
                   "test_error", "test_error_b0", "test_error_b1"):
        assert column in header
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    for key in ("error", "branch_errors", "nll", "ece", "mean_entropy", "mean_mutual_information"):
        assert key in metrics
    assert len(metrics["branch_errors"]) == 2 and metrics["test_images"] == 24
    model = load(tmp_path / "run" / "model.pt")
    assert model.config.num_classes == 4 and model.config.branches == 2
    assert len(result.history) == 3


def test_frozen_stump_keeps_its_weights_and_gets_new_statistics(tiny_data, tmp_path):
    fresh = build(TINY_MODEL, num_classes=4)
    result = fit(tiny_data, tmp_path / "run", TINY_MODEL, TINY_RECIPE, progress=False)
    trained = result.model
    assert torch.equal(trained.stump.conv1.weight, fresh.stump.conv1.weight)
    assert torch.equal(trained.stump.bn1.weight, fresh.stump.bn1.weight)
    # the BatchNorm statistics were re-estimated on the training images
    assert not torch.allclose(trained.stump.bn1.running_mean, fresh.stump.bn1.running_mean)
    assert not torch.equal(trained.branches.fc.weight, fresh.branches.fc.weight)


def test_evaluation_uses_the_averaged_weights(tiny_data, tmp_path):
    fit(tiny_data, tmp_path / "ema", TINY_MODEL, TINY_RECIPE, progress=False)
    raw = load_checkpoint(tmp_path / "ema" / "checkpoint.pt")
    final = load(tmp_path / "ema" / "model.pt").state_dict()
    # with a frozen stump only the branches are averaged
    ema = {"branches." + k.removeprefix("module."): v for k, v in raw["ema"].items()
           if k.startswith("module.")}
    assert set(ema) == {k for k in final if k.startswith("branches.")}
    key = "branches.fc.weight"
    assert torch.equal(final[key], ema[key]) and not torch.equal(final[key], raw["model"]["fc.weight"])
    stump = load_checkpoint(tmp_path / "ema" / "stump.pt")["model"]
    assert torch.equal(final["stump.bn1.running_mean"], stump["bn1.running_mean"])
    fit(tiny_data, tmp_path / "plain", TINY_MODEL, Recipe(**{**TINY_RECIPE.__dict__, "ema_epochs": 0}),
        progress=False)
    raw = load_checkpoint(tmp_path / "plain" / "checkpoint.pt")
    assert raw["ema"] is None
    assert torch.equal(load(tmp_path / "plain" / "model.pt").state_dict()[key], raw["model"]["fc.weight"])


def test_resumed_run_equals_an_uninterrupted_one(tiny_data, tmp_path):
    whole = fit(tiny_data, tmp_path / "whole", TINY_MODEL, TINY_RECIPE, progress=False)
    first = fit(tiny_data, tmp_path / "cut", TINY_MODEL, TINY_RECIPE, progress=False, stop_after=1)
    assert not (tmp_path / "cut" / "model.pt").exists() and len(first.history) == 1
    resumed = fit(tiny_data, tmp_path / "cut", TINY_MODEL, TINY_RECIPE, progress=False, resume=True)
    a, b = whole.model.state_dict(), resumed.model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    strip = [{k: v for k, v in row.items() if k != "seconds"} for row in whole.history]
    assert strip == [{k: v for k, v in row.items() if k != "seconds"} for row in resumed.history]
    assert resumed.metrics["error"] == whole.metrics["error"]


def test_evaluating_in_the_history_changes_no_weight(tiny_data, tmp_path):
    """eval_every only adds history columns: the same weights with or without it, and a run
    interrupted with one setting resumes with another (benchmark cells train without it)."""
    quiet = Recipe(**{**TINY_RECIPE.__dict__, "eval_every": 0})
    scored = fit(tiny_data, tmp_path / "scored", TINY_MODEL, TINY_RECIPE, progress=False)
    assert all("test_error" in row for row in scored.history)
    fit(tiny_data, tmp_path / "cut", TINY_MODEL, quiet, progress=False, stop_after=1)
    resumed = fit(tiny_data, tmp_path / "cut", TINY_MODEL, TINY_RECIPE, progress=False,
                  resume=True)
    assert "test_error" not in resumed.history[0] and "test_error" in resumed.history[-1]
    a, b = scored.model.state_dict(), resumed.model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert resumed.metrics["error"] == scored.metrics["error"]


def test_history_evaluates_on_stump_features_computed_once(tiny_data, tmp_path, monkeypatch):
    """Behind the frozen stump the evaluation images' features are computed once; the history
    is the one of running the stump at every evaluation (the memory cap at 0 forces that)."""
    from rrrnet.training import callbacks as train_module
    real_cache, cached = train_module.feature_cache, []
    monkeypatch.setattr(train_module, "feature_cache", lambda *a, **kw: cached.append(
        real_cache(*a, **kw)) or cached[-1])
    once = fit(tiny_data, tmp_path / "once", TINY_MODEL, TINY_RECIPE, progress=False)
    assert len(cached) == 1 and len(cached[0]) == len(tiny_data.load().test)  # one pass
    monkeypatch.setattr(train_module, "EVAL_CACHE_BYTES", 0)
    every = fit(tiny_data, tmp_path / "every", TINY_MODEL, TINY_RECIPE, progress=False)
    columns = [k for k in once.history[-1] if k.startswith("test_")]
    assert "test_error_ema" in columns and "test_error_b1" in columns
    for a, b in zip(once.history, every.history):
        assert {k: a.get(k) for k in columns} == pytest.approx({k: b.get(k) for k in columns})
    assert cached[-1] is None  # over the cap: the stump ran at every evaluation


@pytest.mark.slow
def test_a_killed_run_resumes_from_its_last_checkpoint(tiny_data, tmp_path):
    script = Path(sys.executable).parent / "rrrnet"
    args = [str(script), "fit", tiny_data.root, "--arch", "resnet18", "--blocks", "1,1,1,1",
            "--branches", "2", "--weights", "none", "--epochs", "4", "--ema-epochs", "2",
            "--warm-stump-epochs", "1", "--image-size", "32", "--batch-size", "8", "--train", "6",
            "--test", "6", "--seed", "3", "-q"]
    run = tmp_path / "run"
    proc = subprocess.Popen(args + ["--out", str(run)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, start_new_session=True)
    deadline = time.time() + 300
    while not (run / "checkpoint.pt").exists():
        assert proc.poll() is None, proc.stderr.read().decode()
        assert time.time() < deadline
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)  # no clean-up: as a power cut or an OOM kill would
    proc.wait()
    done = load_checkpoint(run / "checkpoint.pt")["epoch"] + 1
    assert done < 4 and not (run / "model.pt").exists()
    refused = subprocess.run(args + ["--out", str(run)], capture_output=True, text=True)
    assert refused.returncode == 2 and "--resume" in refused.stderr
    subprocess.run(args + ["--out", str(run), "--resume"], check=True, capture_output=True)
    subprocess.run(args + ["--out", str(tmp_path / "whole")], check=True, capture_output=True)
    a = load(run / "model.pt").state_dict()
    b = load(tmp_path / "whole" / "model.pt").state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_an_existing_run_is_not_overwritten(tiny_data, tmp_path):
    recipe = Recipe(**{**TINY_RECIPE.__dict__, "epochs": 1, "ema_epochs": 0})
    first = fit(tiny_data, tmp_path / "run", TINY_MODEL, recipe, progress=False)
    before = (tmp_path / "run" / "model.pt").read_bytes()
    with pytest.raises(RunError, match="finished run.*--resume.*--overwrite"):
        fit(tiny_data, tmp_path / "run", TINY_MODEL, recipe, progress=False)
    assert (tmp_path / "run" / "model.pt").read_bytes() == before
    again = fit(tiny_data, tmp_path / "run", TINY_MODEL, recipe, progress=False, resume=True)
    assert again.metrics == first.metrics  # a finished run is read back, not retrained
    other = Recipe(**{**recipe.__dict__, "lr": 0.1})
    with pytest.raises(RunError, match="recipe.lr"):
        fit(tiny_data, tmp_path / "run", TINY_MODEL, other, progress=False, resume=True)
    fit(tiny_data, tmp_path / "run", TINY_MODEL, other, progress=False, overwrite=True)
    assert json.loads((tmp_path / "run" / "config.json").read_text())["recipe"]["lr"] == 0.1


def test_disk_full_while_saving_keeps_the_previous_checkpoint(tiny_data, tmp_path, monkeypatch):
    import rrrnet.train as train
    real_save, calls = torch.save, []

    def failing_save(obj, f, *args, **kwargs):
        calls.append(1)
        if len(calls) >= 3:  # stump.pt, epoch 1, then epoch 2's checkpoint: half written, disk full
            f.write(b"partial")
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_save(obj, f, *args, **kwargs)

    monkeypatch.setattr(train.torch, "save", failing_save)
    with pytest.raises(RunError, match="No space left.*intact.*--resume"):
        fit(tiny_data, tmp_path / "run", TINY_MODEL, TINY_RECIPE, progress=False)
    monkeypatch.setattr(train.torch, "save", real_save)
    assert load_checkpoint(tmp_path / "run" / "checkpoint.pt")["epoch"] == 0
    assert [p.name for p in (tmp_path / "run").iterdir() if p.name.endswith(".tmp")] == []
    resumed = fit(tiny_data, tmp_path / "run", TINY_MODEL, TINY_RECIPE, progress=False, resume=True)
    assert len(resumed.history) == 3


def test_independent_views_train(tiny_data, tmp_path):
    recipe = Recipe(**{**TINY_RECIPE.__dict__, "epochs": 1, "branch_views": "independent"})
    result = fit(tiny_data, tmp_path / "run", TINY_MODEL, recipe, progress=False)
    assert 0 <= result.metrics["error"] <= 1


def test_cached_stump_features_for_last_layer_fine_tuning(tiny_data, tmp_path):
    config = ModelConfig(arch="resnet18", blocks=(1, 1, 1, 1), branches=1, split_at="fc",
                         weights="none")
    recipe = Recipe(**{**TINY_RECIPE.__dict__, "augment_ops": 0, "epochs": 2})
    result = fit(tiny_data, tmp_path / "run", config, recipe, progress=False)
    trainable = [n for n, p in result.model.named_parameters() if p.requires_grad]
    assert trainable == ["branches.fc.weight", "branches.fc.bias"]
    assert "test_error" in result.history[-1]


@pytest.mark.slow
def test_short_training_on_the_embedded_dataset_beats_chance(tmp_path):
    """A real run on real images: 20 clip-art classes (chance: 95% error), a small ResNet-18 from
    random initialisation, four epochs at 64 px with the paper's augmentation."""
    from rrrnet.demo import demo_data
    config = ModelConfig(arch="resnet18", blocks=(1, 1, 1, 1), branches=2, split_at="layer2",
                         weights="none")
    recipe = Recipe(epochs=4, ema_epochs=2, warm_stump_epochs=1, image_size=64, eval_every=0)
    result = fit(DataSpec(root=str(demo_data())), tmp_path / "run", config, recipe, progress=False)
    # 20 per class, less 2 test images whose bytes are also in train (left out: skipped.csv)
    assert result.metrics["test_images"] == 398 and len(result.metrics["classes"]) == 20
    assert result.metrics["error"] < 0.75, result.metrics


def test_the_authors_per_step_ema_decay():
    recipe = Recipe(epochs=300, ema_epochs=60, ema_step_decay=59 / 60)
    assert recipe.ema_decay(steps_per_epoch=13) == 59 / 60 and recipe.ema_start == 240
    with pytest.raises(ConfigError, match="ema_step_decay"):
        Recipe(ema_step_decay=1.0)
