import sys
from pathlib import Path

import pytest
import torch

from rrrnet.model import ModelConfig, build

sys.path.insert(0, str(Path(__file__).parent))  # the analytic helper module


@pytest.fixture(autouse=True)
def _deterministic():
    torch.manual_seed(0)
    torch.set_num_threads(2)
    yield


def randomize_(module: torch.nn.Module, seed: int = 1) -> torch.nn.Module:
    """Give every parameter and BatchNorm statistic distinct random values, so that any
    misplaced channel changes outputs (default BN values would hide it)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, t in module.state_dict().items():
            if t.is_floating_point():
                values = torch.rand(t.shape, generator=g)
                t.copy_(values + 0.5 if name.endswith("running_var") else (values - 0.5) * 0.2
                        if "conv" in name or "downsample.0" in name else values - 0.5)
    return module


def read_csv(path) -> list[dict[str, str]]:
    """A CSV file's rows as dicts of strings."""
    import csv

    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def make_meta_album(root, classes: int = 4, per_class: int = 12, size: int = 32, seed: int = 0):
    """A small learnable Meta-Album dataset: each class a colour and a shape, with noise."""
    import csv
    import json

    import numpy as np
    from PIL import Image, ImageDraw

    rng = np.random.default_rng(seed)
    (root / "images").mkdir(parents=True)
    rows = []
    palette = [(220, 40, 40), (40, 180, 60), (50, 80, 220), (230, 200, 40), (160, 60, 200),
               (40, 200, 200), (250, 130, 20), (120, 120, 120)]
    for c in range(classes):
        for i in range(per_class):
            noise = rng.integers(0, 60, (size, size, 3), dtype=np.uint8)
            image = Image.fromarray(noise)
            draw = ImageDraw.Draw(image)
            box = [size // 6 + rng.integers(0, 4), size // 6, size - size // 6, size - size // 6]
            (draw.ellipse if c % 2 else draw.rectangle)(box, fill=palette[c % len(palette)])
            name = f"c{c}_{i}.png"
            image.save(root / "images" / name)
            rows.append({"FILE_NAME": name, "CATEGORY": f"class_{c}", "SUPER_CATEGORY": ""})
    with open(root / "labels.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["FILE_NAME", "CATEGORY", "SUPER_CATEGORY"])
        writer.writeheader()
        writer.writerows(rows)
    (root / "info.json").write_text(json.dumps({"dataset_name": "tiny"}))
    return root


# A small fused RRR-Net with randomised weights (BatchNorm far from identity), for the tests of
# exact rewrites (test_fold.py) and deployment (test_deploy.py): fixture `model`.
TINY_FUSED = ModelConfig(arch="resnet50", blocks=(1, 1, 1, 1), branches=4, num_classes=5,
                         weights="none")


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return randomize_(build(TINY_FUSED, progress=False)).eval()


def images(n=3, size=32, seed=0):
    return torch.randn(n, 3, size, size, generator=torch.Generator().manual_seed(seed))


def relative_error(a, b):
    return ((a - b).abs().max() / b.abs().max()).item()


class PILPairs(torch.utils.data.Dataset):
    """A user's own Dataset: the (PIL image, label) pairs of a LabelledImages, opened once."""

    def __init__(self, images):
        from PIL import Image
        self.items = [(Image.open(p).convert("RGB"), y) for p, y in zip(images.paths,
                                                                        images.labels)]

    def __len__(self):
        return len(self.items)

    def __getitem__(self, i):
        return self.items[i]
