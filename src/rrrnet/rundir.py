"""A run folder: its files, claiming it (refuse, overwrite, resume), checkpoints: the writing side.
Reading a run back is :class:`rrrnet.run.Run`'s; :func:`read_run` below serves only
:func:`rrrnet.train.fit`'s resumption of a finished run, until that moves to :class:`~rrrnet.run.Run`.

A training run (``rrrnet fit``) writes into one folder:

``config.json``   the model, recipe, data and classes, written first;
``stump.pt``      a frozen stump after its BatchNorm warm-up, written once;
``checkpoint.pt`` what changes, after every epoch (atomically), for exact resumption;
``history.csv``   one row per epoch;
``model.pt``, ``metrics.json``  when finished;
``manifest.json`` the SHA-256 of every file above, rewritten (atomically) after each of them;
``.rrrnet.lock``  the OS lock of the process writing the folder, with its PID.

A folder is written by one process at a time (:func:`locked`): a second one is refused with the
holder's PID; the OS releases the lock when its holder exits or dies, so a stale lock is simply
taken over. Files are read back only if their hash matches the manifest (:func:`verify`).

Sweeps, block selections and benchmarks claim their output folders the same way
(:func:`claim_folder`). This module knows files, not models: it imports nothing of rrrnet's but
:mod:`rrrnet.io` and :mod:`rrrnet.errors`; loading ``model.pt`` is :func:`rrrnet.model.load`'s job.
"""
from __future__ import annotations

import contextlib
import fcntl
import functools
import hashlib
import inspect
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

import torch

from .errors import ConfigError, RunError
from .io import atomic_write, read_csv, read_json, write_csv, write_json

RUN_FILES = ("config.json", "history.csv", "checkpoint.pt", "stump.pt", "model.pt", "metrics.json",
             "manifest.json")
CHECKPOINT_FORMAT = "rrrnet-checkpoint/1"
MANIFEST = "manifest.json"
LOCK = ".rrrnet.lock"


# ---------------------------------------------------------------------------------------------
# One writer per folder.
# ---------------------------------------------------------------------------------------------

_HELD: dict[Path, list] = {}   # folder -> [open lock file, how many times this process took it]


def _key(out: Path) -> Path:
    return Path(os.path.realpath(out))


def lock_folder(out: Path) -> None:
    """Take ``out``'s OS lock (creating the folder), or raise a :class:`RunError` naming the
    process that holds it. Re-entrant within a process; see :func:`release_folder`."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise RunError(f"--out {out} is a file, not a folder; choose another --out")
    key = _key(out)
    if key in _HELD:
        _HELD[key][1] += 1
        return
    try:
        out.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        raise RunError(f"cannot create the folder {out}: a part of that path is a file; choose "
                       f"another --out") from None
    f = open(out / LOCK, "a+")
    try:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        f.seek(0)
        holder = f.read().strip() or "unknown"
        f.close()
        raise RunError(f"{out} is being written by another process (PID {holder}); wait for it "
                       f"to finish, stop it, or choose another --out") from None
    f.seek(0)
    f.truncate()
    f.write(f"{os.getpid()}\n")
    f.flush()
    _HELD[key] = [f, 1]


def release_folder(out: Path) -> None:
    """Give back one :func:`lock_folder` of this process; the last one unlocks the folder."""
    key = _key(out)
    held = _HELD.get(key)
    if held is None:
        return
    held[1] -= 1
    if held[1] == 0:
        del _HELD[key]
        held[0].close()  # closing the file releases the OS lock


@contextlib.contextmanager
def locked(out: str | os.PathLike) -> Iterator[Path]:
    """``out`` locked for the ``with`` block (:func:`lock_folder`). A folder created only to
    hold the lock is removed again when the block fails before writing anything."""
    out = Path(out)
    created = not out.exists()
    lock_folder(out)
    try:
        yield out
    except BaseException:
        if created and _HELD[_key(out)][1] == 1 and \
                {p.name for p in out.iterdir()} <= {LOCK}:
            release_folder(out)
            shutil.rmtree(out, ignore_errors=True)
            raise
        release_folder(out)
        raise
    release_folder(out)


def holds_folder(argument: str = "out") -> Callable:
    """Decorator: the function's ``argument`` folder is locked while it runs."""
    def decorate(function: Callable) -> Callable:
        signature = inspect.signature(function)

        @functools.wraps(function)
        def run(*args: Any, **kwargs: Any) -> Any:
            bound = signature.bind(*args, **kwargs)
            bound.apply_defaults()
            with locked(bound.arguments[argument]):
                return function(*args, **kwargs)
        return run
    return decorate


