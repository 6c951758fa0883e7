"""Your own dataset through ``rrrnet fit`` (issue 23): a ``train/ val/ test/`` folder of
imbalanced classes with odd images and junk trains with its own parts; every image is accounted
for (split.csv, skipped.csv); metrics.json reports the imbalance measures; bad input exits 2
with one line naming the file or class and the fix, writing nothing into the dataset; a run
folder from before the new data options still resumes."""
from __future__ import annotations

import csv
import json
import os
import shutil
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import make_meta_album, read_csv
from rrrnet.cli import main
from rrrnet.data import Split, load_parts, read_split_file, write_split_files
from rrrnet.evaluate import ensemble_metrics, evaluate_split
from rrrnet.metrics import class_scores
from rrrnet.model import ModelConfig, build
from rrrnet.recipe import DATA_BEFORE_OPTION, DataSpec, Recipe
from rrrnet.rundir import record
from rrrnet.training.fit import as_written, fit

TINY = ["--arch", "resnet18", "--weights", "none", "--image-size", "32", "--epochs", "2",
        "--recipe", "paper", "--precision", "fp32", "--branches", "2", "--batch-size", "8",
        "--ema-epochs", "1", "--warm-stump-epochs", "1"]
# class -> images per part: imbalanced (cat has 6x emu's training images)
COUNTS = {"cat": {"train": 12, "val": 2, "test": 3},
          "dog": {"train": 5, "val": 1, "test": 2},
          "emu": {"train": 2, "val": 1, "test": 2}}
# every fifth image in an odd form: (PIL mode, file name suffix)
FORMS = [("RGB", ".png"), ("L", ".png"), ("RGBA", ".PNG"), ("I;16", ".png"), ("RGB", ".JPG")]


def write_image(path: Path, mode: str, seed: int, size: int = 24) -> None:
    rng = np.random.default_rng(seed)
    if mode == "I;16":
        Image.fromarray(rng.integers(0, 65535, (size, size), dtype=np.uint16)).save(path)
        return
    channels = {"L": 1, "RGB": 3, "RGBA": 4}[mode]
    array = rng.integers(0, 255, (size, size, channels), dtype=np.uint8).squeeze()
    Image.fromarray(array, mode).save(path, format="JPEG" if path.suffix.upper() == ".JPG" else "PNG")


