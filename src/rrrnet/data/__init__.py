"""Datasets: Meta-Album / ImageFolder loading, the authors' micro split, a PyTorch Dataset."""
from .dataset import (
    IMAGE_EXTENSIONS,
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

__all__ = [
    "IMAGE_EXTENSIONS",
    "ImageDataset",
    "LabelledImages",
    "Split",
    "decode_rgb",
    "load_dataset",
    "load_image_folder",
    "load_meta_album",
    "micro_split",
    "read_image",
]
