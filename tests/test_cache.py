"""The decoded-image cache shared by processes (rrrnet.data.cache) and ImageDataset's use of it."""
import json
import multiprocessing
import os
import pickle
import signal

import numpy as np
import pytest
import torch
from PIL import Image

import rrrnet
from conftest import make_meta_album
from rrrnet.data import ImageDataset, load_meta_album
from rrrnet.data import cache as cache_module
from rrrnet.data import dataset as dataset_module
from rrrnet.data.cache import FLAGS_FILE, HEADER_FILE, IMAGES_FILE, ImageCache, default_cache_folder
from rrrnet.errors import DataError
from rrrnet.model import ModelConfig
from rrrnet.train import Recipe

SIZE = 16


@pytest.fixture
def data(tmp_path):
    root = make_meta_album(tmp_path / "DS", classes=3, per_class=4, size=20)
    # A non-square image, so that the resize modes give different pixels.
    Image.fromarray(np.random.default_rng(1).integers(0, 255, (12, 30, 3), dtype=np.uint8)) \
        .save(root / "images" / "c0_0.png")
    return load_meta_album(root)


@pytest.fixture
def decodes(monkeypatch):
    """Counts ImageDataset's decodes in this process (and in the workers it forks)."""
    calls = []
    real = dataset_module.read_image

    def counting(*args, **kwargs):
        calls.append(args[0])
        return real(*args, **kwargs)

    monkeypatch.setattr(dataset_module, "read_image", counting)
    return calls


def ram_items(data, resize="squash"):
    ram = ImageDataset(data, size=SIZE, cache="ram", resize=resize)
    assert ram.cache_mode == "ram" and ram.shared_cache is None
    return [ram[i] for i in range(len(ram))]


@pytest.mark.parametrize("resize", ["squash", "crop", "pad"])
def test_items_equal_the_in_ram_caches(data, tmp_path, resize):
    expected = ram_items(data, resize)
    shared = ImageDataset(data, size=SIZE, cache="memmap", resize=resize,
                          cache_folder=tmp_path / "cache")
    assert shared.cache_mode == "memmap"
    for _ in range(2):  # filling, then reading back
        for i, (image, label) in enumerate(expected):
            got, got_label = shared[i]
            assert type(got) is np.ndarray and got.dtype == np.uint8 and got.shape == (SIZE, SIZE, 3)
            assert got.flags.writeable and image.flags.writeable  # the caller's own, in both
            assert np.array_equal(got, image) and got_label == label
    assert shared.shared_cache.filled() == len(data)
    # A caller scribbling on an item does not reach the cache.
    shared[0][0][:] = 0
    assert np.array_equal(shared[0][0], expected[0][0])
    # The transform applies as before, and negative indices and IndexError too.
    mean = ImageDataset(data, size=SIZE, cache="memmap", resize=resize,
                        cache_folder=tmp_path / "cache", transform=lambda a: a.mean(axis=(0, 1)))
    assert np.array_equal(mean[-1][0], expected[-1][0].mean(axis=(0, 1)))
    with pytest.raises(IndexError):
        shared[len(data)]


def test_training_is_bit_for_bit_the_same(data, tmp_path):
    recipe = Recipe(epochs=1, batch_size=4, ema_epochs=0, warm_stump_epochs=0, image_size=SIZE,
                    seed=0)
    config = ModelConfig(arch="resnet18", blocks=(1, 1, 1, 1), branches=2, num_classes=3,
                         weights="none")
    weights = []
    for kind in ("ram", "memmap"):
        images = ImageDataset(data, size=SIZE, cache=kind,
                              cache_folder=tmp_path / "cache" if kind == "memmap" else None)
        torch.manual_seed(0)
        result = rrrnet.train(rrrnet.build(config, progress=False), images, recipe,
                              device="cpu", progress=False)
        weights.append(result.model.state_dict())
    assert weights[0].keys() == weights[1].keys()
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])


