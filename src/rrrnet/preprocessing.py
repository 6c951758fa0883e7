"""How an image file becomes the model's input, and what every saved model carries about itself.

:class:`Preprocessing` is the recipe of one input: the image decoded to RGB (EXIF orientation
applied), made square by ``resize`` (:func:`rrrnet.data.resize_square`: squash, crop or pad) at
``image_size`` pixels, then normalised channel by channel, ``(x / 255 - mean) / std``.

A model leaves its run folder as TorchScript, ONNX or int8 ONNX (:mod:`rrrnet.deploy`,
:mod:`rrrnet.quantize`). Each file carries the same description of itself
(:func:`model_metadata`): the format and the rrrnet version that wrote it, the model
configuration, the class names, the preprocessing, the run's data split and, when the run was
calibrated (``rrrnet uncertainty``), the calibration that ``rrrnet predict`` needs for conformal
sets and abstention. ONNX keeps it in ``metadata_props`` (one JSON value per key), TorchScript in
the extra file ``rrrnet.json``: the exported file alone is enough to predict.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch

from . import __version__
from .data import IMAGENET_MEAN, IMAGENET_STD, RESIZE_MODES, read_image
from .errors import RunError

EXPORT_FORMAT = "rrrnet-export/1"        # TorchScript and fp32 ONNX files of rrrnet export
INT8_FORMAT = "rrrnet-int8-onnx/1"       # int8 ONNX files of rrrnet quantize
FORMATS = (EXPORT_FORMAT, INT8_FORMAT)
TORCHSCRIPT_EXTRA = "rrrnet.json"        # the extra file of a TorchScript archive


@dataclass(frozen=True)
class Preprocessing:
    """Image file -> normalised ``float32`` tensor ``[3, image_size, image_size]``."""

    image_size: int = 128
    resize: str = "squash"
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD

    def __post_init__(self):
        if self.resize not in RESIZE_MODES:
            raise RunError(f"resize must be one of {', '.join(RESIZE_MODES)}, got "
                           f"{self.resize!r}")

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out.update(mean=list(self.mean), std=list(self.std))
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None, image_size: int | None = None
                  ) -> "Preprocessing":
        """From :meth:`to_dict`'s form; missing keys take the defaults every rrrnet version
        used before they were recorded (squash, ImageNet statistics)."""
        data = dict(data or {})
        size = data.get("image_size", image_size or 128)
        return cls(image_size=int(size), resize=str(data.get("resize", "squash")),
                   mean=tuple(float(v) for v in data.get("mean", IMAGENET_MEAN)),
                   std=tuple(float(v) for v in data.get("std", IMAGENET_STD)))

    def array(self, path: str | Path) -> np.ndarray:
        """The image as a square ``uint8`` RGB array (a :class:`DataError` names a bad file)."""
        return read_image(path, self.image_size, self.resize)

    def tensor(self, path: str | Path) -> torch.Tensor:
        """The model's input for one image file."""
        return self.normalise(self.array(path))

    def normalise(self, image: np.ndarray) -> torch.Tensor:
        mean = np.asarray(self.mean, dtype=np.float32)
        std = np.asarray(self.std, dtype=np.float32)
        x = (image.astype(np.float32) / np.float32(255.0) - mean) / std
        return torch.from_numpy(np.ascontiguousarray(x.transpose(2, 0, 1)))


def model_metadata(format: str, *, config: Mapping[str, Any] | None,
                   classes: list[str] | None, preprocessing: Preprocessing,
                   data: Mapping[str, Any] | None = None,
                   calibration: Mapping[str, Any] | None = None) -> dict[str, str]:
    """What a saved model carries, as ``{key: JSON text}`` (ONNX ``metadata_props`` hold
    strings only): ``format``, ``rrrnet_version``, ``config``, ``classes``, ``image_size``,
    ``preprocessing``, ``data`` and ``calibration`` (omitted when None)."""
    values = {"rrrnet_version": __version__, "config": config, "classes": classes,
              "image_size": preprocessing.image_size,
              "preprocessing": preprocessing.to_dict(), "data": dict(data or {}),
              "calibration": calibration}
    return {"format": format, **{k: json.dumps(v) for k, v in values.items() if v is not None}}


def read_metadata(raw: Mapping[str, str], path: str | Path, formats=FORMATS) -> dict[str, Any]:
    """:func:`model_metadata`'s text back as values; a :class:`RunError` names ``path`` when it
    carries no rrrnet metadata or was written in a format this version does not read."""
    fmt = raw.get("format")
    if fmt is None:
        raise RunError(f"{path} carries no rrrnet metadata (class names, preprocessing): export "
                       f"it from its run with this rrrnet (rrrnet export RUN, rrrnet quantize RUN)")
    if fmt not in formats:
        family = fmt.rsplit("/", 1)[0]
        if any(f.rsplit("/", 1)[0] == family for f in formats):
            try:
                version = json.loads(raw.get("rrrnet_version", '"?"'))
            except ValueError:
                version = "?"
            raise RunError(f"{path} was written by another version of rrrnet (format {fmt}, "
                           f"rrrnet {version}; this version {__version__} "
                           f"reads {', '.join(formats)}): export it again from its run with "
                           f"this version")
        raise RunError(f"{path} is a {fmt} file, not one of {', '.join(formats)}")
    out: dict[str, Any] = {}
    for key, text in raw.items():
        if key == "format":
            continue
        try:
            out[key] = json.loads(text)
        except ValueError:
            raise RunError(f"{path}: its metadata {key!r} is damaged (not JSON); export it "
                           f"again") from None
    out["format"] = fmt
    out["preprocessing"] = Preprocessing.from_dict(out.get("preprocessing"),
                                                   out.get("image_size"))
    return out
