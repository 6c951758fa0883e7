"""The paper's Figure 3: inference time per image against sparsity, one curve per pruning
granularity, with the 95% interval of each median as a band."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

# The paper's colours: element-wise yellow, channel-wise blue, block-wise (ours) red.
STYLES = {"element": ("element-wise (zeroed, dense)", "#e0a800", "o"),
          "channel": ("channel-wise (Torch-Pruning)", "#1f5fbf", "s"),
          "block": ("block-wise (RRR-Net reduction)", "#d62728", "^")}


def plot_pruning(rows: Sequence[dict[str, Any]], path: str | Path) -> Path:
    """Draw the rows of a pruning study into ``path`` (PNG, written atomically).

    Points sit at the sparsity each model achieved (measured), not at its target; a target a
    granularity cannot reach is drawn as a hollow marker at what it did achieve."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ..io import atomic_write

    fig, ax = plt.subplots(figsize=(7, 4.2))
    for granularity, (label, color, marker) in STYLES.items():
        points = sorted((r for r in rows if r["granularity"] == granularity),
                        key=lambda r: (r["achieved_sparsity"], r["target_sparsity"]))
        if not points:
            continue
        x = [100 * r["achieved_sparsity"] for r in points]
        # No interval exists below 6 runs: no band then (NaN leaves a gap).
        ax.fill_between(x, [_or_nan(r["ci95_low_ms"]) for r in points],
                        [_or_nan(r["ci95_high_ms"]) for r in points],
                        color=color, alpha=0.2, linewidth=0)
        ax.plot(x, [r["median_ms"] for r in points], color=color, label=label)
        for r, xi in zip(points, x):
            ax.plot(xi, r["median_ms"], marker=marker, color=color,
                    markerfacecolor=color if r["reached"] else "white", linestyle="none")
    first = rows[0]
    ax.set_xlabel("sparsity (% of parameters removed, as achieved)")
    ax.set_ylabel("time per image (ms)")
    ax.set_xlim(-2, 100)
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    ax.legend(loc="upper right")
    threads = f", {first['threads']} threads" if first["threads"] else ""
    ax.set_title(f"{first['arch']} on {first['device']}: batch {first['batch_size']}, "
                 f"{first['image_size']} px{threads}; median of {first['runs']} interleaved "
                 f"runs, 95% interval", fontsize=9)
    fig.tight_layout()
    path = Path(path)
    try:
        atomic_write(path, lambda f: fig.savefig(f, format="png", dpi=120))
    finally:
        plt.close(fig)
    return path


def _or_nan(value: float | None) -> float:
    return float("nan") if value is None else value


__all__ = ["STYLES", "plot_pruning"]
