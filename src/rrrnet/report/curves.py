"""Figures of the model-selection experiments: the forward block selection curve (the paper's
Figure 4) and the branch-count sweep (Figure 5). matplotlib with the Agg backend, written
atomically."""
from __future__ import annotations

import io
from pathlib import Path
from typing import Any, Sequence

import matplotlib

matplotlib.use("Agg")  # files only: no display is needed or wanted
import matplotlib.pyplot as plt  # noqa: E402

from ..io import atomic_write  # noqa: E402

BLUE, RED, GREY = "#1f77b4", "#d62728", "#7f7f7f"


def plot_selection(summary: Sequence[dict[str, Any]], path: str | Path,
                   control: dict[str, float] | None = None, chosen_blocks: int | None = None,
                   title: str = "Forward block selection") -> Path:
    """Figure 4: test error (mean and 95% t-interval over seeds) against the number of blocks.

    ``summary`` rows need ``total_blocks``, ``mean_error``, ``error_low``, ``error_high``;
    ``control`` (``mean_error``, ``error_low``, ``error_high``, ``epochs``) is drawn as the red
    horizontal line of the control experiment; ``chosen_blocks`` as a dotted vertical line.
    """
    fig, ax = plt.subplots(figsize=(7, 4))
    x = [r["total_blocks"] for r in summary]
    mean = [100 * r["mean_error"] for r in summary]
    ax.plot(x, mean, "o-", color=BLUE, markersize=3, label="forward selection")
    ax.fill_between(x, [100 * r["error_low"] for r in summary],
                    [100 * r["error_high"] for r in summary], color=BLUE, alpha=0.2, linewidth=0)
    if control is not None:
        ax.axhline(100 * control["mean_error"], color=RED,
                   label=f"control: start model, {control['epochs']} epochs")
        if control["error_high"] > control["error_low"]:
            ax.axhspan(100 * control["error_low"], 100 * control["error_high"], color=RED,
                       alpha=0.1, linewidth=0)
    if chosen_blocks is not None:
        ax.axvline(chosen_blocks, color=GREY, linestyle=":", label="selected")
    ax.set_xlabel("blocks in the network")
    ax.set_ylabel("test error (%)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    return _save(fig, path)


def plot_sweep(summary: Sequence[dict[str, Any]], path: str | Path,
               title: str = "Number of branches") -> Path:
    """Figure 5: test error (mean and 95% t-interval over seeds) against the branch count on a
    log2 axis, with the MACs per image on a second axis (parameters are held constant)."""
    fig, ax = plt.subplots(figsize=(7, 4))
    x = [r["branches"] for r in summary]
    mean = [100 * r["mean_error"] for r in summary]
    below = [m - 100 * r["error_low"] for m, r in zip(mean, summary)]
    above = [100 * r["error_high"] - m for m, r in zip(mean, summary)]
    ax.errorbar(x, mean, yerr=[below, above], fmt="o-", color=BLUE, capsize=3,
                label="test error (95% CI)")
    best = min(range(len(summary)), key=lambda i: mean[i])
    ax.plot([x[best]], [mean[best]], "*", color=RED, markersize=12,
            label=f"lowest: {x[best]} branch{'es' if x[best] != 1 else ''}")
    ax.set_xscale("log", base=2)
    ax.set_xticks(x, [str(b) for b in x])
    ax.set_xlabel("branches")
    ax.set_ylabel("test error (%)")
    ax.grid(alpha=0.3)
    macs = ax.twinx()
    macs.plot(x, [r["macs"] / 1e6 for r in summary], "s--", color=GREY, markersize=3,
              label="MACs per image")
    macs.set_ylabel("MMACs per image", color=GREY)
    macs.tick_params(axis="y", colors=GREY)
    ax.set_title(title)
    handles = [h for a in (ax, macs) for h in a.get_legend_handles_labels()[0]]
    ax.legend(handles=handles, loc="upper left")
    return _save(fig, path)


def _save(fig, path: str | Path) -> Path:
    path = Path(path)
    buffer = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buffer, format="png", dpi=110)
    plt.close(fig)
    atomic_write(path, lambda f: f.write(buffer.getvalue()))
    return path
