"""The dataset layer: load a labelled image set, split it the authors' way, serve it to PyTorch.

Two layouts are read:

* Meta-Album (the paper's benchmark): ``DATASET/labels.csv`` lists one image per row (file name,
  category, optional super-category), ``DATASET/info.json`` names those columns and the dataset,
  and the files live in ``DATASET/images/``. Labels are numbered in order of first appearance in
  labels.csv.
* ImageFolder: one sub-folder per class (classes sorted by name), image files found by extension.

Every listed image is opened and decoded while loading, so that a missing or corrupt file is
reported at once (or skipped, with ``skip_bad_images``) instead of crashing a run hours in.
Every problem with the user's files raises :class:`~rrrnet.errors.DataError` with a message that
names the file and says how to fix it.
"""
from __future__ import annotations

import csv
import json
import os
import warnings
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import numpy as np
import torch
import torch.utils.data
from PIL import Image, ImageOps

from ..errors import DataError
from ..io import missing
from .identity import Identity, identify, outside, related
from .cache import ImageCache, file_hashes
from .meta_album import IMAGES_DIR, INFO_FILE, LABELS_FILE, to_rgb_image

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp")
DEFAULT_COLUMNS = {
    "image_column_name": "FILE_NAME",
    "category_column_name": "CATEGORY",
    "super_category_column_name": "SUPER_CATEGORY",
}
# The seeds of the authors' Meta-Album micro split (see micro_split).
CLASS_SHUFFLE_SEED = 88
SPLIT_SHUFFLE_SEED = 66


# --------------------------------------------------------------------------------------------
# The loaded dataset
# --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class LabelledImages:
    """Image files with integer labels; ``classes[label]`` is the class name."""

    root: Path
    paths: tuple[Path, ...]
    labels: tuple[int, ...]
    classes: tuple[str, ...]
    name: str

    def __post_init__(self) -> None:
        # Programming errors, not user errors: a subset or a loader built this wrongly.
        if len(self.paths) != len(self.labels):
            raise ValueError(f"{len(self.paths)} paths but {len(self.labels)} labels")
        if any(not 0 <= label < len(self.classes) for label in self.labels):
            raise ValueError(f"a label is outside 0..{len(self.classes) - 1}")

    def __len__(self) -> int:
        return len(self.paths)

    def subset(self, indices: Iterable[int]) -> LabelledImages:
        """The images at ``indices`` (in that order); classes and label numbers are kept."""
        indices = [int(i) for i in indices]
        return LabelledImages(
            root=self.root,
            paths=tuple(self.paths[i] for i in indices),
            labels=tuple(self.labels[i] for i in indices),
            classes=self.classes,
            name=self.name,
        )

    def counts(self) -> list[int]:
        """Number of images of each class, indexed by label."""
        per_label = Counter(self.labels)
        return [per_label[label] for label in range(len(self.classes))]


# --------------------------------------------------------------------------------------------
# Reading one image
# --------------------------------------------------------------------------------------------

# How a non-square image becomes the square training size (see resize_square).
RESIZE_MODES = ("squash", "crop", "pad")
DEFAULT_RESIZE = "squash"


def read_image(path: str | Path, size: int = 128, resize: str = DEFAULT_RESIZE) -> np.ndarray:
    """The image at ``path`` as a ``size`` x ``size`` x 3 uint8 RGB array.

    EXIF orientation is applied, any mode is converted to RGB (transparency composited on white,
    16-bit scaled down to 8-bit) and the image is made square by ``resize``
    (:func:`resize_square`; squash by default, as Meta-Album images are square already).
    """
    if size < 1:
        raise DataError(f"image size must be at least 1 pixel, got {size}")
    return np.asarray(resize_square(decode_rgb(path), size, resize), dtype=np.uint8)


