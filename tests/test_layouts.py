"""Your own dataset in any layout (rrrnet.data.layouts, parts, files): the split-folder tree with odd
images and junk, the ratio split, labels CSVs, Meta-Album's micro split, every file accounted for,
and each bad input as a DataError naming the file or class. Every dataset is 8x8 images in tmp_path."""
from __future__ import annotations

import os
import shutil
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import make_meta_album, read_csv
from rrrnet.data import (ImageDataset, Parts, Split, decode_rgb, load_dataset, load_parts,
                         micro_split, parse_split, read_image, resize_square, write_split_files)
from rrrnet.data.files import check_file
from rrrnet.data.parts import ratio_counts
from rrrnet.errors import DataError

_counter = iter(range(10**6))


def unique(mode: str = "RGB", size=(8, 8)) -> Image.Image:
    """A small RGB image unlike every other one made here (its pixels encode a counter), in ``mode``."""
    n = next(_counter)
    pixels = np.random.default_rng(n).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    return Image.fromarray(pixels).convert(mode)


def save(path: Path, image: Image.Image | None = None, **options) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    (image or unique()).save(path, **options)
    return path


def grey16(path: Path, value: int) -> Path:
    """A 16-bit greyscale PNG (mode I;16) of one value."""
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.full((8, 8), value, dtype=np.uint16)
    pixels[0, 0] = next(_counter)  # unique bytes
    Image.fromarray(pixels).save(path)
    return path


def exif_rotated(path: Path) -> Path:
    """A 4 wide x 8 high JPEG stored as 8x4 with EXIF orientation 6 (rotate to display)."""
    exif = Image.Exif()
    exif[0x0112] = 6
    return save(path, unique(size=(8, 4)), exif=exif)


def truncated_png(path: Path) -> Path:
    save(path, unique(size=(32, 32)))
    path.write_bytes(path.read_bytes()[:-40])
    return path


def files_under(root: Path) -> set[str]:
    return {(Path(top) / name).relative_to(root).as_posix()
            for top, _, names in os.walk(root) for name in names}


def snapshot(root: Path) -> dict[str, tuple[int, int]]:
    """Every path under root with its size and modification time: to show nothing was written."""
    return {p: (os.lstat(root / p).st_size, os.lstat(root / p).st_mtime_ns)
            for p in files_under(root) | {str(Path(t).relative_to(root)) for t, _, _ in os.walk(root)}}


# --------------------------------------------------------------------------------------------
# The split-folder tree of the issue: imbalanced classes, odd images, junk, links, a leaked copy
# --------------------------------------------------------------------------------------------

@pytest.fixture
def messy(tmp_path) -> Path:
    root = tmp_path / "pets"
    cat, dog, owl = (root / "train" / c for c in ("cat", "dog", "owl"))
    save(cat / "c0.png")
    save(cat / "c1.PNG")
    save(cat / "c2.JpG", format="JPEG")
    save(cat / "c3.png", Image.new("L", (8, 8), 100))                     # greyscale
    rgba = Image.new("RGBA", (8, 8), (255, 0, 0, 0))                       # transparent red
    rgba.putpixel((0, 0), (0, 0, 255, 255))
    save(cat / "c4.png", rgba)
    grey16(cat / "c5.png", 128 * 256)                                      # 16-bit
    os.link(cat / "c0.png", cat / "c0_hard.png")                           # hard link: duplicate
    os.symlink("c1.PNG", cat / "c1_link.png")                              # symbolic link: duplicate
    (cat / "notes.txt").write_text("not an image")
    (cat / ".DS_Store").write_bytes(b"\0\0\0\1Bud1")
    (cat / "Thumbs.db").write_bytes(b"\xd0\xcf\x11\xe0")
    truncated_png(cat / "trunc.png")
    (cat / "empty.jpg").write_bytes(b"")
    save(dog / "d0.gif", unique("P"))                                      # palette
    save(dog / "d1.jpg", unique("CMYK"))                                   # CMYK JPEG
    exif_rotated(dog / "d2.jpeg")                                          # EXIF-rotated
    save(tmp_path / "elsewhere.png")
    os.symlink(tmp_path / "elsewhere.png", dog / "outside.png")            # link out of the root
    save(owl / "o0.png")
    save(owl / "o1.BMP")
    for part, counts in (("Valid", {"cat": 2, "dog": 1}), ("test", {"cat": 2, "dog": 1, "owl": 1})):
        for name, n in counts.items():
            for i in range(n):
                save(root / part / name / f"{name}{i}.png")
    shutil.copy(cat / "c3.png", root / "test" / "cat" / "copy_of_c3.png")  # leaked train image
    (root / "README.txt").write_text("my pets")
    save(root / "__MACOSX" / "train" / "._c0.png")
    return root


