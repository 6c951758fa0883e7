"""Faults a probe found (issue 12): nothing lost, nothing spoofed, no traceback. Each test is named
after the fault it reproduces; the weights cache and download timeout are in test_weights.py."""
import csv
import os
import shutil
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import pytest

from conftest import make_meta_album
from rrrnet.cli import main
from rrrnet.data import load_dataset
from rrrnet.errors import DataError, RunError
from rrrnet.model import ModelConfig
from rrrnet.rundir import lock_folder, release_folder
from rrrnet.train import DataSpec, Recipe, fit

TINY_ARGS = ["--arch", "resnet18", "--blocks", "1,1,1,1", "--branches", "2", "--weights", "none",
             "--ema-epochs", "1", "--warm-stump-epochs", "1", "--image-size", "32",
             "--batch-size", "8", "--train", "6", "--test", "6", "--seed", "3", "-q"]
TINY_MODEL = ModelConfig(arch="resnet18", blocks=(1, 1, 1, 1), branches=2, weights="none")
TINY_RECIPE = Recipe(epochs=2, batch_size=8, ema_epochs=1, warm_stump_epochs=1, image_size=32)
RRRNET = str(Path(sys.executable).parent / "rrrnet")


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return make_meta_album(tmp_path_factory.mktemp("data") / "tiny", classes=4, per_class=12)


@pytest.fixture
def finished(data, tmp_path):
    """A finished run folder and the bytes of its files."""
    fit(DataSpec(str(data), train=6, test=6), tmp_path / "run", TINY_MODEL, TINY_RECIPE,
        progress=False)
    return tmp_path / "run"


def snapshot(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file() and p.name != ".rrrnet.lock"}


def cli(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


# ----------------------------------------------------------------------------- data loss

@pytest.mark.slow
def test_two_fits_into_the_same_out_the_second_is_refused_with_the_holders_pid(data, tmp_path):
    args = [RRRNET, "fit", str(data), "--out", str(tmp_path / "run"), "--epochs", "200"] + TINY_ARGS
    first = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                             start_new_session=True)
    try:
        deadline = time.time() + 120
        while not (tmp_path / "run" / "checkpoint.pt").exists():
            assert first.poll() is None, first.stderr.read().decode()
            assert time.time() < deadline
            time.sleep(0.05)
        second = subprocess.run(args + ["--resume"], capture_output=True, text=True, timeout=120)
        assert second.returncode == 2
        assert f"{tmp_path / 'run'} is being written by another process (PID {first.pid})" \
            in second.stderr and "Traceback" not in second.stderr
    finally:
        os.killpg(first.pid, signal.SIGKILL)  # a crash: the OS releases its lock
        first.wait()
    resumed = subprocess.run(args[:5] + ["--epochs", "2", "--resume"] + TINY_ARGS, capture_output=True,
                             text=True, timeout=300)
    assert resumed.returncode == 2 and "another configuration" in resumed.stderr  # not the lock


@pytest.mark.parametrize("command", ["benchmark", "sweep-branches", "select-blocks", "tune"])
def test_experiment_folders_held_by_another_process_are_refused(data, tmp_path, capsys, command):
    out = tmp_path / "out"
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time; from rrrnet.rundir import "
                               "lock_folder; lock_folder(__import__('pathlib').Path(sys.argv[1])); "
                               "print('held', flush=True); time.sleep(60)", str(out)],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        code, _, err = cli(capsys, command, data, "--out", out, "--weights", "none")
        assert code == 2 and f"another process (PID {holder.pid})" in err
    finally:
        holder.kill()
        holder.wait()
    lock_folder(out)  # free again once the holder is gone (its lock died with it)
    release_folder(out)


def test_overwrite_with_a_bad_option_keeps_the_finished_run(data, finished, capsys):
    before = snapshot(finished)
    base = ["fit", data, "--out", finished, "--epochs", "2", *TINY_ARGS, "--overwrite"]
    for bad in (["--lr", "-1"], ["--lr", "nan"], ["--weight-decay", "-1"], ["--image-size", "0"]):
        code, _, err = cli(capsys, *base, *bad)
        assert code == 2 and "Traceback" not in err, (bad, err)
    code, _, err = cli(capsys, *[a if a != "none" else str(finished / "missing.pth") for a in base])
    assert code == 2 and "does not exist" in err  # the weights fail to load: nothing replaced
    assert snapshot(finished) == before


