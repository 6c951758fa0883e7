"""The training loop (rrrnet.training): its events, strategies, callbacks and new options."""
import ast
import dataclasses
import inspect
import json
import math
from pathlib import Path

import pytest
import torch

import rrrnet
from conftest import PILPairs as Images
from conftest import make_meta_album, read_csv
from rrrnet.cli import main
from rrrnet.data import load_dataset, micro_split
from rrrnet.errors import ConfigError
from rrrnet.model import ModelConfig
from rrrnet.precision import cpu_has_bf16, resolve_precision
from rrrnet.train import Callback, DataSpec, Recipe, fit
from rrrnet.training import callbacks, loop, strategies
from rrrnet.training.loss import branch_loss

TINY = dict(arch="resnet18", blocks=(1, 1, 1, 1), branches=2, num_classes=4, weights="none")
RECIPE = Recipe(epochs=3, batch_size=8, ema_epochs=2, warm_stump_epochs=1, image_size=32, seed=0)
SRC = Path(rrrnet.__file__).parent


@pytest.fixture(scope="module")
def split(tmp_path_factory):
    root = make_meta_album(tmp_path_factory.mktemp("data") / "tiny", classes=4, per_class=16)
    return micro_split(load_dataset(root), train=8, test=8)


class Recorder(Callback):
    """Every event, in order, with what it carries."""

    def __init__(self):
        self.events = []

    def on_fit_start(self, state):
        self.events.append("fit_start")

    def on_stump_ready(self, state):
        self.events.append("stump_ready")

    def on_epoch_start(self, state):
        self.events.append(f"epoch_start {state.epoch}")

    def on_step_start(self, state, batch):
        self.events.append("step_start")

    def on_step_end(self, state, batch, loss, outputs):
        assert outputs.shape[:2] == (2, len(batch[1])) and loss.dim() == 0
        self.events.append("step_end")

    def on_train_epoch_end(self, state):
        self.events.append("train_epoch_end")

    def on_validation_end(self, state, metrics):
        assert "eval_error" in metrics
        self.events.append("validation_end")

    def on_epoch_end(self, state):
        assert len(state.history) == state.epoch and state.history[-1]["epoch"] == state.epoch
        self.events.append(f"epoch_end {state.epoch}")

    def on_fit_end(self, state):
        self.events.append("fit_end")

    def on_interrupt(self, state, error):
        self.events.append(f"interrupt {type(error).__name__}")


def test_a_users_callback_sees_every_event_in_order(split):
    recorder = Recorder()
    recipe = dataclasses.replace(RECIPE, epochs=2, eval_every=2)
    rrrnet.train(rrrnet.build(**TINY), Images(split.train), recipe,
                 eval_data=Images(split.test), callbacks=[recorder], progress=False)
    steps = ["step_start", "step_end"] * 4          # 32 images, batch 8
    assert recorder.events == [
        "fit_start", "stump_ready",
        "epoch_start 0", *steps, "train_epoch_end", "epoch_end 1",
        "epoch_start 1", *steps, "train_epoch_end", "validation_end", "epoch_end 2",
        "fit_end"]


def test_an_interruption_is_an_event_and_propagates(split):
    class Stop(Callback):
        def on_step_end(self, state, batch, loss, outputs):
            if state.step == 3:
                raise KeyboardInterrupt

    recorder = Recorder()
    with pytest.raises(KeyboardInterrupt):
        rrrnet.train(rrrnet.build(**TINY), Images(split.train), RECIPE,
                     callbacks=[Stop(), recorder], progress=False)
    assert recorder.events[-1] == "interrupt KeyboardInterrupt"
    assert "fit_end" not in recorder.events


def test_the_train_function_is_a_short_loop():
    """The body of rrrnet.train (docstring aside) stays at most 50 lines: features are
    listeners, not branches of the loop."""
    function = ast.parse(inspect.getsource(loop.train)).body[0]
    body = function.body[1:] if isinstance(function.body[0], ast.Expr) else function.body
    assert function.end_lineno - body[0].lineno + 1 <= 50