def make_own(root: Path, counts=COUNTS, junk: bool = True) -> Path:
    """ROOT/{train,val,test}/CLASS/ of distinct noise images in the odd forms, and junk."""
    seed = 0
    for name, parts in counts.items():
        for part, n in parts.items():
            folder = root / part / name
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(n):
                mode, suffix = FORMS[seed % len(FORMS)]
                write_image(folder / f"{name}_{i}{suffix}", mode, seed)
                seed += 1
    if junk:
        (root / "train" / "cat" / "notes.txt").write_text("not an image")
        (root / "train" / "dog" / ".DS_Store").write_bytes(b"\0\1")
        (root / "val" / "cat" / "empty.png").write_bytes(b"")
        good = (root / "test" / "dog").glob("*.png").__next__().read_bytes()
        (root / "test" / "dog" / "truncated.png").write_bytes(good[: len(good) // 2])
        (root / "README.txt").write_text("a file beside the parts")
    return root


def listing(folder: Path) -> dict[str, tuple[int, int]]:
    """Every file under ``folder`` with its size and modification time."""
    return {p.relative_to(folder).as_posix(): (p.stat().st_size, p.stat().st_mtime_ns)
            for p in sorted(folder.rglob("*"))}


def cli(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def own(tmp_path_factory):
    return make_own(tmp_path_factory.mktemp("own") / "pets")


# --------------------------------------------------------------------------- the whole path

@pytest.mark.slow
def test_split_folders_train_with_their_own_parts(own, tmp_path, capsys):
    before = listing(own)
    out = tmp_path / "run"
    code, stdout, err = cli(capsys, "fit", own, "--out", out, *TINY)
    assert code == 0, err
    # the summary table before training: per part and per class, and the files skipped
    assert "split-folders, parts from its folders" in stdout
    assert [line.split() for line in stdout.splitlines() if line.startswith("cat ")] == \
        [["cat", "12", "2", "3"]]
    assert "skipped 5 files" in stdout
    # the imbalance warning: one line on stderr naming the classes and what to try
    warning = [line for line in err.splitlines() if "imbalanced" in line]
    assert len(warning) == 1 and "'cat' has 12" in warning[0] and "'emu' 2" in warning[0]
    assert "--balance weights" in warning[0] and "--balance sampler" in warning[0]
    # split.csv: every image used, its counts those of the folder's images per part and class
    rows = read_csv(out / "split.csv")
    assert Counter((r["part"], r["label"]) for r in rows) == Counter(
        {(part, name): n for name, parts in COUNTS.items() for part, n in parts.items()})
    assert all((own / r["file"]).is_file() and r["file"].startswith(r["part"] + "/") for r in rows)
    skipped = {r["file"]: r["reason"] for r in read_csv(out / "skipped.csv")}
    assert set(skipped) == {"README.txt", "train/cat/notes.txt", "train/dog/.DS_Store",
                            "val/cat/empty.png", "test/dog/truncated.png"}
    assert "empty" in skipped["val/cat/empty.png"]
    assert "truncated" in skipped["test/dog/truncated.png"]
    # both files are in the run's manifest, and config.json records the data options
    files = json.loads((out / "manifest.json").read_text())["files"]
    assert {"split.csv", "skipped.csv", "config.json", "metrics.json"} <= set(files)
    data = json.loads((out / "config.json").read_text())["data"]
    assert data["layout"] == "auto" and data["split"] is None and data["keep_duplicates"] is False
    # the history chose on val; metrics.json scores test, with the imbalance measures
    history = read_csv(out / "history.csv")
    assert any(k.startswith("val_") for k in history[0]) and not any(
        k.startswith("test_") for k in history[0])
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["scored_on"] == "test" and metrics["test_images"] == 7
    assert set(metrics["per_class"]) == {"cat", "dog", "emu"}
    assert {c: v["support"] for c, v in metrics["per_class"].items()} == \
        {c: p["test"] for c, p in COUNTS.items()}
    recalls = [v["recall"] for v in metrics["per_class"].values()]
    assert metrics["balanced_error"] == pytest.approx(1 - sum(recalls) / 3)
    assert 0 <= metrics["macro_f1"] <= 1
    assert metrics["val"]["images"] == 4
    assert f"balanced error {metrics['balanced_error']:.2%}" in stdout
    # nothing was written into the dataset folder
    assert listing(own) == before


@pytest.mark.slow
def test_no_test_part_reports_the_validation_figures_labelled(tmp_path, capsys):
    root = make_own(tmp_path / "pets", {c: {"train": 4, "val": 2} for c in ("a", "b")},
                    junk=False)
    code, stdout, err = cli(capsys, "fit", root, "--out", tmp_path / "run", *TINY, "-q")
    assert code == 0, err
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["scored_on"] == "val" and metrics["test_images"] == 0
    assert "no test part" in metrics["note"]
    assert metrics["error"] == metrics["val"]["error"] and metrics["images"] == 4
    assert "val (no test part) error" in stdout


def test_data_options_make_the_data_spec(tmp_path):
    from rrrnet.cli import parse
    from rrrnet.commands.fit import data_spec
    from rrrnet.errors import ConfigError
    args = parse(["fit", "--labels", "x.csv", "--root", str(tmp_path), "--out", "o", "--split",
                  "0.7,0.2,0.1", "--split-seed", "4", "--layout", "csv", "--keep-duplicates"])
    assert data_spec(args, args.data) == DataSpec(
        str(tmp_path), labels="x.csv", split=(0.7, 0.2, 0.1), split_seed=4, layout="csv",
        keep_duplicates=True)
    args = parse(["fit", "--out", "o", "--labels", "x.csv"])
    assert data_spec(args, args.data) == DataSpec(None, labels="x.csv")
    args = parse(["fit", str(tmp_path / "a"), "--root", str(tmp_path / "b"), "--out", "o"])
    with pytest.raises(ConfigError, match="two dataset folders given"):
        data_spec(args, args.data)
    # a run's config.json as --config: its data options (ratios as a JSON list) come back
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"recipe": {}, "model": {}, "data": DataSpec(
        "d", split=(0.6, 0.2, 0.2), split_seed=2).to_dict()}))
    args = parse(["fit", "--out", "o", "--config", str(config)])
    assert data_spec(args, args.data) == DataSpec("d", split=(0.6, 0.2, 0.2), split_seed=2)


