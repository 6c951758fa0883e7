import dataclasses
import json

import pytest
import torch
import torch.fx
from torch import nn

from conftest import make_meta_album
from rrrnet.backbone import BasicBlock, Bottleneck
from rrrnet.cli import main
from rrrnet.errors import ConfigError
from rrrnet.experiments.methods import (apply_config, load_config_file,
                                        method_setup, write_config_file)
from rrrnet.model import ModelConfig, build, load, save
from rrrnet.recycle import convert
from rrrnet.train import DataSpec, Recipe, fit
from rrrnet.training import strategies


# --- the five methods --------------------------------------------------------------------------

def test_method_setup_gives_the_papers_five_models():
    shared = Recipe(epochs=7, lr=3e-4, ema_epochs=2)
    setups = {m: method_setup(m, shared, seed=21) for m in "ABCDE"}
    expected = {  # blocks, branches, split point, frozen stump, dropout
        "A": ((3, 8, 36, 3), 1, "fc", True, 0.0),
        "B": ((3, 8, 36, 3), 1, "fc", False, 0.0),
        "C": ((1, 1, 1, 1), 1, "layer3", True, 0.0),
        "D": ((1, 1, 1, 1), 1, "layer3", True, 0.05),
        "E": ((1, 1, 1, 1), 8, "layer3", True, 0.0),
    }
    for method, (config, recipe) in setups.items():
        assert (config.blocks, config.branches, config.split_at, config.freeze_stump,
                config.dropout) == expected[method], method
        assert config.arch == "resnet152" and config.weights == "imagenet" and config.seed == 21
        # the shared recipe, with the seed; only [A] drops augmentation (its features are cached)
        assert recipe == dataclasses.replace(shared, seed=21,
                                             augment_ops=0 if method == "A" else 2)
    assert set(strategies.methods()) == set("ABCDE")


def test_method_setup_options():
    assert method_setup("D", dropout=0.3)[0].dropout == 0.3
    assert method_setup("E", dropout=0.3)[0].dropout == 0.0      # the rate is D's
    config, recipe = method_setup("B", weights="none", arch="resnet50")
    assert (config.arch, config.blocks, config.weights) == ("resnet50", (3, 4, 6, 3), "none")
    assert recipe == Recipe()
    with pytest.raises(ConfigError, match="unknown method 'F'.*A: ResNet-152.*E: RRR-Net"):
        method_setup("F")


# --- dropout (method D) ------------------------------------------------------------------------

class _LeafConvs(torch.fx.Tracer):
    def is_leaf_module(self, m: nn.Module, name: str) -> bool:
        return isinstance(m, nn.Conv2d) or super().is_leaf_module(m, name)


def _activations(block: nn.Module) -> list[tuple[str, str | None]]:
    """(each ReLU call of the block's forward, the module applied right after it)."""
    graph = _LeafConvs().trace(block)
    modules = dict(block.named_modules())
    out = []
    for node in graph.nodes:
        if node.op == "call_module" and isinstance(modules[node.target], nn.ReLU):
            users = list(node.users)
            after = (type(modules[users[0].target]).__name__
                     if len(users) == 1 and users[0].op == "call_module" else None)
            out.append((node.target, after))
    return out


@pytest.mark.parametrize("arch,activations", [("resnet18", 2), ("resnet50", 3)])
def test_dropout_follows_every_activation_of_layer3_and_layer4_only(arch, activations):
    model = build(ModelConfig(arch=arch, blocks=(1, 2, 2, 1), branches=2, dropout=0.2),
                  weights="none")
    blocks = {name: m for name, m in model.named_modules() if isinstance(m, (BasicBlock, Bottleneck))}
    assert len(blocks) == 6
    for name, block in blocks.items():
        calls = _activations(block)
        assert len(calls) == activations
        in_split = ".layer3." in f".{name}." or ".layer4." in f".{name}."
        assert all((after == "Dropout") == in_split for _, after in calls), name
    dropouts = {name: m.p for name, m in model.named_modules() if isinstance(m, nn.Dropout)}
    assert dropouts == {"branches.layer3.0.dropout": 0.2, "branches.layer3.1.dropout": 0.2,
                        "branches.layer4.0.dropout": 0.2}


