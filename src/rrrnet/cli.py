"""The ``rrrnet`` command: the parser and the dispatch. Each command group's options, its one
library call and its output are in :mod:`rrrnet.commands`; the work is in the library."""
from __future__ import annotations

import argparse
import dataclasses
import os
import sys
from typing import Any, Sequence

from . import __version__, commands
from .commands.args import add_run_flags, add_weights_arg
from .commands.args import seed_list  # noqa: F401  (rrrnet.cli.seed_list, as before)
from .errors import ConfigError, RRRNetError
from .options import ARCH_NAMES as ARCHS
from .options import INIT_MODES, SPLIT_POINTS

EXIT_USER_ERROR = 2


# fit: owned by the training-loop rewrite (its options, their reading, the two-pass parse and
# cmd_fit stay here until that rewrite moves them; the other commands read the model and
# recipe options through these functions).
def add_model_args(parser: argparse.ArgumentParser, num_classes: bool = True) -> None:
    g = parser.add_argument_group("model")
    g.add_argument("--arch", default="resnet152", choices=sorted(ARCHS),
                   help="template ResNet (default: resnet152)")
    g.add_argument("--blocks", default="1,1,1,1",
                   help="blocks kept per stage, ResNet_{x1-x2-x3-x4} (default: 1,1,1,1)")
    g.add_argument("--branches", "-b", type=int, default=8, help="number of branches (default: 8)")
    if num_classes:  # fit takes the class count from its data
        g.add_argument("--num-classes", type=int, default=20,
                       help="classes of the task (default: 20)")
    g.add_argument("--split-at", default="layer3", choices=SPLIT_POINTS,
                   help="first stage split into branches; layer3 is conv4_1 (default: layer3)")
    g.add_argument("--shift", "-a", type=int, default=None,
                   help="Equation 1's a; default: calibrated so the branches hold no more "
                        "parameters than the part they replace")
    g.add_argument("--init", default="aligned", choices=INIT_MODES,
                   help="branch initialisation: aligned slicing of the pretrained kernels (input "
                        "channels follow each branch), first (the authors' release: first C_in "
                        "channels, default BatchNorm) or random (no reuse, an ablation)")
    g.add_argument("--no-slice-bn", dest="slice_bn", action="store_false",
                   help="with --init aligned, leave the branch BatchNorms at their default "
                        "initialisation instead of slicing them (an ablation)")
    g.add_argument("--seed", type=int, default=0, help="seed of slicing and new classifiers")


def model_config(args: argparse.Namespace):
    from .model import ModelConfig
    from .reduce import parse_blocks
    return ModelConfig(arch=args.arch, blocks=parse_blocks(args.blocks), branches=args.branches,
                       freeze_stump=getattr(args, "freeze_stump", True),
                       dropout=getattr(args, "dropout", None) or 0.0,
                       num_classes=getattr(args, "num_classes", 20), split_at=args.split_at,
                       shift=args.shift,
                       init=args.init, seed=args.seed, slice_bn=getattr(args, "slice_bn", True),
                       weights=getattr(args, "weights", "none") or "none")


