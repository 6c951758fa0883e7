"""Training step time of one of the paper's methods (default E: RRR-Net) per precision, measured by a
callback on the training loop itself (``on_step_start`` to ``on_step_end``: forward, loss,
backward, optimiser step, weight average).

Same model, data (the embedded dataset's 400 training images, 128 px, batch 32, two
augmentation ops) and machine for every precision, alternated epoch by epoch so that drift in
the machine's speed hits all alike; the first epoch of each is a warm-up and is not counted.
Writes the per-precision median and quartiles of the step time (ms) to --out. Usage:

    python benchmarks/step_time.py [--method E] [--precisions fp32,bf16] [--epochs 3]
        [--threads 2] [--out benchmarks/results/step_time.json]

Run it on an idle machine: anything else on the cores changes the figures.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import statistics
import time
from pathlib import Path

import torch

import rrrnet
from rrrnet.data import ImageDataset
from rrrnet.demo import demo_data
from rrrnet.experiments.methods import method_setup
from rrrnet.model import build
from rrrnet.precision import resolve_precision
from rrrnet.train import Callback, DataSpec, Recipe
from rrrnet.training import strategies


class StepTimer(Callback):
    """Wall-clock time of every optimiser step, in seconds."""

    def __init__(self):
        self.times: list[float] = []

    def on_step_start(self, state, batch):
        self.started = time.perf_counter()

    def on_step_end(self, state, batch, loss, outputs):
        self.times.append(time.perf_counter() - self.started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default=str(demo_data()))
    parser.add_argument("--method", default="E", help="the paper's method (A-E) to time")
    parser.add_argument("--precisions", default="fp32,bf16")
    parser.add_argument("--epochs", type=int, default=3, help="timed epochs per precision")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", default="benchmarks/results/step_time.json")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    split = DataSpec(root=args.data).load()
    images = ImageDataset(split.train, size=128)
    for i in range(len(images)):  # decoded once, outside the timings
        images[i]
    config, _ = method_setup(args.method, weights="none")
    config = dataclasses.replace(config, num_classes=len(split.train.classes))
    precisions = args.precisions.split(",")
    models = {p: build(config) for p in precisions}
    times: dict[str, list[float]] = {p: [] for p in precisions}
    for epoch in range(args.epochs + 1):
        for p in precisions:   # alternated: machine drift hits every precision alike
            timer = StepTimer()
            recipe = Recipe(epochs=1, ema_epochs=0, warm_stump_epochs=0, precision=p,
                            seed=epoch)
            rrrnet.train(models[p], images, recipe, callbacks=[timer], progress=False)
            if epoch:  # the first epoch warms caches and oneDNN's kernels
                times[p].extend(timer.times)
    rows = {}
    for p, values in times.items():
        q = statistics.quantiles([v * 1000 for v in values], n=4)
        rows[p] = {"resolved": resolve_precision(p, "cpu").name, "steps": len(values),
                   "median_ms": round(statistics.median(values) * 1000, 1),
                   "q1_ms": round(q[0], 1), "q3_ms": round(q[2], 1)}
        print(f"{p:6s} median {rows[p]['median_ms']:7.1f} ms/step "
              f"(quartiles {rows[p]['q1_ms']}-{rows[p]['q3_ms']}, {len(values)} steps)")
    if "fp32" in rows:
        for p in rows:
            rows[p]["speedup_vs_fp32"] = round(rows["fp32"]["median_ms"] / rows[p]["median_ms"], 2)
    result = {"command": "python benchmarks/step_time.py " + " ".join(
                  f"--{k.replace('_', '-')} {v}" for k, v in vars(args).items() if k != "data"),
              "model": f"{args.method}: {strategies.method(args.method).summary}; 128 px, batch 32",
              "images": len(images), "threads": args.threads, "torch": torch.__version__,
              "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
              "precisions": rows}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
