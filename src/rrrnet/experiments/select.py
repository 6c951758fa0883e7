"""Forward block selection (the paper's Algorithm 1) and its control experiment.

Start from ResNet_1.1.1.1 with a new classifier, train all layers for ``epochNum`` epochs and
score it: that accuracy is ``Accuracy*``. Then add one pretrained block at a time, in the order of
:func:`rrrnet.reduce.forward_order` (fill stage after stage, or ``cyclic``), continue training
without re-initialisation (every tensor the previous model had keeps its trained value, only the
new block starts from its pretrained weights), score again, and stop at the first addition whose
relative gain ``(accuracy - old_accuracy) / Accuracy*`` falls below epsilon: the selection is the
configuration before that addition. ``stop=False`` (the paper's Figure 4) trains on to the full
backbone and only records where the rule would have stopped. The control trains the start model
once for the total number of epochs all steps used.

The selection logic (:func:`forward_select`) is a pure loop over a ``train_and_score(blocks,
previous_model) -> (accuracy, model)`` callable; :class:`StepTrainer` is the real one.

Output folder: ``config.json``, ``curve.csv`` (one row per seed and step), ``curve_summary.csv``
(mean error and 95% t-interval per step over seeds), ``curve.png``, ``selection.json``,
``control.csv`` with ``--control``; per seed ``seed-N/steps.json`` (finished steps, rewritten
atomically after each one: what ``resume`` continues from), ``seed-N/step-KKK.pt`` (the models of
the last and of the selected step) and ``seed-N/control-Eep/`` (a ``train.fit`` run folder).
"""
from __future__ import annotations

import dataclasses
import json
import math
import os
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import torch
from tqdm.auto import tqdm

from ..backbone import arch_spec
from ..cost import cost
from ..data import ImageDataset, Split
from ..errors import ConfigError, RunError
from ..options import DEFAULT_EPSILON, SCORE_ON
from ..model import ModelConfig, build, load, save
from ..recycle import BranchedResNet
from ..reduce import DEFAULT_BLOCKS, ORDERS, forward_order
from ..report.curves import plot_selection
from ..report.stats import mean_ci
from ..io import derive_seed, resolve_device, write_csv, write_json
from ..rundir import claim_folder, holds_folder
from ..train import RUN_COMPARISON, DataSpec, Recipe, evaluate_split, fit
from ..training import strategies
from ..train import train as train_model

STEPS_FORMAT = "rrrnet-selection-steps/1"
OUTPUT_FILES = ("config.json", "curve.csv", "curve_summary.csv", "curve.png", "selection.json",
                "control.csv")


# ---------------------------------------------------------------------------------------------
# The selection rule: a pure loop.
# ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class StepResult:
    step: int
    blocks: tuple[int, ...]
    accuracy: float
    relative_gain: float | None   # None for the start model
    decision: str                 # start | added | stop (rule fires here) | beyond (after it fired)


@dataclass
class Selection:
    steps: list[StepResult]
    reference_accuracy: float     # Accuracy*
    stopped_at: int | None        # the step whose gain fell below epsilon (None: never)
    model: Any = None             # the model after the last step trained by this call

    @property
    def chosen_step(self) -> int:
        """Algorithm 1 returns the network without the block that failed: the step before."""
        return self.steps[-1].step if self.stopped_at is None else self.stopped_at - 1

    @property
    def chosen_blocks(self) -> tuple[int, ...]:
        return self.steps[self.chosen_step].blocks


def relative_gain(accuracy: float, old_accuracy: float, reference: float) -> float:
    """``(accuracy - old_accuracy) / Accuracy*``; a zero reference makes any change infinite."""
    change = accuracy - old_accuracy
    if reference > 0:
        return change / reference
    return math.copysign(math.inf, change) if change else 0.0


