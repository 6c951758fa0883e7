"""Shared or independent branch views? Train RRR-Net both ways on the ICDAR-micro stand-in.

The stand-in is split like ICDAR-micro (15 train / 5 validation / 20 test per class); both runs
use the same seed, weights and budget. Prints test and validation error and training time.

    python benchmarks/branch_views.py [--out runs/branch-views] [--epochs 15] [--weights astra-ct]
"""
from __future__ import annotations

import argparse
from pathlib import Path

from rrrnet.data.sources import convert_icdar_stand_in
from rrrnet.model import ModelConfig
from rrrnet.train import DataSpec, Recipe, fit
from rrrnet.weights import find_local


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="runs/branch-views")
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--ema-epochs", type=int, default=5)
    parser.add_argument("--weights", default=None, help="default: found locally (else none)")
    parser.add_argument("--seeds", default="0", help="comma-separated seeds")
    args = parser.parse_args()
    out = Path(args.out)
    data_dir = out / "icdar-stand-in"
    if not (data_dir / "labels.csv").exists():
        convert_icdar_stand_in(data_dir, per_class=40, seed=0)
    data = DataSpec(root=str(data_dir), train=15, val=5, test=20)
    weights = args.weights or find_local("resnet152") or "none"
    print(f"ICDAR-micro stand-in, 15/5/20 per class, {args.epochs} epochs "
          f"(EMA over {args.ema_epochs}), weights {weights}")
    for seed in (int(s) for s in args.seeds.split(",")):
        for views in ("shared", "independent"):
            recipe = Recipe(epochs=args.epochs, ema_epochs=args.ema_epochs, warm_stump_epochs=2,
                            branch_views=views, seed=seed, eval_every=0)
            result = fit(data, out / f"{views}-seed{seed}", ModelConfig(weights=weights, seed=seed),
                         recipe, resume=True, progress=False)
            m = result.metrics
            print(f"seed {seed} {views:<12} test error {m['error']:.3f}  validation error "
                  f"{m['val']['error']:.3f}  mean branch error {m['mean_branch_error']:.3f}  "
                  f"train {m['train_seconds']:.0f} s", flush=True)


if __name__ == "__main__":
    main()
