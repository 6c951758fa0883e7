"""What the loop iterates: a Dataset's images resized, augmented (seeded per epoch, image and
view), batched and normalised here, or the user's ready batches as given; and the evaluation
batches.

Reproducibility: every random draw of epoch ``e`` (batch order, augmentation of each image and
view) derives from ``(seed, e)`` alone, so a resumed run repeats exactly what an uninterrupted
run would have done. In data-parallel training each process takes a disjoint shard of the
epoch's shuffled order (``DistributedSampler`` with the epoch's seed).
"""
from __future__ import annotations

import math
import warnings
from typing import Any, Iterable

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, WeightedRandomSampler
from torch.utils.data.distributed import DistributedSampler

from ..augment import train_transform
from ..data import DEFAULT_RESIZE, EvalImages, as_array, normalize
from ..errors import ConfigError
from ..metrics import is_dataset


class TrainingImages(Dataset):
    """Normalised training images, augmented with a seed fixed by (run seed, epoch, index, view):
    the one augmentation and seeding path of training.

    ``images`` yields ``(PIL image or uint8 HxWx3 array, label)``. With ``views > 1`` an item is
    ``[views, 3, H, W]``: one augmentation draw per branch.
    """

    def __init__(self, images: Dataset, augment_ops: int, views: int, seed: int,
                 size: int | None = None, resize: str = DEFAULT_RESIZE):
        self.images, self.views, self.seed, self.size, self.epoch = images, views, seed, size, 0
        self.resize = resize
        self.augment = train_transform(augment_ops) if augment_ops > 0 else None

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int):
        image, label = self.images[index]
        image = as_array(image, self.size, self.resize)
        tensors = [normalize(self._augmented(image, index, view)) for view in range(self.views)]
        return (tensors[0] if self.views == 1 else torch.stack(tensors)), int(label)

    def _augmented(self, image: np.ndarray, index: int, view: int) -> np.ndarray:
        if self.augment is None:
            return image
        # Re-seeded per draw (not per worker): the draw depends on nothing but these numbers.
        self.augment.reseed([self.seed, self.epoch + 1, index, view])
        return self.augment.compose(image=image)["image"]


def drops_lone_image(count: int, batch_size: int, image_size: int) -> bool:
    """True when an epoch of ``count`` images would end in a batch of one image at a size where
    a ResNet's last stage is 1x1 (32 px or less, five halvings): BatchNorm cannot normalise one
    value per channel in training, so that batch is left out (the order is reshuffled every
    epoch: a different image each time). Elsewhere a lone image trains as before."""
    return image_size <= 32 and count % batch_size == 1


def steps_per_epoch(count: int, batch_size: int, image_size: int) -> int:
    """Optimiser steps of an epoch of ``count`` images (see :func:`drops_lone_image`)."""
    return math.ceil(count / batch_size) - drops_lone_image(count, batch_size, image_size)


def loader(dataset: Dataset, batch_size: int, shuffle: bool, seed: int = 0,
           num_workers: int = 0, world: Any = None, legacy_order: bool = False,
           drop_last: bool = False) -> DataLoader:
    """Batches of ``dataset``, shuffled with ``seed``; ``world`` (data-parallel): this process's
    shard of the same shuffled order. ``legacy_order``: the order rrrnet 0.1's loop drew (its
    progress bar, ``tqdm.auto``, opened the loader twice, and each opening draws a worker base
    seed from the loader's generator before the shuffle): kept, so that runs and benchmark
    cells trained before the loop was rewritten are reproduced bit for bit."""
    if world is not None and world.size > 1:
        sampler = DistributedSampler(dataset, num_replicas=world.size, rank=world.rank,
                                     shuffle=shuffle, seed=seed, drop_last=False)
        return DataLoader(dataset, batch_size=batch_size, sampler=sampler,
                          num_workers=num_workers, drop_last=drop_last)
    generator = torch.Generator().manual_seed(seed)
    if legacy_order:
        torch.empty((), dtype=torch.int64).random_(generator=generator)
    return DataLoader(dataset, batch_size=batch_size, shuffle=shuffle, generator=generator,
                      num_workers=num_workers, drop_last=drop_last)


def dataset_labels(dataset: Any) -> list[int]:
    """The labels of a Dataset of (image, label) pairs: read from its ``labels`` (an
    :class:`~rrrnet.data.ImageDataset`'s images, a TrainingImages' images) without decoding
    any image where it has them, else by reading every item."""
    for holder in (dataset, getattr(dataset, "images", None),
                   getattr(getattr(dataset, "images", None), "images", None)):
        if holder is not None and hasattr(holder, "labels") and len(holder.labels) == len(dataset):
            return [int(label) for label in holder.labels]
    return [int(dataset[i][1]) for i in range(len(dataset))]


