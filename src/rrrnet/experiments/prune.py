"""The pruning-granularity study (the paper's Section 4.3.1, Figure 3).

A ResNet is pruned three ways to each target sparsity (fraction of its parameters removed) and
every pruned model is timed:

- ``element``: ``torch.nn.utils.prune.random_unstructured`` on every convolution, made permanent.
  The zeros stay in dense tensors, so the arithmetic does not change. Only convolution weights
  are pruned, so each convolution loses ``target * all parameters / convolution weights`` of its
  weights (rounded up), which removes at least the target fraction of all parameters.
- ``channel``: Torch-Pruning with random importance and one pruning ratio for every layer
  group (local, not global, ranking), so tensors really shrink. The classifier's outputs are
  kept. A ratio ``r`` removes about ``1 - (1 - r)^2`` of the parameters; the ratio used is the
  smallest one (bisection to 1e-6) whose pruned model has at least the target sparsity. The
  search counts parameters with Torch-Pruning's channel rule (:func:`channel_params`, checked
  against Torch-Pruning by the tests) rather than pruning a ResNet-152 dozens of times.
- ``block``: whole blocks are removed one at a time in the reverse of forward block selection's
  order (:func:`rrrnet.reduce.forward_order`), until at least the target fraction is removed.
  This is the paper's reduction step. ResNet_1.1.1.1 is as far as it goes, so high targets can
  be out of reach (``reached`` is then false and the row times ResNet_1.1.1.1).

Each row records the sparsity actually achieved, measured on the pruned model: zeroed
convolution weights (element) or parameters no longer in the model (channel, block), divided by
the unpruned model's parameters. ``params`` and ``macs`` count the tensors as they are: an
element-wise pruned model keeps its dense parameter count and MACs.

All models are built first, then timed in interleaved rounds (:func:`rrrnet.cost.
compare_latency`: one run of every model per round, in a seeded shuffled order), so drift of
the machine (heat, other work) hits every granularity alike. Every model starts from the same
randomly initialised weights (``seed``); the weights' values do not change the time of dense
fp32 kernels. ``speedup`` is the paired ratio time(unpruned) / time(model) over the rounds.
"""
from __future__ import annotations

import contextlib
import copy
import csv
import math
import platform
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Sequence

import torch
from torch import nn
from torch.nn.utils import prune as torch_prune
from tqdm.auto import tqdm

from ..backbone import ResNet, STAGES, arch_spec, resnet
from ..cost import backbone_cost
from ..latency import compare_latency, paired_ratio, summarize
from ..errors import ConfigError
from ..reduce import forward_order, keep_blocks
from ..io import write_csv, write_json

GRANULARITIES = ("element", "channel", "block")
DEFAULT_SPARSITIES = tuple(i / 10 for i in range(10))
RATIO_TOLERANCE = 1e-6      # the bisection's precision on Torch-Pruning's channel ratio
MAX_CHANNEL_RATIO = 0.95    # keep at least 5% of every layer's channels
CSV_NAME, JSON_NAME, PNG_NAME = "pruning.csv", "pruning.json", "pruning.png"
FIELDS = ("arch", "granularity", "target_sparsity", "achieved_sparsity", "reached", "setting",
          "params", "zeroed_params", "remaining_params", "macs", "median_ms", "ci95_low_ms",
          "ci95_high_ms", "speedup", "speedup_ci95_low", "speedup_ci95_high", "runs",
          "batch_size", "image_size", "threads", "device")


@dataclass(frozen=True)
class PruneSetting:
    """How one model of the study is pruned: the element amount (fraction of each convolution's
    weights), the channel ratio, or the blocks kept."""

    granularity: str
    target: float
    amount: float = 0.0
    blocks: tuple[int, ...] = ()

    def describe(self) -> str:
        if self.granularity == "block":
            return "blocks " + ".".join(map(str, self.blocks))
        return f"{'amount' if self.granularity == 'element' else 'ratio'} {self.amount:.6f}"


