"""The Python training API: rrrnet.train on the user's own model and data."""
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset, TensorDataset

import rrrnet
from conftest import make_meta_album
from rrrnet.augment import normalize
from rrrnet.data import load_dataset, micro_split, read_image
from rrrnet.errors import ConfigError, DataError
from rrrnet.train import Callback, Recipe

TINY = dict(arch="resnet18", blocks=(1, 1, 1, 1), branches=2, num_classes=4, weights="none")
RECIPE = Recipe(epochs=8, batch_size=8, ema_epochs=2, warm_stump_epochs=1, image_size=32, seed=0)


@pytest.fixture(scope="module")
def split(tmp_path_factory):
    root = make_meta_album(tmp_path_factory.mktemp("data") / "tiny", classes=4, per_class=16)
    return micro_split(load_dataset(root), train=8, test=8)


class PILImages(Dataset):
    """A user's own Dataset: (PIL image, label) pairs, at the files' own size (40 px)."""

    def __init__(self, images):
        self.paths, self.labels = images.paths, images.labels

    def __len__(self):
        return len(self.paths)

    def __getitem__(self, i):
        return Image.open(self.paths[i]).convert("RGB").resize((40, 40)), self.labels[i]


def tensors(images, size=32):
    x = torch.stack([normalize(read_image(p, size)) for p in images.paths])
    return TensorDataset(x, torch.tensor(images.labels))


def error_of(model, data):
    x, y = data.tensors
    with torch.no_grad():
        return (model.eval().predict_proba(x).argmax(-1) != y).float().mean().item()


def test_train_on_a_dataloader_of_ready_batches(split):
    model = rrrnet.build(**TINY)
    train_loader = DataLoader(tensors(split.train), batch_size=8, shuffle=True,
                              generator=torch.Generator().manual_seed(0))
    test = tensors(split.test)
    result = rrrnet.train(model, train_loader, RECIPE, eval_data=DataLoader(test, batch_size=16),
                          progress=False)
    assert result.model is model and len(result.history) == RECIPE.epochs
    assert {"loss", "eval_error", "eval_error_b0", "eval_gain"} <= set(result.history[-1])
    assert result.history[-1]["eval_error_ema"] == pytest.approx(error_of(model, test))
    assert error_of(model, test) < 0.4  # chance: 0.75


def test_train_on_a_dataset_of_pil_images_applies_the_recipe(split):
    model = rrrnet.build(**TINY)
    test = tensors(split.test)
    result = rrrnet.train(model, PILImages(split.train), RECIPE, eval_data=PILImages(split.test),
                          progress=False)
    # resized from 40 to the recipe's 32 px, augmented, normalised
    assert result.history[-1]["eval_error_ema"] == pytest.approx(error_of(model, test), abs=1 / 32)
    assert error_of(model, test) < 0.4
    # the same seed gives the same model
    again = rrrnet.train(rrrnet.build(**TINY), PILImages(split.train), RECIPE, progress=False)
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(),
                                                  again.model.state_dict().values()))


def test_callbacks_see_every_epoch_and_can_stop(split):
    class Recorder(Callback):
        def __init__(self):
            self.events = []

        def on_train_start(self, state):
            self.events.append("start")

        def on_stump_ready(self, state):
            self.events.append("stump")

        def on_epoch_end(self, state):
            self.events.append(state.epoch)
            state.stop = state.epoch == 2

        def on_train_end(self, state):
            self.events.append("end")

    recorder = Recorder()
    result = rrrnet.train(rrrnet.build(**TINY), PILImages(split.train), RECIPE,
                          callbacks=[recorder], progress=False)
    assert recorder.events == ["start", "stump", 1, 2] and result.stopped
    assert len(result.history) == 2


def test_bad_training_inputs_are_clear_errors(split):
    model = rrrnet.build(**TINY)
    batches = DataLoader(tensors(split.train), batch_size=8)
    with pytest.raises(ConfigError, match="bagging.*Dataset"):
        rrrnet.train(model, batches, Recipe(ensemble="bagging"), progress=False)
    with pytest.raises(ConfigError, match="re-iterable and have a length"):
        rrrnet.train(model, (batch for batch in batches), progress=False)
    with pytest.raises(ConfigError, match="BranchedResNet"):
        rrrnet.train(torch.nn.Linear(2, 2), batches, progress=False)

    class Strings(Dataset):
        def __len__(self):
            return 2

        def __getitem__(self, i):
            return "not an image", 0
    with pytest.raises(DataError, match="PIL image or uint8"):
        rrrnet.train(model, Strings(), RECIPE, progress=False)


def test_package_exports_the_training_api():
    for name in ("train", "fit", "Recipe", "DataSpec", "TrainResult"):
        assert name in rrrnet.__all__ and getattr(rrrnet, name) is not None
    import rrrnet.train as module
    assert callable(rrrnet.train) and rrrnet.train is module  # the module answers calls
    assert rrrnet.fit is module.fit and rrrnet.Recipe is module.Recipe


HEAVY = ("scipy", "albumentations", "cv2", "matplotlib", "ray", "optuna", "torch_pruning", "onnx",
         "onnxruntime", "skimage")


@pytest.mark.parametrize("code, absent", [
    ("import rrrnet", ("torch", *HEAVY)),                        # names load on first use
    ("import rrrnet; rrrnet.build; rrrnet.cost; rrrnet.SOURCES", HEAVY),   # the core: torch only
    ("import rrrnet.deploy", ("albumentations", "cv2", "matplotlib", "rrrnet.train",
                              "rrrnet.augment")),
    # the whole parser, every command's options: `rrrnet COMMAND --help` without torch
    ("from rrrnet.cli import parser; parser()", ("torch", "numpy", *HEAVY)),
])
def test_imports_stay_light(code, absent):
    """In a fresh interpreter: what an import (or building the command line) loads."""
    check = f"{code}; import sys; print(sorted(m for m in {absent!r} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", (code, out.stdout)


@pytest.mark.slow
def test_the_python_guide_runs(tmp_path, monkeypatch):
    """docs/python.md's session, run as written, with no pretrained weights and 2 epochs."""
    text = (Path(__file__).parents[1] / "docs" / "python.md").read_text()
    code = "\n".join(re.findall(r"```python\n(.*?)```", text, flags=re.S))
    assert 'WEIGHTS = "astra-ct"' in code and "EPOCHS = 30" in code
    code = code.replace('WEIGHTS = "astra-ct"', 'WEIGHTS = "none"').replace("EPOCHS = 30", "EPOCHS = 2")
    monkeypatch.chdir(tmp_path)
    namespace = {}
    exec(compile(code, "docs/python.md", "exec"), namespace)
    assert namespace["metrics"]["images"] == 400
    assert (tmp_path / "model.pt").exists() and (tmp_path / "model.onnx").exists()
    assert np.isfinite(namespace["metrics"]["nll"])
