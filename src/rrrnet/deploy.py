"""Deployment: make a model fast for inference, time it, and export it.

:func:`prepare` returns an inference copy of a model: eval mode, no gradients, and the deployment
rewrites, all exact up to float rounding:

* BatchNorm folded into the convolution before it (:func:`~rrrnet.fold.fold_batchnorm`),
  fused branch convolutions included;
* strided 1x1 convolutions (the downsamples) run on the subsampled input
  (:class:`~rrrnet.fold.SubsampledConv`): the same arithmetic, which oneDNN runs several times
  faster for the branches' grouped downsample;
* optionally channels-last memory format and ``torch.compile``.

:data:`DEFAULTS` is the combination measured fastest on a 2-core CPU at batch 1 and 32
(``benchmarks/inference.py --variants``, table in docs/inference.md). :func:`latency` times a
prepared model (optionally against ResNet-152, interleaved); :func:`export` writes TorchScript or
ONNX, with the run's class names and preprocessing inside (:mod:`rrrnet.preprocessing`), and
checks the file's outputs against PyTorch. :mod:`rrrnet.predict` scores image files with any of
them. A run is opened with :class:`rrrnet.run.Run`.
"""
from __future__ import annotations

import dataclasses
import io
import json
import os
import warnings
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .backbone import ARCHS, resnet
from .latency import check_timing, compare_latency
from .errors import ConfigError, RunError
from .options import DEPLOY_DEFAULTS, EXPORT_FORMATS
from .fold import frozen_copy
from .checks import image_size as check_image_size
from .io import atomic_write, make_folder, resolve_device
from .model import ModelConfig, build, load
from .recycle import BranchedResNet, convert
from .onnxfile import QuantizedModel, onnx_bytes, run_onnx, with_metadata
from .preprocessing import (EXPORT_FORMAT, TORCHSCRIPT_EXTRA, Preprocessing, model_metadata,
                            read_metadata)
from .run import Run
from .rundir import check_output

# Measured (docs/inference.md): folding and subsampling always help, channels-last helps at
# batch 1 and 32 with 2 threads; torch.compile takes minutes to compile on 2 cores and gains
# nothing measurable on CPU, so it stays opt-in.
DEFAULTS = DEPLOY_DEFAULTS

FORMATS = EXPORT_FORMATS
SUFFIXES = {"torchscript": ".torchscript.pt", "onnx": ".onnx"}
TOLERANCE = 1e-4        # exported outputs against PyTorch's, absolute, on logits


# ---------------------------------------------------------------------------------------------
# Rewrites
# ---------------------------------------------------------------------------------------------

def prepare(model: nn.Module, *, fold_bn: bool = DEFAULTS["fold_bn"],
            subsample: bool = DEFAULTS["subsample"],
            channels_last: bool = DEFAULTS["channels_last"], compile: bool = DEFAULTS["compile"],
            device: str | torch.device = "cpu", image_size: int = 128) -> nn.Module:
    """An inference copy of ``model`` on ``device``: eval mode, gradients off, and the chosen
    rewrites. The original model is left untouched; outputs are the same up to rounding.

    ``compile`` runs ``torch.compile`` and one forward pass on an ``image_size`` image, so that a
    missing compiler fails here, with a clear message, and not in the first prediction.
    An int8 model (:class:`rrrnet.onnxfile.QuantizedModel`) is already deployed: returned as is.
    """
    if isinstance(model, QuantizedModel):
        return model
    model = frozen_copy(model, fold_bn, subsample, channels_last).to(device)
    if compile:
        model = compile_model(model, image_size, device)
    return model


def compile_model(model: nn.Module, image_size: int, device: str | torch.device) -> nn.Module:
    compiled = torch.compile(model)
    try:
        with torch.inference_mode():
            compiled(torch.zeros(1, 3, image_size, image_size, device=device))
    except Exception as err:  # inductor raises many types (compiler missing, unsupported op ...)
        first = (str(err).strip().splitlines() or [type(err).__name__])[0]
        raise ConfigError(
            f"torch.compile failed ({type(err).__name__}: {first[:300]}); on CPU it needs a "
            f"working C++ compiler (g++ or clang, with the Python headers). Leave out --compile "
            f"(the default, which loses little on CPU).") from None
    return compiled


# ---------------------------------------------------------------------------------------------
# Sources: a run folder, a model file, or a model
# ---------------------------------------------------------------------------------------------

def load_source(source: str | os.PathLike | nn.Module | ModelConfig) -> tuple[nn.Module, int | None]:
    """The model of a run folder (``model.pt``), a model file (``rrrnet build``) or a
    configuration (built with its ``weights``), with the run's image size when known."""
    if isinstance(source, nn.Module):
        return source, None
    if isinstance(source, ModelConfig):
        return build(source, progress=False), None
    path = Path(source)
    if path.is_dir() or (path.suffix == ".onnx" and path.is_file()):
        run = Run(path).require_finished()
        return run.model, run.image_size
    if path.is_file():
        return load(path), None
    raise RunError(f"{path} is neither a run folder (with model.pt) nor a model file")


