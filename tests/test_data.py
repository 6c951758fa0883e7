"""The dataset layer: Meta-Album / ImageFolder loading and their errors, the authors' micro split,
image decoding to RGB, and the PyTorch Dataset. Every dataset is a few 16x16 images in tmp_path."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from rrrnet.data import (
    ImageDataset,
    LabelledImages,
    Split,
    decode_rgb,
    load_dataset,
    load_image_folder,
    load_meta_album,
    micro_split,
    read_image,
)
from rrrnet.errors import DataError

# Deliberately not alphabetical, so that "order of first appearance" is distinguishable from sorting.
CLASS_COLOURS = {"zebra": (255, 0, 0), "ant": (0, 255, 0), "moth": (0, 0, 255), "bee": (255, 255, 0)}


def solid(colour, mode="RGB", size=16) -> Image.Image:
    return Image.new(mode, (size, size), colour)


def write_meta_album(root: Path, per_class: int = 6, columns=("FILE_NAME", "CATEGORY", "SUPER_CATEGORY"),
                     info: dict | None = None) -> Path:
    """4 classes x ``per_class`` solid-colour images, rows interleaved class by class."""
    (root / "images").mkdir(parents=True)
    lines = [",".join(columns)]
    for i in range(per_class):
        for name, colour in CLASS_COLOURS.items():
            file = f"{name}_{i}.{'png' if i % 2 else 'jpg'}"
            solid(colour).save(root / "images" / file)
            lines.append(f"{file},{name},")
    (root / "labels.csv").write_text("\n".join(lines) + "\n")
    if info is not None:
        (root / "info.json").write_text(json.dumps(info))
    return root


def write_image_folder(root: Path, per_class: int = 3) -> Path:
    for name, colour in CLASS_COLOURS.items():
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            solid(colour).save(root / name / f"{i}.{'PNG' if i % 2 else 'jpeg'}")
    return root


def fake_images(labels, classes) -> LabelledImages:
    """Labels without image files: enough for split tests, which never open an image."""
    return LabelledImages(root=Path("toy"), paths=tuple(Path(f"{i}.png") for i in range(len(labels))),
                          labels=tuple(labels), classes=tuple(classes), name="toy")


# --------------------------------------------------------------------------------------------
# Meta-Album
# --------------------------------------------------------------------------------------------

def test_meta_album_classes_in_first_appearance_order(tmp_path):
    data = load_meta_album(write_meta_album(tmp_path / "DS", info={"dataset_name": "Toy"}))
    assert data.classes == ("zebra", "ant", "moth", "bee")
    assert data.name == "Toy"
    assert len(data) == 24 and data.counts() == [6, 6, 6, 6]
    assert data.paths[0] == tmp_path / "DS" / "images" / "zebra_0.jpg"
    assert data.labels[:5] == (0, 1, 2, 3, 0)


def test_meta_album_custom_columns_from_info_json(tmp_path):
    info = {"image_column_name": "file", "category_column_name": "label",
            "super_category_column_name": "group"}
    data = load_meta_album(write_meta_album(tmp_path / "DS", columns=("file", "label", "group"), info=info))
    assert data.classes == ("zebra", "ant", "moth", "bee")
    assert data.name == "DS"  # no dataset_name: the folder name


def test_meta_album_without_info_json_uses_defaults(tmp_path):
    data = load_meta_album(write_meta_album(tmp_path / "DS"))
    assert len(data.classes) == 4


def test_missing_info_json_with_custom_columns_names_info_json(tmp_path):
    root = write_meta_album(tmp_path / "DS", columns=("file", "label", "group"))
    with pytest.raises(DataError, match="info.json"):
        load_meta_album(root)


def test_missing_dataset_folder(tmp_path):
    with pytest.raises(DataError, match="nowhere"):
        load_meta_album(tmp_path / "nowhere")


def test_missing_labels_csv(tmp_path):
    root = write_meta_album(tmp_path / "DS")
    (root / "labels.csv").unlink()
    with pytest.raises(DataError, match="labels.csv"):
        load_meta_album(root)


def test_malformed_info_json_gives_line_and_column(tmp_path):
    root = write_meta_album(tmp_path / "DS")
    (root / "info.json").write_text('{\n  "dataset_name": "x",,\n}')
    with pytest.raises(DataError, match=r"info\.json.*line 2, column 23"):
        load_meta_album(root)


def test_labels_csv_missing_named_columns_lists_both(tmp_path):
    root = write_meta_album(tmp_path / "DS", info={"category_column_name": "species"})
    with pytest.raises(DataError, match=r"labels\.csv.*species") as error:
        load_meta_album(root)
    assert "'CATEGORY'" in str(error.value)  # the columns it has
    assert "['FILE_NAME', 'species']" in str(error.value)  # the columns it needs


@pytest.mark.parametrize("content", ["", "FILE_NAME,CATEGORY,SUPER_CATEGORY\n"])
def test_empty_labels_csv(tmp_path, content):
    root = write_meta_album(tmp_path / "DS")
    (root / "labels.csv").write_text(content)
    with pytest.raises(DataError, match=r"labels\.csv"):
        load_meta_album(root)


@pytest.mark.parametrize("row", [",ant,", "ant_0.jpg,,", "ant_0.jpg"])
def test_row_with_empty_file_or_category_gives_line_number(tmp_path, row):
    root = write_meta_album(tmp_path / "DS")
    lines = (root / "labels.csv").read_text().splitlines()
    lines[3] = row
    (root / "labels.csv").write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError, match=r"labels\.csv line 4: empty"):
        load_meta_album(root)


def test_listed_image_missing_is_named(tmp_path):
    root = write_meta_album(tmp_path / "DS")
    (root / "images" / "moth_3.png").unlink()
    with pytest.raises(DataError, match="moth_3.png"):
        load_meta_album(root)


def test_corrupt_and_truncated_images_are_named(tmp_path):
    root = write_meta_album(tmp_path / "DS")
    (root / "images" / "ant_1.png").write_bytes(b"not an image at all")
    with pytest.raises(DataError, match="ant_1.png"):
        load_meta_album(root)
    solid(CLASS_COLOURS["ant"]).save(root / "images" / "ant_1.png")
    big = Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8))
    big.save(root / "images" / "bee_2.jpg")
    data = (root / "images" / "bee_2.jpg").read_bytes()
    (root / "images" / "bee_2.jpg").write_bytes(data[: len(data) // 2])  # header intact, pixels cut
    with pytest.raises(DataError, match="bee_2.jpg"):
        load_meta_album(root)


def test_skip_bad_images_warns_and_drops(tmp_path):
    root = write_meta_album(tmp_path / "DS")
    (root / "images" / "ant_1.png").write_bytes(b"garbage")
    (root / "images" / "zebra_0.jpg").unlink()
    with pytest.warns(UserWarning) as record:
        data = load_meta_album(root, skip_bad_images=True)
    messages = " ".join(str(w.message) for w in record)
    assert "ant_1.png" in messages and "zebra_0.jpg" in messages
    assert len(data) == 22 and data.counts() == [5, 5, 6, 6]
    assert root / "images" / "ant_1.png" not in data.paths


def test_skip_bad_images_drops_a_class_with_nothing_left(tmp_path):
    root = write_meta_album(tmp_path / "DS", per_class=1)
    (root / "images" / "zebra_0.jpg").write_bytes(b"garbage")
    with pytest.warns(UserWarning, match="zebra"):
        data = load_meta_album(root, skip_bad_images=True)
    assert data.classes == ("ant", "moth", "bee") and data.labels == (0, 1, 2)


def test_repeated_file_name_is_refused(tmp_path):
    root = write_meta_album(tmp_path / "DS")
    with open(root / "labels.csv", "a") as handle:
        handle.write("ant_0.jpg,bee,\n")
    with pytest.raises(DataError, match=r"lines 3 and 26.*ant_0\.jpg"):
        load_meta_album(root)


# --------------------------------------------------------------------------------------------
# ImageFolder and auto-detection
# --------------------------------------------------------------------------------------------

def test_image_folder_sorted_classes_and_extensions(tmp_path):
    root = write_image_folder(tmp_path / "IF")
    (root / "ant" / "notes.txt").write_text("not an image")
    (root / ".hidden").mkdir()
    data = load_image_folder(root)
    assert data.classes == ("ant", "bee", "moth", "zebra")
    assert data.counts() == [3, 3, 3, 3] and data.name == "IF"
    assert data.paths[:3] == tuple(root / "ant" / f for f in ("0.jpeg", "1.PNG", "2.jpeg"))


def test_image_folder_errors(tmp_path):
    root = write_image_folder(tmp_path / "IF")
    (root / "empty").mkdir()
    with pytest.raises(DataError, match="empty"):
        load_image_folder(root)
    (root / "empty").rmdir()
    (root / "bee" / "1.PNG").write_bytes(b"garbage")
    with pytest.raises(DataError, match="1.PNG"):
        load_image_folder(root)
    with pytest.warns(UserWarning, match="1.PNG"):
        assert load_image_folder(root, skip_bad_images=True).counts() == [3, 2, 3, 3]


def test_load_dataset_detects_the_layout(tmp_path):
    meta = load_dataset(write_meta_album(tmp_path / "MA"))
    folder = load_dataset(write_image_folder(tmp_path / "IF"))
    assert meta.classes[0] == "zebra" and folder.classes[0] == "ant"


def test_load_dataset_explains_both_layouts(tmp_path):
    (tmp_path / "X" / "sub").mkdir(parents=True)
    with pytest.raises(DataError, match=r"Meta-Album.*ImageFolder"):
        load_dataset(tmp_path / "X")


def test_load_dataset_meta_album_without_labels_csv_is_not_an_image_folder(tmp_path):
    root = write_meta_album(tmp_path / "MA")
    (root / "labels.csv").unlink()
    with pytest.raises(DataError, match="labels.csv"):
        load_dataset(root)


# --------------------------------------------------------------------------------------------
# The micro split
# --------------------------------------------------------------------------------------------

def reference_split(labels, train, val, test):
    """The authors' convention, written independently of the implementation."""
    rng, parts = np.random.default_rng(88), ([], [], [])
    for label in sorted(set(labels)):
        indices = np.array([i for i, l in enumerate(labels) if l == label]); rng.shuffle(indices)
        for part, chunk in zip(parts, np.split(indices, [train, train + val, train + val + test])):
            part.extend(chunk)
    return [np.random.default_rng(66).permutation(np.array(part)).tolist() for part in parts]