def test_dropout_changes_training_only_and_survives_conversion_and_files(tmp_path):
    plain = build(ModelConfig(arch="resnet18", blocks=(1, 1, 1, 1), branches=2), weights="none")
    dropped = build(ModelConfig(arch="resnet18", blocks=(1, 1, 1, 1), branches=2, dropout=0.5),
                    weights="none")
    x = torch.randn(2, 3, 32, 32)
    plain.eval(), dropped.eval()
    assert torch.equal(plain(x), dropped(x))        # same weights, dropout is the identity in eval
    dropped.train()
    torch.manual_seed(0)
    assert not torch.equal(plain.train()(x), dropped(x))
    looped = convert(dropped, fused=False)
    assert sum(isinstance(m, nn.Dropout) for m in looped.modules()) == 2 * 2  # 2 branches x 2 stages
    save(dropped, tmp_path / "d.pt")
    again = load(tmp_path / "d.pt")
    assert again.config.dropout == 0.5
    assert sum(isinstance(m, nn.Dropout) for m in again.modules()) == 2


def test_a_trained_stump_gets_dropout_a_frozen_one_does_not():
    base = ModelConfig(arch="resnet50", blocks=(1, 1, 1, 1), branches=1, split_at="layer4",
                       dropout=0.1)
    trained = build(dataclasses.replace(base, freeze_stump=False), weights="none")
    frozen = build(base, weights="none")
    names = lambda m: sorted(n for n, x in m.named_modules() if isinstance(x, nn.Dropout))  # noqa
    assert names(trained) == ["branches.layer4.0.dropout", "stump.layer3.0.dropout"]
    assert names(frozen) == ["branches.layer4.0.dropout"]


@pytest.mark.parametrize("rate", [-0.1, 1.0, "0.1", True])
def test_bad_dropout_rates(rate):
    with pytest.raises(ConfigError, match="dropout"):
        ModelConfig(dropout=rate)


def test_method_d_resumes_with_the_same_dropout_masks(tmp_path):
    root = make_meta_album(tmp_path / "data", classes=3, per_class=6)
    data = DataSpec(root=str(root), train=4, test=2)
    config, recipe = method_setup("D", Recipe(epochs=2, batch_size=4, ema_epochs=0,
                                              warm_stump_epochs=1, image_size=32, eval_every=0),
                                  seed=2, dropout=0.5, weights="none", arch="resnet18")
    whole = fit(data, tmp_path / "whole", config, recipe, progress=False)
    fit(data, tmp_path / "cut", config, recipe, progress=False, stop_after=1)
    resumed = fit(data, tmp_path / "cut", config, recipe, progress=False, resume=True)
    a, b = whole.model.state_dict(), resumed.model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert whole.history[1]["loss"] == resumed.history[1]["loss"]


# --- configuration files -----------------------------------------------------------------------

def test_config_file_round_trip_and_precedence(tmp_path):
    path = tmp_path / "cfg" / "tuned.json"
    write_config_file(path, recipe={"lr": 5e-4, "epochs": 100}, model={"init": "first"},
                      methods={"D": {"dropout": 0.1, "lr": 2e-4, "seed": 9}},
                      source={"tuned on": "icdar"})
    config = load_config_file(path)
    assert config == json.loads(path.read_text()) == {
        "recipe": {"lr": 5e-4, "epochs": 100}, "model": {"init": "first"},
        "methods": {"D": {"dropout": 0.1, "lr": 2e-4, "seed": 9}}, "source": {"tuned on": "icdar"}}
    model, recipe = apply_config(config, "D", *reversed(method_setup("D")))
    assert (recipe.lr, recipe.epochs, recipe.seed) == (2e-4, 100, 9)    # the method's entry last
    assert (model.dropout, model.init, model.seed) == (0.1, "first", 9)  # seed: in both
    model, recipe = apply_config(config, "E", Recipe(), None)
    assert model is None and recipe.lr == 5e-4
    assert [p.name for p in path.parent.iterdir()] == ["tuned.json"]    # no temporary left


