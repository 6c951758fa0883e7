"""``info``, ``build``, ``weights``: a model's cost, building one, pretrained weights."""
from __future__ import annotations

import argparse
import json
from functools import partial
from typing import Any, Callable

from ..options import ARCH_NAMES as ARCHS
from .args import add_run_flags, add_weights_arg


def add(sub, model_args: Callable[[argparse.ArgumentParser], None],
        model_config: Callable[[argparse.Namespace], Any]) -> None:
    """``model_args`` adds the model options, ``model_config`` reads them (rrrnet.cli's)."""
    info = sub.add_parser("info", help="parameters and MACs per stage (the paper's Figure 1)")
    model_args(info)
    info.add_argument("--image-size", type=int, default=128, help="input side in pixels")
    info.add_argument("--json", action="store_true", help="print one JSON object")
    info.set_defaults(func=partial(info_command, model_config=model_config))

    build = sub.add_parser("build", help="build an RRR-Net from pretrained weights and save it")
    model_args(build)
    add_weights_arg(build)
    build.add_argument("--out", "-o", required=True, help="model file to write (e.g. model.pt)")
    build.add_argument("--overwrite", action="store_true", help="replace an existing --out file")
    add_run_flags(build)
    build.set_defaults(func=partial(build_command, model_config=model_config))

    weights = sub.add_parser("weights", help="list, fetch or check pretrained weights")
    weights.add_argument("--arch", default="resnet152", choices=sorted(ARCHS))
    weights.add_argument("--fetch", metavar="SOURCE", help="download a named source into the cache")
    weights.add_argument("--check", metavar="SOURCE", help="check that a file or source loads")
    add_run_flags(weights)
    weights.set_defaults(func=weights_command)


def info_command(a: argparse.Namespace, model_config) -> int:
    from ..cost import cost, format_table
    report = cost(model_config(a), image_size=a.image_size)
    print(json.dumps(report.to_dict(), indent=2) if a.json else format_table(report))
    return 0


def build_command(a: argparse.Namespace, model_config) -> int:
    from ..model import build, save
    from ..rundir import check_output
    check_output(a.out, overwrite=a.overwrite)   # never a run's model.pt, nor a file silently
    model = build(model_config(a), progress=not a.quiet)
    path, plan = save(model, a.out), model.plan
    print(f"saved {path}: {plan.branches} branches of widths {list(plan.branch_planes)} "
          f"(shift {plan.shift}) from {model.config.weights}")
    return 0


def weights_command(a: argparse.Namespace) -> int:
    from .. import weights as w
    if a.fetch:
        print(w.fetch_source(a.fetch, a.arch, progress=not a.quiet))
    elif a.check:
        skipped = w.check_source(a.check, a.arch, progress=not a.quiet)
        print(f"{a.check}: loads into {a.arch}"
              + (f" (without {', '.join(skipped)})" if skipped else ""))
    else:
        show_listing(w.listing())
    return 0


def show_listing(result: dict[str, Any]) -> None:
    print(f"cache: {result['cache']}   mirror: ${result['mirror_env']}")
    for s in result["sources"]:
        print(f"{s['name']:<22}{'cached' if s['cached'] else '-':<8}{s['description']}\n"
              f"{'':<30}{s['url']}")
    print(f"{'imagenet':<22}{'':<8}the architecture's default source "
          f"({', '.join(f'{a}: {t}' for a, t in result['defaults'].items())})")
    print(f"{'IMAGENET1K_V1/_V2':<22}{'':<8}torchvision's names for the tv_in1k/tv2_in1k sources")
    print(f"{result['astra']:<22}{'':<8}offline ResNet-152 (CT fine-tuned, 3D summed to 2D): "
          f"pip install 'rrrnet[astra]'")
    print(f"{'none':<22}{'':<8}random initialisation")
