"""rrrnet: Reuse, Reduce and Recycle a pretrained ResNet into a small, fast branch ensemble.

    import rrrnet
    model = rrrnet.build(arch="resnet152", blocks=(1, 1, 1, 1), branches=8, num_classes=20,
                         weights="imagenet")
    logits = model(images)                 # [branches, N, classes]
    probs = model.predict_proba(images)    # [N, classes], the average of the branch softmaxes
    print(rrrnet.cost(branches=8, num_classes=20, image_size=128).macs)
    rrrnet.save(model, "model.pt"); model = rrrnet.load("model.pt")
    run = rrrnet.Run("runs/E"); run.config, run.metrics, run.history, run.model   # a run folder
    interp = rrrnet.interpret("runs/E", "data/flowers")  # confusion, per class, top losses

    result = rrrnet.train(model, train_loader, rrrnet.Recipe(epochs=30), eval_data=test_loader)
    result.model, result.history           # trained model (averaged weights in place), epochs

Every name loads its module on first use: ``import rrrnet`` itself loads nothing heavy (not even
torch), so that ``rrrnet --help`` answers at once; ``rrrnet.build`` loads torch and the core,
``rrrnet.train`` the training code (albumentations, OpenCV).
"""
__version__ = "0.1.0"

import importlib

from .errors import ConfigError, DataError, RRRNetError, RunError, WeightsError  # noqa: F401

# name -> the module that defines it; ``cost``, ``train``, ``uncertainty`` and ``interpret`` are
# their modules,
# made callable
# (see rrrnet._callable).
_EXPORTS = {
    **dict.fromkeys(("ARCHS", "ResNet", "resnet"), "backbone"),
    **dict.fromkeys(("CostReport", "cost", "format_table"), "cost"),
    **dict.fromkeys(("ModelConfig", "build", "load", "save"), "model"),
    **dict.fromkeys(("BranchedResNet", "convert", "plan_split", "split"), "recycle"),
    "keep_blocks": "reduce",
    "Run": "run",
    **dict.fromkeys(("SOURCES", "WeightSource", "register_source", "resolve"), "weights"),
    **dict.fromkeys(("DataSpec", "Recipe", "TrainResult", "evaluate_model", "fit", "train"),
                    "train"),
    "uncertainty": "uncertainty",
    "interpret": "interpret",
}

__all__ = sorted([*_EXPORTS, "ConfigError", "DataError", "RRRNetError", "RunError",
                  "WeightsError", "__version__"])


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'rrrnet' has no attribute {name!r}")
    module = importlib.import_module(f"rrrnet.{_EXPORTS[name]}")
    value = module if name == _EXPORTS[name] else getattr(module, name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_EXPORTS})