@pytest.mark.slow
def test_a_labels_csv_trains_with_its_part_column(tmp_path, capsys):
    images = make_own(tmp_path / "images", {c: {"train": 4, "test": 2} for c in ("a", "b")},
                      junk=False)
    rows = [(p.relative_to(images).as_posix(), p.parent.name, p.parts[-3])
            for p in sorted(images.rglob("*.*"))]
    labels = tmp_path / "labels.csv"
    labels.write_text("file,label,part\n" + "".join(f"{f},{c},{part}\n" for f, c, part in rows))
    code, _, err = cli(capsys, "fit", "--labels", labels, "--root", images, "--out",
                       tmp_path / "run", *TINY, "-q")
    assert code == 0, err
    used = read_csv(tmp_path / "run" / "split.csv")
    assert sorted((r["file"], r["label"], r["part"]) for r in used) == rows
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["test_images"] == 4


def test_the_imbalance_warning(own, tmp_path):
    from rrrnet.commands.fit import imbalance_warning
    parts = load_parts(own)                                   # train: cat 12, dog 5, emu 2
    assert parts.imbalance() == ("cat", 12, "emu", 2)
    text = imbalance_warning(parts, Recipe(), ["fit", str(own)])
    assert "\n" not in text and "6.0x" in text and "--balance weights" in text
    assert imbalance_warning(parts, Recipe(balance="weights"), []) is None
    assert imbalance_warning(parts, Recipe(), ["--balance", "none"]) is None   # asked for none
    assert imbalance_warning(parts, Recipe(), ["--balance=none"]) is None
    even = load_parts(make_own(tmp_path / "even", {"a": {"train": 6}, "b": {"train": 2}},
                               junk=False))
    assert even.imbalance() is None                           # 3x exactly: no warning


# --------------------------------------------------------------------------- metrics

def test_class_scores_hand_computed():
    # classes a b c d e; d is predicted once but has no image, e neither
    labels = torch.tensor([0, 0, 0, 0, 1, 1, 2, 2])
    predicted = torch.tensor([0, 0, 0, 1, 1, 0, 3, 2])
    s = class_scores(predicted, labels, ["a", "b", "c", "d", "e"])
    assert s["per_class"]["a"] == {"precision": 0.75, "recall": 0.75, "f1": 0.75, "support": 4}
    assert s["per_class"]["b"] == {"precision": 0.5, "recall": 0.5, "f1": 0.5, "support": 2}
    assert s["per_class"]["c"] == pytest.approx(
        {"precision": 1.0, "recall": 0.5, "f1": 2 / 3, "support": 2})
    assert s["per_class"]["d"] == {"precision": 0.0, "recall": None, "f1": 0.0, "support": 0}
    assert s["per_class"]["e"] == {"precision": None, "recall": None, "f1": None, "support": 0}
    # over the classes present: recalls .75 .5 .5, F1s .75 .5 2/3
    assert s["balanced_error"] == pytest.approx(1 - (0.75 + 0.5 + 0.5) / 3)
    assert s["macro_f1"] == pytest.approx((0.75 + 0.5 + 2 / 3) / 3)
    # a class with images that is never predicted right counts with F1 0
    never = class_scores(torch.tensor([0, 0, 0]), torch.tensor([0, 0, 1]), 2)
    assert never["per_class"]["1"] == {"precision": None, "recall": 0.0, "f1": 0.0, "support": 1}
    assert never["balanced_error"] == pytest.approx(0.5)
    assert never["macro_f1"] == pytest.approx((0.8 + 0.0) / 2)   # a: 2*2/(3+2)


def test_ensemble_metrics_carry_the_class_scores_by_name():
    labels = torch.tensor([0, 0, 0, 0, 1, 1, 2, 2])
    predicted = torch.tensor([0, 0, 0, 1, 1, 0, 1, 2])
    logits = torch.nn.functional.one_hot(predicted, 3).float().expand(2, -1, -1) * 5
    m = ensemble_metrics(logits, labels, ["a", "b", "c"])
    assert m["error"] == pytest.approx(3 / 8)
    assert m["balanced_error"] == pytest.approx(1 - (3 / 4 + 1 / 2 + 1 / 2) / 3)
    assert m["macro_f1"] == pytest.approx((3 / 4 + 2 * 1 / (2 + 3) + 2 * 1 / (2 + 1)) / 3)
    assert list(m["per_class"]) == ["a", "b", "c"]
    assert list(ensemble_metrics(logits, labels)["per_class"]) == ["0", "1", "2"]


