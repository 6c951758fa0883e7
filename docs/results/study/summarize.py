"""Summarise the diagnosis runs (run_diagnosis.sh): figure curves.png and summary.md, in FOLDER
(default: this folder): ``python docs/results/study/summarize.py [FOLDER]``.

Per dataset and method: final test error of the averaged (final) model, the raw weights'
error at the end, the mean branch error, the ensemble gain and the branch disagreement, and the
epoch after which the raw test error stops improving (the first epoch whose 3-evaluation moving
average is within 1 point of the best one)."""
from __future__ import annotations

import json
import sys
from pathlib import Path

from rrrnet.io import atomic_write, read_csv

HERE = Path(__file__).parent


def smoothed(values: list[float], k: int = 3) -> list[float]:
    return [sum(values[max(0, i - k + 1):i + 1]) / len(values[max(0, i - k + 1):i + 1])
            for i in range(len(values))]


def plateau_epoch(epochs: list[int], errors: list[float], tolerance: float = 0.01) -> int:
    s = smoothed(errors)
    best = min(s)
    return next(e for e, v in zip(epochs, s) if v <= best + tolerance)


def runs(folder: Path = HERE) -> dict[tuple[str, str], list[dict]]:
    out = {}
    for history in sorted(folder.glob("*/*/history.csv")):
        out[(history.parent.parent.name, history.parent.name)] = \
            [r for r in read_csv(history) if r.get("test_error") is not None]
    return out


def figure(data: dict, path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    datasets = sorted({d for d, _ in data})
    fig, axes = plt.subplots(2, len(datasets), figsize=(5.5 * len(datasets), 7), squeeze=False)
    for col, dataset in enumerate(datasets):
        ax, gain = axes[0][col], axes[1][col]
        for method, colour in (("C", "C1"), ("E", "C0")):
            rows = data.get((dataset, method))
            if not rows:
                continue
            epochs = [r["epoch"] for r in rows]
            ax.plot(epochs, [100 * r["test_error"] for r in rows], color=colour, alpha=0.5,
                    label=f"{method} raw weights")
            ema = [(r["epoch"], 100 * r["test_error_ema"]) for r in rows
                   if r.get("test_error_ema") is not None]
            if ema:
                ax.plot(*zip(*ema), color=colour, lw=2, label=f"{method} averaged (final model)")
            if method == "E":
                ax.plot(epochs, [100 * r["test_mean_branch_error"] for r in rows], color=colour,
                        ls=":", label="E mean single-branch error")
                gain.plot(epochs, [100 * r["test_gain"] for r in rows], color="C0",
                          label="ensemble gain (mean branch error - ensemble error)")
                gain.plot(epochs, [100 * r["test_disagreement"] for r in rows], color="C2",
                          label="branch disagreement")
        ax.set_title(dataset)
        ax.set_ylabel("test error (%)")
        ax.legend(fontsize=8)
        gain.axhline(0, color="grey", lw=0.5)
        gain.set_xlabel("epoch")
        gain.set_ylabel("points (%)")
        gain.legend(fontsize=8)
    fig.tight_layout()
    atomic_write(path, lambda f: fig.savefig(f, format="png", dpi=110))
    plt.close(fig)


def main(folder: Path = HERE) -> None:
    data = runs(folder)
    lines = ["| dataset | method | final error (averaged) | raw error, last epoch | "
             "best raw error (epoch) | raw error stops improving | mean branch error, last | "
             "ensemble gain, last / mean of last 5 evals | disagreement, last |",
             "|---|---|---|---|---|---|---|---|---|"]
    for (dataset, method), rows in sorted(data.items()):
        metrics = json.loads((folder / dataset / method / "metrics.json").read_text())
        epochs, errors = [r["epoch"] for r in rows], [r["test_error"] for r in rows]
        best = min(range(len(rows)), key=lambda i: errors[i])
        last5 = rows[-5:]
        gain = sum(r["test_gain"] for r in last5) / len(last5)
        lines.append(
            f"| {dataset} | {method} | {metrics['error']:.1%} | {errors[-1]:.1%} | "
            f"{errors[best]:.1%} ({epochs[best]}) | {plateau_epoch(epochs, errors)} | "
            f"{rows[-1]['test_mean_branch_error']:.1%} | {rows[-1]['test_gain']:+.1%} / "
            f"{gain:+.1%} | {rows[-1]['test_disagreement']:.1%} |")
    atomic_write(folder / "summary.md", lambda f: f.write("\n".join(lines) + "\n"), mode="w")
    figure(data, folder / "curves.png")
    print("\n".join(lines))


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else HERE)
