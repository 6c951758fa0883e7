"""``rrrnet tune``: choose the training hyper-parameters on the held-out dataset with Optuna.

The paper tunes every hyper-parameter on ICDAR-micro (20 classes; 15 train / 5 validation / 20
test images per class) and then uses the chosen values unchanged on all Meta-Album datasets. Here
an Optuna study (TPE sampler seeded by ``seed``) searches the learning rate, the weight decay, the
number of epochs and the EMA length (plus the dropout rate for method D), training each trial on
the 15 training images per class and scoring it by the ensemble's error on the 5 VALIDATION
images per class. The 20 test images per class are never trained on nor scored.

How the validation images are scored without touching :func:`rrrnet.train.fit`: ``micro_split``
gives each class its shuffled indices in the order train, val, test, so the split
``train=15, val=0, test=5`` has the same training images as ``15/5/20`` and, as its "test" part,
exactly the images of the ``15/5/20`` validation part (:func:`validation_spec`).

Outputs in ``out``: ``trials.csv`` (one row per trial), ``best.json`` (the best trial and its
recipe) and the configuration file (``config.json`` by default) that ``rrrnet fit --config`` and
``rrrnet benchmark --config`` read. With ``storage`` (e.g. ``sqlite:///tune.db``) the study is
kept in a database: running the same command again continues it up to ``trials`` finished trials.
"""
from __future__ import annotations

import dataclasses
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from ..recipe import SearchSpace, ema_epochs  # noqa: F401  (re-exported)
from ..training import strategies
from ..model import ModelConfig
from ..rundir import holds_folder
from ..io import json_safe, write_csv, write_json
from ..train import DataSpec, Recipe, fit

DEFAULT_METHOD = "E"
# ICDAR-micro's split per class (paper Section 4.2).
HELD_OUT_TRAIN, HELD_OUT_VAL = 15, 5
TRIAL_FIELDS = ("number", "state", "val_error", "lr", "weight_decay", "epochs", "ema_epochs",
                "ema_fraction", "dropout", "val_nll", "last_epoch", "seconds", "started")


# ---------------------------------------------------------------------------------------------
# The search space
# ---------------------------------------------------------------------------------------------

def import_optuna():
    try:
        import optuna
    except ImportError:
        raise ConfigError("rrrnet tune needs Optuna: pip install 'rrrnet[tune]'") from None
    return optuna


def validation_spec(root: str | os.PathLike, train: int = HELD_OUT_TRAIN, val: int = HELD_OUT_VAL,
                    skip_bad_images: bool = False) -> DataSpec:
    """A DataSpec training on the ``train/val/...`` split's training images and "testing" on its
    validation images (see the module docs): the test images are never selected."""
    if train < 1 or val < 1:
        raise ConfigError(f"tuning needs at least 1 training and 1 validation image per class, "
                          f"got --train {train} --val {val}")
    # the per-class sizes on any layout, with the images tuning always used (duplicates kept)
    return DataSpec(root=str(root), train=train, val=0, test=val, skip_bad_images=skip_bad_images,
                    split="micro", keep_duplicates=True)


# ---------------------------------------------------------------------------------------------
# The study
# ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class TuneResult:
    study: Any                      # optuna.Study
    best: dict[str, Any]            # what best.json holds
    config_path: Path
    out: Path


def make_study(seed: int = 0, storage: str | None = None, study_name: str | None = None,
               prune: bool = False, min_epochs: int = 1):
    """A minimising study with a seeded TPE sampler, created or (with ``storage``) continued.

    The median pruner stops a trial whose validation error at an epoch is worse than the median
    of earlier trials at that epoch; it waits for 3 finished trials and half the shortest budget.
    """
    optuna = import_optuna()
    from optuna.pruners import MedianPruner, NopPruner

    pruner = (MedianPruner(n_startup_trials=3, n_warmup_steps=max(0, min_epochs // 2))
              if prune else NopPruner())
    try:
        return optuna.create_study(study_name=study_name, storage=storage, direction="minimize",
                                   sampler=optuna.samplers.TPESampler(seed=seed), pruner=pruner,
                                   load_if_exists=storage is not None)
    except (ValueError, ImportError) as err:  # a malformed URL, a missing database driver
        raise ConfigError(f"--storage {storage!r} cannot be opened ({err}); give an SQLAlchemy "
                          f"URL such as sqlite:///tune.db") from None


def check_same_study(study, settings: dict[str, Any]) -> None:
    """A continued study must search the same thing: compare with what it was created with."""
    saved = study.user_attrs.get("settings")
    if saved is None:
        study.set_user_attr("settings", settings)
        return
    differences = [f"{key}: {saved.get(key)!r} -> {settings.get(key)!r}"
                   for key in sorted(set(saved) | set(settings)) if saved.get(key) != settings.get(key)]
    if differences:
        raise ConfigError(f"study {study.study_name!r} in the storage was created with other "
                          f"settings ({'; '.join(differences)}); use the same options to continue "
                          f"it, or another --study-name")


def completed(study) -> list:
    from optuna.trial import TrialState
    return study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))