def test_evaluate_split_without_a_test_part(own):
    parts = load_parts(own)
    model = build(ModelConfig(arch="resnet18", blocks=(1, 1, 1, 1), branches=2, weights="none",
                              num_classes=3), progress=False)
    recipe = Recipe(image_size=32, batch_size=8)
    no_test = Split(parts.train, parts.val, parts.val.subset([]))
    m = evaluate_split(model, no_test, recipe, torch.device("cpu"))
    assert m["scored_on"] == "val" and m["test_images"] == 0 and m["images"] == len(parts.val)
    assert "no test part" in m["note"] and m["val"]["error"] == m["error"]
    assert m["classes"] == ["cat", "dog", "emu"]
    full = evaluate_split(model, parts, recipe, torch.device("cpu"))
    assert full["scored_on"] == "test" and full["images"] == len(parts.test) and "note" not in full
    from rrrnet.errors import DataError
    with pytest.raises(DataError, match="neither test nor validation"):
        evaluate_split(model, Split(parts.train, no_test.test, no_test.test), recipe, "cpu")


def test_split_csv_reads_back_as_the_parts(own, tmp_path):
    parts = load_parts(own)
    split_csv, skipped_csv = write_split_files(parts, tmp_path / "run")
    back = read_split_file(split_csv, own, parts.classes)
    for name in ("train", "val", "test"):
        assert getattr(back, name).paths == getattr(parts, name).paths
        assert getattr(back, name).labels == getattr(parts, name).labels
    moved = tmp_path / "moved"
    shutil.copytree(own, moved)                       # the dataset folder elsewhere
    assert read_split_file(split_csv, moved, parts.classes).test.paths[0].is_relative_to(moved)
    from rrrnet.errors import DataError
    with pytest.raises(DataError, match="label 'cat' or part 'train' is not the run's"):
        read_split_file(split_csv, own, ["dog", "emu"])
    os.remove(moved / parts.test.paths[0].relative_to(own))
    with pytest.raises(DataError, match="not found; give the dataset folder"):
        read_split_file(split_csv, moved, parts.classes)


# --------------------------------------------------------------------------- bad input

def bad(capsys, tmp_path, root: Path, *options, needles=(), out=None):
    """``fit`` on ``root`` exits 2 with one line holding every needle; nothing is written into
    the dataset folder, and no run folder is made."""
    before = listing(root)
    out = out or tmp_path / "run"
    code, stdout, err = cli(capsys, "fit", root, "--out", out, *TINY, *options)
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("rrrnet: error: "), err
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    assert listing(root) == before
    assert not Path(out).exists() or out.is_relative_to(root)
    return lines[0]


def test_bad_folders(tmp_path, capsys):
    two = {c: {"train": 3, "test": 1} for c in ("a", "b")}
    root = make_own(tmp_path / "empty-class", two, junk=False)
    (root / "test" / "c").mkdir()                                  # an empty class folder
    bad(capsys, tmp_path, root, needles=("test/c is empty", "add images or remove"))
    root = make_own(tmp_path / "no-classes", two, junk=False)
    shutil.rmtree(root / "test")
    (root / "test").mkdir()                                        # an empty part
    bad(capsys, tmp_path, root, needles=("test holds no class folders",))
    root = make_own(tmp_path / "junk-class", two, junk=False)
    (root / "train" / "c").mkdir()
    (root / "train" / "c" / "notes.txt").write_text("text")        # only non-images
    bad(capsys, tmp_path, root, needles=("train/c holds no usable image", "1 not an image"))
    root = make_own(tmp_path / "unknown", {**two, "z": {"test": 2}}, junk=False)
    bad(capsys, tmp_path, root, needles=("in test but not in train", "'z': 0 train, 0 val, 2 test",
                                         "add train images"))
    root = make_own(tmp_path / "few", {**two, "z": {"train": 1, "test": 2}}, junk=False)
    bad(capsys, tmp_path, root, needles=("fewer than 2 train images", "'z': 1 train"))
    # the run folder inside the dataset folder: refused before anything is written
    root = make_own(tmp_path / "inside", two, junk=False)
    bad(capsys, tmp_path, root, needles=("inside the dataset folder", "--out"),
        out=root / "runs" / "a")
    assert not (root / "runs").exists()


