"""The examples of docs/training.md run as written (on a tiny model and dataset)."""
import re
from pathlib import Path

import pytest

import rrrnet
from conftest import PILPairs as Images
from conftest import make_meta_album
from rrrnet.data import load_dataset, micro_split
from rrrnet.training import strategies

DOC = Path(__file__).parent.parent / "docs" / "training.md"


def examples() -> list[str]:
    return re.findall(r"```python\n(.*?)```", DOC.read_text(), flags=re.S)


@pytest.mark.parametrize("index", range(len(examples())))
def test_training_docs_example_runs(tmp_path, index):
    split = micro_split(load_dataset(make_meta_album(tmp_path / "d", classes=4, per_class=12)),
                        train=6, test=6)
    scope = {"model": rrrnet.build(arch="resnet18", branches=2, num_classes=4, weights="none"),
             "train_images": Images(split.train), "val_images": Images(split.test)}
    before = dict(strategies._REGISTRY)
    try:
        exec(compile(examples()[index], f"docs/training.md example {index + 1}", "exec"), scope)
    finally:
        strategies._REGISTRY.clear()
        strategies._REGISTRY.update(before)
    result = scope["result"]
    assert result.history and not result.stopped
    if index == 0:  # stopped as soon as the validation error reached the target, or at 30
        rows = result.history
        assert rows[-1]["eval_error"] <= 0.25 or len(rows) == 30
        assert all(r["eval_error"] > 0.25 for r in rows[:-1])
