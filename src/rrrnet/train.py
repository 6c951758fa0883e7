"""Train an RRR-Net with the paper's recipe: on your own model and data, or into a run folder.

Two layers, as in Torch-Pruning's and timm's APIs (the user keeps their model and data):

* :func:`train` trains any :class:`~rrrnet.recycle.BranchedResNet` (from :func:`rrrnet.build`,
  :func:`rrrnet.split`, :func:`rrrnet.load`) on a ``DataLoader`` of ready batches or on a
  ``Dataset`` of ``(image, label)`` pairs, and returns the trained model and its history.
* :func:`fit` is the CLI's ``rrrnet fit``: :func:`train` on a dataset folder, plus a run folder
  (:mod:`rrrnet.rundir`): configuration, history, atomic checkpoints after every epoch and exact
  resumption.

This module is the public face of :mod:`rrrnet.training` (the loop, its events, strategies and
callbacks); ``rrrnet.train(model, data)`` calls :func:`rrrnet.training.loop.train`.
"""
from __future__ import annotations

import torch  # noqa: F401  (tests patch rrrnet.train.torch.save)

from ._callable import callable_module
from .data import ImageDataset  # noqa: F401
from .evaluate import error_summary, evaluate_model, evaluate_split, is_dataset  # noqa: F401
from .recipe import BRANCH_VIEWS, HISTORY_ONLY, RENAMED, DataSpec, Recipe  # noqa: F401
from .rundir import load_checkpoint  # noqa: F401
from .training.callbacks import (EVAL_CACHE_BYTES, CSVLogger, EarlyStopping,  # noqa: F401
                                 MLflowLogger, TensorBoardLogger, bias_corrected_ema, new_ema)
from .training.data import TrainingImages  # noqa: F401
from .training.events import EVENTS, Callback, TrainState  # noqa: F401
from .training.fit import RUN_COMPARISON, FitResult, RunFolder, fit, run_config  # noqa: F401
from .training.loop import TrainingDiverged, TrainResult, train, train_step  # noqa: F401
from .training.loss import branch_loss  # noqa: F401
from .training.stump import (feature_cache, trained_part, warm_stump,  # noqa: F401
                             with_folded_stump)

averaged_part = trained_part  # the 0.1 name

callable_module(__name__, train)  # rrrnet.train(model, data) is this module, called