def test_bad_ratio_splits(tmp_path, capsys):
    root = make_own(tmp_path / "classes", {}, junk=False)
    for c, name in enumerate(("a", "b")):
        (root / name).mkdir(parents=True)
        for i in range(3):
            write_image(root / name / f"{i}.png", "RGB", 300 + 10 * c + i)
    bad(capsys, tmp_path, root, "--split", "0.5,0.3,0.3", needles=("sum to 1.1", "sum to 1"))
    bad(capsys, tmp_path, root, "--split", "0.9,0.05,0.05", needles=("leaves val empty",))
    bad(capsys, tmp_path, root, "--split", "1,0,0",
        needles=("no validation or test images", "--split 0.8,0.1,0.1"))
    bad(capsys, tmp_path, root, "--split", "half", needles=("'micro' or three ratios",))


def test_bad_csv_lists(tmp_path, capsys):
    root = make_own(tmp_path / "csvdata", {"a": {"train": 3}, "b": {"train": 3}}, junk=False)
    files = sorted(p.relative_to(root).as_posix() for p in root.rglob("*.*"))

    def labels(text: str, name: str = "labels.csv") -> Path:
        path = tmp_path / name
        path.write_text(text)
        return path

    rows = "".join(f"{f},{f.split('/')[1]},train\n" for f in files)
    csv_file = labels("path,label,part\n" + rows)
    bad(capsys, tmp_path, root, "--labels", csv_file, needles=("has no column file",))
    csv_file = labels("file,label,part\n" + rows + f"{files[0]},a,holdout\n")
    bad(capsys, tmp_path, root, "--labels", csv_file, needles=("part 'holdout'", "fix the value"))
    csv_file = labels("file,label,part\n" + rows + f"{files[0]},a,test\n")
    bad(capsys, tmp_path, root, "--labels", csv_file, needles=(f"both list {files[0]}",
                                                                "delete one"))
    outside = tmp_path / "elsewhere.png"
    write_image(outside, "RGB", 99)
    csv_file = labels("file,label,part\n" + rows + "../elsewhere.png,a,test\n")
    bad(capsys, tmp_path, root, "--labels", csv_file, needles=("outside the dataset folder",
                                                                "--root"))
    # a byte-order mark is no error: the header is read as file,label,part
    with_bom = tmp_path / "bom.csv"
    text = "file,label,part\n" + rows.replace(f"{files[0]},a,train", f"{files[0]},a,test")
    with_bom.write_bytes(("\ufeff" + text).encode("utf-8"))
    parts = load_parts(root, labels=with_bom)
    assert (len(parts.train), len(parts.test)) == (5, 1) and parts.layout == "csv"


# --------------------------------------------------------------------------- old runs

def _as_before(run: Path) -> None:
    """Make ``run`` look written before the new data options: config.json without them, no
    split.csv or skipped.csv (the manifest rewritten to match)."""
    config = json.loads((run / "config.json").read_text())
    for name in DATA_BEFORE_OPTION:
        del config["data"][name]
    (run / "config.json").write_text(json.dumps(config))
    manifest = json.loads((run / "manifest.json").read_text())
    for name in ("split.csv", "skipped.csv"):
        (run / name).unlink()
        del manifest["files"][name]
    (run / "manifest.json").write_text(json.dumps(manifest))
    record(run, "config.json")


@pytest.mark.slow
def test_a_run_from_before_the_data_options_resumes(tmp_path, capsys):
    data = make_meta_album(tmp_path / "tiny", classes=3, per_class=10)
    with open(data / "labels.csv", "a", newline="") as handle:   # class_0: a copy of each image
        for i in range(10):
            shutil.copy(data / "images" / f"c0_{i}.png", data / "images" / f"c0_{i}_copy.png")
            csv.writer(handle).writerow([f"c0_{i}_copy.png", "class_0", ""])
    old = DataSpec(str(data), train=5, test=5, split="micro", keep_duplicates=True)
    run = tmp_path / "run"
    model = ModelConfig(arch="resnet18", blocks=(1, 1, 1, 1), branches=2, weights="none")
    recipe = Recipe(epochs=2, batch_size=8, ema_epochs=1, warm_stump_epochs=1, image_size=32)
    fit(old, run, model, recipe, progress=False, stop_after=1)    # interrupted after epoch 1
    used = read_csv(run / "split.csv")
    _as_before(run)
    # the same command as then, typed again: the old options are read as they ran
    assert as_written(run, DataSpec(str(data), train=5, test=5)) == old
    code, _, err = cli(capsys, "fit", data, "--out", run, "--resume", "--train", "5", "--test",
                       "5", "--arch", "resnet18", "--blocks", "1,1,1,1", "--branches", "2",
                       "--weights", "none", "--epochs", "2", "--batch-size", "8",
                       "--ema-epochs", "1", "--warm-stump-epochs", "1", "--image-size", "32",
                       "--recipe", "paper", "--precision", "fp32", "-q")
    assert code == 0, err
    assert (run / "metrics.json").exists()
    assert read_csv(run / "split.csv") == used                   # the duplicates kept, as then
    assert Counter(r["part"] for r in used) == {"train": 15, "test": 15}
    # a new run leaves the copies out instead
    assert len(DataSpec(str(data), train=5, test=5).load().used) < len(used)