# ---------------------------------------------------------------------------------------------
# Latency
# ---------------------------------------------------------------------------------------------

def latency(source: str | os.PathLike | nn.Module | ModelConfig, *, image_size: int | None = None,
            batch_size: int = 1, runs: int = 200, warmup: int = 10, device: str = "cpu",
            threads: int | None = None, compare: str | None = None, looped: bool = False,
            **options: Any) -> dict[str, Any]:
    """Per-image inference time of a prepared model (``options``: :func:`prepare`'s), median and
    95% interval; with ``compare`` (an architecture, e.g. ``resnet152``) that full ResNet with
    the model's class count, prepared the same way, is measured interleaved in the same run and
    ``ratio`` says how many times faster the model is. ``looped`` runs the branches one after
    another (the authors' execution) instead of fused."""
    check_timing(image_size, batch_size, runs, warmup, threads)   # before anything loads
    device = resolve_device(device)  # "auto"; a clear error when CUDA is asked for but absent
    model, run_size = load_source(source)
    description = _describe(model, source)
    if looped and isinstance(model, BranchedResNet):
        model = convert(model, fused=False)
    image_size = image_size or run_size or 128
    options = {**DEFAULTS, **options}
    models = {"model": prepare(model, device=device, image_size=image_size, **options)}
    if compare is not None:
        if compare not in ARCHS:
            raise ConfigError(f"--compare takes an architecture ({', '.join(ARCHS)}), "
                              f"got {compare!r}")
        classes = (model.plan.num_classes if isinstance(model, BranchedResNet)
                   else getattr(model, "num_classes", 1000))
        models[compare] = prepare(resnet(compare, num_classes=classes), device=device,
                                  image_size=image_size, **options)
    result = compare_latency(models, image_size, batch_size, runs, warmup, device, threads,
                             reference=compare)
    out = {**result["models"]["model"], **{k: v for k, v in result.items()
                                            if k not in ("models", "ratios")}}
    out["options"] = options
    out["execution"] = "looped" if looped else "fused"
    out["model"] = description
    if compare is not None:
        out["compare"] = {"arch": compare, "num_classes": classes, **result["models"][compare]}
        out["ratio"] = result["ratios"]["model"]["ratio"]
        out["ratio_ci95"] = result["ratios"]["model"]["ci95"]
    return out


def _describe(model: nn.Module, source: Any) -> str:
    config = getattr(model, "config", None)
    where = "" if isinstance(source, (nn.Module, ModelConfig)) else f" from {source}"
    if config is None:
        return type(model).__name__ + where
    return (f"{config.arch} ResNet_{'.'.join(map(str, config.blocks))}, {config.branches} "
            f"branch{'es' if config.branches != 1 else ''} from {config.split_at}, "
            f"{config.num_classes} classes{where}")


# ---------------------------------------------------------------------------------------------
# Export
# ---------------------------------------------------------------------------------------------

def default_export_path(source: str | os.PathLike, format: str) -> Path:
    path = Path(source)
    if path.is_dir():
        return Run(path).export_dir / f"model{SUFFIXES[format]}"
    return path.with_name(path.name.removesuffix(".pt") + SUFFIXES[format])


def export(source: str | os.PathLike | nn.Module, path: str | os.PathLike | None = None,
           format: str = "torchscript", image_size: int | None = None,
           check_batch: int = 3, overwrite: bool = False, **options: Any) -> dict[str, Any]:
    """Write a deployable model (the :func:`prepare`d one, without ``torch.compile``) as
    TorchScript or ONNX, then load the file and compare its logits with PyTorch's on random
    images; a difference above :data:`TOLERANCE` is an error.

    The file's input is ``images``, ``[N, 3, H, W]`` float32 normalised like the training images
    (any batch size); its output ``logits`` ``[branches, N, classes]``, like ``model(images)``:
    the ensemble's prediction is the mean over branches of their softmax.

    An existing file at ``path`` is replaced only with ``overwrite``; a ``path`` that is the
    model file read, or one of a run's own files, is refused before anything is done.
    """
    if format not in FORMATS:
        raise ConfigError(f"--format must be one of {', '.join(FORMATS)}, got {format!r}")
    if image_size is not None:
        check_image_size(image_size, "--image-size")
    if path is None:
        if isinstance(source, nn.Module):
            raise ConfigError("export of a model object needs an output path")
        path = default_export_path(source, format)
    reads = [] if isinstance(source, (nn.Module, ModelConfig)) or Path(source).is_dir() else [source]
    path = check_output(path, inputs=reads, overwrite=overwrite)
    model, run_size = load_source(source)
    image_size = image_size or run_size or 128
    meta = export_metadata(source, model, image_size)
    options = {**DEFAULTS, **options, "compile": False}
    deployed = prepare(model, **options)
    example = torch.randn(2, 3, image_size, image_size)
    with warnings.catch_warnings():
        # The tracer warns that our shape tests become constants (they hold for any batch size,
        # which check_export verifies), and both exporters announce their deprecation.
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        warnings.simplefilter("ignore", DeprecationWarning)
        data = _torchscript_bytes(deployed, example, meta) if format == "torchscript" else \
            with_metadata(onnx_bytes(deployed, example), meta)
    make_folder(path.parent, "folder of --out", links=True)   # checked: check_output
    atomic_write(path, lambda f: f.write(data))
    difference = check_export(model, path, format, image_size, check_batch)
    return {"path": str(path), "format": format, "image_size": image_size,
            "options": options, "max_abs_diff": difference, "tolerance": TOLERANCE,
            "checked_with": "onnxruntime" if format == "onnx" else "torch.jit.load",
            "bytes": len(data), "metadata": sorted(meta)}


