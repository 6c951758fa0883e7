"""Your own dataset, as it is: recognise its layout, list every file, and make the parts.

The layouts (:data:`LAYOUTS`; ``auto`` recognises them in this order):

* ``csv``: a labels CSV with columns ``file,label[,part]`` (header names in any case; a UTF-8
  byte-order mark is fine). Paths are relative to ``root`` when it is given, else to the CSV's
  folder. ``part`` is train, val or test (or valid, validation, testing). A ``labels.csv``
  with ``file,label`` columns and no ``info.json`` is this layout too.
* ``meta-album``: ``labels.csv`` + ``info.json`` + ``images/`` (the paper's benchmark). Its
  default split is the authors' per-class micro split (:func:`rrrnet.data.micro_split`), made
  exactly as before, so the paper's images are picked.
* ``split-folders``: ``ROOT/{train,val,test}/CLASS/*``; val and test are optional, and valid,
  validation, testing (any case) count.
* ``class-folders``: ``ROOT/CLASS/*``, split by ratio (default 0.8/0.1/0.1, stratified and
  seeded: :func:`rrrnet.data.parts.ratio_split`).

In the folder layouts a class is every file under its folder, sub-folders included (as
torchvision's ImageFolder and Keras do), and classes are sorted by name; in a CSV they are sorted
by name too; in Meta-Album they keep their order of first appearance in labels.csv.

Every file is accounted for (:class:`~rrrnet.data.parts.Parts`): each one listed is checked
(:func:`rrrnet.data.files.check_file`), and the ones left out (hidden, not an image, empty,
unreadable or truncated, a link out of the folder, a duplicate) are listed with the reason.
Duplicates are found by one rule for every layout: the SHA-256 of the bytes. Within a part the
first copy (in path order) is kept; an image of val or test whose bytes are in train (or, for
test, in val) is removed from val or test, so that no image is scored that was trained on. With
a ratio split duplicates are removed before splitting; with the micro split after it, so that
the authors' split is kept for every other image. ``keep_duplicates`` keeps every copy
instead (listed in the notes): the paper's benchmark does, so that its cells keep the images
they were trained and scored on before duplicates were removed.

Problems the user must fix raise :class:`~rrrnet.errors.DataError` naming the file or class and
the fix. Nothing is ever written into the dataset folder.
"""
from __future__ import annotations

import csv
import os
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

from ..errors import DataError
from .dataset import (LabelledImages, _check_columns, _read_info_json, _read_labels_csv,
                      micro_split)
from .files import SKIP_KINDS, FileCheck, check_files, how_related, is_hidden
from .meta_album import IMAGES_DIR, INFO_FILE, LABELS_FILE
from .parts import (DEFAULT_RATIOS, MIN_TRAIN_PER_CLASS, PARTS, Parts, SkippedFile,
                    format_ratios, parse_split, part_name, ratio_split, relative)

LAYOUTS = ("auto", "csv", "meta-album", "split-folders", "class-folders")
CSV_COLUMNS = ("file", "label", "part")
DEFAULT_MICRO_SIZES = (20, 0, 20)


@dataclass
class _Entry:
    """A listed file: its path, class name, part (None: to be split) and the group (a class
    folder) whose emptiness is an error."""

    path: Path
    label: str
    part: str | None
    group: Path | None = None
    check: FileCheck | None = None


@dataclass
class _Listing:
    root: Path
    name: str
    entries: list[_Entry]
    skipped: list[SkippedFile] = field(default_factory=list)
    class_order: list[str] | None = None   # None: sorted by name
    has_parts: bool = False
    class_folders: list[Path] = field(default_factory=list)