EXPECTED = {"cat": {"train": 6, "val": 2, "test": 2},
            "dog": {"train": 3, "val": 1, "test": 1},
            "owl": {"train": 2, "val": 0, "test": 1}}
EXPECTED_SKIPPED = {
    "train/cat/c0_hard.png": ("duplicate", "duplicate of train/cat/c0.png (hard link)"),
    "train/cat/c1_link.png": ("duplicate", "duplicate of train/cat/c1.PNG (symbolic link)"),
    "train/cat/notes.txt": ("not-image", "not an image (extension '.txt')"),
    "train/cat/.DS_Store": ("hidden", "hidden or system file (.DS_Store)"),
    "train/cat/Thumbs.db": ("hidden", "hidden or system file (Thumbs.db)"),
    "train/cat/trunc.png": ("unreadable", "unreadable or truncated image"),
    "train/cat/empty.jpg": ("empty", "empty file"),
    "train/dog/outside.png": ("outside", "outside the dataset folder"),
    "test/cat/copy_of_c3.png": ("copy", "same image as train file train/cat/c3.png (same bytes); "
                                        "removed from test"),
    "README.txt": ("misplaced", "not in a class folder; move it into one"),
    "__MACOSX/": ("folder", "hidden or system folder; its 1 files are not read"),
}


def test_split_folders_counts_per_part_and_class(messy):
    parts = load_parts(messy)
    assert isinstance(parts, Split) and parts.layout == "split-folders"
    assert parts.classes == ("cat", "dog", "owl")
    assert parts.summary()["classes"] == EXPECTED
    assert parts.summary()["parts"] == {"train": 11, "val": 3, "test": 4}
    assert parts.summary()["duplicates_removed"] == 3
    assert parts.summary()["copies_of_earlier_parts_removed"] == 1
    assert parts.notes == ("val has no image of class(es) 'owl'",)
    assert parts.val.classes == parts.test.classes == parts.classes


def test_split_folders_skipped_reasons(messy):
    skipped = {s.file: s for s in load_parts(messy).skipped}
    assert set(skipped) == set(EXPECTED_SKIPPED)
    for file, (kind, reason) in EXPECTED_SKIPPED.items():
        assert skipped[file].kind == kind and reason in skipped[file].reason, file


def test_every_file_is_in_split_csv_or_skipped_csv(messy, tmp_path):
    parts = load_parts(messy)
    split_csv, skipped_csv = write_split_files(parts, tmp_path / "run")
    used, skipped = read_csv(split_csv), read_csv(skipped_csv)
    assert list(used[0]) == ["file", "label", "part"] and list(skipped[0]) == ["file", "reason"]
    # split.csv counts equal the folder's usable images per part (val/ counted as val)
    per_part = Counter(row["part"] for row in used)
    assert per_part == {"train": 11, "val": 3, "test": 4}
    folder_images = Counter(f.split("/")[0].lower().replace("valid", "val") for f in files_under(messy)
                            if f.split("/")[0] in ("train", "Valid", "test"))
    skipped_per_part = Counter(row["file"].split("/")[0] for row in skipped if "/" in row["file"][:-1])
    assert {p: folder_images[p] - skipped_per_part[p] for p in per_part} == per_part
    # every file under the folder is listed once, in one of the two files (or under a skipped folder)
    listed = [row["file"] for row in used + skipped]
    assert len(listed) == len(set(listed))
    inside_skipped_folders = {f for f in files_under(messy) if f.startswith("__MACOSX/")}
    assert set(listed) - {"__MACOSX/"} == files_under(messy) - inside_skipped_folders
    assert Counter((r["label"], r["part"]) for r in used)[("owl", "test")] == 1


def test_nothing_is_written_into_the_dataset_folder(messy, tmp_path):
    before = snapshot(messy)
    parts = load_parts(messy)
    write_split_files(parts, tmp_path / "out")
    with pytest.raises(DataError, match="inside the dataset folder"):
        write_split_files(parts, messy / "runs")
    assert snapshot(messy) == before


