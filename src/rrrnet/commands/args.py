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


def check_config_types(path) -> None:
    """The values of a ``--config`` file checked by type against the fields they set
    (:func:`rrrnet.checks.check_values`: ``"epochs": 1.5``, ``"device": 5``), before any
    layer is built from them; a file that cannot be read is left to the reader's own error."""
    import json
    from pathlib import Path

    from ..checks import check_values
    from ..errors import ConfigError
    from ..model import ModelConfig
    from ..recipe import DataSpec, Recipe, renamed
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, UnicodeDecodeError, ValueError):
        return
    if not isinstance(data, dict):
        return
    sections = [("recipe", data.get("recipe"), (Recipe,)), ("model", data.get("model"), (ModelConfig,)),
                ("data", data.get("data"), (DataSpec,))]
    methods = data.get("methods")
    if isinstance(methods, dict):
        sections += [(f"methods.{m}", e, (Recipe, ModelConfig)) for m, e in methods.items()]
    for name, values, classes in sections:
        if not isinstance(values, dict):
            continue
        for cls in classes:
            try:
                check_values(cls, renamed(values) if cls is Recipe else values)
            except ConfigError as err:
                raise ConfigError(f"{path} ({name}): {err}") from None
