"""The default budget against the paper's long recipe (run.sh): each finished run's test
error, balanced error and time, the paired differences quick - paper per (dataset, seed),
their mean with a 95% t-interval per dataset and overall. Writes recipe.csv and recipe.md here.

    python docs/results/recipe/compare.py [RUNS]   (default ~/rrrnet-runs/recipe)
"""
import csv
import json
import math
import sys
from pathlib import Path

from rrrnet.io import write_csv
from rrrnet.report.stats import mean_ci

HERE = Path(__file__).parent


def runs(root: Path) -> list[dict]:
    rows = []
    for path in sorted(root.glob("*/*/seed*/metrics.json")):
        m = json.loads(path.read_text())
        history = list(csv.DictReader(open(path.parent / "history.csv", newline="")))
        rows.append({"dataset": path.parts[-4], "recipe": path.parts[-3],
                     "seed": int(path.parts[-2][4:]), "test_error": m["error"],
                     "balanced_error": m["balanced_error"], "macro_f1": m["macro_f1"],
                     "epochs_run": len(history), "best_epoch": m.get("best_epoch"),
                     "train_seconds": m.get("train_seconds"), "weights": m.get("weights_used"),
                     "test_images": m.get("test_images")})
    return rows


def interval(diffs: list[float]) -> tuple[float, float]:
    """Mean and half-width of the 95% t-interval (rrrnet.report.stats.mean_ci; NaN for one)."""
    mean, low, high = mean_ci(diffs)
    return mean, (high - low) / 2 if len(diffs) > 1 else math.nan


def against_paper(arm: str, by: dict) -> list[str]:
    """The table and intervals of one recipe (``quick-constant``: today's default;
    ``quick-cosine``: the default before 2026-12-07; ``quick-epochs60``: the default before
    its step budget) against the paper's, paired by dataset and seed."""
    pairs = [(d, s, by[d, arm, s], by[d, "paper", s]) for (d, rc, s) in sorted(by)
             if rc == arm and (d, "paper", s) in by]
    lines = [f"### {arm} against paper", "",
             f"| dataset | seed | {arm}: balanced error | paper | {arm} - paper (points) | "
             f"{arm}: epochs, train s | paper: epochs, train s |", "|---|---|---|---|---|---|---|"]
    lines += [f"| {d} | {s} | {q['balanced_error']:.1%} | {p['balanced_error']:.1%} | "
              f"{(q['balanced_error'] - p['balanced_error']) * 100:+.1f} | {q['epochs_run']}, "
              f"{q['train_seconds']:.0f} | {p['epochs_run']}, {p['train_seconds']:.0f} |"
              for d, s, q, p in pairs]
    groups = {d: [] for d, *_ in pairs}
    for d, s, q, p in pairs:
        groups[d].append(q["balanced_error"] - p["balanced_error"])
    groups["all"] = [x for d in list(groups) for x in groups[d]]
    lines.append("")
    for name, diffs in groups.items():
        mean, half = interval(diffs)
        lines.append(f"- {name}: {arm} - paper = {mean * 100:+.2f} points of balanced error "
                     f"over {len(diffs)} paired runs (95% t-interval {(mean - half) * 100:+.2f} "
                     f"to {(mean + half) * 100:+.2f})")
    time_q = sum(q["train_seconds"] for *_, q, _ in pairs)
    time_p = sum(p["train_seconds"] for *_, p in pairs)
    if pairs:
        lines.append(f"- training time: {arm} {time_q / 60:.0f} min against paper "
                     f"{time_p / 60:.0f} min in all ({time_p / time_q:.1f}x; one thread per "
                     f"run, two runs at a time)")
    return lines + [""]


def main(root: Path) -> None:
    rows = runs(root)
    if not rows:
        sys.exit(f"no finished runs under {root}: run docs/results/recipe/run.sh first")
    write_csv(HERE / "recipe.csv", rows)
    by = {(r["dataset"], r["recipe"], r["seed"]): r for r in rows}
    lines = []
    for arm in sorted({r["recipe"] for r in rows} - {"paper"}, key=lambda a: (a != "quick-constant", a)):
        lines += against_paper(arm, by)
    (HERE / "recipe.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path.home() / "rrrnet-runs" / "recipe")
