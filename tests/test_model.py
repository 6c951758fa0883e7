import json

import pytest
import torch

from conftest import randomize_
import rrrnet
from rrrnet.backbone import resnet
from rrrnet.errors import ConfigError, WeightsError
from rrrnet.model import ModelConfig, build, load, save


def test_build_reuses_reduces_and_recycles_a_checkpoint(tmp_path):
    template = randomize_(resnet("resnet50"))
    path = tmp_path / "backbone.pth"
    torch.save({"state_dict": {"module." + k: v for k, v in template.state_dict().items()}}, path)
    model = build(arch="resnet50", blocks=(1, 1, 1, 1), branches=4, num_classes=10, weights=path)
    assert model.config.shift == model.plan.shift and model.config.weights == str(path)
    # the stump is the template's first blocks, unchanged
    for key, value in model.stump.state_dict().items():
        assert torch.equal(value, template.state_dict()[key]), key
    # the first branch's first conv is the first rows of the template's conv4_1
    w = model.plan.branch_planes[0]
    assert torch.equal(model.branch_states()[0]["layer3.0.conv1.weight"],
                       template.state_dict()["layer3.0.conv1.weight"][:w])


def test_build_refuses_a_checkpoint_of_another_architecture(tmp_path):
    path = tmp_path / "r18.pth"
    torch.save(resnet("resnet18").state_dict(), path)
    with pytest.raises(WeightsError, match="resnet18"):
        build(arch="resnet50", weights=path)


def test_save_and_load_round_trip(tmp_path):
    model = build(arch="resnet18", blocks=(1, 1, 2, 1), branches=3, num_classes=4, weights="none",
                  seed=5)
    randomize_(model.branches, seed=9)
    path = save(model, tmp_path / "run" / "model.pt")
    assert [p.name for p in path.parent.iterdir()] == ["model.pt"]  # no temp file left behind
    again = load(path)
    assert again.config == model.config and again.config.shift == model.plan.shift
    x = torch.randn(2, 3, 32, 32)
    torch.testing.assert_close(again.eval()(x), model.eval()(x))
    looped = load(path, fused=False)
    assert not looped.fused
    torch.testing.assert_close(looped.eval()(x), model(x), atol=1e-5, rtol=1e-5)
    # a looped model saves in the same (fused) layout
    save(looped, tmp_path / "looped.pt")
    torch.testing.assert_close(load(tmp_path / "looped.pt").eval()(x), model(x), atol=1e-5, rtol=1e-5)


def test_load_refuses_other_files(tmp_path):
    plain = tmp_path / "plain.pt"
    torch.save(resnet("resnet18").state_dict(), plain)
    with pytest.raises(WeightsError, match="not an rrrnet model"):
        load(plain)
    with pytest.raises(WeightsError, match="does not exist"):
        load(tmp_path / "missing.pt")
    model = build(arch="resnet18", blocks=(1, 1, 1, 1), branches=2, num_classes=3, weights="none")
    path = save(model, tmp_path / "m.pt")
    payload = torch.load(path, weights_only=True)
    payload["config"]["num_classes"] = 5  # configuration and weights disagree
    torch.save(payload, path)
    with pytest.raises(WeightsError, match="does not match"):
        load(path)


def test_config_round_trips_through_json():
    config = ModelConfig(arch="resnet50", blocks="1.2.1.1", branches=4, shift=2)
    assert config.blocks == (1, 2, 1, 1)
    assert ModelConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config
    with pytest.raises(ConfigError, match="unknown"):
        ModelConfig.from_dict({"arch": "resnet50", "width": 3})


@pytest.mark.parametrize("kwargs", [dict(blocks=(1, 1, 1, 9)), dict(branches=0), dict(init="sliced"),
                                    dict(split_at="conv1"), dict(num_classes=0), dict(arch="vgg16")])
def test_bad_configurations(kwargs):
    with pytest.raises(ConfigError):
        ModelConfig(**kwargs)


def test_public_api():
    assert rrrnet.cost(branches=8).macs == rrrnet.cost().macs
    model = rrrnet.build(arch="resnet18", blocks=(1, 1, 1, 1), branches=2, num_classes=3,
                         weights="none")
    assert isinstance(model, rrrnet.BranchedResNet) and model.eval()(torch.randn(1, 3, 32, 32)).shape == (2, 1, 3)


@pytest.mark.parametrize("derive", ["looped", "folded", "trajectory", "loaded_looped"])
def test_every_derived_model_carries_the_config(tmp_path, derive):
    """The configuration is a constructor argument: models derived from a built one carry it,
    and each saves and loads back to the same configuration."""
    from rrrnet.ensembles import trajectory_model
    from rrrnet.recycle import convert
    from rrrnet.train import with_folded_stump
    model = build(ModelConfig(arch="resnet18", blocks=(1, 1, 1, 1), branches=3, num_classes=4,
                              weights="none"))
    assert model.config.shift == model.plan.shift is not None
    if derive == "looped":
        derived = convert(model, fused=False)
    elif derive == "folded":
        derived = with_folded_stump(model, channels_last=False)
    elif derive == "trajectory":
        derived = trajectory_model(model)   # one branch of the 3-branch width, for 3 snapshots
    else:
        save(model, tmp_path / "fused.pt")
        derived = load(tmp_path / "fused.pt", fused=False)
    assert derived.config == model.config
    if derive in ("looped", "loaded_looped"):  # the folded and trajectory models are views
        save(derived, tmp_path / "model.pt")
        again = load(tmp_path / "model.pt")
        assert again.config == model.config and again.config.weights == "none"
        x = torch.randn(2, 3, 32, 32)
        with torch.no_grad():
            torch.testing.assert_close(again.eval()(x), model.eval()(x), rtol=1e-4, atol=1e-4)