def export_metadata(source: Any, model: nn.Module, image_size: int) -> dict[str, str]:
    """What an exported file carries (:func:`rrrnet.preprocessing.model_metadata`): from a run
    folder its classes, preprocessing, data split and calibration; from a model file or object
    its configuration and the image size only (no class names: predict then needs the run)."""
    config = model.config.to_dict() if getattr(model, "config", None) is not None else None
    if not isinstance(source, (nn.Module, ModelConfig)) and Path(source).is_dir():
        from .uncertainty import read_calibration
        run = Run(source)
        pre = dataclasses.replace(run.preprocessing, image_size=image_size)
        return model_metadata(EXPORT_FORMAT, config=config, classes=run.classes,
                              preprocessing=pre, data=run.data,
                              calibration=read_calibration(run.uncertainty_dir))
    return model_metadata(EXPORT_FORMAT, config=config, classes=None,
                          preprocessing=Preprocessing(image_size=image_size))


def _torchscript_bytes(model: nn.Module, example: torch.Tensor,
                       meta: dict[str, str] | None = None) -> bytes:
    # Tracing records our Python branches (shared or per-branch input) for this input shape;
    # the batch dimension stays symbolic.
    with torch.inference_mode(False), torch.no_grad():
        traced = torch.jit.freeze(torch.jit.trace(model, example, check_trace=False))
    buffer = io.BytesIO()
    torch.jit.save(traced, buffer, _extra_files={TORCHSCRIPT_EXTRA: json.dumps(meta or {})})
    return buffer.getvalue()


def read_torchscript(path: str | os.PathLike) -> tuple[torch.jit.ScriptModule, dict[str, Any]]:
    """A TorchScript file of :func:`export` and its metadata
    (:func:`rrrnet.preprocessing.read_metadata`)."""
    extra = {TORCHSCRIPT_EXTRA: ""}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            module = torch.jit.load(str(path), map_location="cpu", _extra_files=extra)
    except Exception as err:  # torch raises RuntimeError and its own types
        raise RunError(f"{path} is not a readable TorchScript model ({type(err).__name__}: "
                       f"{str(err).strip().splitlines()[0][:200] if str(err).strip() else ''})") \
            from None
    try:
        raw = json.loads(extra[TORCHSCRIPT_EXTRA] or "{}")
    except ValueError:
        raise RunError(f"{path}: its {TORCHSCRIPT_EXTRA} is damaged (not JSON)") from None
    return module.eval(), read_metadata(raw, path, (EXPORT_FORMAT,))


def run_exported(path: str | os.PathLike, format: str, images: torch.Tensor) -> torch.Tensor:
    """Logits of an exported file on ``images`` (TorchScript with torch, ONNX with onnxruntime)."""
    if format == "torchscript":
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            return torch.jit.load(str(path), map_location="cpu")(images)
    return run_onnx(path, images)


def check_export(model: nn.Module, path: Path, format: str, image_size: int,
                 batch: int = 3) -> float:
    """Largest absolute logit difference between the file and ``model`` (a batch size other than
    the one traced, so a fixed batch would show); raises :class:`RunError` above tolerance."""
    images = torch.randn(batch, 3, image_size, image_size,
                         generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        expected = model.eval()(images)
    got = run_exported(path, format, images)
    if got.shape != expected.shape:
        raise RunError(f"{path}: exported model gives shape {tuple(got.shape)}, PyTorch "
                       f"{tuple(expected.shape)}")
    difference = (got - expected).abs().max().item()
    if not difference <= TOLERANCE:
        raise RunError(f"{path}: exported logits differ from PyTorch's by {difference:.2e} "
                       f"(tolerance {TOLERANCE:.0e})")
    return difference
