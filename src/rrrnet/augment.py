"""Training-time data augmentation and ImageNet normalisation.

This follows the authors' public release (SunHaozhe/RRR_Net, ``get_transform``), ported to
albumentations 2.0: twelve operations, each with ``p=1``; for every training image
``ops_per_image`` (2) of them are drawn uniformly *with replacement* and applied in turn (two
``OneOf([...], p=1)`` inside a ``Compose``), then ImageNet mean/std normalisation (paper,
Appendix C: "Two transformations are drawn uniformly at random with replacement and then
sequentially applied to each training example"). Images arrive as ``uint8`` HxWx3 RGB arrays
already resized to the model size, so there is no resize here.

Magnitudes are those the release ran under albumentations 1.2.0, spelled in 2.0 arguments:

- ``shear``: ``Affine(shear=10)``, a *fixed* 10 degree shear on both axes. That is what a scalar
  ``shear`` means in albumentations 1.2 and 2.0 alike (not a +-10 range); kept as released.
- ``shift_scale_rotate``: the release's ``ShiftScaleRotate(0.1, 0.01, 30)`` written as an
  ``Affine``: shift +-10 % per axis, scale 0.99-1.01, rotation +-30 degrees, border reflect-101
  (the 1.x default; 2.0's ``ShiftScaleRotate`` is deprecated and pads with black).
- ``rgb_shift``: +-15 per channel.
- ``brightness_contrast``: brightness +-0.2, contrast +-0.2 (defaults).
- ``posterize``: 4 bits (default).
- ``motion_blur``: kernel 3-7 (default).
- ``jpeg``: quality 99-100 (the 1.x default ``quality_lower=99``; mild, though 4:2:0 chroma
  subsampling still smears colour noise).
- ``gaussian_noise``: 1.x ``var_limit=(10, 50)`` in grey levels squared, i.e. std 3.2-7.1 grey
  levels: ``std_range=(sqrt(10)/255, sqrt(50)/255)``. (The 2.0 default, 0.2-0.44 of full scale,
  is ~15x stronger.)
- ``equalize``: OpenCV histogram equalisation per channel (default).
- ``solarize``: threshold 128 (``threshold_range=(0.5, 0.5)``).
- ``sharpen``: alpha 0.2-0.5, lightness 0.5-1.0 (defaults).
- ``invert``: ``InvertImg``.

Random state
------------
albumentations 2.0 ignores the global ``random``/``numpy`` seeds: a ``Compose`` owns its
generators. ``Compose(seed=s)`` alone is not enough here, because it seeds *every* child with
the same ``s``: the two ``OneOf`` blocks would then draw identical indices and the pair would
always be the same op twice. :func:`train_transform` therefore gives the whole pipeline one
shared generator pair built from ``seed``, and :meth:`Augmenter.reseed` restarts it.

Training uses one seeding mechanism: :class:`rrrnet.train.TrainingImages` re-seeds the augmenter
before every draw from (run seed, epoch, image index, view), so a draw depends on nothing else:
not on DataLoader workers, batch order or what ran before, and a resumed run repeats it.
"""

from __future__ import annotations

import math
import os

# Runs are offline and versions pinned: skip albumentations' PyPI check at import time.
os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

import random  # noqa: E402
from collections import OrderedDict  # noqa: E402
from collections.abc import Callable, Sequence  # noqa: E402

import albumentations as A  # noqa: E402
import cv2  # noqa: E402
import numpy as np  # noqa: E402

from rrrnet.data.dataset import (IMAGENET_MEAN, IMAGENET_STD, _check_image,  # noqa: E402,F401
                                 denormalize, normalize)
from rrrnet.errors import ConfigError  # noqa: E402

__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "OPERATIONS",
    "Augmenter",
    "denormalize",
    "normalize",
    "train_transform",
]



# --- the twelve operations (module-level factories so that everything pickles) -------------

def _shear() -> A.BasicTransform:
    return A.Affine(shear=10.0, p=1.0)


def _shift_scale_rotate() -> A.BasicTransform:
    return A.Affine(
        translate_percent={"x": (-0.1, 0.1), "y": (-0.1, 0.1)},
        scale=(0.99, 1.01),
        rotate=(-30.0, 30.0),
        border_mode=cv2.BORDER_REFLECT_101,
        p=1.0,
    )


def _rgb_shift() -> A.BasicTransform:
    return A.RGBShift(r_shift_limit=(-15, 15), g_shift_limit=(-15, 15), b_shift_limit=(-15, 15), p=1.0)


def _brightness_contrast() -> A.BasicTransform:
    return A.RandomBrightnessContrast(brightness_limit=(-0.2, 0.2), contrast_limit=(-0.2, 0.2), p=1.0)


def _posterize() -> A.BasicTransform:
    return A.Posterize(num_bits=4, p=1.0)


def _motion_blur() -> A.BasicTransform:
    return A.MotionBlur(blur_limit=(3, 7), p=1.0)


def _jpeg() -> A.BasicTransform:
    return A.ImageCompression(compression_type="jpeg", quality_range=(99, 100), p=1.0)


def _gaussian_noise() -> A.BasicTransform:
    return A.GaussNoise(std_range=(math.sqrt(10.0) / 255.0, math.sqrt(50.0) / 255.0), p=1.0)


def _equalize() -> A.BasicTransform:
    return A.Equalize(mode="cv", by_channels=True, p=1.0)


def _solarize() -> A.BasicTransform:
    return A.Solarize(threshold_range=(0.5, 0.5), p=1.0)


