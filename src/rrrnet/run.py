"""The one reader of a run folder: :class:`Run`.

    run = rrrnet.Run("runs/E")
    run.is_finished, run.config, run.classes, run.image_size, run.data   # config.json
    run.preprocessing                                        # image size, resize, normalisation
    run.metrics, run.history                                 # metrics.json, history.csv
    run.model                                                # model.pt, loaded once
    run.split("data/flowers").test                           # its parts (split.csv), images
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
        """The run's data options (``root``, ``layout``, ``split``, ``labels``, the micro
        split's ``train``, ``val``, ``test`` per class ...: :class:`rrrnet.recipe.DataSpec`'s
        fields; a run from before the data options has no ``layout``); empty when the run
        records none."""
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

    # -- the run's images ---------------------------------------------------------------------

    @property
    def split_path(self) -> Path:
        """``split.csv``: every image the run used, with its part (runs since issue 23)."""
        return self.path / "split.csv"

    def split(self, data, skip_bad_images: bool = False):
        """The run's train / val / test parts (a :class:`rrrnet.data.Split`) of ``data``: a
        dataset folder, a labels CSV, or :class:`~rrrnet.data.LabelledImages` loaded from one.

        * ``data`` is the dataset the run was trained on (the same folder or labels CSV once
          paths are resolved; a relative path the run recorded is taken from the current
          folder) and the run has ``split.csv``: exactly the images listed there, in their
          parts (a listed file that is gone is a DataError).
        * A run from before the data options (its ``config.json`` records no ``layout``): the
          per-class micro split of ``data`` (:func:`rrrnet.data.micro_split`), as always.
        * Any other folder: split as ``rrrnet fit`` would split it with the run's recorded data
          options (:func:`rrrnet.data.load_parts`: layout, split, seed, duplicates), so a
          ``train/ val/ test/`` folder gives its own parts and a ratio split the same
          stratified, seeded cut; a folder that cannot be split so is a one-line DataError
          saying what to give.

        The classes found must be the run's (:meth:`check_classes`)."""
        from .data import LabelledImages, load_dataset, read_split_file
        from .errors import DataError
        spec = self.data
        if not spec:
            raise RunError(f"{self.config_path} records no data split")
        folder, root, labels, trained = self._dataset_of(data)
        if trained and self.classes and not self.is_quantized and self.split_path.is_file():
            verify(self.split_path)
            try:
                return read_split_file(self.split_path, folder, self.classes)
            except DataError as err:
                raise DataError(f"{folder} has changed since {self.path} was trained: "
                                f"{_reason(err)}; restore it, or evaluate --split all (every "
                                f"image)") from None
        if "layout" not in spec:   # a run from before the data options
            dataset = data if isinstance(data, LabelledImages) else \
                load_dataset(data, skip_bad_images=skip_bad_images)
            self.check_classes(list(dataset.classes), data)
            return self._micro_split(dataset)
        from .data import load_parts
        try:
            parts = load_parts(root, layout=spec.get("layout", "auto"), split=spec.get("split"),
                               labels=labels, seed=spec.get("split_seed", 0),
                               micro_sizes=(spec["train"], spec["val"], spec["test"]),
                               allow_outside_files=spec.get("allow_outside_files", False),
                               keep_duplicates=spec.get("keep_duplicates", False))
        except DataError as err:
            raise DataError(f"{data} cannot be split as {self.path} was trained ("
                            f"{_split_text(spec)}): {_reason(err)}; give the dataset the run was "
                            f"trained on (evaluate: or --split all, every image)") from None
        self.check_classes(list(parts.classes), data)
        return parts

    def images(self, data, split: str = "test", skip_bad_images: bool = False):
        """The :class:`~rrrnet.data.LabelledImages` of part ``split`` (train, val or test) of
        ``data`` (:meth:`split`), or with ``all`` every image of ``data``: Meta-Album and
        class folders as :func:`rrrnet.data.load_dataset` reads them, ``train/ val/ test/``
        folders and labels CSVs every usable file listed (:func:`rrrnet.data.load_parts` in
        the run's layout, duplicates kept), in part order."""
        if split != "all":
            return getattr(self.split(data, skip_bad_images), split)
        from .data import LabelledImages, detect_layout, load_dataset, load_parts
        spec = self.data
        if isinstance(data, LabelledImages):
            images = data
        elif "layout" not in spec:   # no data options recorded: as always
            images = load_dataset(data, skip_bad_images=skip_bad_images)
        else:
            folder, root, labels, _ = self._dataset_of(data)
            outside = spec.get("allow_outside_files", False)
            layout = spec["layout"] if spec["layout"] != "auto" else \
                detect_layout(folder, None if labels is None else Path(labels))
            if layout in ("meta-album", "class-folders"):
                images = load_dataset(folder, skip_bad_images=skip_bad_images,
                                      allow_outside_files=outside)
            else:
                parts = load_parts(root, layout=layout, labels=labels, keep_duplicates=True,
                                   allow_outside_files=outside)
                every = [parts.train, parts.val, parts.test]
                images = LabelledImages(root=parts.root,
                                        paths=tuple(p for part in every for p in part.paths),
                                        labels=tuple(y for part in every for y in part.labels),
                                        classes=tuple(parts.classes), name=parts.train.name)
        self.check_classes(list(images.classes), data)
        return images

    def _dataset_of(self, data) -> tuple[Path, Any, Any, bool]:
        """(dataset folder, ``root`` and ``labels`` for :func:`rrrnet.data.load_parts`, whether
        it is the dataset the run was trained on) of ``data``: a folder, a labels CSV, or
        images loaded from a folder."""
        from .data import LabelledImages
        given = Path(data.root if isinstance(data, LabelledImages) else data)
        spec = self.data
        root, labels = spec.get("root"), spec.get("labels")
        if labels is None and root is not None and Path(root).suffix.lower() == ".csv":
            root, labels = None, root   # a labels CSV given as the dataset
        trained_folder = root if root is not None else \
            (str(Path(labels).parent) if labels is not None else None)

        def same(a, b) -> bool:
            return b is not None and os.path.realpath(a) == os.path.realpath(b)

        if given.suffix.lower() == ".csv" and not given.is_dir():   # a labels CSV
            trained = same(given, labels) if labels is not None else (
                given.name == "labels.csv" and same(given.parent, trained_folder))
            if trained:
                return Path(trained_folder), root, labels, True
            return given.parent, None, given, False
        if same(given, trained_folder):
            return given, given, labels, True
        return given, given, None, False

    def _micro_split(self, dataset):
        """The per-class micro split of a run from before the data options."""
        spec = self.data
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


def _reason(err: Exception) -> str:
    """A DataError's problem without its closing advice (``...; do this``), which is the
    advice of the command that raised it."""
    text = str(err)
    return text.rpartition("; ")[0] or text


def _split_text(spec: dict[str, Any]) -> str:
    """How a run's recorded data options split a dataset, in a few words."""
    split = spec.get("split")
    if split == "micro":
        how = f"micro split {spec['train']}/{spec['val']}/{spec['test']} per class"
    elif split:
        how = f"ratio split {'/'.join(f'{r:g}' for r in split)}, seed {spec.get('split_seed', 0)}"
    else:
        how = "the layout's own split"
    return f"layout {spec.get('layout', 'auto')}, {how}"
