"""Augmentation pipeline: the twelve operations, uniform draws with replacement, seeding,
DataLoader workers, ImageNet normalisation."""

import multiprocessing
import pickle
import warnings

import albumentations as A
import numpy as np
import pytest
import torch

from rrrnet import augment as au
from rrrnet.errors import ConfigError

NAMES = [
    "shear", "shift_scale_rotate", "rgb_shift", "brightness_contrast", "posterize", "motion_blur",
    "jpeg", "gaussian_noise", "equalize", "solarize", "sharpen", "invert",
]


def _test_image(size: int = 64) -> np.ndarray:
    """Low-contrast diagonal colour gradient plus noise: every operation has something to change
    (edges to blur/sharpen, a narrow histogram to equalise, values both sides of 128)."""
    rng = np.random.default_rng(7)
    y, x = np.mgrid[0:size, 0:size].astype(np.float32) / (size - 1)
    base = np.stack([60 + 120 * x, 60 + 120 * y, 60 + 60 * (x + y)], axis=-1)
    return np.clip(base + rng.normal(0, 8, base.shape), 0, 255).astype(np.uint8)


class Tag(A.ImageOnlyTransform):
    """Deterministic fake operation: writes k+1 into the first free slot of row 0, channel 0, so
    the output records which operations ran, in order."""

    def __init__(self, k: int):
        super().__init__(p=1.0)
        self.k = k

    def apply(self, img, **params):
        out = img.copy()
        out[0, int(np.count_nonzero(out[0, :, 0])), 0] = self.k + 1
        return out


def _applied(augment, n_images: int, n_ops: int) -> np.ndarray:
    """(n_images, slots) indices of the Tag operations applied to each of n_images blank images."""
    blank = np.zeros((4, 8, 3), np.uint8)
    return np.stack([augment(blank)[0, :, 0] for _ in range(n_images)]).astype(int)[:, : augment.ops_per_image] - 1


def test_exactly_the_twelve_operations():
    assert list(au.OPERATIONS) == NAMES
    for name, factory in au.OPERATIONS.items():
        first, second = factory(), factory()
        assert isinstance(first, A.BasicTransform), name
        assert first is not second, name  # a fresh instance per call
        assert first.p == 1.0, name


def test_default_pipeline_is_two_one_ofs_over_the_twelve():
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no deprecated transforms or renamed arguments
        augment = au.train_transform()
    slots = augment.compose.transforms
    assert len(slots) == 2
    for slot in slots:
        assert isinstance(slot, A.OneOf) and slot.p == 1.0
        assert [type(t) for t in slot.transforms] == [type(f()) for f in au.OPERATIONS.values()]
        assert np.allclose(slot.transforms_ps, 1 / 12)


@pytest.mark.parametrize("name", NAMES)
def test_each_operation_changes_the_image_and_keeps_shape_and_dtype(name):
    image = _test_image()
    original = image.copy()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        augment = au.train_transform(ops_per_image=1, operations=[name], seed=0)
        out = augment(image)
    assert out.shape == image.shape and out.dtype == np.uint8
    assert np.array_equal(image, original)  # the input is not modified in place
    changed = np.abs(out.astype(int) - image.astype(int)).mean()
    assert changed > 0.5, f"{name} barely changed the image (mean abs change {changed:.3f})"


def test_operation_magnitudes_match_the_release():
    image = _test_image()
    inverted = au.train_transform(1, ["invert"], seed=0)(image)
    assert np.array_equal(inverted, 255 - image)
    posterized = au.train_transform(1, ["posterize"], seed=0)(image)
    assert np.all(posterized % 16 == 0)  # 4 bits kept
    solarized = au.train_transform(1, ["solarize"], seed=0)(image)
    assert np.array_equal(solarized, np.where(image >= 128, 255 - image, image))
    flat = np.full((64, 64, 3), 128, np.uint8)
    for seed in range(5):  # std 3.2-7.1 grey levels (albumentations 1.x var_limit=(10, 50))
        noise = au.train_transform(1, ["gaussian_noise"], seed=seed)(flat).astype(float) - 128
        assert 2.5 < noise.std() < 8.0
    for seed in range(5):  # +-15 per channel
        shift = au.train_transform(1, ["rgb_shift"], seed=seed)(flat).astype(int) - 128
        assert np.all(np.abs(shift) <= 15) and np.all(shift == shift[0, 0])


