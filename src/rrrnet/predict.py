"""Predict on new images: files, folders and lists of files, into a CSV or JSON-lines file
(``rrrnet predict``).

    result = rrrnet.predict.predict("runs/E", ["photos/"], topk=3, abstain="entropy")
    result.rows      # one per image: file, prediction, probability, entropy,
                     # mutual_information, top1_label, top1_probability, ... conformal_set,
                     # abstain, error
    result.failed    # rows whose image could not be read (their ``error`` says why)
    write_rows(result.rows, "preds.csv")

The model is a run folder (its ``model.pt``, prepared for inference by
:func:`rrrnet.deploy.prepare`), a TorchScript or ONNX file of ``rrrnet export`` or an int8 ONNX
file of ``rrrnet quantize``: every one of them carries its class names and preprocessing
(:mod:`rrrnet.preprocessing`), so an exported file alone is enough.

Images are decoded on a pool of threads (PIL and NumPy release the GIL) a few batches ahead of
the model, which scores them in batches: decoding overlaps the model instead of adding to it
(``benchmarks/predict_throughput.py`` measures it). An image that cannot be read gets a row with
its ``error`` and the batch goes on.

Where the run has been calibrated (``rrrnet uncertainty``: ``RUN/uncertainty/uncertainty.json``,
or the calibration an exported file carries), each row has its ``conformal_set``: the classes
whose temperature-scaled probability p satisfies 1 - p <= the conformal threshold (split
conformal, LAC score; it holds the true class with probability >= 1 - alpha on images like the
calibration images). ``abstain`` marks rows whose uncertainty score is beyond the run's
selective-prediction threshold (the value that kept 80% of the evaluated images).
"""
from __future__ import annotations

import json
import os
import zipfile
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Sequence

import torch

from . import deploy
from .data import IMAGE_EXTENSIONS
from .data.files import is_hidden
from .errors import DataError, RunError
from .io import missing
from .metrics import decompose
from .preprocessing import Preprocessing
from .run import Run
from .uncertainty import SCORES, abstains, read_calibration

LIST_SUFFIXES = (".txt", ".lst", ".list")   # a text file of image paths, one per line
OUT_SUFFIXES = (".csv", ".jsonl")
BATCH_SIZE = 32
PREFETCH = 2                                # batches decoded ahead of the model


# ---------------------------------------------------------------------------------------------
# Which files
# ---------------------------------------------------------------------------------------------

def walk(folder: Path) -> list[Path]:
    """The image files under ``folder``, recursively, in sorted order: image extensions in any
    case; hidden or system files and folders (``.x``, ``Thumbs.db``, ``__MACOSX``) skipped."""
    found = []
    for here, folders, files in os.walk(folder, followlinks=True):
        folders[:] = sorted(f for f in folders if not is_hidden(f))
        for name in sorted(files):
            if not is_hidden(name) and Path(name).suffix.lower() in IMAGE_EXTENSIONS:
                found.append(Path(here) / name)
    return found


def read_list(path: Path) -> list[Path]:
    """The paths of a text file, one per line (blank lines and ``#`` comments skipped); a
    relative path is relative to the list's folder. A listed file that is missing or not an
    image still gets its row, with the error."""
    try:
        lines = path.read_text().splitlines()
    except (OSError, UnicodeDecodeError) as err:
        raise DataError(f"cannot read the list of images {path} ({err})") from None
    out = []
    for line in lines:
        line = line.strip()
        if line and not line.startswith("#"):
            entry = Path(line).expanduser()
            out.append(entry if entry.is_absolute() else path.parent / entry)
    return out


def image_paths(paths: Iterable[str | os.PathLike]) -> list[Path]:
    """The images that ``paths`` name: image files as given, folders walked (:func:`walk`),
    text files (``.txt``, ``.lst``, ``.list``) read as lists of paths (:func:`read_list`)."""
    paths = [Path(p) for p in paths]
    if not paths:
        raise DataError("give at least one image file, folder or list of paths")
    out: list[Path] = []
    for path in paths:
        if path.is_dir():
            found = walk(path)
            if not found:
                raise DataError(f"{path} holds no images (looked for {', '.join(IMAGE_EXTENSIONS)} "
                                f"in any case, in every sub-folder, hidden files skipped); give a "
                                f"folder with images")
            out += found
        elif path.is_file():
            out += read_list(path) if path.suffix.lower() in LIST_SUFFIXES else [path]
        else:
            what = missing(path, "image").split(" ", 1)[1]   # "PATH is a FIFO ...", "PATH does not exist"
            raise DataError(f"{what}; give image files, folders or a text file of image paths")
    if not out:
        raise DataError(f"no images in {', '.join(map(str, paths))}: the lists are empty")
    return out


