"""The benchmark's figures (the paper's Figures 6-9) from its result rows, with matplotlib (Agg).

Rows are dicts with dataset, method, seed, error and the cost columns (params, macs, cpu_ms,
gpu_ms), as in ``results.csv``; every figure is a PNG written atomically.
"""
from __future__ import annotations

import math
import warnings
from pathlib import Path
from typing import Any, Sequence

import matplotlib
import matplotlib.ticker

matplotlib.use("Agg")  # files only: no display, safe in Ray workers and on servers
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from scipy.cluster import hierarchy  # noqa: E402

from ..io import atomic_write  # noqa: E402
from .stats import (dataset_intervals, error_matrix, method_summary, methods_of,  # noqa: E402
                    seed_means)

FIGURES = {
    "fig4": "fig4_error_vs_cost.png",
    "fig6": "fig6_dataset_errors.png",
    "fig7": "fig7_clustered_heatmap.png",
    "fig8": "fig8_boxplot.png",
    "fig9": "fig9_spider.png",
}
DPI = 110


def method_colors(methods: Sequence[str], reference: str = "E") -> dict[str, Any]:
    """One colour per method, the same in every figure; the reference keeps orange."""
    palette = plt.get_cmap("tab10").colors
    others = [c for i, c in enumerate(palette) if i != 1]
    rest = [m for m in methods if m != reference]
    colors = {m: others[i % len(others)] for i, m in enumerate(rest)}
    colors[reference] = palette[1]
    return colors


def save_figure(fig, path: Path) -> Path:
    atomic_write(path, lambda f: fig.savefig(f, format="png", dpi=DPI, bbox_inches="tight"))
    plt.close(fig)
    return path


def plot_dataset_errors(rows: Sequence[dict[str, Any]], path: Path, reference: str = "E") -> Path:
    """Figure 6: per dataset, each method's mean error over seeds with its 95% t-interval."""
    intervals = {(r["dataset"], r["method"]): r for r in dataset_intervals(rows)}
    methods = methods_of(rows)
    datasets = sorted({d for d, _ in intervals})
    colors = method_colors(methods, reference)
    width = 0.8 / len(methods)
    fig, ax = plt.subplots(figsize=(max(6.0, 0.9 + 0.22 * len(methods) * len(datasets)), 4.2))
    x = np.arange(len(datasets))
    for i, method in enumerate(methods):
        cells = [intervals.get((d, method)) for d in datasets]
        means = np.array([c["mean"] if c else math.nan for c in cells]) * 100
        low = np.array([c["mean"] - c["ci_low"] if c else 0 for c in cells]) * 100
        high = np.array([c["ci_high"] - c["mean"] if c else 0 for c in cells]) * 100
        ax.bar(x - 0.4 + width * (i + 0.5), means, width, yerr=[low, high], capsize=2,
               color=colors[method], label=method, error_kw={"elinewidth": 0.8})
    ax.set_xticks(x, datasets, rotation=60 if len(datasets) > 6 else 0, ha="right"
                  if len(datasets) > 6 else "center")
    ax.set_ylabel("test error (%)")
    ax.set_ylim(bottom=0)  # an interval may reach below 0 with few seeds; errors cannot
    ax.set_xlim(-0.6, len(datasets) - 0.4)
    ax.set_title("Test error per dataset (mean over seeds, 95% t-interval)")
    ax.legend(ncols=len(methods), loc="upper left", fontsize="small", frameon=False)
    ax.margins(y=0.15)
    fig.tight_layout()
    return save_figure(fig, path)


def plot_clustered_heatmap(rows: Sequence[dict[str, Any]], path: Path) -> Path | None:
    """Figure 7: error minus the best method's error on each dataset, rows (methods) and columns
    (datasets) ordered by average-linkage hierarchical clustering. Only the datasets every method
    has results on; None when there is no such dataset."""
    methods, datasets, matrix = error_matrix(rows, complete=True)
    if not datasets:
        return None
    gap = (matrix - matrix.min(axis=0, keepdims=True)) * 100
    row_order, col_order = _leaf_order(gap), _leaf_order(gap.T)
    cell = 0.5  # inches per heatmap cell; dendrograms 0.9 inch, colour bar 0.25 inch
    fig = plt.figure(figsize=(1.6 + cell * len(datasets), 1.2 + cell * len(methods)))
    grid = fig.add_gridspec(2, 3, width_ratios=[0.9, cell * len(datasets), 0.25],
                            height_ratios=[0.9, cell * len(methods)], wspace=0.25, hspace=0.03)
    if len(datasets) > 1:
        _dendrogram(fig.add_subplot(grid[0, 1]), gap.T, "top")
    if len(methods) > 1:
        _dendrogram(fig.add_subplot(grid[1, 0]), gap, "left")
    ax = fig.add_subplot(grid[1, 1])
    shown = gap[np.ix_(row_order, col_order)]
    image = ax.imshow(shown, aspect="auto", cmap="viridis", vmin=0)
    ax.set_xticks(range(len(datasets)), [datasets[j] for j in col_order], rotation=90)
    ax.set_yticks(range(len(methods)), [methods[i] for i in row_order])
    top = shown.max() or 1.0
    for (i, j), value in np.ndenumerate(shown):
        ax.text(j, i, f"{value:.1f}", ha="center", va="center", fontsize=6,
                color="white" if value < 0.6 * top else "black")
    fig.colorbar(image, cax=fig.add_subplot(grid[1, 2]), label="error − best (points)")
    fig.suptitle("Error above the best model per dataset (clustered)", fontsize="medium")
    return save_figure(fig, path)


