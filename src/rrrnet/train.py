"""Train an RRR-Net with the paper's recipe, into a resumable run folder.

The recipe (paper Appendix C, the authors' release): AdamW (lr 1e-3, weight decay 0.01), batch 32,
300 epochs, no schedule, an exponential moving average of the weights over the last 60 epochs,
two random augmentations per image. The frozen stump stays in eval mode; its BatchNorm statistics
are first re-estimated on the training images. Every branch has its own cross-entropy loss, and
all branches train in one fused pass per batch with the stump computed once
(``branch_views="shared"``), or each branch on its own augmentation draw (``"independent"``).
That is the paper's naive ensemble; ``Recipe.ensemble`` also offers bagging, Snapshot Ensemble and
Fast Geometric Ensembling (see :mod:`rrrnet.ensembles` for how each maps onto the fused model).

Reproducibility: every random draw of epoch ``e`` (batch order, augmentation of each image and
view, dropout masks) derives from ``(seed, e)`` alone, so a resumed run repeats exactly what an
uninterrupted run would have done. The run folder holds ``config.json``, ``history.csv``, ``stump.pt`` (a frozen
stump, once), ``checkpoint.pt`` (written atomically after every epoch), and when finished
``model.pt`` and ``metrics.json``.
"""
from __future__ import annotations

import csv
import dataclasses
import json
import math
import os
import random
import shutil
import tempfile
import time
from dataclasses import dataclass
from itertools import chain, repeat
from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np
import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn, update_bn
from torch.utils.data import DataLoader, Dataset, TensorDataset
from tqdm.auto import tqdm

from .augment import normalize, train_transform
from .data import ImageDataset, Split, load_dataset, micro_split
from .ensembles import (ENSEMBLES, TRAJECTORY_ENSEMBLES, Indexed, Trajectory, assemble,
                        bootstrap_weights, check_ensemble, collection_steps, lr_of,
                        trajectory_model)
from .errors import ConfigError, RunError
from .evaluate import collect_logits, ensemble_metrics
from .fold import frozen_copy
from .model import ModelConfig, build, load, save
from .recycle import BranchedResNet

BRANCH_VIEWS = ("shared", "independent")
RUN_FILES = ("config.json", "history.csv", "checkpoint.pt", "stump.pt", "model.pt", "metrics.json")
CHECKPOINT_FORMAT = "rrrnet-checkpoint/1"