def test_odd_images_load_as_rgb_uint8(messy):
    parts = load_parts(messy)
    for path in parts.train.paths + parts.val.paths + parts.test.paths:
        array = read_image(path, size=8)
        assert array.shape == (8, 8, 3) and array.dtype == np.uint8
    cat = messy / "train" / "cat"
    assert (read_image(cat / "c3.png", 8) == 100).all()                   # greyscale
    rgba = read_image(cat / "c4.png", 8)
    assert tuple(rgba[0, 0]) == (0, 0, 255) and tuple(rgba[7, 7]) == (255, 255, 255)  # on white
    assert (read_image(cat / "c5.png", 8)[1:, 1:] == 128).all()           # 16-bit scaled by 1/256
    assert decode_rgb(messy / "train" / "dog" / "d2.jpeg").size == (4, 8)  # EXIF applied


def test_dark_16_bit_image_stays_dark(tmp_path):
    # 16-bit values below 256 are nearly black, not bright 8-bit values
    grey16(tmp_path / "dark.png", 200)
    assert (read_image(tmp_path / "dark.png", 8)[1:, 1:] == 0).all()


def test_progress_is_reported_for_every_file(messy):
    calls = []
    load_parts(messy, on_progress=lambda done, total: calls.append((done, total)))
    assert calls[-1][0] == calls[-1][1] == len(calls) > 20


# --------------------------------------------------------------------------------------------
# Bad split-folder input
# --------------------------------------------------------------------------------------------

def small_tree(root: Path, counts: dict[str, dict[str, int]]) -> Path:
    for part, classes in counts.items():
        for name, n in classes.items():
            (root / part / name).mkdir(parents=True, exist_ok=True)
            for i in range(n):
                save(root / part / name / f"{i}.png")
    return root


def test_class_folder_of_only_non_images_is_named(tmp_path):
    root = small_tree(tmp_path / "d", {"train": {"a": 3, "b": 3}})
    (root / "train" / "c").mkdir()
    (root / "train" / "c" / "list.txt").write_text("x")
    (root / "train" / "c" / ".DS_Store").write_text("x")
    with pytest.raises(DataError, match=r"class folder .*train/c holds no usable image "
                                        r"\(1 hidden or system file, 1 not an image\)"):
        load_parts(root)


def test_empty_class_folder_and_empty_part_are_named(tmp_path):
    root = small_tree(tmp_path / "d", {"train": {"a": 3, "b": 3}})
    (root / "train" / "c").mkdir()
    with pytest.raises(DataError, match=r"class folder .*train/c is empty"):
        load_parts(root)
    (root / "train" / "c").rmdir()
    (root / "val").mkdir()
    with pytest.raises(DataError, match=r".*/val holds no class folders"):
        load_parts(root)


def test_class_with_one_train_image_names_class_and_counts(tmp_path):
    root = small_tree(tmp_path / "d", {"train": {"a": 3, "b": 1}, "test": {"a": 1, "b": 4}})
    with pytest.raises(DataError, match=r"'b': 1 train, 0 val, 4 test\); add images"):
        load_parts(root)


def test_class_in_test_but_not_in_train_is_named(tmp_path):
    root = small_tree(tmp_path / "d", {"train": {"a": 3, "b": 3}, "test": {"a": 1, "zebra": 2}})
    with pytest.raises(DataError, match=r"in test but not in train \('zebra': 0 train, 0 val, 2 test\)"):
        load_parts(root)


def test_val_made_only_of_train_copies_is_an_error(tmp_path):
    root = small_tree(tmp_path / "d", {"train": {"a": 3, "b": 3}})
    (root / "val" / "a").mkdir(parents=True)
    shutil.copy(root / "train" / "a" / "0.png", root / "val" / "a" / "x.png")
    with pytest.raises(DataError, match="val of .* has no usable image left .*copies of train images"):
        load_parts(root)


def test_two_names_of_one_part_and_parts_without_train(tmp_path):
    root = small_tree(tmp_path / "d", {"train": {"a": 2, "b": 2}, "val": {"a": 1}, "VALIDATION": {"b": 1}})
    with pytest.raises(DataError, match="both VALIDATION/ and val/"):
        load_parts(root)
    root = small_tree(tmp_path / "e", {"test": {"a": 2}, "val": {"a": 2}})
    with pytest.raises(DataError, match=r"test/, val/ but no train/ folder.*--layout class-folders"):
        load_parts(root)
    # forced, the same folders are classes
    assert load_parts(root, layout="class-folders", split=(1, 0, 0)).classes == ("test", "val")


