"""Figures of an uncertainty report (rrrnet.uncertainty): reliability diagram, risk-coverage
curves by score, and the OOD score histograms."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from ..io import atomic_write  # noqa: E402

LABELS = {"max_probability": "max probability", "entropy": "predictive entropy",
          "mutual_information": "mutual information (branch disagreement)"}


def _save(fig, path: Path) -> Path:
    fig.tight_layout()
    atomic_write(path, lambda f: fig.savefig(f, format="png", dpi=110))
    plt.close(fig)
    return path


def write_figures(summary: dict[str, Any], rows: list[dict[str, Any]], out: Path,
                  title: str = "") -> list[Path]:
    """reliability.png, risk_coverage.png and (with OOD data) ood_scores.png in ``out``."""
    out = Path(out)
    paths = []
    fig, ax = plt.subplots(figsize=(4.5, 4.2))
    bins = [b for b in summary["reliability"] if b["accuracy"] is not None]
    ax.bar([(b["low"] + b["high"]) / 2 for b in bins], [b["accuracy"] for b in bins],
           width=[b["high"] - b["low"] for b in bins], edgecolor="black", alpha=0.7,
           label="accuracy")
    ax.plot([0, 1], [0, 1], color="grey", ls="--", label="perfect calibration")
    ax.set_xlabel("confidence (max probability)")
    ax.set_ylabel("accuracy")
    ax.set_title(f"{title} ECE {summary['ece']:.3f}".strip())
    ax.legend(fontsize=8)
    paths.append(_save(fig, out / "reliability.png"))

    fig, ax = plt.subplots(figsize=(5, 4.2))
    for name, curve in summary["selective"].items():
        ax.plot(curve["curve"]["coverage"], [100 * r for r in curve["curve"]["risk"]],
                label=f"{LABELS[name]} (AURC {curve['aurc']:.3f})")
    ax.set_xlabel("coverage (share of images kept)")
    ax.set_ylabel("error among kept images (%)")
    ax.set_title(title)
    ax.legend(fontsize=8)
    paths.append(_save(fig, out / "risk_coverage.png"))

    datasets = [d for d in dict.fromkeys(r["dataset"] for r in rows) if d != "in-distribution"]
    if datasets:
        fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))
        for ax, name in zip(axes, LABELS):
            for dataset in ["in-distribution", *datasets]:
                values = [r[name] for r in rows if r["dataset"] == dataset]
                ax.hist(values, bins=30, alpha=0.5, density=True, label=dataset)
            ax.set_xlabel(LABELS[name])
            auroc = ", ".join(f"{d} {summary['ood'][d][name]['auroc']:.2f}" for d in datasets)
            ax.set_title(f"OOD AUROC: {auroc}", fontsize=9)
            ax.legend(fontsize=8)
        paths.append(_save(fig, out / "ood_scores.png"))
    return paths