def indices_of(part: LabelledImages, data: LabelledImages) -> list[int]:
    position = {path: i for i, path in enumerate(data.paths)}
    return [position[path] for path in part.paths]


def test_micro_split_matches_the_convention_and_a_frozen_list():
    labels = [0, 1, 2] * 6
    data = fake_images(labels, "abc")
    split = micro_split(data, train=2, val=1, test=2)
    got = [indices_of(part, data) for part in (split.train, split.val, split.test)]
    assert got == reference_split(labels, 2, 1, 2)
    # Frozen, so that a change of convention (seeds, order of the shuffles) is caught.
    assert got == [[9, 6, 5, 2, 4, 7], [3, 16, 11], [15, 0, 14, 17, 10, 1]]
    assert split.train.labels == tuple(labels[i] for i in got[0])


def test_micro_split_is_reproducible_disjoint_and_exact_per_class():
    labels = [int(x) for x in np.random.default_rng(5).integers(0, 4, 300)]  # unbalanced classes
    data = fake_images(labels, "abcd")
    first, second = micro_split(data, 20, 5, 20), micro_split(data, 20, 5, 20)
    assert first == second
    assert isinstance(first, Split)
    assert (first.train.counts(), first.val.counts(), first.test.counts()) == ([20] * 4, [5] * 4, [20] * 4)
    sets = [set(part.paths) for part in (first.train, first.val, first.test)]
    assert not (sets[0] & sets[1] or sets[0] & sets[2] or sets[1] & sets[2])
    assert [indices_of(p, data) for p in (first.train, first.val, first.test)] == reference_split(labels, 20, 5, 20)


