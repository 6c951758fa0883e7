"""Exact cost accounting: parameters and multiply-adds, per stage, like the paper's Figure 1.

MACs count the multiply-adds of convolutions and linear layers for one image, exactly; BatchNorm,
ReLU, pooling and additions are not counted (thop adds ~4 ops per BN element, and
``torch.utils.flop_counter`` reports FLOPs = 2 x MACs). Parameters count every learnable tensor,
BatchNorm affine parameters included; running statistics are buffers, not parameters.

Models are measured on the meta device: shapes are real, no memory or arithmetic is spent.

Latency (:func:`measure_latency`, :func:`compare_latency`) is measured, not counted: per-image
time, median and distribution-free 95% interval over many runs, several models interleaved.
"""
from __future__ import annotations

import dataclasses
import math
import os
import platform
import re
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from scipy.stats import quantile_test
from torch import nn

from .backbone import STAGE_PLANES, STAGES, ResNet
from .errors import ConfigError
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
    config = dataclasses.replace(config or ModelConfig(), **overrides)
    with torch.device("meta"):  # the architecture only: no weights, no kernel slicing
        model = blank(dataclasses.replace(config, init="random"))
    counted = report(model, image_size)
    counted.config["init"] = config.init  # the same architecture whatever the initialisation
    return counted


def report(model: BranchedResNet, image_size: int = 128) -> CostReport:
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


# ---------------------------------------------------------------------------------------------
# Latency: wall-clock (CPU) or CUDA-event time per image, median and 95% interval over many runs.
# ---------------------------------------------------------------------------------------------

def measure_latency(model: nn.Module, image_size: int = 128, batch_size: int = 1, runs: int = 200,
                    warmup: int = 10, device: str | torch.device = "cpu",
                    threads: int | None = None) -> dict[str, Any]:
    """Inference time per image of ``model`` as it is (prepare it first, see
    :func:`rrrnet.deploy.prepare`): the median over ``runs`` timed batches after ``warmup``
    batches, with a distribution-free 95% interval of the median."""
    result = compare_latency({"model": model}, image_size, batch_size, runs, warmup, device, threads)
    return {**result["models"]["model"],
            **{k: v for k, v in result.items() if k not in ("models", "ratios")}}


def compare_latency(models: dict[str, nn.Module], image_size: int = 128, batch_size: int = 1,
                    runs: int = 200, warmup: int = 10, device: str | torch.device = "cpu",
                    threads: int | None = None, reference: str | None = None,
                    keep_times: bool = False) -> dict[str, Any]:
    """Latency of several models measured interleaved in one process: every round times each
    model once (the starting model rotates), so that load from other processes, frequency
    scaling and thermal drift hit all models alike.

    ``ratios[name]`` is the median over rounds of ``time(reference) / time(name)`` (how many
    times faster ``name`` is than the reference, the first model unless given), with its 95%
    interval: a paired estimate, robust to drift between rounds. ``keep_times`` adds every
    model's per-image times (``times_ms``, in round order) for other pairings (:func:`paired_ratio`).
    """
    if runs < 1 or warmup < 0 or batch_size < 1:
        raise ConfigError(f"latency needs runs >= 1, warmup >= 0 and batch size >= 1 (got runs="
                          f"{runs}, warmup={warmup}, batch size={batch_size})")
    device = torch.device(device)
    names = list(models)
    reference = reference or names[0]
    previous = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        x = torch.randn(batch_size, 3, image_size, image_size, device=device)
        prepared = [models[n].eval().to(device) for n in names]
        times = _interleaved_times(prepared, x, runs, warmup, device)
        used_threads = torch.get_num_threads()
    finally:
        torch.set_num_threads(previous)
    per_image = {n: [t / batch_size for t in ts] for n, ts in zip(names, times)}
    ratios = {n: {**paired_ratio(per_image[reference], per_image[n]), "reference": reference}
              for n in names if n != reference}
    summaries = {n: {**summarize(ts), **({"times_ms": ts} if keep_times else {})}
                 for n, ts in per_image.items()}
    return {"models": summaries, "ratios": ratios,
            "runs": runs, "warmup": warmup, "batch_size": batch_size, "image_size": image_size,
            "device": device.type, "device_name": device_name(device),
            "threads": used_threads if device.type == "cpu" else None,
            "timer": "cuda events" if device.type == "cuda" else "perf_counter"}


@torch.inference_mode()
def _interleaved_times(models: list[nn.Module], x: torch.Tensor, runs: int, warmup: int,
                       device: torch.device) -> list[list[float]]:
    """Milliseconds per batch, ``runs`` per model, measured round-robin."""
    time_one = _cuda_time if device.type == "cuda" else _cpu_time
    for _ in range(warmup):
        for model in models:
            time_one(model, x)
    times: list[list[float]] = [[] for _ in models]
    for r in range(runs):
        for i in ((r + k) % len(models) for k in range(len(models))):
            times[i].append(time_one(models[i], x))
    return times


def _cpu_time(model: nn.Module, x: torch.Tensor) -> float:
    start = time.perf_counter()
    model(x)
    return (time.perf_counter() - start) * 1000


def _cuda_time(model: nn.Module, x: torch.Tensor) -> float:
    # Events are recorded on the stream, so they time the kernels, not the Python launch; the
    # synchronisation makes each run start on an idle GPU.
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    torch.cuda.synchronize(x.device)
    start.record()
    model(x)
    end.record()
    end.synchronize()
    return start.elapsed_time(end)


def median_ci(values: list[float]) -> tuple[float, float | None, float | None]:
    """The median and its distribution-free 95% interval (binomial order statistics, SciPy's
    ``quantile_test``); the interval is ``None`` with fewer than 6 values, where none exists."""
    values = sorted(values)
    median = statistics.median(values)
    ci = quantile_test(values, q=median, p=0.5).confidence_interval(0.95)
    low, high = float(ci.low), float(ci.high)
    return (median, None if math.isnan(low) else low, None if math.isnan(high) else high)


def paired_ratio(numerator_ms: list[float], denominator_ms: list[float]) -> dict[str, Any]:
    """Median and 95% interval of ``numerator / denominator`` over rounds measured together."""
    median, low, high = median_ci([a / b for a, b in zip(numerator_ms, denominator_ms)])
    return {"ratio": median, "ci95": [low, high]}


def summarize(times_ms: list[float]) -> dict[str, Any]:
    median, low, high = median_ci(times_ms)
    return {"median_ms": median, "ci95_ms": [low, high], "mean_ms": statistics.fmean(times_ms),
            "min_ms": min(times_ms), "max_ms": max(times_ms), "runs": len(times_ms)}


def device_name(device: torch.device | str) -> str:
    """The processor behind ``device``, in words (for reports: timings are per machine)."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{model}, {os.cpu_count()} logical cores"
