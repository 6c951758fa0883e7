"""The multi-dataset benchmark: every (dataset, method, seed) cell trained, costed and timed.

Layout of the output folder ``DIR``::

    DIR/benchmark.json                           the grid of the last invocation
    DIR/cells/<dataset>/<method>/seed<k>/        one train.fit run folder per cell, plus
        row.json                                 the cell's finished result row
    DIR/results.csv                              one row per finished cell (all of DIR/cells)
    DIR/summary.csv, per_dataset.csv, summary.json, summary.md
    DIR/figures/fig6..fig9 *.png                 the paper's Figures 6-9

Resumption: a cell whose ``row.json`` exists is read back, never retrained; every other cell
calls ``train.fit(resume=True)``, which returns a finished run as it is and continues an
interrupted one from its last epoch. Each finished cell writes its row and ``results.csv`` is
rebuilt at once, so an interrupted benchmark loses at most the epochs of the cells in flight.
"""
from __future__ import annotations

import csv
import dataclasses
import json
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import torch
from tqdm.auto import tqdm

from ..cost import model_cost
from ..latency import measure_latency
from ..errors import ConfigError, RRRNetError, RunError
from ..model import ModelConfig
from ..options import BenchmarkOptions
from ..report.benchmark_figures import write_figures
from ..report.stats import dataset_intervals, method_summary, wilcoxon_against
from ..run import Run
from ..rundir import holds_folder
from ..io import atomic_write, json_safe, parse_number, write_csv, write_json
from ..recipe import DATA_BEFORE_OPTION, HISTORY_ONLY, with_added_options, without_inert
from ..train import DataSpec, Recipe, fit
from ..training import strategies
from .executors import LocalExecutor

CELL_FORMAT = "rrrnet-benchmark-cell/1"
UNCERTAINTY_COLUMNS = ("brier", "ece_calibrated", "aurc_max_probability", "aurc_entropy",
                       "aurc_mutual_information", "ood_auroc_max_probability",
                       "ood_auroc_entropy", "ood_auroc_mutual_information")
RESULT_COLUMNS = ("dataset", "method", "seed", "error", "val_error", "nll", "ece",
                  *UNCERTAINTY_COLUMNS, "params",
                  "trainable_params", "macs", "cpu_ms", "gpu_ms", "train_seconds",
                  "wall_seconds", "epochs", "arch", "blocks", "branches", "split_at", "weights",
                  "run", "balanced_error", "macro_f1")   # rows before these two: empty


@dataclass(frozen=True)
class Cell:
    """One (dataset, method, seed) training run, everything resolved: picklable for Ray."""

    dataset: str
    method: str
    seed: int
    model: ModelConfig
    recipe: Recipe
    data: DataSpec
    out: str                           # the run folder
    latency_runs: int = 20
    latency_threads: int | None = 2
    progress: bool = False
    ood: tuple[str, ...] = ()          # OOD dataset folders: the row gets uncertainty columns
    mc_samples: int = 0                # Monte-Carlo dropout passes as members (method D)

    @property
    def key(self) -> tuple[str, str, int]:
        return self.dataset, self.method, self.seed

    def fingerprint(self) -> dict[str, Any]:
        """What must match for a saved row to count as this cell's (as train.fit compares)."""
        recipe = {k: v for k, v in without_inert(dataclasses.asdict(self.recipe)).items()
                  if k not in HISTORY_ONLY}
        model = {k: v for k, v in self.model.to_dict().items()
                 if k not in ("weights", "num_classes")}  # classes: the dataset's
        return {"dataset": self.dataset, "method": self.method, "seed": self.seed,
                "model": model, "recipe": recipe, "data": dataclasses.asdict(self.data)}


@dataclass
class BenchmarkResult:
    rows: list[dict[str, Any]]          # every finished cell in DIR, the new ones included
    trained: int                        # cells run by this call
    skipped: int                        # cells read back
    failed: dict[tuple[str, str, int], str] = field(default_factory=dict)
    files: list[Path] = field(default_factory=list)

    def summary(self, reference: str = "E") -> list[dict[str, Any]]:
        """Per method: mean and median error, cost, and the one-tailed Wilcoxon tests of
        ``reference`` against it (:func:`rrrnet.report.stats.method_summary`)."""
        return method_summary(self.rows, reference)