def test_no_code_outside_the_registry_compares_method_names():
    names = {"A", "B", "C", "D", "E", *(cls.name for cls in strategies._unique())}
    found = []
    for path in SRC.rglob("*.py"):
        if path == SRC / "training" / "strategies.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Compare):
                constants = [c for c in (node.left, *node.comparators)
                             if isinstance(c, ast.Constant) and isinstance(c.value, str)]
                constants += [e for c in node.comparators if isinstance(c, (ast.Tuple, ast.Set))
                              for e in c.elts if isinstance(e, ast.Constant)]
                found += [f"{path.relative_to(SRC)}:{node.lineno} {c.value!r}"
                          for c in constants if c.value in names]
    assert found == []


def test_every_method_and_ensemble_comes_from_the_registry():
    assert list(strategies.methods()) == ["A", "B", "C", "D", "E"]
    assert list(strategies.ensembles()) == ["naive", "bagging", "snapshot", "fge"]
    from rrrnet.cli import parser
    fit_help = parser().commands["fit"].format_help()
    for cls in strategies._unique():
        assert cls.summary.split(",")[0][:40] in " ".join(fit_help.split())


def test_a_new_strategy_is_one_class(split):
    """The docs' example: label smoothing as a strategy, registered, then trained by name."""
    @strategies.register
    class Smoothed(strategies.Naive):
        name, summary = "smoothed-test", "naive with label smoothing 0.1"

        def loss(self, outputs, labels, batch):
            b, n, c = outputs.shape
            return torch.nn.functional.cross_entropy(
                outputs.reshape(b * n, c), labels.repeat(b), label_smoothing=0.1) * b

    try:
        recipe = dataclasses.replace(RECIPE, ensemble="smoothed-test")
        result = rrrnet.train(rrrnet.build(**TINY), Images(split.train), recipe, progress=False)
        plain = rrrnet.train(rrrnet.build(**TINY), Images(split.train), RECIPE, progress=False)
        assert result.history[0]["loss"] != plain.history[0]["loss"]
        assert math.isfinite(result.history[-1]["loss"])
    finally:
        for key in ("smoothed-test",):
            strategies._REGISTRY.pop(key)


def test_early_stopping_keeps_the_best_weights(split):
    """Validation errors forced to 0.5, 0.3, 0.4, 0.4 (patience 2): training stops after the
    fourth epoch and the final model holds the weights scored at the second."""
    errors = iter([0.5, 0.3, 0.4, 0.4, 0.4, 0.4])
    kept = {}

    class Forced(Callback):
        order = 35   # before EarlyStopping (40)

        def on_validation_end(self, state, metrics):
            metrics["eval_error"] = next(errors)
            if state.epoch + 1 == 2:
                part = callbacks.trained_part(state.model)
                kept.update({k: v.clone() for k, v in part.state_dict().items()})

    recipe = dataclasses.replace(RECIPE, epochs=8, ema_epochs=0, patience=2)
    model = rrrnet.build(**TINY)
    result = rrrnet.train(model, Images(split.train), recipe, eval_data=Images(split.test),
                          callbacks=[Forced()], progress=False)
    assert len(result.history) == 4 and result.best_epoch == 2 and not result.stopped
    final = callbacks.trained_part(result.model).state_dict()
    assert all(torch.equal(final[k], kept[k]) for k in kept)
    with pytest.raises(ConfigError, match="patience needs validation data"):
        rrrnet.train(rrrnet.build(**TINY), Images(split.train), recipe, progress=False)


def test_learning_rate_schedules():
    f = callbacks.lr_factor
    assert [f(s, 10, 0, "constant") for s in (0, 9)] == [1.0, 1.0]
    assert [f(s, 10, 4, "constant") for s in range(5)] == [0.25, 0.5, 0.75, 1.0, 1.0]
    assert f(4, 10, 4, "cosine") == 1.0                        # the cosine starts after warm-up
    assert f(7, 10, 4, "cosine") == pytest.approx(0.5 * (1 + math.cos(math.pi * 3 / 6)))
    assert f(10, 10, 4, "cosine") == pytest.approx(0.0)


