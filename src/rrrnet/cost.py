"""Exact cost accounting: parameters and multiply-adds, per stage, like the paper's Figure 1.

MACs count the multiply-adds of convolutions and linear layers for one image, exactly; BatchNorm,
ReLU, pooling and additions are not counted (thop adds ~4 ops per BN element, and
``torch.utils.flop_counter`` reports FLOPs = 2 x MACs). Parameters count every learnable tensor,
BatchNorm affine parameters included; running statistics are buffers, not parameters.

Models are measured on the meta device: shapes are real, no memory or arithmetic is spent.
Time is measured, not counted: :mod:`rrrnet.latency`.
"""
from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from ._callable import callable_module
from .backbone import STAGE_PLANES, STAGES, ResNet
from .checks import image_size as check_image_size
from .model import ModelConfig, blank
from .recycle import BranchedResNet, GroupedLinear, stage_index

ROW_NAMES = ("conv1", *STAGES, "fc")


def layer_macs(module: nn.Module, inputs: torch.Tensor, output: torch.Tensor) -> int:
    """Multiply-adds of one conv or linear layer for one image of the batch."""
    if isinstance(module, nn.Conv2d):
        kh, kw = module.kernel_size
        return output[0].numel() * (module.in_channels // module.groups) * kh * kw
    if isinstance(module, GroupedLinear):
        return module.groups * module.out_features * module.in_features
    if isinstance(module, nn.Linear):
        return output[0].numel() * module.in_features
    return 0


def row_of(name: str) -> str:
    """The Figure-1 row a parameter or module belongs to (``stump.layer2.0.conv1`` -> ``layer2``)."""
    match = re.search(r"(?:^|\.)(layer[1-4])(?:\.|$)", name)
    if match:
        return match.group(1)
    return "fc" if re.search(r"(?:^|\.)fc(?:\.|$)", name) else "conv1"


@dataclass
class StageCost:
    stage: str
    blocks: int
    planes: int                 # bottleneck width of one branch (64..512 when unsplit)
    branches: int               # 1 for the stump's stages
    output_size: list[int]      # [C, H, W] for one image
    params: int = 0
    trainable_params: int = 0
    macs: int = 0


@dataclass
class CostReport:
    config: dict[str, Any]
    image_size: int
    shift: int
    branch_planes: list[int]
    params: int
    trainable_params: int
    macs: int
    branch_params: int
    branches_params: int
    unsplit_params: int
    param_ratio: float
    stages: list[StageCost] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def count(model: nn.Module, image_size: int = 128) -> tuple[dict[str, int], dict[str, int],
                                                             dict[str, int], dict[str, list[int]]]:
    """Per-row parameters, trainable parameters, MACs and output shapes of ``model``.

    Works for any module built from Conv2d/Linear layers with ResNet-style names (a plain
    :class:`~rrrnet.backbone.ResNet` as well as a :class:`BranchedResNet`).
    """
    params, trainable, macs = ({r: 0 for r in ROW_NAMES} for _ in range(3))
    shapes: dict[str, list[int]] = {}
    for name, p in model.named_parameters():
        params[row_of(name)] += p.numel()
        trainable[row_of(name)] += p.numel() if p.requires_grad else 0
    hooks = []
    for name, module in model.named_modules():
        if isinstance(module, (nn.Conv2d, nn.Linear, GroupedLinear)):
            def hook(mod, inp, out, row=row_of(name)):
                macs[row] += layer_macs(mod, inp[0], out)
            hooks.append(module.register_forward_hook(hook))
        if re.fullmatch(r"(.*\.)?(layer[1-4]|maxpool)", name):
            def shape_hook(mod, inp, out, row=row_of(name)):
                shapes[row] = list(out.shape[1:])
            hooks.append(module.register_forward_hook(shape_hook))
    device = next(model.parameters()).device
    try:
        with torch.no_grad():
            model.eval()(torch.zeros(1, 3, image_size, image_size, device=device))
    finally:
        for h in hooks:
            h.remove()
    return params, trainable, macs, shapes


def cost(config: ModelConfig | None = None, image_size: int = 128, **overrides: Any) -> CostReport:
    """Parameters and MACs of the RRR-Net ``config`` describes, per stage and in total."""
    check_image_size(image_size, "--image-size")
    config = dataclasses.replace(config or ModelConfig(), **overrides)
    with torch.device("meta"):  # the architecture only: no weights, no kernel slicing
        model = blank(dataclasses.replace(config, init="random"))
    counted = model_cost(model, image_size)
    counted.config["init"] = config.init  # the same architecture whatever the initialisation
    return counted


def model_cost(model: BranchedResNet, image_size: int = 128) -> CostReport:
    params, trainable, macs, shapes = count(model, image_size)
    plan, first = model.plan, stage_index(model.plan.split_at)
    shapes["conv1"] = shapes.pop("conv1", [64, -1, -1])
    shapes["fc"] = [plan.num_classes]
    stages = []
    for i, row in enumerate(ROW_NAMES):
        stage = i - 1  # -1 for conv1, 4 for fc
        split = stage >= first
        stages.append(StageCost(
            stage=row,
            blocks=plan.blocks[stage] if 0 <= stage < 4 else 1,
            planes=_row_width(plan, stage, first),
            branches=plan.branches if split else 1,
            output_size=shapes.get(row, []),
            params=params[row], trainable_params=trainable[row], macs=macs[row]))
    return CostReport(
        config=model.config.to_dict(), image_size=image_size, shift=plan.shift,
        branch_planes=list(plan.branch_planes), params=sum(params.values()),
        trainable_params=sum(trainable.values()), macs=sum(macs.values()),
        branch_params=plan.branch_params, branches_params=plan.branches_params,
        unsplit_params=plan.unsplit_params, param_ratio=plan.param_ratio, stages=stages)


def _row_width(plan, stage: int, first: int) -> int:
    if stage < 0:
        return 64                                  # conv1
    if stage >= len(STAGES):
        return plan.num_classes                    # classifier
    return plan.branch_planes[stage - first] if stage >= first else STAGE_PLANES[stage]


def backbone_cost(model: ResNet, image_size: int = 128) -> tuple[int, int]:
    """Total parameters and MACs of a plain ResNet (the unsplit baselines)."""
    params, _, macs, _ = count(model, image_size)
    return sum(params.values()), sum(macs.values())


def format_table(rep: CostReport) -> str:
    """A Figure-1-like text table with totals."""
    cfg = rep.config
    head = (f"{cfg['arch']} ResNet_{'.'.join(map(str, cfg['blocks']))}, {cfg['branches']} branch"
            f"{'es' if cfg['branches'] != 1 else ''} from {cfg['split_at']}, {cfg['num_classes']} "
            f"classes, {rep.image_size}x{rep.image_size} input, shift a={rep.shift}")
    lines = [head, "",
             f"{'stage':<7}{'output':>14}{'blocks':>8}{'width':>13}{'params':>14}{'trainable':>14}"
             f"{'MACs':>16}"]
    for s in rep.stages:
        out = "x".join(map(str, s.output_size))
        width = f"{s.planes} x {s.branches}" if s.branches > 1 else str(s.planes)
        lines.append(f"{s.stage:<7}{out:>14}{s.blocks:>8}{width:>13}{s.params:>14,}"
                     f"{s.trainable_params:>14,}{s.macs:>16,}")
    lines.append(f"{'total':<7}{'':>14}{'':>8}{'':>13}{rep.params:>14,}{rep.trainable_params:>14,}"
                 f"{rep.macs:>16,}")
    lines += ["", f"branches: {cfg['branches']} x {rep.branch_params:,} = {rep.branches_params:,} "
                  f"parameters vs {rep.unsplit_params:,} unsplit (ratio {rep.param_ratio:.4f}); "
                  f"{rep.macs / 1e9:.3f} GMACs"]
    return "\n".join(lines)


callable_module(__name__, cost)  # rrrnet.cost(...) is this module, called