def resize_square(image: Image.Image, size: int, mode: str = DEFAULT_RESIZE) -> Image.Image:
    """``image`` as a ``size`` x ``size`` image, bicubic, by ``mode``:

    * ``squash`` (the default): resize to the square, changing the aspect ratio of a non-square
      image. It keeps every pixel (a crop can cut off the object at the edge of a wide photo),
      it is what rrrnet has always done (so earlier runs reproduce), and on square images
      (all of Meta-Album) the three modes agree.
    * ``crop``: the centred square of side min(width, height), then resized: the aspect ratio is
      kept, the edges of the longer side are lost.
    * ``pad``: centred on a white square of side max(width, height) (white, as transparency is
      composited on white), then resized: aspect ratio and every pixel kept, at a lower
      resolution.
    """
    if mode not in RESIZE_MODES:
        raise DataError(f"resize must be one of {', '.join(RESIZE_MODES)}, got {mode!r}")
    width, height = image.size
    if mode == "crop" and width != height:
        side = min(width, height)
        left, top = (width - side) // 2, (height - side) // 2
        image = image.crop((left, top, left + side, top + side))
    elif mode == "pad" and width != height:
        side = max(width, height)
        canvas = Image.new("RGB", (side, side), (255, 255, 255))
        canvas.paste(image.convert("RGB"), ((side - width) // 2, (side - height) // 2))
        image = canvas
    if image.size != (size, size):
        image = image.resize((size, size), Image.Resampling.BICUBIC)
    return image


# The longest side an image keeps between decoding and the RGB conversion. A larger one (clip
# art rendered at 13,000 px: a 170-megapixel PNG) is first shrunk by the smallest integer factor
# that brings it under, so that the conversion's copies cost megabytes, not gigabytes; training
# and prediction sizes are far below it.
LARGEST_DECODED_SIDE = 4096
# Environment variable raising Pillow's decompression-bomb limit (pixels; PIL.Image.MAX_IMAGE_PIXELS,
# whose default of 89,478,485 refuses images above twice that).
MAX_PIXELS_VARIABLE = "RRRNET_MAX_IMAGE_PIXELS"


def configure_image_limits() -> None:
    """For the command line: apply ``$RRRNET_MAX_IMAGE_PIXELS`` (if set) to Pillow's
    decompression-bomb guard, and silence its warning for images between the limit and twice
    it: they load (shrunk by :func:`shrink_large`); those above are listed in skipped.csv."""
    warnings.filterwarnings("ignore", category=Image.DecompressionBombWarning)
    value = os.environ.get(MAX_PIXELS_VARIABLE, "").strip()
    if not value:
        return
    if not value.isdigit() or int(value) < 1:
        raise DataError(f"${MAX_PIXELS_VARIABLE} must be a positive whole number of pixels, "
                        f"got {value!r}")
    Image.MAX_IMAGE_PIXELS = int(value)


def shrink_large(image: Image.Image, largest: int = LARGEST_DECODED_SIDE) -> Image.Image:
    """``image`` (decoded) shrunk by an integer factor when its longer side exceeds ``largest``
    (box filter, :meth:`PIL.Image.Image.reduce`); palette, 1-bit and 16-bit images, which
    ``reduce`` does not take, are first converted to a mode it does."""
    longest = max(image.size)
    if longest <= largest:
        return image
    if image.mode in ("P", "1") or image.mode.startswith("I;"):
        image = to_rgb_image(image)
    return image.reduce(-(-longest // largest))


def decode_rgb(path: str | Path) -> Image.Image:
    """Open, fully decode and convert one image to RGB (shrunk first when larger than
    :data:`LARGEST_DECODED_SIDE`); DataError naming the file if it fails."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{missing(path, 'image file')}; restore it, remove it from the dataset, "
                        f"or skip bad images (--skip-bad-images)")
    try:
        with Image.open(path) as image:
            image.load()  # verify() alone misses truncated JPEGs; a full decode does not
            return to_rgb_image(ImageOps.exif_transpose(shrink_large(image)))
    except DataError:
        raise
    except Exception as error:  # PIL's decoders raise OSError, ValueError, SyntaxError, ...
        raise DataError(
            f"cannot decode image {path} ({type(error).__name__}: {error}); replace the file, "
            f"remove it from the dataset, or skip bad images (--skip-bad-images, skip_bad_images=True)"
        ) from None


# --------------------------------------------------------------------------------------------
# Images as network inputs: ImageNet normalisation
# --------------------------------------------------------------------------------------------

IMAGENET_MEAN: tuple[float, float, float] = (0.485, 0.456, 0.406)
IMAGENET_STD: tuple[float, float, float] = (0.229, 0.224, 0.225)
_MEAN = np.asarray(IMAGENET_MEAN, dtype=np.float32)
_STD = np.asarray(IMAGENET_STD, dtype=np.float32)


def _check_image(image: np.ndarray) -> None:
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        desc = (
            f"{type(image).__name__} {getattr(image, 'dtype', '')} {getattr(image, 'shape', '')}"
        ).strip()
        raise ValueError(f"expected a uint8 HxWx3 RGB numpy array, got {desc}")


def normalize(image: np.ndarray) -> torch.Tensor:
    """``uint8`` HxWx3 RGB -> ``float32`` 3xHxW tensor, ``(x / 255 - IMAGENET_MEAN) / IMAGENET_STD``."""
    _check_image(image)
    out = (image.astype(np.float32) / np.float32(255.0) - _MEAN) / _STD
    return torch.from_numpy(np.ascontiguousarray(out.transpose(2, 0, 1)))


def denormalize(tensor: torch.Tensor) -> np.ndarray:
    """Inverse of :func:`normalize` for figures: 3xHxW tensor -> ``uint8`` HxWx3 (rounded, clipped)."""
    if not isinstance(tensor, torch.Tensor) or tensor.ndim != 3 or tensor.shape[0] != 3:
        raise ValueError(
            f"expected a 3xHxW tensor, got {type(tensor).__name__} {tuple(getattr(tensor, 'shape', ()))}"
        )
    x = tensor.detach().to("cpu", torch.float32).numpy().transpose(1, 2, 0)
    x = (x * _STD + _MEAN) * np.float32(255.0)
    return np.clip(np.rint(x), 0, 255).astype(np.uint8)


def as_array(image: Any, size: int | None, resize: str = DEFAULT_RESIZE) -> np.ndarray:
    """A PIL image or a ``uint8`` HxWx3 array as a ``size`` x ``size`` x 3 ``uint8`` RGB array
    (made square by ``resize``, as :func:`rrrnet.data.read_image`; no copy when it already is
    one; ``size`` None: the image's own size)."""
    if isinstance(image, np.ndarray) and image.dtype == np.uint8 and image.ndim == 3 \
            and image.shape[2] == 3 and (size is None or image.shape[:2] == (size, size)):
        return image
    if isinstance(image, np.ndarray):
        if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
            raise DataError(f"a training Dataset must yield PIL images or uint8 HxWx3 RGB "
                              f"arrays, got an array of {image.dtype} {image.shape}")
        image = Image.fromarray(image)
    if not isinstance(image, Image.Image):
        raise DataError(f"a training Dataset must yield (PIL image or uint8 HxWx3 array, label) "
                          f"pairs, got {type(image).__name__}; pass ready tensors as a DataLoader "
                          f"of (images, labels) batches instead")
    image = image.convert("RGB")
    if size is not None and image.size != (size, size):
        image = resize_square(image, size, resize)
    return np.asarray(image, dtype=np.uint8)


class EvalImages(torch.utils.data.Dataset):
    """Evaluation images: resized (``resize``: :func:`resize_square`) and normalised, no
    augmentation."""

    def __init__(self, images: torch.utils.data.Dataset, size: int | None = None,
                 resize: str = DEFAULT_RESIZE):
        self.images, self.size, self.resize = images, size, resize

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int):
        image, label = self.images[index]
        return normalize(as_array(image, self.size, self.resize)), int(label)


# --------------------------------------------------------------------------------------------
# Meta-Album
# --------------------------------------------------------------------------------------------

def load_meta_album(root: str | Path, skip_bad_images: bool = False,
                    allow_outside_files: bool = False) -> LabelledImages:
    """A Meta-Album dataset folder (labels.csv, info.json, images/) -> LabelledImages.

    Every listed file is resolved to its real path (``./x.jpg``, ``../``, absolute paths and
    symbolic links included) before the duplicate check, so one image cannot be listed twice
    under two names and land in both train and test; a file that resolves outside the dataset
    folder is refused unless ``allow_outside_files``."""
    root = _existing_folder(root)
    labels_csv = root / LABELS_FILE
    if not labels_csv.is_file():
        raise DataError(
            f"{missing(labels_csv, 'the labels file')}: a Meta-Album dataset folder needs labels.csv "
            f"(columns FILE_NAME,CATEGORY,SUPER_CATEGORY), info.json and images/"
        )
    header, rows = _read_labels_csv(labels_csv)
    info = _read_info_json(root / INFO_FILE, header)
    image_column = info["image_column_name"]
    category_column = info["category_column_name"]
    _check_columns(labels_csv, header, [image_column, category_column])

    images_folder = root / IMAGES_DIR
    if not images_folder.is_dir():
        raise DataError(f"image folder {images_folder} not found; put the files listed in {labels_csv} there")
    paths, categories = _files_and_categories(labels_csv, rows, image_column, category_column,
                                              images_folder, allow_outside_files)
    return _build(root, str(info.get("dataset_name") or root.name), paths, categories,
                  class_order=list(dict.fromkeys(categories)), skip_bad_images=skip_bad_images)


def _read_labels_csv(labels_csv: Path) -> tuple[list[str], list[tuple[int, dict]]]:
    """The header and the (line number, row) pairs of labels.csv."""
    # utf-8-sig: a byte-order mark (spreadsheet exports) would otherwise stick to the first column.
    with open(labels_csv, newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        try:
            header = reader.fieldnames
            rows = [(reader.line_num, row) for row in reader]
        except (csv.Error, UnicodeDecodeError) as error:
            raise DataError(f"cannot parse {labels_csv} as CSV ({error}); save it as UTF-8 CSV") from None
    if not header:
        raise DataError(f"{labels_csv} is empty; it needs a header line (FILE_NAME,CATEGORY,SUPER_CATEGORY) "
                        f"and one line per image")
    repeated = sorted(name for name, n in Counter(header).items() if n > 1)
    if repeated:   # csv.DictReader would silently keep the last of them
        raise DataError(f"{labels_csv}: the header names column {', '.join(repeated)} more than "
                        f"once; keep one column of each name")
    if not rows:
        raise DataError(f"{labels_csv} has a header but no images (zero classes); add one line per image")
    return list(header), rows


def _read_info_json(info_json: Path, header: list[str]) -> dict:
    """info.json with the column-name defaults filled in.

    A missing info.json is accepted only when labels.csv uses the default column names, because
    then nothing in it would change how the dataset is read."""
    if not info_json.is_file():
        needed = [DEFAULT_COLUMNS["image_column_name"], DEFAULT_COLUMNS["category_column_name"]]
        if all(column in header for column in needed):
            return dict(DEFAULT_COLUMNS)
        raise DataError(
            f"{info_json} not found, and labels.csv has columns {header} instead of the default "
            f"{needed}; add info.json with image_column_name and category_column_name"
        )
    try:
        info = json.loads(info_json.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise DataError(f"{info_json} is not valid JSON: {error.msg} at line {error.lineno}, "
                        f"column {error.colno}; fix the file") from None
    except UnicodeDecodeError:
        raise DataError(f"{info_json} is not UTF-8 text; save it as UTF-8 JSON") from None
    if not isinstance(info, dict):
        raise DataError(f"{info_json} must hold a JSON object ({{...}}), not {type(info).__name__}")
    for key, default in DEFAULT_COLUMNS.items():
        info.setdefault(key, default)
        if not isinstance(info[key], str) or not info[key]:
            raise DataError(f"{info_json}: {key} must be a non-empty string, got {info[key]!r}")
    return info


def _check_columns(labels_csv: Path, header: list[str], needed: list[str]) -> None:
    missing = [column for column in needed if column not in header]
    if missing:
        raise DataError(
            f"{labels_csv} has no column {', '.join(missing)}: it has {header} and needs {needed}; "
            f"rename the columns or set image_column_name / category_column_name in info.json"
        )


def _files_and_categories(labels_csv: Path, rows: list[tuple[int, dict]], image_column: str,
                          category_column: str, images_folder: Path,
                          allow_outside_files: bool = False) -> tuple[list[Path], list[str]]:
    """Paths and categories of every row; empty file names, files listed twice (under any
    name that resolves to the same file) and files outside the dataset are errors."""
    paths, categories, first_line = [], [], {}
    root = Path(os.path.realpath(images_folder.parent))
    for line, row in rows:
        file, category = row.get(image_column) or "", row.get(category_column) or ""
        for column, value in ((image_column, file), (category_column, category)):
            if not value.strip():
                raise DataError(f"{labels_csv} line {line}: empty {column}; fill it in or delete the line")
            if "\0" in value:
                raise DataError(f"{labels_csv} line {line}: {column} holds a NUL byte ({value!r}); "
                                f"no file name can contain one")
        path = images_folder / file
        real = Path(os.path.realpath(path))
        if not allow_outside_files and not real.is_relative_to(root):
            raise DataError(f"{labels_csv} line {line}: {file} resolves to {real}, outside the "
                            f"dataset folder {root}; copy it into images/, or pass "
                            f"--allow-outside-files if that is intended")
        if real in first_line:
            # The same image twice could land in both train and test and inflate accuracy.
            raise DataError(f"{labels_csv} lines {first_line[real][0]} and {line} both list "
                            f"{real.name} ({first_line[real][1]!r} and {file!r} are the same "
                            f"file); keep one of them")
        first_line[real] = (line, file)
        paths.append(path)
        categories.append(category)
    return paths, categories


# --------------------------------------------------------------------------------------------
# ImageFolder
# --------------------------------------------------------------------------------------------

def load_image_folder(root: str | Path, skip_bad_images: bool = False,
                      allow_outside_files: bool = False) -> LabelledImages:
    """One sub-folder per class (sorted by name), image files found by extension. A symbolic
    link to an image outside ``root`` is refused unless ``allow_outside_files``; one image
    under two names (links) is refused, as in labels.csv (:func:`_check_identities`)."""
    root = _existing_folder(root)
    class_folders = _class_folders(root)
    if not class_folders:
        raise DataError(f"{root} has no class sub-folders; put the images of each class in "
                        f"{root}/<class name>/")
    paths, categories = [], []
    for folder in class_folders:
        nested = sorted(p.name for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
        if nested:
            warnings.warn(f"{folder}: sub-folders {nested} are ignored (an ImageFolder class is "
                          f"the images directly in its folder); move their images up if they "
                          f"belong to class {folder.name!r}", stacklevel=2)
        images = _image_files(folder)
        if not images:
            raise DataError(f"class folder {folder} holds no image files ({', '.join(IMAGE_EXTENSIONS)}); "
                            f"add images or remove the folder")
        if not allow_outside_files:
            root_real = Path(os.path.realpath(root))
            for image in images:
                if outside(image, root_real):
                    raise DataError(f"{image} is a symbolic link to {os.path.realpath(image)}, "
                                    f"outside the dataset folder {root}; copy the image in, or "
                                    f"pass --allow-outside-files if that is intended")
        paths += images
        categories += [folder.name] * len(images)
    return _build(root, root.name, paths, categories, class_order=[f.name for f in class_folders],
                  skip_bad_images=skip_bad_images)


def _class_folders(root: Path) -> list[Path]:
    # Hidden folders (.git, .ipynb_checkpoints) are never classes.
    return sorted((p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")),
                  key=lambda p: p.name)


def _image_files(folder: Path) -> list[Path]:
    return sorted((p for p in folder.iterdir()
                   if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in IMAGE_EXTENSIONS),
                  key=lambda p: p.name)


# --------------------------------------------------------------------------------------------
# Either layout
# --------------------------------------------------------------------------------------------

def load_dataset(root: str | Path, skip_bad_images: bool = False,
                 allow_outside_files: bool = False) -> LabelledImages:
    """Meta-Album when ``root/labels.csv`` exists, else ImageFolder when class sub-folders hold images."""
    root = _existing_folder(root)
    if (root / LABELS_FILE).is_file():
        return load_meta_album(root, skip_bad_images, allow_outside_files)
    folders = _class_folders(root)
    # A Meta-Album folder that lost its labels.csv would otherwise load as one class "images".
    looks_like_meta_album = (root / INFO_FILE).is_file() or [f.name for f in folders] == [IMAGES_DIR]
    if looks_like_meta_album:
        return load_meta_album(root, skip_bad_images)  # raises its "labels.csv not found" error
    if any(_image_files(folder) for folder in folders):
        return load_image_folder(root, skip_bad_images, allow_outside_files)
    raise DataError(
        f"{root} is neither a Meta-Album dataset (labels.csv + info.json + images/) nor an ImageFolder "
        f"(one sub-folder of images per class); arrange the files in one of these layouts"
    )


# --------------------------------------------------------------------------------------------
# Shared by the loaders
# --------------------------------------------------------------------------------------------

def _existing_folder(root: str | Path) -> Path:
    root = Path(root)
    if "\0" in str(root):
        raise DataError(f"dataset folder {str(root)!r} holds a NUL byte; no path can contain one")
    if not root.is_dir():
        raise DataError(f"{missing(root, 'dataset folder', 'a folder')}; check the path")
    return root


def _build(root: Path, name: str, paths: Sequence[Path], categories: Sequence[str],
           class_order: Sequence[str], skip_bad_images: bool) -> LabelledImages:
    """Check every image, drop the bad ones if asked, refuse one image listed twice, and number
    the classes in ``class_order``."""
    good = _readable(paths, skip_bad_images)
    _check_identities(root, [paths[i] for i in good], [categories[i] for i in good])
    kept_categories = {categories[i] for i in good}
    dropped_classes = [c for c in class_order if c not in kept_categories]
    if dropped_classes:
        warnings.warn(f"{root}: classes {dropped_classes} have no readable image left and are dropped",
                      stacklevel=3)
    classes = [c for c in class_order if c in kept_categories]
    if not classes:
        raise DataError(f"{root} has no readable image (zero classes)")
    label_of = {category: label for label, category in enumerate(classes)}
    return LabelledImages(root=root, paths=tuple(paths[i] for i in good),
                          labels=tuple(label_of[categories[i]] for i in good),
                          classes=tuple(classes), name=name)


def _check_identities(root: Path, paths: Sequence[Path], categories: Sequence[str]) -> None:
    """One identity rule for every layout (:mod:`rrrnet.data.identity`: resolved path, inode,
    SHA-256). Two names of one file (a symbolic or a hard link) are an error naming both: one
    image could land in both train and test. Copies (the same bytes in two files) are named in
    a warning and kept: the authors' micro split of a Meta-Album dataset includes them, and
    runs trained on them are evaluated on the same images (``rrrnet fit`` leaves copies out,
    and lists them in skipped.csv)."""
    seen: dict[tuple, tuple[Identity, str]] = {}
    copies = []
    for path, category in zip(paths, categories):
        try:
            ident = identify(path)
        except OSError as error:
            raise DataError(f"cannot read {path} ({error.strerror}); check its permissions") from None
        for key in (("real", ident.real), ("inode", ident.inode), ("sha", ident.sha256)):
            if key in seen:
                first, first_category = seen[key]
                how = related(first, ident)
                if key[0] != "sha":
                    raise DataError(f"{root}: {path} (class {category!r}) and {first.path} (class "
                                    f"{first_category!r}) are {how}; one image listed twice could "
                                    f"land in both train and test: keep one of them")
                copies.append(f"{path} = {first.path}")
                break
        else:
            for key in (("real", ident.real), ("inode", ident.inode), ("sha", ident.sha256)):
                seen[key] = (ident, category)
    if copies:
        warnings.warn(f"{root}: {len(copies)} image(s) are copies of another (the same bytes), "
                      f"kept as listed: {'; '.join(copies[:5])}"
                      + (f" and {len(copies) - 5} more" if len(copies) > 5 else ""), stacklevel=4)


def _readable(paths: Sequence[Path], skip_bad_images: bool) -> list[int]:
    """Indices of the images that decode. A bad one raises, or with skip_bad_images is warned about."""
    good = []
    for index, path in enumerate(paths):
        try:
            decode_rgb(path)
        except DataError as error:
            if not skip_bad_images:
                raise
            warnings.warn(f"skipping bad image {path}: {error}", stacklevel=4)
            continue
        good.append(index)
    return good


# --------------------------------------------------------------------------------------------
# The authors' micro split
# --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Split:
    train: LabelledImages
    val: LabelledImages
    test: LabelledImages


def micro_split(data: LabelledImages, train: int = 20, val: int = 0, test: int | None = 20) -> Split:
    """The authors' Meta-Album micro split, reproduced exactly.

    For each class in label order, its indices (in labels.csv order) are shuffled with ONE
    ``default_rng(88)`` shared by all classes in turn; the first ``train`` go to train, the next
    ``val`` to val, the next ``test`` (all the rest when ``test`` is None) to test. Each of the
    three index lists is then shuffled with a fresh ``default_rng(66)``.
    """
    _check_split_sizes(data, train, val, test)
    rng = np.random.default_rng(CLASS_SHUFFLE_SEED)
    labels = np.asarray(data.labels)
    parts: tuple[list[int], list[int], list[int]] = ([], [], [])
    for label in range(len(data.classes)):
        indices = np.flatnonzero(labels == label)
        rng.shuffle(indices)
        test_end = len(indices) if test is None else train + val + test
        for part, (start, end) in zip(parts, ((0, train), (train, train + val), (train + val, test_end))):
            part.extend(indices[start:end].tolist())
    return Split(*(data.subset(_shuffled(part)) for part in parts))


def _shuffled(indices: list[int]) -> list[int]:
    array = np.asarray(indices, dtype=np.int64)
    np.random.default_rng(SPLIT_SHUFFLE_SEED).shuffle(array)
    return array.tolist()


def _check_split_sizes(data: LabelledImages, train: int, val: int, test: int | None) -> None:
    if train < 1 or val < 0 or (test is not None and test < 0):
        raise DataError(f"split sizes must be train >= 1, val >= 0, test >= 0; got {train}, {val}, {test}")
    if len(data.classes) < 2:
        raise DataError(f"dataset {data.name} ({data.root}) has {len(data.classes)} class; "
                        f"classification needs at least 2")
    # test=None takes the rest of each class, which must hold at least one test image.
    need = train + val + (1 if test is None else test)
    short = [f"{name!r} has {count}" for name, count in zip(data.classes, data.counts()) if count < need]
    if short:
        raise DataError(
            f"dataset {data.name} ({data.root}): {len(short)} class(es) have fewer than the {need} images "
            f"per class needed for {train} train + {val} val + "
            f"{'at least 1' if test is None else test} test: {'; '.join(short)}; "
            f"ask for fewer with smaller --train/--test, or split by ratio (--split 0.8,0.1,0.1)"
        )


# --------------------------------------------------------------------------------------------
# PyTorch
# --------------------------------------------------------------------------------------------

# ImageDataset's cache: "auto" keeps the decoded images in memory up to this many bytes, and in
# the shared cache file above it (in memory, each DataLoader worker holds what it decoded, and
# its epoch's workers drop it: 50,000 images of 128 px are 2.4 GB, decoded again every epoch).
CACHE_MODES = ("auto", "ram", "memmap", "none")
MEMMAP_ABOVE_BYTES = 512 * 2**20
# Names the decoding in the shared cache's key: other code or another Pillow gives other pixels.
DECODER = f"rrrnet.read_image/1 Pillow {Image.__version__}"


class ImageDataset(torch.utils.data.Dataset):
    """``dataset[i] -> (transform(image) or image, label)``, image an HxWx3 uint8 array.

    ``cache`` keeps the decoded, resized arrays after their first use, as decoding them every
    epoch of a 300-epoch run would dominate the time:

    * ``"ram"``: in this process's memory (each DataLoader worker fills its own copy, lost
      when the epoch's workers exit). The micro datasets are ~800 images of 128x128 (~40 MB).
    * ``"memmap"``: in one uint8 array file shared by every process, the kernel's page cache
      holding one copy (:class:`rrrnet.data.cache.ImageCache`), under ``cache_folder`` (default
      ``$RRRNET_CACHE``, else ``~/.cache/rrrnet/images``; never inside the dataset folder),
      keyed by the SHA-256 of the files' bytes, the size and the resize mode, so that a second
      run, or a second dataset object, reuses it. The files are hashed here, once.
    * ``"auto"`` (``True``, the default): ``"memmap"`` when ``cache_folder`` is given or the
      decoded images exceed :data:`MEMMAP_ABOVE_BYTES` (512 MiB), else ``"ram"``.
    * ``"none"`` (``False``): decode on every read.

    Every mode gives the same arrays for the same images. ``resize`` makes a non-square image
    square (:func:`resize_square`: squash, crop or pad).
    """

    def __init__(self, images: LabelledImages, size: int = 128,
                 transform: Callable[[np.ndarray], object] | None = None,
                 cache: bool | str = True, resize: str = DEFAULT_RESIZE,
                 cache_folder: str | Path | None = None) -> None:
        if resize not in RESIZE_MODES:
            raise DataError(f"resize must be one of {', '.join(RESIZE_MODES)}, got {resize!r}")
        mode = "auto" if cache is True else "none" if cache is False else cache
        if mode not in CACHE_MODES:
            raise DataError(f"cache must be one of {', '.join(CACHE_MODES)} (or True, False), "
                            f"got {cache!r}")
        if cache_folder is not None and mode in ("ram", "none"):
            raise DataError(f"a cache folder ({cache_folder}) is for cache='memmap' (or 'auto'), "
                            f"not cache={cache!r}")
        self.images = images
        self.size = size
        self.resize = resize
        self.transform = transform
        self.cache = cache
        self.shared_cache: ImageCache | None = None
        if mode == "auto":
            large = len(images) * size * size * 3 > MEMMAP_ABOVE_BYTES
            mode = "memmap" if cache_folder is not None or large else "ram"
            if mode == "memmap" and cache_folder is None:
                hashes = file_hashes(images.paths)  # an unreadable image is its own error
                try:
                    self.shared_cache = self._shared(hashes, None)
                except DataError as error:  # the default cache folder cannot be written
                    warnings.warn(f"{error}; keeping the decoded images in memory instead (one "
                                  f"copy per DataLoader worker)", stacklevel=2)
                    mode = "ram"
        if mode == "memmap" and self.shared_cache is None:
            self.shared_cache = self._shared(file_hashes(images.paths), cache_folder)
        self.cache_mode = mode
        self._cached: list[np.ndarray | None] = [None] * len(images) if mode == "ram" else []

    def _shared(self, hashes: list[str], folder: str | Path | None) -> ImageCache:
        return ImageCache(hashes, self.size, self.resize, DECODER, folder=folder,
                          dataset_root=self.images.root)

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> tuple[object, int]:
        index = range(len(self))[index]  # negative indices, and IndexError past the end
        image = self._image(index)
        label = self.images.labels[index]
        return (self.transform(image) if self.transform else image), label

    def _read(self, index: int) -> np.ndarray:
        return read_image(self.images.paths[index], self.size, self.resize)

    def _image(self, index: int) -> np.ndarray:
        if self.shared_cache is not None:  # a private copy, checked against the slot's CRC
            return self.shared_cache.get(index, lambda: self._read(index))
        if self.cache_mode == "none":
            return self._read(index)
        if self._cached[index] is None:
            self._cached[index] = self._read(index)
        # A copy, so that a transform that works in place cannot corrupt the cached image.
        return self._cached[index].copy()