def test_cosine_schedule_in_the_history(split):
    recipe = dataclasses.replace(RECIPE, epochs=4, schedule="cosine", warmup_epochs=1)
    result = rrrnet.train(rrrnet.build(**TINY), Images(split.train), recipe, progress=False)
    lrs = [row["lr"] for row in result.history]   # the rate of each epoch's last step (4 steps)
    total, warm = 16, 4
    assert lrs == pytest.approx([RECIPE.lr * callbacks.lr_factor(s, total, warm, "cosine")
                                 for s in (3, 7, 11, 15)])


def test_precision_resolves_per_device():
    assert resolve_precision("fp32", "cpu").dtype is None
    assert resolve_precision("auto", "cpu").name == ("bf16" if cpu_has_bf16() else "fp32")
    with pytest.raises(ConfigError, match="fp16 needs a CUDA device"):
        resolve_precision("fp16", "cpu")
    with pytest.raises(ConfigError, match="precision must be one of"):
        Recipe(precision="fp8")


@pytest.mark.skipif(not cpu_has_bf16(), reason="this CPU has no native bf16")
def test_bf16_training_learns(split):
    recipe = dataclasses.replace(RECIPE, epochs=8, precision="bf16")
    model = rrrnet.build(**TINY)
    result = rrrnet.train(model, Images(split.train), recipe, eval_data=Images(split.test),
                          progress=False)
    assert result.history[-1]["eval_error_ema"] < 0.4      # chance: 0.75
    assert next(model.parameters()).dtype == torch.float32  # master weights stay fp32


def test_class_weighted_loss_is_the_weighted_mean():
    logits = torch.randn(2, 4, 3)
    labels = torch.tensor([0, 0, 1, 2])
    weights = torch.tensor([0.5, 2.0, 1.0])
    expected = sum(torch.nn.functional.cross_entropy(logits[b], labels, weight=weights)
                   for b in range(2))
    assert branch_loss(logits, labels, class_weights=weights).item() == pytest.approx(
        expected.item(), rel=1e-6)


def test_balanced_sampler_draws_classes_equally():
    from rrrnet.training.data import balanced_sampler
    labels = [0] * 90 + [1] * 10
    drawn = [labels[i] for i in balanced_sampler(labels, seed=1)]
    assert len(drawn) == 100 and 35 <= drawn.count(1) <= 65          # not 10
    assert drawn == [labels[i] for i in balanced_sampler(labels, seed=1)]  # seeded


def test_csv_logger_and_optional_loggers(split, tmp_path):
    path = tmp_path / "logs" / "metrics.csv"
    rrrnet.train(rrrnet.build(**TINY), Images(split.train), RECIPE, eval_data=Images(split.test),
                 callbacks=[callbacks.CSVLogger(path)], progress=False)
    rows = read_csv(path)
    assert [r["epoch"] for r in rows] == ["1", "2", "3"]
    assert {"loss", "lr", "seconds", "eval_error", "eval_error_ema"} <= set(rows[-1])
    with pytest.raises(ConfigError, match="unknown logger wandb"):
        callbacks.loggers("csv,wandb", tmp_path)
    for name, module in (("tensorboard", "tensorboard"), ("mlflow", "mlflow")):
        try:
            __import__(module)
        except ImportError:
            with pytest.raises(ConfigError, match=f"pip install 'rrrnet\\[{name}\\]'"):
                callbacks.loggers(name, tmp_path)


