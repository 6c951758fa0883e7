"""Emoji pictures of Google's Noto Color Emoji (Debian ``fonts-noto-color-emoji``; images Apache
2.0, font SIL OFL 1.1): 18 classes, each a union of Unicode emoji sub-groups (UTS #51's
``emoji-test.txt``, Debian ``unicode-data``).

The pictures are the colour bitmaps stored in the font (its CBDT table, 136x128 PNG files drawn
by Noto's artists), read as stored: nothing is rendered here. Only single-code-point emoji are
used, so that skin-tone and gender variants (sequences) never put near-copies of one picture in
both the training and the test split.
"""
from __future__ import annotations

import io
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
from PIL import Image

from ...errors import DataError
from ..meta_album import (DEFAULT_PER_CLASS, check_per_class, square_resize, to_rgb_image,
                          write_meta_album)

EMOJI_FONT = Path("/usr/share/fonts/truetype/noto/NotoColorEmoji.ttf")
EMOJI_TEST = Path("/usr/share/unicode/emoji/emoji-test.txt")
EMOJI_LICENSE = ("Apache 2.0 (Noto Emoji images; the font: SIL Open Font License 1.1), Google, "
                 "Debian fonts-noto-color-emoji")


@dataclass(frozen=True)
class EmojiClass:
    name: str                        # the category name (file-name safe)
    subgroups: tuple[str, ...]       # emoji-test.txt sub-groups whose emoji form the class


# Sub-groups merged into classes of at least 40 single-code-point emoji (Noto 2.04x, Unicode
# 15.1); left out: sub-groups too small to stand alone or to join a class in meaning (hearts,
# emotions, cat and monkey faces, body parts, time, air and water transport, drinks, dishware,
# money, locks, science, medical, other objects, flags).
EMOJI_CLASSES: tuple[EmojiClass, ...] = (
    EmojiClass("face", ("face-smiling", "face-affection", "face-tongue", "face-hand",
                        "face-neutral-skeptical", "face-sleepy", "face-unwell", "face-hat",
                        "face-glasses", "face-concerned", "face-negative", "face-costume")),
    EmojiClass("hand", ("hand-fingers-open", "hand-fingers-partial", "hand-single-finger",
                        "hand-fingers-closed", "hands", "hand-prop")),
    EmojiClass("person", ("person", "person-gesture", "person-role", "person-fantasy",
                          "person-activity", "person-sport", "person-resting", "family",
                          "person-symbol")),
    EmojiClass("mammal", ("animal-mammal",)),
    EmojiClass("other_animal", ("animal-bird", "animal-amphibian", "animal-reptile",
                                "animal-marine", "animal-bug")),
    EmojiClass("plant_or_produce", ("plant-flower", "plant-other", "food-fruit",
                                    "food-vegetable")),
    EmojiClass("dish", ("food-prepared", "food-asian", "food-sweet")),
    EmojiClass("place", ("place-map", "place-geographic", "place-building", "place-religious",
                         "place-other", "hotel")),
    EmojiClass("ground_transport", ("transport-ground",)),
    EmojiClass("sky_weather", ("sky & weather",)),
    EmojiClass("activity", ("event", "award-medal", "sport", "game", "arts & crafts")),
    EmojiClass("clothing", ("clothing",)),
    EmojiClass("sound_and_device", ("sound", "music", "musical-instrument", "phone", "computer",
                                    "light & video")),
    EmojiClass("office_paper", ("book-paper", "mail", "writing", "office")),
    EmojiClass("tool_household", ("tool", "household")),
    EmojiClass("sign", ("transport-sign", "warning", "av-symbol", "religion", "zodiac",
                        "other-symbol", "gender", "math", "currency")),
    EmojiClass("letter_number", ("alphanum", "keycap", "punctuation")),
    EmojiClass("shape_arrow", ("geometric", "arrow")),
)