@dataclass
class StudyResult:
    rows: list[dict[str, Any]]
    out: Path
    csv: Path
    json: Path
    png: Path


# -- input checks ------------------------------------------------------------------------------

def parse_sparsities(text: str | Sequence[float]) -> tuple[float, ...]:
    """``"0,0.1,0.5"`` (or numbers) -> sorted unique fractions in [0, 1)."""
    parts = text.split(",") if isinstance(text, str) else list(text)
    try:
        values = sorted({round(float(p), 6) for p in parts if str(p).strip()})
    except ValueError:
        raise ConfigError(f"--sparsity takes fractions separated by commas, like 0,0.1,0.5; "
                          f"got {text!r}") from None
    if not values or any(not 0 <= v < 1 for v in values):
        raise ConfigError(f"--sparsity values are fractions of parameters removed, each in "
                          f"[0, 1) (0.9 is 90%); got {text!r}")
    return tuple(values)


def parse_granularities(text: str | Sequence[str]) -> tuple[str, ...]:
    names = [g.strip() for g in (text.split(",") if isinstance(text, str) else text) if g.strip()]
    unknown = [g for g in names if g not in GRANULARITIES]
    if not names or unknown:
        raise ConfigError(f"--granularity takes {', '.join(GRANULARITIES)} separated by commas; "
                          f"got {text!r}")
    return tuple(g for g in GRANULARITIES if g in names)


def check_device(device: str) -> torch.device:
    try:
        dev = torch.device(device)
    except RuntimeError:
        raise ConfigError(f"--device must be cpu or cuda, got {device!r}") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError("--device cuda: this PyTorch sees no CUDA GPU; use --device cpu")
    if dev.type not in ("cpu", "cuda"):
        raise ConfigError(f"--device must be cpu or cuda, got {device!r}")
    return dev


def torch_pruning():
    try:
        import torch_pruning as tp
    except ImportError:
        raise ConfigError("channel-wise pruning needs Torch-Pruning: pip install 'rrrnet[prune]' "
                          "(or leave channel out of --granularity)") from None
    return tp


# -- counting ----------------------------------------------------------------------------------

def param_count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def conv_weight_count(model: nn.Module) -> int:
    return sum(m.weight.numel() for m in model.modules() if isinstance(m, nn.Conv2d))


@contextlib.contextmanager
def seeded(seed: int) -> Iterator[None]:
    """Draw weights and pruning choices from ``seed`` without disturbing the caller's RNG."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


# -- element-wise ------------------------------------------------------------------------------

def element_setting(model: ResNet, target: float) -> PruneSetting:
    """Each convolution of ``model`` loses ``target * all parameters / convolution weights`` of
    its weights (at most all of them)."""
    amount = target * param_count(model) / conv_weight_count(model)
    return PruneSetting("element", target, amount=min(amount, 1.0))


def prune_elements(model: nn.Module, amount: float) -> int:
    """Zero a random ``amount`` of every convolution's weights for good (the masks are folded
    into the weights, which stay dense); returns how many weights were zeroed.

    Each convolution loses ``ceil(amount * its weights)``, so rounding never leaves the model
    short of the target."""
    zeroed = 0
    for module in model.modules():
        if isinstance(module, nn.Conv2d) and amount > 0:
            count = min(module.weight.numel(), math.ceil(amount * module.weight.numel() - 1e-9))
            torch_prune.random_unstructured(module, "weight", amount=count)
            zeroed += int((module.weight_mask == 0).sum())
            torch_prune.remove(module, "weight")
    return zeroed


# -- channel-wise ------------------------------------------------------------------------------

def prune_channels(model: ResNet, ratio: float, image_size: int) -> ResNet:
    """Torch-Pruning with random importance, ``ratio`` of the channels of every layer group
    removed (local ranking), the classifier's outputs kept. Prunes ``model`` in place."""
    if ratio <= 0:
        return model
    tp = torch_pruning()
    device = next(model.parameters()).device
    example = torch.zeros(1, 3, image_size, image_size, device=device)  # traced for its graph
    pruner = tp.pruner.BasePruner(model, example, importance=tp.importance.RandomImportance(),
                                  pruning_ratio=ratio, global_pruning=False,
                                  ignored_layers=[model.fc])
    pruner.step()
    return model