def _sharpen() -> A.BasicTransform:
    return A.Sharpen(alpha=(0.2, 0.5), lightness=(0.5, 1.0), p=1.0)


def _invert() -> A.BasicTransform:
    return A.InvertImg(p=1.0)


#: name -> factory of a fresh albumentations transform (p=1), in the release's order.
OPERATIONS: OrderedDict[str, Callable[[], A.BasicTransform]] = OrderedDict(
    [
        ("shear", _shear),
        ("shift_scale_rotate", _shift_scale_rotate),
        ("rgb_shift", _rgb_shift),
        ("brightness_contrast", _brightness_contrast),
        ("posterize", _posterize),
        ("motion_blur", _motion_blur),
        ("jpeg", _jpeg),
        ("gaussian_noise", _gaussian_noise),
        ("equalize", _equalize),
        ("solarize", _solarize),
        ("sharpen", _sharpen),
        ("invert", _invert),
    ]
)


# --- the augmentation pipeline --------------------------------------------------------------



def _resolve_operations(operations: Sequence[str | A.BasicTransform] | None) -> list:
    if operations is None:
        operations = list(OPERATIONS)
    if isinstance(operations, str) or not isinstance(operations, Sequence):
        raise ConfigError(
            f"operations must be a list of operation names or albumentations transforms, got {operations!r}"
        )
    resolved = []
    for op in operations:
        if isinstance(op, str):
            if op not in OPERATIONS:
                raise ConfigError(
                    f"unknown augmentation operation {op!r}; known: {', '.join(OPERATIONS)}"
                )
            resolved.append(op)
        elif isinstance(op, (A.BasicTransform, A.BaseCompose)):
            if op.p != 1:
                # OneOf uses the p's as selection weights: anything but equal p breaks uniformity.
                raise ConfigError(f"augmentation operation {op!r} must have p=1, got p={op.p}")
            resolved.append(op)
        else:
            raise ConfigError(
                f"an augmentation operation must be a name or an albumentations transform, got {op!r}"
            )
    return resolved


def _generators(entropy: int | list[int] | None) -> tuple[np.random.Generator, random.Random]:
    if isinstance(entropy, list):  # derived streams (workers): mix through a SeedSequence
        seq = np.random.SeedSequence(entropy)
        py_seed = int(seq.generate_state(2, dtype=np.uint64)[0])
        return np.random.default_rng(seq), random.Random(py_seed)
    return np.random.default_rng(entropy), random.Random(entropy)


class Augmenter:
    """``uint8`` HxWx3 -> ``uint8`` HxWx3: ``ops_per_image`` operations drawn uniformly with
    replacement from ``operations`` and applied in turn. Build it with :func:`train_transform`.

    ``compose`` is the underlying albumentations pipeline. Picklable (the random state goes
    along); :meth:`reseed` restarts the stream.
    """

    def __init__(
        self,
        ops_per_image: int = 2,
        operations: Sequence[str | A.BasicTransform] | None = None,
        seed: int | None = None,
    ) -> None:
        if isinstance(ops_per_image, bool) or not isinstance(ops_per_image, (int, np.integer)):
            raise ConfigError(f"ops_per_image must be an integer, got {ops_per_image!r}")
        if ops_per_image < 0:
            raise ConfigError(f"ops_per_image must be >= 0, got {ops_per_image}")
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0):
            raise ConfigError(f"seed must be a non-negative integer or None, got {seed!r}")
        ops = _resolve_operations(operations)
        if ops_per_image > 0 and not ops:
            raise ConfigError("operations is empty but ops_per_image > 0")

        self.ops_per_image = int(ops_per_image)
        self.operation_names = [op if isinstance(op, str) else type(op).__name__ for op in ops]
        self.seed = None if seed is None else int(seed)
        slots = [
            A.OneOf([OPERATIONS[op]() if isinstance(op, str) else op for op in ops], p=1.0)
            for _ in range(self.ops_per_image)
        ]
        self.compose = A.Compose(slots, p=1.0, seed=self.seed)
        # One generator pair for the whole pipeline (Compose(seed=) would give each OneOf an
        # identical copy, making both picks the same op).
        self.compose.set_random_state(*_generators(self.seed))

    def reseed(self, seed: int | list[int] | None) -> None:
        """Restart the random stream: an int gives the same stream as ``train_transform(seed=)``;
        a list of ints is mixed through ``numpy.random.SeedSequence``; None draws fresh entropy."""
        self.compose.set_random_state(*_generators(seed))

    def __call__(self, image: np.ndarray) -> np.ndarray:
        _check_image(image)
        if self.ops_per_image == 0:
            return image
        return self.compose(image=image)["image"]

    def __repr__(self) -> str:
        return (
            f"Augmenter(ops_per_image={self.ops_per_image}, "
            f"operations={self.operation_names}, seed={self.seed})"
        )


def train_transform(
    ops_per_image: int = 2,
    operations: Sequence[str | A.BasicTransform] | None = None,
    seed: int | None = None,
) -> Augmenter:
    """The training augmentation: a callable ``uint8`` HxWx3 -> ``uint8`` HxWx3 (same size).

    ``ops_per_image`` operations are drawn uniformly with replacement from ``operations``
    (names from :data:`OPERATIONS`, default all twelve, or albumentations transforms with
    ``p=1``) and applied in turn. ``seed`` makes the stream reproducible (None: fresh entropy).
    Raises :class:`~rrrnet.errors.ConfigError` for an unknown name or ``ops_per_image < 0``.
    """
    return Augmenter(ops_per_image=ops_per_image, operations=operations, seed=seed)