def emoji_subgroups(path: str | os.PathLike = EMOJI_TEST) -> dict[int, str]:
    """``{code point: sub-group}`` of the fully-qualified single-code-point emoji listed in
    ``emoji-test.txt`` (a trailing variation selector U+FE0F does not count)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path} not found: install Debian's unicode-data (apt-get install "
                        "unicode-data) or give emoji_test=PATH to Unicode's emoji-test.txt")
    subgroup, found = None, {}
    with open(path, encoding="utf-8") as f:
        for line in f:
            if line.startswith("# subgroup:"):
                subgroup = line.split(":", 1)[1].strip()
                continue
            if line.startswith("#") or ";" not in line:
                continue
            points, rest = line.split(";", 1)
            if rest.split("#", 1)[0].strip() != "fully-qualified":
                continue
            codes = [int(c, 16) for c in points.split() if c.upper() != "FE0F"]
            if len(codes) == 1 and subgroup is not None:
                found.setdefault(codes[0], subgroup)
    if not found:
        raise DataError(f"{path} lists no fully-qualified emoji: is it Unicode's emoji-test.txt?")
    return found


def emoji_bitmaps(font: str | os.PathLike = EMOJI_FONT) -> dict[int, bytes]:
    """``{code point: PNG bytes}`` of the colour bitmaps of a CBDT font (its first strike)."""
    font = Path(font)
    if not font.is_file():
        raise DataError(f"{font} not found: install Debian's fonts-noto-color-emoji (apt-get "
                        "install fonts-noto-color-emoji) or give the font with --source PATH")
    try:
        from fontTools.ttLib import TTFont
    except ImportError as e:
        raise DataError("the emoji converter needs fontTools to read the font's bitmaps: "
                        "pip install fonttools") from e
    try:
        with TTFont(font, lazy=True) as tt:
            if "CBDT" not in tt:
                raise DataError(f"{font} has no colour bitmaps (CBDT table); give Noto Color "
                                "Emoji's NotoColorEmoji.ttf")
            strike = tt["CBDT"].strikeData[0]
            bitmaps = {}
            for code, glyph in tt.getBestCmap().items():
                data = getattr(strike.get(glyph), "imageData", None)
                if data and data.startswith(b"\x89PNG"):
                    bitmaps[code] = bytes(data)
            return bitmaps
    except DataError:
        raise
    except Exception as e:  # a damaged or foreign font file
        raise DataError(f"cannot read the colour bitmaps of {font}: {e}") from e


def emoji_image(png: bytes) -> Image.Image:
    """A stored emoji bitmap on white, padded to a square and resized to 128x128."""
    with Image.open(io.BytesIO(png)) as im:
        im.load()
        return square_resize(to_rgb_image(im))


def select_emoji(bitmaps: dict[int, bytes], subgroups: dict[int, str],
                 per_class: int = DEFAULT_PER_CLASS, seed: int = 0,
                 classes: Sequence[EmojiClass] = EMOJI_CLASSES) -> list[list[int]]:
    """``per_class`` code points of every class: its emoji that the font has, in code-point
    order, shuffled with ``numpy.random.default_rng([seed, class index])``."""
    picks = []
    for index, cls in enumerate(classes):
        pool = sorted(c for c, sub in subgroups.items() if sub in cls.subgroups and c in bitmaps)
        if len(pool) < per_class:
            raise DataError(f"the font has {len(pool)} emoji of class {cls.name!r}, fewer than "
                            f"per_class={per_class}")
        order = np.random.default_rng([seed, index]).permutation(len(pool))
        picks.append([pool[i] for i in order[:per_class]])
    return picks


def convert_emoji(out_dir: str | os.PathLike, per_class: int = DEFAULT_PER_CLASS, seed: int = 0,
                  source: str | os.PathLike | None = None, overwrite: bool = False, *,
                  emoji_test: str | os.PathLike = EMOJI_TEST,
                  classes: Sequence[EmojiClass] = EMOJI_CLASSES) -> Path:
    """The 18 emoji classes of :data:`EMOJI_CLASSES`, ``per_class`` pictures each (default 40).

    ``source``: the colour emoji font (default Debian's NotoColorEmoji.ttf); ``emoji_test``:
    Unicode's ``emoji-test.txt``, which assigns every emoji its sub-group.
    """
    per_class = check_per_class(per_class)
    font = Path(source).expanduser() if source is not None else EMOJI_FONT
    subgroups = emoji_subgroups(emoji_test)
    bitmaps = emoji_bitmaps(font)
    picks = select_emoji(bitmaps, subgroups, per_class, seed, classes)

    def items() -> Iterator[tuple[Image.Image, str]]:
        for cls, codes in zip(classes, picks):
            for code in codes:
                yield emoji_image(bitmaps[code]), cls.name

    return write_meta_album(
        out_dir, items(), name="Noto Emoji micro",
        description=(f"{len(classes)} classes of Noto Color Emoji pictures (the colour bitmaps "
                     f"stored in the font, 136x128), each a union of Unicode emoji sub-groups; "
                     f"{per_class} single-code-point emoji per class drawn with seed {seed}; on "
                     "white, padded to a square, 128x128."),
        license=EMOJI_LICENSE, source=f"{font} + {emoji_test}", overwrite=overwrite,
        extra_info={"seed": seed, "category_subgroups": {c.name: list(c.subgroups)
                                                         for c in classes},
                    "code_points": {c.name: [f"U+{p:04X}" for p in codes]
                                    for c, codes in zip(classes, picks)}})