def load_parts(root: str | os.PathLike | None = None, *, layout: str = "auto",
               split: str | Sequence[float] | None = None, labels: str | os.PathLike | None = None,
               seed: int = 0, micro_sizes: tuple[int, int, int | None] = DEFAULT_MICRO_SIZES,
               allow_outside_files: bool = False, keep_duplicates: bool = False,
               on_progress: Callable[[int, int], None] | None = None) -> Parts:
    """The train / val / test parts of a dataset in any layout, with every file accounted for.

    ``root``: the dataset folder (or a labels CSV). ``layout``: one of :data:`LAYOUTS`.
    ``split``: None (the layout's own parts; else the micro split for Meta-Album and
    :data:`~rrrnet.data.parts.DEFAULT_RATIOS` for the others), ``"micro"`` (sizes
    ``micro_sizes`` = train, val, test per class; test None: the rest) or (train, val, test)
    ratios (a tuple or ``"0.8,0.1,0.1"``); a layout with its own parts refuses a split.
    ``labels``: a labels CSV (the csv layout). ``seed``: of the ratio split.
    ``allow_outside_files``: use files that resolve outside the dataset folder.
    ``keep_duplicates``: keep exact copies (and a val or test image that is also in train)
    instead of leaving them out; the notes count them.
    ``on_progress(done, total)``: called as files are checked.
    """
    root, labels = _locate(root, labels)
    layout = detect_layout(root, labels) if layout == "auto" else _checked_layout(layout)
    if layout == "csv" and labels is None:
        labels = _default_labels_csv(root)
    listing = _LISTERS[layout](root, labels, allow_outside_files)
    rule = _split_rule(listing, layout, split, micro_sizes)
    checks = check_files([e.path for e in listing.entries], listing.root, allow_outside_files,
                         on_progress)
    for entry, check in zip(listing.entries, checks):
        entry.check = check
    _check_class_folders(listing)
    skipped = listing.skipped + [SkippedFile(relative(e.path, listing.root), e.check.reason, e.check.kind)
                                 for e in listing.entries if not e.check.usable]
    usable = [e for e in listing.entries if e.check.usable]
    try:
        return _make_parts(listing, layout, rule, usable, skipped, seed, keep_duplicates)
    except DataError as error:
        raise _with_left_out(error, listing) from None


def detect_layout(root: Path, labels: Path | None = None) -> str:
    """Which layout ``root`` is in (see the module docstring); DataError when none fits."""
    if labels is not None:
        return "csv"
    if (root / LABELS_FILE).is_file():
        plain = not (root / INFO_FILE).is_file() and _has_csv_columns(root / LABELS_FILE)
        return "csv" if plain else "meta-album"
    folders = [f for f in _children(root) if f.is_dir() and not is_hidden(f.name)]
    if (root / INFO_FILE).is_file() or [f.name for f in folders] == [IMAGES_DIR]:
        return "meta-album"
    parts = sorted(f.name + "/" for f in folders if part_name(f.name))
    if any(part_name(f.name) == "train" for f in folders):
        return "split-folders"
    if parts:
        raise DataError(f"{root} has {', '.join(parts)} but no train/ folder; add train/CLASS/ "
                        f"folders of images, or pass --layout class-folders if these are classes")
    if folders:
        return "class-folders"
    raise DataError(f"{root} holds no folders: put the images in train/CLASS/, val/CLASS/, "
                    f"test/CLASS/ or CLASS/ folders, or list them in a CSV (--labels FILE.csv)")


# --------------------------------------------------------------------------------------------
# Where the dataset is
# --------------------------------------------------------------------------------------------

def _locate(root, labels) -> tuple[Path, Path | None]:
    """(dataset folder, labels CSV or None): a CSV given as root is the labels CSV, and its
    folder is the root unless one is given."""
    if labels is None and root is not None and Path(root).suffix.lower() == ".csv":
        root, labels = None, root
    if labels is not None:
        labels = Path(labels)
        if not labels.is_file():
            raise DataError(f"labels CSV {labels} does not exist; check the path")
        root = labels.parent if root is None else root
    if root is None:
        raise DataError("no dataset given: name a dataset folder or a labels CSV")
    root = Path(os.path.normpath(root))
    if not root.is_dir():
        from ..io import missing   # a FIFO or a device is not called "does not exist"
        raise DataError(f"{missing(root, 'dataset folder', 'a folder')}; check the path")
    return root, labels