def forward_select(order: Sequence[Sequence[int]],
                   train_and_score: Callable[[tuple[int, ...], Any], tuple[float, Any]],
                   epsilon: float = DEFAULT_EPSILON, *, stop: bool = True,
                   reference_accuracy: float | None = None, finished: Sequence[float] = (),
                   resume_model: Callable[[], Any] | None = None,
                   on_step: Callable[[Selection, Any], None] | None = None) -> Selection:
    """Algorithm 1 over the block configurations ``order`` (start model first).

    ``train_and_score(blocks, previous_model)`` trains the grown model (``previous_model`` is
    None for the start model) and returns its accuracy and the trained model. ``finished`` holds
    the accuracies of steps already done (a resumption): they are not trained again, and
    ``resume_model()`` gives the model after the last of them when training continues.
    ``reference_accuracy`` replaces Accuracy* (default: the start model's accuracy).
    ``on_step(selection_so_far, model)`` runs after every newly trained step (to save it).
    """
    order = [tuple(blocks) for blocks in order]
    if not order:
        raise ConfigError("forward selection needs at least the start configuration")
    if len(finished) > len(order):
        raise RunError(f"{len(finished)} finished steps but only {len(order)} configurations")
    selection = Selection([], math.nan if reference_accuracy is None else reference_accuracy, None)
    model, old_accuracy = None, math.nan
    for step, blocks in enumerate(order):
        if stop and selection.stopped_at is not None:
            break
        trained = step >= len(finished)
        if trained:
            if step > 0 and model is None:
                if resume_model is None:
                    raise RunError("resuming after finished steps needs the last step's model")
                model = resume_model()
            accuracy, model = train_and_score(blocks, model)
        else:
            accuracy = finished[step]
        if step == 0:
            if reference_accuracy is None:
                selection.reference_accuracy = accuracy
            gain, decision = None, "start"
        else:
            gain = relative_gain(accuracy, old_accuracy, selection.reference_accuracy)
            if selection.stopped_at is not None:
                decision = "beyond"
            elif gain >= epsilon:
                decision = "added"
            else:
                decision, selection.stopped_at = "stop", step
        # OldAccuracy: the previous step's (identical to Algorithm 1 up to the stop, which only
        # ever follows accepted steps; after it, the curve's gain is step to step).
        old_accuracy = accuracy
        selection.steps.append(StepResult(step, blocks, float(accuracy), gain, decision))
        if trained and on_step is not None:
            on_step(selection, model)
    selection.model = model
    return selection


# ---------------------------------------------------------------------------------------------
# The real trainer: grow, continue training, score.
# ---------------------------------------------------------------------------------------------

def selection_model_config(arch: str = "resnet152", blocks: Sequence[int] = DEFAULT_BLOCKS,
                           weights: str = "imagenet", seed: int = 0,
                           num_classes: int = 20) -> ModelConfig:
    """Algorithm 1's MiniNet: the reduced backbone with one new classifier, all layers trained
    (no branches, nothing frozen: the whole backbone is the trainable "stump")."""
    return ModelConfig(arch=arch, blocks=tuple(blocks), branches=1, num_classes=num_classes,
                       split_at="fc", seed=seed, freeze_stump=False, weights=weights)


def carry_over(model: torch.nn.Module, previous: torch.nn.Module) -> list[str]:
    """Load ``previous``'s tensors into ``model`` wherever the name (and shape) matches, so that
    only what ``previous`` lacks (the new block) keeps its pretrained value. Returns those names.

    Blocks keep their names when a stage grows (``layer3.0`` stays ``layer3.0``), so names
    identify the same tensors; BatchNorm statistics are carried with the weights.
    """
    old, new = previous.state_dict(), model.state_dict()
    carried = {k: v for k, v in old.items() if k in new and v.shape == new[k].shape}
    model.load_state_dict(carried, strict=False)
    return sorted(set(new) - set(carried))


def grow(previous: BranchedResNet | None, config: ModelConfig, progress: bool = False) -> BranchedResNet:
    """The model of ``config`` built from the pretrained backbone, then given every trained
    tensor of ``previous`` (None: the start model, only pretrained weights)."""
    model = build(config, progress=progress)
    if previous is not None:
        carry_over(model, previous)
    return model


