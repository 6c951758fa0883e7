"""The paper's five models [A]-[E] (Section 4.5, Figure 6) and the configuration file.

Every method shares one training recipe (the paper's, or a tuned one); :func:`method_setup`
applies each method's own changes on top of it:

* [A] last-layer fine-tuning: the whole backbone (ResNet-152) is the frozen stump, a new
  classifier is the only trained layer (``split_at="fc"``). Without augmentation its stump
  features are computed once and cached.
* [B] all layers of the whole backbone fine-tuned (``freeze_stump=False``), a new classifier.
* [C] ResNet_1.1.1.1, one branch: the reduced network without splitting (control for [E]).
* [D] [C] with dropout after every activation of the last two blocks (layer3, layer4), the
  paper's most favourable rate 0.05 unless given (it tried 0.05 to 0.6, :data:`DROPOUT_RATES`).
* [E] RRR-Net: ResNet_1.1.1.1 recycled into 8 branches from conv4_1, the naive ensemble.

Anything else (other blocks, branch counts, split points, ensemble methods) is a plain
``ModelConfig`` / ``Recipe``: custom models need no method name.

A configuration file (JSON, written by ``rrrnet tune``, read by ``fit``/``benchmark --config``)
holds overrides of the shared recipe and model, and per-method ones::

    {"recipe": {"lr": 0.0005, "epochs": 200},
     "model": {},
     "methods": {"D": {"dropout": 0.1}},
     "source": {"tuned on": "icdar-micro", "trials": 20}}

A method entry's keys are ``Recipe`` or ``ModelConfig`` fields (``seed``, in both, sets both).
"""
from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Any

from ..backbone import arch_spec
from ..errors import ConfigError
from ..training import strategies
from ..training.strategies import DEFAULT_DROPOUT, DROPOUT_RATES, REDUCED  # noqa: F401
from ..model import ModelConfig
from ..io import write_json
from ..recipe import DataSpec, Recipe, renamed

CONFIG_SECTIONS = ("recipe", "model", "methods", "source")
# A run's config.json is a configuration file too: these sections of it are read (data) or
# describe the run (classes, the calibrated shift it resolved) and are not options.
RUN_SECTIONS = ("data", "classes", "resolved_shift")

_RECIPE_FIELDS = frozenset(f.name for f in dataclasses.fields(Recipe))
_MODEL_FIELDS = frozenset(f.name for f in dataclasses.fields(ModelConfig)) - {"num_classes"}
_DATA_FIELDS = frozenset(f.name for f in dataclasses.fields(DataSpec))
_METHOD_FIELDS = ("blocks", "branches", "split_at", "freeze_stump", "dropout")  # what a method sets


def method_setup(method: str, recipe: Recipe | None = None, seed: int = 0,
                 dropout: float | None = None, weights: str | None = None,
                 arch: str = "resnet152") -> tuple[ModelConfig, Recipe]:
    """The model and recipe of ``method`` (A-E, :mod:`rrrnet.training.strategies`): ``recipe``
    (default: the paper's) with the method's changes, ``seed`` for both. ``dropout``: [D]'s
    rate (default 0.05); the other methods have none, so it is not used for them.
    ``weights``: the backbone's source (default ``imagenet``). ``arch``: the template (default
    the paper's ResNet-152; [A] and [B] keep all of its blocks)."""
    strategy = strategies.method(method)
    recipe = dataclasses.replace(recipe or Recipe(), seed=seed)
    base = ModelConfig(arch=arch, seed=seed, **({} if weights is None else {"weights": weights}))
    return (strategy.model(base, arch_spec(arch).blocks, dropout=dropout),
            strategy.recipe(recipe))


# ---------------------------------------------------------------------------------------------
# Configuration files.
# ---------------------------------------------------------------------------------------------