def test_a_second_dataset_reuses_the_cache_without_decoding(data, tmp_path, decodes):
    first = ImageDataset(data, size=SIZE, cache_folder=tmp_path / "cache")  # auto + folder
    assert first.cache_mode == "memmap"
    expected = [first[i][0] for i in range(len(first))]
    assert len(decodes) == len(data)
    decodes.clear()
    # Another object, the images in another order: the same cache file, no decoding.
    reordered = data.subset(reversed(range(len(data))))
    second = ImageDataset(reordered, size=SIZE, cache="memmap", cache_folder=tmp_path / "cache")
    assert second.shared_cache.path == first.shared_cache.path
    assert [d.name for d in (tmp_path / "cache").iterdir()] == [first.shared_cache.path.name]
    for i in range(len(second)):
        assert np.array_equal(second[i][0], expected[len(data) - 1 - i])
    assert decodes == []
    # Another size, resize mode, or other bytes in one file: another cache.
    assert ImageDataset(data, size=SIZE + 1, cache="memmap", cache_folder=tmp_path / "cache") \
        .shared_cache.path != first.shared_cache.path
    assert ImageDataset(data, size=SIZE, resize="pad", cache="memmap",
                        cache_folder=tmp_path / "cache").shared_cache.path != first.shared_cache.path
    Image.new("RGB", (20, 20), (1, 2, 3)).save(data.paths[3])
    changed = ImageDataset(data, size=SIZE, cache="memmap", cache_folder=tmp_path / "cache")
    assert changed.shared_cache.path != first.shared_cache.path
    assert changed[3][0].reshape(-1, 3).tolist()[0] == [1, 2, 3]


def test_two_workers_fill_it_and_read_what_the_other_wrote(data, tmp_path, decodes, monkeypatch):
    expected = ram_items(data)
    decodes.clear()
    shared = ImageDataset(data, size=SIZE, cache="memmap", cache_folder=tmp_path / "cache")
    fork = multiprocessing.get_context("fork")

    def batches(order):
        return list(torch.utils.data.DataLoader(shared, batch_size=2, sampler=order,
                                                num_workers=2, multiprocessing_context=fork))

    # Batches 0, 2, 4 go to worker 0, batches 1, 3, 5 to worker 1: each fills half the slots.
    first = batches(list(range(len(data))))
    assert decodes == []  # the workers decoded, not this process
    assert shared.shared_cache.filled() == len(data)
    images = torch.cat([b[0] for b in first])
    assert all(np.array_equal(images[i].numpy(), expected[i][0]) for i in range(len(data)))

    # Shifted by one batch, each worker now reads only slots the other one wrote; decoding
    # would fail.
    def refuse(*args, **kwargs):
        raise AssertionError("decoded an image the cache holds")

    monkeypatch.setattr(dataset_module, "read_image", refuse)
    order = list(range(2, len(data))) + [0, 1]
    again = torch.cat([b[0] for b in batches(order)])
    assert all(np.array_equal(again[k].numpy(), expected[i][0]) for k, i in enumerate(order))


def test_it_pickles_without_its_pixels(data, tmp_path):
    shared = ImageDataset(data, size=SIZE, cache="memmap", cache_folder=tmp_path / "cache")
    expected = [shared[i][0] for i in range(len(shared))]
    assert shared.shared_cache._fd is not None  # open here
    copy = pickle.loads(pickle.dumps(shared))  # what a spawned worker gets
    # The decoded images (12 x 768 bytes) stay out of the pickle: the copy maps the file.
    assert len(pickle.dumps(shared.shared_cache)) < len(data) * SIZE * SIZE * 3 // 4
    assert copy.shared_cache._fd is None
    assert all(np.array_equal(copy[i][0], expected[i]) for i in range(len(copy)))


def _fill_and_die(cache: ImageCache, pixels: np.ndarray) -> None:
    """Fill slot 0, killed by SIGKILL after the pixels are stored and before the flag is."""
    def killed(_):
        os.kill(os.getpid(), signal.SIGKILL)

    cache_module.pixels_crc = killed
    cache.get(0, lambda: pixels)


