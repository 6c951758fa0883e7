"""File helpers every module shares: atomic writes, JSON and CSV, number parsing, devices, seeds.

The bottom of the house: it imports nothing of rrrnet's but :mod:`rrrnet.errors`, so that any
module (training, deployment, reports, experiments) can write files without loading the others.
Every file is written through a temporary sibling renamed over the target, so a crash or a
full disk leaves the previous version intact.
"""
from __future__ import annotations

import contextlib
import csv
import errno
import fcntl
import json
import math
import os
import stat
import tempfile
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

import numpy as np
import torch

from .errors import ConfigError, RRRNetError, RunError


def atomic_write(path: str | os.PathLike, write: Callable[[Any], None], mode: str = "wb") -> None:
    """Call ``write(f)`` on a temporary sibling of ``path``, flush it to disk and rename it over
    ``path``: readers see the old file or the new one, never a half-written one. Any failure
    (a full disk raises OSError from Python's writes and RuntimeError from torch.save's) removes
    the temporary file and is a :class:`RunError` that names the file and the fix."""
    path = Path(path)
    tmp = stage(path, write, mode)
    try:
        os.replace(tmp, path)
    except BaseException as err:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(err, Exception):
            raise write_error(path, err) from None
        raise


def stage(path: str | os.PathLike, write: Callable[[Any], None], mode: str = "wb") -> Path:
    """The first half of :func:`atomic_write`: ``write(f)`` into a temporary sibling of
    ``path`` (``.NAME.*.tmp``), flushed to disk; returns it, for the caller to rename over
    ``path`` (:mod:`rrrnet.rundir` renames several files under one manifest)."""
    path = Path(path)
    if path.is_dir() and not path.is_symlink():
        raise RunError(f"{path} is a folder; give the name of a file to write (or remove the "
                       f"folder)")
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except Exception as err:
        raise write_error(path, err) from None
    try:
        with os.fdopen(fd, mode) as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
    except BaseException as err:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(err, Exception) and not isinstance(err, RRRNetError):
            raise write_error(path, err) from None
        raise
    return Path(tmp)


def write_error(path: Path, err: BaseException) -> RunError:
    """The one-line error of a write that failed, by its cause."""
    code = getattr(err, "errno", None)
    reason = getattr(err, "strerror", None) or f"{type(err).__name__}: {err}"
    if code in (errno.ENOSPC, errno.EDQUOT) or "No space left" in str(err) or \
            "failed writing file" in str(err):   # torch.save's RuntimeError on a full disk
        fix = "Free some space and run the command again (an interrupted fit continues with --resume)."
        reason = reason if code else f"the disk is full? {reason}"
    elif code in (errno.EACCES, errno.EPERM, errno.EROFS):
        fix = (f"Choose a place you may write to (--out), or give yourself write permission "
               f"on {path.parent}.")
    elif code in (errno.ENOENT, errno.ENOTDIR):
        fix = f"Its folder {path.parent} does not exist (or a part of it is a file)."
    elif code == errno.EISDIR:
        fix = "It is a folder; give the name of a file."
    else:
        fix = "Check the place it is written to and run the command again."
    return RunError(f"could not write {path} ({reason}); the previous version, if any, is "
                    f"intact. {fix}")


def file_kind(path: str | os.PathLike) -> str | None:
    """What ``path`` is when it is not a regular file or a folder: ``a FIFO``, ``a character
    device``, ``a block device``, ``a socket`` or ``a broken symbolic link``; None otherwise
    (a regular file, a folder, or nothing)."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        return "a broken symbolic link" if os.path.islink(path) else None
    except (OSError, ValueError):
        return None
    for test, name in ((stat.S_ISFIFO, "a FIFO (named pipe)"), (stat.S_ISCHR, "a character device"),
                       (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return name
    return None


def missing(path: str | os.PathLike, what: str, expected: str = "a file") -> str:
    """Why ``path`` cannot be read as ``expected`` (a file, a folder): it does not exist, or it
    is something else (a FIFO, a device, a folder ...); for messages: ``WHAT PATH is ...``."""
    kind = file_kind(path)
    if kind is not None:
        return f"{what} {path} is {kind}, not {expected}"
    if expected != "a folder" and os.path.isdir(path):
        return f"{what} {path} is a folder, not {expected}"
    if expected == "a folder" and os.path.isfile(path):
        return f"{what} {path} is a file, not a folder"
    return f"{what} {path} does not exist"


def make_folder(path: str | os.PathLike, what: str = "output folder", links: bool = False) -> Path:
    """Create the folder ``path`` (and its parents) for writing into, refusing a symbolic link
    (nothing is written through one; ``links``: a link to a folder is fine, where the caller
    has checked it) and a path through a file; a :class:`RunError` names it."""
    path = Path(path)
    if path.is_symlink() and not (links and path.is_dir()):
        raise RunError(f"{what} {path} is a symbolic link (to {os.readlink(path)}); rrrnet does "
                       f"not write through links: remove it, or give the real folder")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise RunError(f"{what} {path} is a file, not a folder; choose another path") from None
    except NotADirectoryError:
        raise RunError(f"cannot create the {what} {path}: a part of that path is a file; "
                       f"choose another path") from None
    except OSError as err:
        raise RunError(f"cannot create the {what} {path} ({err.strerror}); choose a place you "
                       f"may write to") from None
    return path


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
    for another process that holds it. The OS releases it if the process dies. A lock file that
    cannot be created (``HOME=/dev/null``, a read-only home) is a :class:`RunError`."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
    except (OSError, ValueError) as err:
        raise RunError(f"cannot create the lock file {path} ({getattr(err, 'strerror', None) or err}); "
                       f"set $HOME to a folder you may write to") from None
    with os.fdopen(fd, "r+") as f:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f.fileno(), fcntl.LOCK_UN)
