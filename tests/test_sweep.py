import json

import pytest

from conftest import make_meta_album, read_csv
from rrrnet.training import loop
from rrrnet.cli import main, seed_list
from rrrnet.cost import cost
from rrrnet.errors import ConfigError, RunError
from rrrnet.experiments.sweep import sweep_branches
from rrrnet.model import ModelConfig
from rrrnet.report.stats import mean_ci
from rrrnet.train import DataSpec, Recipe

TINY_MODEL = ModelConfig(arch="resnet18", blocks=(1, 1, 1, 1), weights="none")
TINY_RECIPE = Recipe(epochs=1, batch_size=12, ema_epochs=0, warm_stump_epochs=1, image_size=32)


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory):
    root = make_meta_album(tmp_path_factory.mktemp("data") / "tiny", classes=4, per_class=6)
    return DataSpec(root=str(root), train=3, test=3)


def test_tiny_sweep_writes_runs_and_t_interval_summary_and_resumes(tiny_data, tmp_path,
                                                                  monkeypatch):
    out = tmp_path / "sweep"
    result = sweep_branches(tiny_data, out, (1, 2), (0, 1), TINY_MODEL, TINY_RECIPE,
                            progress=False)
    runs = read_csv(out / "sweep.csv")
    assert [(int(r["branches"]), int(r["seed"])) for r in runs] == [(1, 0), (1, 1), (2, 0), (2, 1)]
    for r in runs:  # every row is its run folder's final test error
        metrics = json.loads((out / r["run"] / "metrics.json").read_text())
        assert float(r["error"]) == metrics["error"] and metrics["branches"] == int(r["branches"])
    summary = read_csv(out / "sweep_summary.csv")
    assert [int(s["branches"]) for s in summary] == [1, 2]
    for s in summary:
        errors = [float(r["error"]) for r in runs if r["branches"] == s["branches"]]
        mean, low, high = mean_ci(errors)
        assert (float(s["mean_error"]), float(s["error_low"]), float(s["error_high"])) == \
            pytest.approx((mean, low, high))
        rep = cost(TINY_MODEL, branches=int(s["branches"]), num_classes=4, image_size=32)
        assert (int(s["params"]), int(s["macs"])) == (rep.params, rep.macs)
    assert json.loads((out / "sweep.json").read_text())["summary"] == result.summary
    assert (out / "sweep.png").stat().st_size > 0

    with pytest.raises(RunError, match="--resume"):
        sweep_branches(tiny_data, out, (1, 2), (0, 1), TINY_MODEL, TINY_RECIPE, progress=False)

    # finished runs are read back, not trained again; a new seed trains only its own runs
    trained = []
    real_epoch = loop.begin_epoch

    def counting(state, epoch):
        trained.append(state.model.num_branches)
        return real_epoch(state, epoch)
    monkeypatch.setattr(loop, "begin_epoch", counting)
    again = sweep_branches(tiny_data, out, (1, 2), (0, 1), TINY_MODEL, TINY_RECIPE, resume=True,
                           progress=False)
    assert trained == [] and again.runs == result.runs
    more = sweep_branches(tiny_data, out, (1, 2), (0, 1, 2), TINY_MODEL, TINY_RECIPE, resume=True,
                          progress=False)
    assert trained == [1, 2] and [s["seeds"] for s in more.summary] == [3, 3]


def test_impossible_branch_counts_fail_before_any_training(tiny_data, tmp_path):
    # layer1 has 64 channels: floor(64 / sqrt(5000)) = 0 channels per branch
    config = ModelConfig(arch="resnet18", split_at="layer1", weights="none")
    with pytest.raises(ConfigError, match="5000 branches"):
        sweep_branches(tiny_data, tmp_path / "bad", (1, 5000), (0,), config, TINY_RECIPE,
                       progress=False)
    assert not (tmp_path / "bad").exists()
    for counts, seeds in (((1, 1), (0,)), ((0,), (0,)), ((1,), ()), ((1,), (-1,))):
        with pytest.raises(ConfigError):
            sweep_branches(tiny_data, tmp_path / "bad", counts, seeds, config, TINY_RECIPE,
                           progress=False)


def test_cli_sweep_branches(tiny_data, tmp_path, capsys):
    assert seed_list("3") == [0, 1, 2] and seed_list("21,31,51") == [21, 31, 51]
    assert main(["sweep-branches", tiny_data.root, "--out", str(tmp_path / "bad"), "--arch",
                 "resnet18", "--weights", "none", "--split-at", "layer1",
                 "--branches", "1,5000", "--train", "3", "--test", "3"]) == 2
    assert "5000 branches" in capsys.readouterr().err
    code = main(["sweep-branches", tiny_data.root, "--out", str(tmp_path / "cli"), "--arch",
                 "resnet18", "--weights", "none", "--branches", "4", "--seeds", "1",
                 "--epochs", "1", "--batch-size", "12", "--ema-epochs", "0",
                 "--warm-stump-epochs", "1", "--image-size", "32", "--train", "3", "--test", "3",
                 "--quiet", "--json"])
    assert code == 0
    summary = json.loads(capsys.readouterr().out)
    assert [s["branches"] for s in summary] == [4] and summary[0]["seeds"] == 1
    assert (tmp_path / "cli" / "runs" / "b004-seed0" / "model.pt").exists()