def test_a_runs_config_is_a_valid_config_bit_for_bit(tmp_path):
    """fit --config RUN/config.json --out RUN2 repeats the run exactly (its data split too)."""
    root = make_meta_album(tmp_path / "data", classes=3, per_class=8)
    first = tmp_path / "run"
    assert main(["fit", str(root), "--out", str(first), "--arch", "resnet18", "--weights", "none",
                 "--epochs", "2", "--image-size", "32", "--batch-size", "8", "--train", "5",
                 "--test", "3", "--warm-stump-epochs", "1", "--seed", "3", "-q"]) == 0
    again = tmp_path / "again"
    assert main(["fit", "--config", str(first / "config.json"), "--out", str(again), "-q"]) == 0
    a, b = (json.loads((run / "metrics.json").read_text()) for run in (first, again))
    drop = ("setup_seconds", "train_seconds")
    assert {k: v for k, v in a.items() if k not in drop} == \
        {k: v for k, v in b.items() if k not in drop}
    assert json.loads((again / "config.json").read_text())["data"]["train"] == 5


def test_fit_help_shows_the_new_options(capsys):
    with pytest.raises(SystemExit):
        main(["fit", "--help"])
    text = capsys.readouterr().out
    for flag in ("--precision", "--schedule", "--patience", "--log", "--warmup-epochs",
                 "--recipe", "--nproc", "--balance"):
        assert flag in text


def test_quick_recipe_is_the_fit_default_and_paper_one_flag_away():
    from rrrnet.cli import parse, recipe
    quick = recipe(parse(["fit", "data", "--out", "run"]))
    paper = recipe(parse(["fit", "data", "--out", "run", "--recipe", "paper"]))
    assert paper == Recipe()
    assert (quick.epochs, quick.schedule, quick.warmup_epochs, quick.precision) == \
        (60, "auto", 2, "auto")
    assert recipe(parse(["fit", "data", "--out", "run", "--epochs", "7"])).epochs == 7
    assert quick.min_steps == 2000 and paper.min_steps == 0


def test_a_step_budget_lengthens_short_epochs_in_proportion():
    quick = Recipe.quick()
    # 200 images at batch 32: 7 steps an epoch; 2,000 steps need 286 epochs (at most 5 x 60).
    long = quick.for_steps(7)
    assert (long.epochs, long.warmup_epochs, long.ema_epochs, long.eval_every, long.min_steps) \
        == (286, 10, 57, 5, 0)
    # schedule auto: the paper's constant rate for a lengthened run, cosine for one long enough
    assert (quick.schedule, long.schedule, quick.for_steps(71).schedule) == \
        ("auto", "constant", "cosine")
    assert Recipe.quick(schedule="cosine").for_steps(7).schedule == "cosine"   # typed: kept
    assert Recipe(schedule="auto").for_steps(7).schedule == "cosine"   # min_steps 0: not longer
    assert long.patience == quick.patience   # counted in evaluations, 5x further apart
    assert long.for_steps(7) == long         # what a run records resolves to itself
    assert quick.for_steps(1).epochs == 300  # at most five times the epochs
    assert quick.for_steps(1).for_steps(1).epochs == 300
    enough = quick.for_steps(71)             # 2,245 images: 60 epochs are 4,260 steps
    assert enough == dataclasses.replace(quick, min_steps=0, schedule="cosine")
    assert enough.for_steps(71) == enough
    assert Recipe().for_steps(1) == Recipe()  # the paper's recipe is never lengthened
    assert Recipe.quick(epochs=10).for_steps(1).epochs == 10   # as a typed --epochs
    assert Recipe.quick(epochs=10, min_steps=30).for_steps(1).epochs == 30
    assert Recipe.quick(eval_every=0, ema_epochs=0).for_steps(7).eval_every == 0
    with pytest.raises(ConfigError, match="min_steps"):
        Recipe(min_steps=-1)