def finished(study) -> list:
    """Trials that count towards ``trials``: completed or pruned (failed ones are retried)."""
    from optuna.trial import TrialState
    return study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED))


@holds_folder()
def tune(data: str | os.PathLike, out: str | os.PathLike = "rrrnet-tune", *,
         method: str = DEFAULT_METHOD, trials: int = 20, space: SearchSpace | None = None,
         seed: int = 0, storage: str | None = None, study_name: str | None = None,
         prune: bool = False, prune_every: int | None = None, base_recipe: Recipe | None = None,
         weights: str | None = None, arch: str | None = None,
         model_overrides: dict[str, Any] | None = None, train: int = HELD_OUT_TRAIN, val: int = HELD_OUT_VAL, skip_bad_images: bool = False,
         config_out: str | os.PathLike | None = None, keep_runs: bool = False,
         progress: bool = True) -> TuneResult:
    """Search ``method``'s recipe on the held-out dataset ``data``; see the module docs.

    ``trials``: finished (completed or pruned) trials the study should hold; a continued study
    runs only the missing ones. ``base_recipe``: everything not searched (batch size, image size,
    augmentation, device ...; its seed is replaced by ``seed``). ``weights``/``arch``: the
    method's backbone source and template (defaults: ImageNet, ResNet-152). ``model_overrides``:
    fields of the method's ModelConfig to replace (e.g. fewer branches for a quick check).
    ``prune``: report the validation error every ``prune_every`` epochs (default: a fifth of the
    shortest budget) and let the median pruner stop hopeless trials. ``keep_runs``: keep each
    trial's run folder (``out/runs/trial-NNNN``) instead of deleting it when the trial ends.
    """
    optuna = import_optuna()
    strategies.method(method)   # an unknown method fails here, naming the known ones
    if trials < 1:
        raise ConfigError(f"--trials must be at least 1, got {trials}")
    space = space or SearchSpace()
    prune_every = max(1, space.epochs[0] // 5) if prune_every is None else prune_every
    if prune_every < 1:
        raise ConfigError(f"--prune-every must be at least 1 epoch, got {prune_every}")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    config_path = Path(config_out) if config_out is not None else out / "config.json"
    spec = validation_spec(data, train, val, skip_bad_images)
    base_recipe = dataclasses.replace(base_recipe or Recipe(), seed=seed)

    study = make_study(seed, storage, study_name or f"rrrnet-tune-{method}", prune, space.epochs[0])
    check_same_study(study, {
        "method": method, "dataset": str(Path(data).resolve()), "train": train, "val": val,
        "space": space.to_dict(), "seed": seed, "weights": weights, "arch": arch,
        "model_overrides": json_safe(model_overrides),
        "base_recipe": json_safe({k: v for k, v in dataclasses.asdict(base_recipe).items()
                                  if k not in ("device", "num_workers")}),
    })

    def objective(trial) -> float:
        params = space.suggest(trial, method)
        trial.set_user_attr("ema_epochs", params["ema_epochs"])
        config, recipe = trial_setup(method, params, base_recipe, seed, weights, arch,
                                     model_overrides)
        run_dir = out / "runs" / f"trial-{trial.number:04d}"
        try:
            metrics = train_and_validate(trial, spec, run_dir, config, recipe,
                                         prune_every if prune else None)
        finally:
            if not keep_runs:
                shutil.rmtree(run_dir, ignore_errors=True)
        trial.set_user_attr("val_nll", metrics["nll"])
        return metrics["error"]

    def after_trial(study, _trial=None) -> None:
        write_outputs(study, out, config_path, method, spec, storage)

    missing = trials - len(finished(study))
    verbosity = optuna.logging.get_verbosity()
    if not progress:
        optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        if missing > 0:  # outputs rewritten after every trial: an interruption loses one trial
            study.optimize(objective, n_trials=missing, callbacks=[after_trial],
                           show_progress_bar=progress)
    finally:
        optuna.logging.set_verbosity(verbosity)
    if not keep_runs and (out / "runs").is_dir() and not any((out / "runs").iterdir()):
        (out / "runs").rmdir()
    if not completed(study):
        raise ConfigError(f"no trial of study {study.study_name!r} completed (all were pruned); "
                          f"run more --trials or tune without --prune")
    after_trial(study)
    return TuneResult(study, best_summary(study, method, spec, storage), config_path, out)


def trial_setup(method: str, params: dict[str, Any], base_recipe: Recipe, seed: int,
                weights: str | None = None, arch: str | None = None,
                model_overrides: dict[str, Any] | None = None) -> tuple[ModelConfig, Recipe]:
    """The method's model and recipe with one trial's hyper-parameters."""
    from .methods import method_setup

    recipe = dataclasses.replace(base_recipe, lr=params["lr"], weight_decay=params["weight_decay"],
                                 epochs=params["epochs"], ema_epochs=params["ema_epochs"])
    config, recipe = method_setup(method, recipe, seed=seed, dropout=params.get("dropout"),
                                  weights=weights, **({"arch": arch} if arch else {}))
    if model_overrides:
        config = dataclasses.replace(config, **model_overrides)
    return config, recipe


def train_and_validate(trial, spec: DataSpec, run_dir: Path, config: ModelConfig, recipe: Recipe,
                       prune_every: int | None) -> dict[str, Any]:
    """Train one trial; the metrics of its final model on the validation images.

    Without pruning: one ``fit`` that evaluates only at the end. With pruning: ``fit`` runs
    ``prune_every`` epochs at a time (resuming its own checkpoint, which replays exactly what one
    uninterrupted run does) and the validation error after each chunk goes to the pruner.
    """
    optuna = import_optuna()
    if prune_every is None:
        recipe = dataclasses.replace(recipe, eval_every=0)  # only the final model is scored
        trial.set_user_attr("last_epoch", recipe.epochs)
        return fit(spec, run_dir, config, recipe, overwrite=True, progress=False).metrics
    recipe = dataclasses.replace(recipe, eval_every=prune_every)
    result = fit(spec, run_dir, config, recipe, overwrite=True, progress=False,
                 stop_after=prune_every)
    while not result.metrics:
        row = result.history[-1]
        trial.report(row["test_error"], step=row["epoch"])  # "test" here: the validation images
        trial.set_user_attr("last_epoch", row["epoch"])
        if trial.should_prune():
            raise optuna.TrialPruned(f"validation error {row['test_error']:.3f} at epoch {row['epoch']}")
        result = fit(spec, run_dir, config, recipe, resume=True, progress=False,
                     stop_after=prune_every)
    trial.set_user_attr("last_epoch", recipe.epochs)
    return result.metrics


# ---------------------------------------------------------------------------------------------
# Outputs
# ---------------------------------------------------------------------------------------------

def write_outputs(study, out: Path, config_path: Path, method: str, spec: DataSpec,
                  storage: str | None) -> None:
    """trials.csv always; best.json and the config file once a trial has completed."""
    from .methods import write_config_file

    write_trials_csv(out / "trials.csv", study)
    if not completed(study):
        return
    best = best_summary(study, method, spec, storage)
    write_json(out / "best.json", best)
    own = {name: best["params"][name] for name in strategies.method(method).searched
           if name in best["params"]}   # the method's own options (e.g. [D]'s dropout rate)
    write_config_file(config_path, recipe=best["recipe"], methods={method: own} if own else None,
                      source=best["source"])


def best_summary(study, method: str, spec: DataSpec, storage: str | None) -> dict[str, Any]:
    """best.json: the best completed trial, its recipe fields and where they came from."""
    best = study.best_trial
    params = dict(best.params)
    tuned = {"lr": params["lr"], "weight_decay": params["weight_decay"],
             "epochs": params["epochs"], "ema_epochs": best.user_attrs["ema_epochs"]}
    source = {"tool": "rrrnet tune", "dataset": spec.root, "split":
              f"{spec.train} train / {spec.test} validation images per class",
              "method": method, "trials": len(finished(study)), "best_trial": best.number,
              "validation_error": best.value, "study": study.study_name, "storage": storage}
    settings = study.user_attrs.get("settings", {})
    source.update({key: settings.get(key) for key in ("seed", "arch", "weights", "model_overrides")
                   if settings.get(key) is not None})  # None: the method's default
    default = json_safe(dataclasses.asdict(Recipe()))
    # Settings the tuned values go with (e.g. a smaller image_size, a shorter BatchNorm warm-up)
    # travel with them into the config file; where a trial ran (device, workers) does not.
    fixed = {k: v for k, v in settings.get("base_recipe", {}).items()
             if k not in ("seed", "device", "num_workers") and v != default.get(k)}
    if fixed:
        source["fixed_recipe"] = fixed
    recipe = {**fixed, **tuned}
    return {"method": method, "trial": best.number, "validation_error": best.value,
            "validation_nll": best.user_attrs.get("val_nll"), "params": params,
            "recipe": recipe, "source": source}


def trial_row(trial) -> dict[str, Any]:
    params, attrs = trial.params, trial.user_attrs
    seconds = trial.duration.total_seconds() if trial.duration is not None else None
    return {"number": trial.number, "state": trial.state.name, "val_error": trial.value,
            "lr": params.get("lr"), "weight_decay": params.get("weight_decay"),
            "epochs": params.get("epochs"), "ema_epochs": attrs.get("ema_epochs"),
            "ema_fraction": params.get("ema_fraction"), "dropout": params.get("dropout"),
            "val_nll": attrs.get("val_nll"), "last_epoch": attrs.get("last_epoch"),
            "seconds": None if seconds is None else round(seconds, 3),
            "started": trial.datetime_start.isoformat(timespec="seconds")
            if trial.datetime_start else None}


def write_trials_csv(path: Path, study) -> None:
    write_csv(path, (trial_row(t) for t in study.get_trials(deepcopy=False)), TRIAL_FIELDS)
