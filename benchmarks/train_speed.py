"""Time one training epoch of RRR-Net, fused, against the authors' scheme, side by side.

* fused, shared views: all branches in one pass per batch, the frozen stump computed once;
* fused, independent views: one augmentation draw per branch, the stump run on each view;
* the authors' scheme (SunHaozhe/RRR_Net): branches trained one after another, each with its own
  AdamW and its own full pass over the data (own augmentation draws), the stump recomputed for
  every branch;
* the same with our folded frozen stump (BatchNorm folded, strided 1x1 convolutions subsampled,
  as ``rrrnet fit`` runs it): not the authors' code, but it shows how much of the speed-up is
  sharing the stump and how much is the faster stump.

Same data (the embedded dataset unless --data), same model and machine, measured in one run.
Prints seconds per epoch and the ratios, and the ratio the arithmetic allows: a training step
costs about one stump forward (no gradient: the stump is frozen) plus three branch forwards
(forward, input and weight gradients), so the authors' scheme costs ``b*S + 3*B`` MACs per image
against ``S + 3*B`` fused (S: stump MACs, B: all branches' MACs). Augmentation (done b times by
the authors' scheme, once here) comes on top. Usage:

    python benchmarks/train_speed.py [--data DIR] [--epochs 1] [--threads 2] [--branches 8]
"""
from __future__ import annotations

import argparse
import time

import torch

from rrrnet.cost import cost
from rrrnet.demo import demo_data
from rrrnet.model import ModelConfig, build
from rrrnet.recycle import convert, stage_index
import rrrnet
from rrrnet.data import ImageDataset
from rrrnet.train import DataSpec, Recipe, TrainingImages, branch_loss, with_folded_stump
from rrrnet.training.data import loader


def fused_epoch(model, images, views: int, batch_size: int, seed: int,
                precision: str = "fp32") -> float:
    """What ``rrrnet fit`` runs: all branches at once behind the folded frozen stump (the
    training loop itself, one epoch, no stump warm-up, no average)."""
    recipe = Recipe(epochs=1, batch_size=batch_size, ema_epochs=0, warm_stump_epochs=0, seed=seed,
                    branch_views="independent" if views > 1 else "shared", precision=precision)
    return rrrnet.train(model, images, recipe, progress=False).train_seconds


def authors_epoch(model, images, batch_size: int, seed: int, fold: bool = False) -> float:
    """Each branch in turn: own optimiser, own pass over the data, stump recomputed. ``fold``:
    with our folded stump (not the authors' code; it separates the two sources of speed-up)."""
    looped = convert(model, fused=False).train().to(memory_format=torch.channels_last)
    start = time.perf_counter()
    if fold:
        looped = with_folded_stump(looped, channels_last=True)
    for i, branch in enumerate(looped.branches.branches):
        optimizer = torch.optim.AdamW(branch.parameters(), lr=1e-3, weight_decay=0.01)
        data = TrainingImages(images, 2, 1, seed + 1000 * (i + 1))
        for x, y in loader(data, batch_size, True, seed + i):
            x = x.contiguous(memory_format=torch.channels_last)
            with torch.no_grad():
                features = looped.stump(x)
            loss = branch_loss(branch(features), y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
    return time.perf_counter() - start


def mac_bound(config: ModelConfig) -> tuple[int, int, float]:
    """Stump and branch MACs per image, and the authors'/fused training-cost ratio they imply."""
    rep = cost(config)
    first = stage_index(config.split_at)  # rows: conv1 (stage -1), layer1..4 (0..3), fc (4)
    stump = sum(s.macs for stage, s in enumerate(rep.stages, -1) if stage < first)
    branches = rep.macs - stump
    b = config.branches
    return stump, branches, (b * stump + 3 * branches) / (stump + 3 * branches)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default=str(demo_data()))
    parser.add_argument("--branches", type=int, default=8)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--epochs", type=int, default=1, help="epochs timed per scheme (min taken)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    split = DataSpec(root=args.data).load()
    images = ImageDataset(split.train, size=128)
    for i in range(len(images)):  # decode once, outside the timings
        images[i]
    config = ModelConfig(branches=args.branches, num_classes=len(split.train.classes))
    model = build(config, weights="none").to(memory_format=torch.channels_last)  # NHWC for both
    print(f"{len(images)} training images, 128 px, batch {args.batch_size}, {args.branches} "
          f"branches (ResNet_1.1.1.1 split at conv4_1), {args.threads} threads, "
          f"best of {args.epochs} epoch(s)")
    times = {
        "fused, shared views": min(fused_epoch(model, images, 1, args.batch_size, args.seed)
                                   for _ in range(args.epochs)),
        "fused, independent views": min(fused_epoch(model, images, args.branches, args.batch_size,
                                                    args.seed) for _ in range(args.epochs)),
        "authors' scheme (branches in turn)": min(authors_epoch(model, images, args.batch_size,
                                                                args.seed)
                                                  for _ in range(args.epochs)),
        "authors' scheme, our folded stump": min(authors_epoch(model, images, args.batch_size,
                                                               args.seed, fold=True)
                                                 for _ in range(args.epochs)),
    }
    reference = times["authors' scheme (branches in turn)"]
    for name, seconds in times.items():
        print(f"{name:<38}{seconds:8.2f} s/epoch   speed-up vs authors' {reference / seconds:5.2f}x")
    stump, branches, bound = mac_bound(config)
    print(f"MACs per image: stump {stump / 1e6:.0f} M, {args.branches} branches "
          f"{branches / 1e6:.0f} M -> by arithmetic the fused shared-view step is "
          f"{bound:.2f}x cheaper than the authors' (plus {args.branches - 1} augmentation passes "
          f"saved)")


if __name__ == "__main__":
    main()