def test_typed_epochs_are_the_epochs_trained_and_the_cli_says_when_it_lengthens():
    from rrrnet.cli import parse, recipe
    from rrrnet.commands.fit import lengthened
    typed = recipe(parse(["fit", "data", "--out", "run", "--epochs", "7"]))
    assert typed.min_steps == 0 and typed.for_steps(1).epochs == 7
    both = recipe(parse(["fit", "data", "--out", "run", "--epochs=7", "--min-steps", "70"]))
    assert both.for_steps(2).epochs == 35
    line = lengthened(recipe(parse(["fit", "data", "--out", "run"])), 200, 1)
    assert line.startswith("200 training images make 7 steps an epoch: 60 epochs lengthened "
                           "to 286 (2002 steps; --min-steps 2000)")
    assert lengthened(recipe(parse(["fit", "data", "--out", "run"])), 2245, 1) is None
    assert line.endswith("warm-up 10, constant rate, average 57, evaluation every 5 epochs "
                         "(--epochs N trains "
                         "exactly N)")
    assert "evaluation at the end" in lengthened(
        recipe(parse(["fit", "data", "--out", "run", "--eval-every", "0"])), 200, 1)
    # Two processes: 4 steps an epoch each (of 64 images), 500 epochs wanted, 5 x 60 at most.
    assert "4 steps an epoch: 60 epochs lengthened to 300 (1200 steps" in \
        lengthened(recipe(parse(["fit", "data", "--out", "run"])), 200, 2)


def test_train_applies_the_step_budget_and_fit_records_it(tmp_path):
    root = make_meta_album(tmp_path / "data", classes=2, per_class=6)
    small = dataclasses.replace(RECIPE, epochs=2, min_steps=4, ema_epochs=0,  # 6 images: 1 step
                                schedule="auto", warmup_epochs=1)
    run = fit(DataSpec(str(root), train=3, test=3), tmp_path / "run",
              ModelConfig(arch="resnet18", branches=2, weights="none"), small, progress=False)
    assert len(run.history) == 4 and run.metrics["epochs"] == 4
    saved = json.loads((tmp_path / "run" / "config.json").read_text())["recipe"]
    assert (saved["epochs"], saved["min_steps"], saved["schedule"], saved["warmup_epochs"]) \
        == (4, 0, "constant", 2)
    # warm-up over 2 of the 4 epochs, then the constant rate (a cosine would end at 0)
    assert [float(r["lr"]) / RECIPE.lr for r in run.history] == pytest.approx([0.5, 1, 1, 1])


def test_patience_without_validation_images_is_refused(tmp_path):
    root = make_meta_album(tmp_path / "data", classes=2, per_class=6)
    with pytest.raises(ConfigError, match="--val N"):
        fit(DataSpec(str(root), train=3, test=3), tmp_path / "run",
            ModelConfig(arch="resnet18", branches=2, weights="none"),
            dataclasses.replace(RECIPE, patience=2), progress=False)
    assert not (tmp_path / "run").exists()


def test_a_lone_last_image_at_32_px_is_left_out_with_a_warning_not_a_crash(tmp_path, capsys):
    from rrrnet.training.data import steps_per_epoch
    root = make_meta_album(tmp_path / "data", classes=3, per_class=5)   # 9 train, batch 8
    data = DataSpec(str(root), train=3, test=2)
    model = ModelConfig(**{**TINY, "num_classes": 3})
    recipe = dataclasses.replace(RECIPE, epochs=2, ema_epochs=0)
    with pytest.warns(UserWarning, match="9 training images at batch size 8 leave one image"):
        result = fit(data, tmp_path / "run", model, recipe, progress=False)
    assert [row["epoch"] for row in result.history] == [1, 2]
    assert [steps_per_epoch(9, 8, size) for size in (32, 33, 128)] == [1, 2, 2]
    assert steps_per_epoch(16, 8, 32) == 2 and steps_per_epoch(17, 8, 32) == 2
    code = main(["fit", str(root), "--out", str(tmp_path / "cli"), "--arch", "resnet18",
                 "--weights", "none", "--image-size", "32", "--train", "3", "--test", "2",
                 "--batch-size", "8", "--epochs", "1", "-q"])
    err = capsys.readouterr().err
    assert code == 0 and err.startswith("rrrnet: warning: 9 training images") and "Traceback" \
        not in err and len(err.strip().splitlines()) == 1