def test_resumption_compares_the_old_data_section_as_it_ran():
    from rrrnet.training.fit import RUN_COMPARISON
    old = {"model": {}, "recipe": {}, "classes": ["a"],
           "data": {"root": "d", "train": 20, "val": 0, "test": 20, "skip_bad_images": True}}
    new = {"model": {}, "recipe": {}, "classes": ["a"],
           "data": DataSpec("d", split="micro", keep_duplicates=True).to_dict()}
    assert RUN_COMPARISON.differences(old, new) == ""
    changed = {**new, "data": DataSpec("d", split=(0.8, 0.1, 0.1)).to_dict()}
    assert "data.split: 'micro' -> [0.8, 0.1, 0.1]" in RUN_COMPARISON.differences(old, changed)


def test_data_spec_round_trips_through_json():
    spec = DataSpec("d", split="0.7,0.2,0.1", labels="x.csv", split_seed=3)
    assert spec.split == (0.7, 0.2, 0.1)
    again = DataSpec(**json.loads(json.dumps(spec.to_dict())))
    assert again == spec and json.loads(json.dumps(spec.to_dict()))["split"] == [0.7, 0.2, 0.1]
    from rrrnet.errors import ConfigError
    with pytest.raises(ConfigError, match="layout must be one of"):
        DataSpec("d", layout="folders")


# --------------------------------------------------------------------------- the benchmark

def test_benchmark_columns_and_committed_cells(tmp_path):
    from rrrnet.experiments.benchmark import (RESULT_COLUMNS, _comparable, collect_rows,
                                              read_results, write_results)
    assert RESULT_COLUMNS[-2:] == ("balanced_error", "macro_f1")
    committed = Path(__file__).parents[1] / "docs" / "results" / "benchmark"
    rows = collect_rows(committed)
    # cells of record written before these columns existed lack them; newer cells (B) carry them
    old = [r for r in rows if "balanced_error" not in r]
    assert old and len(old) < len(rows)
    write_results(tmp_path, rows)
    back = read_results(tmp_path)
    assert len(back) == len(rows)
    for before, after in zip(rows, back):
        for column in ("balanced_error", "macro_f1"):
            if column in before:
                assert after[column] == pytest.approx(before[column], abs=1e-9)
            else:
                assert after[column] is None
    # every committed cell's data section reads as the data of the cell the grid plans now
    for path in committed.glob("cells/*/*/seed*/row.json"):
        saved = json.loads(path.read_text())["cell"]
        d = saved["data"]
        planned = DataSpec(d["root"], train=d["train"], val=d["val"], test=d["test"],
                           **DATA_BEFORE_OPTION)
        assert _comparable(saved)["data"] == json.loads(json.dumps(planned.to_dict())), path


def test_benchmark_cells_keep_the_authors_split(tmp_path):
    from rrrnet.experiments.benchmark import finished_row, plan_cells, save_row
    from rrrnet.options import BenchmarkOptions
    data = make_meta_album(tmp_path / "tiny", classes=2, per_class=12)
    cell = plan_cells([data], tmp_path / "bench", BenchmarkOptions(methods=("E",), seeds=(0,),
                                                                     train=5, test=5))[0]
    assert cell.data.split == "micro" and cell.data.keep_duplicates
    save_row(cell, {"dataset": "tiny", "error": 0.5})
    path = Path(cell.out) / "row.json"
    saved = json.loads(path.read_text())
    for name in DATA_BEFORE_OPTION:                      # a row written before these options
        del saved["cell"]["data"][name]
    path.write_text(json.dumps(saved))
    assert finished_row(cell) == {"dataset": "tiny", "error": 0.5}
    os.remove(path)