@dataclass(frozen=True)
class Recipe:
    """How to train; the defaults are the paper's."""

    epochs: int = 300
    batch_size: int = 32
    lr: float = 1e-3
    weight_decay: float = 0.01
    ema_epochs: int = 60              # EMA over the last N epochs (0: none)
    warm_stem_epochs: int = 10        # passes re-estimating the frozen stump's BN statistics
    augment_ops: int = 2              # augmentations drawn per image (0: none)
    branch_views: str = "shared"      # shared | independent (see the module docs)
    image_size: int = 128
    seed: int = 0
    eval_every: int = 1               # test error in history.csv every N epochs (0: only at the end)
    num_workers: int = 0
    device: str = "auto"              # auto | cpu | cuda
    channels_last: bool = True        # NHWC tensors: about 20% faster training on CPU here
    ensemble: str = "naive"           # naive | bagging | snapshot | fge (rrrnet.ensembles)
    fge_cycle_epochs: int = 4         # FGE: epochs per cycle (Garipov et al.: 2 to 4)
    fge_lr_high: float = 0.5          # FGE: cycle's highest rate, times lr
    fge_lr_low: float = 0.005         # FGE: cycle's lowest rate (where models are collected), times lr

    def __post_init__(self):
        if self.branch_views not in BRANCH_VIEWS:
            raise ConfigError(f"branch_views must be shared or independent, got {self.branch_views!r}")
        if self.ensemble not in ENSEMBLES:
            raise ConfigError(f"ensemble must be one of {', '.join(ENSEMBLES)}, got {self.ensemble!r}")
        if self.fge_cycle_epochs < 1:
            raise ConfigError(f"fge_cycle_epochs must be at least 1, got {self.fge_cycle_epochs}")
        if not 0 < self.fge_lr_low <= self.fge_lr_high:
            raise ConfigError(f"FGE rates need 0 < fge_lr_low <= fge_lr_high, got "
                              f"{self.fge_lr_low} and {self.fge_lr_high}")
        if self.device not in ("auto", "cpu", "cuda") and not self.device.startswith("cuda:"):
            raise ConfigError(f"device must be auto, cpu or cuda, got {self.device!r}")
        for name in ("epochs", "batch_size"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be at least 1, got {getattr(self, name)}")
        for name in ("ema_epochs", "warm_stem_epochs", "augment_ops", "eval_every", "num_workers"):
            if getattr(self, name) < 0:
                raise ConfigError(f"{name} must be >= 0, got {getattr(self, name)}")

    def ema_decay(self, steps_per_epoch: int) -> float:
        """Decay whose averaging window (1 / (1 - decay) steps) spans ``ema_epochs`` epochs."""
        return 1.0 - 1.0 / max(1, self.ema_epochs * steps_per_epoch)

    @property
    def uses_ema(self) -> bool:
        """Snapshot and FGE ensemble raw weights at their cycle points, as their papers do."""
        return self.ema_epochs > 0 and self.ensemble not in TRAJECTORY_ENSEMBLES

    @property
    def ema_start(self) -> int:
        """The first epoch (0-based) whose steps enter the average."""
        return max(0, self.epochs - self.ema_epochs)


@dataclass(frozen=True)
class DataSpec:
    """Which images: the dataset folder and the per-class micro split."""

    root: str
    train: int = 20
    val: int = 0
    test: int = 20
    skip_bad_images: bool = False

    def load(self) -> Split:
        return micro_split(load_dataset(self.root, skip_bad_images=self.skip_bad_images),
                           train=self.train, val=self.val, test=self.test)


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError("--device cuda asked for, but PyTorch sees no CUDA device; use --device cpu")
    return torch.device(name)


# ---------------------------------------------------------------------------------------------
# Data: seeded per (epoch, image, view), so that resumption replays the same draws.
# ---------------------------------------------------------------------------------------------

def _draw_seed(*parts: int) -> int:
    return int(np.random.SeedSequence([abs(int(p)) for p in parts]).generate_state(1)[0])


class TrainingImages(Dataset):
    """Normalised training images, augmented with a seed fixed by (run seed, epoch, index, view).

    With ``views > 1`` an item is ``[views, 3, H, W]``: one augmentation draw per branch.
    """

    def __init__(self, images: ImageDataset, augment_ops: int, views: int, seed: int):
        self.images, self.views, self.seed, self.epoch = images, views, seed, 0
        self.augment = train_transform(augment_ops) if augment_ops > 0 else None

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int):
        image, label = self.images[index]
        tensors = [normalize(self._augmented(image, index, view)) for view in range(self.views)]
        return (tensors[0] if self.views == 1 else torch.stack(tensors)), label

    def _augmented(self, image: np.ndarray, index: int, view: int) -> np.ndarray:
        if self.augment is None:
            return image
        # Re-seeded per draw (not per worker): the draw depends on nothing but these numbers.
        self.augment.reseed([self.seed, self.epoch + 1, index, view])
        return self.augment.compose(image=image)["image"]


class EvalImages(Dataset):
    def __init__(self, images: ImageDataset):
        self.images = images

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int):
        image, label = self.images[index]
        return normalize(image), label


def _loader(dataset: Dataset, batch_size: int, shuffle: bool, seed: int = 0,
            num_workers: int = 0) -> DataLoader:
    generator = torch.Generator().manual_seed(seed)
    return DataLoader(dataset, batch_size=batch_size, shuffle=shuffle, generator=generator,
                      num_workers=num_workers, drop_last=False)


# ---------------------------------------------------------------------------------------------
# Run folder: configuration, history, checkpoints.
# ---------------------------------------------------------------------------------------------

