"""File helpers every module shares: atomic writes, JSON and CSV, number parsing, devices, seeds.

The bottom of the house: it imports nothing of rrrnet's but :mod:`rrrnet.errors`, so that any
module (training, deployment, reports, experiments) can write files without loading the others.
Every file is written through a temporary sibling renamed over the target, so a crash or a
full disk leaves the previous version intact.
"""
from __future__ import annotations

import contextlib
import csv
import fcntl
import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

import numpy as np
import torch

from .errors import ConfigError, RunError


def atomic_write(path: str | os.PathLike, write: Callable[[Any], None], mode: str = "wb") -> None:
    """Call ``write(f)`` on a temporary sibling of ``path``, flush it to disk and rename it over
    ``path``: readers see the old file or the new one, never a half-written one."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, mode) as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as err:
        Path(tmp).unlink(missing_ok=True)
        raise RunError(f"could not write {path} ({err.strerror or err}); the previous version, if "
                       f"any, is intact. Free some space and continue with --resume.") from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json(path: str | os.PathLike, data: Any) -> None:
    """``data`` as indented JSON, atomically."""
    atomic_write(path, lambda f: f.write(json.dumps(data, indent=2) + "\n"), mode="w")


def read_json(path: str | os.PathLike, what: str = "file") -> Any:
    """Parse a JSON file; a missing or damaged file is a :class:`RunError` naming it."""
    path = Path(path)
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise RunError(f"{path} does not exist ({what})") from None
    except (OSError, UnicodeDecodeError, ValueError) as err:
        raise RunError(f"cannot read {path} ({what}): {err}; it is damaged or not JSON") from None


def write_csv(path: str | os.PathLike, rows: Iterable[dict[str, Any]],
              columns: Iterable[str] | None = None) -> None:
    """``rows`` as CSV, atomically. ``columns``: these in this order, other keys left out;
    default: every key of the rows, in order of first appearance. None is written empty."""
    rows = list(rows)
    columns = list(dict.fromkeys(k for row in rows for k in row) if columns is None else columns)

    def write(f):
        writer = csv.DictWriter(f, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    atomic_write(path, write, mode="w")


def read_csv(path: str | os.PathLike) -> list[dict[str, Any]]:
    """Rows of a CSV file with numbers parsed (:func:`parse_number`); [] when it does not exist."""
    path = Path(path)
    if not path.exists():
        return []
    with open(path, newline="") as f:
        return [{k: parse_number(v) for k, v in row.items()} for row in csv.DictReader(f)]


def parse_number(text: str) -> Any:
    """``"3"`` -> 3, ``"0.5"`` -> 0.5, ``""`` -> None, anything else unchanged."""
    if text == "" or text is None:
        return None
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def json_safe(data: Any) -> Any:
    """Tuples as lists and NaN as null (strict JSON readers reject NaN), recursively."""
    if isinstance(data, dict):
        return {k: json_safe(v) for k, v in data.items()}
    if isinstance(data, (list, tuple)):
        return [json_safe(v) for v in data]
    return None if isinstance(data, float) and math.isnan(data) else data


def resolve_device(name: str | torch.device | None) -> torch.device:
    """``auto`` (or None): CUDA when PyTorch sees it, else the CPU; ``cuda`` without CUDA is a
    :class:`ConfigError` that says to use the CPU."""
    if name is None or name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    name = str(name)
    if name not in ("cpu", "cuda") and not name.startswith("cuda:"):
        raise ConfigError(f"device must be auto, cpu or cuda, got {name!r}")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError("--device cuda asked for, but PyTorch sees no CUDA device; use --device cpu")
    return torch.device(name)


def derive_seed(*parts: int) -> int:
    """A 32-bit seed mixed from integers (``numpy.random.SeedSequence``): e.g. (run seed, epoch)
    gives every epoch its own reproducible draws, independent of what ran before."""
    return int(np.random.SeedSequence([abs(int(p)) for p in parts]).generate_state(1)[0])


@contextlib.contextmanager
def exclusive(path: str | os.PathLike) -> Iterator[None]:
    """Hold an OS lock on the file ``path`` (created if needed) for the ``with`` block, waiting
    for another process that holds it. The OS releases it if the process dies."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as f:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f.fileno(), fcntl.LOCK_UN)
