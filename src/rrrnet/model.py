"""The whole pipeline in one call: checkpoint -> backbone -> reduced -> branched model.

``build(ModelConfig(...), weights=...)`` returns a :class:`~rrrnet.recycle.BranchedResNet` whose
``config`` is fully resolved (the calibrated shift filled in); ``save``/``load`` round-trip a
model with that configuration, so a saved file rebuilds with one call.
"""
from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from .backbone import arch_spec, check_blocks, resnet
from .checks import check_fields
from .errors import ConfigError, WeightsError
from .io import atomic_write
from .recycle import INIT_MODES, BranchedResNet, convert, plan_split, split, stage_index
from .reduce import DEFAULT_BLOCKS, keep_blocks, parse_blocks
from .weights import load_backbone, resolve

FORMAT = "rrrnet-model/1"


@dataclass(frozen=True)
class ModelConfig:
    """Everything that determines an RRR-Net's architecture and initialisation."""

    arch: str = "resnet152"
    blocks: tuple[int, ...] = DEFAULT_BLOCKS
    branches: int = 8
    num_classes: int = 20
    split_at: str = "layer3"
    shift: int | None = None          # Equation 1's ``a``; None: calibrate
    init: str = "aligned"             # "aligned" (ours) or "first" (the authors' release)
    slice_bn: bool = True             # aligned: branch BatchNorms sliced too (False: default init)
    seed: int = 0                     # slicing permutations and new classifier initialisation
    freeze_stump: bool = True
    dropout: float = 0.0              # method [D]: dropout after every activation of layer3/layer4
    weights: str = field(default="imagenet", compare=False)  # where the backbone came from

    def __post_init__(self):
        if isinstance(self.weights, os.PathLike):
            object.__setattr__(self, "weights", os.fspath(self.weights))
        check_fields(self, skip=("blocks",))   # types first: ints are ints, names strings
        spec = arch_spec(self.arch)
        object.__setattr__(self, "blocks", check_blocks(spec, parse_blocks(self.blocks)))
        check_fields(self)
        stage_index(self.split_at)
        if self.init not in INIT_MODES:
            raise ConfigError(f"init must be one of {', '.join(INIT_MODES)}, got {self.init!r}")
        if isinstance(self.branches, bool) or not isinstance(self.branches, int) or self.branches < 1:
            raise ConfigError(f"branches must be a positive integer, got {self.branches!r}")
        if self.num_classes < 1:
            raise ConfigError(f"num_classes must be at least 1, got {self.num_classes}")
        if isinstance(self.dropout, bool) or not isinstance(self.dropout, (int, float)) \
                or not 0 <= self.dropout < 1:
            raise ConfigError(f"dropout must be a rate in [0, 1), got {self.dropout!r}")

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["blocks"] = list(self.blocks)
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "ModelConfig":
        if not isinstance(data, dict):
            raise ConfigError(f"a model configuration must be a JSON object, got "
                              f"{type(data).__name__}")
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - names
        if unknown:
            raise ConfigError(f"unknown model configuration keys: {', '.join(sorted(unknown))}")
        return cls(**{k: tuple(v) if k == "blocks" and isinstance(v, list) else v
                      for k, v in data.items()})


def build(config: ModelConfig | None = None, *, weights: str | os.PathLike | None = None,
          fused: bool = True, progress: bool = True, **overrides: Any) -> BranchedResNet:
    """Reuse, reduce and recycle: an RRR-Net from ``config`` (or keyword overrides of the defaults).

    ``weights`` overrides ``config.weights``: a checkpoint file, a named source (``imagenet``,
    ``IMAGENET1K_V1`` ...), ``astra-ct`` or ``none``; see :func:`rrrnet.weights.resolve`.
    The returned model carries ``model.config`` with the shift actually used.
    """
    config = dataclasses.replace(config or ModelConfig(), **overrides)
    if weights is not None:
        config = dataclasses.replace(config, weights=str(weights))
    state = resolve(config.weights, config.arch, progress=progress)
    return _recycled(config, state, fused)


