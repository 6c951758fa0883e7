"""The parts of a dataset (train, val, test) and the account of every file.

:class:`Parts` is a :class:`~rrrnet.data.Split` (so everything that takes a split takes it) that
also knows how it was made and which files were left out and why. :func:`write_split_files`
writes the account as ``split.csv`` (``file,label,part``: every image used) and ``skipped.csv``
(``file,reason``: every file left out) into a run folder, never into the dataset folder.

The ratio split (:func:`ratio_split`) is stratified: each class is shuffled on its own
(``seed`` and the class name seed it, so adding images to one class leaves the others' split
as it was) and cut by the ratios. The rule for small classes: val and test each get
round(n x ratio) images of a class of n (halves round up), and train keeps the rest but at least
2 (val gives way first, then test, as test is scored at the end). A class of 3 images at
0.8/0.1/0.1 thus goes 3/0/0, and the summary says that it has no val or test image.
"""
from __future__ import annotations

import math
import os
import zlib
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from ..errors import DataError
from ..io import write_csv
from .dataset import LabelledImages, Split
from .files import SKIP_KINDS

PARTS = ("train", "val", "test")
# Folder names and CSV values of each part, compared in lower case.
PART_SYNONYMS = {"train": "train", "training": "train", "val": "val", "valid": "val",
                 "validation": "val", "test": "test", "testing": "test"}
DEFAULT_RATIOS = (0.8, 0.1, 0.1)
MIN_TRAIN_PER_CLASS = 2
# fit warns when the largest class has more than this many times the smallest's train images.
IMBALANCE_RATIO = 3
SPLIT_FILE = "split.csv"
SKIPPED_FILE = "skipped.csv"


def part_name(name: str) -> str | None:
    """``"Valid"`` -> ``"val"``; None for a name that is no part."""
    return PART_SYNONYMS.get(name.strip().lower())


@dataclass(frozen=True)
class SkippedFile:
    """A file left out: its path (relative to the dataset folder), why, and the kind of reason
    (a key of :data:`rrrnet.data.files.SKIP_KINDS`)."""

    file: str
    reason: str
    kind: str


@dataclass(frozen=True)
class Parts(Split):
    """train / val / test (val and test may be empty, never None) with their account.

    ``layout``: which layout was read; ``rule``: how the parts were made (the folders, the
    CSV's part column, a ratio split and its seed, the micro split); ``skipped``: every file
    left out; ``notes``: what the user should know (a class with no val or test image);
    ``split_used``: the rule as :func:`load_parts`'s ``split`` names it (None: the layout's own
    parts, ``"micro"``, or the (train, val, test) ratios), so that a configuration can record
    the split a default chose.
    """

    layout: str
    rule: str
    skipped: tuple[SkippedFile, ...] = ()
    notes: tuple[str, ...] = ()
    split_used: str | tuple[float, float, float] | None = None

    @property
    def classes(self) -> tuple[str, ...]:
        return self.train.classes

    @property
    def root(self) -> Path:
        return self.train.root

    def part(self, name: str) -> LabelledImages:
        return getattr(self, name)

    @property
    def used(self) -> list[dict[str, str]]:
        """One row (file, label, part) per image used, train then val then test."""
        return [{"file": relative(path, self.root), "label": self.classes[label], "part": name}
                for name in PARTS
                for path, label in zip(self.part(name).paths, self.part(name).labels)]

    def summary(self) -> dict:
        """Images per part and per class, duplicates removed, files skipped by kind, notes."""
        kinds = Counter(s.kind for s in self.skipped)
        return {
            "layout": self.layout,
            "rule": self.rule,
            "parts": {name: len(self.part(name)) for name in PARTS},
            "classes": {c: {name: self.part(name).counts()[i] for name in PARTS}
                        for i, c in enumerate(self.classes)},
            "duplicates_removed": kinds["duplicate"] + kinds["copy"],
            "copies_of_earlier_parts_removed": kinds["copy"],
            "skipped": dict(sorted(kinds.items())),
            "notes": list(self.notes),
        }

    @property
    def duplicates_removed(self) -> int:
        """Files left out as exact copies of an image kept (within a part or across parts)."""
        return sum(s.kind in ("duplicate", "copy") for s in self.skipped)

    def imbalance(self) -> tuple[str, int, str, int] | None:
        """(largest class, its train images, smallest class, its train images) when the
        largest has more than :data:`IMBALANCE_RATIO` times the smallest's; else None."""
        counts = sorted(zip(self.train.counts(), self.classes), key=lambda c: (-c[0], c[1]))
        (most, large), (least, small) = counts[0], counts[-1]
        return (large, most, small, least) if most > IMBALANCE_RATIO * least else None

    def table(self) -> str:
        """The summary as a short text table for printing before training."""
        summary = self.summary()
        width = max([5] + [len(c) for c in self.classes])
        lines = [f"{self.layout}, {self.rule}",
                 f"{'class':<{width}}  {'train':>6} {'val':>6} {'test':>6}"]
        for name, counts in summary["classes"].items():
            lines.append(f"{name:<{width}}  " + " ".join(f"{counts[p]:>6}" for p in PARTS))
        lines.append(f"{'total':<{width}}  " + " ".join(f"{summary['parts'][p]:>6}" for p in PARTS))
        if self.skipped:
            kinds = ", ".join(f"{n} {SKIP_KINDS.get(k, k)}" for k, n in summary["skipped"].items())
            lines.append(f"skipped {len(self.skipped)} files: {kinds} (see {SKIPPED_FILE})")
        if summary["duplicates_removed"]:
            lines.append(f"duplicates removed: {summary['duplicates_removed']} "
                         f"({summary['copies_of_earlier_parts_removed']} val/test copies of "
                         f"images in train or val)")
        lines += [f"note: {note}" for note in self.notes]
        return "\n".join(lines)