def test_split_ratio_refused_for_a_layout_with_parts(tmp_path):
    root = small_tree(tmp_path / "d", {"train": {"a": 2, "b": 2}})
    with pytest.raises(DataError, match="has its own train/val/test parts; leave out"):
        load_parts(root, split=(0.8, 0.1, 0.1))
    parts = load_parts(root)  # train only: val and test are empty, not None
    assert len(parts.val) == len(parts.test) == 0 and parts.val.classes == ("a", "b")


# --------------------------------------------------------------------------------------------
# Ratio split of a plain class-folder tree
# --------------------------------------------------------------------------------------------

@pytest.fixture
def plain(tmp_path) -> Path:
    return small_tree(tmp_path / "plain", {".": {"ant": 20, "bee": 10, "cow": 3}})


def test_ratio_split_is_stratified_with_the_small_class_rule(plain):
    parts = load_parts(plain)
    assert parts.layout == "class-folders" and parts.rule == "ratio split 0.8/0.1/0.1 (seed 0)"
    assert parts.summary()["classes"] == {"ant": {"train": 16, "val": 2, "test": 2},
                                          "bee": {"train": 8, "val": 1, "test": 1},
                                          "cow": {"train": 3, "val": 0, "test": 0}}
    assert parts.notes == ("class 'cow' (3 images) gets no val or test image at 0.8/0.1/0.1",)
    paths = [set(p.paths) for p in (parts.train, parts.val, parts.test)]
    assert sum(map(len, paths)) == len(set.union(*paths)) == 33


def test_ratio_split_is_deterministic_by_seed_and_per_class(plain, tmp_path):
    def members(root, seed):
        parts = load_parts(root, seed=seed)
        return {(p, path.name, parts.classes[label]) for p in ("train", "val", "test")
                for path, label in zip(parts.part(p).paths, parts.part(p).labels)}
    first = members(plain, 0)
    assert members(plain, 0) == first
    assert members(plain, 1) != first
    # adding images to one class leaves the others' split as it was
    for i in range(10, 15):
        save(plain / "bee" / f"{i}.png")
    ant = {m for m in first if m[2] == "ant"}
    assert {m for m in members(plain, 0) if m[2] == "ant"} == ant


@pytest.mark.parametrize("n, ratios, expected", [
    (10, (0.8, 0.1, 0.1), (8, 1, 1)), (5, (0.8, 0.1, 0.1), (3, 1, 1)), (3, (0.8, 0.1, 0.1), (3, 0, 0)),
    (3, (0.4, 0.3, 0.3), (2, 0, 1)), (2, (0.2, 0.4, 0.4), (2, 0, 0)), (7, (1, 0, 0), (7, 0, 0))])
def test_ratio_counts_keep_two_train_images(n, ratios, expected):
    assert ratio_counts(n, ratios) == expected


@pytest.mark.parametrize("split, message", [
    ("0.8,0.1,0.2", "sum to 1.1, not 1"), ((0.5, 0.5), "three ratios"), ("0,0.5,0.5", "train > 0"),
    ("0.9,-0.1,0.2", "each >= 0"), ("eighty", "'micro' or three ratios")])
def test_bad_split_ratios(split, message):
    with pytest.raises(DataError, match=message):
        parse_split(split)


def test_split_ratios_within_tolerance():
    assert parse_split("0.7,0.2,0.1") == (0.7, 0.2, 0.1)
    assert parse_split((0.6, 0.2, 0.2 + 5e-7)) == (0.6, 0.2, 0.2 + 5e-7)
    assert parse_split(" Micro ") == "micro" and parse_split(None) is None


def test_ratio_that_leaves_a_part_empty_is_an_error(tmp_path):
    root = small_tree(tmp_path / "d", {".": {"a": 3, "b": 4}})
    with pytest.raises(DataError, match=r"leaves val empty: the largest class .* has 4 images"):
        load_parts(root)
    assert load_parts(root, split="0.5,0,0.5").summary()["parts"] == {"train": 4, "val": 0, "test": 3}


