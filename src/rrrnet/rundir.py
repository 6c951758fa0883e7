"""A run folder: its files, claiming it (refuse, overwrite, resume), checkpoints, reading it back.

A training run (``rrrnet fit``) writes into one folder:

``config.json``   the model, recipe, data and classes, written first;
``stump.pt``      a frozen stump after its BatchNorm warm-up, written once;
``checkpoint.pt`` what changes, after every epoch (atomically), for exact resumption;
``history.csv``   one row per epoch;
``model.pt``, ``metrics.json``  when finished.

Sweeps, block selections and benchmarks claim their output folders the same way
(:func:`claim_folder`). This module knows files, not models: it imports nothing of rrrnet's but
:mod:`rrrnet.io` and :mod:`rrrnet.errors`; loading ``model.pt`` is :func:`rrrnet.model.load`'s job.
"""
from __future__ import annotations

import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import torch

from .errors import ConfigError, RunError
from .io import atomic_write, read_csv, read_json, write_csv

RUN_FILES = ("config.json", "history.csv", "checkpoint.pt", "stump.pt", "model.pt", "metrics.json")
CHECKPOINT_FORMAT = "rrrnet-checkpoint/1"


def claim_folder(out: Path, files: Iterable[str], resume: bool, overwrite: bool, what: str,
                 folders: Iterable[str] = ()) -> list[str]:
    """Make ``out`` ready for a run, sweep or selection: with ``overwrite`` its earlier outputs
    (``files``, and folders matching the ``folders`` patterns) are removed; without ``resume``
    any of them is refused, naming ``what`` they are. Returns those left to resume from."""
    if resume and overwrite:
        raise ConfigError("--resume and --overwrite exclude each other")
    if out.exists() and not out.is_dir():
        raise RunError(f"--out {out} is a file, not a folder; choose another --out")
    present = [out / name for name in files if (out / name).exists()]
    if out.is_dir():
        present += [p for pattern in folders for p in sorted(out.glob(pattern))]
    if overwrite:
        for path in present:
            shutil.rmtree(path) if path.is_dir() else path.unlink()
        present = []
    if present and not resume:
        raise RunError(f"{out} already holds {what} ({', '.join(p.name for p in present)}); pass "
                       f"--resume to continue it or --overwrite to start again, or choose "
                       f"another --out")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        raise RunError(f"cannot create the folder {out}: a part of that path is a file; choose "
                       f"another --out") from None
    return [p.name for p in present]


@dataclass(frozen=True)
class Comparison:
    """How two run configurations are compared for resumption: ``defaults`` fill options that
    were added after a run was written (they are what that run used), ``ignore`` lists options
    that may change between an interruption and its resumption (where it runs)."""

    defaults: dict[str, dict[str, Any]] = field(default_factory=dict)
    ignore: dict[str, tuple[str, ...]] = field(default_factory=dict)

    def comparable(self, config: dict[str, Any]) -> dict[str, Any]:
        out = {}
        for section in ("model", "recipe", "data"):
            merged = {**self.defaults.get(section, {}), **config.get(section, {})}
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
    """Check the run folder; returns True when a checkpoint (or a finished run) is resumed."""
    finished = (out / "metrics.json").exists()
    what = "a finished run" if finished else "an unfinished run"
    if not claim_folder(out, RUN_FILES, resume, overwrite, what):
        return False
    if (out / "config.json").exists():
        saved = read_config(out)
        differences = comparison.differences(saved, config)
        if differences:
            raise RunError(f"{out} holds a run of another configuration; --resume needs the same "
                           f"options. Differences: {differences}")
    if not (out / "checkpoint.pt").exists() and not finished:
        raise RunError(f"{out} has no checkpoint.pt to resume from; use --overwrite to start again")
    return True


def read_config(run: str | os.PathLike) -> dict[str, Any]:
    """A run's ``config.json``; a damaged one is a :class:`RunError` naming it."""
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
    """A checkpoint written by :func:`save_checkpoint`, loaded safely (``weights_only``)."""
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
    """Check that ``run`` is a finished run folder and read its configuration and metrics."""
    run = Path(run)
    if not run.is_dir():
        raise RunError(f"{run} is not a run folder (no such folder)")
    if not (run / "model.pt").is_file():
        hint = (" (training did not finish: rrrnet fit ... --resume)"
                if (run / "checkpoint.pt").exists() else "")
        raise RunError(f"{run} holds no trained model (model.pt){hint}")
    config = read_config(run)
    metrics_path = run / "metrics.json"
    metrics = read_json(metrics_path, "the run's metrics") if metrics_path.exists() else {}
    return FinishedRun(run, config, metrics, run / "model.pt")