# ---------------------------------------------------------------------------------------------
# Which model
# ---------------------------------------------------------------------------------------------

@dataclass
class Predictor:
    """A model ready to score normalised images, with what it needs to say what they are."""

    source: Path
    kind: str                                   # run folder, TorchScript, ONNX, int8 ONNX
    classes: list[str]
    preprocessing: Preprocessing
    forward: Callable[[torch.Tensor], torch.Tensor]   # images -> logits [b, N, classes]
    calibration: dict[str, Any] | None = None
    reads: list[Path] = field(default_factory=list)   # files it was read from

    @torch.inference_mode()
    def logits(self, images: torch.Tensor) -> torch.Tensor:
        out = self.forward(images)
        if out.dim() == 2:          # a plain classifier: one member
            out = out[None]
        if out.shape[-1] != len(self.classes):
            raise RunError(f"{self.source} predicts {out.shape[-1]} classes but names "
                           f"{len(self.classes)} ({self._names()}); the class names belong to "
                           f"another model: export it again from its run")
        return out.float()

    def _names(self) -> str:
        return ", ".join(self.classes[:5]) + (" ..." if len(self.classes) > 5 else "")


def is_torchscript(path: Path) -> bool:
    """A TorchScript archive (a zip with ``code/`` and ``constants.pkl``), as opposed to the
    ``torch.save`` zip of a ``model.pt``."""
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as archive:
        return any(n.endswith("/constants.pkl") or "/code/" in n for n in archive.namelist())


def open_predictor(source: str | os.PathLike, **options: bool) -> Predictor:
    """The model at ``source``: a run folder (or its ``model.pt``), a TorchScript or ONNX file of
    ``rrrnet export``, or an int8 ONNX file of ``rrrnet quantize``. ``options``:
    :func:`rrrnet.deploy.prepare`'s rewrites, for a run's model."""
    path = Path(source)
    if path.is_file() and path.name == "model.pt" and (path.parent / "config.json").is_file():
        path = path.parent               # a run's model file stands for its run
    if path.is_dir():
        run = Run(path).require_finished()
        if not run.classes:
            raise RunError(f"{run.config_path} names no classes; retrain the run with this rrrnet")
        _check_count(path, run.config["model"].get("num_classes"), run.classes,
                     f"{run.config_path} does not belong to its model.pt: retrain the run")
        model = deploy.prepare(run.model, image_size=run.image_size, **options)
        reads = [run.model_path, run.config_path]
        calibration = read_calibration(run.uncertainty_dir)
        if calibration is not None:
            reads.append(Path(calibration["source"]))
            reads.append(run.uncertainty_dir / "scores.csv")
        return Predictor(path, "run folder", list(run.classes), run.preprocessing, model,
                         calibration, reads)
    if not path.exists():
        raise RunError(f"{path} does not exist; give a run folder (rrrnet fit --out), or a file of "
                       f"rrrnet export or rrrnet quantize")
    if path.suffix.lower() == ".onnx":
        from .onnxfile import QuantizedModel
        model = QuantizedModel(path)
        _check_count(path, model.config.num_classes, model.classes)
        return Predictor(path, "int8 ONNX" if model.is_int8 else "ONNX", list(model.classes),
                         model.preprocessing, model, model.meta.get("calibration"), [path])
    if is_torchscript(path):
        module, meta = deploy.read_torchscript(path)
        if not meta.get("classes"):
            raise RunError(f"{path} names no classes (exported from a model file, not a run): "
                           f"export it from its run folder: rrrnet export RUN")
        _check_count(path, (meta.get("config") or {}).get("num_classes"), meta["classes"])
        return Predictor(path, "TorchScript", list(meta["classes"]), meta["preprocessing"],
                         module, meta.get("calibration"), [path])
    from .model import load
    load(path)   # a file of another kind or version says so here
    raise RunError(f"{path} is a model file without its run: it names no classes. Give its run "
                   f"folder, or export it from the run (rrrnet export RUN)")


def _check_count(source: Path, num_classes: int | None, classes: Sequence[str],
                 fix: str = "its class names belong to another model: export it again from "
                            "its run") -> None:
    if num_classes is not None and num_classes != len(classes):
        raise RunError(f"{source}: the model predicts {num_classes} classes but names "
                       f"{len(classes)}; {fix}")


# ---------------------------------------------------------------------------------------------
# Decoding, batched and ahead of the model
# ---------------------------------------------------------------------------------------------