def add_recipe_args(parser: argparse.ArgumentParser) -> None:
    from .options import PRECISIONS
    from .recipe import BRANCH_VIEWS, ENSEMBLES, Recipe
    d = Recipe()
    g = parser.add_argument_group("training recipe (defaults: the paper's)")
    g.add_argument("--epochs", type=int, default=d.epochs)
    g.add_argument("--batch-size", type=int, default=d.batch_size)
    g.add_argument("--lr", type=float, default=d.lr)
    g.add_argument("--weight-decay", type=float, default=d.weight_decay)
    g.add_argument("--ema-epochs", type=int, default=d.ema_epochs,
                   help="average the weights over the last min(N, ceil(epochs/2)) epochs: an "
                        "EMA whose window spans them, bias-corrected so that no weights from "
                        "before its start remain (0: no average; default %(default)s)")
    g.add_argument("--ema-step-decay", type=float, default=d.ema_step_decay,
                   help="a fixed EMA decay per optimiser step instead (the authors' release: "
                        "0.98333 = 59/60, a window of about 60 steps); 0: the rule above")
    g.add_argument("--warm-stem-epochs", dest="warm_stump_epochs", type=int,
                   default=d.warm_stump_epochs, help=argparse.SUPPRESS)  # the old spelling
    g.add_argument("--warm-stump-epochs", type=int, default=d.warm_stump_epochs,
                   help="passes re-estimating the frozen stump's BatchNorm statistics")
    g.add_argument("--augment-ops", type=int, default=d.augment_ops,
                   help="augmentations drawn per image (0: none)")
    g.add_argument("--branch-views", default=d.branch_views, choices=BRANCH_VIEWS,
                   help="shared: one augmented view for all branches, stump computed once; "
                        "independent: one view per branch")
    g.add_argument("--image-size", type=int, default=d.image_size)
    g.add_argument("--eval-every", type=int, default=d.eval_every,
                   help="test error of the raw and of the averaged weights in history.csv "
                        "every N epochs (0: only at the end)")
    g.add_argument("--num-workers", type=int, default=d.num_workers, help="data loader workers")
    g.add_argument("--device", default=d.device, help="auto, cpu or cuda")
    g.add_argument("--precision", default=d.precision, choices=PRECISIONS,
                   help="autocast of the training steps: bf16 on CPUs with native bf16, fp16 "
                        "(with a grad scaler) on CUDA, auto the fastest supported one "
                        f"(default: {d.precision})")
    e = parser.add_argument_group("ensemble training (rrrnet.ensembles)")
    e.add_argument("--ensemble", default=d.ensemble, choices=ENSEMBLES,
                   help="naive: each branch its own loss (the paper's); bagging: each branch its "
                        "own bootstrap sample; snapshot: the snapshots of b cosine cycles; fge: "
                        "Fast Geometric Ensembling (default: naive)")
    e.add_argument("--fge-cycle-epochs", type=int, default=d.fge_cycle_epochs,
                   help=f"FGE: epochs per cycle (default: {d.fge_cycle_epochs})")
    e.add_argument("--fge-lr-high", type=float, default=d.fge_lr_high,
                   help=f"FGE: highest rate of a cycle, times --lr (default: {d.fge_lr_high})")
    e.add_argument("--fge-lr-low", type=float, default=d.fge_lr_low,
                   help=f"FGE: lowest rate, where models are collected, times --lr "
                        f"(default: {d.fge_lr_low})")
    s = parser.add_argument_group("data split (per class)")
    s.add_argument("--train", type=int, default=20, help="training images per class")
    s.add_argument("--val", type=int, default=0, help="validation images per class")
    s.add_argument("--test", type=int, default=20, help="test images per class")
    s.add_argument("--skip-bad-images", action="store_true",
                   help="drop missing or corrupt images with a warning instead of stopping")
    s.add_argument("--allow-outside-files", action="store_true",
                   help="accept labels.csv rows naming files outside the dataset folder")


def recipe(args: argparse.Namespace):
    """The Recipe of the parsed options (fields without an option keep their default, or the
    value a --method or --config layer set: see :func:`parse`)."""
    from .recipe import Recipe
    return Recipe(**{f.name: getattr(args, f.name) for f in dataclasses.fields(Recipe)
                     if hasattr(args, f.name)})


def data_spec(args: argparse.Namespace, root: str):
    from .recipe import DataSpec
    return DataSpec(root=root, train=args.train, val=args.val, test=args.test,
                    skip_bad_images=args.skip_bad_images,
                    allow_outside_files=getattr(args, "allow_outside_files", False))


def fit_layers(args: argparse.Namespace) -> dict[str, Any]:
    """The option values that ``--method`` and then ``--config`` set, as parser defaults. Read in
    a first pass and applied with ``set_defaults`` before the real parse (timm's train.py does
    the same), so precedence holds by construction: defaults < method < config file < typed."""
    from .experiments.methods import load_config_file, method_setup
    from .recipe import Recipe
    layers: dict[str, Any] = {}
    if args.method:
        base = Recipe(seed=args.seed)
        model, rec = method_setup(args.method, base, seed=args.seed, dropout=args.dropout,
                                  weights=args.weights, arch=args.arch)
        layers.update(blocks=_blocks_text(model.blocks), branches=model.branches,
                      split_at=model.split_at, dropout=model.dropout,
                      freeze_stump=model.freeze_stump)
        layers.update({f.name: getattr(rec, f.name) for f in dataclasses.fields(Recipe)
                       if getattr(rec, f.name) != getattr(base, f.name)})
    if args.config:
        config = load_config_file(args.config)
        entry = config["methods"].get(args.method, {}) if args.method else {}
        for values in (config["recipe"], config["model"], entry):
            layers.update({k: _blocks_text(v) if k == "blocks" else v for k, v in values.items()})
    return layers


def _blocks_text(blocks) -> str:
    return blocks if isinstance(blocks, str) else ",".join(map(str, blocks))


