"""Figures of an error analysis (:class:`rrrnet.interpret.Interpretation`): the confusion matrix
(counts and row-normalised, readable up to a few hundred classes), the most confidently wrong
images as a grid of captioned thumbnails, and the reliability diagram.

Each function returns a matplotlib figure; :func:`save` writes one atomically as PNG and
:func:`png_bytes` gives its bytes (for the report page's data URIs).
"""
from __future__ import annotations

import io
import math
import textwrap
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.colors import PowerNorm  # noqa: E402
import numpy as np  # noqa: E402

from ..io import atomic_write  # noqa: E402

CELL_TEXT_UP_TO = 30      # classes: beyond, the confusion cells carry no numbers
DPI = 100


def save(fig, path: str | Path) -> Path:
    """Write ``fig`` as PNG at ``path`` atomically and close it."""
    path = Path(path)
    data = png_bytes(fig)
    atomic_write(path, lambda f: f.write(data))
    return path


def png_bytes(fig) -> bytes:
    """``fig`` as PNG bytes; the figure is closed."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=fig.get_dpi(), bbox_inches="tight")
    plt.close(fig)
    return buffer.getvalue()


def _short(name: str, width: int) -> str:
    return name if len(name) <= width else name[: width - 1] + "\u2026"


def confusion_figure(interp: Any, title: str = ""):
    """Two panels, counts and row-normalised shares (rows: true class, columns: predicted).
    The figure grows with the class count and its labels shrink (about 0.24 inch per class,
    labels down to 5 points; colours on a square-root scale so that rare confusions show); cells carry their numbers up to
    :data:`CELL_TEXT_UP_TO` classes."""
    counts = np.asarray(interp.confusion)
    shares = np.asarray(interp.normalised_confusion)
    n = len(interp.classes)
    side = float(min(max(4.5, 0.24 * n + 2.5), 28.0))
    label_size = float(min(10.0, max(5.0, 260.0 / max(n, 1))))
    label_width = 24 if n <= 30 else 16
    names = [_short(c, label_width) for c in interp.classes]
    fig, axes = plt.subplots(1, 2, figsize=(2 * side + 2.5, side + 1.2), dpi=DPI)
    for ax, matrix, what in ((axes[0], counts, "counts"), (axes[1], shares, "share of the true class")):
        # a square-root colour scale: a few confusions stay visible beside a full diagonal
        top = max(1e-9, float(matrix.max())) if what == "counts" else 1.0
        image = ax.imshow(matrix, cmap="Blues", norm=PowerNorm(0.5, vmin=0, vmax=top),
                          interpolation="nearest")
        ax.set_title(what, fontsize=max(8.0, label_size + 1))
        ax.set_xticks(range(n))
        ax.set_yticks(range(n))
        ax.set_xticklabels(names, rotation=90, fontsize=label_size)
        ax.set_yticklabels(names, fontsize=label_size)
        ax.set_xlabel("predicted class", fontsize=max(8.0, label_size))
        ax.set_ylabel("true class", fontsize=max(8.0, label_size))
        fig.colorbar(image, ax=ax, fraction=0.046, pad=0.02)
        if n <= CELL_TEXT_UP_TO:
            cell_size = float(min(9.0, max(5.0, 180.0 / max(n, 1))))
            for i in range(n):
                for j in range(n):
                    value = matrix[i, j]
                    if value == 0:
                        continue
                    text = f"{int(value)}" if what == "counts" else f"{value:.0%}"
                    ax.text(j, i, text, ha="center", va="center", fontsize=cell_size,
                            color="white" if value > 0.4 * top else "black")
    error = getattr(interp, "error", math.nan)
    balanced = getattr(interp, "balanced_error", math.nan)
    heading = f"{title}: " if title else ""
    fig.suptitle(f"{heading}confusion matrix, {interp.images} images, error {error:.1%}, "
                 f"balanced error {balanced:.1%}", fontsize=11)
    fig.tight_layout()
    return fig


def _thumbnail(path: str, size: int = 96):
    from PIL import Image, ImageOps
    try:
        with Image.open(path) as image:
            image = ImageOps.exif_transpose(image).convert("RGB")
            image.thumbnail((size, size))
            return np.asarray(image)
    except Exception:  # a missing or unreadable file: a grey square, captioned as missing
        return None


def top_losses_figure(interp: Any, columns: int = 4, thumbnails: bool = True):
    """The most confidently wrong images (``interp.top_losses``), each captioned with its true
    class, the prediction and its probability, entropy (H) and mutual information (MI)."""
    rows = list(interp.top_losses)
    if not rows:
        fig, ax = plt.subplots(figsize=(5, 1.2), dpi=DPI)
        ax.axis("off")
        ax.text(0.5, 0.5, f"no misclassified images among {interp.images}", ha="center",
                va="center", fontsize=11)
        return fig
    columns = min(columns, len(rows))
    lines = math.ceil(len(rows) / columns)
    fig, axes = plt.subplots(lines, columns, figsize=(2.7 * columns, 3.3 * lines), dpi=DPI,
                             squeeze=False, layout="constrained")
    for ax in axes.flat:
        ax.axis("off")
    for ax, row in zip(axes.flat, rows):
        image = _thumbnail(row["file"]) if thumbnails and row.get("file") else None
        if image is None:
            ax.imshow(np.full((96, 96, 3), 200, dtype=np.uint8))
            ax.text(48, 48, "image not found", ha="center", va="center", fontsize=8)
        else:
            ax.imshow(image)
        caption = (f"true: {_short(row['true'], 22)}\npred: {_short(row['predicted'], 16)} "
                   f"({row['probability']:.2f})\nH {row['entropy']:.2f} \u00b7 "
                   f"MI {row['mutual_information']:.3f}")
        name = textwrap.shorten(Path(str(row["file"])).name, 30, placeholder="\u2026")
        ax.set_title(f"#{row['rank']} {name}\n{caption}", fontsize=8, loc="left")
    fig.suptitle(f"most confidently wrong: {len(rows)} of {int((interp.predicted != interp.labels).sum())} "
                 f"misclassified images", fontsize=11)
    return fig


def reliability_figure(interp: Any, title: str = ""):
    """The reliability diagram: accuracy against confidence per equal-width bin, the share of
    images in each bin below it."""
    bins = list(interp.reliability)
    fig, (ax, share_ax) = plt.subplots(2, 1, figsize=(4.8, 5.4), dpi=DPI, sharex=True,
                                       gridspec_kw={"height_ratios": [3, 1]})
    filled = [b for b in bins if b["accuracy"] is not None]
    ax.bar([(b["low"] + b["high"]) / 2 for b in filled], [b["accuracy"] for b in filled],
           width=[b["high"] - b["low"] for b in filled], edgecolor="black", alpha=0.75,
           label="accuracy")
    ax.bar([(b["low"] + b["high"]) / 2 for b in filled],
           [abs(b["confidence"] - b["accuracy"]) for b in filled],
           bottom=[min(b["accuracy"], b["confidence"]) for b in filled],
           width=[b["high"] - b["low"] for b in filled], fill=False, hatch="//",
           edgecolor="tab:red", linewidth=0.8, label="gap to mean confidence")
    ax.plot([0, 1], [0, 1], color="grey", ls="--", label="perfect calibration")
    ax.set_ylabel("accuracy")
    ax.set_ylim(0, 1)
    heading = f"{title}: " if title else ""
    ax.set_title(f"{heading}ECE {interp.ece:.3f}", fontsize=10)
    ax.legend(fontsize=7, loc="upper left")
    share_ax.bar([(b["low"] + b["high"]) / 2 for b in bins], [b["share"] for b in bins],
                 width=[b["high"] - b["low"] for b in bins], color="tab:grey", edgecolor="black")
    share_ax.set_xlabel("confidence (max probability)")
    share_ax.set_ylabel("share")
    share_ax.set_xlim(0, 1)
    fig.tight_layout()
    return fig