@pytest.mark.parametrize("content,message", [
    ({"recipe": {"lr": 1e-3}, "tuning": {}}, "unknown key tuning"),
    ({"recipe": {"learning_rate": 1e-3}}, "unknown key recipe.learning_rate"),
    ({"model": {"num_classes": 5}}, "unknown key model.num_classes"),
    ({"methods": {"F": {}}}, "unknown key methods.F"),
    ({"methods": {"D": {"rate": 0.1}}}, "unknown key methods.D.rate"),
    ({"methods": {"D": {"dropout": 1.5}}}, r"methods.D\).*dropout"),
    ({"recipe": {"epochs": 0}}, "epochs must be at least 1"),
    ([1, 2], "JSON object"),
])
def test_bad_config_files_name_the_file(tmp_path, content, message):
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(content))
    with pytest.raises(ConfigError, match=f"bad.json.*{message}"):
        load_config_file(path)


def test_unreadable_config_files(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_config_file(tmp_path / "missing.json")
    (tmp_path / "broken.json").write_text("{")
    with pytest.raises(ConfigError, match="broken.json"):
        load_config_file(tmp_path / "broken.json")
    with pytest.raises(ConfigError, match="unknown key recipe.lrate"):
        write_config_file(tmp_path / "x.json", recipe={"lrate": 1})
    assert not (tmp_path / "x.json").exists()


def test_method_file_and_typed_options_in_this_order(tmp_path):
    """The command line's two-pass parse: defaults < --method < --config < typed options."""
    from rrrnet.cli import model_config, parse, recipe
    config = tmp_path / "c.json"
    config.write_text(json.dumps({"recipe": {"lr": 0.002, "epochs": 50},
                                  "methods": {"D": {"dropout": 0.2}}}))
    base = ["fit", "data", "--out", "run", "--arch", "resnet18", "--weights", "none"]

    def parsed(*argv):
        args = parse([*base, *argv])
        return model_config(args), recipe(args)
    model, rec = parsed("--method", "D", "--config", str(config), "--epochs", "5", "--init", "first",
                        "--branches", "1")
    assert (model.arch, model.blocks, model.branches, model.init) == ("resnet18", (1, 1, 1, 1), 1,
                                                                      "first")
    assert model.dropout == 0.2                             # the file's entry for D
    assert (rec.epochs, rec.lr) == (5, 0.002)               # typed epochs win, the file's lr
    model, _ = parsed("--method", "D", "--config", str(config), "--dropout", "0.4")
    assert model.dropout == 0.4                             # typed dropout wins over the file
    model, _ = parsed("--dropout", "0.4")
    assert (model.branches, model.dropout) == (8, 0.4)      # a custom model
    model, rec = parsed("--method", "A")
    assert (model.split_at, model.freeze_stump, rec.augment_ops) == ("fc", True, 0)
    model, _ = parsed("--method", "B")
    assert model.freeze_stump is False                      # not an option: set by the method
    with pytest.raises(ConfigError, match="--method C sets --blocks, --branches itself"):
        parsed("--method", "C", "--branches", "2", "--blocks", "2,2,2,2")
    with pytest.raises(ConfigError, match="method D's rate"):
        parsed("--method", "E", "--dropout", "0.3")


# --- command line ------------------------------------------------------------------------------

def test_fit_method_c_from_the_command_line(tmp_path, capsys):
    root = make_meta_album(tmp_path / "data", classes=3, per_class=4)
    cfg = tmp_path / "tuned.json"
    write_config_file(cfg, recipe={"lr": 0.002, "epochs": 9, "weight_decay": 0.05})
    run = tmp_path / "run"
    code = main(["fit", str(root), "--out", str(run), "--method", "C", "--arch", "resnet18",
                 "--weights", "none", "--config", str(cfg), "--epochs", "1", "--ema-epochs", "0",
                 "--warm-stump-epochs", "1", "--image-size", "32", "--batch-size", "8",
                 "--train", "2", "--test", "2", "--seed", "4", "-q"])
    out = capsys.readouterr().out
    assert code == 0 and "method C" in out and "test error" in out
    saved = json.loads((run / "config.json").read_text())
    assert (saved["model"]["blocks"], saved["model"]["branches"]) == ([1, 1, 1, 1], 1)
    assert (saved["model"]["arch"], saved["model"]["seed"]) == ("resnet18", 4)
    assert saved["recipe"]["epochs"] == 1 and saved["recipe"]["lr"] == 0.002  # typed, file
    assert saved["recipe"]["weight_decay"] == 0.05 and saved["recipe"]["ensemble"] == "naive"
    assert (run / "model.pt").exists()
