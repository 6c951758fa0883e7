"""The names and defaults the command line offers, importable without torch.

``rrrnet --help`` and ``rrrnet COMMAND --help`` must answer at once, so the parser reads its
choices and defaults from here and from :mod:`rrrnet.recipe`, never from a module that loads
torch. Each value is defined once, here, and imported by the module that owns the concept
(``backbone.ARCHS`` has one entry per :data:`ARCH_NAMES`, and so on; tests check it).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .errors import ConfigError

# backbone, reduce, recycle
ARCH_NAMES = ("resnet18", "resnet34", "resnet50", "resnet101", "resnet152")
STAGES = ("layer1", "layer2", "layer3", "layer4")
# layer3 (conv4_1) is the paper's split point; layer4 (conv5_1) also; earlier stages work too, and
# "fc" keeps the whole backbone as the stump and only the classifiers branch (baseline A).
SPLIT_POINTS = (*STAGES, "fc")
INIT_MODES = ("aligned", "first", "random")   # "random": no kernel reuse (ablation)
DEFAULT_BLOCKS = (1, 1, 1, 1)
ORDERS = ("stages", "cyclic")                 # forward block selection's orders

# the paper's methods (A-E) and the ensembles are classes of rrrnet.training.strategies

# experiments
DEFAULT_EPSILON = 0.01                        # block selection: stop below a 1% relative gain
SCORE_ON = ("test", "val")
PAPER_BRANCHES = (1, 2, 4, 8, 16, 32, 64, 128)  # the branch sweep of the paper's Figure 5
EXECUTORS = ("local", "ray")
BENCHMARK_METHODS = ("A", "B", "C", "D", "E")
BENCHMARK_SEEDS = (0, 1, 2)
BENCHMARK_LATENCY_RUNS = 20
BENCHMARK_LATENCY_THREADS = 2                 # fixed, so methods compare
BENCHMARK_REFERENCE = "E"
DEFAULT_MAX_EPOCHS = 300                      # tuning: the paper's budget

# training
PRECISIONS = ("fp32", "bf16", "fp16", "auto")   # rrrnet.precision

# deployment
DEPLOY_DEFAULTS = {"fold_bn": True, "subsample": True, "channels_last": True, "compile": False}
EXPORT_FORMATS = ("torchscript", "onnx")


@dataclass(frozen=True)
class BenchmarkOptions:
    """The grid's settings besides the datasets (``config``: a loaded tune/config file)."""

    methods: tuple[str, ...] = BENCHMARK_METHODS
    seeds: tuple[int, ...] = BENCHMARK_SEEDS
    epochs: int | None = None          # None: each method's own (the paper's 300)
    config: dict[str, Any] | None = None
    weights: str | None = None         # None: each method's default (ImageNet)
    arch: str = "resnet152"            # the template ResNet ([A], [B]: all of it)
    train: int = 20
    val: int = 0
    test: int = 20
    latency_runs: int = BENCHMARK_LATENCY_RUNS
    latency_threads: int | None = BENCHMARK_LATENCY_THREADS
    reference: str = BENCHMARK_REFERENCE  # the method tested against every other one
    ood: tuple[str, ...] = ()          # out-of-distribution datasets: adds uncertainty columns
    mc_samples: int = 0                # D's Monte-Carlo dropout passes for those columns (0: none)
    eval_every: int = 0                # test error in each cell's history every N epochs (0: none)

    def __post_init__(self):
        if not self.methods:
            raise ConfigError("--methods needs at least one method")
        if len(set(self.methods)) != len(self.methods):
            raise ConfigError(f"--methods lists a method twice: {','.join(self.methods)}")
        if not self.seeds or len(set(self.seeds)) != len(self.seeds):
            raise ConfigError(f"seeds must be distinct and at least one, got {list(self.seeds)}")
        if self.eval_every < 0:
            raise ConfigError(f"--eval-every must be 0 (only the final model) or more, got "
                              f"{self.eval_every}")
        if self.epochs is not None and self.epochs < 1:
            raise ConfigError(f"--epochs must be at least 1, got {self.epochs}")
        if self.latency_runs < 0:
            raise ConfigError(f"--latency-runs must be 0 (no timing in cells) or more, got "
                              f"{self.latency_runs}")
