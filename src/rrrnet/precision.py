"""Mixed precision for training: which autocast dtype a ``--precision`` name means on a device.

* ``fp32``: no autocast (the paper's and every run's before this option existed).
* ``bf16``: ``torch.autocast`` with bfloat16. On a CPU with AVX-512 BF16 (or AMX) oneDNN runs
  convolutions and matrix products in bf16; the weights, the optimiser and the loss stay in
  float32. No loss scaling is needed: bf16 has float32's exponent range.
* ``fp16``: float16 autocast with a gradient scaler (CUDA only: float16 gradients underflow
  without it).
* ``auto``: the fastest supported one: bf16 on a CPU that has native bf16 instructions, bf16 on a
  CUDA device that supports it (no scaler needed, as fast as fp16 on Ampere and later), fp16 on
  older CUDA devices, else fp32.

Evaluation always runs in float32: the scores that are reported and that choose a checkpoint do
not depend on the training precision's rounding.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass

import torch

from .errors import ConfigError
from .options import PRECISIONS


def cpu_has_bf16() -> bool:
    """True when this CPU computes bf16 natively (AVX-512 BF16 or AMX): only then is bf16
    autocast faster than float32 on CPU (elsewhere oneDNN emulates it, slower)."""
    checks = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return any(getattr(torch.cpu, name, lambda: False)() for name in checks)


@dataclass(frozen=True)
class Precision:
    """A resolved precision: ``name`` (fp32, bf16 or fp16), the device type it runs on."""

    name: str
    device_type: str

    @property
    def dtype(self) -> torch.dtype | None:
        return {"bf16": torch.bfloat16, "fp16": torch.float16}.get(self.name)

    def autocast(self) -> contextlib.AbstractContextManager:
        """The context a training step's forward pass and loss run in."""
        if self.dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device_type, dtype=self.dtype)

    def scaler(self) -> torch.amp.GradScaler | None:
        """fp16's gradient scaler (None for fp32 and bf16)."""
        return torch.amp.GradScaler(self.device_type) if self.name == "fp16" else None


def resolve_precision(name: str, device: torch.device | str) -> Precision:
    """The precision ``name`` (one of :data:`rrrnet.options.PRECISIONS`) means on ``device``;
    a ConfigError when it cannot run there."""
    device_type = torch.device(device).type
    if name not in PRECISIONS:
        raise ConfigError(f"precision must be one of {', '.join(PRECISIONS)}, got {name!r}")
    if name == "auto":
        name = _fastest(device_type)
    if name == "fp16" and device_type != "cuda":
        raise ConfigError("--precision fp16 needs a CUDA device (float16 on CPU is slower than "
                          "float32); use bf16 or auto on CPU")
    if name == "bf16" and device_type == "cuda" and not torch.cuda.is_bf16_supported():
        raise ConfigError("this GPU has no bf16 support; use --precision fp16 or auto")
    return Precision(name, device_type)


def _fastest(device_type: str) -> str:
    if device_type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    return "bf16" if device_type == "cpu" and cpu_has_bf16() else "fp32"
