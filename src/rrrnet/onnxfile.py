"""ONNX files, below :mod:`rrrnet.deploy` and :mod:`rrrnet.quantize` which both write them:
a model written as ONNX bytes (:func:`onnx_bytes`), an ONNX file run with ONNX Runtime
(:func:`run_onnx`), and the int8 file of ``rrrnet quantize`` used like the model it came from
(:class:`QuantizedModel`; its metadata carries the run's configuration, classes, image size and
data split).
"""
from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .errors import ConfigError, RRRNetError, RunError
from .preprocessing import EXPORT_FORMAT, INT8_FORMAT, read_metadata

FORMAT = INT8_FORMAT   # the metadata ``format`` of an int8 file of rrrnet quantize
ONNX_OPSET = 17


def onnx_bytes(model: nn.Module, example: torch.Tensor) -> bytes:
    """``model`` exported to ONNX (input ``images`` with a free batch axis, output ``logits``),
    traced on ``example``."""
    try:
        import onnx  # noqa: F401  (the exporter's own dependency)
    except ImportError:
        raise ConfigError("ONNX export needs the onnx package: pip install 'rrrnet[export]'") from None
    model = model.to(memory_format=torch.contiguous_format)  # ONNX has no memory formats
    buffer = io.BytesIO()
    with torch.no_grad():
        torch.onnx.export(model, (example,), buffer, dynamo=False, opset_version=ONNX_OPSET,
                          input_names=["images"], output_names=["logits"],
                          dynamic_axes={"images": {0: "batch"}, "logits": {1: "batch"}})
    return buffer.getvalue()


def set_metadata(proto, meta: dict[str, str]) -> None:
    """Replace an ONNX model's ``metadata_props`` with ``meta`` (strings)."""
    del proto.metadata_props[:]
    for key, value in meta.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value


def with_metadata(data: bytes, meta: dict[str, str]) -> bytes:
    """ONNX bytes with ``meta`` as their ``metadata_props``."""
    import onnx
    proto = onnx.load_from_string(data)
    set_metadata(proto, meta)
    return proto.SerializeToString()


def run_onnx(path: str | os.PathLike, images: torch.Tensor) -> torch.Tensor:
    """The outputs of an ONNX file on ``images`` (input ``images``), with ONNX Runtime."""
    try:
        import onnxruntime
    except ImportError:
        raise ConfigError("running an ONNX export needs onnxruntime: pip install "
                          "'rrrnet[export]'") from None
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return torch.from_numpy(session.run(None, {"images": images.numpy()})[0])


def ort():
    """ONNX Runtime and its quantization tools, or a :class:`ConfigError` saying how to install
    them."""
    try:
        import onnxruntime
        from onnxruntime import quantization
    except ImportError:
        raise ConfigError("int8 quantization needs ONNX Runtime: pip install 'rrrnet[export]'") \
            from None
    return onnxruntime, quantization


class QuantizedModel(nn.Module):
    """An int8 ONNX file (or the fp32 ONNX file of ``rrrnet export`` from a run) run by ONNX
    Runtime, used like the model it came from: ``model(images)`` gives ``[branches, N,
    classes]`` logits. ``config``, ``classes``, ``image_size``, ``preprocessing`` and ``data``
    come from the file's metadata (:mod:`rrrnet.preprocessing`)."""

    def __init__(self, path: str | os.PathLike, threads: int | None = None):
        super().__init__()
        onnxruntime, _ = ort()
        self.path = Path(path)
        if not self.path.is_file():
            raise RunError(f"quantized model {self.path} does not exist")
        options = onnxruntime.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
        # Idle worker threads sleep instead of spinning: a spinning pool would steal the cores
        # from PyTorch when the two are timed interleaved (rrrnet.latency) or run side by side.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        try:
            self.session = onnxruntime.InferenceSession(str(self.path), options,
                                                        providers=["CPUExecutionProvider"])
        except Exception as err:  # onnxruntime raises its own exception types
            raise RunError(f"{self.path} is not a readable ONNX model ({err})") from None
        meta = self.session.get_modelmeta().custom_metadata_map
        if meta.get("format") is None:
            raise RunError(f"{self.path} is not an rrrnet int8 model (no {FORMAT} metadata); "
                           f"write one with rrrnet quantize RUN --out FILE")
        from .model import ModelConfig
        try:   # a hand-made or edited file: any impossible value is the file's fault
            self.meta = read_metadata(meta, self.path, (FORMAT, EXPORT_FORMAT))
            self.is_int8 = self.meta["format"] == FORMAT
            if not self.meta.get("config") or not self.meta.get("classes"):
                raise RunError(f"{self.path} carries no model configuration or class names; "
                               f"export it from its run folder (rrrnet export RUN -f onnx)")
            self.config = ModelConfig.from_dict(self.meta["config"])
            self.classes = self.meta["classes"]
            if not isinstance(self.classes, list) or not all(isinstance(c, str) for c in self.classes):
                raise ConfigError(f"classes must be a list of names, got {self.classes!r}")
            self.preprocessing = self.meta["preprocessing"]
            self.image_size = self.preprocessing.image_size
        except RunError:
            raise
        except (RRRNetError, KeyError, TypeError, ValueError, AttributeError) as err:
            raise RunError(f"{self.path}: its rrrnet metadata is damaged or was not written by "
                           f"rrrnet ({type(err).__name__}: {err}); export it again from its run "
                           f"(rrrnet export RUN -f onnx, rrrnet quantize RUN)") from None

    @property
    def num_branches(self) -> int:
        return self.config.branches

    def run_config(self) -> dict[str, Any]:
        """What a run folder's config.json would say, for evaluate and predict."""
        return {"model": self.meta["config"],
                "recipe": {"image_size": self.image_size, "resize": self.preprocessing.resize},
                "data": self.meta.get("data") or {}, "classes": self.classes}

    @torch.no_grad()
    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = images.detach().to("cpu", torch.float32).contiguous().numpy()
        return torch.from_numpy(self.session.run(None, {"images": x})[0])

    def predict_proba(self, images: torch.Tensor) -> torch.Tensor:
        return self(images).softmax(-1).mean(0)


def is_quantized_file(path: str | os.PathLike) -> bool:
    return Path(path).suffix == ".onnx" and Path(path).is_file()
