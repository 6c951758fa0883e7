"""Fashion-MNIST from Debian's ``dataset-fashion-mnist`` package (IDX files); licence MIT
(Zalando Research)."""
from __future__ import annotations

import gzip
import os
import struct
from pathlib import Path

import numpy as np

from ...errors import DataError
from ..meta_album import (DEFAULT_PER_CLASS, check_per_class, safe_name, upscale_gray, write_meta_album)


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
    per_class = check_per_class(per_class)
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
    items = ((upscale_gray(pixels), cls) for pixels, cls, _ in picks)
    return write_meta_album(
        out_dir, items, name="Fashion-MNIST micro",
        description=(f"Fashion-MNIST (Zalando), {per_class} images per class for 10 classes: "
                     f"{n_train} from the training set and {n_test} from the test set, drawn "
                     f"with seed {seed}; 28x28 grey images upscaled to 128x128 (bicubic), RGB."),
        license="MIT (Fashion-MNIST, Zalando SE)",
        source=f"Fashion-MNIST IDX files from {folder} (Debian package dataset-fashion-mnist)",
        overwrite=overwrite, extra_info={"original_split": origin, "seed": seed})


