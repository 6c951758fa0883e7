"""A careless or hostile user (issue 22): nothing a user does can lose a finished run.

One module for the six rules, so that a new failure of the same kind is caught in one place:

1. validate first, then touch: bad numbers from the CLI, a config file or the API cost nothing;
   ``--overwrite`` sets the old run aside and brings it back if the new one fails;
2. no symbolic link inside a run folder or an output path is followed; a run folder is known
   by rrrnet's marker, not by a ``config.json``;
3. crash consistency: a fit killed at any instant (SIGKILL, SIGTERM, SIGINT) resumes to the
   same metrics as an uninterrupted run (tests/crash_harness.py kills real processes);
4. outputs never replace inputs or earlier outputs silently;
5. one identity rule for dataset files (links, hard links, copies, links out of the folder);
6. every user error exits 2 with one line on stderr: ``test_the_cli_walk`` runs every command
   with bad arguments.
"""
import json
import os
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import torch

from conftest import make_meta_album
from rrrnet.cli import main
from rrrnet.data import load_dataset
from rrrnet.errors import ConfigError, DataError, RunError
from rrrnet.model import ModelConfig
from rrrnet.rundir import MARKER, check_output, record
from rrrnet.train import Callback, DataSpec, Recipe, fit

HERE = Path(__file__).parent
TINY_MODEL = ModelConfig(arch="resnet18", blocks=(1, 1, 1, 1), branches=2, weights="none")
TINY_RECIPE = Recipe(epochs=1, batch_size=8, ema_epochs=1, warm_stump_epochs=1, image_size=32)
TINY_ARGS = ["--arch", "resnet18", "--blocks", "1,1,1,1", "--branches", "2", "--weights", "none",
             "--ema-epochs", "1", "--warm-stump-epochs", "1", "--image-size", "32",
             "--batch-size", "8", "--train", "6", "--test", "6", "--split", "micro", "--seed",
             "0", "--epochs", "1", "--recipe", "paper", "-q"]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return make_meta_album(tmp_path_factory.mktemp("data") / "tiny", classes=4, per_class=12)


@pytest.fixture(scope="module")
def pristine(data, tmp_path_factory):
    """A finished run, never changed: tests change copies of it (:func:`finished`)."""
    out = tmp_path_factory.mktemp("pristine") / "run"
    fit(DataSpec(str(data), train=6, test=6, split="micro"), out, TINY_MODEL, TINY_RECIPE,
        progress=False)
    return out


