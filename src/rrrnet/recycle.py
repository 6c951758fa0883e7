"""Recycle: split the last stages of a reduced ResNet into an ensemble of thin branches.

From the split point on (the first block of ``split_at``, conv4_1 = ``layer3`` by default) every
stage becomes ``b`` branches of bottleneck width ``floor(planes / sqrt(b)) - a`` (Equation 1),
each ending in its own classifier. Everything before the split point is the shared stump.

Two executions of the same branches:

* fused (:class:`BranchStages` with ``groups=b``): the split stage's first conv and downsample read
  the stump output once with all branches' output channels concatenated; every later conv is a
  grouped convolution, BatchNorms are concatenated and the classifiers are one grouped projection.
* looped (:class:`LoopedBranches`): ``b`` independent ``groups=1`` stacks run one after another,
  the reference that the fused execution must match.

A fused tensor is the concatenation of the per-branch tensors along dim 0, for every parameter
and buffer, which is what makes the two interchangeable (:func:`fuse_states`).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterable, Sequence

import torch
from torch import nn

from .backbone import (DROPOUT_STAGES, STAGES, STAGE_PLANES, STAGE_STRIDES, Block, ResNet,
                       init_weights, make_stage)
from .errors import ConfigError
from .options import INIT_MODES, SPLIT_POINTS



def stage_index(split_at: str) -> int:
    if split_at not in SPLIT_POINTS:
        raise ConfigError(f"split_at must be one of {', '.join(SPLIT_POINTS)} (the first block of "
                          f"that stage starts the branches), got {split_at!r}")
    return SPLIT_POINTS.index(split_at)


def branch_planes(planes: int, branches: int, shift: int) -> int:
    """Equation 1: the bottleneck width of one branch for a stage of width ``planes``."""
    return math.floor(planes / math.sqrt(branches)) - shift


class GroupedLinear(nn.Module):
    """``groups`` independent linear classifiers over ``groups`` feature slices, in one bmm.

    Input ``[N, groups * in_features]`` (branch-major), output ``[groups, N, out_features]``.
    Weight and bias are stored as the per-branch tensors concatenated along dim 0, like every
    other fused parameter.
    """

    def __init__(self, groups: int, in_features: int, out_features: int):
        super().__init__()
        self.groups, self.in_features, self.out_features = groups, in_features, out_features
        self.weight = nn.Parameter(torch.empty(groups * out_features, in_features))
        self.bias = nn.Parameter(torch.empty(groups * out_features))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        # nn.Linear's default initialisation, applied to each branch's classifier.
        bound = 1 / math.sqrt(self.in_features)
        nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        nn.init.uniform_(self.bias, -bound, bound)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        g, f, c = self.groups, self.in_features, self.out_features
        features = x.reshape(x.shape[0], g, f).transpose(0, 1)          # [g, N, f]
        weight = self.weight.reshape(g, c, f).transpose(1, 2)            # [g, f, c]
        return torch.baddbmm(self.bias.reshape(g, 1, c), features, weight)

    def extra_repr(self) -> str:
        return f"groups={self.groups}, in_features={self.in_features}, out_features={self.out_features}"


class BranchStages(nn.Module):
    """The split stages and classifiers of ``groups`` branches, folded into the channel axis.

    ``planes`` holds one branch's bottleneck width per split stage. Submodules are named like the
    backbone's (``layer3``, ``layer4``, ``fc``), so a ``groups=1`` instance has exactly the key
    names of the template's unsplit part. ``dropout``: method [D]'s rate after every activation
    of the stages in :data:`~rrrnet.backbone.DROPOUT_STAGES` (no parameters, so no key changes).
    """

    def __init__(self, block: Block, blocks: Sequence[int], planes: Sequence[int], first_stage: int,
                 in_channels: int, num_classes: int, groups: int = 1, dropout: float = 0.0):
        super().__init__()
        self.groups, self.stage_names, self.in_channels = groups, STAGES[first_stage:], in_channels
        self.dropout = dropout
        inplanes, in_groups = in_channels, 1  # the stump output is read whole by every branch
        features = in_channels                 # what one branch's classifier reads
        for name, n, width, stride in zip(self.stage_names, blocks, planes,
                                          STAGE_STRIDES[first_stage:]):
            rate = dropout if name in DROPOUT_STAGES else 0.0
            self.add_module(name, make_stage(block, inplanes, width * groups, n, stride,
                                             groups, in_groups, rate))
            features = width * block.expansion
            inplanes, in_groups = features * groups, groups
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = GroupedLinear(groups, features, num_classes)
        init_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for name in self.stage_names:
            x = getattr(self, name)(x)
        features = torch.flatten(self.avgpool(x), 1)
        if features.shape[1] != self.groups * self.fc.in_features:  # classifiers read the stump
            features = features.repeat(1, self.groups)
        return self.fc(features)


class LoopedBranches(nn.Module):
    """The reference execution: ``b`` separate single-branch stacks, run one after another."""

    def __init__(self, branches: Iterable[BranchStages]):
        super().__init__()
        self.branches = nn.ModuleList(branches)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shared = x.shape[1] == self.branches[0].in_channels
        inputs = [x] * len(self.branches) if shared else x.chunk(len(self.branches), dim=1)
        return torch.cat([branch(xi) for branch, xi in zip(self.branches, inputs)], dim=0)


@dataclass(frozen=True)
class SplitPlan:
    """Where and how wide the branches are, and what they cost against the unsplit part."""

    branches: int
    split_at: str
    blocks: tuple[int, ...]             # blocks per stage of the reduced model (all four stages)
    num_classes: int
    shift: int
    branch_planes: tuple[int, ...]      # one branch's bottleneck width per split stage
    branch_params: int                  # trainable parameters of one branch (classifier included)
    unsplit_params: int                 # the same part of the reduced model, with the same classifier

    @property
    def branches_params(self) -> int:
        return self.branches * self.branch_params

    @property
    def param_ratio(self) -> float:
        return self.branches_params / self.unsplit_params


def _part_params(block: Block, blocks: Sequence[int], planes: Sequence[int], first_stage: int,
                 in_channels: int, num_classes: int) -> int:
    # Built on the meta device: exact counts of the real modules, no memory, no initialisation cost.
    with torch.device("meta"):
        part = BranchStages(block, blocks, planes, first_stage, in_channels, num_classes)
    return sum(p.numel() for p in part.parameters())


def plan_split(block: Block, blocks: Sequence[int], branches: int, split_at: str = "layer3",
               num_classes: int = 1000, shift: int | None = None) -> SplitPlan:
    """Branch widths for a ResNet_{blocks}; ``shift=None`` calibrates ``a`` (Equation 1).

    The calibrated ``a`` is the smallest non-negative integer for which ``b`` branches hold no
    more trainable parameters than the unsplit part they replace (its classifier included,
    stump excluded on both sides).
    """
    if isinstance(branches, bool) or not isinstance(branches, int) or branches < 1:
        raise ConfigError(f"branches must be a positive integer, got {branches!r}")
    first = stage_index(split_at)
    split_blocks, full_planes = tuple(blocks[first:]), STAGE_PLANES[first:]
    in_channels = STAGE_PLANES[first - 1] * block.expansion if first else 64
    unsplit = _part_params(block, split_blocks, full_planes, first, in_channels, num_classes)

    def plan(a: int) -> SplitPlan:
        widths = tuple(branch_planes(p, branches, a) for p in full_planes)
        if widths and min(widths) < 1:
            raise ConfigError(
                f"{branches} branches split at {split_at} leave {split_at} a width of "
                f"floor({full_planes[0]}/sqrt({branches})) - {a} = {widths[0]} channels; use fewer "
                f"branches (at most {full_planes[0] ** 2} for a width of 1), a smaller shift, or "
                f"an earlier split point")
        count = _part_params(block, split_blocks, widths, first, in_channels, num_classes)
        return SplitPlan(branches, split_at, tuple(blocks), num_classes, a, widths, count, unsplit)

    if shift is not None:
        if shift < 0:
            raise ConfigError(f"shift (a) must be >= 0, got {shift}")
        return plan(int(shift))
    if not full_planes:  # only classifiers branch: no width to shift
        return plan(0)
    a = 0
    while (candidate := plan(a)).branches_params > unsplit:
        a += 1
    return candidate


# ---------------------------------------------------------------------------------------------
# Algorithm 2: initialise every branch with its own slice of the pretrained kernels.
# ---------------------------------------------------------------------------------------------

_BOTTLENECK_WIRING = {  # layer -> (output channel space, input channel space); BN: output only
    "conv1": ("mid1", "in"), "bn1": ("mid1", None),
    "conv2": ("mid2", "mid1"), "bn2": ("mid2", None),
    "conv3": ("out", "mid2"), "bn3": ("out", None),
    "downsample.0": ("out", "in"), "downsample.1": ("out", None),
}
_BASIC_WIRING = {
    "conv1": ("mid1", "in"), "bn1": ("mid1", None),
    "conv2": ("out", "mid1"), "bn2": ("out", None),
    "downsample.0": ("out", "in"), "downsample.1": ("out", None),
}


def output_indices(original: int, per_branch: int, branches: int,
                   generator: torch.Generator) -> list[torch.Tensor]:
    """Algorithm 2's index list I, cut into one contiguous slice per branch.

    Channels are handed out in order; when the branches need more than the layer has, the list
    continues with seeded random permutations of all channels.
    """
    need = per_branch * branches
    index = torch.arange(original)
    while index.numel() < need:
        index = torch.cat([index, torch.randperm(original, generator=generator)])
    return list(index[:need].split(per_branch))


class _ChannelSpaces:
    """Per-branch channel indices of every channel space of the split part, drawn once.

    A space is a set of channels that several layers must agree on: a block's two inner widths,
    and a stage's residual stream, which conv3 of every block and the downsample all write into.
    ``None`` stands for the shared stump output, which every branch reads whole.
    """

    def __init__(self, template: ResNet, plan: SplitPlan, seed: int):
        self.template, self.plan = template, plan
        self.generator = torch.Generator().manual_seed(seed)
        self.first = stage_index(plan.split_at)
        self.cache: dict[tuple, list[torch.Tensor]] = {}

    def _indices(self, key: tuple, original: int, per_branch: int) -> list[torch.Tensor]:
        if key not in self.cache:
            self.cache[key] = output_indices(original, per_branch, self.plan.branches, self.generator)
        return self.cache[key]

    def stream(self, stage: int) -> list[torch.Tensor] | None:
        """Indices of the residual stream leaving ``stage`` (None: the stump's, read whole)."""
        if stage < self.first:
            return None
        expansion = self.template.block.expansion
        planes = STAGE_PLANES[stage] * expansion
        width = self.plan.branch_planes[stage - self.first] * expansion
        return self._indices(("out", stage), planes, width)

    def space(self, name: str, stage: int, block: int) -> list[torch.Tensor] | None:
        if name == "out":
            return self.stream(stage)
        if name == "in":
            return self.stream(stage if block > 0 else stage - 1)
        planes = STAGE_PLANES[stage]
        width = self.plan.branch_planes[stage - self.first]
        return self._indices((name, stage, block), planes, width)


def slice_branch_states(template: ResNet, plan: SplitPlan, num_classes: int, init: str = "aligned",
                        seed: int = 0, slice_bn: bool = True) -> list[dict[str, torch.Tensor]]:
    """Per-branch state dicts (keys of a ``groups=1`` :class:`BranchStages`) cut from ``template``.

    ``init="aligned"`` (ours, Algorithm 2 with input channels followed): a layer's input channels
    are the ones its own branch's previous layer took, BatchNorm parameters and statistics are
    sliced with their channels. ``init="first"`` (the authors' release): every branch takes the
    first ``C_in`` input channels and BatchNorms keep their default initialisation.
    ``slice_bn=False`` leaves the BatchNorms at their default initialisation with aligned
    slicing too (an ablation: the authors' BatchNorms with our channel alignment).

    The classifier is sliced from the template's ``fc`` when the class count matches; otherwise
    it is a new layer, initialised by the caller.
    """
    if init not in ("aligned", "first"):
        raise ConfigError(f"slicing is aligned or first, got {init!r}")
    spaces = _ChannelSpaces(template, plan, seed)
    wiring = _BOTTLENECK_WIRING if template.block.expansion == 4 else _BASIC_WIRING
    source = template.state_dict()
    states: list[dict[str, torch.Tensor]] = [{} for _ in range(plan.branches)]
    first = spaces.first
    for stage in range(first, len(STAGES)):
        for block in range(template.blocks[stage]):
            prefix = f"{STAGES[stage]}.{block}."
            for layer, (out_space, in_space) in wiring.items():
                if prefix + layer + ".weight" not in source:
                    continue  # a block without downsample
                outs = spaces.space(out_space, stage, block)
                ins = spaces.space(in_space, stage, block) if in_space else None
                for b, state in enumerate(states):
                    _slice_layer(source, prefix + layer, state, outs[b],
                                 None if ins is None else ins[b], init, slice_bn)
    if template.fc.out_features == num_classes:
        last = spaces.stream(len(STAGES) - 1)
        for b, state in enumerate(states):
            if last is None:  # split at fc: every classifier reads all features
                features = torch.arange(template.fc.in_features)
            else:
                features = last[b] if init == "aligned" else torch.arange(last[b].numel())
            state["fc.weight"] = source["fc.weight"][:, features].clone()
            state["fc.bias"] = source["fc.bias"].clone()
    return states


def _slice_layer(source: dict, layer: str, state: dict, outs: torch.Tensor,
                 ins: torch.Tensor | None, init: str, slice_bn: bool = True) -> None:
    weight = source[layer + ".weight"]
    if weight.dim() == 4:  # convolution
        if ins is not None and init == "first":
            ins = torch.arange(ins.numel())
        kernel = weight[outs]
        state[layer + ".weight"] = (kernel if ins is None else kernel[:, ins]).clone()
    elif init == "aligned" and slice_bn:  # BatchNorm: parameters and statistics follow channels
        for name in ("weight", "bias", "running_mean", "running_var"):
            state[f"{layer}.{name}"] = source[f"{layer}.{name}"][outs].clone()
        state[layer + ".num_batches_tracked"] = source[layer + ".num_batches_tracked"].clone()


def fuse_states(states: Sequence[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """Per-branch state dicts -> the fused module's (concatenation along dim 0)."""
    fused = {}
    for key in states[0]:
        tensors = [s[key] for s in states]
        fused[key] = tensors[0].clone() if tensors[0].dim() == 0 else torch.cat(tensors)
    return fused


def unfuse_state(fused: dict[str, torch.Tensor], branches: int) -> list[dict[str, torch.Tensor]]:
    """The inverse of :func:`fuse_states`."""
    states: list[dict[str, torch.Tensor]] = [{} for _ in range(branches)]
    for key, tensor in fused.items():
        parts = [tensor] * branches if tensor.dim() == 0 else tensor.chunk(branches)
        for state, part in zip(states, parts):
            state[key] = part.clone()
    return states


# ---------------------------------------------------------------------------------------------
# The assembled model: shared stump + branches.
# ---------------------------------------------------------------------------------------------

class Stump(nn.Module):
    """Everything before the split point, with the backbone's module names."""

    def __init__(self, template: ResNet, stages: int):
        super().__init__()
        self.stage_names = STAGES[:stages]
        for name in ("conv1", "bn1", "relu", "maxpool", *self.stage_names):
            self.add_module(name, getattr(template, name))
        self.out_channels = (STAGE_PLANES[stages - 1] * template.block.expansion) if stages else 64

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        for name in self.stage_names:
            x = getattr(self, name)(x)
        return x


class BranchedResNet(nn.Module):
    """RRR-Net: a (frozen) shared stump feeding ``b`` branches; ``forward`` gives ``[b, N, classes]``.

    With ``freeze_stump`` the stump's parameters take no gradient and the stump stays in eval
    mode under ``model.train()``, so its BatchNorm statistics stay as estimated. ``config``: the
    :class:`~rrrnet.model.ModelConfig` that describes the model (set by the builder, passed on
    by every function that derives a model from this one; None for a hand-made split).
    """

    def __init__(self, stump: Stump, branches: nn.Module, plan: SplitPlan, block: Block,
                 freeze_stump: bool = True, config=None):
        super().__init__()
        self.stump, self.branches, self.plan, self.block = stump, branches, plan, block
        self.freeze_stump, self.config = freeze_stump, config
        if freeze_stump:
            self.stump.requires_grad_(False)

    @property
    def fused(self) -> bool:
        return isinstance(self.branches, BranchStages)

    @property
    def num_branches(self) -> int:
        return self.plan.branches

    def train(self, mode: bool = True) -> "BranchedResNet":
        super().train(mode)
        if self.freeze_stump:
            self.stump.eval()
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x``: images ``[N, 3, H, W]`` (every branch sees the same image), or one view per
        branch ``[N, b, 3, H, W]`` (the stump runs on each view). Returns ``[b, N, classes]``."""
        views = x.dim() == 5
        if views and x.shape[1] != self.num_branches:
            raise ConfigError(f"got {x.shape[1]} views per image for {self.num_branches} branches")
        with torch.set_grad_enabled(torch.is_grad_enabled() and not self.freeze_stump):
            if views:  # no graph through a frozen stump
                # One view at a time (batches of N, not N*b: far less memory), stacked so that
                # channels are branch-major: [N, b, C, h, w] -> [N, b*C, h, w].
                nhwc = self.stump.conv1.weight.is_contiguous(memory_format=torch.channels_last)
                fmt = torch.channels_last if nhwc else torch.contiguous_format
                features = torch.stack([self.stump(x[:, i].contiguous(memory_format=fmt))
                                        for i in range(x.shape[1])], dim=1).flatten(1, 2)
            else:
                features = self.stump(x)
        return self.branches(features)

    @torch.no_grad()
    def predict_proba(self, x: torch.Tensor) -> torch.Tensor:
        """The ensemble's prediction: the average of the branches' softmax outputs, ``[N, classes]``."""
        return self(x).softmax(dim=-1).mean(dim=0)

    def branch_states(self) -> list[dict[str, torch.Tensor]]:
        """One ``groups=1`` state dict per branch, whatever the execution."""
        if self.fused:
            return unfuse_state(self.branches.state_dict(), self.num_branches)
        return [b.state_dict() for b in self.branches.branches]


def _branch_modules(block: Block, plan: SplitPlan, in_channels: int, fused: bool,
                    dropout: float = 0.0) -> nn.Module:
    first = stage_index(plan.split_at)
    args = (block, plan.blocks[first:], plan.branch_planes, first, in_channels, plan.num_classes)
    if fused:
        return BranchStages(*args, groups=plan.branches, dropout=dropout)
    return LoopedBranches(BranchStages(*args, dropout=dropout) for _ in range(plan.branches))


def branch_dropout(model: "BranchedResNet") -> float:
    """The dropout rate of ``model``'s branches (0: none)."""
    part = model.branches if model.fused else model.branches.branches[0]
    return part.dropout


def split(template: ResNet, branches: int = 8, split_at: str = "layer3", num_classes: int = 20,
          shift: int | None = None, init: str = "aligned", seed: int = 0, fused: bool = True,
          freeze_stump: bool = True, dropout: float = 0.0, config=None,
          slice_bn: bool = True) -> BranchedResNet:
    """Recycle a (reduced) ResNet into ``branches`` branches from the first block of ``split_at``.

    The stump shares the template's modules (no copy); the branches are initialised by slicing
    the template's kernels (:func:`slice_branch_states`), or left at torchvision's random
    initialisation with ``init="random"``. New classifiers are initialised from ``seed``, so the
    same arguments give the same model. ``dropout``: the branches' rate after every activation
    of layer3 and layer4 (method [D]); a stump's own dropout comes with the template.
    ``config``: the model's :class:`~rrrnet.model.ModelConfig`, carried by the result.
    """
    if init not in INIT_MODES:
        raise ConfigError(f"init must be one of {', '.join(INIT_MODES)}, got {init!r}")
    if num_classes < 1:
        raise ConfigError(f"num_classes must be at least 1, got {num_classes}")
    plan = plan_split(template.block, template.blocks, branches, split_at, num_classes, shift)
    first = stage_index(split_at)
    stump = Stump(template, first)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        part = _branch_modules(template.block, plan, stump.out_channels, fused, dropout)
    model = BranchedResNet(stump, part, plan, template.block, freeze_stump, config)
    if init != "random":
        states = slice_branch_states(template, plan, num_classes, init, seed, slice_bn)
        load_branch_states(model, states, strict=False)
    return model


def load_branch_states(model: BranchedResNet, states: Sequence[dict[str, torch.Tensor]],
                       strict: bool = True) -> None:
    """Load per-branch state dicts into either execution (``strict=False``: partial states)."""
    if model.fused:
        model.branches.load_state_dict(fuse_states(states), strict=strict)
    else:
        for branch, state in zip(model.branches.branches, states):
            branch.load_state_dict(state, strict=strict)


def convert(model: BranchedResNet, fused: bool) -> BranchedResNet:
    """The same model with the other execution (fused <-> looped), sharing the stump."""
    if model.fused == fused:
        return model
    part = _branch_modules(model.block, model.plan, model.stump.out_channels, fused,
                           branch_dropout(model))
    other = BranchedResNet(model.stump, part, model.plan, model.block, model.freeze_stump,
                           model.config)
    load_branch_states(other, model.branch_states())
    return other.train(model.training)