def test_micro_split_test_none_takes_the_rest():
    data = fake_images([0, 1] * 9 + [1, 1], "ab")
    split = micro_split(data, train=3, val=0, test=None)
    assert split.train.counts() == [3, 3] and split.test.counts() == [6, 8] and len(split.val) == 0
    assert set(split.train.paths) | set(split.test.paths) == set(data.paths)


def test_micro_split_too_few_images_names_the_class():
    data = fake_images([0] * 40 + [1] * 12, ["big", "small"])
    with pytest.raises(DataError, match=r"40 images.*'small' has 12.*--train/--test"):
        micro_split(data, train=20, test=20)


def test_micro_split_needs_two_classes():
    with pytest.raises(DataError, match="at least 2"):
        micro_split(fake_images([0] * 50, ["only"]))


# --------------------------------------------------------------------------------------------
# Decoding
# --------------------------------------------------------------------------------------------

def check_rgb(path, size=8) -> np.ndarray:
    array = read_image(path, size=size)
    assert array.shape == (size, size, 3) and array.dtype == np.uint8
    return array


def test_read_image_grey_and_palette(tmp_path):
    solid(100, mode="L").save(tmp_path / "grey.png")
    assert (check_rgb(tmp_path / "grey.png") == 100).all()
    palette = solid((10, 20, 30)).convert("P", palette=Image.Palette.ADAPTIVE)
    palette.save(tmp_path / "palette.gif")
    assert (check_rgb(tmp_path / "palette.gif") == (10, 20, 30)).all()


