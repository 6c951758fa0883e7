"""Reuse: the ResNet family, with torchvision's parameter names.

There is no CPU build of torchvision here, so the ResNet is ours. Its module tree mirrors
torchvision's (``conv1``, ``bn1``, ``layerS.i.conv1..bn3``, ``layerS.0.downsample.0/1``, ``fc``),
so torchvision and timm checkpoints load with strict key matching.

The blocks take a ``groups`` argument: with ``groups=b`` and every width multiplied by ``b`` a
block computes ``b`` independent copies of itself side by side (grouped convolutions). This is how
:mod:`rrrnet.recycle` runs all branches in one fused pass; with ``groups=1`` the blocks are exactly
torchvision's. ``in_groups`` is the grouping of the layers that read the block's input (``conv1``
and the downsample): 1 when the input is the shared stump, which every branch reads whole. Those
layers are :class:`SharedInputConv2d`, which also accept one stump output per branch (the
branches' "independent views" of an image) by running the same weight as a grouped convolution.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .errors import ConfigError
from .options import STAGES

STAGE_PLANES = (64, 128, 256, 512)
STAGE_STRIDES = (1, 2, 2, 2)
# Method [D]'s dropout goes after every activation of these stages (the paper's "last two blocks"
# of ResNet_1.1.1.1, the part that RRR-Net splits into branches).
DROPOUT_STAGES = ("layer3", "layer4")


class SharedInputConv2d(nn.Conv2d):
    """A convolution whose ``branches`` output groups all read the same input channels.

    Given ``[N, C, H, W]`` every branch reads the whole input (one pass for all branches);
    given ``[N, branches * C, H, W]`` branch ``i`` reads the ``i``-th slice. The weight
    ``[branches * C_out, C, k, k]`` is exactly a grouped convolution's, so both cases share it.
    """

    def __init__(self, cin: int, cout: int, kernel: int, stride: int, branches: int):
        super().__init__(cin, cout, kernel, stride=stride, padding=kernel // 2, bias=False)
        self.branches = branches

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[1] == self.in_channels:
            return super().forward(x)
        # One convolution per branch: the same arithmetic as groups=branches, which oneDNN runs
        # several times slower for these shapes (wide groups) on CPU.
        inputs = x.chunk(self.branches, dim=1)
        weights = self.weight.chunk(self.branches, dim=0)
        # A bias appears once BatchNorm is folded in (rrrnet.deploy).
        biases = [None] * self.branches if self.bias is None else self.bias.chunk(self.branches)
        return torch.cat([F.conv2d(xi, wi, bi, self.stride, self.padding, self.dilation)
                          for xi, wi, bi in zip(inputs, weights, biases)], dim=1)


def conv(cin: int, cout: int, kernel: int, stride: int = 1, groups: int = 1,
         in_groups: int | None = None) -> nn.Conv2d:
    """A bias-free ``kernel`` x ``kernel`` convolution; ``in_groups=1`` with ``groups > 1`` makes
    a :class:`SharedInputConv2d` (a layer of ``groups`` branches that reads the shared stump)."""
    if in_groups == 1 and groups > 1:
        return SharedInputConv2d(cin, cout, kernel, stride, groups)
    return nn.Conv2d(cin, cout, kernel, stride=stride, padding=kernel // 2, groups=groups, bias=False)


def downsample(cin: int, cout: int, stride: int, groups: int = 1,
               in_groups: int | None = None) -> nn.Sequential:
    return nn.Sequential(conv(cin, cout, 1, stride, groups, in_groups), nn.BatchNorm2d(cout))


class _Activated(nn.Module):
    """The activation both block types share: ReLU, then dropout when the block has a rate."""

    def _set_dropout(self, rate: float) -> None:
        if not 0 <= rate < 1:
            raise ConfigError(f"dropout must be in [0, 1), got {rate}")
        self.dropout = nn.Dropout(rate) if rate > 0 else None

    def _activate(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(x)
        return x if self.dropout is None else self.dropout(x)


class BasicBlock(_Activated):
    """Two 3x3 convolutions (ResNet-18/34)."""

    expansion = 1

    def __init__(self, inplanes: int, planes: int, stride: int = 1, groups: int = 1,
                 in_groups: int | None = None, dropout: float = 0.0):
        super().__init__()
        in_groups = groups if in_groups is None else in_groups
        self.conv1 = conv(inplanes, planes, 3, stride, groups, in_groups)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = conv(planes, planes, 3, groups=groups)
        self.bn2 = nn.BatchNorm2d(planes)
        out = planes * self.expansion
        self.downsample = (downsample(inplanes, out, stride, groups, in_groups)
                           if stride != 1 or inplanes != out or in_groups != groups else None)
        self._set_dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self._activate(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self._activate(out + identity)


class Bottleneck(_Activated):
    """1x1 reduce, 3x3, 1x1 expand by 4, stride on the 3x3 (torchvision's "ResNet v1.5")."""

    expansion = 4

    def __init__(self, inplanes: int, planes: int, stride: int = 1, groups: int = 1,
                 in_groups: int | None = None, dropout: float = 0.0):
        super().__init__()
        in_groups = groups if in_groups is None else in_groups
        out = planes * self.expansion
        self.conv1 = conv(inplanes, planes, 1, 1, groups, in_groups)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = conv(planes, planes, 3, stride, groups)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = conv(planes, out, 1, groups=groups)
        self.bn3 = nn.BatchNorm2d(out)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = (downsample(inplanes, out, stride, groups, in_groups)
                           if stride != 1 or inplanes != out or in_groups != groups else None)
        self._set_dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self._activate(self.bn1(self.conv1(x)))
        out = self._activate(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self._activate(out + identity)


Block = type[BasicBlock] | type[Bottleneck]


@dataclass(frozen=True)
class ArchSpec:
    """One entry of the registry: block type and the template's blocks per stage."""

    name: str
    block: Block
    blocks: tuple[int, int, int, int]

    @property
    def expansion(self) -> int:
        return self.block.expansion


ARCHS: dict[str, ArchSpec] = {
    spec.name: spec
    for spec in (
        ArchSpec("resnet18", BasicBlock, (2, 2, 2, 2)),
        ArchSpec("resnet34", BasicBlock, (3, 4, 6, 3)),
        ArchSpec("resnet50", Bottleneck, (3, 4, 6, 3)),
        ArchSpec("resnet101", Bottleneck, (3, 4, 23, 3)),
        ArchSpec("resnet152", Bottleneck, (3, 8, 36, 3)),
    )
}


def arch_spec(arch: str) -> ArchSpec:
    try:
        return ARCHS[arch]
    except KeyError:
        raise ConfigError(f"unknown architecture {arch!r}; choose one of {', '.join(ARCHS)}") from None


def make_stage(block: Block, inplanes: int, planes: int, n_blocks: int, stride: int,
               groups: int = 1, in_groups: int | None = None, dropout: float = 0.0) -> nn.Sequential:
    """``n_blocks`` blocks; only the first one strides and changes the channel count."""
    layers = [block(inplanes, planes, stride, groups, in_groups, dropout)]
    layers += [block(planes * block.expansion, planes, 1, groups, dropout=dropout)
               for _ in range(n_blocks - 1)]
    return nn.Sequential(*layers)


class ResNet(nn.Module):
    """ResNet_{x1-x2-x3-x4} of one block type, torchvision's layout and initialisation.

    ``dropout``: a rate for dropout after every activation of :data:`DROPOUT_STAGES` (method [D]).
    """

    def __init__(self, block: Block, blocks: Sequence[int], num_classes: int = 1000,
                 dropout: float = 0.0):
        super().__init__()
        if len(blocks) != 4 or any(int(n) < 1 for n in blocks):
            raise ConfigError(f"blocks must be four positive counts, got {tuple(blocks)}")
        self.block = block
        self.blocks = tuple(int(n) for n in blocks)
        self.num_classes, self.dropout = num_classes, dropout
        self.conv1 = nn.Conv2d(3, 64, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        inplanes = 64
        for name, planes, n, stride in zip(STAGES, STAGE_PLANES, self.blocks, STAGE_STRIDES):
            rate = dropout if name in DROPOUT_STAGES else 0.0
            self.add_module(name, make_stage(block, inplanes, planes, n, stride, dropout=rate))
            inplanes = planes * block.expansion
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(inplanes, num_classes)
        init_weights(self)

    @property
    def num_features(self) -> int:
        return self.fc.in_features

    def stem(self, x: torch.Tensor) -> torch.Tensor:
        return self.maxpool(self.relu(self.bn1(self.conv1(x))))

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        for name in STAGES:
            x = getattr(self, name)(x)
        return torch.flatten(self.avgpool(x), 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.forward_features(x))


def init_weights(module: nn.Module) -> None:
    """torchvision's initialisation: He-normal convs, unit BN, default Linear."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


def resnet(arch: str = "resnet152", blocks: Sequence[int] | None = None,
           num_classes: int = 1000, dropout: float = 0.0) -> ResNet:
    """A randomly initialised ResNet of ``arch``'s block type with ``blocks`` per stage.

    ``blocks`` defaults to the template's own counts; it may not exceed them, since a reduced
    network can only keep blocks the template has (see :mod:`rrrnet.reduce`).
    """
    spec = arch_spec(arch)
    blocks = spec.blocks if blocks is None else check_blocks(spec, blocks)
    return ResNet(spec.block, blocks, num_classes, dropout)


def check_blocks(template: ArchSpec | Sequence[int], blocks: Sequence[int]) -> tuple[int, int, int, int]:
    """``blocks`` as four ints, each between 1 and the template's count for that stage."""
    most_blocks = template.blocks if isinstance(template, ArchSpec) else tuple(template)
    name = template.name if isinstance(template, ArchSpec) else "the template"
    blocks = tuple(int(n) for n in blocks)
    if len(blocks) != 4:
        raise ConfigError(f"blocks needs four counts (one per stage), got {blocks}")
    for stage, n, most in zip(STAGES, blocks, most_blocks):
        if not 1 <= n <= most:
            raise ConfigError(
                f"{name} {stage} has {most} blocks, so {stage} can keep 1 to {most}, not {n} "
                f"(blocks={','.join(map(str, blocks))}, template {','.join(map(str, most_blocks))})")
    return blocks  # type: ignore[return-value]