# ---------------------------------------------------------------------------------------------
# Planning: datasets x methods x seeds -> cells.
# ---------------------------------------------------------------------------------------------

def dataset_names(datasets: Sequence[str | os.PathLike]) -> dict[str, str]:
    """``{folder name: absolute path}``; two datasets of the same name would share their cells.
    Absolute, so that the cells mean the same on Ray workers and from another directory."""
    names: dict[str, str] = {}
    for root in datasets:
        path = Path(root).resolve()
        if not path.is_dir():
            raise ConfigError(f"dataset folder {root} not found")
        if path.name in names:
            raise ConfigError(f"two datasets are named {path.name!r} ({names[path.name]} and "
                              f"{path}); results are keyed by folder name: rename or link one")
        names[path.name] = str(path)
    return names


def scaled_epochs(recipe: Recipe, epochs: int) -> Recipe:
    """``recipe`` for ``epochs`` epochs, averaging (EMA) over the same fraction of them."""
    ema = 0 if recipe.ema_epochs == 0 else max(1, round(epochs * recipe.ema_epochs / recipe.epochs))
    return dataclasses.replace(recipe, epochs=epochs, ema_epochs=min(ema, epochs))


def method_config(method: str, seed: int, options: BenchmarkOptions) -> tuple[ModelConfig, Recipe]:
    """A method's model and recipe: its definition, the config file's overrides, ``--epochs``;
    the seed last, so that a tuned file's seed does not make every seed the same run."""
    from .methods import apply_config, method_setup
    model, recipe = method_setup(method, seed=seed, weights=options.weights, arch=options.arch)
    if options.config:
        model, recipe = apply_config(options.config, method, recipe, model)
    if options.epochs is not None:
        recipe = scaled_epochs(recipe, options.epochs)
    return (dataclasses.replace(model, seed=seed),
            dataclasses.replace(recipe, seed=seed, eval_every=options.eval_every))


def plan_cells(datasets: Sequence[str | os.PathLike], out: str | os.PathLike,
               options: BenchmarkOptions = BenchmarkOptions(), progress: bool = False,
               configure: Callable[[str, int, BenchmarkOptions],
                                   tuple[ModelConfig, Recipe]] = method_config) -> list[Cell]:
    """Every cell of the grid, the datasets' splits checked first (a bad dataset fails here,
    not after hours of training)."""
    out = Path(out).resolve()
    cells = []
    for name, root in dataset_names(datasets).items():
        # The authors' micro split with every image kept, as every committed cell was made.
        data = DataSpec(root=root, train=options.train, val=options.val, test=options.test,
                        **DATA_BEFORE_OPTION)
        data.load()  # raises DataError naming the file or the class short of images
        for method in options.methods:
            for seed in options.seeds:
                model, recipe = configure(method, seed, options)
                cells.append(Cell(name, method, seed, model, recipe, data,
                                  str(cell_dir(out, name, method, seed)), options.latency_runs,
                                  options.latency_threads, progress,
                                  tuple(str(Path(p).resolve()) for p in options.ood),
                                  options.mc_samples if strategies.method(method).stochastic
                                  else 0))
    return cells


def cell_dir(out: Path, dataset: str, method: str, seed: int) -> Path:
    return Path(out) / "cells" / dataset / method / f"seed{seed}"


# ---------------------------------------------------------------------------------------------
# One cell: train (or read back), count, time.
# ---------------------------------------------------------------------------------------------