def kept_channels(channels: int, ratio: float) -> int:
    # Torch-Pruning's rule for a local scope: int(initial channels * (1 - ratio)) stay.
    return int(channels * (1 - ratio))


def channel_params(model: ResNet, ratio: float) -> int:
    """Parameters of ``model`` once every channel dimension keeps ``kept_channels`` of its
    channels, except the image's input channels and the classifier's outputs.

    This is what :func:`prune_channels` leaves (the tests check it against Torch-Pruning), in
    microseconds instead of the seconds Torch-Pruning needs to trace and prune a ResNet-152."""
    total = 0
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            cin = module.in_channels if module is model.conv1 else kept_channels(module.in_channels, ratio)
            kh, kw = module.kernel_size
            total += kept_channels(module.out_channels, ratio) * cin // module.groups * kh * kw
        elif isinstance(module, nn.BatchNorm2d):
            total += 2 * kept_channels(module.num_features, ratio)
        elif isinstance(module, nn.Linear):
            total += kept_channels(module.in_features, ratio) * module.out_features + module.out_features
    return total


def channel_setting(model: ResNet, target: float) -> PruneSetting:
    """The smallest ratio (to within :data:`RATIO_TOLERANCE`) whose pruned model has at least
    the ``target`` sparsity, by bisection on :func:`channel_params`. A uniform ratio ``r``
    removes about ``1 - (1 - r)^2`` of the parameters (each layer loses input and output
    channels); the search makes it exact despite the rounding of channel counts."""
    total = param_count(model)
    if target <= 0:
        return PruneSetting("channel", target, amount=0.0)

    def reaches(ratio: float) -> bool:
        return 1 - channel_params(model, ratio) / total >= target

    low, high = 0.0, MAX_CHANNEL_RATIO
    if not reaches(high):
        return PruneSetting("channel", target, amount=high)
    while high - low > RATIO_TOLERANCE:
        middle = (low + high) / 2
        low, high = (low, middle) if reaches(middle) else (middle, high)
    return PruneSetting("channel", target, amount=round(high, 9))


# -- block-wise --------------------------------------------------------------------------------

def block_setting(full: ResNet, target: float) -> PruneSetting:
    """Remove blocks of ``full`` in the reverse of forward selection's order until ``target`` is
    reached, or down to ResNet_1.1.1.1.

    The blocks after the first of a stage are identical, so removing one takes away the
    parameters of that stage's second block."""
    total = param_count(full)
    per_block = [param_count(getattr(full, stage)[1]) for stage in STAGES]
    order = forward_order(full.blocks)[::-1]
    for blocks in order:
        removed = sum(n * (full_n - b) for n, full_n, b in zip(per_block, full.blocks, blocks))
        if removed / total >= target:
            return PruneSetting("block", target, blocks=blocks)
    return PruneSetting("block", target, blocks=order[-1])


# -- the study ---------------------------------------------------------------------------------

def plan(template: ResNet, sparsities: Sequence[float],
         granularities: Sequence[str] = GRANULARITIES) -> list[PruneSetting]:
    """The settings of every (granularity, target) model, in granularity then sparsity order."""
    choose = {"element": element_setting, "channel": channel_setting, "block": block_setting}
    return [choose[g](template, target) for g in granularities for target in sparsities]


def unpruned(arch: str, seed: int = 0) -> ResNet:
    """The randomly initialised ``arch`` every model of a study is pruned from."""
    with seeded(seed):
        return resnet(arch)


def build_pruned(template: ResNet, setting: PruneSetting, seed: int = 0,
                 image_size: int = 128) -> tuple[ResNet, int]:
    """A pruned copy of ``template`` (left as it is) and how many weights it holds as zeros
    (element-wise); ``seed`` draws the pruned elements or channels."""
    with seeded(seed):
        if setting.granularity == "block":
            return keep_blocks(template, setting.blocks), 0
        model = copy.deepcopy(template)
        if setting.granularity == "element":
            return model, prune_elements(model, setting.amount)
        return prune_channels(model, setting.amount, image_size), 0