class StepTrainer:
    """``train_and_score`` for :func:`forward_select`: grow the previous model by the next block,
    train every layer with ``recipe`` (a fresh AdamW per step; EMA over the step's last
    ``ema_epochs`` epochs), and return the accuracy on ``score_on`` and the trained model.

    Step ``k`` trains with the seed ``derive_seed(seed, k)``, so every step draws new batch
    orders and augmentations, reproducibly by seed.
    """

    def __init__(self, split: Split, base: ModelConfig, recipe: Recipe,
                 order: Sequence[Sequence[int]], score_on: str = "test", progress: bool = False):
        if score_on not in SCORE_ON:
            raise ConfigError(f"score_on must be test or val, got {score_on!r}")
        if score_on == "val" and not len(split.val):
            raise ConfigError("scoring on the validation images needs a validation split: "
                              "pass --val N (images per class)")
        self.split, self.base, self.recipe, self.score_on = split, base, recipe, score_on
        self.order, self.progress = [tuple(b) for b in order], progress
        self.device = resolve_device(recipe.device)
        self.train_images = ImageDataset(split.train, size=recipe.image_size)  # decoded once
        self.test_images = ImageDataset(split.test, size=recipe.image_size)
        self.last_metrics: dict[str, Any] = {}

    def __call__(self, blocks: tuple[int, ...], previous: BranchedResNet | None
                 ) -> tuple[float, BranchedResNet]:
        step = self.order.index(tuple(blocks))
        started = time.perf_counter()
        model = grow(previous, dataclasses.replace(self.base, blocks=tuple(blocks)), self.progress)
        final = self.train(model, step)
        metrics = evaluate_split(final, self.split, self.recipe, self.device, self.test_images)
        scored = metrics if self.score_on == "test" else metrics["val"]
        self.last_metrics = {"test_error": metrics["error"], "score_error": scored["error"],
                             "seconds": round(time.perf_counter() - started, 3)}
        return 1.0 - scored["error"], final.cpu().to(memory_format=torch.contiguous_format)

    def train(self, model: BranchedResNet, step: int) -> BranchedResNet:
        """:func:`rrrnet.train.train` with the step's own seed (new draws every step)."""
        recipe = dataclasses.replace(self.recipe, seed=derive_seed(self.recipe.seed, step))
        return train_model(model, self.train_images, recipe, device=self.device,
                           progress=self.progress).model


# ---------------------------------------------------------------------------------------------
# The experiment: one selection per seed, resumable by step, then the curve and the control.
# ---------------------------------------------------------------------------------------------

@dataclass
class SelectionReport:
    out: Path
    rows: list[dict[str, Any]]               # curve.csv
    summary: list[dict[str, Any]]            # curve_summary.csv
    selection: dict[str, Any]                # selection.json
    controls: list[dict[str, Any]] = field(default_factory=list)


@holds_folder()
def select_blocks(data: DataSpec, out: str | os.PathLike, *, arch: str = "resnet152",
                  weights: str = "imagenet", start: Sequence[int] = DEFAULT_BLOCKS,
                  order: str = "stages", epsilon: float = DEFAULT_EPSILON, stop: bool = True,
                  reference_accuracy: float | None = None, recipe: Recipe | None = None,
                  seeds: Sequence[int] = (0,), control: bool = False, score_on: str = "test",
                  resume: bool = False, overwrite: bool = False,
                  progress: bool = True) -> SelectionReport:
    """Run forward block selection for every seed into ``out`` (see the module docs).

    ``resume`` continues after the last finished step of every seed (and, with ``control``,
    an interrupted control run); the stopping options (``epsilon``, ``stop``,
    ``reference_accuracy``) may change on resumption, the trained steps being facts.
    """
    out, recipe = Path(out), recipe or Recipe()
    spec = arch_spec(arch)
    if order not in ORDERS:
        raise ConfigError(f"--order must be one of {', '.join(ORDERS)}, got {order!r}")
    if reference_accuracy is not None and not 0 < reference_accuracy <= 1:
        raise ConfigError(f"--reference-accuracy must be in (0, 1], got {reference_accuracy}")
    if not math.isfinite(epsilon):
        raise ConfigError(f"--epsilon must be a finite number, got {epsilon}")
    seeds = _check_seeds(seeds)
    if recipe is not None and strategies.get(recipe.ensemble).needs_branches:
        raise ConfigError("block selection trains one unbranched network: --ensemble must be "
                          "naive (the default)")
    configs = forward_order(spec.blocks, start, order)
    split = data.load()
    num_classes = len(split.train.classes)
    base = selection_model_config(arch, configs[0], weights, num_classes=num_classes)
    config = {"data": dataclasses.asdict(data), "recipe": dataclasses.asdict(recipe),
              "model": base.to_dict(), "order": order, "start": list(configs[0]),
              "score_on": score_on, "classes": list(split.train.classes)}
    _prepare(out, config, resume, overwrite)
    costs = _Costs(base, recipe.image_size)

    rows, runs, controls = [], [], []
    for seed in seeds:
        seed_recipe = dataclasses.replace(recipe, seed=seed)
        seed_base = dataclasses.replace(base, seed=seed)
        selection, records = _select_seed(out / f"seed-{seed}", split, seed_base, seed_recipe,
                                          configs, score_on, epsilon, stop, reference_accuracy,
                                          progress)
        rows += _curve_rows(seed, selection, records, costs, recipe.epochs)
        runs.append(_run_summary(out, seed, selection, records))
        if control:
            controls.append(_control(data, out / f"seed-{seed}", seed_base, seed_recipe,
                                     recipe.epochs * len(selection.steps), resume, progress))
            runs[-1]["control_error"] = controls[-1]["error"]
    summary = summarize_curve(rows)
    selection_json = _selection_json(runs, controls, epsilon, order, stop, reference_accuracy,
                                     score_on, recipe.epochs)
    write_csv(out / "curve.csv", rows)
    write_csv(out / "curve_summary.csv", summary)
    if controls:
        write_csv(out / "control.csv", controls)
    write_json(out / "selection.json", selection_json)
    plot_selection(summary, out / "curve.png", selection_json.get("control"),
                   sum(selection_json["chosen_blocks"]),
                   title=f"Forward block selection ({order} order, {len(seeds)} seed"
                         f"{'s' if len(seeds) != 1 else ''}, {recipe.epochs} epochs per step)")
    return SelectionReport(out, rows, summary, selection_json, controls)


