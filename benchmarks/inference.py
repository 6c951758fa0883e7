"""Inference latency of RRR-Net against ResNet-152, measured side by side in one process.

Every comparison is interleaved (one run of each model per round, see
``rrrnet.latency.compare_latency``) so that the ratios hold even on a loaded machine. All models are
prepared the same way (``rrrnet.deploy.prepare`` defaults: eval, BatchNorm folded). Ratios are
medians of per-round ratios with 95% intervals. Random weights: timing does not depend on them.

    python benchmarks/inference.py [--runs 200] [--batch-runs 30] [--threads 2] [--device cpu]
    python benchmarks/inference.py --variants [--compile]   # which deployment options pay off
"""
from __future__ import annotations

import argparse
import itertools
from pathlib import Path

import torch

from rrrnet.backbone import resnet
from rrrnet.cost import backbone_cost, cost
from rrrnet.latency import compare_latency, paired_ratio
from rrrnet.deploy import DEFAULTS, prepare
from rrrnet.model import ModelConfig, build
from rrrnet.recycle import convert
from rrrnet.io import resolve_device, write_json

RRR8 = ModelConfig(arch="resnet152", blocks=(1, 1, 1, 1), branches=8, num_classes=20,
                   weights="none")
# (numerator, denominator, what the ratio says, target)
RATIOS = (("ResNet-152", "RRR-Net-8 fused", "ResNet-152 / RRR-Net-8", 6.0),
          ("RRR-Net-8 looped", "RRR-Net-8 fused", "looped / fused branches", 1.3),
          ("RRR-Net-8 fused", "ResNet_1.1.1.1", "RRR-Net-8 / ResNet_1.1.1.1 (ensemble cost)", None))


def models(image_size: int) -> tuple[dict[str, torch.nn.Module], dict[str, float]]:
    """The four models of the comparison (untrained), and their MACs per image."""
    rrr = build(RRR8, progress=False)
    reference = resnet("resnet152", num_classes=RRR8.num_classes)
    single = resnet("resnet152", RRR8.blocks, num_classes=RRR8.num_classes)
    macs = {"ResNet-152": backbone_cost(reference, image_size)[1],
            "RRR-Net-8 fused": cost(rrr.config, image_size).macs,
            "ResNet_1.1.1.1": backbone_cost(single, image_size)[1]}
    macs["RRR-Net-8 looped"] = macs["RRR-Net-8 fused"]
    return {"ResNet-152": reference, "RRR-Net-8 fused": rrr,
            "RRR-Net-8 looped": convert(rrr, fused=False), "ResNet_1.1.1.1": single}, macs


def compare_models(args, device: torch.device) -> dict:
    raw, macs = models(args.image_size)
    prepared = {name: prepare(m, device=device) for name, m in raw.items()}
    results = {}
    for batch, runs in batches(args):
        r = compare_latency(prepared, args.image_size, batch, runs, args.warmup, device,
                            args.threads, keep_times=True)
        r["pairs"] = {label: paired_ratio(r["models"][a]["times_ms"], r["models"][b]["times_ms"])
                      for a, b, label, _ in RATIOS}
        for m in r["models"].values():
            m.pop("times_ms")
        results[f"batch{batch}"] = r
        print(f"\nbatch {batch}, {runs} interleaved runs, {r['device_name']} ({r['device']}, "
              f"{r['threads'] or '-'} threads), {args.image_size} px, ms per image:")
        for name, m in r["models"].items():
            print(f"  {name:<18}{m['median_ms']:9.2f}  [{_fmt(m['ci95_ms'][0])}, "
                  f"{_fmt(m['ci95_ms'][1])}]  min {m['min_ms']:7.2f}   {macs[name] / 1e9:.3f} GMACs")
        for (a, b, label, target), ratio in zip(RATIOS, r["pairs"].values()):
            goal = f"   (target >= {target}x)" if target and batch == 1 else ""
            print(f"  {label:<44}{ratio['ratio']:6.2f}x  [{_fmt(ratio['ci95'][0])}, "
                  f"{_fmt(ratio['ci95'][1])}]   MACs ratio {macs[a] / macs[b]:.2f}x{goal}")
    return {"macs": macs, **results}


def compare_variants(args, device: torch.device) -> dict:
    """RRR-Net-8 (fused) under every combination of the deployment rewrites; with ``--compile``
    also the defaults plus ``torch.compile`` (minutes to compile on a small CPU)."""
    rrr = build(RRR8, progress=False)
    variants = {}
    for fold, sub, nhwc in itertools.product((False, True), repeat=3):
        name = " ".join(f"{k}={'on' if v else 'off'}" for k, v in
                        (("fold_bn", fold), ("subsample", sub), ("channels_last", nhwc)))
        variants[name] = prepare(rrr, fold_bn=fold, subsample=sub, channels_last=nhwc,
                                 compile=False, device=device)
    if args.compile:
        variants["defaults + compile"] = prepare(rrr, **{**DEFAULTS, "compile": True},
                                                 device=device, image_size=args.image_size)
    results = {}
    for batch, runs in batches(args):
        r = compare_latency(variants, args.image_size, batch, runs, args.warmup, device,
                            args.threads)
        results[f"batch{batch}"] = r
        print(f"\nRRR-Net-8 fused, batch {batch}, {runs} interleaved runs, {r['device_name']} "
              f"({r['device']}, {r['threads'] or '-'} threads), ms per image "
              f"(speed-up against the first row):")
        for name, m in r["models"].items():
            ratio = r["ratios"].get(name, {"ratio": 1.0})["ratio"]
            print(f"  {name:<44}{m['median_ms']:9.2f}  [{_fmt(m['ci95_ms'][0])}, "
                  f"{_fmt(m['ci95_ms'][1])}]  min {m['min_ms']:7.2f}  {ratio:5.2f}x")
    print(f"\ndefaults of rrrnet.deploy.prepare: {DEFAULTS}")
    return results


def batches(args) -> list[tuple[int, int]]:
    """(batch size, rounds): the first batch size gets ``--runs`` rounds, larger ones fewer."""
    sizes = [int(b) for b in args.batch_sizes.split(",")]
    return [(b, args.runs if i == 0 else args.batch_runs) for i, b in enumerate(sizes)]


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=200, help="interleaved rounds at batch 1")
    parser.add_argument("--batch-sizes", default="1,32", help="comma-separated (default: 1,32)")
    parser.add_argument("--batch-runs", type=int, default=30,
                        help="rounds at the larger batch sizes")
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--threads", type=int, default=None, help="CPU threads (default: torch's)")
    parser.add_argument("--image-size", type=int, default=128)
    parser.add_argument("--device", default="cpu", help="cpu, cuda or auto")
    parser.add_argument("--variants", action="store_true",
                        help="time RRR-Net-8 under each deployment option instead")
    parser.add_argument("--compile", action="store_true", help="with --variants: torch.compile too")
    parser.add_argument("--json", help="also write the results to this JSON file")
    args = parser.parse_args(argv)
    device = resolve_device(args.device)
    torch.manual_seed(0)
    result = (compare_variants if args.variants else compare_models)(args, device)
    if args.json:
        path = Path(args.json)
        path.parent.mkdir(parents=True, exist_ok=True)
        write_json(path, {"args": vars(args), **result})
        print(f"\nwrote {path}")
    return result


if __name__ == "__main__":
    main()