# ---------------------------------------------------------------------------------------------
# Hashes of what a run wrote.
# ---------------------------------------------------------------------------------------------

def sha256_of(path: Path) -> str:
    sha = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            sha.update(chunk)
    return sha.hexdigest()


def record(out: Path, *names: str) -> None:
    """Put the SHA-256 of ``out/name`` for each name into ``out``'s manifest (atomically)."""
    path = out / MANIFEST
    manifest = read_json(path, "the run's manifest") if path.exists() else {}
    files = dict(manifest.get("files", {}))
    for name in names:
        files[name] = sha256_of(out / name)
    write_json(path, {"format": "rrrnet-manifest/1", "files": files})


def verify(path: Path) -> None:
    """Check ``path`` against the manifest of its folder (or of the run above it, for
    ``evaluate/...``); files of a folder without manifest (older runs) are not checked."""
    path = Path(path)
    for folder in (path.parent, path.parent.parent):
        manifest_path = folder / MANIFEST
        if manifest_path.exists():
            break
    else:
        return
    files = read_json(manifest_path, "the run's manifest").get("files", {})
    name = path.relative_to(folder).as_posix()
    expected = files.get(name)
    if expected is None:
        return
    actual = sha256_of(path)
    if actual != expected:
        raise RunError(f"{path} is damaged: its SHA-256 ({actual[:16]}...) is not the one recorded "
                       f"in {manifest_path} when it was written ({expected[:16]}...). Restore it, "
                       f"or resume/retrain the run (--resume, or --overwrite)")


def claim_folder(out: Path, files: Iterable[str], resume: bool, overwrite: bool, what: str,
                 folders: Iterable[str] = (), remove: bool = True) -> list[str]:
    """Make ``out`` ready for a run, sweep or selection, locked for this process
    (:func:`lock_folder`): with ``overwrite`` (and ``remove``) its earlier outputs (``files``,
    and folders matching the ``folders`` patterns) are removed; without ``resume`` any of them
    is refused, naming ``what`` they are. Returns those left to resume from (with ``overwrite``
    and ``remove=False``, those to remove with :func:`clear_run` once the new work is ready)."""
    if resume and overwrite:
        raise ConfigError("--resume and --overwrite exclude each other")
    if _key(out) not in _HELD:
        lock_folder(out)  # held until the process ends, unless the caller holds it already
    present = [out / name for name in files if (out / name).exists()]
    present += [p for pattern in folders for p in sorted(out.glob(pattern))]
    if overwrite:
        if not remove:
            return []
        for path in present:
            shutil.rmtree(path) if path.is_dir() else path.unlink()
        present = []
    if present and not resume:
        raise RunError(f"{out} already holds {what} ({', '.join(p.name for p in present)}); pass "
                       f"--resume to continue it or --overwrite to start again, or choose "
                       f"another --out")
    return [p.name for p in present]


def clear_run(out: Path) -> None:
    """Remove everything an earlier run left in ``out`` (its files, ``evaluate/`` outputs and
    orphan temporary files), keeping the lock: called when a new run starts writing."""
    for name in RUN_FILES:
        (out / name).unlink(missing_ok=True)
    shutil.rmtree(out / "evaluate", ignore_errors=True)
    remove_orphans(out)


def remove_orphans(out: Path) -> list[str]:
    """Delete the temporary files of interrupted atomic writes (``.NAME.*.tmp``), e.g. the
    half-written checkpoint of a process killed with -9. Only safe under the folder's lock."""
    orphans = sorted(out.glob(".*.tmp"))
    for path in orphans:
        path.unlink(missing_ok=True)
    return [p.name for p in orphans]


@dataclass(frozen=True)
class Comparison:
    """How two run configurations are compared for resumption: ``defaults`` fill options that
    were added after a run was written (they are what that run used), ``ignore`` lists options
    that may change between an interruption and its resumption (where it runs)."""

    defaults: dict[str, dict[str, Any]] = field(default_factory=dict)
    ignore: dict[str, tuple[str, ...]] = field(default_factory=dict)
    renamed: dict[str, str] = field(default_factory=dict)   # old option name -> current one

    def comparable(self, config: dict[str, Any]) -> dict[str, Any]:
        out = {}
        for section in ("model", "recipe", "data"):
            given = {self.renamed.get(k, k): v for k, v in config.get(section, {}).items()}
            merged = {**self.defaults.get(section, {}), **given}
            out[section] = {k: v for k, v in merged.items() if k not in self.ignore.get(section, ())}
        out["classes"] = config.get("classes")
        return out

    def differences(self, a: dict[str, Any], b: dict[str, Any]) -> str:
        a, b = self.comparable(a), self.comparable(b)
        diffs = [f"{section}.{k}: {a[section].get(k)!r} -> {b[section].get(k)!r}"
                 for section in ("model", "recipe", "data")
                 for k in sorted(set(a[section]) | set(b[section]))
                 if a[section].get(k) != b[section].get(k)]
        if a["classes"] != b["classes"]:
            diffs.append("the dataset's classes")
        return "; ".join(diffs)


