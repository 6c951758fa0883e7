"""The ``rrrnet`` command: the parser and the dispatch. Each command group's options, its one
library call and its output are in :mod:`rrrnet.commands`; the work is in the library."""
from __future__ import annotations

import argparse
import os
import sys
from typing import Sequence

from . import __version__, commands
from .commands.fit import (add_model_args, add_recipe_args, data_spec,  # noqa: F401
                           model_config, recipe)
from .commands.args import seed_list  # noqa: F401  (rrrnet.cli.seed_list, as before)
from .errors import RRRNetError

EXIT_USER_ERROR = 2


def parse(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Parse a command line; ``fit`` in two passes (:func:`rrrnet.commands.fit.reparse`)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    p = parser()
    args = p.parse_args(argv)
    if args.command == "fit":
        args = commands.fit.reparse(p, argv, args)
    args.argv = argv
    return args


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="rrrnet", description="Reuse, reduce and recycle a "
                                "pretrained ResNet into a small, fast ensemble of branches.")
    p.add_argument("--version", action="version", version=f"rrrnet {__version__}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    commands.model.add(sub, add_model_args, model_config)              # info, build, weights
    commands.fit.add(sub)                                              # fit
    commands.analysis.add(sub)                                         # evaluate, uncertainty
    commands.report.add(sub)                                           # report, card
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
