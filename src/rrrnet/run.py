"""Use a finished run folder: evaluate it on a dataset, predict images."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Sequence

import torch

from .data import ImageDataset, load_dataset, micro_split, normalize, read_image
from . import deploy
from .errors import DataError, RunError
from .evaluate import evaluate_model, predict_images
from .io import json_safe, write_csv, write_json
from .model import load
from .recycle import BranchedResNet
from .rundir import read_run as read_run_folder
from .rundir import record
from .recipe import Recipe


def read_run(run: str | os.PathLike) -> tuple[BranchedResNet, dict[str, Any]]:
    """The trained model and the run's configuration; an int8 file of ``rrrnet quantize``
    stands for its run (its metadata holds the configuration)."""
    if str(run).endswith(".onnx") and Path(run).is_file():
        from .quantize import QuantizedModel
        model = QuantizedModel(run)
        return model, model.run_config()
    finished = read_run_folder(run)
    return load(finished.model_path), finished.config


def evaluate_run(run: str | os.PathLike, data: str | os.PathLike, split: str = "test",
                 out: str | os.PathLike | None = None, skip_bad_images: bool = False,
                 device: str = "auto") -> tuple[Path, dict[str, Any]]:
    """Metrics of the run's model on ``split`` of ``data`` (the run's per-class split sizes)."""
    model, config = read_run(run)
    spec = config.get("data") or {}
    if split not in ("train", "val", "test", "all"):
        raise RunError(f"--split must be train, val, test or all, got {split!r}")
    if split == "val" and not spec.get("val"):
        raise RunError(f"{run} was trained without a validation split (fit --val N makes one); "
                       f"evaluate --split test, train or all")
    if split in ("train", "val", "test") and not spec:
        raise RunError(f"{Path(run) / 'config.json'} records no data split; use --split all")
    dataset = load_dataset(data, skip_bad_images=skip_bad_images)
    _check_classes(model, config, dataset.classes, data)
    images = dataset if split == "all" else getattr(
        micro_split(dataset, train=spec["train"], val=spec["val"], test=spec["test"]), split)
    recipe = Recipe(image_size=config["recipe"]["image_size"], batch_size=32)
    metrics = evaluate_model(model, ImageDataset(images, size=recipe.image_size), recipe,
                             device=device)
    metrics.update(dataset=str(data), split=split)
    folder = Path(run) / "evaluate" if Path(run).is_dir() else \
        Path(run).with_name(f"{Path(run).stem}.evaluate")  # beside an int8 file
    path = Path(out) if out else folder / f"{Path(data).name}-{split}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    write_json(path, metrics)
    if path.parent == Path(run) / "evaluate":
        record(Path(run), path.relative_to(run).as_posix())
    return path, metrics


def predict_run(run: str | os.PathLike, images: list[str], k: int = 3,
                **options: bool) -> list[dict[str, Any]]:
    """Top-k classes and uncertainty per image, with the fast inference model
    (:func:`rrrnet.deploy.prepare`; ``options`` override its options)."""
    if k < 1:
        raise RunError(f"--top-k must be at least 1, got {k}")
    model, config = read_run(run)
    for image in images:
        if Path(image).is_dir():
            raise RunError(f"{image} is a folder; give image files (e.g. {image}/*.jpg)")
        if not Path(image).is_file():
            raise RunError(f"image file {image} does not exist")
    model = deploy.prepare(model, image_size=config["recipe"]["image_size"], **options)
    size = config["recipe"]["image_size"]
    batch = []
    for image in images:
        try:
            batch.append(normalize(read_image(image, size)))
        except DataError as err:
            raise RunError(str(err).split("; ")[0] + "; predict needs readable image files") from None
    results = predict_images(model, torch.stack(batch), config["classes"], k)
    return [{"image": str(path), **r} for path, r in zip(images, results)]


def _check_classes(model: BranchedResNet, config: dict, classes, data) -> None:
    trained = config.get("classes")
    if trained is not None and list(trained) != list(classes):
        extra = [c for c in classes if c not in trained]
        missing = [c for c in trained if c not in classes]
        if extra or missing:
            detail = (f"classes not in the run: {extra[:10]}" if extra else "") + \
                     ("; " if extra and missing else "") + \
                     (f"classes of the run missing here: {missing[:10]}" if missing else "")
        else:
            first = next(i for i, (a, b) in enumerate(zip(trained, classes)) if a != b)
            detail = (f"the same classes in another order (position {first}: {classes[first]!r} "
                      f"here, {trained[first]!r} in the run)")
        raise RunError(f"{data} does not have the classes the run was trained on: {detail}; "
                       f"evaluate on a dataset with the same classes")
    if model.config.num_classes != len(classes):
        raise RunError(f"{data} has {len(classes)} classes, the model predicts "
                       f"{model.config.num_classes}")


def uncertainty_run(run: str | os.PathLike, data: str | os.PathLike, out: str | os.PathLike,
                    split: str = "test", ood: Sequence[str | os.PathLike] = (),
                    alpha: float = 0.1, mc_samples: int = 0, skip_bad_images: bool = False,
                    device: str = "auto") -> dict[str, Any]:
    """The uncertainty report (:mod:`rrrnet.uncertainty`) of a run on ``split`` of ``data``:
    calibrated on the run's validation split when it has one, every image of each ``ood``
    dataset as out-of-distribution. Writes ``uncertainty.json``, ``scores.csv`` and figures
    into ``out``."""
    from .report.uncertainty_figures import write_figures
    from .uncertainty import uncertainty
    if split not in ("train", "val", "test"):
        raise RunError(f"--split must be train, val or test, got {split!r}")
    if mc_samples < 0:
        raise RunError(f"--mc-samples must be 0 (the branches) or more, got {mc_samples}")
    model, config = read_run(run)
    spec = config.get("data") or {}
    if not spec:
        raise RunError(f"{Path(run) / 'config.json'} records no data split")
    dataset = load_dataset(data, skip_bad_images=skip_bad_images)
    _check_classes(model, config, dataset.classes, data)
    parts = micro_split(dataset, train=spec["train"], val=spec["val"], test=spec["test"])
    size = config["recipe"]["image_size"]
    if mc_samples and not any(isinstance(m, torch.nn.Dropout) for m in model.modules()):
        raise RunError(f"{run} has no dropout layers: --mc-samples needs a dropout model "
                       f"(fit --method D, or --dropout RATE)")
    val = ImageDataset(parts.val, size=size) if len(parts.val) and split != "val" else None
    others = {Path(p).name: ImageDataset(load_dataset(p, skip_bad_images=skip_bad_images),
                                         size=size) for p in ood}
    summary, rows = uncertainty(model, ImageDataset(getattr(parts, split), size=size),
                                val_data=val, ood=others, alpha=alpha, mc_samples=mc_samples,
                                image_size=size, device=device)
    summary.update(run=str(run), dataset=str(data), split=split,
                   weights=model.config.weights if model.config else None,
                   calibration_split="val" if val is not None else None)
    if val is None:
        summary["calibration_note"] = ("the run has no validation split (fit --val K makes one): "
                                       "no temperature scaling, no conformal sets")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "uncertainty.json", json_safe(summary))
    write_csv(out / "scores.csv", rows)
    write_figures(summary, rows, out, title=Path(run).name)
    return summary
