"""Latency: measured, not counted. Per-image wall-clock (CPU) or CUDA-event (GPU) time of one
or several models, interleaved round by round so that load and drift hit all alike; the median
with its distribution-free 95% interval (binomial order statistics), and paired ratios.
Exact parameter and MAC counts are :mod:`rrrnet.cost`'s."""
from __future__ import annotations

import math
import os
import platform
import statistics
import time
from pathlib import Path
from typing import Any

import torch
from scipy.stats import quantile_test
from torch import nn

from .checks import image_size as check_image_size
from .checks import integer
from .errors import ConfigError


def measure_latency(model: nn.Module, image_size: int = 128, batch_size: int = 1, runs: int = 200,
                    warmup: int = 10, device: str | torch.device = "cpu",
                    threads: int | None = None) -> dict[str, Any]:
    """Inference time per image of ``model`` as it is (prepare it first, see
    :func:`rrrnet.deploy.prepare`): the median over ``runs`` timed batches after ``warmup``
    batches, with a distribution-free 95% interval of the median."""
    result = compare_latency({"model": model}, image_size, batch_size, runs, warmup, device, threads)
    return {**result["models"]["model"],
            **{k: v for k, v in result.items() if k not in ("models", "ratios")}}


def check_timing(image_size: int | None, batch_size: int, runs: int, warmup: int,
                 threads: int | None) -> None:
    """The options of a timing, checked before any model is loaded: a
    :class:`~rrrnet.errors.ConfigError` naming the first one that is impossible."""
    if runs < 1 or warmup < 0 or batch_size < 1:
        raise ConfigError(f"latency needs runs >= 1, warmup >= 0 and batch size >= 1 (got runs="
                          f"{runs}, warmup={warmup}, batch size={batch_size})")
    for value, name in ((batch_size, "--batch-size"), (runs, "--runs"), (warmup, "--warmup")):
        integer(value, name)
    if threads is not None:
        integer(threads, "--threads", 1)
    if image_size is not None:
        check_image_size(image_size, "--image-size")


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
    check_timing(image_size, batch_size, runs, warmup, threads)
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