def _checked_layout(layout: str) -> str:
    if layout not in LAYOUTS:
        raise DataError(f"layout must be one of {', '.join(LAYOUTS)}, got {layout!r}")
    return layout


def _default_labels_csv(root: Path) -> Path:
    if (root / LABELS_FILE).is_file():
        return root / LABELS_FILE
    raise DataError(f"the csv layout needs a labels CSV and {root} has no {LABELS_FILE}; "
                    f"name one with --labels FILE.csv")


def _children(folder: Path) -> list[Path]:
    return sorted(folder.iterdir(), key=lambda p: p.name)


# --------------------------------------------------------------------------------------------
# Listing the files of each layout
# --------------------------------------------------------------------------------------------

def _list_split_folders(root: Path, labels, allow_outside: bool) -> _Listing:
    """ROOT/{train,val,test}/CLASS/**: one class tree per part folder."""
    listing = _Listing(root, root.name, [], has_parts=True)
    part_folders: dict[str, Path] = {}
    for child in _children(root):
        part = part_name(child.name) if child.is_dir() and not child.is_symlink() else None
        if part is None:
            why = "not a part folder (train, val, test)" if child.is_dir() else "not in a class folder"
            listing.skipped.append(_left_out(child, root, why))
        elif part in part_folders:
            raise DataError(f"{root} has both {part_folders[part].name}/ and {child.name}/, two "
                            f"names of {part}; merge them into one folder")
        else:
            part_folders[part] = child
    for part in PARTS:
        if part in part_folders:
            _list_class_tree(part_folders[part], part, listing)
    return listing


def _list_class_folders(root: Path, labels, allow_outside: bool) -> _Listing:
    """ROOT/CLASS/**: one class tree, to be split."""
    listing = _Listing(root, root.name, [])
    _list_class_tree(root, None, listing)
    return listing


def _list_class_tree(folder: Path, part: str | None, listing: _Listing) -> None:
    """Every file under each class folder of ``folder``; other files and folders are skipped."""
    classes = 0
    for child in _children(folder):
        if child.is_dir() and not child.is_symlink() and not is_hidden(child.name):
            classes += 1
            listing.class_folders.append(child)
            for path in _walk_files(child, listing):
                listing.entries.append(_Entry(path, child.name, part, group=child))
        else:
            listing.skipped.append(_left_out(child, listing.root, "not in a class folder"))
    if not classes:
        raise DataError(f"{folder} holds no class folders; put the images of each class in "
                        f"{folder}/CLASS/, or remove the folder")


def _walk_files(folder: Path, listing: _Listing) -> list[Path]:
    """Files under ``folder`` in path order; hidden and linked sub-folders are skipped whole."""
    files = []
    for top, folders, names in os.walk(folder):
        for name in sorted(folders):
            sub = Path(top) / name
            if is_hidden(name) or sub.is_symlink():
                listing.skipped.append(_left_out(sub, listing.root, ""))
        folders[:] = sorted(n for n in folders if not is_hidden(n) and not (Path(top) / n).is_symlink())
        files += [Path(top) / name for name in names]
    return sorted(files, key=lambda p: p.as_posix())


def _left_out(path: Path, root: Path, why: str) -> SkippedFile:
    """The row of a file or folder that is not read: hidden, a link to a folder, misplaced."""
    if path.is_dir() and not path.is_symlink():
        count = sum(len(names) for _, _, names in os.walk(path))
        what = "hidden or system folder" if is_hidden(path.name) else f"folder {why}"
        return SkippedFile(relative(path, root) + "/", f"{what}; its {count} files are not read", "folder")
    if path.is_symlink() and path.is_dir():
        return SkippedFile(relative(path, root) + "/", f"symbolic link to the folder "
                           f"{os.path.realpath(path)}; links to folders are not followed", "folder")
    if is_hidden(path.name):
        return SkippedFile(relative(path, root), f"{SKIP_KINDS['hidden']} ({path.name})", "hidden")
    return SkippedFile(relative(path, root), f"{why}; move it into one", "misplaced")


