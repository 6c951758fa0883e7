"""int8 quantization (rrrnet.quantize): a tiny trained run, quantized, agrees with fp32 and
round-trips through latency, predict and evaluate."""
import json

import pytest
import torch

from conftest import make_meta_album
from rrrnet.cli import main

pytest.importorskip("onnxruntime", reason="pip install 'rrrnet[export]'")


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root = tmp_path_factory.mktemp("q")
    data = make_meta_album(root / "data", classes=4, per_class=12)
    assert main(["fit", str(data), "--out", str(root / "run"), "--arch", "resnet18",
                 "--blocks", "1,1,1,1", "--branches", "2", "--weights", "none", "--epochs", "3",
                 "--ema-epochs", "1", "--warm-stump-epochs", "1", "--image-size", "32",
                 "--batch-size", "8", "--train", "6", "--test", "6", "-q"]) == 0
    return root / "run", data


def test_int8_agrees_with_fp32_and_is_smaller(run, capsys):
    from rrrnet.data import ImageDataset, load_dataset, micro_split
    from rrrnet.model import load
    from rrrnet.quantize import QuantizedModel, quantize_run
    folder, data = run
    report = quantize_run(folder, folder.parent / "model.int8.onnx", images=24, latency_runs=3)
    assert report["bytes_int8"] < 0.5 * report["bytes_fp32"]
    assert abs(report["error_int8"] - report["error_fp32"]) <= 2 / 24   # 24 test images
    assert report["batch_1"]["int8_ms"] > 0 and report["batch_32"]["speedup"] > 0
    saved = json.loads((folder.parent / "model.int8.report.json").read_text())
    assert saved["error_int8"] == report["error_int8"]
    int8, fp32 = QuantizedModel(folder.parent / "model.int8.onnx"), load(folder / "model.pt").eval()
    assert int8.classes == ["class_0", "class_1", "class_2", "class_3"] and int8.image_size == 32
    split = micro_split(load_dataset(data), train=6, test=6)
    from rrrnet.data import normalize
    x = torch.stack([normalize(img) for img, _ in ImageDataset(split.test, size=32)])
    with torch.no_grad():
        agree = (int8.predict_proba(x).argmax(-1) == fp32.predict_proba(x).argmax(-1)).float()
    assert agree.mean() >= 0.8 and int8(x).shape == (2, 24, 4)


def test_the_int8_file_round_trips_through_latency_predict_evaluate(run, capsys):
    folder, data = run
    path = folder.parent / "cli.onnx"
    assert main(["quantize", str(folder), "--out", str(path), "--images", "16", "--runs", "0",
                 "--json"]) == 0
    assert "error_int8" in json.loads(capsys.readouterr().out)
    assert main(["latency", str(path), "--runs", "3", "--warmup", "1", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["image_size"] == 32
    assert main(["predict", str(path), str(data / "images" / "c0_0.png"), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)[0]["prediction"].startswith("class_")
    assert main(["evaluate", str(path), str(data), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["images"] == 24
    assert (folder.parent / "cli.evaluate" / "data-test.json").is_file()
    assert main(["quantize", str(folder), "--out", str(folder.parent / "x.pt")]) == 2
    assert "ending in .onnx" in capsys.readouterr().err
