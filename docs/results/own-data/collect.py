"""Collect the own-data run (run.sh) into this folder: result.json (the headline figures),
per_class.csv (recall, precision, F1 and support on test, with each class's training count),
counts.csv (images per part and class, from the run's split.csv), skipped.csv (the run's, as
it is), history.csv (the run's), and a Markdown table printed for the README.

    python docs/results/own-data/collect.py RUN OUT
"""
from __future__ import annotations

import csv
import json
import shutil
import sys
from collections import Counter
from pathlib import Path


def read_csv(path: Path) -> list[dict]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def skip_kind(reason: str) -> str:
    """"duplicate of X" -> "duplicate", "broken symbolic link to X" -> "broken symbolic link"."""
    if reason.startswith("DecompressionBombError"):   # the wording before 2026-12-06
        return "image over the decompression-bomb limit"
    for cut in (" (", " of ", " to "):
        reason = reason.split(cut)[0]
    return reason


def main(run: Path, out: Path) -> None:
    metrics = json.loads((run / "metrics.json").read_text())
    config = json.loads((run / "config.json").read_text())
    memory = json.loads((out / "memory.json").read_text())
    split = read_csv(run / "split.csv")
    skipped = read_csv(run / "skipped.csv")
    history = read_csv(run / "history.csv")
    counts = Counter((row["part"], row["label"]) for row in split)
    classes = sorted({row["label"] for row in split})
    parts = [p for p in ("train", "val", "test") if any(k[0] == p for k in counts)]
    with open(out / "counts.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["class", *parts])
        for name in classes:
            writer.writerow([name, *(counts[p, name] for p in parts)])
        writer.writerow(["total", *(sum(counts[p, c] for c in classes) for p in parts)])
    with open(out / "per_class.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["class", "train_images", "test_support", "recall", "precision", "f1"])
        for name in classes:
            row = metrics["per_class"][name]
            writer.writerow([name, counts["train", name], row["support"],
                             *(None if row[k] is None else round(row[k], 4)
                               for k in ("recall", "precision", "f1"))])
    shutil.copyfile(run / "skipped.csv", out / "skipped.csv")
    shutil.copyfile(run / "history.csv", out / "history.csv")
    result = {
        "command": "bash docs/results/own-data/run.sh",
        "dataset": "Debian openclipart-png, 8 top-level category folders copied as they are",
        "weights": metrics.get("weights_used"),
        "recipe": config.get("recipe", {}),
        "test_error": metrics["error"], "balanced_error": metrics["balanced_error"],
        "macro_f1": metrics["macro_f1"],
        "test_images": metrics.get("test_images"), "classes": len(classes),
        "images_per_part": {p: sum(counts[p, c] for c in classes) for p in parts},
        "skipped": dict(Counter(skip_kind(row["reason"]) for row in skipped)),
        "epochs_run": len(history), "best_epoch": metrics.get("best_epoch"),
        "setup_seconds": metrics.get("setup_seconds"), "train_seconds": metrics.get("train_seconds"),
        "wall_seconds": memory["wall_seconds"], "peak_pss_gib": memory["peak_pss_gib"],
        "peak_rss_gib": memory["peak_rss_gib"], "peak_processes": memory["peak_processes"],
    }
    (out / "result.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    print("\n| class | train | test | recall | precision | F1 |\n|---|---:|---:|---:|---:|---:|")
    for row in read_csv(out / "per_class.csv"):
        print(f"| {row['class']} | {row['train_images']} | {row['test_support']} | "
              f"{float(row['recall']):.2f} | {float(row['precision'] or 'nan'):.2f} | "
              f"{float(row['f1'] or 'nan'):.2f} |")


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    main(Path(sys.argv[1]), Path(sys.argv[2]))