def _select_seed(folder: Path, split: Split, base: ModelConfig, recipe: Recipe,
                 configs: list[tuple[int, ...]], score_on: str, epsilon: float, stop: bool,
                 reference_accuracy: float | None, progress: bool
                 ) -> tuple[Selection, list[dict[str, Any]]]:
    folder.mkdir(parents=True, exist_ok=True)
    records = _read_steps(folder / "steps.json")
    if [tuple(r["blocks"]) for r in records] != configs[:len(records)]:
        raise RunError(f"{folder / 'steps.json'} holds steps of another order or start; use "
                       f"--overwrite to start again")
    trainer = StepTrainer(split, base, recipe, configs, score_on, progress)

    def on_step(selection: Selection, model: BranchedResNet) -> None:
        result = selection.steps[-1]
        save(model, folder / _model_name(result.step))  # first the model, then the record
        records.append({"step": result.step, "blocks": list(result.blocks),
                        "accuracy": result.accuracy, **trainer.last_metrics})
        write_json(folder / "steps.json", {"format": STEPS_FORMAT, "steps": records})
        if progress:
            gain = "" if result.relative_gain is None else f", relative gain {result.relative_gain:+.4f}"
            tqdm.write(f"step {result.step}: ResNet_{_name(result.blocks)} accuracy "
                       f"{result.accuracy:.2%}{gain} ({result.decision})")
        keep = {_model_name(result.step), _model_name(selection.chosen_step)}
        for old in folder.glob("step-*.pt"):  # models nobody can need any more
            if old.name not in keep:
                old.unlink()

    def resume_model() -> BranchedResNet:
        return load(folder / _model_name(len(records) - 1))

    selection = forward_select(configs, trainer, epsilon, stop=stop,
                               reference_accuracy=reference_accuracy,
                               finished=[r["accuracy"] for r in records],
                               resume_model=resume_model, on_step=on_step)
    return selection, records


def _control(data: DataSpec, folder: Path, base: ModelConfig, recipe: Recipe, epochs: int,
             resume: bool, progress: bool) -> dict[str, Any]:
    """The start model trained once for the epochs of all selection steps together."""
    run = folder / f"control-{epochs}ep"
    result = fit(data, run, base, dataclasses.replace(recipe, epochs=epochs), resume=resume,
                 progress=progress)
    return {"seed": base.seed, "blocks": _name(base.blocks), "epochs": epochs,
            "error": result.metrics["error"], "run": str(run)}