def test_ratio_split_removes_duplicates_before_splitting(plain):
    shutil.copy(plain / "ant" / "0.png", plain / "ant" / "zz_copy.png")
    parts = load_parts(plain)
    assert [s.file for s in parts.skipped] == ["ant/zz_copy.png"]
    assert parts.summary()["classes"]["ant"] == {"train": 16, "val": 2, "test": 2}


def test_class_with_one_image_in_a_plain_tree(tmp_path):
    root = small_tree(tmp_path / "d", {".": {"a": 5, "b": 1}})
    with pytest.raises(DataError, match=r"'b': 1 image\(s\)\); add images"):
        load_parts(root)


# --------------------------------------------------------------------------------------------
# Labels CSV
# --------------------------------------------------------------------------------------------

def csv_dataset(root: Path, lines: list[str], images=("a/1.png", "a/2.png", "b/1.png", "b/2.png",
                                                     "a/3.png", "b/3.png"), name="labels.csv") -> Path:
    for image in images:
        save(root / image)
    (root / name).write_text("\n".join(lines) + "\n", encoding="utf-8")
    return root / name


GOOD = ["file,label,part", "a/1.png,cat,train", "a/2.png,cat,train", "b/1.png,dog,train",
        "b/2.png,dog,train", "a/3.png,cat,Validation", "b/3.png,dog,test"]


def test_csv_with_parts_bom_and_any_case_header(tmp_path):
    labels = csv_dataset(tmp_path / "d", GOOD)
    labels.write_bytes(b"\xef\xbb\xbf" + labels.read_bytes().replace(b"file,label,part", b"File, Label ,PART"))
    parts = load_parts(labels)
    assert parts.layout == "csv" and parts.rule == "parts from the CSV's part column"
    assert parts.summary()["classes"] == {"cat": {"train": 2, "val": 1, "test": 0},
                                          "dog": {"train": 2, "val": 0, "test": 1}}
    assert [row["file"] for row in parts.used] == ["a/1.png", "a/2.png", "b/1.png", "b/2.png",
                                                   "a/3.png", "b/3.png"]


def test_csv_paths_relative_to_a_given_root(tmp_path):
    csv_dataset(tmp_path / "images", [])
    labels = tmp_path / "lists" / "mine.csv"
    labels.parent.mkdir()
    labels.write_text("\n".join(GOOD) + "\n")
    parts = load_parts(tmp_path / "images", labels=labels)
    assert parts.root == tmp_path / "images" and len(parts.train) == 4
    with pytest.raises(DataError, match=r"6 listed files not found .*relative to .*lists"):
        load_parts(labels=labels)


def test_csv_without_part_column_is_split_by_ratio(tmp_path):
    images = [f"{c}/{i}.png" for c in "ab" for i in range(10)]
    labels = csv_dataset(tmp_path / "d", ["file,label"] + [f"{f},{f[0]}" for f in images], images)
    parts = load_parts(tmp_path / "d")  # labels.csv with file,label and no info.json: the csv layout
    assert parts.layout == "csv" and parts.summary()["parts"] == {"train": 16, "val": 2, "test": 2}
    assert load_parts(labels, split="0.5,0.5,0").summary()["parts"] == {"train": 10, "val": 10, "test": 0}


@pytest.mark.parametrize("lines, message", [
    (["file,category", "a/1.png,cat"], r"labels.csv has no column label \(its header is file,category\)"),
    (["file,label,file", "a/1.png,cat,a/2.png"], "names column file more than once"),
    (["file,label,part", "a/1.png,cat,train", "a/2.png,cat,holdout"],
     r"line 3: part 'holdout' is not train, val or test"),
    (["file,label", "../outside.png,cat"], r"line 2: ../outside.png is outside the dataset folder"),
    (["file,label", "a/1.png,cat", "./a/../a/1.png,cat"], "lines 2 and 3 both list"),
    (["file,label", "a/1.png,cat", "a/2.png,"], "line 3: empty label"),
    (["file,label"], "a header but no rows"),
    (["file,label,part", "a/1.png,cat,test", "a/2.png,cat,val"], "no row has part train"),
    (["file,label,part", "a/1.png,cat,train", "a/2.png,cat,train", "b/1.png,dog,train",
      "b/2.png,dog,train", "a/3.png,cow,test"], r"in test but not in train \('cow': 0 train, 0 val, 1 test\)"),
])
def test_csv_errors_name_the_file_and_line(tmp_path, lines, message):
    save(tmp_path / "outside.png")
    labels = csv_dataset(tmp_path / "d", lines)
    with pytest.raises(DataError, match=message) as error:
        load_parts(labels)
    assert "\n" not in str(error.value)


