"""Deployment rewrites (BatchNorm folding, subsampled downsamples, channels-last), export to
TorchScript/ONNX with the run's class names and preprocessing inside, and the fast path of
``predict``."""
import json

import pytest
import torch
from PIL import Image

from conftest import TINY_FUSED as TINY
from conftest import images, randomize_, relative_error  # noqa: F401
from rrrnet import deploy, fold
from rrrnet.backbone import resnet
from rrrnet.cli import main
from rrrnet.errors import ConfigError, RunError
from rrrnet.model import save
from rrrnet.recycle import convert
from rrrnet.predict import predict

@pytest.mark.parametrize("options", [{}, {"channels_last": False}, {"subsample": False},
                                     {"fold_bn": False}])
@torch.no_grad()
def test_prepare_matches_the_trained_model(model, options):
    x = images()
    prepared = deploy.prepare(model, **options)
    assert relative_error(prepared(x), model(x)) < 1e-5
    assert not prepared.training and not any(p.requires_grad for p in prepared.parameters())
    subsampled = [m for m in prepared.modules() if isinstance(m, fold.SubsampledConv)]
    # three strided downsamples: layer2 (stump), layer3 (shared input), layer4 (grouped)
    assert len(subsampled) == (0 if options.get("subsample") is False else 3)
    assert all(m.conv.stride == (1, 1) and m.step == (2, 2) for m in subsampled)
    nhwc = prepared.stump.conv1.weight.is_contiguous(memory_format=torch.channels_last)
    assert nhwc == options.get("channels_last", deploy.DEFAULTS["channels_last"])


@torch.no_grad()
def test_prepare_looped_branches_and_plain_resnet(model):
    x = images()
    looped = convert(model, fused=False)
    assert relative_error(deploy.prepare(looped)(x), model(x)) < 1e-5
    basic = randomize_(resnet("resnet18", (1, 1, 1, 1), num_classes=7)).eval()
    prepared = deploy.prepare(basic)
    assert fold.batchnorm_count(prepared) == 0
    assert relative_error(prepared(x), basic(x)) < 1e-5


def test_compile_failure_is_a_clear_error(model, monkeypatch):
    def broken(module):
        def run(x):
            raise RuntimeError("InvalidCxxCompiler: No working C++ compiler found")
        return run
    monkeypatch.setattr(torch, "compile", broken)
    with pytest.raises(ConfigError, match="C\\+\\+ compiler.*--compile"):
        deploy.prepare(model, compile=True, image_size=32)


@pytest.mark.parametrize("fmt", deploy.FORMATS)
def test_export_matches_pytorch(model, tmp_path, fmt):
    if fmt == "onnx":
        pytest.importorskip("onnxruntime", reason="pip install 'rrrnet[export]'")
    path = tmp_path / f"model.{fmt}"
    r = deploy.export(model, path, fmt, image_size=32)
    assert path.is_file() and r["path"] == str(path) and r["bytes"] == path.stat().st_size
    assert r["max_abs_diff"] <= deploy.TOLERANCE
    x = images(n=5, seed=3)                                        # a batch size not traced
    got = deploy.run_exported(path, fmt, x)
    with torch.no_grad():
        expected = model(x)
    assert got.shape == (TINY.branches, 5, TINY.num_classes)
    assert (got - expected).abs().max().item() <= 1e-4
    assert not list(tmp_path.glob(".*.tmp"))                        # written atomically


def test_export_rejects_unknown_format_and_missing_source(model, tmp_path):
    with pytest.raises(ConfigError, match="--format"):
        deploy.export(model, tmp_path / "m.x", "tflite")
    with pytest.raises(RunError, match="neither a run folder"):
        deploy.export(tmp_path / "missing", None, "onnx")


@pytest.fixture
def run_dir(model, tmp_path):
    """A finished run folder as ``rrrnet fit`` leaves it (model.pt and config.json)."""
    run = tmp_path / "run"
    save(model, run / "model.pt")
    classes = [f"class_{i}" for i in range(TINY.num_classes)]
    (run / "config.json").write_text(json.dumps({"model": model.config.to_dict(),
                                                 "recipe": {"image_size": 32},
                                                 "classes": classes}))
    for i in range(2):
        Image.new("RGB", (40, 40), (60 * i, 120, 200)).save(tmp_path / f"img{i}.png")
    return run


def test_export_cli_from_run_folder(run_dir, capsys):
    pytest.importorskip("onnxruntime", reason="pip install 'rrrnet[export]'")
    assert main(["export", str(run_dir), "--format", "onnx", "--json"]) == 0
    r = json.loads(capsys.readouterr().out)
    assert r["path"] == str(run_dir / "export" / "model.onnx") and r["image_size"] == 32
    assert (run_dir / "export" / "model.onnx").is_file() and r["max_abs_diff"] <= 1e-4
    assert deploy.default_export_path(run_dir / "model.pt", "torchscript") == \
        run_dir / "model.torchscript.pt"
    assert main(["export", str(run_dir / "nothing"), "-f", "onnx"]) == 2


def test_predict_uses_the_fast_model_with_the_same_answers(run_dir, monkeypatch, capsys):
    paths = [str(p) for p in sorted(run_dir.parent.glob("img*.png"))]
    prepared = []
    original = deploy.prepare
    monkeypatch.setattr(deploy, "prepare", lambda m, **kw: prepared.append(kw) or original(m, **kw))
    fast = predict(run_dir, paths, topk=2).rows
    plain = predict(run_dir, paths, topk=2, fold_bn=False, subsample=False,
                    channels_last=False).rows
    assert len(prepared) == 2 and prepared[0] == {"image_size": 32}
    for f, p in zip(fast, plain):
        assert [f["top1_label"], f["top2_label"]] == [p["top1_label"], p["top2_label"]]
        for key in ("top1_probability", "top2_probability", "entropy"):
            assert f[key] == pytest.approx(p[key], abs=1e-5)
    assert main(["predict", str(run_dir), *paths, "--json", "--no-channels-last"]) == 0
    assert prepared[-1]["channels_last"] is False and prepared[-1]["fold_bn"] is True
    assert len(json.loads(capsys.readouterr().out)) == 2
