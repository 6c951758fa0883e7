"""Gather the ablation's finished cells (FOLDER/variants/*.csv, written by run_ablation.sh) into
ablation.csv, summary.csv, summary.md and ablation.png in FOLDER (default: this folder).
Decisions are read from the validation errors only, each variant against the default E of the
same dataset and seed (paired differences); test errors are listed for the record.

    python docs/results/ablation/collect.py [FOLDER]
"""
from __future__ import annotations

import statistics
import sys
from pathlib import Path

from rrrnet.io import atomic_write, read_csv, write_csv
from rrrnet.report.stats import mean_ci

HERE = Path(__file__).parent
# variant -> (setting, value); "default" rows are the reference of every setting
SETTINGS = {
    "default": ("default", "paper's recipe"),
    "weights-none": ("weights", "none"),
    "init-first": ("init", "first"), "init-random": ("init", "random"),
    "bn-default": ("branch BatchNorm", "default-initialised"),
    "shift-0": ("shift a", "0"),
    "views-independent": ("branch views", "independent"),
    "ema-step": ("EMA", "per step, 59/60"), "ema-none": ("EMA", "none"),
    "warmup-off": ("stump BN warm-up", "off"),
    "augment-0": ("augmentation ops", "0"), "augment-1": ("augmentation ops", "1"),
    "lr-scaled": ("learning rate", "x sqrt(8)"),
    "split-layer4": ("split at", "layer4"),
    "branches-2": ("branches", "2"), "branches-4": ("branches", "4"),
    "branches-16": ("branches", "16"),
}


def rows(folder: Path = HERE) -> list[dict]:
    out = []
    for variant, (setting, value) in SETTINGS.items():
        for row in read_csv(folder / "variants" / f"{variant}.csv"):
            out.append({"variant": variant, "setting": setting, "value": value,
                        "method": row["method"], "dataset": row["dataset"], "seed": row["seed"],
                        "val_error": row["val_error"], "test_error": row["error"],
                        "epochs": row["epochs"], "weights": row["weights"]})
    return out


def summary(table: list[dict]) -> list[dict]:
    """Per (variant, method, dataset): the mean validation error over seeds with its 95%
    t-interval, and its paired difference from the default E of the same dataset and seeds."""
    groups: dict[tuple, list[dict]] = {}
    for row in table:
        groups.setdefault((row["variant"], row["method"], row["dataset"]), []).append(row)
    default_e = {(r["dataset"], r["seed"]): r["val_error"] for r in table
                 if r["variant"] == "default" and r["method"] == "E"}
    out = []
    for (variant, method, dataset), rs in groups.items():
        mean, low, high = mean_ci([r["val_error"] for r in rs])
        diffs = [r["val_error"] - default_e[(dataset, r["seed"])] for r in rs
                 if (dataset, r["seed"]) in default_e]
        diff, diff_low, diff_high = mean_ci(diffs) if diffs else (float("nan"),) * 3
        out.append({"variant": variant, "setting": SETTINGS[variant][0],
                    "value": SETTINGS[variant][1], "method": method, "dataset": dataset,
                    "seeds": len(rs), "val_error": mean, "val_low": low, "val_high": high,
                    "pairs": len(diffs), "val_minus_default_e": diff, "diff_low": diff_low,
                    "diff_high": diff_high,
                    "test_error": statistics.mean(r["test_error"] for r in rs)})
    return out


def figure(table: list[dict], path: Path) -> None:
    """Each variant's validation error minus the default E's (paired by dataset and seed), with
    its 95% t-interval where there are two pairs or more."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    shown = [s for s in table if s["pairs"] and not (s["variant"] == "default" and
                                                      s["method"] == "E")]
    fig, ax = plt.subplots(figsize=(10, 0.35 * len(shown) + 1.4))
    for i, s in enumerate(shown):
        diff = s["val_minus_default_e"] * 100
        error = None if s["pairs"] < 2 else [[diff - s["diff_low"] * 100],
                                              [s["diff_high"] * 100 - diff]]
        ax.errorbar(diff, i, xerr=error, fmt="o", color="C0" if s["method"] == "E" else "C2")
    ax.axvline(0, color="C3", lw=0.8, ls="--")
    ax.set_yticks(range(len(shown)), [f"{s['method']}, {s['setting']}: {s['value']} "
                                      f"({s['dataset']}, n={s['pairs']})" for s in shown],
                  fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("validation error minus the default E's, points (paired by dataset and seed; "
                  "95% t-interval)", fontsize=8)
    fig.tight_layout()
    atomic_write(path, lambda f: fig.savefig(f, format="png", dpi=120))
    plt.close(fig)


def main(folder: Path = HERE) -> None:
    table = rows(folder)
    write_csv(folder / "ablation.csv", table)
    s = summary(table)
    write_csv(folder / "summary.csv", s)
    figure(s, folder / "ablation.png")
    lines = ["| setting | value | method | dataset | seeds | val error | 95% interval "
             "| minus default E (paired) | 95% interval | test error |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in s:
        interval = "-" if r["seeds"] < 2 else f"[{r['val_low']:.1%}, {r['val_high']:.1%}]"
        diff = "-" if r["variant"] == "default" and r["method"] == "E" else (
            f"{r['val_minus_default_e']:+.1%}" if r["pairs"] else "-")
        diff_interval = ("-" if r["pairs"] < 2 or diff == "-" else
                         f"[{r['diff_low']:+.1%}, {r['diff_high']:+.1%}]")
        lines.append(f"| {r['setting']} | {r['value']} | {r['method']} | {r['dataset']} | "
                     f"{r['seeds']} | {r['val_error']:.1%} | {interval} | {diff} | "
                     f"{diff_interval} | {r['test_error']:.1%} |")
    atomic_write(folder / "summary.md", lambda f: f.write("\n".join(lines) + "\n"), mode="w")
    print("\n".join(lines))


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else HERE)
