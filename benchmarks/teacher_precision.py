"""Forward-pass time of a distillation teacher (baseline [B]'s ResNet-152) in float32 and in
bf16 autocast: what a distilled step pays for its teacher (:mod:`rrrnet.training.distill`
runs a teacher trained in mixed precision at the device's fastest precision).

The model is method B's architecture with untrained weights (the speed does not depend on
them), channels-last as training uses it, batch 32 at 128 px, no gradient; precisions
alternate round by round so that drift in the machine's speed hits both alike, the first
round is a warm-up. Usage:

    python benchmarks/teacher_precision.py [--threads 1] [--rounds 6]
        [--out benchmarks/results/teacher_precision.json]

Run it on an idle machine: anything else on the cores changes the figures.
"""
from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

import torch

from predict_throughput import cpu_name   # this folder's scripts, run from the repository root
from rrrnet.experiments.methods import method_setup
from rrrnet.io import write_json
from rrrnet.model import blank
from rrrnet.precision import cpu_has_bf16, resolve_precision


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=6, help="timed rounds per precision")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--out", default="benchmarks/results/teacher_precision.json")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    config, _ = method_setup("B", weights="none")
    teacher = blank(config).eval().to(memory_format=torch.channels_last)
    x = torch.randn(args.batch, 3, 128, 128).contiguous(memory_format=torch.channels_last)
    times: dict[str, list[float]] = {"fp32": [], "bf16": []}
    with torch.no_grad():
        for round_ in range(args.rounds + 1):
            for name in times:
                with resolve_precision(name, "cpu").autocast():
                    started = time.perf_counter()
                    teacher(x)
                    elapsed = time.perf_counter() - started
                if round_:
                    times[name].append(elapsed)
    result = {"command": "python benchmarks/teacher_precision.py " + " ".join(
                  f"--{k} {v}" for k, v in vars(args).items() if k != "out"),
              "machine": f"{cpu_name()}, {os.cpu_count()} cores",
              "cpu_has_bf16": cpu_has_bf16(), "threads": args.threads, "batch": args.batch,
              "torch": torch.__version__,
              "median_ms": {k: round(statistics.median(v) * 1000, 1) for k, v in times.items()},
              "ms": {k: [round(t * 1000, 1) for t in v] for k, v in times.items()}}
    result["speedup"] = round(result["median_ms"]["fp32"] / result["median_ms"]["bf16"], 2)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    write_json(args.out, result)
    print(result["median_ms"], "speedup", result["speedup"])


if __name__ == "__main__":
    main()