def run_cell(cell: Cell) -> dict[str, Any]:
    """Train the cell (resuming its run folder), then its cost and latency; returns its row."""
    started = time.perf_counter()
    fit(cell.data, cell.out, cell.model, cell.recipe, resume=True, progress=cell.progress)
    run = Run(cell.out).require_finished()   # the cell's run as written, read back
    model, metrics = run.model, run.metrics
    counts = model_cost(model, cell.recipe.image_size)
    config = model.config
    row = {"dataset": cell.dataset, "method": cell.method, "seed": cell.seed,
           "error": metrics["error"],
           "balanced_error": metrics.get("balanced_error"),
           "macro_f1": metrics.get("macro_f1"),
           "val_error": (metrics.get("val") or {}).get("error"),
           "nll": metrics.get("nll"),
           "ece": metrics.get("ece"), "params": counts.params,
           "trainable_params": counts.trainable_params, "macs": counts.macs,
           "cpu_ms": latency_ms(model, cell, "cpu"),
           "gpu_ms": latency_ms(model, cell, "cuda") if torch.cuda.is_available() else None,
           "train_seconds": metrics.get("train_seconds"),
           "epochs": cell.recipe.epochs, "arch": config.arch,
           "blocks": ".".join(map(str, config.blocks)), "branches": config.branches,
           "split_at": config.split_at, "weights": metrics.get("weights_used"),
           "run": Path("cells", cell.dataset, cell.method, f"seed{cell.seed}").as_posix()}
    if cell.ood:
        row.update(uncertainty_columns(model, cell))
    row["wall_seconds"] = round(time.perf_counter() - started, 3)
    return row


def uncertainty_columns(model, cell: Cell) -> dict[str, Any]:
    """The cell's uncertainty columns (rrrnet.uncertainty): Brier, calibrated ECE (with a
    validation split), AURC by score, and OOD AUROC by score averaged over the OOD datasets."""
    from ..data import ImageDataset, load_dataset
    from ..uncertainty import SCORES, uncertainty
    split, size = cell.data.load(), cell.recipe.image_size
    val = ImageDataset(split.val, size=size) if len(split.val) else None
    ood = {Path(p).name: ImageDataset(load_dataset(p), size=size) for p in cell.ood}
    summary, _ = uncertainty(model, ImageDataset(split.test, size=size), val_data=val, ood=ood,
                             mc_samples=cell.mc_samples, image_size=size, device="cpu")
    row = {"brier": summary["brier"], "ece_calibrated": summary["ece_calibrated"]}
    for score in SCORES:
        row[f"aurc_{score}"] = summary["selective"][score]["aurc"]
        aurocs = [s[score]["auroc"] for s in summary["ood"].values()]
        row[f"ood_auroc_{score}"] = sum(aurocs) / len(aurocs)
    return row


def latency_ms(model, cell: Cell, device: str) -> float:
    """Median per-image time at batch 1 of the model as deployed (BatchNorm folded); None with
    ``latency_runs=0`` (time models on an idle machine instead: ``rrrnet latency``)."""
    if cell.latency_runs == 0:
        return None
    from ..deploy import prepare
    ready = prepare(model, device=device, image_size=cell.recipe.image_size)
    threads = cell.latency_threads if device == "cpu" else None
    timing = measure_latency(ready, cell.recipe.image_size, runs=cell.latency_runs,
                             warmup=min(5, cell.latency_runs), device=device, threads=threads)
    return round(timing["median_ms"], 3)


# ---------------------------------------------------------------------------------------------
# The grid: skip finished cells, run the rest on an executor, record each row as it comes.
# ---------------------------------------------------------------------------------------------

def row_path(cell: Cell) -> Path:
    return Path(cell.out) / "row.json"


def finished_row(cell: Cell) -> dict[str, Any] | None:
    """The saved row of a finished cell, None if it has none; another configuration's row is
    an error (the grid would otherwise mix two experiments)."""
    path = row_path(cell)
    if not path.exists():
        return None
    saved = _read_json(path)
    if _comparable(saved.get("cell")) != json.loads(json.dumps(cell.fingerprint())):
        raise RunError(f"{path} holds a result of another configuration of "
                       f"{'/'.join(map(str, cell.key))}; use another --out, or remove "
                       f"{cell.out} to train it again with these options")
    return saved["row"]


def _comparable(fingerprint: Any) -> Any:
    """A saved cell fingerprint without the recipe's history-only options (rows written before
    they were left out of the fingerprint still count), and with the data options it predates
    filled in as the cell was made (:data:`rrrnet.recipe.DATA_BEFORE_OPTION`)."""
    if isinstance(fingerprint, dict) and isinstance(fingerprint.get("recipe"), dict):
        recipe = {k: v for k, v in without_inert(with_added_options(fingerprint["recipe"])).items()
                  if k not in HISTORY_ONLY}
        fingerprint = {**fingerprint, "recipe": recipe}
    if isinstance(fingerprint, dict) and isinstance(fingerprint.get("data"), dict):
        fingerprint = {**fingerprint, "data": {"allow_outside_files": False,
                                               **DATA_BEFORE_OPTION, **fingerprint["data"]}}
    return fingerprint