def _list_meta_album(root: Path, labels, allow_outside: bool) -> _Listing:
    """labels.csv (columns named in info.json) listing the files of images/, in its order."""
    labels_csv = root / LABELS_FILE
    if not labels_csv.is_file():
        raise DataError(f"{labels_csv} not found: a Meta-Album dataset folder needs labels.csv "
                        f"(columns FILE_NAME,CATEGORY,SUPER_CATEGORY), info.json and images/")
    header, rows = _read_labels_csv(labels_csv)
    info = _read_info_json(root / INFO_FILE, header)
    columns = (info["image_column_name"], info["category_column_name"], None)
    _check_columns(labels_csv, header, list(columns[:2]))
    images = root / IMAGES_DIR
    if not images.is_dir():
        raise DataError(f"image folder {images} not found; put the files listed in {labels_csv} there")
    entries = _csv_entries(labels_csv, rows, columns, images, root, allow_outside)
    listing = _Listing(root, str(info.get("dataset_name") or root.name), entries,
                       class_order=list(dict.fromkeys(e.label for e in entries)))
    listed = {e.path for e in entries}
    listing.skipped += [SkippedFile(relative(p, root), SKIP_KINDS["unlisted"], "unlisted")
                        for p in _walk_files(images, listing) if p not in listed]
    return listing


def _list_csv(root: Path, labels: Path, allow_outside: bool) -> _Listing:
    """A labels CSV ``file,label[,part]``, paths relative to ``root``."""
    header, rows = _read_csv_table(labels)
    columns = ("file", "label", "part" if "part" in header else None)
    entries = _csv_entries(labels, rows, columns, root, root, allow_outside)
    listing = _Listing(root, root.name, entries, has_parts=columns[2] is not None)
    if listing.has_parts and not any(e.part == "train" for e in entries):
        raise DataError(f"{labels}: no row has part train; mark the training images train")
    return listing


_LISTERS = {"split-folders": _list_split_folders, "class-folders": _list_class_folders,
            "meta-album": _list_meta_album, "csv": _list_csv}


# --------------------------------------------------------------------------------------------
# Labels CSVs
# --------------------------------------------------------------------------------------------

def _read_csv_table(path: Path) -> tuple[list[str], list[tuple[int, dict]]]:
    """Header (stripped, lower case) and (line, row) pairs of a labels CSV; a UTF-8 BOM is
    dropped, a repeated or missing column is a DataError."""
    try:
        with open(path, newline="", encoding="utf-8-sig") as handle:
            reader = csv.reader(handle)
            header = [name.strip().lower() for name in next(reader, [])]
            rows = [(reader.line_num, dict(zip(header, row))) for row in reader if any(row)]
    except (csv.Error, UnicodeDecodeError) as error:
        raise DataError(f"cannot read {path} as CSV ({error}); save it as UTF-8 CSV") from None
    repeated = sorted(name for name, n in Counter(header).items() if n > 1)
    if repeated:
        raise DataError(f"{path}: the header names column {', '.join(repeated)} more than once; "
                        f"keep one column of each name")
    missing = [name for name in CSV_COLUMNS[:2] if name not in header]
    if missing:
        raise DataError(f"{path} has no column {', '.join(missing)} (its header is "
                        f"{','.join(header) or 'empty'}); it needs the header file,label or file,label,part")
    if not rows:
        raise DataError(f"{path} has a header but no rows; add one line per image")
    return header, rows


def _has_csv_columns(path: Path) -> bool:
    try:
        with open(path, newline="", encoding="utf-8-sig") as handle:
            header = {name.strip().lower() for name in next(csv.reader(handle), [])}
    except (OSError, csv.Error, UnicodeDecodeError):
        return False
    return {"file", "label"} <= header