def test_read_image_transparency_becomes_white(tmp_path):
    rgba = solid((255, 0, 0, 0), mode="RGBA", size=2)
    rgba.putpixel((0, 0), (0, 0, 255, 255))
    rgba.save(tmp_path / "rgba.png")
    array = np.asarray(read_image(tmp_path / "rgba.png", size=2))
    assert tuple(array[0, 0]) == (0, 0, 255) and tuple(array[1, 1]) == (255, 255, 255)
    palette = Image.new("P", (4, 4), 0)
    palette.putpalette([0, 0, 0, 200, 0, 0])
    palette.putpixel((0, 0), 1)
    palette.save(tmp_path / "palette.png", transparency=0)  # colour 0 (black) is transparent
    array = read_image(tmp_path / "palette.png", size=4)
    assert tuple(array[0, 0]) == (200, 0, 0) and tuple(array[3, 3]) == (255, 255, 255)


def test_read_image_16_bit_is_scaled_not_clipped(tmp_path):
    Image.fromarray(np.full((4, 4), 128 * 256, dtype=np.uint16)).save(tmp_path / "deep.png")
    assert (check_rgb(tmp_path / "deep.png", size=4) == 128).all()  # clipping would give 255


def test_read_image_cmyk_and_resize(tmp_path):
    solid((0, 0, 0, 0), mode="CMYK", size=20).save(tmp_path / "cmyk.jpg")
    assert (check_rgb(tmp_path / "cmyk.jpg", size=12) > 240).all()  # no ink: white
    solid((0, 200, 0), size=10).resize((30, 10)).save(tmp_path / "wide.png")
    assert (check_rgb(tmp_path / "wide.png", size=16) == (0, 200, 0)).all()


def test_read_image_applies_exif_orientation(tmp_path):
    image = Image.new("RGB", (2, 1), (255, 0, 0))  # red left, blue right
    image.putpixel((1, 0), (0, 0, 255))
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90 degrees clockwise to display
    image.save(tmp_path / "rotated.png", exif=exif)
    upright = np.asarray(decode_rgb(tmp_path / "rotated.png"))
    assert upright.shape == (2, 1, 3)  # 1 wide, 2 high: red on top, blue below
    assert tuple(upright[0, 0]) == (255, 0, 0) and tuple(upright[1, 0]) == (0, 0, 255)
    assert read_image(tmp_path / "rotated.png", size=1).shape == (1, 1, 3)


def test_read_image_undecodable_names_the_file(tmp_path):
    (tmp_path / "bad.jpg").write_bytes(b"\xff\xd8 not really")
    with pytest.raises(DataError, match="bad.jpg"):
        read_image(tmp_path / "bad.jpg")


# --------------------------------------------------------------------------------------------
# The PyTorch Dataset
# --------------------------------------------------------------------------------------------

def test_image_dataset_items_transform_and_cache(tmp_path):
    data = load_meta_album(write_meta_album(tmp_path / "DS", per_class=1))
    dataset = ImageDataset(data, size=8, transform=lambda image: image.mean(axis=(0, 1)))
    assert len(dataset) == 4
    colour, label = dataset[1]
    assert label == 1 and np.allclose(colour, CLASS_COLOURS["ant"], atol=2)  # JPEG/PNG tolerance
    plain = ImageDataset(data, size=8)
    image, _ = plain[-1]
    assert image.shape == (8, 8, 3) and image.dtype == np.uint8
    image[:] = 0  # a caller scribbling on the array must not reach the cache
    for file in (tmp_path / "DS" / "images").iterdir():
        file.unlink()  # cached images no longer need their files
    assert plain[3][0].max() > 0
    with pytest.raises(DataError, match="zebra_0.jpg"):
        ImageDataset(data, size=8, cache=False)[0]
    with pytest.raises(IndexError):
        plain[4]