def test_csv_symlink_out_of_the_root_is_skipped_not_used(tmp_path):
    save(tmp_path / "secret.png")
    labels = csv_dataset(tmp_path / "d", GOOD + ["a/link.png,cat,train"])
    os.symlink(tmp_path / "secret.png", tmp_path / "d" / "a" / "link.png")
    parts = load_parts(labels)
    assert [(s.file, s.kind) for s in parts.skipped] == [("a/link.png", "outside")]
    assert len(parts.train) == 4
    assert len(load_parts(labels, allow_outside_files=True).train) == 5


# --------------------------------------------------------------------------------------------
# Meta-Album
# --------------------------------------------------------------------------------------------

def test_meta_album_micro_split_is_unchanged(tmp_path):
    root = make_meta_album(tmp_path / "ma", classes=4, per_class=12)
    save(root / "images" / "not_listed.png")
    parts = load_parts(root, micro_sizes=(5, 2, 5))
    expected = micro_split(load_dataset(root), train=5, val=2, test=5)
    assert parts.layout == "meta-album" and parts.rule == "micro split 5/2/5 per class"
    for name in ("train", "val", "test"):
        assert parts.part(name) == getattr(expected, name)
    assert [(s.file, s.kind) for s in parts.skipped] == [("images/not_listed.png", "unlisted")]


def test_meta_album_can_be_split_by_ratio(tmp_path):
    root = make_meta_album(tmp_path / "ma", classes=4, per_class=10)
    parts = load_parts(root, split=(0.6, 0.2, 0.2))
    assert parts.summary()["parts"] == {"train": 24, "val": 8, "test": 8}


def test_meta_album_micro_split_drops_test_copies_of_train_images(tmp_path):
    root = make_meta_album(tmp_path / "ma", classes=2, per_class=6)
    rows = (root / "labels.csv").read_text().splitlines()
    first = rows[1].split(",")
    shutil.copy(root / "images" / first[0], root / "images" / "copy.png")
    (root / "labels.csv").write_text("\n".join(rows + [f"copy.png,{first[1]},"]) + "\n")
    parts = load_parts(root, micro_sizes=(2, 0, None))
    assert parts.summary()["duplicates_removed"] == 1
    assert len(parts.train) + len(parts.test) == 12


# --------------------------------------------------------------------------------------------
# Files and resizing
# --------------------------------------------------------------------------------------------

def test_truncated_jpeg_is_caught_by_the_real_decode(tmp_path):
    save(tmp_path / "x.jpg", unique(size=(64, 64)), format="JPEG")
    (tmp_path / "x.jpg").write_bytes((tmp_path / "x.jpg").read_bytes()[:-200])
    check = check_file(tmp_path / "x.jpg", tmp_path)
    assert check.kind == "unreadable" and "truncated" in check.reason