def _csv_entries(csv_path: Path, rows: list[tuple[int, dict]], columns: tuple, base: Path,
                 root: Path, allow_outside: bool) -> list[_Entry]:
    """One entry per row: file (relative to ``base``) and label filled in, part valid, path
    inside ``root``, each file listed once and present."""
    file_column, label_column, part_column = columns
    entries, first_line, missing = [], {}, []
    inside = Path(os.path.normpath(os.path.abspath(root)))
    for line, row in rows:
        file, label = _cell(csv_path, line, row, file_column), _cell(csv_path, line, row, label_column)
        part = _part(csv_path, line, row, part_column) if part_column else None
        path = Path(os.path.normpath(base / file))
        if not allow_outside and not Path(os.path.abspath(path)).is_relative_to(inside):
            raise DataError(f"{csv_path} line {line}: {file} is outside the dataset folder {root}; "
                            f"move it inside, give --root a folder that holds it, or pass "
                            f"--allow-outside-files")
        real = os.path.realpath(path)
        if real in first_line:
            raise DataError(f"{csv_path} lines {first_line[real]} and {line} both list {file} "
                            f"(the same file); delete one of the two lines")
        first_line[real] = line
        if not path.exists() and not path.is_symlink():
            missing.append(f"line {line}: {file}")
        entries.append(_Entry(path, label, part))
    if missing:
        raise DataError(f"{csv_path}: {len(missing)} listed files not found ({'; '.join(missing[:3])}"
                        f"{' ...' if len(missing) > 3 else ''}); paths are relative to {base}: "
                        f"fix them or delete the lines")
    return entries


def _cell(csv_path: Path, line: int, row: dict, column: str) -> str:
    value = (row.get(column) or "").strip()
    if not value:
        raise DataError(f"{csv_path} line {line}: empty {column}; fill it in or delete the line")
    return value


def _part(csv_path: Path, line: int, row: dict, column: str) -> str:
    value = _cell(csv_path, line, row, column)
    part = part_name(value)
    if part is None:
        raise DataError(f"{csv_path} line {line}: part {value!r} is not train, val or test "
                        f"(valid, validation, testing also count); fix the value")
    return part


# --------------------------------------------------------------------------------------------
# From the usable files to the parts
# --------------------------------------------------------------------------------------------

def _split_rule(listing: _Listing, layout: str, split, micro_sizes) -> tuple:
    """("parts", text) | ("ratio", ratios) | ("micro", sizes): how the parts are made."""
    split = parse_split(split)
    if listing.has_parts:
        if split is not None:
            raise DataError(f"{listing.root} ({layout}) has its own train/val/test parts; leave out "
                            f"the split (--split), or point at a folder without parts")
        return ("parts", "parts from its folders" if layout == "split-folders"
                else "parts from the CSV's part column")
    if split == "micro" or (split is None and layout == "meta-album"):
        return ("micro", tuple(micro_sizes))
    return ("ratio", split or DEFAULT_RATIOS)


def _make_parts(listing: _Listing, layout: str, rule: tuple, usable: list[_Entry],
                skipped: list[SkippedFile], seed: int, keep: bool) -> Parts:
    kind, _ = rule
    if kind == "parts":
        by_part, duplicates, kept = _dedupe(_by_part(usable), listing.root, keep)
        return _assemble(listing, layout, rule[1], by_part, skipped + duplicates, [], kept, None)
    if kind == "ratio":
        by_part, duplicates, kept = _dedupe({None: usable}, listing.root, keep)
        pool = _labelled(listing, by_part[None], _class_order(listing, by_part[None]))
        _check_train_classes(pool.classes, {None: by_part[None]}, what="images")
        split, notes = ratio_split(pool, rule[1], seed)
        text = f"ratio split {format_ratios(rule[1])} (seed {seed})"
        return _assemble(listing, layout, text, _entries_of(split, by_part[None]),
                         skipped + duplicates, notes, kept, rule[1])
    return _micro_parts(listing, layout, usable, skipped, rule[1], keep)


def _micro_parts(listing, layout, usable, skipped, sizes, keep: bool) -> Parts:
    """The authors' micro split of the listing, in listing order; duplicates removed after it."""
    pool = _labelled(listing, usable, _class_order(listing, usable))
    split = micro_split(pool, *sizes)
    by_part, duplicates, kept = _dedupe(_entries_of(split, usable), listing.root, keep)
    text = f"micro split {sizes[0]}/{sizes[1]}/{'rest' if sizes[2] is None else sizes[2]} per class"
    return _assemble(listing, layout, text, by_part, skipped + duplicates, [], kept, "micro")


