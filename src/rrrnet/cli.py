"""The ``rrrnet`` command: the parser and the dispatch. Each command group's options, its one
library call and its output are in :mod:`rrrnet.commands`; the work is in the library."""
from __future__ import annotations

import argparse
import math
import os
import signal
import sys
import warnings
from typing import Sequence

from . import __version__, commands
from .commands.fit import (add_model_args, add_recipe_args, data_spec,  # noqa: F401
                           model_config, recipe)
from .commands.args import seed_list  # noqa: F401  (rrrnet.cli.seed_list, as before)
from .errors import ConfigError, RRRNetError

EXIT_USER_ERROR = 2
EXIT_TERMINATED = 128 + signal.SIGTERM


class Parser(argparse.ArgumentParser):
    """argparse, with a usage error in one line (``rrrnet fit: error: ...``, exit 2) like every
    other user error, and a pointer to ``--help`` instead of the usage block."""

    def error(self, message: str):
        self.exit(EXIT_USER_ERROR, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def seconds(text: str) -> float:
    """``--timeout``: a finite positive number of seconds."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected seconds, got {text!r}") from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"expected a finite positive number of seconds, got "
                                         f"{text!r}")
    return value


def parse(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Parse a command line; ``fit`` in two passes (:func:`rrrnet.commands.fit.reparse`)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    for arg in argv:
        if "\0" in str(arg):
            raise ConfigError(f"the argument {str(arg)!r} holds a NUL byte; no file or option "
                              f"name can contain one")
    p = parser()
    args = p.parse_args(argv)
    if args.command == "fit":
        args = commands.fit.reparse(p, argv, args)
    args.argv = argv
    return args


def parser() -> argparse.ArgumentParser:
    p = Parser(prog="rrrnet", description="Reuse, reduce and recycle a "
               "pretrained ResNet into a small, fast ensemble of branches.")
    p.add_argument("--version", action="version", version=f"rrrnet {__version__}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=Parser)
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
            "--timeout", type=seconds, default=None, metavar="SECONDS",
            help="download timeout on connecting and on every read (default: "
                 "$RRRNET_DOWNLOAD_TIMEOUT or 60)")
    p.commands = sub.choices  # name -> sub-parser, for the two-pass parse of fit
    return p


def main(argv: Sequence[str] | None = None) -> int:
    previous = _terminate_as_interrupt()
    try:
        args = parse(argv)
        from .data.dataset import configure_image_limits
        configure_image_limits()
        if getattr(args, "timeout", None) is not None:
            os.environ["RRRNET_DOWNLOAD_TIMEOUT"] = str(args.timeout)  # read by weights.download
        with warnings.catch_warnings():
            warnings.showwarning = _one_line_warning
            return args.func(args)
    except RRRNetError as err:
        print(f"rrrnet: error: {err}", file=sys.stderr)
        return EXIT_USER_ERROR
    except Terminated:
        print("rrrnet: terminated (SIGTERM); an interrupted fit continues with --resume",
              file=sys.stderr)
        return EXIT_TERMINATED
    except KeyboardInterrupt:
        print("rrrnet: interrupted; an interrupted fit continues with --resume", file=sys.stderr)
        return 130
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _one_line_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """A warning as the command line shows it: one line, without Python's source location."""
    print(f"rrrnet: warning: {message}", file=sys.stderr)


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised like Ctrl-C, so that what runs cleans up (temporary files removed, an
    old run that ``--overwrite`` set aside put back) before the process ends."""


def _terminate_as_interrupt():
    """SIGTERM raises :class:`Terminated` while a command runs (main thread only); returns
    the previous handler (None when it could not be installed)."""
    def handler(signum, frame):
        raise Terminated()
    try:
        return signal.signal(signal.SIGTERM, handler)
    except ValueError:   # not the main thread
        return None


if __name__ == "__main__":
    sys.exit(main())
