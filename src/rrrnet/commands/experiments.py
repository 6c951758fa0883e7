"""``tune``, ``select-blocks``, ``sweep-branches``, ``benchmark``, ``prune-compare``: the
experiments of the paper and around it."""
from __future__ import annotations

import argparse
import json
from functools import partial
from typing import Any, Callable

from ..options import ARCH_NAMES as ARCHS
from ..options import INIT_MODES, SPLIT_POINTS
from .args import add_run_flags, add_weights_arg, int_list, seed_list


def add(sub, recipe_args: Callable[[argparse.ArgumentParser], None],
        recipe: Callable[[argparse.Namespace], Any],
        data_spec: Callable[[argparse.Namespace, str], Any]) -> None:
    """``recipe_args`` adds the training options, ``recipe`` and ``data_spec`` read them
    (rrrnet.cli's)."""
    _add_tune(sub)
    _add_select(sub, recipe_args)
    _add_sweep(sub, recipe_args)
    _add_benchmark(sub)
    _add_prune(sub)
    read = {"recipe": recipe, "data_spec": data_spec}
    sub.choices["select-blocks"].set_defaults(func=partial(select_blocks_command, **read))
    sub.choices["sweep-branches"].set_defaults(func=partial(sweep_branches_command, **read))
    for name, command in (("tune", tune_command), ("benchmark", benchmark_command),
                          ("prune-compare", prune_compare_command)):
        sub.choices[name].set_defaults(func=command)


def _add_tune(sub) -> None:
    from ..options import DEFAULT_MAX_EPOCHS
    from ..recipe import Recipe, SearchSpace
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


def _add_select(sub, recipe_args) -> None:
    from ..options import DEFAULT_EPSILON, ORDERS, SCORE_ON
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
    recipe_args(sel)
    add_run_flags(sel, what="a selection", resume="continue after the last finished step",
                  json="print selection.json's content")
    sel.set_defaults(seed=0)


def _add_sweep(sub, recipe_args) -> None:
    from ..options import PAPER_BRANCHES
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
    recipe_args(sw)
    add_run_flags(sw, what="a sweep", resume="reuse finished runs, continue the rest",
                  json="print the summary as JSON")
    sw.set_defaults(seed=0)


def _add_benchmark(sub) -> None:
    from ..options import EXECUTORS, BenchmarkOptions
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


def _add_prune(sub) -> None:
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


def tune_command(a: argparse.Namespace) -> int:
    from ..checks import integer
    from ..experiments.tune import tune
    from ..recipe import Recipe, SearchSpace
    integer(a.seed, "--seed", 0)   # Optuna's sampler refuses it later, with a misleading message
    space = SearchSpace.for_budget(a.max_epochs, a.min_epochs, lr=tuple(a.lr),
                                   weight_decay=tuple(a.weight_decay),
                                   ema_fraction=tuple(a.ema_fraction), dropout=tuple(a.dropout))
    base = Recipe(batch_size=a.batch_size, image_size=a.image_size, augment_ops=a.augment_ops,
                  warm_stump_epochs=a.warm_stump_epochs, device=a.device,
                  num_workers=a.num_workers)
    result = tune(a.data, a.out, method=a.method, trials=a.trials, space=space, seed=a.seed,
                  storage=a.storage, study_name=a.study_name, prune=a.prune,
                  prune_every=a.prune_every, base_recipe=base, weights=a.weights, arch=a.arch,
                  train=a.train, val=a.val, skip_bad_images=a.skip_bad_images,
                  config_out=a.config_out, keep_runs=a.keep_runs, progress=not a.quiet)
    best = result.best
    if a.json:
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


def select_blocks_command(a: argparse.Namespace, recipe, data_spec) -> int:
    from ..experiments.select import select_blocks
    from ..reduce import parse_blocks
    report = select_blocks(data_spec(a, a.data), a.out, arch=a.arch, weights=a.weights,
                           start=parse_blocks(a.start), order=a.order, epsilon=a.epsilon,
                           stop=not a.no_stop, reference_accuracy=a.reference_accuracy,
                           recipe=recipe(a), seeds=a.seeds, control=a.control,
                           score_on=a.score_on, resume=a.resume, overwrite=a.overwrite,
                           progress=not a.quiet)
    s = report.selection
    if a.json:
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
          f"selection.json in {report.out}/")
    return 0