def atomic_write(path: Path, write: Callable[[Any], None], mode: str = "wb") -> None:
    """Write through a temporary sibling and rename it over ``path``: a crash or a full disk
    leaves the previous file intact."""
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


def write_json(path: Path, data: Any) -> None:
    atomic_write(path, lambda f: f.write(json.dumps(data, indent=2) + "\n"), mode="w")


def write_csv(path: Path, rows: Iterable[dict[str, Any]], columns: Iterable[str] | None = None
              ) -> None:
    """``rows`` as CSV, atomically. ``columns``: these in this order, other keys left out;
    default: every key of the rows, in order of first appearance."""
    rows = list(rows)
    columns = list(dict.fromkeys(k for row in rows for k in row) if columns is None else columns)

    def write(f):
        writer = csv.DictWriter(f, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    atomic_write(path, write, mode="w")


def run_config(model: ModelConfig, recipe: Recipe, data: DataSpec,
               classes: Iterable[str] = ()) -> dict[str, Any]:
    return {"model": model.to_dict(), "recipe": dataclasses.asdict(recipe),
            "data": dataclasses.asdict(data), "classes": list(classes)}


def claim_folder(out: Path, files: Iterable[str], resume: bool, overwrite: bool, what: str,
                 folders: Iterable[str] = ()) -> list[str]:
    """Make ``out`` ready for a run, sweep or selection: with ``overwrite`` its earlier outputs
    (``files``, and folders matching the ``folders`` patterns) are removed; without ``resume``
    any of them is refused, naming ``what`` they are. Returns those left to resume from."""
    if resume and overwrite:
        raise ConfigError("--resume and --overwrite exclude each other")
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
    out.mkdir(parents=True, exist_ok=True)
    return [p.name for p in present]


def prepare_run(out: Path, config: dict[str, Any], resume: bool, overwrite: bool) -> bool:
    """Check the run folder; returns True when a checkpoint is to be resumed."""
    finished = (out / "metrics.json").exists()
    what = "a finished run" if finished else "an unfinished run"
    if not claim_folder(out, RUN_FILES, resume, overwrite, what):
        return False
    saved = json.loads((out / "config.json").read_text()) if (out / "config.json").exists() else None
    if saved is not None and _comparable(saved) != _comparable(config):
        raise RunError(f"{out} holds a run of another configuration; --resume needs the same "
                       f"options. Differences: {_differences(saved, config)}")
    if not (out / "checkpoint.pt").exists() and not finished:
        raise RunError(f"{out} has no checkpoint.pt to resume from; use --overwrite to start again")
    return True


def _comparable(config: dict[str, Any]) -> dict[str, Any]:
    # Where the run executes may change between an interruption and its resumption. Options added
    # since a run was written take their defaults, which are what that run used.
    recipe = {k: v for k, v in {**dataclasses.asdict(Recipe()), **config["recipe"]}.items()
              if k not in ("device", "num_workers")}
    model = {k: v for k, v in {"dropout": 0.0, **config["model"]}.items() if k != "weights"}
    return {"model": model, "recipe": recipe, "data": config["data"], "classes": config["classes"]}


def _differences(a: dict, b: dict) -> str:
    a, b = _comparable(a), _comparable(b)
    diffs = [f"{section}.{k}: {a[section].get(k)!r} -> {b[section].get(k)!r}"
             for section in ("model", "recipe", "data")
             for k in sorted(set(a[section]) | set(b[section]))
             if a[section].get(k) != b[section].get(k)]
    if a["classes"] != b["classes"]:
        diffs.append("the dataset's classes")
    return "; ".join(diffs) or "none"


def _rng_states() -> dict[str, Any]:
    return {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate()}


def save_checkpoint(path: Path, epoch: int, model: BranchedResNet, optimizer, ema, history,
                    setup_seconds: float = 0.0, trajectory: Trajectory | None = None) -> None:
    # A frozen stump is saved once (stump.pt, after its BatchNorm warm-up); each epoch's
    # checkpoint holds what changes, which for baseline [A] is 40 kB instead of 230 MB.
    payload = {"format": CHECKPOINT_FORMAT, "epoch": epoch, "setup_seconds": setup_seconds,
               "model": averaged_part(model).state_dict(),
               "optimizer": optimizer.state_dict(),
               "ema": None if ema is None else ema.state_dict(), "history": history,
               "trajectory": None if trajectory is None else trajectory.state_dict()}
    atomic_write(path, lambda f: torch.save(payload, f))


def load_checkpoint(path: Path) -> dict[str, Any]:
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


# ---------------------------------------------------------------------------------------------
# Training.
# ---------------------------------------------------------------------------------------------

def warm_stump(model: BranchedResNet, loader: Iterable, passes: int, device: torch.device,
               progress: bool) -> None:
    """Re-estimate the frozen stump's BatchNorm statistics on the training images.

    ``update_bn`` resets the statistics and averages them over every batch of every pass
    (momentum None), then restores the stump's mode; the stump stays frozen throughout.
    """
    if passes == 0 or not any(isinstance(m, nn.modules.batchnorm._BatchNorm)
                              for m in model.stump.modules()):
        return
    batches = chain.from_iterable(repeat(loader, passes))
    total = passes * len(loader)
    stump_inputs = (x.flatten(0, 1) if x.dim() == 5 else x for x, _ in
                    tqdm(batches, total=total, desc="warming stump BN", disable=not progress,
                         leave=False))
    with torch.no_grad():
        update_bn(stump_inputs, model.stump, device=device)
    model.stump.eval()


def branch_loss(logits: torch.Tensor, labels: torch.Tensor,
                weights: torch.Tensor | None = None) -> torch.Tensor:
    """The naive ensemble's loss: every branch its own cross-entropy, summed over branches, so
    each branch receives exactly the gradient it would get if trained alone.

    ``weights`` ``[b, n]`` (bagging): branch ``k``'s loss is ``sum_i w[k, i] * CE[k, i] / n``,
    the images' multiplicities in its bootstrap sample (see :mod:`rrrnet.ensembles`).
    """
    b, n, c = logits.shape
    per_image = nn.functional.cross_entropy(logits.reshape(b * n, c), labels.repeat(b),
                                            reduction="none").view(b, n)
    per_branch = per_image.mean(dim=1) if weights is None else (per_image * weights).sum(dim=1) / n
    return per_branch.sum()


def _to_device(x: torch.Tensor, device: torch.device) -> torch.Tensor:
    x = x.to(device, non_blocking=True)
    # Channels-last input, as the trained model is by default (Recipe.channels_last); a model
    # left NCHW still gets the right result, the convolution converting the layout back.
    return x.contiguous(memory_format=torch.channels_last) if x.dim() == 4 else x


def train_epoch(model: BranchedResNet, loader: Iterable, optimizer, ema, device: torch.device,
                progress: bool, desc: str, forward=None, sample_weights: torch.Tensor | None = None,
                after_step: Callable[[], None] | None = None) -> dict[str, float]:
    """One pass over ``loader``; ``forward`` replaces ``model`` (e.g. ``model.branches`` on
    cached stump features). ``sample_weights`` ``[b, images]`` (bagging): the loader yields
    ``(x, y, index)`` and each branch's loss is weighted by its row. ``after_step`` runs after
    every optimiser step (a learning-rate schedule, snapshot collection)."""
    model.train()
    forward = forward or model
    total_loss, seen, wrong, branch_wrong = 0.0, 0, 0, None
    for batch in tqdm(loader, desc=desc, disable=not progress, leave=False):
        x, y = _to_device(batch[0], device), batch[1].to(device, non_blocking=True)
        logits = forward(x)
        weights = None if sample_weights is None else sample_weights[:, batch[2].to(device)]
        loss = branch_loss(logits, y, weights)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if ema is not None:
            ema.update_parameters(averaged_part(model))
        if after_step is not None:
            after_step()
        with torch.no_grad():
            total_loss += loss.item() * y.numel()
            seen += y.numel()
            wrong += (logits.softmax(-1).mean(0).argmax(-1) != y).sum().item()
            bw = (logits.argmax(-1) != y).sum(dim=1)
            branch_wrong = bw if branch_wrong is None else branch_wrong + bw
    row = {"loss": total_loss / seen / logits.shape[0], "train_error": wrong / seen}
    row.update({f"train_error_b{i}": v / seen for i, v in enumerate(branch_wrong.tolist())})
    return row


@dataclass
class FitResult:
    model: BranchedResNet
    metrics: dict[str, Any]
    history: list[dict[str, Any]]
    out: Path


def fit(data: DataSpec, out: str | os.PathLike, model_config: ModelConfig | None = None,
        recipe: Recipe | None = None, resume: bool = False, overwrite: bool = False,
        progress: bool = True, stop_after: int | None = None) -> FitResult:
    """Train an RRR-Net on ``data`` into the run folder ``out``; see the module docs.

    ``stop_after`` ends the process-equivalent of an interruption after that many epochs of this
    call (used to test resumption); the checkpoint is left as an interrupted run leaves it.
    """
    out, recipe = Path(out), recipe or Recipe()
    model_config = model_config or ModelConfig()
    check_ensemble(recipe.ensemble, model_config.freeze_stump)
    split = data.load()
    model_config = dataclasses.replace(model_config, num_classes=len(split.train.classes))
    if recipe.ensemble in TRAJECTORY_ENSEMBLES:  # too short a training fails before any file
        collection_steps(recipe.ensemble, recipe.epochs, math.ceil(len(split.train) /
                         recipe.batch_size), model_config.branches, recipe.fge_cycle_epochs)
    config = run_config(model_config, recipe, data, split.train.classes)
    resuming = prepare_run(out, config, resume, overwrite)
    if resuming and (out / "metrics.json").exists():
        model = load(out / "model.pt")
        metrics = json.loads((out / "metrics.json").read_text())
        return FitResult(model, metrics, read_history(out / "history.csv"), out)
    setup_started = time.perf_counter()
    device = resolve_device(recipe.device)
    torch.manual_seed(recipe.seed)
    if resuming:
        checkpoint = load_checkpoint(out / "checkpoint.pt")
        full = build(model_config, weights="none", progress=progress)  # weights: the checkpoint's
        if full.freeze_stump:
            full.stump.load_state_dict(load_checkpoint(out / "stump.pt")["model"])
        saved_weights = json.loads((out / "config.json").read_text())["model"]["weights"]
        full.config = dataclasses.replace(full.config, weights=saved_weights)
    else:
        full = build(model_config, progress=progress)
        # As asked (shift None stays None), so a resumption with the same options compares equal.
        write_json(out / "config.json", {**config, "resolved_shift": full.plan.shift})
        checkpoint = None
    # Snapshot and FGE train one branch of the full width; its snapshots fill the slots at the end.
    trajectory_run = recipe.ensemble in TRAJECTORY_ENSEMBLES
    model = trajectory_model(full) if trajectory_run else full
    if checkpoint is not None:
        averaged_part(model).load_state_dict(checkpoint["model"])
    model.to(device)
    if recipe.channels_last:
        model.to(memory_format=torch.channels_last)

    train_images = ImageDataset(split.train, size=recipe.image_size)
    test_images = ImageDataset(split.test, size=recipe.image_size)
    views = model.num_branches if recipe.branch_views == "independent" else 1
    augmented = TrainingImages(train_images, recipe.augment_ops, views, recipe.seed)
    train_set: Dataset = augmented
    test_loader = _loader(EvalImages(test_images), recipe.batch_size * 2, False)
    if checkpoint is None and model.freeze_stump:
        augmented.epoch = -1  # warm-up draws of their own
        warm_stump(model, _loader(augmented, recipe.batch_size, True, _draw_seed(recipe.seed, 10**6),
                                  recipe.num_workers), recipe.warm_stem_epochs, device, progress)
        stump = {"format": CHECKPOINT_FORMAT, "model": model.stump.state_dict()}
        atomic_write(out / "stump.pt", lambda f: torch.save(stump, f))

    fast = with_folded_stump(model, recipe.channels_last)
    # A frozen stump on unaugmented images computes the same features every epoch: compute
    # them once and train the branches on them (e.g. last-layer fine-tuning of a full backbone).
    cached = model.freeze_stump and recipe.augment_ops == 0 and views == 1
    forward = model.branches if cached else fast
    if cached:
        train_set = feature_cache(fast, _loader(train_set, recipe.batch_size * 2, False), device,
                                  progress, "stump features (train)")
        test_loader = _loader(feature_cache(fast, test_loader, device, progress,
                                            "stump features (test)"), recipe.batch_size * 2, False)
    sample_weights = None
    if recipe.ensemble == "bagging":
        sample_weights = bootstrap_weights(len(train_set), model.num_branches, recipe.seed).to(device)
        train_set = Indexed(train_set)

    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad],
                                  lr=recipe.lr, weight_decay=recipe.weight_decay)
    steps = math.ceil(len(train_set) / recipe.batch_size)
    trajectory = after_step = None
    if trajectory_run:
        trajectory = Trajectory(recipe.ensemble, optimizer, recipe.epochs, steps, full.num_branches,
                                recipe.fge_cycle_epochs, recipe.fge_lr_high, recipe.fge_lr_low)
        after_step = lambda: trajectory.after_step(model.branches)  # noqa: E731
    ema, history, start = None, [], 0
    setup_seconds = time.perf_counter() - setup_started  # model, stump warm-up, feature cache
    if checkpoint is not None:
        optimizer.load_state_dict(checkpoint["optimizer"])
        history, start = checkpoint["history"], checkpoint["epoch"] + 1
        setup_seconds += checkpoint.get("setup_seconds", 0.0)
        if checkpoint["ema"] is not None:
            ema = _new_ema(model, recipe, steps)
            ema.load_state_dict(checkpoint["ema"])
        if trajectory is not None:
            trajectory.load_state_dict(checkpoint["trajectory"])

    epochs = tqdm(range(start, recipe.epochs), desc="epochs", disable=not progress,
                  initial=start, total=recipe.epochs)
    for done, epoch in enumerate(epochs, 1):
        started = time.perf_counter()
        if ema is None and recipe.uses_ema and epoch >= recipe.ema_start:
            ema = _new_ema(model, recipe, steps)
        augmented.epoch = epoch
        torch.manual_seed(_draw_seed(recipe.seed, epoch, 7))  # dropout masks of this epoch
        loader = _loader(train_set, recipe.batch_size, True, _draw_seed(recipe.seed, epoch),
                         recipe.num_workers)
        row = {"epoch": epoch + 1}
        row.update(train_epoch(model, loader, optimizer, ema, device, progress,
                               f"epoch {epoch + 1}", forward, sample_weights, after_step))
        if trajectory is not None:
            row.update(lr=lr_of(optimizer), snapshots=len(trajectory.snapshots))
        if recipe.eval_every and (epoch + 1) % recipe.eval_every == 0:
            row.update(_prefixed("test_", _error_summary(model, test_loader, device, forward)))
        row["seconds"] = round(time.perf_counter() - started, 3)
        history.append(row)
        epochs.set_postfix(loss=f"{row['loss']:.3f}", test_error=row.get("test_error", "-"))
        save_checkpoint(out / "checkpoint.pt", epoch, model, optimizer, ema, history, setup_seconds,
                        trajectory)
        write_history(out / "history.csv", history)
        if stop_after is not None and done >= stop_after and epoch + 1 < recipe.epochs:
            return FitResult(model, {}, history, out)

    final = model
    if trajectory is not None:
        full.to(device)
        if recipe.channels_last:
            full.to(memory_format=torch.channels_last)
        final = assemble(full, trajectory.snapshots)
    elif ema is not None:
        if model.freeze_stump:
            model.branches = ema.module  # the stump never changed: only the branches are averaged
        else:
            final = ema.module
    metrics = evaluate_split(final, split, recipe, device, test_images)  # images: whole model
    metrics.update(weights_used=full.config.weights, ema=ema is not None,
                   epochs=recipe.epochs, ensemble=recipe.ensemble,
                   setup_seconds=round(setup_seconds, 3),
                   train_seconds=round(setup_seconds + sum(r["seconds"] for r in history), 3))
    if trajectory is not None:
        metrics["snapshot_steps"] = list(trajectory.steps)  # 0-based optimiser steps
    save(final.cpu().to(memory_format=torch.contiguous_format), out / "model.pt")
    write_json(out / "metrics.json", metrics)
    return FitResult(final, metrics, history, out)