def test_a_broken_link_and_an_image_over_the_bomb_limit_say_so(tmp_path, monkeypatch):
    os.symlink(tmp_path / "gone.png", tmp_path / "link.png")
    assert check_file(tmp_path / "link.png", tmp_path).kind == "broken-link"
    Image.new("RGB", (300, 300), (9, 9, 9)).save(tmp_path / "big.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 300 * 300 // 2 - 1)  # refused above 2x
    check = check_file(tmp_path / "big.png", tmp_path)
    assert check.kind == "too-large" and "RRRNET_MAX_IMAGE_PIXELS" in check.reason
    monkeypatch.setenv("RRRNET_MAX_IMAGE_PIXELS", "100000")
    from rrrnet.data.dataset import configure_image_limits
    configure_image_limits()
    assert Image.MAX_IMAGE_PIXELS == 100000 and check_file(tmp_path / "big.png", tmp_path).usable
    monkeypatch.setenv("RRRNET_MAX_IMAGE_PIXELS", "lots")
    with pytest.raises(DataError, match="RRRNET_MAX_IMAGE_PIXELS must be a positive"):
        configure_image_limits()


@pytest.mark.parametrize("mode", ["RGBA", "P", "I;16"])
def test_an_image_larger_than_the_decoded_limit_is_shrunk_before_conversion(tmp_path, monkeypatch,
                                                                            mode):
    """A 600 x 300 image with a decoded limit of 100 px is reduced by 6 (box filter) before
    the RGB conversion, so read_image sees 100 x 50 and its colours survive."""
    import rrrnet.data.dataset as dataset
    monkeypatch.setattr(dataset, "LARGEST_DECODED_SIDE", 100)
    monkeypatch.setattr(dataset.shrink_large, "__defaults__", (100,))
    left = {"RGBA": (200, 0, 0, 255), "P": 1, "I;16": 65535}[mode]
    image = Image.new(mode, (600, 300), (0, 0, 0, 255) if mode == "RGBA" else 0)  # opaque black
    if mode == "P":
        image.putpalette([0, 0, 0, 200, 0, 0] + [0] * 762)
    image.paste(left, (0, 0, 300, 300))
    image.save(tmp_path / "wide.png")
    decoded = decode_rgb(tmp_path / "wide.png")
    assert decoded.size == (100, 50)
    pixels = np.asarray(decoded)
    assert pixels[:, :50].max(axis=(0, 1)).tolist() == ([255] * 3 if mode == "I;16" else [200, 0, 0])
    assert pixels[:, 50:].max() == 0


def striped(path: Path) -> Path:
    """8 wide x 4 high: 2 red columns, 4 green, 2 blue."""
    pixels = np.zeros((4, 8, 3), dtype=np.uint8)
    pixels[:, :2] = (255, 0, 0)
    pixels[:, 2:6] = (0, 255, 0)
    pixels[:, 6:] = (0, 0, 255)
    return save(path, Image.fromarray(pixels))


def test_resize_modes(tmp_path):
    path = striped(tmp_path / "wide.png")
    crop = read_image(path, size=4, resize="crop")
    assert (crop == (0, 255, 0)).all()                        # the centre square
    pad = read_image(path, size=8, resize="pad")
    assert (pad[:2] == 255).all() and (pad[6:] == 255).all()  # white bands above and below
    assert tuple(pad[2, 0]) == (255, 0, 0) and tuple(pad[5, 7]) == (0, 0, 255)
    squash = read_image(path, size=8)                         # the default, as before
    assert np.array_equal(squash, np.asarray(Image.open(path).resize((8, 8), Image.Resampling.BICUBIC)))
    assert tuple(squash[0, 0]) == (255, 0, 0)
    with pytest.raises(DataError, match="resize must be one of squash, crop, pad"):
        resize_square(Image.open(path), 4, "stretch")


def test_image_dataset_uses_the_resize_mode(tmp_path):
    root = small_tree(tmp_path / "d", {".": {"a": 2, "b": 2}})
    striped(root / "a" / "0.png")
    parts = load_parts(root, split=(1, 0, 0))
    dataset = ImageDataset(parts.train, size=4, resize="crop")
    index = [p.name for p in parts.train.paths].index("0.png")
    assert (dataset[index][0] == (0, 255, 0)).all()
    with pytest.raises(DataError, match="resize must be"):
        ImageDataset(parts.train, resize="zoom")


def test_table_lists_classes_skipped_and_duplicates(messy):
    table = load_parts(messy).table()
    assert "split-folders, parts from its folders" in table
    assert any(line.split() == ["owl", "2", "0", "1"] for line in table.splitlines())
    assert any(line.split() == ["total", "11", "3", "4"] for line in table.splitlines())
    assert "skipped 11 files" in table and "duplicates removed: 3 (1 val/test copies" in table
    assert isinstance(load_parts(messy), Parts)


def test_a_csv_part_of_only_unreadable_files_is_an_error(tmp_path):
    labels = csv_dataset(tmp_path / "d", GOOD[:5] + ["a/bad.png,cat,test"],
                         images=("a/1.png", "a/2.png", "b/1.png", "b/2.png"))
    (tmp_path / "d" / "a" / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    with pytest.raises(DataError, match="test of .* has no usable image left"):
        load_parts(labels)


def test_a_root_spelled_with_dot_dot_gives_the_same_account(tmp_path):
    root = make_meta_album(tmp_path / "ma", classes=2, per_class=12)
    (tmp_path / "other").mkdir()
    parts = load_parts(tmp_path / "other" / ".." / "ma", micro_sizes=(5, 0, 5))
    assert parts.skipped == () and parts.root == root
    assert parts.used[0]["file"].startswith("images/")
