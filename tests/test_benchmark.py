"""The benchmark grid: cells, resumption, results.csv, summaries and figures (tiny models)."""
import csv
import dataclasses
import json
import math

import numpy as np
import pytest
from conftest import make_meta_album
from PIL import Image

from rrrnet import train
from rrrnet.training import loop
from rrrnet.cli import main
from rrrnet.cost import model_cost
from rrrnet.errors import ConfigError, DataError, RunError
from rrrnet.experiments import benchmark as bench
from rrrnet.model import ModelConfig, load
from rrrnet.report.benchmark_figures import FIGURES
from rrrnet.report.stats import method_summary
from rrrnet.train import Recipe


# The real methods [A] and [E] on a ResNet-18 template, untrained, 32 px, the quick recipe of a
# configuration file (as `rrrnet tune` writes them).
QUICK_CONFIG = {"recipe": {"image_size": 32, "warm_stump_epochs": 1, "eval_every": 0,
                           "augment_ops": 0, "batch_size": 16}}
TINY_ARGS = ["--methods", "A,E", "--seeds", "1", "--arch", "resnet18", "--weights", "none",
             "--train", "4", "--test", "2", "--latency-runs", "2"]


def tiny_options(**kw):
    return bench.BenchmarkOptions(**{"methods": ("A", "E"), "seeds": (0,), "train": 4, "test": 2,
                                     "latency_runs": 2, "arch": "resnet18", "weights": "none",
                                     "config": QUICK_CONFIG, "epochs": 1, **kw})


