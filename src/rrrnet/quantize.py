"""int8 on the CPU: post-training static quantization of the whole fused RRR-Net.

The path is ONNX Runtime's ``quantize_static`` (QDQ format, per-channel int8 weights, uint8
activations, calibrated with MinMax on real images): PyTorch 2.13 no longer ships the PT2E
flow (``torch.ao.quantization.quantize_pt2e`` moved to torchao, which does not install beside
this CPU build), and ONNX Runtime's int8 kernels (VNNI on x86) run the stump and the grouped
branch convolutions alike. The network is exported as deployed first (:func:`rrrnet.deploy.
prepare`: BatchNorm folded into the convolutions), then quantized.

A quantized file is a normal ``.onnx`` file (input ``images`` ``[N, 3, H, W]`` normalised like
the training images, output ``logits`` ``[branches, N, classes]``) whose metadata carries what
``rrrnet latency``, ``rrrnet predict`` and ``rrrnet evaluate`` need: the model configuration,
the classes, the image size and the data split of the run it came from.
"""
from __future__ import annotations

import json
import os
import tempfile
import warnings
from pathlib import Path
from typing import Any, Iterable

import torch
from torch import nn

from .errors import ConfigError, RunError
from .io import atomic_write, make_folder
from .onnxfile import (FORMAT, QuantizedModel, is_quantized_file, onnx_bytes,  # noqa: F401
                       ort, set_metadata)
from .preprocessing import Preprocessing, model_metadata

DEFAULT_IMAGES = 200            # calibration images
_BATCH = 16


class _Calibration:
    """ONNX Runtime's calibration data reader over normalised image batches."""

    def __init__(self, batches: Iterable[torch.Tensor]):
        self.batches = iter(batches)

    def get_next(self) -> dict[str, Any] | None:
        batch = next(self.batches, None)
        return None if batch is None else {"images": batch.numpy()}

    def rewind(self) -> None:  # the MinMax calibrator reads the data once
        pass


def calibration_batches(data: Any, images: int = DEFAULT_IMAGES, image_size: int = 128
                        ) -> list[torch.Tensor]:
    """Up to ``images`` normalised calibration images, in batches: from ready ``(images,
    labels)`` batches, or from a Dataset of ``(image, label)`` pairs (resized, normalised)."""
    from .metrics import batches
    loader = batches(data, image_size, _BATCH)
    out, seen = [], 0
    for batch in loader:
        x = batch[0] if isinstance(batch, (tuple, list)) else batch
        x = x[: images - seen]
        out.append(x.float().contiguous())
        seen += len(x)
        if seen >= images:
            break
    if not out:
        raise ConfigError("quantization needs calibration images; the data given has none")
    return out


def quantize(model: nn.Module, out: str | os.PathLike, calibration: Any, *,
             images: int = DEFAULT_IMAGES, image_size: int = 128,
             metadata: dict[str, Any] | None = None) -> Path:
    """Write ``model`` (an RRR-Net) as a post-training static int8 ONNX file, calibrated on
    ``calibration`` (see :func:`calibration_batches`); returns the path."""
    from .deploy import prepare
    _, q = ort()
    if images < 1:
        raise ConfigError(f"--images must be at least 1, got {images}")
    out = Path(out)
    if out.suffix != ".onnx":
        raise ConfigError(f"the int8 model is an ONNX file: give --out a name ending in .onnx, "
                          f"not {out.name}")
    batches = calibration_batches(calibration, images, image_size)
    deployed = prepare(model, image_size=image_size, channels_last=False, compile=False)
    import onnx
    with tempfile.TemporaryDirectory() as tmp:
        fp32, ready, int8 = (Path(tmp) / n for n in ("fp32.onnx", "ready.onnx", "int8.onnx"))
        with warnings.catch_warnings():  # as rrrnet.deploy.export: tracer and deprecation notes
            warnings.simplefilter("ignore", torch.jit.TracerWarning)
            warnings.simplefilter("ignore", DeprecationWarning)
            fp32.write_bytes(onnx_bytes(deployed, torch.randn(2, 3, image_size, image_size)))
        q.shape_inference.quant_pre_process(str(fp32), str(ready))
        q.quantize_static(str(ready), str(int8), _Calibration(batches),
                          quant_format=q.QuantFormat.QDQ, per_channel=True,
                          activation_type=q.QuantType.QUInt8, weight_type=q.QuantType.QInt8,
                          calibrate_method=q.CalibrationMethod.MinMax)
        proto = onnx.load(str(int8))
    extra = dict(metadata or {})
    config = extra.pop("config", None)
    if config is None and getattr(model, "config", None) is not None:
        config = model.config.to_dict()
    meta = model_metadata(FORMAT, config=config, classes=extra.pop("classes", None),
                          preprocessing=extra.pop("preprocessing", None)
                          or Preprocessing(image_size=image_size),
                          data=extra.pop("data", None), calibration=extra.pop("calibration", None))
    meta.update({"calibration_images": json.dumps(sum(len(b) for b in batches)),
                 **{k: json.dumps(v) for k, v in extra.items()}})
    set_metadata(proto, meta)
    make_folder(out.parent, "folder of --out", links=True)
    atomic_write(out, lambda f: f.write(proto.SerializeToString()))
    return out