def _dedupe(by_part: dict, root: Path, keep: bool) -> tuple[dict, list[SkippedFile], list[str]]:
    """:func:`_drop_duplicates`, or with ``keep`` every file kept and a note counting the
    copies that would have been left out."""
    kept, dropped = _drop_duplicates(by_part, root)
    if not keep:
        return kept, dropped, []
    if not dropped:
        return by_part, [], []
    copies = sum(d.kind == "copy" for d in dropped)
    return by_part, [], [f"{len(dropped)} exact duplicate(s) kept as asked ({copies} of them val "
                         f"or test images also in train or val)"]


def _assemble(listing: _Listing, layout: str, rule: str, by_part: dict, skipped: list,
              split_notes: list[str], duplicate_notes: list[str], split_used) -> Parts:
    """Check the classes of the parts and number them by train's classes."""
    train = by_part.get("train", [])
    classes = _class_order(listing, train)
    _check_train_classes(classes, by_part, what="train images")
    _check_unknown_classes(classes, by_part)
    _check_parts_not_emptied(listing, by_part)
    parts = {p: _labelled(listing, by_part.get(p, []), classes) for p in PARTS}
    notes = [*(split_notes or _missing_class_notes(parts)), *duplicate_notes]
    return Parts(parts["train"], parts["val"], parts["test"], layout=layout, rule=rule,
                 skipped=tuple(sorted(skipped, key=lambda s: s.file)), notes=tuple(notes),
                 split_used=split_used)


def _with_left_out(error: DataError, listing: _Listing) -> DataError:
    """``error`` (a class short of images) naming the files of the classes it names that were
    left out as unusable, which may be why they are short."""
    text = str(error)
    left = [e for e in listing.entries if not e.check.usable and repr(e.label) in text]
    if not left:
        return error
    names = ", ".join(f"{relative(e.path, listing.root)} ({SKIP_KINDS[e.check.kind]})"
                      for e in left[:3]) + (" ..." if len(left) > 3 else "")
    return DataError(f"{text}; {len(left)} file(s) of these classes were left out as unusable: "
                     f"{names}")


def _by_part(entries: list[_Entry]) -> dict[str | None, list[_Entry]]:
    by_part = defaultdict(list)
    for entry in entries:
        by_part[entry.part].append(entry)
    return dict(by_part)


def _entries_of(split, entries: list[_Entry]) -> dict[str, list[_Entry]]:
    """The entries of each part of ``split`` (a Split of a LabelledImages built from
    ``entries``), in the split's order."""
    of_path = {e.path: e for e in entries}
    return {p: [of_path[path] for path in getattr(split, p).paths] for p in PARTS}


def _drop_duplicates(by_part: dict, root: Path) -> tuple[dict, list[SkippedFile]]:
    """Keep the first file of each SHA-256: parts in order train, val, test (then unsplit),
    each in path order; the others become skipped rows naming the kept file."""
    first: dict[str, tuple[str | None, _Entry]] = {}
    dropped: dict[int, SkippedFile] = {}
    for part in [p for p in (*PARTS, None) if p in by_part]:
        for entry in sorted(by_part[part], key=lambda e: e.path.as_posix()):
            seen = first.setdefault(entry.check.sha256, (part, entry))
            if seen[1] is not entry:
                dropped[id(entry)] = _duplicate_row(entry, part, *seen, root)
    kept = {part: [e for e in entries if id(e) not in dropped] for part, entries in by_part.items()}
    return kept, list(dropped.values())


def _duplicate_row(entry: _Entry, part, kept_part, kept: _Entry, root: Path) -> SkippedFile:
    how = how_related(kept.check, entry.check)
    kept_file = relative(kept.path, root)
    label = "" if kept.label == entry.label else f"; labelled {kept.label!r} there, {entry.label!r} here"
    if part == kept_part:
        return SkippedFile(relative(entry.path, root), f"duplicate of {kept_file} ({how}{label}); "
                           f"the first copy is kept", "duplicate")
    return SkippedFile(relative(entry.path, root), f"same image as {kept_part} file {kept_file} "
                       f"({how}{label}); removed from {part}", "copy")