def blank(config: ModelConfig, fused: bool = True) -> BranchedResNet:
    """The architecture ``config`` describes, randomly initialised from ``config.seed``, with
    ``config`` kept as it is (``weights`` included): the model to load saved weights into."""
    return _recycled(config, None, fused)


def _recycled(config: ModelConfig, state: dict[str, torch.Tensor] | None,
              fused: bool) -> BranchedResNet:
    # Dropout in a frozen stump would never act (it runs in eval mode) but would bias the
    # re-estimation of its BatchNorm statistics: only a trained stump gets it.
    stump_dropout = 0.0 if config.freeze_stump else config.dropout
    if state is None:
        with torch.random.fork_rng(devices=[]):  # random initialisation, reproducible by seed
            torch.manual_seed(config.seed)
            template = resnet(config.arch, config.blocks, dropout=stump_dropout)
    else:
        template = resnet(config.arch)
        load_backbone(template, state, origin=f"weights {config.weights!r}")
        template = keep_blocks(template, config.blocks)
        if stump_dropout:
            reduced = resnet(config.arch, config.blocks, dropout=stump_dropout)
            reduced.load_state_dict(template.state_dict())
            template = reduced
    plan = plan_split(template.block, template.blocks, config.branches, config.split_at,
                      config.num_classes, config.shift)
    return split(template, config.branches, config.split_at, config.num_classes, config.shift,
                 config.init, config.seed, fused, config.freeze_stump, config.dropout,
                 config=dataclasses.replace(config, shift=plan.shift), slice_bn=config.slice_bn)


def save(model: BranchedResNet, path: str | os.PathLike) -> Path:
    """Write the model and its configuration to ``path`` atomically (temp file, then rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, writer(model))
    return path


def writer(model: BranchedResNet):
    """The writer of ``model``'s file (what :func:`save` writes) into an open binary file:
    for :func:`rrrnet.rundir.write_files`, which writes it with the run's metrics."""
    payload = {"format": FORMAT, "config": model.config.to_dict(),
               "state_dict": _fused_state(model)}
    return lambda f: torch.save(payload, f)


def load(path: str | os.PathLike, fused: bool = True, map_location: str = "cpu") -> BranchedResNet:
    """Rebuild a model written by :func:`save` and load its weights."""
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"model file {path} does not exist")
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:
        raise WeightsError(f"could not read model file {path}: {err}") from None
    found = payload.get("format") if isinstance(payload, dict) else None
    if isinstance(found, str) and found.startswith("rrrnet-model/") and found != FORMAT:
        raise WeightsError(f"{path} was written by another version of rrrnet (format {found}; "
                           f"this version reads {FORMAT}): load it with the rrrnet that wrote "
                           f"it, or retrain the run with this one")
    if found != FORMAT:
        raise WeightsError(f"{path} is not an rrrnet model file (expected format {FORMAT}); "
                           f"backbone checkpoints are loaded with --weights instead")
    state = payload.get("state_dict")
    if not isinstance(payload.get("config"), dict) or not isinstance(state, dict) or \
            not all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items()):
        raise WeightsError(f"{path} says it is an rrrnet model file but holds no model "
                           f"configuration and state dict of named tensors; it was not written "
                           f"by rrrnet (rrrnet build, or fit's model.pt)")
    try:
        config = ModelConfig.from_dict(payload["config"])
    except ConfigError as err:
        raise WeightsError(f"{path} holds an impossible model configuration: {err}") from None
    model = blank(config, fused=True)
    try:
        model.load_state_dict(state)
    except RuntimeError as err:
        first = str(err).strip().splitlines()[0]
        raise WeightsError(f"{path} does not match its own configuration ({first}); it is "
                           f"damaged or was not written by rrrnet") from None
    return model if fused else convert(model, fused=False)


def _fused_state(model: BranchedResNet) -> dict[str, torch.Tensor]:
    # Files always hold the fused layout, so either execution can load them.
    if model.fused:
        return model.state_dict()
    return convert(model, fused=True).state_dict()

