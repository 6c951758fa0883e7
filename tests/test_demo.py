import csv
import json
from pathlib import Path

import pytest

import rrrnet.demo as demo
from conftest import make_meta_album
from rrrnet.model import ModelConfig
from rrrnet.train import Recipe


def test_embedded_dataset_is_installed_with_the_package():
    root = demo.demo_data()
    assert (root / "labels.csv").is_file() and (root / "info.json").is_file()
    assert len(list((root / "images").glob("*.jpg"))) == 800


def test_demo_methods_are_the_papers_e_and_a():
    methods = demo.methods(demo.DemoBudget(), seed=0)
    (e_config, e_recipe), (a_config, a_recipe) = methods.values()
    assert (e_config.blocks, e_config.branches, e_config.split_at) == ((1, 1, 1, 1), 8, "layer3")
    assert (a_config.blocks, a_config.branches, a_config.split_at) == ((3, 8, 36, 3), 1, "fc")
    assert a_recipe.augment_ops == 0 and e_recipe.augment_ops == 2


def test_demo_writes_a_side_by_side_report(tmp_path, monkeypatch):
    data = make_meta_album(tmp_path / "data", classes=3, per_class=40, size=32)
    monkeypatch.setattr(demo, "demo_data", lambda: data)
    monkeypatch.setattr(demo, "find_local", lambda arch: None)  # nothing pretrained here
    tiny = Recipe(epochs=1, ema_epochs=0, warm_stump_epochs=1, image_size=32, batch_size=16)
    monkeypatch.setattr(demo, "methods", lambda budget, seed: {
        "E: tiny RRR-Net": (ModelConfig(arch="resnet18", branches=4), tiny),
        "A: tiny last layer": (ModelConfig(arch="resnet18", branches=1, split_at="fc"),
                               Recipe(**{**tiny.__dict__, "augment_ops": 0})),
    })
    timed = []
    real_latency = demo.latency
    monkeypatch.setattr(demo, "latency", lambda source, **kw: timed.append(
        (source, kw)) or real_latency(source, **kw))
    with pytest.warns(UserWarning, match="random initialisation"):
        rows = demo.run_demo(tmp_path / "out", progress=False, latency_runs=3)
    # timed after training, each run as `rrrnet latency RUN --threads 2` times it
    from rrrnet import deploy
    assert real_latency is deploy.latency  # the function `rrrnet latency` calls
    assert [(Path(s).name, kw) for s, kw in timed] == [("E", {"runs": 3, "threads": 2}),
                                                        ("A", {"runs": 3, "threads": 2})]
    assert [r["method"] for r in rows] == ["E: tiny RRR-Net", "A: tiny last layer"]
    assert all(r["weights"] == "none" for r in rows)
    assert rows[0]["params"] < rows[1]["params"] * 10 and rows[0]["macs"] > 0
    assert rows[0]["cpu_ms_per_image"] > 0 and 0 <= rows[0]["error"] <= 1
    out = tmp_path / "out"
    assert json.loads((out / "results.json").read_text()) == rows
    with open(out / "results.csv") as f:
        assert [r["method"] for r in csv.DictReader(f)] == [r["method"] for r in rows]
    report = (out / "report.md").read_text()
    assert "| E: tiny RRR-Net |" in report and "weights: none" in report
    assert (out / "comparison.png").stat().st_size > 10_000
    pages = demo.write_pages(rows, latency_runs=3)   # what `rrrnet demo` ends with
    assert [p.name for p in pages] == ["report.html", "MODEL_CARD.md"] * 2
    assert all(p.stat().st_size > 1000 for p in pages)