def test_overwrite_removes_everything_of_the_old_run(data, finished, capsys):
    assert cli(capsys, "evaluate", finished, data)[0] == 0
    (finished / ".checkpoint.pt.x1y2.tmp").write_bytes(b"half a checkpoint")
    assert (finished / "evaluate").is_dir()
    code, _, err = cli(capsys, "fit", data, "--out", finished, "--epochs", "1", *TINY_ARGS,
                       "--overwrite")
    assert code == 0, err
    assert not (finished / "evaluate").exists() and not list(finished.glob(".*.tmp"))


def test_kill_9_leaves_an_orphan_tmp_that_resume_removes(data, tmp_path):
    spec = DataSpec(str(data), train=6, test=6)
    fit(spec, tmp_path / "run", TINY_MODEL, TINY_RECIPE, progress=False, stop_after=1)
    orphan = tmp_path / "run" / ".checkpoint.pt.k9k9k9.tmp"  # what kill -9 during a save leaves
    orphan.write_bytes(b"\0" * 1000)
    fit(spec, tmp_path / "run", TINY_MODEL, TINY_RECIPE, progress=False, resume=True)
    assert not orphan.exists()


# ----------------------------------------------------------------------------- silent wrong results

def _relabel(root: Path, rows: list[tuple[str, str]]) -> None:
    with open(root / "labels.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["FILE_NAME", "CATEGORY", "SUPER_CATEGORY"])
        writer.writerows([(file, category, "") for file, category in rows])


def test_path_aliases_of_one_image_are_duplicates(data, tmp_path):
    root = tmp_path / "aliases"
    shutil.copytree(data, root)
    (root / "images" / "link.png").symlink_to(root / "images" / "c0_0.png")
    rows = [(f"c{c}_{i}.png", f"class_{c}") for c in range(4) for i in range(12)]
    for alias in ("./c0_0.png", str(root / "images" / "c0_0.png"), "../images/c0_0.png",
                  "link.png"):
        _relabel(root, rows + [(alias, "class_1")])
        with pytest.raises(DataError, match=r"lines 2 and 50 both list c0_0.png"):
            load_dataset(root)


def test_files_outside_the_dataset_are_refused_unless_allowed(data, tmp_path, capsys):
    root = tmp_path / "outside"
    shutil.copytree(data, root)
    shutil.copy(root / "images" / "c0_0.png", tmp_path / "elsewhere.png")
    rows = [(f"c{c}_{i}.png", f"class_{c}") for c in range(4) for i in range(1, 12)]
    _relabel(root, rows + [("../../elsewhere.png", "class_0")])
    with pytest.raises(DataError, match=r"line 46: \.\./\.\./elsewhere.png resolves to .*outside "
                                        r"the dataset folder.*--allow-outside-files"):
        load_dataset(root)
    assert len(load_dataset(root, allow_outside_files=True).paths) == 45
    code, _, err = cli(capsys, "fit", root, "--out", tmp_path / "run", "--epochs", "1", *TINY_ARGS)
    assert code == 2 and "--allow-outside-files" in err and not (tmp_path / "run").exists()


@pytest.mark.parametrize("damaged", ["model.pt", "metrics.json", "config.json"])
def test_a_damaged_file_of_a_run_is_refused(data, finished, capsys, damaged):
    path = finished / damaged
    raw = bytearray(path.read_bytes())
    middle = len(raw) // 2
    raw[middle:middle + 64] = bytes(255 - b for b in raw[middle:middle + 64])
    path.write_bytes(bytes(raw))
    code, _, err = cli(capsys, "evaluate", finished, data)
    assert code == 2 and f"{path} is damaged" in err


def test_a_damaged_checkpoint_or_stump_is_refused_on_resume(data, tmp_path):
    spec = DataSpec(str(data), train=6, test=6)
    for name in ("checkpoint.pt", "stump.pt"):
        out = tmp_path / name
        fit(spec, out, TINY_MODEL, TINY_RECIPE, progress=False, stop_after=1)
        with open(out / name, "r+b") as f:
            middle = f.seek(0, 2) // 2
            f.seek(middle)
            flipped = bytes(255 - b for b in f.read(64))  # 64 bytes certainly changed
            f.seek(middle)
            f.write(flipped)
        with pytest.raises(RunError, match=f"{name} is damaged"):
            fit(spec, out, TINY_MODEL, TINY_RECIPE, progress=False, resume=True)


def test_a_run_killed_before_its_first_epoch_ended_starts_again_on_resume(data, tmp_path):
    """A benchmark cell killed while its first epoch trained leaves config and manifest (and the
    stump) but no checkpoint: --resume starts it again; one with history rows is still refused."""
    spec = DataSpec(str(data), train=6, test=6)
    out = tmp_path / "run"
    fit(spec, out, TINY_MODEL, TINY_RECIPE, progress=False, stop_after=1)
    (out / "checkpoint.pt").unlink()
    with pytest.raises(RunError, match="no checkpoint.pt to resume from"):
        fit(spec, out, TINY_MODEL, TINY_RECIPE, progress=False, resume=True)
    history = out / "history.csv"
    history.write_text(history.read_text().splitlines()[0] + "\n")  # the header only
    result = fit(spec, out, TINY_MODEL, TINY_RECIPE, progress=False, resume=True)
    assert [row["epoch"] for row in result.history] == [1, 2]
    assert (out / "metrics.json").exists()


def test_divergence_exits_2_and_keeps_the_last_finite_checkpoint(data, tmp_path, capsys):
    code, _, err = cli(capsys, "fit", data, "--out", tmp_path / "run", "--epochs", "3",
                       *TINY_ARGS, "--lr", "1e12")
    assert code == 2 and "loss became" in err and "epoch" in err and "Traceback" not in err
    assert not (tmp_path / "run" / "metrics.json").exists()
    for bad in ("inf", "-1", "nan"):
        code, _, err = cli(capsys, "fit", data, "--out", tmp_path / "other", "--epochs", "1",
                           *TINY_ARGS, "--lr", bad)
        assert code == 2 and "lr" in err and "must be a finite" in err
        assert not (tmp_path / "other").exists()


def test_fit_has_no_num_classes_option_to_ignore(data, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["fit", str(data), "--out", str(tmp_path / "run"), "--num-classes", "7"])
    assert exit_.value.code == 2 and "--num-classes" in capsys.readouterr().err


def test_image_folder_warns_about_nested_folders(tmp_path):
    from PIL import Image
    for c in ("cat", "dog"):
        (tmp_path / c / "more").mkdir(parents=True)
        Image.new("RGB", (8, 8)).save(tmp_path / c / "a.png")
        Image.new("RGB", (8, 8)).save(tmp_path / c / "more" / "b.png")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        load_dataset(tmp_path)
    messages = [str(w.message) for w in caught]
    assert any("cat: sub-folders ['more'] are ignored" in m for m in messages), messages


# ----------------------------------------------------------------------------- one-line errors

def test_out_naming_a_file_or_a_path_under_a_file_is_a_clear_error(data, tmp_path, capsys):
    (tmp_path / "afile").write_text("x")
    for out in (tmp_path / "afile", tmp_path / "afile" / "run"):
        code, _, err = cli(capsys, "fit", data, "--out", out, "--epochs", "1", *TINY_ARGS)
        assert code == 2 and "choose another --out" in err and "Traceback" not in err


def test_a_corrupted_config_json_is_a_clear_error(data, finished, capsys):
    (finished / "config.json").write_text("{not json")
    (finished / "manifest.json").unlink()  # damaged by hand, not detected by its hash
    for argv in (["evaluate", finished, data], ["predict", finished, data / "images" / "c0_0.png"]):
        code, _, err = cli(capsys, *argv)
        assert code == 2 and "config.json" in err and "not JSON" in err, err
    code, _, err = cli(capsys, "fit", data, "--out", finished, "--epochs", "2", *TINY_ARGS,
                       "--resume")
    assert code == 2 and "config.json" in err


def test_evaluate_split_val_without_a_validation_split(data, finished, capsys):
    code, _, err = cli(capsys, "evaluate", finished, data, "--split", "val")
    assert code == 2 and "without a validation split" in err


def test_predict_with_a_negative_k_an_empty_folder_or_a_bad_image(data, finished, capsys,
                                                                   tmp_path):
    image = data / "images" / "c0_0.png"
    code, _, err = cli(capsys, "predict", finished, image, "-k", "-1")
    assert code == 2 and "--topk must be at least 1" in err
    (tmp_path / "empty").mkdir()
    code, _, err = cli(capsys, "predict", finished, tmp_path / "empty")
    assert code == 2 and "holds no images" in err
    # an unreadable image: its row says why, the others are scored, the exit code is 1
    (tmp_path / "bad.png").write_bytes(b"not a png")
    code, out, err = cli(capsys, "predict", finished, tmp_path / "bad.png", image)
    assert code == 1 and "cannot decode image" in out and "--skip-bad-images" not in out
    assert "1 of 2 image(s) could not be read" in err and "c0_0.png: class_" in out


def test_class_mismatch_shows_the_difference(data, finished, tmp_path, capsys):
    other = tmp_path / "renamed"
    shutil.copytree(data, other)
    text = (other / "labels.csv").read_text().replace("class_3", "class_x")
    (other / "labels.csv").write_text(text)
    code, _, err = cli(capsys, "evaluate", finished, other, "--split", "all")
    assert code == 2 and "['class_x']" in err and "['class_3']" in err