def _labelled(listing: _Listing, entries: list[_Entry], classes: Sequence[str]) -> LabelledImages:
    number = {name: i for i, name in enumerate(classes)}
    return LabelledImages(root=listing.root, paths=tuple(e.path for e in entries),
                          labels=tuple(number[e.label] for e in entries), classes=tuple(classes),
                          name=listing.name)


def _class_order(listing: _Listing, entries: list[_Entry]) -> list[str]:
    present = {e.label for e in entries}
    if listing.class_order is not None:
        return [c for c in listing.class_order if c in present]
    return sorted(present)


# --------------------------------------------------------------------------------------------
# The checks that name a class or a folder
# --------------------------------------------------------------------------------------------

def _check_class_folders(listing: _Listing) -> None:
    """A class folder holding no usable image (empty, or only non-images) is an error."""
    groups: dict[Path, list[_Entry]] = defaultdict(list)
    for entry in listing.entries:
        groups[entry.group].append(entry)
    for folder in listing.class_folders:
        if not groups[folder]:
            raise DataError(f"class folder {folder} is empty; add images or remove the folder")
        if not any(e.check.usable for e in groups[folder]):
            kinds = Counter(SKIP_KINDS[e.check.kind] for e in groups[folder])
            what = ", ".join(f"{n} {k}" for k, n in sorted(kinds.items()))
            raise DataError(f"class folder {folder} holds no usable image ({what}); add images "
                            f"to it or remove the folder")


def _counts_text(name: str, by_part: dict) -> str:
    if None in by_part:
        return f"{sum(e.label == name for e in by_part[None])} image(s)"
    return ", ".join(f"{sum(e.label == name for e in by_part.get(p, []))} {p}" for p in PARTS)


def _check_train_classes(classes: Sequence[str], by_part: dict, what: str) -> None:
    """At least 2 classes, each with at least MIN_TRAIN_PER_CLASS train images."""
    source = by_part.get("train", by_part.get(None, []))
    counts = Counter(e.label for e in source)
    few = [c for c in classes if counts[c] < MIN_TRAIN_PER_CLASS]
    if few:
        detail = "; ".join(f"{c!r}: {_counts_text(c, by_part)}" for c in few)
        raise DataError(f"{len(few)} class(es) have fewer than {MIN_TRAIN_PER_CLASS} {what} "
                        f"({detail}); add images to them or remove them")
    if len(classes) < 2:
        raise DataError(f"only {len(classes)} class has usable {what} ({', '.join(classes) or 'none'}); "
                        f"classification needs at least 2")


def _check_unknown_classes(classes: Sequence[str], by_part: dict) -> None:
    """A class in val or test must be in train."""
    known = set(classes)
    for part in ("val", "test"):
        unknown = sorted({e.label for e in by_part.get(part, [])} - known)
        if unknown:
            detail = "; ".join(f"{c!r}: {_counts_text(c, by_part)}" for c in unknown)
            raise DataError(f"class(es) in {part} but not in train ({detail}); add train images "
                            f"of them or remove them from {part}")


def _check_parts_not_emptied(listing: _Listing, by_part: dict) -> None:
    """A val or test part that lists files but has no usable image left is an error."""
    given = {e.part for e in listing.entries} if listing.has_parts else set()
    for part in ("val", "test"):
        if part in given and not by_part.get(part):
            raise DataError(f"{part} of {listing.root} has no usable image left (its files are "
                            f"unreadable or copies of train images: see the skipped files); add "
                            f"new images to {part} or remove it")


def _missing_class_notes(parts: dict[str, LabelledImages]) -> list[str]:
    notes = []
    for part in ("val", "test"):
        if len(parts[part]):
            empty = [c for c, n in zip(parts[part].classes, parts[part].counts()) if n == 0]
            if empty:
                notes.append(f"{part} has no image of class(es) {', '.join(map(repr, empty))}")
    return notes