def averaged_part(model: BranchedResNet) -> nn.Module:
    """What the EMA averages: the branches when the stump is frozen (averaging constant weights
    would cost a full copy of e.g. ResNet-152 per step), else the whole model."""
    return model.branches if model.freeze_stump else model


def _new_ema(model: BranchedResNet, recipe: Recipe, steps_per_epoch: int) -> AveragedModel:
    decay = recipe.ema_decay(steps_per_epoch)
    return AveragedModel(averaged_part(model), multi_avg_fn=get_ema_multi_avg_fn(decay),
                         use_buffers=True)


def _prefixed(prefix: str, data: dict[str, Any]) -> dict[str, Any]:
    return {prefix + k: v for k, v in data.items()}


def _error_summary(model: BranchedResNet, loader: DataLoader, device: torch.device,
                   forward=None) -> dict[str, float]:
    logits, labels = collect_logits(model, loader, device, forward)
    full = ensemble_metrics(logits, labels)
    row = {"error": full["error"]}
    row.update({f"error_b{i}": e for i, e in enumerate(full["branch_errors"])})
    return row


def evaluate_split(model: BranchedResNet, split: Split, recipe: Recipe, device: torch.device,
                   test_images: ImageDataset | None = None) -> dict[str, Any]:
    """Ensemble metrics on the test part (and the validation part when the split has one).
    ``test_images``: the test images already decoded for training, to not read them again."""
    def metrics_on(images: ImageDataset) -> dict[str, Any]:
        loader = _loader(EvalImages(images), recipe.batch_size * 2, False)
        return ensemble_metrics(*collect_logits(model, loader, device))

    metrics = metrics_on(test_images or ImageDataset(split.test, size=recipe.image_size))
    metrics["test_images"] = len(split.test)
    if len(split.val):
        metrics["val"] = metrics_on(ImageDataset(split.val, size=recipe.image_size))
    metrics["classes"] = list(split.train.classes)
    return metrics


