"""The one reader of a run folder: :class:`Run`.

    run = rrrnet.Run("runs/E")
    run.is_finished, run.config, run.classes, run.image_size, run.data   # config.json
    run.preprocessing                                        # image size, resize, normalisation
    run.metrics, run.history                                 # metrics.json, history.csv
    run.model                                                # model.pt, loaded once
    run.evaluate_dir, run.uncertainty_dir, run.export_dir    # what later commands write

Everything that opens a run (evaluate, predict, uncertainty, export, latency, quantize, the demo
and the benchmark) opens it here. Every file read is checked against the run's manifest first
(:func:`rrrnet.rundir.verify`): a damaged file is a :class:`RunError` naming it. Writing a run
(the lock, the manifest, checkpoints) is :mod:`rrrnet.rundir`'s.

An int8 ``.onnx`` file of ``rrrnet quantize`` stands for its run: its metadata carries the run's
model configuration, classes, image size and data split; it has no metrics or history.
"""
from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import Any

from .errors import RunError
from .io import read_csv, read_json
from .rundir import no_link, read_config, verify


class Run:
    """A run folder written by ``rrrnet fit`` (finished or not), or an int8 ``.onnx`` file of
    ``rrrnet quantize`` standing for its run. Files are read on first use, then kept."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.is_quantized = self.path.suffix == ".onnx" and self.path.is_file()
        if not self.is_quantized and not self.path.is_dir():
            raise RunError(f"{self.path} is not a run folder (no such folder)")

    def __repr__(self) -> str:
        state = "int8 file" if self.is_quantized else \
            "finished" if self.is_finished else "unfinished"
        return f"Run({str(self.path)!r}, {state})"

    # -- files ---------------------------------------------------------------------------------

    @property
    def config_path(self) -> Path:
        return self.path / "config.json"

    @property
    def model_path(self) -> Path:
        """``model.pt`` (the int8 file itself for an int8 run)."""
        return self.path if self.is_quantized else self.path / "model.pt"

    @property
    def metrics_path(self) -> Path:
        return self.path / "metrics.json"

    @property
    def history_path(self) -> Path:
        return self.path / "history.csv"

    @property
    def is_finished(self) -> bool:
        """True when the run holds its trained model (an int8 file always does)."""
        return self.is_quantized or self.model_path.is_file()

    def require_finished(self) -> "Run":
        """This run, or a :class:`RunError` when training has not finished or when its final
        files (``config.json``, ``model.pt``, ``metrics.json``) are missing or damaged."""
        if not self.is_finished:
            hint = (" (training did not finish: rrrnet fit ... --resume)"
                    if (self.path / "checkpoint.pt").exists() else "")
            raise RunError(f"{self.path} holds no trained model (model.pt){hint}")
        if not self.is_quantized:
            _ = self.config  # read and checked
            for path in (self.model_path, self.metrics_path):
                if path.exists():
                    verify(path)
        return self

    # -- what the run says ---------------------------------------------------------------------

    @functools.cached_property
    def config(self) -> dict[str, Any]:
        """``config.json``: ``model``, ``recipe``, ``data`` (the split) and ``classes``. For an
        int8 file, what its metadata says in the same form."""
        if self.is_quantized:
            return self.model.run_config()
        return read_config(self.path)

    @property
    def classes(self) -> list[str] | None:
        return self.config.get("classes")

    @property
    def image_size(self) -> int:
        """The side of the training images, in pixels."""
        return int(self.config["recipe"].get("image_size") or 128)

    @property
    def resize(self) -> str:
        """How the training images were made square (squash, crop or pad)."""
        return str(self.config["recipe"].get("resize") or "squash")

    @property
    def preprocessing(self):
        """How an image file becomes the model's input
        (:class:`rrrnet.preprocessing.Preprocessing`): the run's image size and resize mode,
        ImageNet normalisation."""
        from .preprocessing import Preprocessing
        if self.is_quantized:
            return self.model.preprocessing
        return Preprocessing(image_size=self.image_size, resize=self.resize)

    @property
    def data(self) -> dict[str, Any]:
        """The dataset and per-class split sizes (``root``, ``train``, ``val``, ``test`` ...);
        empty when the run records none."""
        return dict(self.config.get("data") or {})

    @functools.cached_property
    def metrics(self) -> dict[str, Any]:
        """``metrics.json`` (the final test metrics); empty before the run finishes."""
        if self.is_quantized or not self.metrics_path.exists():
            return {}
        verify(self.metrics_path)
        return read_json(self.metrics_path, "the run's metrics")

    @property
    def history(self) -> list[dict[str, Any]]:
        """``history.csv``, one row per finished epoch (read afresh: a running fit adds rows)."""
        if self.is_quantized or not self.history_path.exists():
            return []
        return read_csv(self.history_path)

    @functools.cached_property
    def model(self):
        """The trained model (:func:`rrrnet.model.load` on ``model.pt``, checked against the
        manifest), or the :class:`~rrrnet.onnxfile.QuantizedModel` of an int8 file."""
        if self.is_quantized:
            from .onnxfile import QuantizedModel
            return QuantizedModel(self.path)
        self.require_finished()
        from .model import load
        return load(self.model_path)

    def check_classes(self, classes: list[str], where: Any) -> None:
        """A :class:`RunError` unless dataset ``where`` has the classes the run was trained on,
        in the same order."""
        trained = self.classes
        if trained is not None and list(trained) != list(classes):
            extra = [c for c in classes if c not in trained]
            missing = [c for c in trained if c not in classes]
            if extra or missing:
                detail = (f"classes not in the run: {extra[:10]}" if extra else "") + \
                         ("; " if extra and missing else "") + \
                         (f"classes of the run missing here: {missing[:10]}" if missing else "")
            else:
                first = next(i for i, (a, b) in enumerate(zip(trained, classes)) if a != b)
                detail = (f"the same classes in another order (position {first}: "
                          f"{classes[first]!r} here, {trained[first]!r} in the run)")
            raise RunError(f"{where} does not have the classes the run was trained on: {detail}; "
                           f"evaluate on a dataset with the same classes")
        predicted = self.config["model"].get("num_classes")
        if predicted is not None and predicted != len(classes):
            raise RunError(f"{where} has {len(classes)} classes, the model predicts {predicted}")

    def split(self, dataset):
        """The run's per-class split (:func:`rrrnet.data.micro_split`) of ``dataset``."""
        spec = self.data
        if not spec:
            raise RunError(f"{self.config_path} records no data split")
        from .data import micro_split
        from .errors import DataError
        try:
            return micro_split(dataset, train=spec["train"], val=spec["val"], test=spec["test"])
        except DataError as err:   # its advice (--train/--test) is fit's, not this command's
            raise DataError(f"{dataset.root} cannot be split as {self.path} was trained "
                            f"({spec['train']} train + {spec['val']} val + {spec['test']} test "
                            f"images per class): {str(err).split(': ', 1)[-1].split('; ask')[0]}; "
                            f"give the dataset the run was trained on (evaluate: or --split all, "
                            f"every image)") from None

    # -- where later commands write --------------------------------------------------------------

    def _beside(self, name: str) -> Path:
        # inside a run folder; beside an int8 file, named after it
        # (a symbolic link there is refused: nothing is written through one)
        return no_link(self.path.with_name(f"{self.path.stem}.{name}") if self.is_quantized
                       else self.path / name)

    @property
    def evaluate_dir(self) -> Path:
        """``evaluate/``: ``rrrnet evaluate``'s metrics files."""
        return self._beside("evaluate")

    def evaluate_path(self, data: str | os.PathLike, split: str) -> Path:
        return self.evaluate_dir / f"{Path(data).name}-{split}.json"

    @property
    def uncertainty_dir(self) -> Path:
        """``uncertainty/``: ``rrrnet uncertainty``'s report, scores and figures."""
        return self._beside("uncertainty")

    @property
    def export_dir(self) -> Path:
        """``export/``: ``rrrnet export``'s TorchScript and ONNX files."""
        return self._beside("export")
