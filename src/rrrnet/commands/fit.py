"""``fit``: train into a run folder. Its options are :class:`~rrrnet.recipe.Recipe`'s and
:class:`~rrrnet.model.ModelConfig`'s fields under one name each (``--warmup-epochs`` is
``Recipe.warmup_epochs`` and ``"warmup_epochs"`` in a config file), and the methods and
ensembles come from the strategy registry (:mod:`rrrnet.training.strategies`).

Precedence, lowest first: the recipe preset (``--recipe quick``, the default, or ``paper``),
``--method``, ``--config``, then what is typed. The preset, method and config layers are read
in a first pass and become parser defaults (timm's train.py does the same), so precedence holds
by construction.
"""
from __future__ import annotations

import argparse
import dataclasses
import math
import os
import sys
from pathlib import Path
from typing import Any

from ..checks import check_values
from ..errors import ConfigError
from ..options import ARCH_NAMES, INIT_MODES, PRECISIONS, SPLIT_POINTS
from ..training import strategies
from .args import add_run_flags, add_weights_arg, check_config_types

QUICK_PATIENCE = 10   # the quick recipe's early stopping, where a validation part exists


def add_model_args(parser: argparse.ArgumentParser, num_classes: bool = True) -> None:
    g = parser.add_argument_group("model")
    g.add_argument("--arch", default="resnet152", choices=sorted(ARCH_NAMES),
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
    from ..model import ModelConfig
    from ..reduce import parse_blocks
    return ModelConfig(arch=args.arch, blocks=parse_blocks(args.blocks), branches=args.branches,
                       freeze_stump=getattr(args, "freeze_stump", True),
                       dropout=getattr(args, "dropout", None) or 0.0,
                       num_classes=getattr(args, "num_classes", 20), split_at=args.split_at,
                       shift=args.shift,
                       init=args.init, seed=args.seed, slice_bn=getattr(args, "slice_bn", True),
                       weights=getattr(args, "weights", "none") or "none")


def add_recipe_args(parser: argparse.ArgumentParser, title: str = "defaults: the paper's") -> None:
    from ..recipe import (BALANCES, BRANCH_VIEWS, DISTILL_TARGETS, LENGTHEN_AT_MOST,
                          QUICK_MIN_STEPS, RESIZE_MODES, SCHEDULES, Recipe)
    d = Recipe()
    g = parser.add_argument_group(f"training recipe ({title})")
    g.add_argument("--epochs", type=int, default=d.epochs)
    g.add_argument("--min-steps", type=int, default=d.min_steps,
                   help="at least N optimiser steps: on a small training set the epochs grow "
                        f"(at most {LENGTHEN_AT_MOST}x), with warm-up, average and evaluation "
                        "interval in proportion (quick recipe: "
                        f"{QUICK_MIN_STEPS}; 0: exactly --epochs; a typed --epochs means 0)")
    g.add_argument("--batch-size", type=int, default=d.batch_size)
    g.add_argument("--lr", type=float, default=d.lr)
    g.add_argument("--weight-decay", type=float, default=d.weight_decay)
    g.add_argument("--schedule", default=d.schedule, choices=SCHEDULES,
                   help="learning rate: constant (the paper's), cosine to 0 over the epochs, "
                        "or auto (the quick recipe's): constant where --min-steps lengthens "
                        "the run, else cosine")
    g.add_argument("--warmup-epochs", type=int, default=d.warmup_epochs,
                   help="linear learning-rate warm-up before the schedule (epochs)")
    g.add_argument("--precision", default=d.precision, choices=PRECISIONS,
                   help="autocast of the training steps: bf16 (CPUs with native bf16, recent "
                        "GPUs), fp16 with a grad scaler (CUDA), auto the fastest supported one; "
                        "evaluation always runs in fp32")
    g.add_argument("--patience", type=int, default=d.patience,
                   help="stop after N evaluations of the validation part without a lower error "
                        "of the kept (averaged) weights, and keep the best (0: never)")
    g.add_argument("--ema-epochs", type=int, default=d.ema_epochs,
                   help="average the weights over the last min(N, ceil(epochs/2)) epochs: an "
                        "EMA whose window spans them, bias-corrected so that no weights from "
                        "before its start remain (0: no average)")
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
    g.add_argument("--image-size", type=int, default=d.image_size,
                   help=f"side of the square training images in pixels (default: {d.image_size})")
    g.add_argument("--resize", default=d.resize, choices=RESIZE_MODES,
                   help=f"how a non-square image becomes square: squash (keeps every pixel), "
                        f"crop (centre) or pad (white); default: {d.resize}")
    g.add_argument("--balance", default=d.balance, choices=BALANCES,
                   help="imbalanced classes: none, weights (a class-weighted loss: each class "
                        "weighs N / (classes x its count)) or sampler (every epoch resampled "
                        "with each class equally likely)")
    g.add_argument("--eval-every", type=int, default=d.eval_every,
                   help="validation (else test) error of the raw and averaged weights in "
                        "history.csv every N epochs (0: only at the end)")
    g.add_argument("--log", default=d.log, metavar="LOGGERS",
                   help="loggers writing RUN/logs/ per epoch (loss, validation error, lr, "
                        "time), comma-separated: csv, tensorboard, mlflow (history.csv always "
                        "holds every column)")
    g.add_argument("--num-workers", type=int, default=d.num_workers,
                   help=f"data loader worker processes (default: {d.num_workers}, decoding in "
                        f"the training process)")
    g.add_argument("--device", default=d.device, help="auto, cpu or cuda")
    k = parser.add_argument_group("knowledge distillation (rrrnet.training.distill)")
    k.add_argument("--distill", default=d.distill, metavar="TEACHER_RUN",
                   help="a finished run (e.g. baseline B) whose softened outputs the branches "
                        "also learn from; it runs online on each augmented batch, in the "
                        "precision it was trained in")
    k.add_argument("--distill-temperature", type=float, default=d.distill_temperature,
                   help=f"softening of both outputs (default: {d.distill_temperature})")
    k.add_argument("--distill-weight", type=float, default=d.distill_weight,
                   help=f"share of the distillation term in the loss (default: {d.distill_weight})")
    k.add_argument("--distill-target", default=d.distill_target, choices=DISTILL_TARGETS,
                   help="branches: each branch distilled alone; ensemble: their average")
    e = parser.add_argument_group("ensemble training (rrrnet.training.strategies)")
    e.add_argument("--ensemble", default=d.ensemble, choices=list(strategies.ensembles()),
                   help="; ".join(f"{name}: {cls.summary}"
                                  for name, cls in strategies.ensembles().items()))
    e.add_argument("--fge-cycle-epochs", type=int, default=d.fge_cycle_epochs,
                   help=f"FGE: epochs per cycle (default: {d.fge_cycle_epochs})")
    e.add_argument("--fge-lr-high", type=float, default=d.fge_lr_high,
                   help=f"FGE: highest rate of a cycle, times --lr (default: {d.fge_lr_high})")
    e.add_argument("--fge-lr-low", type=float, default=d.fge_lr_low,
                   help=f"FGE: lowest rate, where models are collected, times --lr "
                        f"(default: {d.fge_lr_low})")
    add_data_args(parser)


def add_data_args(parser: argparse.ArgumentParser) -> None:
    """The data options: :class:`~rrrnet.recipe.DataSpec`'s fields."""
    from ..recipe import DATA_LAYOUTS, DataSpec
    d = argparse.Namespace(**{f.name: f.default for f in dataclasses.fields(DataSpec)})
    s = parser.add_argument_group(
        "data (every file used is listed in RUN/split.csv, every file left out in "
        "RUN/skipped.csv)")
    s.add_argument("--layout", default=d.layout, choices=DATA_LAYOUTS,
                   help="how the dataset is laid out (default: auto, recognised): "
                        "split-folders ROOT/{train,val,test}/CLASS/* (val, test optional; "
                        "valid, validation, testing count); class-folders ROOT/CLASS/*; "
                        "meta-album (labels.csv, info.json, images/); csv (--labels)")
    s.add_argument("--split", default=d.split, metavar="micro|TRAIN,VAL,TEST",
                   help="how the images are split (default: the layout's own: train/ val/ test/ "
                        "folders or a CSV part column as they are; micro for Meta-Album; "
                        "0.8,0.1,0.1 for class folders): micro, the authors' per-class split "
                        "(--train/--val/--test images per class), or ratios summing to 1, "
                        "stratified by class and seeded by --split-seed")
    s.add_argument("--split-seed", type=int, default=d.split_seed,
                   help="seed of the ratio split (default: 0; not --seed, so that runs of "
                        "several seeds are scored on the same test images)")
    s.add_argument("--labels", default=d.labels, metavar="FILE.csv",
                   help="a CSV listing the images: columns file,label[,part] (part: train, val "
                        "or test), paths relative to --root, else to the CSV's folder")
    s.add_argument("--root", default=None, metavar="FOLDER",
                   help="the folder the paths of --labels are relative to (default: the CSV's "
                        "folder); the same as giving the dataset folder")
    s.add_argument("--train", type=int, default=d.train,
                   help=f"micro split: training images per class (default: {d.train})")
    s.add_argument("--val", type=int, default=d.val,
                   help=f"micro split: validation images per class (default: {d.val})")
    s.add_argument("--test", type=int, default=d.test,
                   help=f"micro split: test images per class (default: {d.test})")
    s.add_argument("--keep-duplicates", action="store_true",
                   help="keep exact duplicates (same bytes); by default a copy within a part "
                        "is left out, and a val or test image that is also in train is "
                        "removed from val or test")
    # Unreadable files are now always left out and listed; the old flag is still accepted.
    s.add_argument("--skip-bad-images", action="store_true", help=argparse.SUPPRESS)
    s.add_argument("--allow-outside-files", action="store_true",
                   help="accept CSV rows naming files outside the dataset folder")


def recipe(args: argparse.Namespace):
    """The Recipe of the parsed options (fields without an option keep their default, or the
    value a preset, --method or --config layer set)."""
    from ..recipe import Recipe
    values = {f.name: getattr(args, f.name) for f in dataclasses.fields(Recipe)
              if hasattr(args, f.name)}
    if values.get("patience", 0) is None:   # fit's preset decides where the data allow it
        values["patience"] = 0
    if typed(getattr(args, "argv", None), "--epochs") \
            and not typed(getattr(args, "argv", None), "--min-steps"):
        values["min_steps"] = 0   # the epochs asked for are the epochs trained
    check_values(Recipe, values)   # a --config's "epochs": 1.5 or "device": 5, before Recipe's checks
    return Recipe(**values)


def data_spec(args: argparse.Namespace, root: str | None):
    """The DataSpec of the parsed options; ``root``: the dataset folder given (or --root)."""
    from ..recipe import DataSpec
    other = getattr(args, "root", None)
    if root and other and Path(root).resolve() != Path(other).resolve():
        raise ConfigError(f"two dataset folders given, {root} and --root {other}; give one")
    values = dict(root=root or other, train=args.train, val=args.val, test=args.test,
                  skip_bad_images=args.skip_bad_images,
                  allow_outside_files=getattr(args, "allow_outside_files", False),
                  layout=getattr(args, "layout", "auto"), split=getattr(args, "split", None),
                  labels=getattr(args, "labels", None),
                  split_seed=getattr(args, "split_seed", 0),
                  keep_duplicates=getattr(args, "keep_duplicates", False))
    check_values(DataSpec, values)   # a --config's "test": 2.5 or "train": -1, before anything runs
    return DataSpec(**values)


def add(sub) -> None:
    from ..recipe import QUICK_MIN_STEPS
    fit = sub.add_parser(
        "fit", help="train an RRR-Net on a dataset into a run folder",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Methods (--method) and ensembles (--ensemble), from the registry:\n  "
                    + strategies.describe().replace("\n", "\n  ")
                    + "\n\nRecipes: quick (the default: 60 epochs but at least "
                      f"{QUICK_MIN_STEPS} optimiser steps, --schedule auto\nafter a "
                      "2-epoch warm-up, bf16 where supported, early stopping after "
                      f"{QUICK_PATIENCE} evaluations where a val part exists) or paper "
                      "(300 epochs,\nconstant rate, fp32, no early stopping).")
    fit.add_argument("data", nargs="?", help="dataset folder (train/ val/ test/ folders of class "
                     "folders; class folders; Meta-Album: labels.csv, info.json, images/) or a "
                     "labels CSV (see --layout); default: --config's data root")
    fit.add_argument("--out", "-o", required=True, help="run folder to write")
    fit.add_argument("--recipe", default="quick", choices=("quick", "paper"),
                     help="the preset under every other option: quick (a first result soonest) "
                          "or paper (the paper's 300-epoch recipe)")
    add_model_args(fit, num_classes=False)
    add_weights_arg(fit)
    add_recipe_args(fit, title="defaults: the paper's, or the --recipe quick preset's")
    fit.set_defaults(patience=None)   # the preset decides (see fit_command)
    mg = fit.add_argument_group("the paper's methods, configuration files, processes")
    methods = strategies.methods()
    mg.add_argument("--method", choices=list(methods),
                    help="one of the paper's models; sets --blocks, --branches, --split-at (and "
                         "what trains) itself: " + "; ".join(f"{k}: {v.summary}"
                                                             for k, v in methods.items()))
    mg.add_argument("--dropout", type=float, default=None,
                    help="dropout after every activation of layer3/layer4: method D's rate "
                         "(default 0.05), or a custom model's (default: none)")
    mg.add_argument("--config", help="recipe/model overrides file (from rrrnet tune, or a run's "
                                     "config.json); options typed on the command line win")
    mg.add_argument("--nproc", type=int, default=1,
                    help="data-parallel processes on this machine (torchrun; gloo on CPU, NCCL "
                         "on GPU); several machines: torchrun ... -m rrrnet fit (README)")
    add_run_flags(fit, what="a run", resume="continue an interrupted run")
    fit.set_defaults(func=fit_command)


def layers(args: argparse.Namespace) -> dict[str, Any]:
    """The option values that the preset, ``--method`` and then ``--config`` set, as parser
    defaults."""
    from ..experiments.methods import load_config_file, method_setup
    from ..recipe import Recipe
    base = Recipe.quick(seed=args.seed) if args.recipe == "quick" else Recipe(seed=args.seed)
    found: dict[str, Any] = {f.name: getattr(base, f.name) for f in dataclasses.fields(Recipe)
                             if getattr(base, f.name) != getattr(Recipe(), f.name)}
    found.pop("patience", None)   # the preset's early stopping needs a val part: fit_command
    if args.method:
        model, rec = method_setup(args.method, base, seed=args.seed, dropout=args.dropout,
                                  weights=args.weights, arch=args.arch)
        found.update(blocks=_blocks_text(model.blocks), branches=model.branches,
                     split_at=model.split_at, dropout=model.dropout,
                     freeze_stump=model.freeze_stump)
        found.update({f.name: getattr(rec, f.name) for f in dataclasses.fields(Recipe)
                      if getattr(rec, f.name) != getattr(base, f.name)})
    if args.config:
        check_config_types(args.config)   # "epochs": 1.5, "device": 5: one line, not a traceback
        config = load_config_file(args.config)
        entry = config["methods"].get(args.method, {}) if args.method else {}
        data = config.get("data", {})
        for values in (config["recipe"], config["model"], entry, data):
            found.update({k: _blocks_text(v) if k == "blocks" else v for k, v in values.items()})
            if "epochs" in values and "min_steps" not in values:
                found["min_steps"] = 0   # a file's epochs (rrrnet tune's, an old run's) as given
        found.pop("root", None)
        if not args.data and data.get("root"):
            found["data"] = data["root"]
    return found


def _blocks_text(blocks) -> str:
    return blocks if isinstance(blocks, str) else ",".join(map(str, blocks))


def reparse(parser: argparse.ArgumentParser, argv, args: argparse.Namespace) -> argparse.Namespace:
    """The second pass of ``fit``: the layers as defaults, then the command line again."""
    found = layers(args)
    parser.commands["fit"].set_defaults(**found)
    args = parser.parse_args(argv)
    check_method_options(args, found)
    if not (args.data or args.root or args.labels):
        raise ConfigError("fit needs a dataset folder, a labels CSV (--labels FILE.csv) or a "
                          "--config holding data.root")
    return args


def check_method_options(args: argparse.Namespace, found: dict[str, Any]) -> None:
    """A typed --blocks, --branches or --split-at that changes what --method sets is refused:
    it would be a custom model under a method's name."""
    if not args.method:
        return
    from ..reduce import parse_blocks
    clash = [name for name in ("blocks", "branches", "split_at")
             if (parse_blocks(getattr(args, name)) if name == "blocks" else getattr(args, name))
             != (parse_blocks(found[name]) if name == "blocks" else found[name])]
    if clash:
        raise ConfigError(f"--method {args.method} sets {', '.join(_flag(c) for c in clash)} "
                          f"itself; leave {'them' if len(clash) > 1 else 'it'} out, or drop "
                          f"--method for a custom model")
    if "dropout" not in strategies.method(args.method).options \
            and args.dropout != found["dropout"]:
        raise ConfigError(f"--dropout is method D's rate; method {args.method} has no dropout "
                          f"(without --method it applies to a custom model)")


def _flag(field: str) -> str:
    return "--" + field.replace("_", "-")


def fit_command(args: argparse.Namespace) -> int:
    from ..training import distributed
    if args.nproc > 1 and distributed.from_environment(args.device) is None:
        return distributed.launch(args.nproc, _without_nproc(args.argv))
    from ..training.fit import as_written, fit
    spec, model = data_spec(args, args.data), model_config(args)
    if args.resume:
        spec = as_written(Path(args.out), spec)
    main = os.environ.get("RANK", "0") == "0"
    parts = spec.load(on_progress=None if args.quiet or not main else _file_bar())
    if args.patience is None:   # the preset's: early stopping where there is a val part
        args.patience = QUICK_PATIENCE if args.recipe == "quick" and len(parts.val) else 0
    rec = recipe(args)
    if main:
        if not args.quiet:
            print(parts.table())
        warning = imbalance_warning(parts, rec, args.argv)
        if warning:
            print(warning, file=sys.stderr)
    world = distributed.from_environment(rec.device)
    if main and not args.quiet:
        note = lengthened(rec, len(parts.train), 1 if world is None else world.size)
        if note:
            print(note)
    try:
        result = fit(spec, args.out, model, rec, resume=args.resume, overwrite=args.overwrite,
                     progress=not args.quiet, world=world, parts=parts)
    finally:
        distributed.shutdown()
    if world is not None and not world.main:
        return 0
    m = result.metrics
    if args.method:
        print(f"method {args.method}, {rec.ensemble} ensemble of {model.branches} branch(es)")
    stopped = (f", early stop: epoch {m['best_epoch']} kept of {m['epochs_trained']}"
               if "best_epoch" in m else "")
    scored = "test" if m.get("scored_on", "test") == "test" else "val (no test part)"
    balanced = (f", balanced error {m['balanced_error']:.2%}, macro F1 {m['macro_f1']:.3f}"
                if m.get("balanced_error") is not None else "")
    print(f"{result.out}: {scored} error {m['error']:.2%} (branches "
          f"{', '.join(f'{e:.1%}' for e in m['branch_errors'])}), NLL {m['nll']:.3f}, "
          f"ECE {m['ece']:.3f}{balanced}{stopped}")
    return 0


def lengthened(rec, images: int, processes: int) -> str | None:
    """One line when ``--min-steps`` lengthens the run (Recipe.for_steps), else None."""
    steps = math.ceil(images / processes / rec.batch_size)
    longer = rec.for_steps(steps)
    if longer.epochs == rec.epochs:
        return None
    evaluation = (f"evaluation every {longer.eval_every} epochs" if longer.eval_every
                  else "evaluation at the end")
    return (f"{images} training images make {steps} steps an epoch: {rec.epochs} epochs "
            f"lengthened to {longer.epochs} ({longer.epochs * steps} steps; --min-steps "
            f"{rec.min_steps}), warm-up {longer.warmup_epochs}, {longer.schedule} rate, average "
            f"{longer.ema_averaged_epochs}, {evaluation} (--epochs N trains exactly N)")


def typed(argv, flag: str) -> bool:
    """Whether ``flag`` was typed on the command line ``argv`` (as ``--flag V`` or ``--flag=V``)."""
    return any(a == flag or a.startswith(flag + "=") for a in argv or ())


def imbalance_warning(parts, rec, argv) -> str | None:
    """One line when the largest class has more than 3x the training images of the smallest
    and --balance was not given; None otherwise."""
    imbalance = parts.imbalance()
    if imbalance is None or getattr(rec, "balance", "none") != "none" \
            or typed(argv, "--balance"):
        return None
    large, most, small, least = imbalance
    return (f"warning: imbalanced classes: {large!r} has {most} training images, {small!r} "
            f"{least} ({most / least:.1f}x); try --balance weights (a class-weighted loss) or "
            f"--balance sampler (each class drawn equally often), and judge the run by "
            f"balanced_error in metrics.json")


def _file_bar():
    """``on_progress(done, total)`` drawing a bar while the dataset's files are checked."""
    from tqdm.auto import tqdm
    bar = None

    def on_progress(done: int, total: int) -> None:
        nonlocal bar
        if bar is None:
            bar = tqdm(total=total, desc="checking files", unit="file", leave=False,
                       disable=None)   # drawn on a terminal only
        bar.update(done - bar.n)
        if done >= total:
            bar.close()
    return on_progress


def _without_nproc(argv: list[str]) -> list[str]:
    out, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg == "--nproc":
            skip = True
        elif not arg.startswith("--nproc="):
            out.append(arg)
    return out