def summarize_curve(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per step: the test error's mean and 95% t-interval over the seeds that reached it."""
    summary = []
    for step in sorted({r["step"] for r in rows}):
        at = [r for r in rows if r["step"] == step]
        mean, low, high = mean_ci([r["test_error"] for r in at])
        first = at[0]
        summary.append({k: first[k] for k in ("step", "blocks", "total_blocks", "params", "macs",
                                              "epochs_so_far")}
                       | {"seeds": len(at), "mean_error": mean, "error_low": low,
                          "error_high": high})
    return summary


def _curve_rows(seed: int, selection: Selection, records: list[dict[str, Any]],
                costs: "_Costs", epochs: int) -> list[dict[str, Any]]:
    rows = []
    for result, record in zip(selection.steps, records):
        rep = costs[result.blocks]
        rows.append({"seed": seed, "step": result.step, "blocks": _name(result.blocks),
                     "total_blocks": sum(result.blocks), "params": rep.params, "macs": rep.macs,
                     "epochs_so_far": (result.step + 1) * epochs,
                     "accuracy": result.accuracy, "error": 1.0 - result.accuracy,
                     "test_error": record["test_error"],
                     "relative_gain": "" if result.relative_gain is None else result.relative_gain,
                     "decision": result.decision})
    return rows


def _run_summary(out: Path, seed: int, selection: Selection,
                 records: list[dict[str, Any]]) -> dict[str, Any]:
    chosen = selection.chosen_step
    model = out / f"seed-{seed}" / _model_name(chosen)
    return {"seed": seed, "chosen_blocks": list(selection.chosen_blocks), "chosen_step": chosen,
            "stopped_at": selection.stopped_at, "steps_trained": len(selection.steps),
            "reference_accuracy": selection.reference_accuracy,
            "chosen_test_error": records[chosen]["test_error"],
            "model": str(model.relative_to(out)) if model.exists() else None}


def _selection_json(runs, controls, epsilon, order, stop, reference_accuracy, score_on,
                    epochs) -> dict[str, Any]:
    # Several seeds may choose differently: the configuration most of them chose.
    chosen = Counter(tuple(r["chosen_blocks"]) for r in runs).most_common(1)[0][0]
    result = {"chosen_blocks": list(chosen), "epsilon": epsilon, "order": order,
              "stop": stop, "epochs_per_step": epochs, "score_on": score_on,
              "reference": ("given (--reference-accuracy)" if reference_accuracy is not None else
                            "Accuracy*: the start model's accuracy after its first training "
                            "(Algorithm 1)"),
              "stopped_at": runs[0]["stopped_at"] if len(runs) == 1 else
              [r["stopped_at"] for r in runs],
              "reference_accuracy": runs[0]["reference_accuracy"] if len(runs) == 1 else
              [r["reference_accuracy"] for r in runs],
              "runs": runs}
    if controls:
        mean, low, high = mean_ci([c["error"] for c in controls])
        result["control"] = {"epochs": controls[0]["epochs"], "mean_error": mean,
                             "error_low": low, "error_high": high}
    return result


class _Costs(dict):
    """Parameters and MACs per block configuration, computed when first needed (a stopped
    selection visits a few of the 47 configurations of ResNet-152)."""

    def __init__(self, base: ModelConfig, image_size: int):
        super().__init__()
        self.base, self.image_size = base, image_size

    def __missing__(self, blocks: tuple[int, ...]):
        self[blocks] = cost(dataclasses.replace(self.base, blocks=blocks), image_size=self.image_size)
        return self[blocks]


def _prepare(out: Path, config: dict[str, Any], resume: bool, overwrite: bool) -> None:
    claim_folder(out, OUTPUT_FILES, resume, overwrite, "a block selection",
                 folders=("seed-*",))
    if resume and (out / "config.json").exists():
        saved = json.loads((out / "config.json").read_text())
        if _comparable(saved) != _comparable(config):
            raise RunError(f"{out} holds a selection with other options; --resume needs the same "
                           f"data, model, recipe, order and start (epsilon, --no-stop and "
                           f"--reference-accuracy may change)")
    write_json(out / "config.json", config)


def _comparable(config: dict[str, Any]) -> dict[str, Any]:
    # The recipe is compared as a run's is (RUN_COMPARISON: where it runs may change, options
    # added since take the values it used, options that do nothing in it are left out).
    recipe = RUN_COMPARISON.comparable({"recipe": config["recipe"]})["recipe"]
    model = {k: v for k, v in {**ModelConfig().to_dict(), **config["model"]}.items()
             if k != "weights"}
    return {**config, "recipe": recipe, "model": model}


def _read_steps(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    data = json.loads(path.read_text())
    if data.get("format") != STEPS_FORMAT:
        raise RunError(f"{path} is not a block-selection step record")
    return data["steps"]


def _check_seeds(seeds: Sequence[int]) -> tuple[int, ...]:
    seeds = tuple(int(s) for s in seeds)
    if not seeds or len(set(seeds)) != len(seeds) or min(seeds) < 0:
        raise ConfigError(f"seeds must be distinct non-negative integers, got {list(seeds)}")
    return seeds


def _model_name(step: int) -> str:
    return f"step-{step:03d}.pt"


def _name(blocks: Sequence[int]) -> str:
    return ".".join(map(str, blocks))


__all__ = ["DEFAULT_EPSILON", "Selection", "SelectionReport", "StepResult", "StepTrainer",
           "carry_over", "forward_select", "grow", "relative_gain", "select_blocks",
           "selection_model_config", "summarize_curve"]