def structure(model: ResNet, zeroed: int, full_params: int, target: float,
              image_size: int) -> dict[str, Any]:
    """Parameters and MACs of the tensors as they are, the fraction of parameters removed, and
    whether that reaches ``target``."""
    params, macs = backbone_cost(model, image_size)
    removed = full_params - params + zeroed
    return {"achieved_sparsity": removed / full_params, "reached": removed >= target * full_params,
            "params": params, "zeroed_params": zeroed, "remaining_params": params - zeroed,
            "macs": macs}


def prune_compare(out: str | Path, arch: str = "resnet152",
                  sparsities: Sequence[float] = DEFAULT_SPARSITIES,
                  granularities: Sequence[str] = GRANULARITIES, device: str = "cpu",
                  runs: int = 200, warmup: int = 10, image_size: int = 128, batch_size: int = 1,
                  threads: int | None = None, seed: int = 0,
                  progress: bool = True) -> StudyResult:
    """Prune ``arch`` to each sparsity at each granularity, time every model, and write
    ``pruning.csv``, ``pruning.json`` and the Figure-3 plot ``pruning.png`` into ``out``."""
    arch_spec(arch)
    sparsities = parse_sparsities(sparsities)
    granularities = parse_granularities(granularities)
    dev = check_device(device)
    if runs < 1 or warmup < 0 or image_size < 32 or batch_size < 1 or (threads or 1) < 1:
        raise ConfigError("--runs and --batch-size must be >= 1, --warmup >= 0, --threads >= 1 "
                          "and --image-size >= 32 (a ResNet downsamples 32x)")
    if "channel" in granularities:
        torch_pruning()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)

    template = unpruned(arch, seed)
    settings = plan(template, sparsities, granularities)
    full_params = param_count(template)
    rows, models = [], {}
    for index, setting in enumerate(tqdm(settings, desc="pruning", disable=not progress)):
        model, zeroed = build_pruned(template, setting, seed, image_size)
        rows.append({"arch": arch, "granularity": setting.granularity,
                     "target_sparsity": setting.target, "setting": setting.describe(),
                     **structure(model, zeroed, full_params, setting.target, image_size)})
        models[index] = model
    del template
    # The unpruned model (any granularity's target 0) is the reference of the speedups.
    reference = next((i for i, s in enumerate(settings) if s.target == 0), None)
    times, timing = time_interleaved(models, runs, warmup, image_size, batch_size, dev, threads,
                                     seed, progress)
    for index, row in enumerate(rows):
        summary = summarize(times[index])
        speedup = (paired_ratio(times[reference], times[index]) if reference is not None
                   else {"ratio": None, "ci95": [None, None]})
        row.update(median_ms=summary["median_ms"], ci95_low_ms=summary["ci95_ms"][0],
                   ci95_high_ms=summary["ci95_ms"][1], speedup=speedup["ratio"],
                   speedup_ci95_low=speedup["ci95"][0], speedup_ci95_high=speedup["ci95"][1],
                   runs=runs, batch_size=batch_size, image_size=image_size,
                   threads=timing["threads"], device=timing["device"])
    meta = {"arch": arch, "full_params": full_params, "sparsities": list(sparsities),
            "granularities": list(granularities), "runs": runs, "warmup": warmup,
            "image_size": image_size, "batch_size": batch_size, "seed": seed,
            "speedup_reference": None if reference is None else rows[reference]["setting"],
            "device": timing["device"], "device_name": timing["device_name"],
            "threads": timing["threads"], "timer": timing["timer"], "environment": environment()}
    return write_results(out, [{field: row[field] for field in FIELDS} for row in rows], meta)