def usable_cores() -> int:
    """The cores this process may run on (``taskset`` and container limits respected)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def decode(path: Path, preprocessing: Preprocessing) -> tuple[torch.Tensor | None, str]:
    """The model's input for one file, or None and why it cannot be read (never raises)."""
    try:
        return preprocessing.tensor(path), ""
    except DataError as err:
        return None, str(err).split("; ")[0]
    except Exception as err:  # anything PIL or NumPy may raise on a hostile file
        return None, f"cannot read {path} ({type(err).__name__}: {err})"


def decoded_batches(files: Sequence[Path], preprocessing: Preprocessing,
                    batch_size: int = BATCH_SIZE, workers: int | None = None,
                    prefetch: int = PREFETCH) -> Iterator[tuple[int, list[tuple[torch.Tensor | None, str]]]]:
    """``(start, [(tensor or None, error), ...])`` per batch of ``files``, decoded on
    ``workers`` threads, up to ``prefetch`` batches ahead of the one being consumed."""
    workers = workers or max(1, min(4, usable_cores()))
    starts = iter(range(0, len(files), batch_size))
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="rrrnet-decode") as pool:
        pending: deque = deque()

        def submit(start: int) -> None:
            pending.append((start, [pool.submit(decode, f, preprocessing)
                                    for f in files[start:start + batch_size]]))
        for start in islice(starts, prefetch + 1):
            submit(start)
        while pending:
            start, futures = pending.popleft()
            following = next(starts, None)
            if following is not None:
                submit(following)
            yield start, [f.result() for f in futures]


# ---------------------------------------------------------------------------------------------
# Rows
# ---------------------------------------------------------------------------------------------

def score_rows(logits: torch.Tensor, classes: Sequence[str], topk: int,
               calibration: dict[str, Any] | None, abstain: str | None) -> list[dict[str, Any]]:
    """The row of each image of branch logits ``[b, N, classes]`` (without ``file``)."""
    member = logits.softmax(-1)
    probs = member.mean(0)
    parts = decompose(member)
    k = min(topk, len(classes))
    top_p, top_i = probs.topk(k, dim=-1)
    sets = None
    if calibration is not None and calibration.get("conformal"):
        temperature = calibration.get("temperature") or 1.0
        scaled = (logits / temperature).softmax(-1).mean(0)
        threshold = calibration["conformal"]["threshold"]
        sets = torch.ones_like(scaled, dtype=torch.bool) if threshold is None \
            else (1 - scaled) <= threshold + 1e-12
    marks = None
    if abstain is not None:
        score = {"entropy": parts["total"], "mutual_information": parts["epistemic"],
                 "max_probability": probs.max(-1).values}[abstain]
        marks = abstains(score, calibration["selective"][abstain]["threshold"], abstain)
    rows = []
    for n in range(probs.shape[0]):
        row: dict[str, Any] = {"prediction": classes[int(top_i[n, 0])],
                               "probability": round(float(top_p[n, 0]), 6),
                               "entropy": round(float(parts["total"][n]), 6),
                               "mutual_information": round(float(parts["epistemic"][n]), 6)}
        for j in range(k):
            row[f"top{j + 1}_label"] = classes[int(top_i[n, j])]
            row[f"top{j + 1}_probability"] = round(float(top_p[n, j]), 6)
        if sets is not None:
            row["conformal_set"] = [classes[c] for c in sets[n].nonzero().flatten().tolist()]
        if marks is not None:
            row["abstain"] = bool(marks[n])
        row["error"] = ""
        rows.append(row)
    return rows


def columns(topk: int, classes: int, conformal: bool, abstain: bool) -> list[str]:
    """The columns of a predictions file, in order."""
    k = min(topk, classes)
    return ["file", "prediction", "probability", "entropy", "mutual_information",
            *[f"top{j}_{what}" for j in range(1, k + 1) for what in ("label", "probability")],
            *(["conformal_set"] if conformal else []), *(["abstain"] if abstain else []),
            "error"]


@dataclass
class Predictions:
    """What :func:`predict` returns: the rows (one per image, in input order), their columns
    and the model that made them."""

    rows: list[dict[str, Any]]
    columns: list[str]
    predictor: Predictor

    @property
    def failed(self) -> list[dict[str, Any]]:
        return [r for r in self.rows if r["error"]]