def parse(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Parse a command line; ``fit`` in two passes (:func:`fit_layers`)."""
    p = parser()
    args = p.parse_args(argv)
    if args.command == "fit" and (args.method or args.config):
        layers = fit_layers(args)
        p.commands["fit"].set_defaults(**layers)
        args = p.parse_args(argv)
        _check_method_options(args, layers)
    return args


def _check_method_options(args: argparse.Namespace, layers: dict[str, Any]) -> None:
    """A typed --blocks, --branches or --split-at that changes what --method sets is refused:
    it would be a custom model under a method's name."""
    if not args.method:
        return
    from .reduce import parse_blocks
    clash = [name for name in ("blocks", "branches", "split_at")
             if (parse_blocks(getattr(args, name)) if name == "blocks" else getattr(args, name))
             != (parse_blocks(layers[name]) if name == "blocks" else layers[name])]
    if clash:
        raise ConfigError(f"--method {args.method} sets {', '.join(_flag(c) for c in clash)} "
                          f"itself; leave {'them' if len(clash) > 1 else 'it'} out, or drop "
                          f"--method for a custom model")
    if args.method != "D" and args.dropout != layers["dropout"]:
        raise ConfigError(f"--dropout is method D's rate; method {args.method} has no dropout "
                          f"(without --method it applies to a custom model)")


def _flag(field: str) -> str:
    return "--" + field.replace("_", "-")


def cmd_fit(args: argparse.Namespace) -> int:
    from .train import fit
    model, rec = model_config(args), recipe(args)
    result = fit(data_spec(args, args.data), args.out, model, rec,
                 resume=args.resume, overwrite=args.overwrite, progress=not args.quiet)
    m = result.metrics
    if args.method:
        print(f"method {args.method}, {rec.ensemble} ensemble of {model.branches} branch(es)")
    print(f"{result.out}: test error {m['error']:.2%} (branches "
          f"{', '.join(f'{e:.1%}' for e in m['branch_errors'])}), NLL {m['nll']:.3f}, "
          f"ECE {m['ece']:.3f}")
    return 0


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="rrrnet", description="Reuse, reduce and recycle a "
                                "pretrained ResNet into a small, fast ensemble of branches.")
    p.add_argument("--version", action="version", version=f"rrrnet {__version__}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    commands.model.add(sub, add_model_args, model_config)              # info, build, weights
    # fit: owned by the training-loop rewrite
    fit = sub.add_parser("fit", help="train an RRR-Net on a dataset into a run folder")
    fit.add_argument("data", help="dataset folder (Meta-Album: labels.csv, info.json, images/; "
                                  "or one sub-folder per class)")
    fit.add_argument("--out", "-o", required=True, help="run folder to write")
    add_model_args(fit, num_classes=False)
    add_weights_arg(fit)
    add_recipe_args(fit)
    from .options import METHODS
    mg = fit.add_argument_group("the paper's methods and configuration files")
    mg.add_argument("--method", choices=list(METHODS),
                    help="one of the paper's models; sets --blocks, --branches, --split-at (and "
                         "what trains) itself: " + "; ".join(f"{k}: {v}" for k, v in METHODS.items()))
    mg.add_argument("--dropout", type=float, default=None,
                    help="dropout after every activation of layer3/layer4: method D's rate "
                         "(default 0.05), or a custom model's (default: none)")
    mg.add_argument("--config", help="recipe/model overrides file (e.g. from rrrnet tune); "
                                     "options typed on the command line win over it")
    add_run_flags(fit, what="a run", resume="continue an interrupted run")
    fit.set_defaults(func=cmd_fit)
    commands.analysis.add(sub)                                         # evaluate, uncertainty
    commands.deploy.add(sub, add_model_args, model_config)   # quantize, predict, latency, export
    commands.demo.add(sub)
    commands.data.add(sub)
    commands.experiments.add(sub, add_recipe_args, recipe, data_spec)  # tune ... prune-compare
    for name in ("fit", "build", "weights", "demo", "select-blocks", "sweep-branches",
                 "benchmark", "tune"):
        sub.choices[name].add_argument(
            "--timeout", type=float, default=None, metavar="SECONDS",
            help="download timeout on connecting and on every read (default: "
                 "$RRRNET_DOWNLOAD_TIMEOUT or 60)")
    p.commands = sub.choices  # name -> sub-parser, for the two-pass parse of fit
    return p


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = parse(argv)
        if getattr(args, "timeout", None) is not None:
            os.environ["RRRNET_DOWNLOAD_TIMEOUT"] = str(args.timeout)  # read by weights.download
        return args.func(args)
    except RRRNetError as err:
        print(f"rrrnet: error: {err}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print("rrrnet: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
