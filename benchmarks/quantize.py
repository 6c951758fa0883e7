"""int8 against fp32, side by side in one run (run it on an idle machine).

For each run given: ``rrrnet.quantize.quantize_run`` (test error fp32 vs int8, file sizes,
int8/fp32 latency at batch 1 and 32), then ResNet-152 fp32 (random weights, 20 classes: timing
does not depend on them), the run's RRR-Net fp32 and its int8 file timed interleaved at batch 1.

    python benchmarks/quantize.py rrrnet-demo/E runs/study/fashion-mnist/E \
        --out docs/results/quantize --runs 200
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from rrrnet.backbone import resnet
from rrrnet.deploy import prepare
from rrrnet.io import write_json
from rrrnet.latency import compare_latency
from rrrnet.model import load
from rrrnet.quantize import QuantizedModel, quantize_run


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("runs", nargs="+", help="finished run folders")
    p.add_argument("--out", default="quantize-benchmark")
    p.add_argument("--runs", dest="rounds", type=int, default=200, help="rounds at batch 1")
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    results = {}
    for run in args.runs:
        name = Path(run).parent.name + "-" + Path(run).name
        report = quantize_run(run, out / f"{name}.int8.onnx", latency_runs=args.rounds,
                              threads=args.threads)
        model = load(Path(run) / "model.pt")
        size = QuantizedModel(out / f"{name}.int8.onnx").image_size
        timing = compare_latency(
            {"resnet152_fp32": prepare(resnet("resnet152", num_classes=model.config.num_classes),
                                       image_size=size),
             "rrr_fp32": prepare(model, image_size=size),
             "rrr_int8": QuantizedModel(out / f"{name}.int8.onnx", threads=args.threads)},
            size, 1, runs=args.rounds, warmup=10, threads=args.threads,
            reference="resnet152_fp32")
        report["resnet152_fp32_over_int8_batch_1"] = {
            "ratio": timing["ratios"]["rrr_int8"]["ratio"],
            "ci95": timing["ratios"]["rrr_int8"]["ci95"],
            "resnet152_ms": timing["models"]["resnet152_fp32"]["median_ms"],
            "int8_ms": timing["models"]["rrr_int8"]["median_ms"],
            "fp32_ms": timing["models"]["rrr_fp32"]["median_ms"]}
        results[name] = report
        print(json.dumps({name: report}, indent=2))
    write_json(out / "quantize.json", results)


if __name__ == "__main__":
    main()