def sweep_branches_command(a: argparse.Namespace, recipe, data_spec) -> int:
    from ..experiments.sweep import sweep_branches
    from ..model import ModelConfig
    from ..reduce import parse_blocks
    config = ModelConfig(arch=a.arch, blocks=parse_blocks(a.blocks), split_at=a.split_at,
                         init=a.init, weights=a.weights)
    result = sweep_branches(data_spec(a, a.data), a.out, a.branches, a.seeds, config, recipe(a),
                            resume=a.resume, overwrite=a.overwrite, progress=not a.quiet)
    if a.json:
        print(json.dumps(result.summary, indent=2))
        return 0
    print(f"{'branches':>8} {'test error (95% CI)':>26} {'params':>10} {'MACs':>10}")
    for r in result.summary:
        print(f"{r['branches']:>8} {r['mean_error']:>10.2%} [{r['error_low']:.2%}, "
              f"{r['error_high']:.2%}] {r['params'] / 1e6:>9.2f}M {r['macs'] / 1e6:>9.1f}M")
    print(f"sweep.csv, sweep_summary.csv, sweep.json and sweep.png in {result.out}/")
    return 0


def benchmark_command(a: argparse.Namespace) -> int:
    from ..experiments import benchmark as bench
    from ..errors import ConfigError
    if a.report_only and a.datasets:
        raise ConfigError("--report-only DIR rebuilds a finished benchmark's report; give no "
                          "datasets with it")
    if not a.report_only and (not a.datasets or not a.out):
        raise ConfigError("give the dataset folders and --out DIR (or --report-only DIR)")
    if a.report_only:
        result = bench.rebuild_report(a.report_only, reference=a.reference)
    else:
        from ..experiments.executors import make_executor
        from ..experiments.methods import load_config_file
        from .args import check_config_types
        if a.config:
            check_config_types(a.config)
        options = bench.BenchmarkOptions(
            methods=tuple(m.strip() for m in a.methods.split(",") if m.strip()),
            seeds=tuple(a.seed_list or a.seeds), epochs=a.epochs,
            config=load_config_file(a.config) if a.config else None, weights=a.weights,
            arch=a.arch, train=a.train, val=a.val, test=a.test, latency_runs=a.latency_runs,
            latency_threads=a.latency_threads, reference=a.reference, ood=tuple(a.ood),
            mc_samples=a.mc_samples, eval_every=a.eval_every)
        executor = make_executor(a.executor, a.ray_address, a.cpus_per_cell, a.gpus_per_cell)
        result = bench.run_benchmark(a.datasets, a.out, options, executor, progress=not a.quiet)
    show_benchmark(a, result)
    return 0


def show_benchmark(a: argparse.Namespace, result) -> None:
    summary = result.summary(a.reference)
    if a.json:
        from ..io import json_safe
        print(json.dumps(json_safe({"methods": summary, "files": [str(f) for f in result.files]}),
                         indent=2))
        return
    if not a.report_only:
        print(f"{result.trained} cells trained, {result.skipped} read back")
    p_key = f"wilcoxon_{a.reference}_less_p"
    print(f"{'method':<8}{'datasets':>9}{'mean error':>12}{'median':>9}{'params':>10}"
          f"{'MACs':>10}{'CPU ms':>9}  p({a.reference} < method)")
    for m in summary:
        p, cpu = m[p_key], m["cpu_ms"]  # NaN: no test (the reference itself), not measured
        print(f"{m['method']:<8}{m['datasets']:>9}{m['mean_error']:>12.2%}{m['median_error']:>9.2%}"
              f"{m['params'] / 1e6:>9.2f}M{m['macs'] / 1e9:>9.3f}G"
              f"{'-' if cpu != cpu else f'{cpu:.1f}':>9}  {'' if p != p else f'{p:.3g}'}")
    folder = result.files[0].parent if result.files else "-"
    print(f"results.csv, summary.csv, per_dataset.csv, summary.md and figures/ in {folder}/")


def prune_compare_command(a: argparse.Namespace) -> int:
    from ..experiments.prune import format_rows, prune_compare
    result = prune_compare(a.out, arch=a.arch, sparsities=a.sparsity,
                           granularities=a.granularity, device=a.device, runs=a.runs,
                           warmup=a.warmup, image_size=a.image_size, batch_size=a.batch_size,
                           threads=a.threads, seed=a.seed, progress=not a.quiet)
    if a.json:
        print(json.dumps(result.rows, indent=2))
        return 0
    print(format_rows(result.rows))
    print(f"{result.csv.name}, {result.json.name} and {result.png.name} in {result.out}/")
    return 0
