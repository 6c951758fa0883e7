"""rrrnet tune: the Optuna search on the held-out dataset's validation images."""
import csv
import json

import pytest

optuna = pytest.importorskip("optuna")

from conftest import make_meta_album  # noqa: E402
from rrrnet import cli, train  # noqa: E402
from rrrnet.training import fit as fit_module  # noqa: E402
from rrrnet.data import load_dataset, micro_split  # noqa: E402
from rrrnet.errors import ConfigError  # noqa: E402
from rrrnet.experiments.methods import load_config_file  # noqa: E402
from rrrnet.experiments.tune import (SearchSpace, ema_epochs, make_study, tune,  # noqa: E402
                                     validation_spec)
from rrrnet.train import Recipe  # noqa: E402

# Tiny trials: a 2-branch ResNet-18 from random weights, 32 px, no augmentation (stump features
# cached), 5 train / 3 validation images per class.
TINY = dict(base_recipe=Recipe(image_size=32, batch_size=32, warm_stump_epochs=1, augment_ops=0),
            weights="none", arch="resnet18", model_overrides={"branches": 2}, train=5, val=3,
            progress=False)
ONE_EPOCH = SearchSpace.for_budget(max_epochs=1)


@pytest.fixture(scope="module")
def held_out(tmp_path_factory):
    """3 classes x 40 images: room for ICDAR-micro's 15 train / 5 validation / 20 test split."""
    return make_meta_album(tmp_path_factory.mktemp("icdar") / "data", classes=3, per_class=40)


def split_names(part):
    return [p.name for p in part.paths]


def test_validation_spec_selects_exactly_the_validation_images(held_out):
    full = micro_split(load_dataset(held_out), train=15, val=5, test=20)
    chosen = validation_spec(held_out).load()
    assert split_names(chosen.train) == split_names(full.train)
    assert split_names(chosen.test) == split_names(full.val)
    assert not set(split_names(chosen.test)) & set(split_names(full.test))
    assert len(chosen.test) == 3 * 5


def test_ema_epochs_follows_the_fraction():
    assert ema_epochs(300, 0.2) == 60          # the paper's 60 of 300
    assert ema_epochs(10, 0.06) == 1 and ema_epochs(10, 0.04) == 0  # under half an epoch: none
    assert ema_epochs(10, 1.0) == 10
    assert SearchSpace.for_budget(300).epochs == (75, 300)
    with pytest.raises(ConfigError, match="min-epochs"):
        SearchSpace.for_budget(10, min_epochs=20)
    with pytest.raises(ConfigError, match="lr"):
        SearchSpace(lr=(0.0, 1e-3))


def suggestions(seed, method, n=14):
    """Ask-and-tell with a fixed score: past TPE's 10 random start-up trials."""
    study = make_study(seed=seed)
    space = SearchSpace()
    asked = []
    for _ in range(n):
        trial = study.ask()
        params = space.suggest(trial, method)
        asked.append(params)
        study.tell(trial, abs(params["lr"] - 1e-3) + params["weight_decay"])
    return asked


def test_suggestions_are_reproducible_by_seed_and_in_range():
    first, again, other = suggestions(3, "D"), suggestions(3, "D"), suggestions(4, "D")
    assert first == again
    assert first != other
    for p in first:
        assert 1e-4 <= p["lr"] <= 3e-3 and 1e-4 <= p["weight_decay"] <= 0.1
        assert 75 <= p["epochs"] <= 300 and 0.05 <= p["dropout"] <= 0.6
        assert p["ema_epochs"] == ema_epochs(p["epochs"], p["ema_fraction"])
    assert all("dropout" not in p for p in suggestions(3, "E", n=2))


