"""Option helpers several commands share: output-folder flags, ``--weights``, the inference
rewrites, lists of integers and seeds."""
from __future__ import annotations

import argparse


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


def add_deploy_args(parser: argparse.ArgumentParser, compile: bool = True) -> None:
    from ..options import DEPLOY_DEFAULTS as DEFAULTS
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


def deploy_options(args: argparse.Namespace) -> dict[str, bool]:
    """The inference rewrites chosen, as :func:`rrrnet.deploy.prepare`'s keyword arguments."""
    return {"fold_bn": args.fold_bn, "subsample": args.subsample,
            "channels_last": args.channels_last, "compile": getattr(args, "compile", False)}


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