def time_interleaved(models: dict[int, nn.Module], runs: int, warmup: int, image_size: int,
                     batch_size: int, device: torch.device, threads: int | None, seed: int,
                     progress: bool) -> tuple[dict[int, list[float]], dict[str, Any]]:
    """Milliseconds per image of every model over ``runs`` interleaved rounds.

    :func:`rrrnet.latency.compare_latency` times each model once per round, so drift of the
    machine (heat, other processes) hits every granularity alike; the models' order within a
    round is shuffled by ``seed``. It runs in chunks of rounds only to report progress."""
    keys = list(models)
    random.Random(seed).shuffle(keys)
    shuffled = {str(k): models[k] for k in keys}
    times: dict[int, list[float]] = {k: [] for k in keys}
    chunk = max(1, math.ceil(runs / 20))
    result: dict[str, Any] = {}
    with tqdm(total=runs, desc="timing rounds", disable=not progress) as bar:
        for done in range(0, runs, chunk):
            n = min(chunk, runs - done)
            result = compare_latency(shuffled, image_size=image_size, batch_size=batch_size,
                                     runs=n, warmup=warmup if done == 0 else 0, device=device,
                                     threads=threads, keep_times=True)
            for k in keys:
                times[k] += result["models"][str(k)]["times_ms"]
            bar.update(n)
    return times, result


def environment() -> dict[str, Any]:
    env = {"torch": torch.__version__, "python": platform.python_version()}
    try:
        import torch_pruning as tp
        env["torch_pruning"] = tp.__version__
    except ImportError:
        pass
    return env


def write_results(out: Path, rows: list[dict[str, Any]], meta: dict[str, Any]) -> StudyResult:
    """CSV, JSON (rows and how they were measured) and PNG, each written atomically."""
    from ..report.pruning import plot_pruning
    paths = out / CSV_NAME, out / JSON_NAME, out / PNG_NAME
    write_csv(paths[0], rows, FIELDS)
    write_json(paths[1], {**meta, "rows": rows})
    plot_pruning(rows, paths[2])
    return StudyResult(rows, out, *paths)


def read_rows(path: str | Path) -> list[dict[str, Any]]:
    """The rows of a ``pruning.csv`` with numbers and booleans as such (empty cells: None)."""
    def value(key: str, text: str) -> Any:
        if key in ("arch", "granularity", "setting", "device"):
            return text
        if key == "reached":
            return text == "True"
        if text == "":
            return None
        return int(text) if text.lstrip("-").isdigit() else float(text)
    with open(path, newline="") as f:
        return [{k: value(k, v) for k, v in row.items()} for row in csv.DictReader(f)]


def format_rows(rows: Sequence[dict[str, Any]]) -> str:
    """A text table of the study, granularity by granularity."""
    lines = [f"{'granularity':<12}{'target':>7}{'achieved':>10}  {'setting':<20}{'params':>12}"
             f"{'GMACs':>8}{'ms/image':>10}{'95% interval':>18}{'speedup':>9}"]
    for r in sorted(rows, key=lambda r: (GRANULARITIES.index(r["granularity"]),
                                         r["target_sparsity"])):
        interval = ("-" if r["ci95_low_ms"] is None
                    else f"[{r['ci95_low_ms']:.2f}, {r['ci95_high_ms']:.2f}]")
        speedup = "-" if r["speedup"] is None else f"{r['speedup']:.2f}x"
        lines.append(f"{r['granularity']:<12}{r['target_sparsity']:>7.0%}"
                     f"{r['achieved_sparsity']:>10.1%}  {r['setting']:<20}{r['params']:>12,}"
                     f"{r['macs'] / 1e9:>8.3f}{r['median_ms']:>10.2f}{interval:>18}{speedup:>9}"
                     f"{'' if r['reached'] else '  (target out of reach)'}")
    return "\n".join(lines)


__all__ = ["DEFAULT_SPARSITIES", "GRANULARITIES", "PruneSetting", "StudyResult", "block_setting",
           "build_pruned", "channel_params", "channel_setting", "element_setting", "format_rows", "parse_sparsities",
           "plan", "prune_channels", "prune_compare", "prune_elements", "read_rows", "unpruned"]
