"""Latency measurement: statistics by hand, interleaving, the ``latency`` command and the
inference benchmark. Structure and sanity only: no wall-clock thresholds."""
import importlib.util
import json
from pathlib import Path

import pytest
import torch
from torch import nn

from rrrnet import deploy
from rrrnet.backbone import resnet
from rrrnet.cli import main
from rrrnet.latency import compare_latency, measure_latency, median_ci, paired_ratio, summarize
from rrrnet.errors import ConfigError
from rrrnet.model import ModelConfig

TINY = ModelConfig(arch="resnet18", blocks=(1, 1, 1, 1), branches=4, num_classes=5, weights="none")


def test_median_interval_by_hand():
    # n = 10: P(Binomial(10, 1/2) <= 1) = 11/1024 <= 0.025 < P(<= 2) = 56/1024, so the 95%
    # interval of the median is [x_(2), x_(9)]; n = 6: P(<= 0) = 1/64, so [x_(1), x_(6)].
    assert median_ci([10, 1, 9, 2, 8, 3, 7, 4, 6, 5]) == (5.5, 2.0, 9.0)
    assert median_ci([6, 5, 4, 3, 2, 1]) == (3.5, 1.0, 6.0)
    # n = 5: even [x_(1), x_(5)] covers only 1 - 2/32 < 95%: no interval
    assert median_ci([1, 2, 3, 4, 5]) == (3, None, None)
    s = summarize([4.0, 1.0, 2.0, 3.0])
    assert s == {"median_ms": 2.5, "ci95_ms": [None, None], "mean_ms": 2.5, "min_ms": 1.0,
                 "max_ms": 4.0, "runs": 4}


def test_paired_ratio_by_hand():
    r = paired_ratio([2.0, 9.0, 4.0, 12.0, 5.0, 6.0], [1.0, 3.0, 2.0, 4.0, 2.5, 2.0])
    # per-round ratios 2, 3, 2, 3, 2, 3 -> median 2.5, interval [min, max] for n = 6
    assert r == {"ratio": 2.5, "ci95": [2.0, 3.0]}


class Recorder(nn.Module):
    """Appends its name to a shared log at every call: shows the measurement order."""

    def __init__(self, name, log):
        super().__init__()
        self.name, self.log = name, log

    def forward(self, x):
        self.log.append(self.name)
        return x.sum()


def test_compare_interleaves_and_rotates():
    log = []
    r = compare_latency({"a": Recorder("a", log), "b": Recorder("b", log), "c": Recorder("c", log)},
                        image_size=4, batch_size=2, runs=6, warmup=1, threads=1, keep_times=True)
    assert log[:3] == ["a", "b", "c"]                                # warm-up
    assert log[3:] == list("abc" "bca" "cab" "abc" "bca" "cab")      # every round, rotated
    assert set(r["ratios"]) == {"b", "c"} and r["ratios"]["b"]["reference"] == "a"
    for name in "abc":
        m = r["models"][name]
        assert m["runs"] == 6 and len(m["times_ms"]) == 6
        assert m["min_ms"] <= m["ci95_ms"][0] <= m["median_ms"] <= m["ci95_ms"][1] <= m["max_ms"]
    ratio = r["ratios"]["b"]
    paired = paired_ratio(r["models"]["a"]["times_ms"], r["models"]["b"]["times_ms"])
    assert ratio["ratio"] == paired["ratio"] > 0
    assert (r["batch_size"], r["device"], r["threads"], r["timer"]) == (2, "cpu", 1, "perf_counter")


def test_measure_latency_keeps_its_signature_and_restores_threads():
    torch.set_num_threads(2)
    model = resnet("resnet18", (1, 1, 1, 1), num_classes=3)
    r = measure_latency(model, image_size=32, batch_size=2, runs=6, warmup=1, device="cpu",
                        threads=1)
    assert torch.get_num_threads() == 2
    assert {"median_ms", "ci95_ms", "runs", "device", "batch_size", "threads"} <= set(r)
    assert r["runs"] == 6 and r["batch_size"] == 2 and r["threads"] == 1 and r["device"] == "cpu"
    assert 0 < r["ci95_ms"][0] <= r["median_ms"] <= r["ci95_ms"][1]
    with pytest.raises(ConfigError, match="runs >= 1"):
        measure_latency(model, image_size=32, runs=0)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cuda_latency_is_timed_with_events():
    r = measure_latency(resnet("resnet18", (1, 1, 1, 1)), image_size=32, runs=6, warmup=2,
                        device="cuda")
    assert r["timer"] == "cuda events" and r["device"] == "cuda" and r["median_ms"] > 0


def test_latency_against_resnet_interleaved():
    r = deploy.latency(TINY, image_size=32, runs=6, warmup=1, threads=1, compare="resnet18")
    assert r["compare"]["arch"] == "resnet18" and r["compare"]["num_classes"] == 5
    assert r["compare"]["runs"] == r["runs"] == 6
    assert r["ratio_ci95"][0] <= r["ratio"] <= r["ratio_ci95"][1]
    assert r["options"] == deploy.DEFAULTS and r["execution"] == "fused"
    assert r["model"].startswith("resnet18 ResNet_1.1.1.1, 4 branches")
    with pytest.raises(ConfigError, match="--compare"):
        deploy.latency(TINY, image_size=32, runs=1, compare="vgg16")


def test_latency_command_json(capsys):
    args = ["latency", "--arch", "resnet18", "--branches", "4", "--num-classes", "5",
            "--image-size", "32", "--batch-size", "2", "--runs", "6", "--warmup", "1",
            "--threads", "1", "--looped", "--no-fold-bn"]
    assert main([*args, "--json"]) == 0
    r = json.loads(capsys.readouterr().out)
    assert {"median_ms", "ci95_ms", "runs", "device", "batch_size"} <= set(r)
    assert (r["runs"], r["batch_size"], r["device"], r["image_size"]) == (6, 2, "cpu", 32)
    assert len(r["ci95_ms"]) == 2 and r["execution"] == "looped"
    assert r["options"]["fold_bn"] is False and r["options"]["subsample"] is True
    assert main(args[:-2] + ["--runs", "3", "--compare", "resnet18"]) == 0
    out = capsys.readouterr().out
    assert "median" in out and "resnet18 (interleaved)" in out and "too few runs" in out
    assert main(args + ["--runs", "0"]) == 2                         # a clear user error


def load_benchmark():
    path = Path(__file__).parents[1] / "benchmarks" / "inference.py"
    spec = importlib.util.spec_from_file_location("inference_benchmark", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_inference_benchmark_runs(tmp_path, capsys):
    bench = load_benchmark()
    out = tmp_path / "bench.json"
    result = bench.main(["--image-size", "32", "--runs", "2", "--batch-runs", "1",
                         "--batch-sizes", "1,2", "--warmup", "0", "--threads", "1",
                         "--json", str(out)])
    text = capsys.readouterr().out
    assert "ResNet-152 / RRR-Net-8" in text and "looped / fused" in text
    saved = json.loads(out.read_text())
    assert set(saved) == {"args", "macs", "batch1", "batch2"}
    assert set(result["batch1"]["models"]) == {"ResNet-152", "RRR-Net-8 fused",
                                               "RRR-Net-8 looped", "ResNet_1.1.1.1"}
    macs = result["macs"]
    assert 6 < macs["ResNet-152"] / macs["RRR-Net-8 fused"] < 8       # about 6.9x
    assert all(p["ratio"] > 0 for p in result["batch2"]["pairs"].values())