def class_counts(labels: list[int]) -> torch.Tensor:
    return torch.bincount(torch.as_tensor(labels, dtype=torch.long))


def balanced_sampler(labels: list[int], seed: int) -> WeightedRandomSampler:
    """``--balance sampler``: every epoch draws as many images as the training set holds, each
    class equally likely (an image's weight is 1 / its class's count), with replacement, from
    the epoch's seed."""
    counts = class_counts(labels).double()
    weights = (1.0 / counts)[torch.as_tensor(labels)]
    return WeightedRandomSampler(weights, len(labels), replacement=True,
                                 generator=torch.Generator().manual_seed(seed))


class TrainingData:
    """The training batches of every epoch and the evaluation batches."""

    def __init__(self, train_data: Any, eval_data: Any, recipe: Any, views: int,
                 needs_dataset: str | None = None, world: Any = None):
        self.recipe, self.world, self.from_dataset = recipe, world, is_dataset(train_data)
        if not self.from_dataset and (views > 1 or needs_dataset):
            what = needs_dataset or "independent branch views"
            raise ConfigError(f"{what} need the training data as a Dataset of (image, label) "
                              f"pairs, not ready batches")
        if not self.from_dataset and not hasattr(train_data, "__len__"):
            raise ConfigError(f"ready batches must be re-iterable and have a length (a DataLoader "
                              f"or a list of (images, labels) batches), got "
                              f"{type(train_data).__name__}: a generator would be used up after "
                              f"one epoch")
        if not self.from_dataset and world is not None and world.size > 1:
            raise ConfigError("data-parallel training shards a Dataset of (image, label) pairs; "
                              "ready batches cannot be split between processes")
        resize = getattr(recipe, "resize", DEFAULT_RESIZE)
        self.augmented = (TrainingImages(train_data, recipe.augment_ops, views, recipe.seed,
                                         recipe.image_size, resize)
                          if self.from_dataset else None)
        self.train_set: Any = self.augmented if self.from_dataset else train_data
        self.eval_loader = None
        if eval_data is not None:
            self.eval_loader = (loader(EvalImages(eval_data, recipe.image_size, resize),
                                       recipe.batch_size * 2, False)
                                if is_dataset(eval_data) else eval_data)
        self.indices: list[int] = []   # this process's sample order in the current epoch
        shard = len(self.train_set) if self.from_dataset else 0
        if world is not None and world.size > 1:
            shard = math.ceil(shard / world.size)
        self.drop_last = drops_lone_image(shard, recipe.batch_size, recipe.image_size)
        if self.drop_last:
            warnings.warn(f"{shard} training images at batch size {recipe.batch_size} leave one "
                          f"image in each epoch's last batch, which BatchNorm cannot normalise at "
                          f"{recipe.image_size} px: that batch is left out (a different image "
                          f"each epoch); a batch size that does not leave one avoids it",
                          stacklevel=2)

    def labels(self) -> list[int]:
        """The training labels (computed once)."""
        if getattr(self, "_labels", None) is None:
            self._labels = dataset_labels(self.augmented if self.augmented is not None
                                          else self.train_set)
        return self._labels

    def set_epoch(self, epoch: int) -> None:
        if self.augmented is not None:
            self.augmented.epoch = epoch

    def warm_up_loader(self, seed: int) -> Iterable:
        """Every training image (not this process's shard: each process warms the stump on
        the same draws, so their statistics agree)."""
        if not self.from_dataset:
            return self.train_set
        return loader(self.train_set, self.recipe.batch_size, True, seed, self.recipe.num_workers,
                      drop_last=drops_lone_image(len(self.train_set), self.recipe.batch_size,
                                                 self.recipe.image_size))

    def epoch_loader(self, seed: int) -> Iterable:
        """The batches of one epoch (``seed``: the epoch's own); ``indices`` notes the order."""
        if not self.from_dataset:
            return self.train_set
        if getattr(self.recipe, "balance", "none") == "sampler":
            if self.world is not None and self.world.size > 1:
                raise ConfigError("--balance sampler is not available with several processes; "
                                  "use --balance weights")
            return DataLoader(self.train_set, batch_size=self.recipe.batch_size,
                              sampler=balanced_sampler(self.labels(), seed),
                              num_workers=self.recipe.num_workers, drop_last=self.drop_last)
        batches = loader(self.train_set, self.recipe.batch_size, True, seed,
                         self.recipe.num_workers, self.world, legacy_order=True,
                         drop_last=self.drop_last)
        self.indices = list(iter(batches.sampler)) if self.world is not None else []
        return batches