@pytest.fixture
def finished(pristine, tmp_path):
    shutil.copytree(pristine, tmp_path / "run", symlinks=True)
    return tmp_path / "run"


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` (but the lock) and its bytes."""
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file() and not p.is_symlink() and p.name != ".rrrnet.lock"}


def cli(capsys, *argv):
    """``rrrnet ARGV`` in this process: (exit code, stdout, stderr); argparse's exits count."""
    try:
        code = main([str(a) for a in argv])
    except SystemExit as exit_:
        code = exit_.code
    out, err = capsys.readouterr()
    return code, out, err


def one_line_error(code, err, expected=""):
    lines = [ln for ln in err.splitlines() if ln.strip() and "Warning" not in ln
             and not ln.startswith("  warnings.warn")]
    assert code == 2, err
    assert "Traceback" not in err and len(lines) == 1, err
    assert expected in lines[0], (expected, lines[0])
    return lines[0]


# ----------------------------------------------------------------------------- rule 1

def test_overwrite_with_bad_options_from_cli_or_config_keeps_the_run(data, finished, capsys,
                                                                     tmp_path):
    before = snapshot(finished)
    base = ["fit", data, "--out", finished, *TINY_ARGS, "--overwrite"]
    for bad, expected in ((["--seed", "-1"], "seed (--seed) must be at least 0"),
                          (["--test", "-1"], "test (--test) must be at least 0"),
                          (["--lr", "nan"], "lr (--lr) must be a finite number"),
                          (["--min-steps", "-5"], "min_steps must be >= 0, got -5")):
        one_line_error(*cli(capsys, *base, *bad)[::2], expected)
    for values, expected in (({"epochs": 1.5}, "epochs (--epochs) must be an integer, got 1.5"),
                             ({"batch_size": 2.5}, "batch_size (--batch-size) must be an integer"),
                             ({"image_size": 32.5}, "image_size (--image-size) must be an integer"),
                             ({"min_steps": 2.5}, "min_steps (--min-steps) must be an integer"),
                             ({"device": 5}, "device (--device) must be a string, got 5")):
        config = tmp_path / "config.json"
        config.write_text(json.dumps({"recipe": values}))
        one_line_error(*cli(capsys, *base, "--config", config)[::2], expected)
    assert snapshot(finished) == before and not list(finished.glob(".rrrnet-replaced-*"))


def test_the_api_meets_the_same_typed_checks(data, tmp_path):
    spec = DataSpec(str(data), train=6, test=6, split="micro")
    for bad, expected in ((dict(epochs=1.5), "epochs"), (dict(seed=-1), "seed"),
                          (dict(batch_size=True), "batch_size"), (dict(device=5), "device")):
        with pytest.raises(ConfigError, match=expected):   # at Recipe(...) itself, or at fit
            fit(spec, tmp_path / "run", TINY_MODEL, Recipe(**bad), progress=False)
    with pytest.raises(ConfigError, match="train .* must be an integer"):
        fit(DataSpec(str(data), train=2.5, test=6, split="micro"), tmp_path / "run", TINY_MODEL,
            TINY_RECIPE, progress=False)
    for bad in (dict(seed=-1), dict(branches=1.5), dict(shift=2.5), dict(num_classes=True),
                dict(dropout=float("nan")), dict(arch=5)):
        with pytest.raises(ConfigError):
            ModelConfig(**bad)
    assert not (tmp_path / "run").exists()


class Fails(Callback):
    """Breaks the new run after its first epoch's files are written."""

    def __init__(self, error):
        self.error = error

    def on_epoch_end(self, state):
        raise self.error


@pytest.mark.parametrize("error", [RuntimeError("a bug in a callback"), KeyboardInterrupt()])
def test_overwrite_that_fails_brings_the_old_run_back(data, finished, error):
    before = snapshot(finished)
    other = Recipe(**{**TINY_RECIPE.__dict__, "lr": 0.01})
    with pytest.raises(type(error)):
        fit(DataSpec(str(data), train=6, test=6, split="micro"), finished, TINY_MODEL, other,
            overwrite=True, progress=False, callbacks=[Fails(error)])
    assert snapshot(finished) == before
    assert not list(finished.glob(".rrrnet-replaced-*")) and not list(finished.glob(".*.tmp"))


def test_overwrite_replaces_the_whole_old_run_only_once_the_new_one_is_valid(data, finished,
                                                                             capsys):
    for folder in ("export", "uncertainty", "evaluate", "logs"):
        (finished / folder).mkdir()
        (finished / folder / "old.txt").write_text("describes the old model")
    (finished / "notes.txt").write_text("the user's own file")
    old_model = (finished / "model.pt").read_bytes()
    code, _, err = cli(capsys, "fit", data, "--out", finished, *TINY_ARGS, "--lr", "0.01",
                       "--overwrite")
    assert code == 0, err
    assert (finished / "model.pt").read_bytes() != old_model
    assert not any((finished / f).exists() for f in ("export", "uncertainty", "evaluate", "logs"))
    assert not list(finished.glob(".rrrnet-replaced-*"))
    assert (finished / "notes.txt").read_text() == "the user's own file"


# ----------------------------------------------------------------------------- rule 2

def test_a_folder_with_a_config_json_is_not_a_run(data, tmp_path, capsys):
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "config.json").write_text('{"model": {}, "recipe": {}}')
    (folder / "history.csv").write_text("my,own\n1,2\n")
    before = snapshot(folder)
    for flags in ([], ["--resume"], ["--overwrite"]):
        one_line_error(*cli(capsys, "fit", data, "--out", folder, *TINY_ARGS, *flags)[::2],
                       "is not an rrrnet run folder")
    assert snapshot(folder) == before


def test_a_run_written_before_the_marker_still_counts_by_its_manifest(data, finished, capsys):
    (finished / MARKER).unlink()
    code, out, err = cli(capsys, "fit", data, "--out", finished, *TINY_ARGS, "--resume")
    assert code == 0 and "test error" in out, err


def test_a_symlinked_lock_is_refused_and_its_target_untouched(data, finished, tmp_path, capsys):
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    (finished / ".rrrnet.lock").unlink()
    (finished / ".rrrnet.lock").symlink_to(victim)
    one_line_error(*cli(capsys, "fit", data, "--out", finished, *TINY_ARGS, "--resume")[::2],
                   ".rrrnet.lock is a symbolic link")
    assert victim.read_text() == "precious"


def test_symlinks_inside_a_run_are_never_followed(data, finished, tmp_path, capsys):
    target = tmp_path / "elsewhere"
    target.mkdir()
    for folder, argv in (("evaluate", ["evaluate", finished, data]),
                         ("uncertainty", ["uncertainty", finished, data]),
                         ("export", ["export", finished, "-f", "torchscript"])):
        (finished / folder).symlink_to(target, target_is_directory=True)
        one_line_error(*cli(capsys, *argv)[::2], f"{folder} is a symbolic link")
        (finished / folder).unlink()
    assert not list(target.iterdir())
    # a run file that is a link is refused, not read through
    real = tmp_path / "model.pt"
    shutil.copy(finished / "model.pt", real)
    (finished / "model.pt").unlink()
    (finished / "model.pt").symlink_to(real)
    one_line_error(*cli(capsys, "evaluate", finished, data)[::2], "model.pt is a symbolic link")


def test_a_symlinked_checkpoint_is_refused_on_resume(data, tmp_path):
    spec = DataSpec(str(data), train=6, test=6, split="micro")
    recipe = Recipe(**{**TINY_RECIPE.__dict__, "epochs": 2})
    fit(spec, tmp_path / "run", TINY_MODEL, recipe, progress=False, stop_after=1)
    shutil.move(tmp_path / "run" / "checkpoint.pt", tmp_path / "checkpoint.pt")
    (tmp_path / "run" / "checkpoint.pt").symlink_to(tmp_path / "checkpoint.pt")
    with pytest.raises(RunError, match="checkpoint.pt is a symbolic link"):
        fit(spec, tmp_path / "run", TINY_MODEL, recipe, progress=False, resume=True)


# ----------------------------------------------------------------------------- rule 3

KILL_ARGS = ["--arch", "resnet18", "--blocks", "1,1,1,1", "--branches", "2", "--split-at",
             "layer4", "--weights", "none", "--epochs", "2", "--ema-epochs", "1",
             "--warm-stump-epochs", "1", "--image-size", "16", "--batch-size", "8", "--train",
             "2", "--test", "2", "--split", "micro", "--seed", "1", "--precision", "fp32", "-q"]
# fp32: with bf16 autocast on this CPU two identical uninterrupted processes already differ in
# a weight (oneDNN's bf16 kernels), so there would be nothing exact to compare to.
# Each kill hits a window a timer rarely does: a rename just done or about to be done, with
# the manifest not yet naming it. The next child resumes (--resume) what the kill left.
KILLS = [{"file": MARKER, "when": "after", "signal": "SIGKILL"},
         {"file": "config.json", "when": "after", "signal": "SIGTERM"},
         {"file": "manifest.json", "when": "after", "nth": 3, "signal": "SIGKILL"},
         {"file": "stump.pt", "when": "after", "signal": "SIGKILL"},
         {"file": "history.csv", "when": "after", "signal": "SIGINT"},   # no checkpoint yet
         {"file": "checkpoint.pt", "when": "after", "signal": "SIGKILL"},  # the case
         {"file": "checkpoint.pt", "when": "before", "signal": "SIGTERM"},
         {"file": "model.pt", "when": "after", "signal": "SIGKILL"},     # no metrics.json yet
         {"file": "metrics.json", "when": "after", "signal": "SIGTERM"},
         {}]


def run_harness(tmp_path, data, chains):
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps({"tmp": str(tmp_path), "chains": [
        {"argv": ["fit", str(data), "--out", str(out), *KILL_ARGS], "kills": kills}
        for out, kills in chains]}))
    done = subprocess.run([sys.executable, str(HERE / "crash_harness.py"), str(spec)],
                          capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def same_results(run: Path, reference: Path) -> None:
    def metrics(folder):
        m = json.loads((folder / "metrics.json").read_text())
        return {k: v for k, v in m.items() if not k.endswith("_seconds")}
    assert metrics(run) == metrics(reference)
    a = torch.load(run / "model.pt", weights_only=True)["state_dict"]
    b = torch.load(reference / "model.pt", weights_only=True)["state_dict"]
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    manifest = json.loads((run / "manifest.json").read_text())
    assert not manifest.get("pending") and not list(run.glob(".*.tmp"))


def test_a_fit_killed_at_any_instant_resumes_to_the_same_metrics(data, tmp_path):
    """SIGKILL, SIGTERM and SIGINT just before and after the renames of a fit (the marker,
    the configuration, the manifest, the stump, the history, the checkpoint, the model and
    its metrics), each kill resumed by the next process; then the final metrics and weights
    are those of an uninterrupted run."""
    chains = run_harness(tmp_path, data, [(tmp_path / "reference", [{}]),
                                          (tmp_path / "killed", KILLS)])
    assert chains[0][0]["exit"] == 0, chains[0]
    for step in chains[1][:-1]:   # every kill happened: none of these processes finished
        assert step["exit"] in (-9, 130, 143), step
        assert step["exit"] == -9 or "continues with --resume" in step["stderr"], step
    assert chains[1][-1]["exit"] == 0, chains[1][-1]
    same_results(tmp_path / "killed", tmp_path / "reference")
    code = subprocess.run([str(Path(sys.executable).parent / "rrrnet"), "evaluate",
                           str(tmp_path / "killed"), str(data), "--split", "all"],
                          capture_output=True, text=True).returncode
    assert code == 0   # every file matches the manifest


@pytest.mark.slow
def test_a_fit_killed_at_15_moments_in_time_resumes_to_the_same_metrics(data, tmp_path):
    """Timed kills spread over a run's duration (measured first), SIGKILL and SIGTERM in
    turn, each resumed by the next process."""
    first = run_harness(tmp_path, data, [(tmp_path / "reference", [{}])])
    assert first[0][0]["exit"] == 0
    started = (tmp_path / "reference" / "config.json").stat().st_mtime
    took = (tmp_path / "reference" / "metrics.json").stat().st_mtime - started + 1.0
    kills = [{"after_s": round(0.3 + took * i / 15, 2), "signal": ("SIGKILL", "SIGTERM")[i % 2]}
             for i in range(15)]
    chains = run_harness(tmp_path, data, [(tmp_path / "killed", kills + [{}] * 2)])
    assert chains[0][-1]["exit"] == 0, chains[0]
    assert sum(step["exit"] in (-9, 143) for step in chains[0]) >= 10, chains[0]
    same_results(tmp_path / "killed", tmp_path / "reference")


# ----------------------------------------------------------------------------- rule 4

def test_outputs_never_replace_inputs_or_earlier_outputs(data, finished, capsys, tmp_path):
    before = snapshot(finished)
    for argv in (["evaluate", finished, data, "--out", finished / "model.pt"],
                 ["export", finished, "--out", finished / "model.pt"],
                 ["export", finished, "--out", finished / "config.json", "--overwrite"],
                 ["build", "--arch", "resnet18", "--weights", "none", "--out",
                  finished / "model.pt", "--overwrite"]):
        one_line_error(*cli(capsys, *argv)[::2], "one of the run's own files")
    one_line_error(*cli(capsys, "evaluate", finished, data, "--out", data / "labels.csv")[::2],
                   "which this command reads")
    assert snapshot(finished) == before
    # an existing output (here export's default, RUN/export/...): refused without --overwrite
    assert cli(capsys, "export", finished)[0] == 0
    out = finished / "export" / "model.torchscript.pt"
    os.utime(out, (0, 0))
    one_line_error(*cli(capsys, "export", finished)[::2], "exists; pass --overwrite")
    assert out.stat().st_mtime == 0
    assert cli(capsys, "export", finished, "--overwrite")[0] == 0 and out.stat().st_mtime > 0
    (tmp_path / "folder.onnx").mkdir()
    line = one_line_error(*cli(capsys, "export", finished, "-f", "onnx", "--out",
                               tmp_path / "folder.onnx", "--overwrite")[::2], "is a folder")
    assert "space" not in line
    (tmp_path / "report").mkdir()
    (tmp_path / "report" / "mine.txt").write_text("x")
    one_line_error(*cli(capsys, "uncertainty", finished, data, "--out", tmp_path / "report")[::2],
                   "exists; pass --overwrite")
    (tmp_path / "q.onnx").write_text("an earlier int8 file")
    one_line_error(*cli(capsys, "quantize", finished, "--out", tmp_path / "q.onnx")[::2],
                   "exists; pass --overwrite")
    one_line_error(*cli(capsys, "quantize", finished, "--out", tmp_path / "new.onnx", "--runs",
                        "-1")[::2], "--runs must be at least 0")
    assert not (tmp_path / "new.onnx").exists()   # refused before anything is written


def test_check_output_rules(tmp_path, finished):
    (tmp_path / "data").mkdir()
    with pytest.raises(RunError, match="which this command reads"):
        check_output(tmp_path / "data" / "x.json", inputs=[tmp_path / "data"])
    with pytest.raises(RunError, match="run's own files"):
        check_output(finished / "manifest.json", overwrite=True)
    assert check_output(finished / "evaluate" / "x.json") == finished / "evaluate" / "x.json"
    with pytest.raises(ConfigError, match="NUL"):
        check_output("a\0b")


# ----------------------------------------------------------------------------- rule 5

def test_a_duplicated_header_in_labels_csv_is_an_error(data, tmp_path, capsys):
    root = tmp_path / "dup"
    shutil.copytree(data, root)
    lines = (root / "labels.csv").read_text().splitlines()
    lines[0] += ",CATEGORY"
    (root / "labels.csv").write_text("\n".join(f"{ln},class_0" if i else ln
                                               for i, ln in enumerate(lines)) + "\n")
    with pytest.raises(DataError, match="column CATEGORY more than once"):
        load_dataset(root)


def _class_folders(root: Path, shade: int = 0) -> Path:
    from PIL import Image
    for c, colour in (("cat", (200, 30, 30)), ("dog", (30, 30, 200))):
        (root / c).mkdir(parents=True)
        for i in range(3):
            Image.new("RGB", (8, 8), (colour[0], colour[1] + 40 * i, colour[2] + shade)).save(
                root / c / f"{i}.png")
    return root


def test_class_folders_follow_the_one_identity_rule(tmp_path):
    root = _class_folders(tmp_path / "links")
    (root / "dog" / "alias.png").symlink_to(root / "cat" / "0.png")
    with pytest.raises(DataError, match=r"the same file \(a symbolic link\)"):
        load_dataset(root)
    (root / "dog" / "alias.png").unlink()
    os.link(root / "cat" / "1.png", root / "dog" / "hard.png")
    with pytest.raises(DataError, match="a hard link of the same file"):
        load_dataset(root)
    (root / "dog" / "hard.png").unlink()
    outside = _class_folders(tmp_path / "elsewhere", shade=20)
    (root / "dog" / "out.png").symlink_to(outside / "cat" / "2.png")
    with pytest.raises(DataError, match="outside the dataset folder.*--allow-outside-files"):
        load_dataset(root)
    assert len(load_dataset(root, allow_outside_files=True).paths) == 7
    (root / "dog" / "out.png").unlink()
    shutil.copy(root / "cat" / "2.png", root / "dog" / "copy.png")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert len(load_dataset(root).paths) == 7   # kept as listed, but never silently
    assert any("copies of another" in str(w.message) for w in caught)


def test_a_nul_byte_in_labels_csv_is_an_error(data, tmp_path):
    root = tmp_path / "nul"
    shutil.copytree(data, root)
    text = (root / "labels.csv").read_text().replace("c0_0.png", "c0\0_0.png")
    (root / "labels.csv").write_text(text)
    with pytest.raises(DataError, match="NUL byte"):
        load_dataset(root)


# ----------------------------------------------------------------------------- rule 6

def test_a_full_disk_in_torch_save_is_one_line_and_leaves_no_temporary_file(data, tmp_path,
                                                                             monkeypatch):
    real_save = torch.save

    def full(obj, f, *args, **kwargs):
        f.write(b"partial")
        raise RuntimeError("[enforce fail at inline_container.cc:595] . PytorchStreamWriter "
                           "failed writing file data/0: file write failed")
    monkeypatch.setattr(torch, "save", full)
    with pytest.raises(RunError, match="could not write .*stump.pt.*disk.*intact.*Free some space"):
        fit(DataSpec(str(data), train=6, test=6, split="micro"), tmp_path / "run", TINY_MODEL,
            TINY_RECIPE, progress=False)
    monkeypatch.setattr(torch, "save", real_save)
    assert not list((tmp_path / "run").glob(".*.tmp"))


def test_a_read_only_folder_is_one_line(finished, data, capsys, monkeypatch):
    import tempfile

    def refused(*args, **kwargs):
        raise PermissionError(13, "Permission denied")
    monkeypatch.setattr(tempfile, "mkstemp", refused)   # root ignores chmod: simulated
    line = one_line_error(*cli(capsys, "evaluate", finished, data)[::2], "Permission denied")
    assert "write permission" in line


def test_a_damaged_model_is_not_met_with_resume_advice(data, finished, capsys):
    with open(finished / "model.pt", "r+b") as f:
        f.seek(1000)
        f.write(b"\0" * 64)
    for argv in (["evaluate", finished, data], ["fit", data, "--out", finished, *TINY_ARGS,
                                                "--resume"]):
        line = one_line_error(*cli(capsys, *argv)[::2], "model.pt is damaged")
        assert "--resume" not in line and "--overwrite" in line


def test_quantize_after_the_dataset_moved_says_so(finished, capsys, tmp_path):
    config = json.loads((finished / "config.json").read_text())
    config["data"]["root"] = str(tmp_path / "moved-away")
    (finished / "config.json").write_text(json.dumps(config))
    record(finished, "config.json")
    line = one_line_error(*cli(capsys, "quantize", finished, "--out", tmp_path / "q.onnx")[::2],
                          "is not there any more")
    assert "--calibration" in line


def test_evaluate_on_too_small_a_dataset_gives_evaluate_advice(finished, tmp_path, capsys):
    small = make_meta_album(tmp_path / "small", classes=4, per_class=3)
    line = one_line_error(*cli(capsys, "evaluate", finished, small)[::2], "cannot be split")
    assert "--train" not in line and "--split all" in line


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """The hostile files of the CLI walk."""
    from rrrnet.onnxfile import FORMAT
    d = tmp_path_factory.mktemp("hostile")
    os.mkfifo(d / "fifo")
    torch.save({1: torch.zeros(2)}, d / "intkeys.pth")
    torch.save({"format": "rrrnet-model/1", "config": TINY_MODEL.to_dict(),
                "state_dict": {0: torch.zeros(1)}}, d / "handmade.pt")
    torch.save({"format": "rrrnet-model/1", "config": [1, 2]}, d / "noconfig.pt")
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper
    graph = helper.make_graph([helper.make_node("Identity", ["images"], ["logits"])], "g",
                              [helper.make_tensor_value_info("images", TensorProto.FLOAT, None)],
                              [helper.make_tensor_value_info("logits", TensorProto.FLOAT, None)])
    for name, meta in (("badconfig.onnx", {"config": '{"arch": 5}', "classes": '["a", "b"]'}),
                       ("notjson.onnx", {"config": "{not json", "classes": '["a"]'}),
                       ("badclasses.onnx", {"config": json.dumps(TINY_MODEL.to_dict()),
                                            "classes": "7"})):
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
        for key, value in {"format": FORMAT, "image_size": "32", **meta}.items():
            entry = model.metadata_props.add()
            entry.key, entry.value = key, value
        onnx.save(model, str(d / name))
    (d / "config.json").write_text(json.dumps({"recipe": {"epochs": 1.5}}))
    return d


def walk_cases():
    """(id, argv with {run} {data} {files} {tmp}, environment, expected words): every command
    with bad arguments; each must exit 2 with one line naming the culprit."""
    return [
        ("info-size-0", ["info", "--image-size", "0"], {}, "--image-size must be between 1"),
        ("info-size-huge", ["info", "--image-size", str(10 ** 11)], {}, "--image-size"),
        ("info-branches", ["info", "--branches", "0"], {}, "branches"),
        ("info-seed", ["info", "--seed", "-1"], {}, "seed (--seed) must be at least 0"),
        ("build-devzero", ["build", "--weights", "/dev/zero", "--arch", "resnet18", "--out",
                           "{tmp}/b.pt"], {}, "is a character device, not a file"),
        ("build-fifo", ["build", "--weights", "{files}/fifo", "--arch", "resnet18", "--out",
                        "{tmp}/b.pt"], {}, "is a FIFO"),
        ("build-intkeys", ["build", "--weights", "{files}/intkeys.pth", "--arch", "resnet18",
                           "--out", "{tmp}/b.pt"], {}, "is not a state dict"),
        ("build-nul", ["build", "--weights", "a\0b", "--out", "{tmp}/b.pt"], {}, "NUL byte"),
        ("weights-home", ["weights", "--fetch", "resnet18.tv_in1k", "--arch", "resnet18"],
         {"HOME": "/dev/null", "TORCH_HOME": None, "XDG_CACHE_HOME": None}, "set $HOME"),
        ("weights-mirror", ["weights", "--fetch", "resnet18.tv_in1k", "--arch", "resnet18"],
         {"RRRNET_WEIGHTS_MIRROR": "ht!tp:/x", "TORCH_HOME": "{tmp}/torch"}, "is not a URL"),
        ("weights-timeout-inf", ["weights", "--timeout", "inf"], {}, "finite positive"),
        ("weights-timeout-env", ["weights", "--fetch", "resnet18.tv_in1k", "--arch", "resnet18"],
         {"RRRNET_DOWNLOAD_TIMEOUT": "inf", "TORCH_HOME": "{tmp}/torch"}, "finite positive"),
        ("fit-seed", ["fit", "{data}", "--out", "{tmp}/f", *TINY_ARGS, "--seed", "-1"], {},
         "seed (--seed)"),
        ("fit-config-float", ["fit", "{data}", "--out", "{tmp}/f", *TINY_ARGS, "--config",
                              "{files}/config.json"], {}, "epochs (--epochs) must be an integer"),
        ("fit-int-arg", ["fit", "{data}", "--out", "{tmp}/f", "--epochs", "1.5"], {},
         "invalid int value"),
        ("fit-fifo-data", ["fit", "{files}/fifo", "--out", "{tmp}/f", *TINY_ARGS], {}, "FIFO"),
        ("fit-nul", ["fit", "{data}\0", "--out", "{tmp}/f"], {}, "NUL byte"),
        ("fit-out-file", ["fit", "{data}", "--out", "{files}/intkeys.pth", *TINY_ARGS], {},
         "is a file"),
        ("evaluate-out-model", ["evaluate", "{run}", "{data}", "--out", "{run}/model.pt"], {},
         "run's own files"),
        ("evaluate-fifo", ["evaluate", "{run}", "{files}/fifo"], {}, "is a FIFO"),
        ("evaluate-no-run", ["evaluate", "{tmp}/nothing", "{data}"], {}, "not a run folder"),
        ("evaluate-onnx-config", ["evaluate", "{files}/badconfig.onnx", "{data}"], {},
         "metadata is damaged"),
        ("evaluate-onnx-json", ["evaluate", "{files}/notjson.onnx", "{data}"], {}, "damaged"),
        ("evaluate-onnx-classes", ["evaluate", "{files}/badclasses.onnx", "{data}"], {},
         "classes must be a list"),
        *[(f"uncertainty-alpha-{a}", ["uncertainty", "{run}", "{data}", "--alpha", a], {},
           "--alpha") for a in ("5", "nan", "-1", "0")],
        ("uncertainty-mc", ["uncertainty", "{run}", "{data}", "--mc-samples", "-1"], {},
         "--mc-samples"),
        ("quantize-runs", ["quantize", "{run}", "--out", "{tmp}/q.onnx", "--runs", "-1"], {},
         "--runs"),
        ("quantize-threads", ["quantize", "{run}", "--out", "{tmp}/q.onnx", "--threads", "0"],
         {}, "--threads"),
        ("quantize-images", ["quantize", "{run}", "--out", "{tmp}/q.onnx", "--images", "0"], {},
         "--images"),
        ("quantize-suffix", ["quantize", "{run}", "--out", "{tmp}/q.pt"], {}, ".onnx"),
        ("predict-k", ["predict", "{run}", "{data}/images/c0_0.png", "-k", "0"], {}, "at least 1"),
        ("predict-fifo", ["predict", "{run}", "{files}/fifo"], {}, "FIFO"),
        ("latency-threads", ["latency", "{run}", "--threads", "-1"], {}, "--threads"),
        ("latency-size", ["latency", "{run}", "--image-size", "0"], {}, "--image-size"),
        ("latency-runs", ["latency", "{run}", "--runs", "0"], {}, "runs >= 1"),
        ("latency-handmade", ["latency", "{files}/handmade.pt"], {}, "holds no model"),
        ("export-handmade", ["export", "{files}/handmade.pt", "--out", "{tmp}/e.pt"], {},
         "holds no model"),
        ("export-noconfig", ["export", "{files}/noconfig.pt", "--out", "{tmp}/e.pt"], {},
         "holds no model"),
        ("export-size", ["export", "{run}", "--image-size", "0", "--out", "{tmp}/e.pt"], {},
         "--image-size"),
        ("demo-seed", ["demo", "--out", "{tmp}/demo", "--seed", "-1"], {}, "seed"),
        ("demo-epochs", ["demo", "--out", "{tmp}/demo", "--epochs", "-1"], {}, "epochs"),
        ("data-converter", ["data", "nosuch", "{tmp}/d"], {}, "unknown converter"),
        ("data-per-class", ["data", "digits", "{tmp}/d", "--per-class", "-1"], {}, "per_class"),
        ("tune-seed", ["tune", "{data}", "--out", "{tmp}/t", "--seed", "-1"], {},
         "--seed must be at least 0"),
        ("tune-trials", ["tune", "{data}", "--out", "{tmp}/t", "--trials", "0"], {}, "--trials"),
        ("select-epsilon", ["select-blocks", "{data}", "--out", "{tmp}/s", "--epsilon", "nan"],
         {}, "--epsilon"),
        ("sweep-branches", ["sweep-branches", "{data}", "--out", "{tmp}/w", "--branches", "0"],
         {}, "--branches"),
        ("benchmark-report", ["benchmark", "--report-only", "{tmp}/nothing"], {}, "not found"),
        ("benchmark-epochs", ["benchmark", "{data}", "--out", "{tmp}/b", "--epochs", "0",
                              "--train", "2", "--test", "2"], {}, "--epochs"),
        ("benchmark-config", ["benchmark", "{data}", "--out", "{tmp}/b", "--config",
                              "{files}/config.json"], {}, "epochs (--epochs) must be an integer"),
        ("prune-compare-out", ["prune-compare"], {}, "required"),
        ("unknown-command", ["frobnicate"], {}, "invalid choice"),
    ]


@pytest.mark.parametrize("case", walk_cases(), ids=[c[0] for c in walk_cases()])
def test_the_cli_walk(case, pristine, data, files, tmp_path, capsys, monkeypatch):
    """Every command with bad arguments: exit 2, one line on stderr naming the culprit, no
    traceback, and the finished run it reads unchanged."""
    _, argv, env, expected = case
    where = {"run": pristine, "data": data, "files": files, "tmp": tmp_path}
    for key, value in env.items():
        if value is None:
            monkeypatch.delenv(key, raising=False)
        else:
            monkeypatch.setenv(key, value.format(**where))
    before = snapshot(pristine)
    one_line_error(*cli(capsys, *[a.format(**where) for a in argv])[::2], expected)
    assert snapshot(pristine) == before