def _leaf_order(matrix: np.ndarray) -> list[int]:
    if len(matrix) < 2:
        return list(range(len(matrix)))
    return list(hierarchy.leaves_list(hierarchy.linkage(matrix, method="average")))


def _dendrogram(ax, matrix: np.ndarray, orientation: str) -> None:
    with warnings.catch_warnings():  # identical rows: a flat tree, which matplotlib warns about
        warnings.simplefilter("ignore", UserWarning)
        hierarchy.dendrogram(hierarchy.linkage(matrix, method="average"), ax=ax,
                             orientation=orientation, no_labels=True, color_threshold=0,
                             above_threshold_color="0.3")
    if orientation == "left":
        ax.invert_yaxis()  # the heatmap's first row is at the top
    ax.set_axis_off()


def plot_boxplot(rows: Sequence[dict[str, Any]], path: Path, reference: str = "E") -> Path:
    """Figure 8: per method, the distribution over datasets of its seed-mean error; the white
    diamond is the mean."""
    means = seed_means(rows)
    methods = methods_of(rows)
    colors = method_colors(methods, reference)
    data = [[v * 100 for (d, m), v in means.items() if m == method] for method in methods]
    fig, ax = plt.subplots(figsize=(1.2 + 1.1 * len(methods), 4.2))
    boxes = ax.boxplot(data, tick_labels=methods, patch_artist=True, showmeans=True,
                       meanprops={"marker": "D", "markerfacecolor": "white",
                                  "markeredgecolor": "black"},
                       medianprops={"color": "black"})
    for patch, method in zip(boxes["boxes"], methods):
        patch.set_facecolor(colors[method])
    rng = np.random.default_rng(0)  # fixed jitter: the figure is reproducible
    for i, values in enumerate(data, 1):
        ax.scatter(i + rng.uniform(-0.12, 0.12, len(values)), values, s=8, color="0.2", zorder=3)
    ax.set_ylabel("test error (%)")
    ax.set_title("Test error over datasets")
    fig.tight_layout()
    return save_figure(fig, path)


SPIDER_AXES = (("mean_error", "mean error", 100, "%"), ("params", "parameters", 1e-6, "M"),
               ("macs", "MACs", 1e-9, "G"), ("cpu_ms", "CPU time", 1, "ms"),
               ("gpu_ms", "GPU time", 1, "ms"))


def plot_spider(rows: Sequence[dict[str, Any]], path: Path, reference: str = "E",
                methods: Sequence[str] | None = None) -> Path:
    """Figure 9: mean error, parameters, MACs, CPU and GPU time per image (the GPU axis only
    when measured), each axis divided by its largest value over the methods shown: smaller is
    better, 1 is the worst method on that criterion."""
    summary = {r["method"]: r for r in method_summary(rows, reference)}
    methods = [m for m in (methods or list(summary)) if m in summary]
    axes = [a for a in SPIDER_AXES
            if any(not math.isnan(summary[m][a[0]]) for m in methods)]
    colors = method_colors(methods, reference)
    angles = np.linspace(0, 2 * np.pi, len(axes), endpoint=False)
    fig = plt.figure(figsize=(6.4, 6.4))
    ax = fig.add_subplot(projection="polar")
    ax.set_theta_offset(np.pi / 2)  # mean error at the top, the cost criteria clockwise
    ax.set_theta_direction(-1)
    lines = []
    for method in methods:
        raw = [summary[method][key] for key, *_ in axes]
        scaled = [v / _largest(summary, methods, key) for v, (key, *_) in zip(raw, axes)]
        closed = np.append(scaled, scaled[0])
        ax.plot(np.append(angles, angles[0]), closed, color=colors[method], lw=2, label=method)
        ax.fill(np.append(angles, angles[0]), closed, color=colors[method], alpha=0.12)
        lines.append(f"{method}: " + ", ".join(
            f"{label} {v * scale:.3g}{unit}" for v, (_, label, scale, unit) in zip(raw, axes)))
    ax.set_xticks(angles, [label for _, label, *_ in axes])
    ax.tick_params(axis="x", pad=10)
    ax.set_ylim(0, 1.05)
    ax.set_yticks([0.25, 0.5, 0.75, 1.0], ["", "0.5", "", "1"])
    ax.legend(loc="upper right", bbox_to_anchor=(1.15, 1.1))
    ax.set_title("Criteria relative to the largest value (smaller is better)", pad=22)
    fig.text(0.02, 0.02, "\n".join(lines), fontsize=7, va="bottom")
    fig.subplots_adjust(bottom=0.08 + 0.025 * len(lines))
    return save_figure(fig, path)


