"""rrrnet.Run: the one reader of a run folder, against a tiny finished run."""
import json
import shutil

import pytest
import torch

import rrrnet
from conftest import make_meta_album
from rrrnet.data import ImageDataset, load_dataset
from rrrnet.errors import RunError
from rrrnet.evaluate import evaluate_model
from rrrnet.io import read_csv
from rrrnet.model import ModelConfig, load
from rrrnet.recycle import BranchedResNet
from rrrnet.run import Run

TINY_MODEL = ModelConfig(arch="resnet18", blocks=(1, 1, 1, 1), branches=2, weights="none")


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    root = make_meta_album(tmp_path_factory.mktemp("data") / "tiny", classes=3, per_class=12)
    out = tmp_path_factory.mktemp("runs") / "run"
    recipe = rrrnet.Recipe(epochs=2, batch_size=8, ema_epochs=1, warm_stump_epochs=1,
                           image_size=32)
    rrrnet.fit(rrrnet.DataSpec(str(root), train=6, val=2, test=4), out, TINY_MODEL, recipe,
               progress=False)
    return root, out


def test_the_reader_gives_what_the_run_folder_holds(finished):
    root, out = finished
    run = rrrnet.Run(out)
    assert rrrnet.Run is Run and run.path == out and not run.is_quantized and run.is_finished
    assert repr(run) == f"Run({str(out)!r}, finished)"
    config = json.loads((out / "config.json").read_text())
    assert run.config == config and run.config_path == out / "config.json"
    assert run.classes == ["class_0", "class_1", "class_2"] == list(load_dataset(root).classes)
    assert run.image_size == 32 and isinstance(run.image_size, int)
    assert {k: run.data[k] for k in ("root", "train", "val", "test")} == \
        {"root": str(root), "train": 6, "val": 2, "test": 4}
    assert run.metrics == json.loads((out / "metrics.json").read_text())
    assert run.metrics["images"] == 12 and 0 <= run.metrics["error"] <= 1
    assert run.history == read_csv(out / "history.csv")
    assert [row["epoch"] for row in run.history] == [1, 2]
    assert (run.evaluate_dir, run.uncertainty_dir, run.export_dir) == \
        (out / "evaluate", out / "uncertainty", out / "export")
    assert run.evaluate_path(root, "val") == out / "evaluate" / "tiny-val.json"


def test_the_model_is_loaded_once_and_is_the_runs_model(finished):
    root, out = finished
    run = Run(out)
    model = run.model
    assert isinstance(model, BranchedResNet) and run.model is model
    assert model.config.to_dict() == {**run.config["model"], "shift": run.config["resolved_shift"]}
    assert model.config.num_classes == 3
    saved = load(out / "model.pt").state_dict()
    assert all(torch.equal(saved[k], v) for k, v in model.state_dict().items())
    # the run's own split, scored with the run's model, gives the run's own test error
    test = run.split(load_dataset(root)).test
    assert len(test) == 12
    again = evaluate_model(model, ImageDataset(test, size=32),
                           rrrnet.Recipe(image_size=run.image_size), device="cpu")
    assert again["error"] == pytest.approx(run.metrics["error"])


def test_an_unfinished_run_reads_but_has_no_model(finished, tmp_path):
    _, out = finished
    unfinished = tmp_path / "unfinished"
    shutil.copytree(out, unfinished)
    (unfinished / "model.pt").unlink()
    (unfinished / "metrics.json").unlink()
    (unfinished / "checkpoint.pt").write_bytes(b"")  # as an interrupted run leaves one
    run = Run(unfinished)
    assert not run.is_finished and repr(run).endswith("unfinished)")
    assert run.metrics == {} and len(run.history) == 2 and run.classes == Run(out).classes
    with pytest.raises(RunError, match=r"holds no trained model \(model.pt\) \(training did not "
                                       r"finish: rrrnet fit \.\.\. --resume\)"):
        run.model
    with pytest.raises(RunError, match="holds no trained model"):
        run.require_finished()


def test_a_missing_or_damaged_run_is_refused(finished, tmp_path):
    _, out = finished
    with pytest.raises(RunError, match="is not a run folder"):
        Run(tmp_path / "nothing")
    damaged = tmp_path / "damaged"
    shutil.copytree(out, damaged)
    raw = bytearray((damaged / "model.pt").read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    (damaged / "model.pt").write_bytes(bytes(raw))
    run = Run(damaged)
    assert run.config == Run(out).config   # the other files still read
    with pytest.raises(RunError, match="model.pt is damaged"):
        run.model
    (tmp_path / "empty").mkdir()
    with pytest.raises(RunError, match="config.json does not exist"):
        Run(tmp_path / "empty").config


def test_classes_are_checked_by_name_and_order(finished):
    _, out = finished
    run = Run(out)
    run.check_classes(["class_0", "class_1", "class_2"], "same")
    with pytest.raises(RunError, match="the same classes in another order .position 0"):
        run.check_classes(["class_1", "class_0", "class_2"], "swapped")
    with pytest.raises(RunError, match=r"classes not in the run: \['x'\]; classes of the run "
                                       r"missing here: \['class_2'\]"):
        run.check_classes(["class_0", "class_1", "x"], "other")


def test_an_int8_file_stands_for_its_run(finished, tmp_path):
    pytest.importorskip("onnxruntime", reason="pip install 'rrrnet[export]'")
    from rrrnet.onnxfile import QuantizedModel
    from rrrnet.quantize import quantize_run
    _, out = finished
    path = tmp_path / "tiny.int8.onnx"
    quantize_run(out, path, images=8, latency_runs=0)
    run, source = Run(path), Run(out)
    assert run.is_quantized and run.is_finished and run.model_path == path
    assert isinstance(run.model, QuantizedModel)
    assert run.config["model"] == {**source.config["model"],
                                   "shift": source.config["resolved_shift"]}
    assert (run.classes, run.image_size, run.data) == \
        (source.classes, source.image_size, source.data)
    assert run.metrics == {} and run.history == []
    assert run.evaluate_dir == tmp_path / "tiny.int8.evaluate"
    with pytest.raises(RunError, match="already an int8 model"):
        quantize_run(path, tmp_path / "again.onnx")