def save_row(cell: Cell, row: dict[str, Any]) -> None:
    Path(cell.out).mkdir(parents=True, exist_ok=True)
    write_json(row_path(cell), {"format": CELL_FORMAT, "cell": cell.fingerprint(), "row": row})


def run_cells(cells: Sequence[Cell], out: str | os.PathLike, executor=None,
              run: Callable[[Cell], dict[str, Any]] = run_cell,
              progress: bool = True) -> BenchmarkResult:
    """Run the unfinished ``cells`` on ``executor`` (default: here, in order), writing each
    finished cell's row and ``results.csv`` as they arrive; failed cells are reported in the
    result (and left for a later call to retry)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    keys = [c.key for c in cells]
    if len(set(keys)) != len(keys):
        raise ConfigError("the grid lists a (dataset, method, seed) cell twice")
    # A finished cell without the uncertainty columns asked for runs again: its run folder is
    # finished, so that only evaluates it.
    todo = [c for c in cells if finished_row(c) is None
            or (c.ood and finished_row(c).get("ood_auroc_mutual_information") is None)]
    executor = executor or LocalExecutor()
    failed: dict[tuple[str, str, int], str] = {}
    bar = tqdm(total=len(cells), initial=len(cells) - len(todo), desc="benchmark cells",
               disable=not progress)
    try:
        for cell, outcome in executor.map_unordered(run, todo):
            if isinstance(outcome, BaseException):
                failed[cell.key] = _describe(outcome)
                bar.write(f"cell {'/'.join(map(str, cell.key))} failed: {failed[cell.key]}")
            else:
                save_row(cell, outcome)
                write_results(out, collect_rows(out))
            bar.update()
    finally:
        bar.close()
    rows = collect_rows(out)
    write_results(out, rows)
    return BenchmarkResult(rows, trained=len(todo) - len(failed),
                           skipped=len(cells) - len(todo), failed=failed)


def _describe(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return (text[0] if text and isinstance(err, RRRNetError) else
            f"{type(err).__name__}: {text[-1] if text else ''}")


@holds_folder()
def run_benchmark(datasets: Sequence[str | os.PathLike], out: str | os.PathLike,
                  options: BenchmarkOptions = BenchmarkOptions(), executor=None,
                  progress: bool = True) -> BenchmarkResult:
    """Plan, run and summarise the grid: results.csv, the summaries and Figures 6-9 in ``out``.

    Raises :class:`RunError` after writing everything finished if some cells failed."""
    out = Path(out)
    executor = executor or LocalExecutor()
    cells = plan_cells(datasets, out, options, progress=progress and executor.name == "local")
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "benchmark.json", {
        "datasets": {c.dataset: c.data.root for c in cells},
        "options": {k: v for k, v in dataclasses.asdict(options).items() if k != "config"},
        "config": options.config, "executor": executor.name})
    result = run_cells(cells, out, executor, progress=progress)
    if result.rows:
        result.files = [out / "results.csv", *build_report(out, result.rows, options.reference)]
    if result.failed:
        listing = "; ".join(f"{'/'.join(map(str, k))}: {v}" for k, v in result.failed.items())
        raise RunError(f"{len(result.failed)} of {len(cells)} cells failed ({listing}); the "
                       f"others are in {out / 'results.csv'}. Fix the cause and run the same "
                       f"command again: finished cells are not retrained")
    return result


# ---------------------------------------------------------------------------------------------
# Results and report files.
# ---------------------------------------------------------------------------------------------

def collect_rows(out: str | os.PathLike) -> list[dict[str, Any]]:
    """The rows of every finished cell under ``out/cells``, sorted by dataset, method, seed."""
    rows = [_read_json(p)["row"] for p in sorted(Path(out).glob("cells/*/*/seed*/row.json"))]
    return sorted(rows, key=lambda r: (r["dataset"], r["method"], r["seed"]))


def write_results(out: Path, rows: Sequence[dict[str, Any]]) -> None:
    write_table(Path(out) / "results.csv", rows, RESULT_COLUMNS)


def rebuild_report(out: str | os.PathLike, reference: str = "E") -> BenchmarkResult:
    """A finished benchmark's summaries and figures rebuilt from ``out/results.csv``; nothing
    is trained."""
    files = build_report(out, reference=reference)
    return BenchmarkResult(rows=read_results(out), trained=0, skipped=0, files=files)


def read_results(path: str | os.PathLike) -> list[dict[str, Any]]:
    """``results.csv`` back as rows with numbers (empty cells: None)."""
    path = Path(path)
    if path.is_dir():
        path = path / "results.csv"
    if not path.exists():
        raise RunError(f"{path} not found; --report-only needs the folder of a benchmark run")
    with open(path, newline="") as f:
        rows = [{k: parse_number(v) for k, v in row.items()} for row in csv.DictReader(f)]
    missing = {"dataset", "method", "seed", "error"} - set(rows[0] if rows else {})
    if not rows or missing:
        raise RunError(f"{path} has no result rows" + (f" (missing columns: "
                       f"{', '.join(sorted(missing))})" if rows else ""))
    for row in rows:  # names stay names even when they look like numbers
        row["dataset"], row["method"] = str(row["dataset"]), str(row["method"])
    return rows


def build_report(out: str | os.PathLike, rows: Sequence[dict[str, Any]] | None = None,
                 reference: str = "E") -> list[Path]:
    """summary.csv (per method), per_dataset.csv (per dataset and method, 95% t-intervals over
    seeds), summary.json, summary.md and Figures 6-9, from ``rows`` or ``out/results.csv``."""
    out = Path(out)
    rows = list(rows) if rows is not None else read_results(out)
    methods = method_summary(rows, reference)
    per_dataset = dataset_intervals(rows)
    tests = wilcoxon_against(rows, reference) if any(r["method"] == reference for r in rows) else {}
    write_table(out / "summary.csv", methods, list(methods[0]))
    write_table(out / "per_dataset.csv", per_dataset, list(per_dataset[0]))
    write_json(out / "summary.json", json_safe({"reference": reference, "methods": methods,
                                                 "per_dataset": per_dataset, "wilcoxon": tests}))
    text = summary_markdown(methods, per_dataset, tests, reference)
    uncertain = uncertainty_summary(rows, reference)
    if uncertain:
        write_table(out / "uncertainty_summary.csv", uncertain, list(uncertain[0]))
        text += uncertainty_markdown(uncertain, reference)
    atomic_write(out / "summary.md", lambda f: f.write(text), mode="w")
    figures = write_figures(rows, out / "figures", reference)
    return [out / n for n in ("summary.csv", "per_dataset.csv", "summary.json", "summary.md",
                              *(["uncertainty_summary.csv"] if uncertain else []))] + figures


# column -> (what it is, higher is better): tested with the Wilcoxon test of the reference
UNCERTAINTY_METRICS = {
    "ece": ("ECE", False), "aurc_max_probability": ("AURC, max probability", False),
    "aurc_mutual_information": ("AURC, mutual information", False),
    "ood_auroc_max_probability": ("OOD AUROC, max probability", True),
    "ood_auroc_mutual_information": ("OOD AUROC, mutual information", True),
}


def uncertainty_summary(rows: Sequence[dict[str, Any]], reference: str) -> list[dict[str, Any]]:
    """Per method and uncertainty metric: the mean over datasets and the one-tailed Wilcoxon
    test that ``reference`` is better (lower ECE/AURC, higher AUROC); [] without those columns."""
    out = []
    for column, (name, higher_better) in UNCERTAINTY_METRICS.items():
        present = [r for r in rows if isinstance(r.get(column), (int, float))]
        if not present or not any(r.get("ood_auroc_max_probability") is not None for r in rows):
            continue
        # "lower is better" for every test: AUROC enters as 1 - AUROC
        keyed = [{**r, "_metric": (1 - r[column]) if higher_better else r[column]}
                 for r in present]
        for m in method_summary(keyed, reference, key="_metric"):
            mean = m["mean__metric"]
            out.append({"metric": name, "column": column, "method": m["method"],
                        "datasets": m["datasets"], "mean": 1 - mean if higher_better else mean,
                        "wilcoxon_n": m[f"wilcoxon_{reference}_less_n"],
                        "wilcoxon_p": m[f"wilcoxon_{reference}_less_p"]})
    return out


def uncertainty_markdown(rows: list[dict[str, Any]], reference: str) -> str:
    lines = ["", "## Uncertainty (rrrnet uncertainty; OOD AUROC averaged over the --ood datasets)",
             "", f"p: one-tailed Wilcoxon signed-rank test that [{reference}] is better "
                 "(lower ECE and AURC, higher AUROC), paired per dataset.", "",
             f"| metric | method | datasets | mean | p ({reference} better) |", "|---|---|---|---|---|"]
    for r in rows:
        p = "" if r["method"] == reference else \
            f"{_fmt(r['wilcoxon_p'], '.3g')} (n={_fmt(r['wilcoxon_n'], 'g')})"
        lines.append(f"| {r['metric']} | {r['method']} | {r['datasets']} | "
                     f"{_fmt(r['mean'], '.3f')} | {p} |")
    return "\n".join(lines) + "\n"


def summary_markdown(methods: list[dict[str, Any]], per_dataset: list[dict[str, Any]],
                     tests: dict[str, dict[str, Any]], reference: str) -> str:
    lines = ["# Benchmark summary", "",
             "Error: per dataset the mean over seeds; per method the mean and median of those "
             f"over datasets. {reference} - method: the mean over datasets of the paired "
             "difference in error, with its 95% t-interval. p: one-tailed Wilcoxon signed-rank "
             f"tests, paired per dataset (n datasets), that [{reference}] has the lower error "
             f"and that the method has.", "",
             "| method | datasets | mean error | median error | params | MACs | CPU ms | GPU ms "
             f"| {reference} - method (95% interval) | p ({reference} < method) "
             f"| p (method < {reference}) |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for m in methods:
        test = tests.get(m["method"])
        p = "" if test is None else f"{_fmt(test['p_value'], '.3g')} (n={test['n']})"
        p_other = "" if test is None else f"{_fmt(test['p_value_greater'], '.3g')}"
        diff = "" if test is None else (
            f"{_fmt(100 * test['mean_difference'], '+.1f')} "
            f"[{_fmt(100 * test['difference_low'], '+.1f')}, "
            f"{_fmt(100 * test['difference_high'], '+.1f')}] pts")
        lines.append(f"| {m['method']} | {m['datasets']} | {_fmt(m['mean_error'], '.1%')} | "
                     f"{_fmt(m['median_error'], '.1%')} | {_fmt(m['params'] / 1e6, '.2f')} M | "
                     f"{_fmt(m['macs'] / 1e9, '.3f')} G | {_fmt(m['cpu_ms'], '.1f')} | "
                     f"{_fmt(m['gpu_ms'], '.2f')} | {diff} | {p} | {p_other} |")
    lines += ["", "## Per dataset (mean over seeds, 95% t-interval)", "",
              "| dataset | method | seeds | error | 95% interval |", "|---|---|---|---|---|"]
    for r in per_dataset:
        lines.append(f"| {r['dataset']} | {r['method']} | {r['seeds']} | {r['mean']:.1%} | "
                     f"[{r['ci_low']:.1%}, {r['ci_high']:.1%}] |")
    return "\n".join(lines) + "\n"


def write_table(path: Path, rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> None:
    """``columns`` of ``rows``; missing and NaN values as empty cells."""
    write_csv(path, ({k: _csv_value(row.get(k)) for k in columns} for row in rows), columns)


def _csv_value(value: Any) -> Any:
    return "" if value is None or (isinstance(value, float) and math.isnan(value)) else value


def _fmt(value: Any, spec: str) -> str:
    return "-" if value is None or (isinstance(value, float) and math.isnan(value)) \
        else format(value, spec)


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise RunError(f"cannot read {path} ({err}); remove it to run that cell again") from None
    if not isinstance(data, dict) or data.get("format") != CELL_FORMAT:
        raise RunError(f"{path} is not a benchmark cell row; remove it to run that cell again")
    return data