# The paper's mean test errors over its 40 Meta-Album micro datasets (ImageNet weights, 300
# epochs; Section 4.5) and parameter counts (its Figure 1: 58.23 M for the ResNet-152 baselines,
# 9.09 M for RRR-Net; ResNet_1.1.1.1 from rrrnet's exact count at 20 classes). The paper gives no
# latency, so these points appear on the parameter panel only.
PAPER_POINTS = {"A": (0.358, 58.23e6), "B": (0.360, 58.23e6), "C": (0.403, 8.06e6),
                "D": (0.399, 8.06e6), "E": (0.355, 9.09e6)}


def _mean_of(rows: Sequence[dict[str, Any]], method: str, key: str) -> float:
    values = [float(r[key]) for r in rows if str(r["method"]) == method
              and r.get(key) not in (None, "") and not math.isnan(float(r[key]))]
    return float(np.mean(values)) if values else math.nan


def plot_error_vs_cost(rows: Sequence[dict[str, Any]], path: Path, reference: str = "E") -> Path:
    """Beside the paper's Figure 4: each method's mean test error against its parameters and
    its CPU latency (batch 1), over the datasets every method has results on (seed means), with
    the paper's means as hollow reference points (parameter panel; the paper gives no CPU
    latency per method). Labels are moved apart by adjustText where points crowd."""
    means = seed_means(rows)
    methods = methods_of(rows)
    common = sorted(set.intersection(*({d for d, m in means if m == method}
                                        for method in methods)))
    cost = {m: {k: _mean_of(rows, m, k) for k in ("params", "cpu_ms")} for m in methods}
    colors = method_colors(methods, reference)
    fig, axes = plt.subplots(1, 2, figsize=(10, 4.2))
    for ax, key, label in ((axes[0], "params", "parameters (millions)"),
                           (axes[1], "cpu_ms", "CPU ms per image (batch 1, 2 threads)")):
        points = []   # (x, y, label, colour, filled)
        for m in methods:
            error = np.mean([means[(d, m)] for d in common]) * 100 if common else math.nan
            x = cost[m][key] / (1e6 if key == "params" else 1)
            if not math.isnan(x) and not math.isnan(error):
                points.append((x, error, m, colors[m], True))
            if key == "params" and m in PAPER_POINTS:
                paper_error, params = PAPER_POINTS[m]
                points.append((params / 1e6, paper_error * 100, f"{m} (paper)", colors[m], False))
        _labelled_scatter(ax, points)
        ax.set_xlabel(label)
        ax.set_ylabel("mean test error (%)")
        ax.grid(alpha=0.3)
    fig.suptitle(f"Error against cost: filled, this benchmark ({len(common)} dataset(s) every "
                 f"method has); hollow, the paper's means (40 datasets, ImageNet weights)",
                 fontsize=9)
    fig.tight_layout()
    for ax in axes:
        _move_labels_apart(ax)
    return save_figure(fig, path)


def _labelled_scatter(ax, points: list[tuple[float, float, str, Any, bool]]) -> None:
    """Filled (this benchmark) or hollow (the paper) points on a log x-axis with plain tick
    labels, each with its label beside it."""
    ax.set_xscale("log")
    for x, y, text, color, filled in points:
        ax.scatter(x, y, s=70, zorder=3, **({"color": color} if filled else
                                            {"facecolors": "none", "edgecolors": color}))
        ax.text(x, y, " " + text, fontsize=10 if filled else 8,
                color="black" if filled else "grey", va="center")
    plain = matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:g}")
    ax.xaxis.set_major_formatter(plain)
    ax.xaxis.set_minor_formatter(plain)
    ax.tick_params(axis="x", which="minor", labelsize=7)
    ax.margins(x=0.12, y=0.08)


def _move_labels_apart(ax) -> None:
    """adjustText's repulsion: no label over another or over a point, thin leader lines
    where one had to move (the axes' layout must be final)."""
    from adjustText import adjust_text
    texts = list(ax.texts)
    if len(texts) > 1:
        offsets = np.concatenate([c.get_offsets() for c in ax.collections])
        adjust_text(texts, x=offsets[:, 0], y=offsets[:, 1], ax=ax,
                    arrowprops={"arrowstyle": "-", "color": "grey", "lw": 0.5})


def _largest(summary: dict[str, dict[str, Any]], methods: Sequence[str], key: str) -> float:
    values = [summary[m][key] for m in methods if not math.isnan(summary[m][key])]
    return max(values) if values and max(values) > 0 else 1.0


def write_figures(rows: Sequence[dict[str, Any]], out: Path, reference: str = "E") -> list[Path]:
    """Figures 6-9 into ``out``; returns the files written (Figure 7 needs a dataset with
    results of every method)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    written = [plot_error_vs_cost(rows, out / FIGURES["fig4"], reference),
               plot_dataset_errors(rows, out / FIGURES["fig6"], reference),
               plot_clustered_heatmap(rows, out / FIGURES["fig7"]),
               plot_boxplot(rows, out / FIGURES["fig8"], reference),
               plot_spider(rows, out / FIGURES["fig9"], reference)]
    return [p for p in written if p is not None]