def load_config_file(path: str | os.PathLike) -> dict[str, Any]:
    """Read and check a configuration file; returns all four sections (empty when absent)."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"configuration file {path} does not exist") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ConfigError(f"could not read configuration file {path}: {err}") from None
    return check_config(data, str(path))


def check_config(data: Any, origin: str = "configuration") -> dict[str, Any]:
    """``data`` with every section present; unknown keys or bad values raise a ConfigError
    naming ``origin``."""
    if not isinstance(data, dict):
        raise ConfigError(f"{origin}: expected a JSON object with sections "
                          f"{', '.join(CONFIG_SECTIONS)}")
    _unknown(origin, "", data, CONFIG_SECTIONS + RUN_SECTIONS)
    config = {name: data.get(name) or {} for name in CONFIG_SECTIONS}
    if data.get("data"):   # a run's config.json: its split
        config["data"] = data["data"]
    if "classes" in data and isinstance(config["model"], dict):
        # a run's own config.json: its class count is its dataset's, not an option
        config["model"] = {k: v for k, v in config["model"].items() if k != "num_classes"}
    for name, value in config.items():
        if not isinstance(value, dict):
            raise ConfigError(f"{origin}: section {name!r} must be an object, got {value!r}")
    config["recipe"] = renamed(config["recipe"])  # files written before a rename still load
    config["methods"] = {m: renamed(e) if isinstance(e, dict) else e
                         for m, e in config["methods"].items()}
    _unknown(origin, "recipe.", config["recipe"], _RECIPE_FIELDS)
    _unknown(origin, "model.", config["model"], _MODEL_FIELDS)
    _unknown(origin, "data.", config.get("data", {}), _DATA_FIELDS)
    _unknown(origin, "methods.", config["methods"], strategies.methods())
    for method, entry in config["methods"].items():
        if not isinstance(entry, dict):
            raise ConfigError(f"{origin}: methods.{method} must be an object, got {entry!r}")
        _unknown(origin, f"methods.{method}.", entry, _RECIPE_FIELDS | _MODEL_FIELDS)
    # Values are checked by the dataclasses themselves, on top of the defaults.
    for method in (None, *config["methods"]):
        try:
            apply_config(config, method, Recipe(), ModelConfig(weights="none"))
        except (ConfigError, TypeError, ValueError) as err:
            where = f" (methods.{method})" if method else ""
            raise ConfigError(f"{origin}{where}: {err}") from None
    return config


def _unknown(origin: str, prefix: str, section: dict, known) -> None:
    unknown = sorted(set(section) - set(known))
    if unknown:
        raise ConfigError(f"{origin}: unknown key{'s' if len(unknown) > 1 else ''} "
                          f"{', '.join(prefix + k for k in unknown)}; known: "
                          f"{', '.join(sorted(known))}")


def write_config_file(path: str | os.PathLike, recipe: dict[str, Any],
                      model: dict[str, Any] | None = None, methods: dict[str, Any] | None = None,
                      source: dict[str, Any] | None = None) -> None:
    """Write a configuration file atomically, after the checks :func:`load_config_file` makes."""
    path = Path(path)
    data = {"recipe": dict(recipe), "model": dict(model or {}), "methods": dict(methods or {}),
            "source": dict(source or {})}
    check_config(data, str(path))
    path.parent.mkdir(parents=True, exist_ok=True)
    write_json(path, data)


def apply_config(config: dict[str, Any], method: str | None, recipe: Recipe,
                 model: ModelConfig | None) -> tuple[ModelConfig | None, Recipe]:
    """``recipe`` and ``model`` with the file's overrides: its ``recipe`` and ``model`` sections,
    then ``methods[method]`` (last, so a method's own setting wins). ``model`` None stays None
    (the model sections are then not applied)."""
    recipe_over = dict(config.get("recipe") or {})
    model_over = dict(config.get("model") or {})
    entry = (config.get("methods") or {}).get(method) or {} if method else {}
    for key, value in entry.items():
        if key in _RECIPE_FIELDS:
            recipe_over[key] = value
        if key in _MODEL_FIELDS:
            model_over[key] = value
    recipe = dataclasses.replace(recipe, **recipe_over)
    if model is not None:
        model = dataclasses.replace(model, **model_over)  # blocks: a list or "1,1,1,1" both parse
    return model, recipe