def read_history(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    with open(path, newline="") as f:
        return [{k: _number(v) for k, v in row.items()} for row in csv.DictReader(f)]


def _number(text: str):
    try:
        return int(text)
    except ValueError:
        try:
            return float(text)
        except ValueError:
            return text


def with_folded_stump(model: BranchedResNet, channels_last: bool) -> BranchedResNet:
    """What training runs: ``model`` itself, or for a frozen stump, which never changes after its
    BatchNorm warm-up, the same branches behind a copy of the stump with BatchNorm folded and
    strided 1x1 convolutions subsampled (:func:`rrrnet.fold.frozen_copy`: exact up to float
    rounding, about a quarter less stump time on CPU). The model that is saved, averaged and
    finally evaluated keeps its own stump."""
    if not model.freeze_stump:
        return model
    stump = frozen_copy(model.stump, channels_last=channels_last)
    return BranchedResNet(stump, model.branches, model.plan, model.block, freeze_stump=True)


def feature_cache(model: BranchedResNet, loader: DataLoader, device: torch.device,
                  progress: bool = False, desc: str = "stump features") -> TensorDataset:
    """Stump outputs of every image once: with a frozen stump and no augmentation the branches can
    train on these instead of images (e.g. last-layer fine-tuning of a full backbone)."""
    xs, ys = [], []
    model.eval()
    with torch.no_grad():
        for x, y in tqdm(loader, desc=desc, disable=not progress, leave=False):
            xs.append(model.stump(x.to(device)).cpu())
            ys.append(y)
    return TensorDataset(torch.cat(xs), torch.cat(ys))


