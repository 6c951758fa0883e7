"""Use a finished run folder: evaluate it on a dataset, predict images."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader

from .augment import normalize
from .data import ImageDataset, load_dataset, micro_split, read_image
from . import deploy
from .errors import RunError
from .evaluate import collect_logits, ensemble_metrics, predict_images
from .io import resolve_device, write_json
from .model import load
from .recycle import BranchedResNet
from .rundir import read_run as read_run_folder
from .train import EvalImages


def read_run(run: str | os.PathLike) -> tuple[BranchedResNet, dict[str, Any]]:
    """The trained model and the run's configuration."""
    finished = read_run_folder(run)
    return load(finished.model_path), finished.config


def evaluate_run(run: str | os.PathLike, data: str | os.PathLike, split: str = "test",
                 out: str | os.PathLike | None = None, skip_bad_images: bool = False,
                 device: str = "auto") -> tuple[Path, dict[str, Any]]:
    """Metrics of the run's model on ``split`` of ``data`` (the run's per-class split sizes)."""
    model, config = read_run(run)
    dataset = load_dataset(data, skip_bad_images=skip_bad_images)
    _check_classes(model, config, dataset.classes, data)
    spec = config["data"]
    images = dataset if split == "all" else getattr(
        micro_split(dataset, train=spec["train"], val=spec["val"], test=spec["test"]), split)
    size = config["recipe"]["image_size"]
    loader = DataLoader(EvalImages(ImageDataset(images, size=size)), batch_size=64)
    metrics = ensemble_metrics(*collect_logits(model, loader, resolve_device(device)))
    metrics.update(dataset=str(data), split=split)
    path = Path(out) if out else Path(run) / "evaluate" / f"{Path(data).name}-{split}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    write_json(path, metrics)
    return path, metrics


def predict_run(run: str | os.PathLike, images: list[str], k: int = 3,
                **options: bool) -> list[dict[str, Any]]:
    """Top-k classes and uncertainty per image, with the fast inference model
    (:func:`rrrnet.deploy.prepare`; ``options`` override its options)."""
    model, config = read_run(run)
    model = deploy.prepare(model, image_size=config["recipe"]["image_size"], **options)
    size = config["recipe"]["image_size"]
    batch = torch.stack([normalize(read_image(path, size)) for path in images])
    results = predict_images(model, batch, config["classes"], k)
    return [{"image": str(path), **r} for path, r in zip(images, results)]


def _check_classes(model: BranchedResNet, config: dict, classes, data) -> None:
    trained = config.get("classes")
    if trained is not None and list(trained) != list(classes):
        raise RunError(f"{data} has classes {list(classes)[:5]}..., the run was trained on "
                       f"{trained[:5]}...; evaluate on a dataset with the same classes")
    if model.config.num_classes != len(classes):
        raise RunError(f"{data} has {len(classes)} classes, the model predicts "
                       f"{model.config.num_classes}")