def prepare_run(out: Path, config: dict[str, Any], resume: bool, overwrite: bool,
                comparison: Comparison = Comparison()) -> bool:
    """Check (and lock) the run folder; returns True when a checkpoint (or a finished run) is
    resumed. Nothing is removed here: a new run calls :func:`clear_run` once it is ready to
    write, so that an option or data error never costs a finished run."""
    finished = (out / "metrics.json").exists()
    what = "a finished run" if finished else "an unfinished run"
    if not claim_folder(out, RUN_FILES, resume, overwrite, what, remove=False):
        return False
    if (out / "config.json").exists():
        saved = read_config(out)
        differences = comparison.differences(saved, config)
        if differences:
            raise RunError(f"{out} holds a run of another configuration; --resume needs the same "
                           f"options. Differences: {differences}")
    if not (out / "checkpoint.pt").exists() and not finished:
        if _never_trained(out):   # stopped before its first epoch ended: nothing to lose
            return False
        raise RunError(f"{out} has no checkpoint.pt to resume from; use --overwrite to start again")
    remove_orphans(out)
    return True


def _never_trained(out: Path) -> bool:
    """For a run folder without checkpoint or metrics: True when its history has no epoch row,
    i.e. it holds only what a run writes before its first epoch ends (configuration, manifest,
    frozen stump); such a run is started again on --resume instead of being refused."""
    history = out / "history.csv"
    return not history.exists() or len(history.read_text().strip().splitlines()) <= 1


def read_config(run: str | os.PathLike) -> dict[str, Any]:
    """A run's ``config.json``; a damaged one is a :class:`RunError` naming it."""
    verify(Path(run) / "config.json")
    config = read_json(Path(run) / "config.json", "the run's configuration")
    if not isinstance(config, dict) or not {"model", "recipe"} <= set(config):
        raise RunError(f"{Path(run) / 'config.json'} is not an rrrnet run configuration (it needs "
                       f"model and recipe); the run folder is damaged")
    return config


def save_checkpoint(path: Path, payload: dict[str, Any]) -> None:
    """``payload`` (tensors, numbers, lists) as a checkpoint, atomically."""
    payload = {"format": CHECKPOINT_FORMAT, **payload}
    atomic_write(path, lambda f: torch.save(payload, f))


def load_checkpoint(path: Path) -> dict[str, Any]:
    """A checkpoint written by :func:`save_checkpoint`, checked against the run's manifest and
    loaded safely (``weights_only``)."""
    verify(path)
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        raise RunError(f"could not read {path} ({err}); it may be damaged: remove it and use "
                       f"--overwrite to start again") from None
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
        raise RunError(f"{path} is not an rrrnet training checkpoint")
    return payload


def write_history(path: Path, history: list[dict[str, Any]]) -> None:
    if history:
        write_csv(path, history)


def read_history(path: Path) -> list[dict[str, Any]]:
    return read_csv(path)


@dataclass
class FinishedRun:
    """What a finished run folder holds (the model itself: :func:`rrrnet.model.load` on
    ``model_path``)."""

    path: Path
    config: dict[str, Any]
    metrics: dict[str, Any]
    model_path: Path

    @property
    def history(self) -> list[dict[str, Any]]:
        return read_history(self.path / "history.csv")


def read_run(run: str | os.PathLike) -> FinishedRun:
    """Check that ``run`` is a finished run folder and read its configuration and metrics
    (train.fit's; every other reader uses :class:`rrrnet.run.Run`)."""
    run = Path(run)
    if not run.is_dir():
        raise RunError(f"{run} is not a run folder (no such folder)")
    if not (run / "model.pt").is_file():
        hint = (" (training did not finish: rrrnet fit ... --resume)"
                if (run / "checkpoint.pt").exists() else "")
        raise RunError(f"{run} holds no trained model (model.pt){hint}")
    config = read_config(run)
    metrics_path = run / "metrics.json"
    for path in (run / "model.pt", metrics_path):
        if path.exists():
            verify(path)
    metrics = read_json(metrics_path, "the run's metrics") if metrics_path.exists() else {}
    return FinishedRun(run, config, metrics, run / "model.pt")
