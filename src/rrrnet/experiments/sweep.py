"""The branch-count sweep (the paper's Section 4.4, Figure 5): error against the number of branches.

For every branch count ``b`` and seed, ``train.fit`` trains ResNet_1.1.1.1 recycled into ``b``
branches (naive ensemble, the shared recipe) into ``OUT/runs/bBBB-seedS/``; the branch widths
follow Equation 1 with the calibrated shift, so every count holds about the parameters of the
unsplit model. Writes ``sweep.csv`` (one row per run), ``sweep_summary.csv`` and ``sweep.json``
(per branch count: mean test error with its 95% Student-t interval over seeds, parameters, MACs)
and ``sweep.png``. A rerun with ``resume`` reads finished runs back and continues interrupted ones.
"""
from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from ..cost import CostReport, cost
from ..errors import ConfigError
from ..options import PAPER_BRANCHES
from ..model import ModelConfig
from ..report.curves import plot_sweep
from ..report.stats import mean_ci
from ..io import write_csv, write_json
from ..rundir import claim_folder, holds_folder
from ..train import DataSpec, Recipe, fit

OUTPUT_FILES = ("sweep.csv", "sweep_summary.csv", "sweep.json", "sweep.png")


@dataclass
class SweepResult:
    out: Path
    runs: list[dict[str, Any]]       # sweep.csv
    summary: list[dict[str, Any]]    # sweep_summary.csv


@holds_folder()
def sweep_branches(data: DataSpec, out: str | os.PathLike,
                   branch_counts: Sequence[int] = PAPER_BRANCHES, seeds: Sequence[int] = (0, 1, 2),
                   model_config: ModelConfig | None = None, recipe: Recipe | None = None,
                   resume: bool = False, overwrite: bool = False,
                   progress: bool = True) -> SweepResult:
    """Train every (branch count, seed) and summarise; see the module docs.

    ``model_config`` gives everything but ``branches`` and ``seed`` (default: ResNet_1.1.1.1
    split at conv4_1); its ``shift`` should stay None (calibrated per branch count). Every branch
    count is checked against the width rule before anything is trained.
    """
    out, recipe = Path(out), recipe or Recipe()
    base = model_config or ModelConfig(blocks=(1, 1, 1, 1))
    counts, seeds = _distinct("branches", branch_counts, 1), _distinct("seeds", seeds, 0)
    classes = len(data.load().train.classes)
    costs = {b: cost(dataclasses.replace(base, branches=b, num_classes=classes),
                     image_size=recipe.image_size) for b in counts}  # ConfigError: too many
    claim_folder(out, OUTPUT_FILES, resume, overwrite, "a sweep")

    runs = []
    for b in counts:
        for seed in seeds:
            if progress:
                print(f"\n== {b} branch{'es' if b != 1 else ''}, seed {seed}")
            folder = out / "runs" / f"b{b:03d}-seed{seed}"
            result = fit(data, folder, dataclasses.replace(base, branches=b, seed=seed),
                         dataclasses.replace(recipe, seed=seed), resume=resume,
                         overwrite=overwrite, progress=progress)
            runs.append(_run_row(b, seed, result.metrics, costs[b], folder, out))
            write_csv(out / "sweep.csv", runs)  # what is finished, as soon as it is
    summary = summarize(runs)
    write_csv(out / "sweep_summary.csv", summary)
    write_json(out / "sweep.json", {"branches": list(counts), "seeds": list(seeds),
                                    "epochs": recipe.epochs, "summary": summary})
    plot_sweep(summary, out / "sweep.png",
               title=f"Number of branches (ResNet_{'.'.join(map(str, base.blocks))} split at "
                     f"{base.split_at}, {len(seeds)} seed{'s' if len(seeds) != 1 else ''}, "
                     f"{recipe.epochs} epochs)")
    return SweepResult(out, runs, summary)


def summarize(runs: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per branch count: mean test error with its 95% t-interval over seeds, and the costs."""
    summary = []
    for b in dict.fromkeys(r["branches"] for r in runs):
        at = [r for r in runs if r["branches"] == b]
        mean, low, high = mean_ci([r["error"] for r in at])
        branch_mean, _, _ = mean_ci([r["mean_branch_error"] for r in at])
        summary.append({"branches": b, "seeds": len(at), "mean_error": mean, "error_low": low,
                        "error_high": high, "mean_branch_error": branch_mean,
                        **{k: at[0][k] for k in ("shift", "branch_planes", "params",
                                                 "trainable_params", "macs")}})
    return summary


def _run_row(branches: int, seed: int, metrics: dict[str, Any], rep: CostReport, folder: Path,
             out: Path) -> dict[str, Any]:
    return {"branches": branches, "seed": seed, "error": metrics["error"],
            "mean_branch_error": metrics["mean_branch_error"], "nll": metrics["nll"],
            "shift": rep.shift, "branch_planes": "-".join(map(str, rep.branch_planes)),
            "params": rep.params, "trainable_params": rep.trainable_params, "macs": rep.macs,
            "train_seconds": metrics.get("train_seconds"), "run": str(folder.relative_to(out))}


def _distinct(name: str, values: Sequence[int], least: int) -> tuple[int, ...]:
    values = tuple(values)
    if (not values or len(set(values)) != len(values)
            or any(isinstance(v, bool) or not isinstance(v, int) or v < least for v in values)):
        raise ConfigError(f"--{name} must be distinct integers >= {least}, got {list(values)}")
    return values


__all__ = ["PAPER_BRANCHES", "SweepResult", "summarize", "sweep_branches"]