def relative(path: Path, root: Path) -> str:
    """``path`` relative to ``root`` with / separators (absolute when it is outside)."""
    try:
        return Path(path).relative_to(root).as_posix()
    except ValueError:
        return Path(path).as_posix()


def check_out_folder(parts: Parts, folder: str | os.PathLike) -> None:
    """A DataError when ``folder`` is (or would be) inside the dataset folder: rrrnet never
    writes there, and a later scan of the dataset would read what it wrote."""
    if Path(os.path.realpath(folder)).is_relative_to(os.path.realpath(parts.root)):
        raise DataError(f"{folder} is inside the dataset folder {parts.root}; rrrnet never writes "
                        f"there: choose an output folder outside it (--out)")


def write_split_files(parts: Parts, folder: str | os.PathLike) -> tuple[Path, Path]:
    """Write ``split.csv`` and ``skipped.csv`` into ``folder`` (created if needed) atomically;
    a folder inside the dataset folder is refused (:func:`check_out_folder`)."""
    folder = Path(folder)
    check_out_folder(parts, folder)
    folder.mkdir(parents=True, exist_ok=True)
    split_csv, skipped_csv = folder / SPLIT_FILE, folder / SKIPPED_FILE
    write_csv(split_csv, parts.used, columns=("file", "label", "part"))
    write_csv(skipped_csv, ({"file": s.file, "reason": s.reason} for s in parts.skipped),
              columns=("file", "reason"))
    return split_csv, skipped_csv