def predict(source: str | os.PathLike | Predictor, paths: Iterable[str | os.PathLike], *,
            topk: int = 3, abstain: str | None = None, batch_size: int = BATCH_SIZE,
            workers: int | None = None, files: Sequence[Path] | None = None,
            **options: bool) -> Predictions:
    """Score every image ``paths`` name (:func:`image_paths`) with the model at ``source``
    (:func:`open_predictor`; ``options``: its inference rewrites). ``abstain``: mark rows beyond
    the run's selective-prediction threshold of that score (entropy, mutual_information or
    max_probability). ``files``: the image list already resolved."""
    if topk < 1:
        raise RunError(f"--topk must be at least 1, got {topk}")
    if batch_size < 1:
        raise RunError(f"--batch-size must be at least 1, got {batch_size}")
    if abstain is not None and abstain not in SCORES:
        raise RunError(f"--abstain takes one of {', '.join(SCORES)}, got {abstain!r}")
    predictor = source if isinstance(source, Predictor) else open_predictor(source, **options)
    if abstain is not None:
        _check_abstain(predictor, abstain)
    files = list(files) if files is not None else image_paths(paths)
    classes = predictor.classes
    rows: list[dict[str, Any]] = []
    for _, decoded in decoded_batches(files, predictor.preprocessing, batch_size, workers):
        ready = [i for i, (x, _) in enumerate(decoded) if x is not None]
        scored = iter(score_rows(predictor.logits(torch.stack([decoded[i][0] for i in ready])),
                                 classes, topk, predictor.calibration, abstain)
                      if ready else [])
        for x, error in decoded:
            rows.append({"file": "", **next(scored)} if x is not None
                        else {"file": "", "error": error})
    for path, row in zip(files, rows):
        row["file"] = str(path)
    conformal = bool(predictor.calibration and predictor.calibration.get("conformal"))
    return Predictions(rows, columns(topk, len(classes), conformal, abstain is not None), predictor)


def _check_abstain(predictor: Predictor, score: str) -> None:
    selective = (predictor.calibration or {}).get("selective") or {}
    if score not in selective:
        how = ("run rrrnet uncertainty RUN DATA first (it writes RUN/uncertainty/uncertainty.json)"
               if predictor.kind == "run folder" else
               "run rrrnet uncertainty on its run, then export or quantize it again")
        raise RunError(f"--abstain needs the selective-prediction threshold of {score} of "
                       f"{predictor.source}, which has none: {how}")


# ---------------------------------------------------------------------------------------------
# The output file
# ---------------------------------------------------------------------------------------------

def check_out(out: str | os.PathLike, inputs: Iterable[str | os.PathLike],
              reads: Iterable[str | os.PathLike]) -> Path:
    """``out`` if it may be written: ending in .csv or .jsonl, not inside an input folder, and
    not the path of any file the command reads (images, lists, the model and its run files)."""
    out = Path(out)
    target = Path(os.path.realpath(out))
    for read in reads:
        if Path(os.path.realpath(read)) == target:
            raise RunError(f"--out {out} would overwrite {read}, which predict reads; choose "
                           f"another --out")
    for given in inputs:
        folder = Path(given)
        if folder.is_dir() and target.is_relative_to(Path(os.path.realpath(folder))):
            raise RunError(f"--out {out} is inside {folder}, the images being predicted; write "
                           f"it outside the dataset (e.g. --out {folder.name}-predictions"
                           f"{out.suffix} next to it)")
    if out.suffix.lower() not in OUT_SUFFIXES:
        raise RunError(f"--out {out}: give a file ending in .csv or .jsonl")
    if out.is_dir():
        raise RunError(f"--out {out} is a folder; give a file ending in .csv or .jsonl")
    return out


def write_rows(rows: Sequence[dict[str, Any]], out: str | os.PathLike,
               columns: Sequence[str] | None = None) -> Path:
    """``rows`` as CSV (``conformal_set`` joined by ``|``) or JSON lines, by ``out``'s suffix,
    atomically."""
    from .io import atomic_write, write_csv
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.suffix.lower() == ".jsonl":
        keys = list(columns) if columns else None
        text = "".join(json.dumps({k: r.get(k) for k in (keys or r)}) + "\n" for r in rows)
        atomic_write(out, lambda f: f.write(text), mode="w")
    else:
        flat = [{**r, "conformal_set": "|".join(r["conformal_set"])} if
                isinstance(r.get("conformal_set"), list) else r for r in rows]
        write_csv(out, flat, columns)
    return out


def predict_files(source: str | os.PathLike, paths: Sequence[str | os.PathLike],
                  out: str | os.PathLike | None = None, **kwargs: Any) -> Predictions:
    """:func:`predict`, then the rows written to ``out`` (checked first by :func:`check_out`,
    before any image is decoded)."""
    predictor = open_predictor(source, **{k: kwargs.pop(k) for k in list(kwargs)
                                          if k in ("fold_bn", "subsample", "channels_last",
                                                   "compile")})
    files = image_paths(paths)
    if out is not None:
        lists = [p for p in paths if Path(p).is_file() and Path(p).suffix.lower() in LIST_SUFFIXES]
        check_out(out, paths, [*predictor.reads, *lists, *files])
    result = predict(predictor, paths, files=files, **kwargs)
    if out is not None:
        write_rows(result.rows, out, result.columns)
    return result
