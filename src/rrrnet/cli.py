"""The ``rrrnet`` command: argument parsing only; every command calls one API function."""
from __future__ import annotations

import argparse
import json
import sys
from typing import Sequence

from . import __version__
from .backbone import ARCHS
from .errors import RRRNetError
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
            w.resolve(args.fetch, args.arch)  # raises the unknown-source error with the list
        print(w.download(source, progress=not args.quiet))
        return 0
    if args.check:
        state = w.resolve(args.check, args.arch, progress=not args.quiet)
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