def test_tiny_study_scores_on_validation_images_and_writes_a_config(held_out, tmp_path, monkeypatch):
    seen = []
    real_images = fit_module.ImageDataset

    def spy(images, *args, **kwargs):
        seen.append(split_names(images))
        return real_images(images, *args, **kwargs)
    monkeypatch.setattr(fit_module, "ImageDataset", spy)

    result = tune(held_out, tmp_path / "tune", method="E", trials=2, space=ONE_EPOCH, seed=1, **TINY)

    full = micro_split(load_dataset(held_out), train=5, val=3, test=20)
    train_names, val_names = split_names(full.train), split_names(full.val)
    assert seen and all(names in (train_names, val_names) for names in seen)
    assert val_names in seen  # the trials were scored, on the validation images
    assert not {n for names in seen for n in names} & set(split_names(full.test))

    rows = list(csv.DictReader(open(tmp_path / "tune" / "trials.csv")))
    assert [r["number"] for r in rows] == ["0", "1"]
    assert all(r["state"] == "COMPLETE" and r["epochs"] == "1" for r in rows)
    best = json.loads((tmp_path / "tune" / "best.json").read_text())
    assert best["validation_error"] == min(float(r["val_error"]) for r in rows)
    assert result.config_path == tmp_path / "tune" / "config.json"
    config = load_config_file(result.config_path)
    assert config["recipe"]["lr"] == pytest.approx(best["params"]["lr"])
    assert config["recipe"]["weight_decay"] == pytest.approx(best["params"]["weight_decay"])
    assert config["recipe"]["epochs"] == 1
    assert config["recipe"]["ema_epochs"] == best["recipe"]["ema_epochs"]
    assert config["source"]["fixed_recipe"] == {"image_size": 32, "warm_stump_epochs": 1,
                                                "augment_ops": 0}
    # ... and they travel with the tuned values, so fit/benchmark --config train as the trials did
    assert {k: config["recipe"][k] for k in ("image_size", "warm_stump_epochs", "augment_ops")} \
        == config["source"]["fixed_recipe"]
    assert not (tmp_path / "tune" / "runs").exists()  # trial run folders cleaned up


def test_resumed_study_continues_the_trial_count(held_out, tmp_path):
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    out = tmp_path / "tune"
    tune(held_out, out, method="D", trials=1, space=ONE_EPOCH, storage=storage, **TINY)
    result = tune(held_out, out, method="D", trials=2, space=ONE_EPOCH, storage=storage, **TINY)
    assert [t.number for t in result.study.trials] == [0, 1]
    rows = list(csv.DictReader(open(out / "trials.csv")))
    assert [r["number"] for r in rows] == ["0", "1"]
    config = load_config_file(result.config_path)
    assert config["methods"]["D"]["dropout"] == pytest.approx(result.best["params"]["dropout"])
    assert 0.05 <= config["methods"]["D"]["dropout"] <= 0.6
    # Asking again for 2 trials runs none; another search space is refused.
    again = tune(held_out, out, method="D", trials=2, space=ONE_EPOCH, storage=storage, **TINY)
    assert len(again.study.trials) == 2
    with pytest.raises(ConfigError, match="other settings"):
        tune(held_out, out, method="D", trials=3, space=SearchSpace.for_budget(2), storage=storage,
             **TINY)


def test_pruning_reports_validation_error_per_chunk(held_out, tmp_path):
    out = tmp_path / "tune"
    tune(held_out, out, trials=1, space=SearchSpace.for_budget(2, min_epochs=2), prune=True,
         prune_every=1, keep_runs=True, **TINY)
    history = list(csv.DictReader(open(out / "runs" / "trial-0000" / "history.csv")))
    assert [r["epoch"] for r in history] == ["1", "2"]
    assert all(r["test_error"] != "" for r in history)  # the validation error fed to the pruner
    metrics = json.loads((out / "runs" / "trial-0000" / "metrics.json").read_text())
    assert metrics["images"] == 3 * 3
    rows = list(csv.DictReader(open(out / "trials.csv")))
    assert rows[0]["last_epoch"] == "2" and float(rows[0]["val_error"]) == metrics["error"]


def test_cli_tune_writes_the_config(held_out, tmp_path, capsys):
    out = tmp_path / "cli"
    code = cli.main(["tune", str(held_out), "--out", str(out), "--method", "C", "--trials", "1",
                     "--max-epochs", "1", "--augment-ops", "0",
                     "--arch", "resnet18", "--weights", "none", "--image-size", "32",
                     "--train", "5", "--val", "3",
                     "--warm-stump-epochs", "1", "--config-out", str(tmp_path / "tuned.json"),
                     "--quiet", "--json"])
    assert code == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["recipe"]["epochs"] == 1
    assert load_config_file(tmp_path / "tuned.json")["recipe"] == printed["recipe"]
    assert (out / "best.json").exists() and (out / "trials.csv").exists()
    assert cli.main(["tune", str(held_out), "--trials", "0", "--out", str(out), "--quiet"]) == 2
