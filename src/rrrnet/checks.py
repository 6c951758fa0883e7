"""The one boundary where numbers and names from the user are checked, before anything is touched.

A value reaches rrrnet from the command line (argparse has typed it), from a configuration
file (JSON: ``epochs: 1.5``, ``device: 5`` and ``batch_size: true`` all parse) or from the
Python API. All three meet the same typed checks here:

* :func:`check_fields`: every field of a configuration dataclass (``ModelConfig``, ``Recipe``,
  ``DataSpec``) against its annotation: an ``int`` must be an int (not 1.5, not True), a
  ``float`` a finite number, a ``str`` a string without NUL bytes, a ``bool`` a bool;
  :func:`check_values` does the same on a dict of options before the dataclass is built;
* :func:`integer`, :func:`number`: one option, with its allowed range;
* :func:`text`: a name or path without NUL bytes.

Each raises :class:`~rrrnet.errors.ConfigError` naming the option (as the user typed it: a
field ``batch_size`` is ``--batch-size``/``batch_size``) and the value. Imports nothing of
rrrnet's but :mod:`rrrnet.errors`, so every layer can use it.
"""
from __future__ import annotations

import dataclasses
import math
import os
import types
import typing
from typing import Any, Iterable

from .errors import ConfigError

MAX_IMAGE_SIZE = 8192          # pixels: a side beyond this is a typing mistake, not an image
# Fields of any configuration that must be >= 0: seeds (numpy refuses negative ones) and the
# images per class of a split.
NON_NEGATIVE = ("seed", "split_seed", "train", "val", "test")


def describe(value: Any) -> str:
    """``1.5 (a float)``: the value and its JSON/Python type, for messages."""
    kind = {bool: "a boolean", int: "an integer", float: "a number", str: "a string",
            type(None): "null"}.get(type(value), f"a {type(value).__name__}")
    return f"{value!r} ({kind})"


def option(name: str) -> str:
    """How an option is named to the user, as a configuration key and as a flag:
    ``batch_size`` -> ``batch_size (--batch-size)``; other names as they are."""
    return f"{name} (--{name.replace('_', '-')})" if name.isidentifier() else name


def text(value: Any, name: str) -> str:
    """``value`` as a name or path: a string (or path) without NUL bytes."""
    if isinstance(value, os.PathLike):
        value = os.fspath(value)
    if not isinstance(value, str):
        raise ConfigError(f"{option(name)} must be a string, got {describe(value)}")
    if "\0" in value:
        raise ConfigError(f"{option(name)} holds a NUL byte ({value!r}); no file or option name "
                          f"can contain one")
    return value


def integer(value: Any, name: str, low: int | None = None, high: int | None = None) -> int:
    """``value`` as an int in ``[low, high]`` (either end open when None); a bool or a float
    (even 2.0) is refused: a configuration that says 1.5 epochs is a mistake to report."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"{option(name)} must be an integer, got {describe(value)}")
    _in_range(value, name, low, high)
    return value


def number(value: Any, name: str, low: float | None = None, high: float | None = None,
           low_open: bool = False, high_open: bool = False) -> float:
    """``value`` as a finite number in the range (``low_open``: ``value > low``)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ConfigError(f"{option(name)} must be a finite number, got {describe(value)}")
    if (low is not None and (value <= low if low_open else value < low)) or \
            (high is not None and (value >= high if high_open else value > high)):
        lo = "" if low is None else f"{low} {'<' if low_open else '<='} "
        hi = "" if high is None else f" {'<' if high_open else '<='} {high}"
        raise ConfigError(f"{option(name)} must satisfy {lo}value{hi}, got {value!r}")
    return value


def _in_range(value: int, name: str, low: int | None, high: int | None) -> None:
    if low is not None and value < low or high is not None and value > high:
        if high is None:
            bound = f"at least {low}"
        elif low is None:
            bound = f"at most {high}"
        else:
            bound = f"between {low} and {high}"
        raise ConfigError(f"{option(name)} must be {bound}, got {value!r}")


def image_size(value: Any, name: str = "image_size") -> int:
    """A side in pixels: an integer from 1 to :data:`MAX_IMAGE_SIZE`."""
    return integer(value, name, 1, MAX_IMAGE_SIZE)


# ---------------------------------------------------------------------------------------------
# Configuration dataclasses, by their annotations
# ---------------------------------------------------------------------------------------------

def check_value(value: Any, kind: Any, name: str) -> None:
    """``value`` against the annotation ``kind`` (int, float, str, bool, ``X | None``,
    ``tuple[int, ...]``); other annotations are left to the class's own checks."""
    origin, args = typing.get_origin(kind), typing.get_args(kind)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return
        kinds = [a for a in args if a is not type(None)]
        if len(kinds) == 1:
            check_value(value, kinds[0], name)
        return
    if kind is int:
        integer(value, name, 0 if name in NON_NEGATIVE else None)
    elif kind is float:
        number(value, name)
    elif kind is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{option(name)} must be true or false, got {describe(value)}")
    elif kind is str:
        text(value, name)
    elif origin is tuple and args[-1:] == (Ellipsis,) and args[0] is int:
        if not isinstance(value, (tuple, list)):
            raise ConfigError(f"{option(name)} must be a list of integers, got {describe(value)}")
        for item in value:
            integer(item, name)


def _hints(cls: type) -> dict[str, Any]:
    try:
        return typing.get_type_hints(cls)
    except Exception:  # an annotation this Python cannot evaluate: leave it to the class
        return {}


def check_values(cls: type, values: dict[str, Any], skip: Iterable[str] = ()) -> None:
    """The options ``values`` (field name -> value) of the dataclass ``cls``, checked against
    the field annotations before ``cls(**values)`` runs its own checks."""
    hints, skip = _hints(cls), set(skip)
    for f in dataclasses.fields(cls):
        if f.name in values and f.name not in skip and f.name in hints:
            check_value(values[f.name], hints[f.name], f.name)


def check_fields(instance: Any, skip: Iterable[str] = ()) -> None:
    """Every field of the dataclass ``instance`` against its annotation."""
    check_values(type(instance), {f.name: getattr(instance, f.name)
                                  for f in dataclasses.fields(instance)}, skip)