def test_a_slot_killed_mid_write_is_not_trusted(tmp_path):
    hashes = ["a" * 64, "b" * 64]
    pixels = np.full((SIZE, SIZE, 3), 200, np.uint8)
    cache = ImageCache(hashes, SIZE, "squash", "test", folder=tmp_path)
    child = multiprocessing.get_context("fork").Process(target=_fill_and_die, args=(cache, pixels))
    child.start()
    child.join()
    assert child.exitcode == -signal.SIGKILL
    mapped = np.memmap(cache.path / IMAGES_FILE, np.uint8, "r", shape=(2, SIZE, SIZE, 3))
    flags = np.memmap(cache.path / FLAGS_FILE, np.uint32, "r", shape=(2,))
    assert mapped[0].min() == 200 and flags[0] == 0  # the pixels landed, the flag did not
    calls = []
    fresh = np.full((SIZE, SIZE, 3), 7, np.uint8)
    reader = ImageCache(hashes, SIZE, "squash", "test", folder=tmp_path)
    assert np.array_equal(reader.get(0, lambda: calls.append(0) or fresh), fresh)
    assert calls == [0]  # decoded again
    assert np.array_equal(reader.get(0, lambda: calls.append(0) or fresh), fresh)
    assert calls == [0]  # now trusted

    # A flag that reached the disk before its pixels (a power cut): the CRC fails, decoded again.
    writable = np.memmap(cache.path / IMAGES_FILE, np.uint8, "r+", shape=(2, SIZE, SIZE, 3))
    writable[0, SIZE // 2:] = 0
    writable.flush()
    assert np.array_equal(reader.get(0, lambda: calls.append(0) or fresh), fresh)
    assert calls == [0, 0]


def test_a_mismatched_header_is_refused_or_rebuilt(data, tmp_path):
    folder = tmp_path / "cache"
    shared = ImageDataset(data, size=SIZE, cache="memmap", cache_folder=folder)
    expected = [shared[i][0] for i in range(len(shared))]
    path = shared.shared_cache.path
    header = json.loads((path / HEADER_FILE).read_text())
    (path / HEADER_FILE).write_text(json.dumps({**header, "version": 0}))
    hashes = cache_module.file_hashes(data.paths)

    with pytest.raises(DataError, match=r"image cache .* does not match its images: its "
                                        r"header's version is 0, expected 1; delete the folder"):
        ImageCache(hashes, SIZE, "squash", dataset_module.DECODER, folder, on_mismatch="error")
    assert (path / IMAGES_FILE).stat().st_size > 0  # refused, left as it was

    with pytest.warns(UserWarning, match="rebuilding the image cache .* version is 0"):
        rebuilt = ImageDataset(data, size=SIZE, cache="memmap", cache_folder=folder)
    assert rebuilt.shared_cache.path == path and rebuilt.shared_cache.filled() == 0
    assert json.loads((path / HEADER_FILE).read_text()) == header
    assert all(np.array_equal(rebuilt[i][0], expected[i]) for i in range(len(rebuilt)))

    # A truncated pixel file is a mismatch too.
    with open(path / IMAGES_FILE, "r+b") as handle:
        handle.truncate(10)
    with pytest.warns(UserWarning, match=f"{IMAGES_FILE} holds 10 bytes, expected "
                                         f"{len(data) * SIZE * SIZE * 3}"):
        again = ImageDataset(data, size=SIZE, cache="memmap", cache_folder=folder)
    assert np.array_equal(again[1][0], expected[1])
    assert sorted(p.name for p in folder.iterdir()) == [path.name]  # nothing left aside


def test_the_cache_folder_default_options_and_bad_ones(data, tmp_path, monkeypatch):
    monkeypatch.setenv("RRRNET_CACHE", str(tmp_path / "env-cache"))
    assert default_cache_folder() == tmp_path / "env-cache"
    # Small data stays in memory; above the threshold "auto" uses $RRRNET_CACHE.
    assert ImageDataset(data, size=SIZE).cache_mode == "ram"
    monkeypatch.setattr(dataset_module, "MEMMAP_ABOVE_BYTES", 10)
    auto = ImageDataset(data, size=SIZE)
    assert auto.cache_mode == "memmap" and auto.shared_cache.path.parent == tmp_path / "env-cache"
    monkeypatch.delenv("RRRNET_CACHE")
    assert str(default_cache_folder()) == os.path.expanduser("~/.cache/rrrnet/images")

    before = sorted(p.relative_to(data.root) for p in data.root.rglob("*"))
    with pytest.raises(DataError, match="image cache folder .* is inside the dataset folder"):
        ImageDataset(data, size=SIZE, cache="memmap", cache_folder=data.root / "cache")
    assert sorted(p.relative_to(data.root) for p in data.root.rglob("*")) == before
    with pytest.raises(DataError, match="cache must be one of auto, ram, memmap, none"):
        ImageDataset(data, size=SIZE, cache="disk")
    with pytest.raises(DataError, match="cache folder .* is for cache='memmap'"):
        ImageDataset(data, size=SIZE, cache="ram", cache_folder=tmp_path)
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(DataError, match="cannot make the image cache folder"):
        ImageDataset(data, size=SIZE, cache="memmap", cache_folder=blocker / "sub")
    # "auto" above the threshold falls back to memory, with a warning, when it cannot write;
    # an unreadable image is its own error, not a reason to fall back.
    monkeypatch.setenv("RRRNET_CACHE", str(blocker / "sub"))
    with pytest.warns(UserWarning, match="keeping the decoded images in memory"):
        assert ImageDataset(data, size=SIZE).cache_mode == "ram"
    data.paths[2].unlink()
    with pytest.raises(DataError, match=f"cannot read image file {data.paths[2]}"):
        ImageDataset(data, size=SIZE)
