"""rrrnet: Reuse, Reduce and Recycle a pretrained ResNet into a small, fast branch ensemble.

    import rrrnet
    model = rrrnet.build(arch="resnet152", blocks=(1, 1, 1, 1), branches=8, num_classes=20,
                         weights="imagenet")
    logits = model(images)                 # [branches, N, classes]
    probs = model.predict_proba(images)    # [N, classes], the average of the branch softmaxes
    print(rrrnet.cost(branches=8, num_classes=20, image_size=128).macs)
    rrrnet.save(model, "model.pt"); model = rrrnet.load("model.pt")

    result = rrrnet.train(model, train_loader, rrrnet.Recipe(epochs=30), eval_data=test_loader)
    result.model, result.history           # trained model (averaged weights in place), epochs

Training, data and evaluation load on first use (``rrrnet.train``, ``rrrnet.fit``,
``rrrnet.Recipe`` ...): ``import rrrnet`` loads only torch, numpy and the core.
"""
__version__ = "0.1.0"

from .backbone import ARCHS, ResNet, resnet  # noqa: E402
from .cost import CostReport, cost, format_table  # noqa: E402
from .errors import ConfigError, RRRNetError, WeightsError  # noqa: E402
from .model import ModelConfig, build, load, save  # noqa: E402
from .recycle import BranchedResNet, convert, plan_split, split  # noqa: E402
from .reduce import keep_blocks  # noqa: E402
from .weights import SOURCES, WeightSource, register_source, resolve  # noqa: E402

__all__ = ["ARCHS", "BranchedResNet", "ConfigError", "CostReport", "ModelConfig", "RRRNetError",
           "ResNet", "SOURCES", "WeightSource", "WeightsError", "build", "convert", "cost",
           "format_table", "keep_blocks", "load", "plan_split", "register_source", "resnet",
           "resolve", "save", "split", "__version__",
           # loaded on first use (see __getattr__)
           "DataSpec", "Recipe", "TrainResult", "evaluate_model", "fit", "train"]

# name -> (module, attribute); attribute None: the module itself
_LAZY = {"train": ("rrrnet.train", None), "fit": ("rrrnet.train", "fit"),
         "Recipe": ("rrrnet.train", "Recipe"), "DataSpec": ("rrrnet.train", "DataSpec"),
         "TrainResult": ("rrrnet.train", "TrainResult"),
         "evaluate_model": ("rrrnet.train", "evaluate_model")}


def __getattr__(name: str):
    """Training and data code (albumentations, OpenCV) load on first use, not on import."""
    if name not in _LAZY:
        raise AttributeError(f"module 'rrrnet' has no attribute {name!r}")
    import importlib
    module_name, attribute = _LAZY[name]
    module = importlib.import_module(module_name)
    return module if attribute is None else getattr(module, attribute)