def read_split_file(path: str | os.PathLike, root: str | os.PathLike,
                    classes: Sequence[str]) -> Split:
    """The parts a run used, read back from its ``split.csv``: each file relative to ``root``
    (the dataset folder, wherever it is now), labels numbered by ``classes`` (the run's), in
    the file's order. A listed file that is missing, or a label not in ``classes``, is a
    DataError naming it."""
    import csv
    root, number = Path(root), {name: i for i, name in enumerate(classes)}
    with open(path, newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    picks: dict[str, tuple[list, list]] = {p: ([], []) for p in PARTS}
    for line, row in enumerate(rows, start=2):
        if row.get("label") not in number or row.get("part") not in picks:
            raise DataError(f"{path} line {line}: label {row.get('label')!r} or part "
                            f"{row.get('part')!r} is not the run's; it is not this run's {SPLIT_FILE}")
        file = root / row["file"]
        if not file.is_file():
            raise DataError(f"{path} line {line}: {file} not found; give the dataset folder "
                            f"the run was trained on")
        picks[row["part"]][0].append(file)
        picks[row["part"]][1].append(number[row["label"]])
    return Split(*(LabelledImages(root=root, paths=tuple(paths), labels=tuple(labels),
                                  classes=tuple(classes), name=root.name)
                   for paths, labels in picks.values()))


# --------------------------------------------------------------------------------------------
# The split rule: a layout's own parts, ratios, or the authors' micro split
# --------------------------------------------------------------------------------------------

def parse_split(value: str | Sequence[float] | None) -> str | tuple[float, float, float] | None:
    """``None``, ``"micro"``, ``"0.8,0.1,0.1"`` or three numbers -> None, ``"micro"`` or checked
    (train, val, test) ratios: each >= 0, train > 0, summing to 1 (within 1e-6)."""
    if value is None or (isinstance(value, str) and value.strip().lower() == "micro"):
        return None if value is None else "micro"
    try:
        ratios = tuple(float(v) for v in (value.split(",") if isinstance(value, str) else value))
    except (TypeError, ValueError):
        raise DataError(f"split must be 'micro' or three ratios train,val,test such as "
                        f"0.8,0.1,0.1; got {value!r}") from None
    if len(ratios) != 3 or not all(math.isfinite(r) and r >= 0 for r in ratios) or ratios[0] <= 0:
        raise DataError(f"split needs three ratios train,val,test, each >= 0 and train > 0, such "
                        f"as 0.8,0.1,0.1; got {value!r}")
    if abs(sum(ratios) - 1) > 1e-6:
        raise DataError(f"split ratios {','.join(f'{r:g}' for r in ratios)} sum to {sum(ratios):g}, "
                        f"not 1; give ratios that sum to 1, such as 0.8,0.1,0.1")
    return ratios


def ratio_counts(n: int, ratios: Sequence[float]) -> tuple[int, int, int]:
    """(train, val, test) images of a class of ``n`` (the rule in the module docstring)."""
    val, test = (math.floor(n * r + 0.5 + 1e-9) for r in ratios[1:])
    keep = min(MIN_TRAIN_PER_CLASS, n)
    while n - val - test < keep and (val or test):
        if val:
            val -= 1
        else:
            test -= 1
    return n - val - test, val, test


def ratio_split(data: LabelledImages, ratios: Sequence[float], seed: int = 0) -> tuple[Split, list[str]]:
    """Stratified, seeded split of ``data`` by (train, val, test) ``ratios``; also the notes
    on classes left without val or test images. A part that a non-zero ratio leaves empty for
    every class is a DataError."""
    ratios = parse_split(ratios)
    labels = np.asarray(data.labels)
    picks: dict[str, list[int]] = {name: [] for name in PARTS}
    notes = []
    for label, name in enumerate(data.classes):
        indices = np.flatnonzero(labels == label)
        np.random.default_rng([seed, zlib.crc32(name.encode())]).shuffle(indices)
        counts = ratio_counts(len(indices), ratios)
        starts = np.cumsum((0,) + counts)
        for part, start, end in zip(PARTS, starts, starts[1:]):
            picks[part] += indices[start:end].tolist()
        missing = [p for p, r, c in zip(PARTS[1:], ratios[1:], counts[1:]) if r > 0 and c == 0]
        if missing:
            notes.append(f"class {name!r} ({len(indices)} images) gets no {' or '.join(missing)} "
                         f"image at {format_ratios(ratios)}")
    for part, ratio in zip(PARTS[1:], ratios[1:]):
        if ratio > 0 and not picks[part]:
            raise DataError(f"split {format_ratios(ratios)} leaves {part} empty: the largest class of "
                            f"{data.root} has {max(data.counts())} images; raise the {part} ratio "
                            f"or set it to 0")
    return Split(*(data.subset(sorted(picks[p])) for p in PARTS)), notes


def format_ratios(ratios: Sequence[float]) -> str:
    return "/".join(f"{r:g}" for r in ratios)