def read_csv(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_grid_resumes_interrupted_cell_and_skips_finished_ones(tmp_path, monkeypatch, capsys):
    data = make_meta_album(tmp_path / "shapes", classes=3, per_class=6)
    out = tmp_path / "bench"
    cells = bench.plan_cells([data], out, tiny_options(epochs=2))
    assert [c.key for c in cells] == [("shapes", "A", 0), ("shapes", "E", 0)]
    a, e = cells
    assert (a.model.split_at, a.model.blocks, a.recipe.augment_ops) == ("fc", (2, 2, 2, 2), 0)
    assert (e.model.branches, e.model.blocks, e.recipe.image_size) == (8, (1, 1, 1, 1), 32)
    assert (e.recipe.epochs, e.recipe.ema_epochs) == (2, 1)  # --epochs keeps EMA's share, >= 1
    real_fit = bench.fit

    def interrupted_fit(data, out, model_config, recipe, **kw):
        if model_config.branches == 8:  # E: one epoch, then "Ctrl-C"
            real_fit(data, out, model_config, recipe, stop_after=1, **kw)
            raise KeyboardInterrupt
        return real_fit(data, out, model_config, recipe, **kw)

    monkeypatch.setattr(bench, "fit", interrupted_fit)
    with pytest.raises(KeyboardInterrupt):
        bench.run_cells(cells, out, progress=False)
    assert [r["method"] for r in read_csv(out / "results.csv")] == ["A"]  # A's row kept
    assert (out / "cells/shapes/E/seed0/checkpoint.pt").exists()
    assert not (out / "cells/shapes/E/seed0/row.json").exists()

    fits, epochs = [], []
    monkeypatch.setattr(bench, "fit", lambda *a, **kw: fits.append(a[0]) or real_fit(*a, **kw))
    real_epoch = loop.begin_epoch
    monkeypatch.setattr(loop, "begin_epoch",
                        lambda *a, **kw: epochs.append(1) or real_epoch(*a, **kw))
    result = bench.run_cells(cells, out, progress=False)
    assert (result.trained, result.skipped, result.failed) == (1, 1, {})
    assert len(fits) == 1 and len(epochs) == 1  # only E, only its second epoch

    rows = read_csv(out / "results.csv")
    assert list(rows[0]) == list(bench.RESULT_COLUMNS)
    assert [(r["dataset"], r["method"], r["seed"]) for r in rows] == [
        ("shapes", "A", "0"), ("shapes", "E", "0")]
    for row in rows:
        run = out / row["run"]
        metrics = json.loads((run / "metrics.json").read_text())
        counted = model_cost(load(run / "model.pt"), 32)
        assert float(row["error"]) == pytest.approx(metrics["error"])
        assert (int(row["params"]), int(row["macs"])) == (counted.params, counted.macs)
        assert float(row["cpu_ms"]) > 0
        assert row["gpu_ms"] == "" or float(row["gpu_ms"]) > 0  # measured only with a GPU
        assert int(row["epochs"]) == 2 and row["branches"] == ("8" if row["method"] == "E" else "1")

    fits.clear()
    again = bench.run_cells(cells, out, progress=False)
    assert (again.trained, again.skipped, fits) == (0, 2, [])
    assert again.rows == result.rows

    # The command line plans the same cells (config file, seeds, --epochs): nothing to train.
    config = tmp_path / "quick.json"
    config.write_text(json.dumps(QUICK_CONFIG))
    assert main(["benchmark", str(data), "--out", str(out), "--epochs", "2", "--config",
                 str(config), "--quiet", *TINY_ARGS]) == 0
    assert "0 cells trained, 2 read back" in capsys.readouterr().out
    assert fits == [] and (out / "summary.md").exists() and (out / "figures").is_dir()

    # How often the history is scored changes no weight: such a cell is read back.
    scored = dataclasses.replace(cells[0], recipe=dataclasses.replace(cells[0].recipe,
                                                                      eval_every=3))
    assert bench.run_cells([scored], out, progress=False).skipped == 1
    # A finished cell's row belongs to its configuration: other options are refused.
    other = dataclasses.replace(cells[0], recipe=dataclasses.replace(cells[0].recipe, lr=0.5))
    with pytest.raises(RunError, match="another configuration"):
        bench.run_cells([other], out, progress=False)


def fake_row(cell):
    return {"dataset": cell.dataset, "method": cell.method, "seed": cell.seed,
            "error": 0.1 * cell.seed, "params": 10, "macs": 20, "cpu_ms": 1.5}


def fake_cells(tmp_path, keys):
    data = train.DataSpec(str(tmp_path))
    return [bench.Cell(d, m, s, ModelConfig(arch="resnet18"), Recipe(), data,
                       str(bench.cell_dir(tmp_path / "out", d, m, s))) for d, m, s in keys]


def test_failed_cells_are_reported_and_the_others_kept(tmp_path):
    cells = fake_cells(tmp_path, [("d1", "A", 0), ("d1", "E", 0), ("d1", "E", 1)])

    def run(cell):
        if cell.method == "A":
            raise DataError("d1/labels.csv is broken")
        return fake_row(cell)

    result = bench.run_cells(cells, tmp_path / "out", run=run, progress=False)
    assert result.failed == {("d1", "A", 0): "d1/labels.csv is broken"}
    assert [(r["method"], r["seed"]) for r in bench.read_results(tmp_path / "out")] == [
        ("E", 0), ("E", 1)]
    # The failed cell is retried by the next call, the finished ones are not.
    seen = []
    again = bench.run_cells(cells, tmp_path / "out", run=lambda c: seen.append(c.key) or
                            fake_row(c), progress=False)
    assert seen == [("d1", "A", 0)] and (again.trained, again.skipped) == (1, 2)


def test_dataset_names_must_be_unique(tmp_path):
    for parent in ("x", "y"):
        (tmp_path / parent / "birds").mkdir(parents=True)
    with pytest.raises(ConfigError, match="birds"):
        bench.dataset_names([tmp_path / "x/birds", tmp_path / "y/birds"])
    with pytest.raises(ConfigError, match="not found"):
        bench.dataset_names([tmp_path / "missing"])


def test_scaled_epochs_keeps_the_ema_share():
    recipe = bench.scaled_epochs(Recipe(), 30)  # paper: EMA over 60 of 300 epochs
    assert (recipe.epochs, recipe.ema_epochs) == (30, 6)
    assert bench.scaled_epochs(Recipe(ema_epochs=0), 5).ema_epochs == 0
    assert bench.scaled_epochs(Recipe(), 1).ema_epochs == 1


def synthetic_rows(datasets=6, seeds=3):
    rng = np.random.default_rng(0)
    costs = {"A": (58e6, 3.8e9, 96.0), "C": (8e6, 0.48e9, 18.0), "E": (9e6, 0.6e9, 22.0)}
    base = {"A": 0.36, "C": 0.40, "E": 0.34}
    return [{"dataset": f"set{d}", "method": m, "seed": s,
             "error": float(base[m] + 0.1 * d / datasets + rng.normal(0, 0.02)),
             "params": costs[m][0], "macs": costs[m][1], "cpu_ms": costs[m][2], "gpu_ms": None}
            for d in range(datasets) for m in costs for s in range(seeds)]


def test_report_writes_summaries_and_figures(tmp_path):
    rows = synthetic_rows()
    bench.write_results(tmp_path, rows)
    assert main(["benchmark", "--report-only", str(tmp_path), "--quiet"]) == 0

    summary = {r["method"]: r for r in read_csv(tmp_path / "summary.csv")}
    assert set(summary) == {"A", "C", "E"}
    means = {}
    for m in "ACE":
        per_dataset = [np.mean([r["error"] for r in rows if r["method"] == m and
                                r["dataset"] == f"set{d}"]) for d in range(6)]
        means[m] = per_dataset
        assert float(summary[m]["mean_error"]) == pytest.approx(np.mean(per_dataset))
        assert float(summary[m]["median_error"]) == pytest.approx(np.median(per_dataset))
    assert summary["E"]["wilcoxon_E_less_p"] == "" and summary["A"]["gpu_ms"] == ""
    # E is lower than C on every dataset: exact p = 1/2^6.
    assert all(e < c for e, c in zip(means["E"], means["C"]))
    assert float(summary["C"]["wilcoxon_E_less_p"]) == pytest.approx(1 / 64)

    per_dataset = read_csv(tmp_path / "per_dataset.csv")
    assert len(per_dataset) == 18 and {r["seeds"] for r in per_dataset} == {"3"}
    data = json.loads((tmp_path / "summary.json").read_text())  # strict JSON: no NaN
    assert data["wilcoxon"]["C"]["n"] == 6
    assert "| C | 6 |" in (tmp_path / "summary.md").read_text()

    for name in FIGURES.values():
        path = tmp_path / "figures" / name
        with Image.open(path) as image:
            assert image.format == "PNG" and min(image.size) > 200
            # not a blank canvas: many distinct colours
            assert len(image.convert("RGB").getcolors(1 << 20)) > 20


def test_report_only_needs_results(tmp_path, capsys):
    assert main(["benchmark", "--report-only", str(tmp_path)]) == 2
    assert "results.csv not found" in capsys.readouterr().err
    assert main(["benchmark", "--quiet"]) == 2  # neither datasets nor --report-only


def test_eval_every_reaches_the_cells_and_is_checked(tmp_path, capsys):
    data = make_meta_album(tmp_path / "shapes", classes=2, per_class=6)
    cells = bench.plan_cells([data], tmp_path / "out", tiny_options())
    assert {c.recipe.eval_every for c in cells} == {0}  # the default: only the final model
    cells = bench.plan_cells([data], tmp_path / "out", tiny_options(eval_every=5))
    assert {c.recipe.eval_every for c in cells} == {5}
    assert main(["benchmark", str(data), "--out", str(tmp_path / "out"), "--eval-every", "-1",
                 "--quiet"]) == 2
    assert "--eval-every must be 0" in capsys.readouterr().err


def test_one_method_one_dataset_still_reports(tmp_path):
    rows = [r for r in synthetic_rows(datasets=1, seeds=2) if r["method"] == "E"]
    files = bench.build_report(tmp_path, rows)
    assert all(f.exists() for f in files)
    assert math.isnan(method_summary(rows)[0]["wilcoxon_E_less_p"])


def test_ood_adds_uncertainty_columns_to_finished_cells_and_tests_them(tmp_path, capsys):
    """--ood on a finished grid evaluates (not retrains) its cells and adds the uncertainty
    columns and their Wilcoxon tests; D's members can be Monte-Carlo dropout passes."""
    data = [make_meta_album(tmp_path / name, classes=3, per_class=6, seed=s)
            for name, s in (("one", 0), ("two", 1))]
    ood = make_meta_album(tmp_path / "other", classes=2, per_class=4, seed=7)
    out = tmp_path / "bench"
    options = tiny_options(methods=("D", "E"), latency_runs=0)
    bench.run_benchmark(data, out, options)
    trained = {p: p.stat().st_mtime_ns for p in out.glob("cells/*/*/seed0/model.pt")}
    result = bench.run_benchmark(data, out, dataclasses.replace(options, ood=(str(ood),),
                                                                mc_samples=3))
    assert {p: p.stat().st_mtime_ns for p in out.glob("cells/*/*/seed0/model.pt")} == trained
    for row in result.rows:
        for column in bench.UNCERTAINTY_COLUMNS:
            if column != "ece_calibrated":          # no validation split here
                assert 0 <= row[column] <= 2, (column, row)
    summary = read_csv(out / "uncertainty_summary.csv")
    metrics = {(r["metric"], r["method"]) for r in summary}
    assert ("OOD AUROC, mutual information", "D") in metrics and len(summary) == 10
    assert "## Uncertainty" in (out / "summary.md").read_text()