def quantize_run(run: str | os.PathLike, out: str | os.PathLike,
                 calibration: str | os.PathLike | None = None, images: int = DEFAULT_IMAGES,
                 latency_runs: int = 100, threads: int | None = 2,
                 overwrite: bool = False) -> dict[str, Any]:
    """Quantize a finished run's model, calibrated on its training images (or every image of
    ``calibration``), and report fp32 against int8: test error on the run's test split,
    latency at batch 1 and 32 (interleaved, :func:`rrrnet.latency.compare_latency`) and file
    size. Writes ``out`` and ``out`` with ``.report.json`` instead of ``.onnx``; existing ones
    are replaced only with ``overwrite``. Every option is checked before anything is written.
    When the run's dataset has moved, ``calibration`` (where it is now) calibrates, and the
    test error is left out of the report."""
    from .checks import integer
    from .rundir import check_output
    integer(images, "--images", 1)
    integer(latency_runs, "--runs", 0)
    if threads is not None:
        integer(threads, "--threads", 1)
    out = Path(out)
    if out.suffix != ".onnx":
        raise ConfigError(f"the int8 model is an ONNX file: give --out a name ending in .onnx, "
                          f"not {out.name}")
    reads = [p for p in (calibration, run if Path(run).is_file() else None) if p is not None]
    for path in (out, out.with_suffix(".report.json")):
        check_output(path, inputs=reads, overwrite=overwrite)
    from .data import ImageDataset, load_dataset
    from .deploy import prepare
    from .evaluate import evaluate_model
    from .latency import compare_latency
    from .recipe import Recipe
    from .run import Run
    finished = Run(run).require_finished()
    if finished.is_quantized:
        raise RunError(f"{run} is already an int8 model; quantize the run folder it came from")
    model = finished.model.eval()
    size, spec = finished.image_size, finished.data
    recorded = spec
    if not spec and calibration is None:
        raise RunError(f"{run} records no dataset: give --calibration DATA")
    if spec and not Path(spec["root"]).is_dir():
        if calibration is None:
            raise RunError(f"the run's dataset {spec['root']} (recorded in {finished.config_path}) "
                           f"is not there any more: give --calibration with the folder where its "
                           f"images are now (the report then leaves out the test error)")
        spec = {}   # calibrated on --calibration; no test split to score (metadata: recorded)
    check_output(out, inputs=[spec["root"]] if spec else [], overwrite=overwrite)
    split = finished.split(spec["root"]) if spec else None   # its parts (split.csv)
    cal = (ImageDataset(load_dataset(calibration), size=size) if calibration is not None
           else ImageDataset(split.train, size=size))
    from .uncertainty import read_calibration
    path = quantize(model, out, cal, images=images, image_size=size,
                    metadata={"config": model.config.to_dict(), "classes": finished.classes,
                              "data": recorded, "preprocessing": finished.preprocessing,
                              "calibration": read_calibration(finished.uncertainty_dir)})
    int8 = QuantizedModel(path, threads=threads)
    report: dict[str, Any] = {"run": str(run), "file": str(path), "weights": model.config.weights,
                              "method": "ONNX Runtime quantize_static, QDQ, per-channel int8 "
                                        "weights, uint8 activations, MinMax calibration",
                              "calibration_images": int(int8.meta["calibration_images"]),
                              "bytes_int8": path.stat().st_size,
                              "bytes_fp32": finished.model_path.stat().st_size}
    if split is not None:
        recipe = Recipe(image_size=size)
        test = ImageDataset(split.test, size=size)
        fp32_metrics = evaluate_model(model, test, recipe, device="cpu")
        int8_metrics = evaluate_model(int8, test, recipe, device="cpu")
        report.update(test_images=len(split.test), error_fp32=fp32_metrics["error"],
                      error_int8=int8_metrics["error"])
    if latency_runs:
        deployed = prepare(model, image_size=size)
        for batch in (1, 32):
            timing = compare_latency({"fp32": deployed, "int8": int8}, size, batch,
                                     runs=latency_runs if batch == 1 else max(5, latency_runs // 5),
                                     warmup=5, threads=threads)
            report[f"batch_{batch}"] = {
                "fp32_ms": timing["models"]["fp32"]["median_ms"],
                "int8_ms": timing["models"]["int8"]["median_ms"],
                "speedup": timing["ratios"]["int8"]["ratio"],
                "speedup_ci95": timing["ratios"]["int8"]["ci95"], "threads": timing["threads"],
                "device_name": timing["device_name"]}
    from .io import write_json
    write_json(Path(path).with_suffix(".report.json"), report)
    return report
