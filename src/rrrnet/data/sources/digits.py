"""Handwritten digits of the UCI "Optical Recognition of Handwritten Digits" set (Alpaydin and
Kaynak, 1998; CC BY 4.0) as shipped inside the scikit-learn wheel (``load_digits``): 1797 8x8
images from 43 writers, a different population, scanner and resolution from MNIST's."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Iterator

import numpy as np
from PIL import Image

from ...errors import DataError
from ..meta_album import (DEFAULT_PER_CLASS, check_per_class, draw_per_class, read_pixel_csv,
                          upscale_gray, write_meta_album)

DIGITS_CLASSES = tuple(f"digit_{d}" for d in range(10))
DIGITS_LICENSE = ("CC BY 4.0 (UCI Optical Recognition of Handwritten Digits, E. Alpaydin and "
                  "C. Kaynak, 1998)")
DIGITS_LEVELS = 16          # pixel values are counts 0..16 (on pixels of a 4x4 block of 32x32)


def _load_sklearn_digits() -> tuple[np.ndarray, np.ndarray]:
    try:
        from sklearn.datasets import load_digits
    except ImportError as e:
        raise DataError("the digits converter needs scikit-learn (its wheel holds the 1797 UCI "
                        "digits): pip install scikit-learn, or give a CSV with --source "
                        "PATH") from e
    try:
        bunch = load_digits()
    except OSError as e:
        raise DataError(f"scikit-learn's digits file cannot be read ({e}); reinstall "
                        "scikit-learn (pip install --force-reinstall scikit-learn)") from e
    return np.asarray(bunch.data, dtype=np.float64), np.asarray(bunch.target, dtype=np.int64)


def digit_image(pixels: np.ndarray) -> Image.Image:
    """An 8x8 digit (values 0..16, ink high) as a 128x128 RGB image, ink white on black as in
    MNIST; bicubic upscaling."""
    grey = np.clip(np.rint(np.asarray(pixels, dtype=np.float64) * 255 / DIGITS_LEVELS), 0, 255)
    return upscale_gray(grey.astype(np.uint8).reshape(8, 8))


def convert_digits(out_dir: str | os.PathLike, per_class: int = DEFAULT_PER_CLASS, seed: int = 0,
                   source: str | os.PathLike | None = None, overwrite: bool = False) -> Path:
    """The UCI handwritten digits (scikit-learn's ``load_digits``, about 180 per digit).

    ``per_class`` images of each digit, drawn at random with ``seed``; 8x8 upscaled to 128x128
    (bicubic), RGB. ``source`` is a CSV file (optionally gzipped) of rows ``64 pixels, label``
    (scikit-learn's ``digits.csv.gz`` format); default: ``sklearn.datasets.load_digits()``.
    """
    if source is not None:
        path = Path(source).expanduser()
        x, y = read_pixel_csv(path, 64, "digits (values 0..16)")
        origin = str(path)
    else:
        x, y = _load_sklearn_digits()
        origin = "sklearn.datasets.load_digits() (1797 UCI digits, 43 writers)"
    per_class = check_per_class(per_class)
    picks = draw_per_class(y, 10, per_class, seed, "the digits source")

    def items() -> Iterator[tuple[Image.Image, str]]:
        for i, d in picks:
            yield digit_image(x[i]), DIGITS_CLASSES[d]

    return write_meta_album(
        out_dir, items(), name="UCI digits micro",
        description=(f"UCI optical-recognition handwritten digits (43 writers, 8x8 blocks of "
                     f"32x32 bitmaps), {per_class} images per digit drawn with seed {seed} from "
                     "the copy shipped with scikit-learn; upscaled to 128x128 (bicubic), RGB."),
        license=DIGITS_LICENSE, source=origin, overwrite=overwrite,
        extra_info={"seed": seed, "category_characters": {c: c[-1] for c in DIGITS_CLASSES}})