@pytest.mark.parametrize("seed", [123, None])
def test_two_ops_drawn_uniformly_with_replacement(seed):
    n_ops, per_cell = 12, 60
    n = n_ops * n_ops * per_cell  # 8640 images
    augment = au.train_transform(ops_per_image=2, operations=[Tag(k) for k in range(n_ops)], seed=seed)
    picks = _applied(augment, n, n_ops)
    assert picks.min() >= 0  # two operations ran on every image

    # each slot: every op with probability 1/12 (so 2/12 expected occurrences per image)
    for slot in range(2):
        counts = np.bincount(picks[:, slot], minlength=n_ops)
        assert np.all(np.abs(counts - n / n_ops) < 5 * np.sqrt(n * (1 / n_ops) * (1 - 1 / n_ops))), counts
    per_image = np.bincount(picks.ravel(), minlength=n_ops) / n
    assert np.allclose(per_image, 2 / n_ops, atol=0.02)

    # with replacement and independent slots: same op twice 1/12 of the time
    same = np.mean(picks[:, 0] == picks[:, 1])
    assert abs(same - 1 / n_ops) < 5 * np.sqrt((1 / n_ops) * (1 - 1 / n_ops) / n), same

    # all 144 ordered pairs uniform: chi-square with 143 dof (mean 143, sd 16.9)
    pairs = np.bincount(picks[:, 0] * n_ops + picks[:, 1], minlength=n_ops * n_ops)
    chi2 = ((pairs - per_cell) ** 2 / per_cell).sum()
    assert pairs.min() > 0 and chi2 < 143 + 6 * 16.9, chi2


def test_ops_per_image_counts():
    for k in (0, 1, 3):
        augment = au.train_transform(ops_per_image=k, operations=[Tag(i) for i in range(3)], seed=0)
        out = augment(np.zeros((4, 8, 3), np.uint8))
        assert np.count_nonzero(out[0, :, 0]) == k


def test_seed_reproducibility():
    images = [_test_image() for _ in range(10)]
    a = [au.train_transform(seed=5)(im) for im in images]  # fresh pipeline per image: first draw only
    first, second, other = au.train_transform(seed=5), au.train_transform(seed=5), au.train_transform(seed=6)
    outs1 = [first(im) for im in images]
    outs2 = [second(im) for im in images]
    outs3 = [other(im) for im in images]
    assert all(np.array_equal(x, y) for x, y in zip(outs1, outs2))
    assert not all(np.array_equal(x, y) for x, y in zip(outs1, outs3))
    assert not all(np.array_equal(x, y) for x, y in zip(outs1[:-1], outs1[1:]))  # the stream moves on
    assert np.array_equal(a[0], outs1[0])
    first.reseed(5)  # restarts the stream
    assert all(np.array_equal(first(im), y) for im, y in zip(images, outs1))


def test_pickle_keeps_the_random_state():
    image = _test_image()
    augment = au.train_transform(seed=9)
    augment(image)
    copy = pickle.loads(pickle.dumps(augment))
    assert all(np.array_equal(augment(image), copy(image)) for _ in range(5))


def test_normalize_constant_image_and_denormalize():
    image = np.empty((5, 7, 3), np.uint8)
    image[...] = (100, 150, 200)
    tensor = au.normalize(image)
    assert tensor.shape == (3, 5, 7) and tensor.dtype == torch.float32 and tensor.is_contiguous()
    for c, value in enumerate((100, 150, 200)):
        expected = (value / 255 - au.IMAGENET_MEAN[c]) / au.IMAGENET_STD[c]
        assert torch.allclose(tensor[c], torch.full((5, 7), expected), atol=1e-5)
    assert au.IMAGENET_MEAN == (0.485, 0.456, 0.406) and au.IMAGENET_STD == (0.229, 0.224, 0.225)

    rng = np.random.default_rng(0)
    noisy = rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)
    back = au.denormalize(au.normalize(noisy))
    assert back.dtype == np.uint8 and back.shape == noisy.shape
    assert np.abs(back.astype(int) - noisy.astype(int)).max() <= 1


def test_errors():
    with pytest.raises(ConfigError, match="unknown augmentation operation 'cutout'"):
        au.train_transform(operations=["shear", "cutout"])
    with pytest.raises(ValueError):  # ConfigError is a ValueError
        au.train_transform(operations=["nope"])
    with pytest.raises(ConfigError, match="ops_per_image"):
        au.train_transform(ops_per_image=-1)
    with pytest.raises(ConfigError, match="p=1"):
        au.train_transform(operations=[A.InvertImg(p=0.5)])
    with pytest.raises(ConfigError):
        au.train_transform(operations=[])
    with pytest.raises(ValueError, match="uint8 HxWx3"):
        au.normalize(np.zeros((8, 8), np.uint8))
    with pytest.raises(ValueError, match="uint8 HxWx3"):
        au.train_transform()(np.zeros((8, 8, 3), np.float32))


@pytest.mark.skipif("fork" not in multiprocessing.get_all_start_methods(), reason="needs fork")
def test_training_draws_do_not_depend_on_dataloader_workers():
    """The one seeding mechanism (rrrnet.train.TrainingImages): every draw is re-seeded from
    (run seed, epoch, image, view), so two workers give exactly the batches one process gives,
    and images and epochs differ."""
    from rrrnet.train import TrainingImages
    images = [(_test_image(32), 0)] * 8
    data = TrainingImages(images, augment_ops=2, views=1, seed=1)

    def load(workers):
        loader = torch.utils.data.DataLoader(data, batch_size=4, num_workers=workers,
                                             multiprocessing_context="fork" if workers else None)
        return torch.cat([x for x, _ in loader])
    alone = load(0)
    assert torch.equal(alone, load(2))
    assert not torch.equal(alone[0], alone[1])           # the same picture, other draws
    data.epoch = 1
    assert not torch.equal(alone, load(0))                # another epoch, other draws
