"""A run's parts when it is read again (issue 23 follow-up): ``rrrnet evaluate`` (and
uncertainty, the report) on a run trained on ``train/ val/ test/`` folders, on a labels CSV or
on a ratio split of class folders scores exactly the images of the run's ``split.csv`` part;
another folder is split as ``fit`` would split it; ``--split all`` is every image; a run from
before the data options keeps its micro split."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from conftest import make_meta_album, read_csv
from rrrnet.cli import main
from rrrnet.evaluate import evaluate_run
from rrrnet.metrics import run_logits
from rrrnet.rundir import RUN_FILES, RUN_OUTPUTS
from rrrnet.run import Run
from test_own_data import COUNTS, _as_before, make_own, write_image

FIT = ["--arch", "resnet18", "--weights", "none", "--image-size", "32", "--epochs", "1",
       "--recipe", "paper", "--precision", "fp32", "--branches", "2", "--batch-size", "8",
       "--ema-epochs", "0", "--warm-stump-epochs", "0", "-q"]


def cli(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def fit(capsys, *argv) -> None:
    code, _, err = cli(capsys, "fit", *argv, *FIT)
    assert code == 0, err


def evaluate(capsys, run: Path, data, split: str) -> dict:
    """``rrrnet evaluate RUN DATA --split SPLIT``'s metrics (without the error analysis)."""
    _, metrics = evaluate_run(run, data, split, out=run.parent / f"{run.name}-{split}.json",
                              device="cpu", analysis=False, overwrite=True)
    return metrics


def listed(run: Path, part: str) -> list[str]:
    """The files of ``part`` in the run's split.csv, in its order."""
    return [r["file"] for r in read_csv(run / "split.csv") if r["part"] == part]


def scored(run: Path, data, split: str) -> list[str]:
    """The files ``run_logits`` scores, relative to their dataset folder."""
    _, labels, images, _ = run_logits(run, data, split, device="cpu")
    assert len(labels) == len(images)
    return [Path(p).relative_to(images.root).as_posix() for p in images.paths]


@pytest.fixture(scope="module")
def folders_run(tmp_path_factory):
    """A run trained on a train/ val/ test/ folder (with junk: README, notes.txt, an empty
    and a truncated image, all left out)."""
    data = make_own(tmp_path_factory.mktemp("own") / "pets")
    run = tmp_path_factory.mktemp("runs") / "pets"
    code = main([str(a) for a in ("fit", data, "--out", run, *FIT)])
    assert code == 0
    return data, run


@pytest.mark.slow
def test_a_split_folder_run_is_scored_on_its_own_parts(folders_run, capsys):
    data, run = folders_run
    metrics = json.loads((run / "metrics.json").read_text())
    totals = {p: sum(c[p] for c in COUNTS.values()) for p in ("train", "val", "test")}
    test = evaluate(capsys, run, data, "test")
    # the test/ images (the truncated one was left out at training and is left out here)
    assert test["images"] == totals["test"] == metrics["test_images"] == 7
    assert test["error"] == pytest.approx(metrics["error"])
    assert test["nll"] == pytest.approx(metrics["nll"], rel=1e-5)
    assert {c: v["support"] for c, v in test["per_class"].items()} == \
        {c: p["test"] for c, p in COUNTS.items()}
    val = evaluate(capsys, run, data, "val")
    assert val["images"] == totals["val"] == metrics["val"]["images"] == 4
    assert val["error"] == pytest.approx(metrics["val"]["error"])
    assert evaluate(capsys, run, data, "train")["images"] == totals["train"] == 19
    # exactly the files split.csv lists, in its order, for every part
    for part in ("train", "val", "test"):
        assert scored(run, data, part) == listed(run, part)
    # --split all: every usable image of the folder, whatever its part
    assert evaluate(capsys, run, data, "all")["images"] == sum(totals.values()) == 30
    every = sorted(r["file"] for r in read_csv(run / "split.csv"))
    assert sorted(scored(run, data, "all")) == every


@pytest.mark.slow
def test_the_same_folder_by_another_path_is_the_runs_dataset(folders_run, tmp_path, capsys,
                                                             monkeypatch):
    data, run = folders_run
    link = tmp_path / "link"
    link.symlink_to(data, target_is_directory=True)
    monkeypatch.chdir(data.parent)
    assert Run(run)._dataset_of(Path(data.name))[3] and Run(run)._dataset_of(link)[3]
    assert scored(run, data.name, "test") == listed(run, "test")
    assert scored(run, link, "test") == listed(run, "test")


@pytest.mark.slow
def test_another_folder_is_split_as_fit_would_split_it(folders_run, tmp_path, capsys):
    data, run = folders_run
    copy = shutil.copytree(data, tmp_path / "pets2")
    write_image(copy / "test" / "emu" / "new.png", "RGB", seed=999)
    # a copy elsewhere is another dataset: its own test/ folder, the new image included
    test = scored(run, copy, "test")
    assert len(test) == 8 and "test/emu/new.png" in test
    assert sorted(test) == sorted([*listed(run, "test"), "test/emu/new.png"])
    # the run's own folder, changed since training: refused in one line saying so
    gone = data / listed(run, "test")[0]
    kept = gone.read_bytes()
    gone.unlink()
    try:
        code, _, err = cli(capsys, "evaluate", run, data, "--out", tmp_path / "e.json")
        assert code == 2 and len(err.strip().splitlines()) == 1
        assert "has changed since" in err and gone.name in err and "--split all" in err
    finally:
        gone.write_bytes(kept)
    # a folder that the run's options cannot split: what to give, in one line
    (tmp_path / "flat").mkdir()
    for name in ("cat", "dog", "emu"):
        (tmp_path / "flat" / "test" / name).mkdir(parents=True)
        write_image(tmp_path / "flat" / "test" / name / "a.png", "RGB", seed=1)
    code, _, err = cli(capsys, "evaluate", run, tmp_path / "flat", "--out", tmp_path / "f.json")
    assert code == 2 and "cannot be split as" in err and "no train/ folder" in err
    assert "--split all" in err and len(err.strip().splitlines()) == 1


@pytest.mark.slow
def test_uncertainty_and_the_report_use_the_runs_parts(folders_run, tmp_path, capsys):
    data, run = folders_run
    code, _, err = cli(capsys, "uncertainty", run, data, "--out", tmp_path / "u")
    assert code == 0, err
    summary = json.loads((tmp_path / "u" / "uncertainty.json").read_text())
    assert summary["images"] == 7 and summary["validation_images"] == 4
    from rrrnet.report.page import ensure_analysis
    folder, why = ensure_analysis(Run(run))
    assert folder is not None, why
    per_class = {r["class"]: r for r in read_csv(folder / "per_class.csv")}
    assert {c: int(per_class[c]["support"]) for c in COUNTS} == \
        {c: p["test"] for c, p in COUNTS.items()}


@pytest.mark.slow
def test_a_csv_run_is_scored_on_its_own_parts(tmp_path, capsys):
    images = make_own(tmp_path / "images", {c: {"train": 4, "val": 1, "test": 2}
                                            for c in ("a", "b")}, junk=False)
    rows = [(p.relative_to(images).as_posix(), p.parent.name, p.parts[-3])
            for p in sorted(images.rglob("*.*"))]
    labels = tmp_path / "labels.csv"
    # the CSV's parts are not the folders': the first val image of each class is tested
    moved = {f for f, _, part in rows if part == "val"}
    labels.write_text("file,label,part\n" + "".join(
        f"{f},{c},{'test' if f in moved else part}\n" for f, c, part in rows))
    run = tmp_path / "run"
    fit(capsys, "--labels", labels, "--root", images, "--out", run)
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["test_images"] == 6 and "val" not in metrics
    for data in (images, labels):   # the images' folder, or the labels CSV itself
        test = evaluate(capsys, run, data, "test")
        assert test["images"] == 6 and test["error"] == pytest.approx(metrics["error"])
        assert scored(run, data, "test") == listed(run, "test")
        assert sorted(listed(run, "test")) == sorted(
            [f for f, _, part in rows if part == "test"] + sorted(moved))
        assert scored(run, data, "train") == listed(run, "train")
    code, _, err = cli(capsys, "evaluate", run, images, "--split", "val")
    assert code == 2 and "no val images" in err and "without a validation split" in err
    assert evaluate(capsys, run, labels, "all")["images"] == 14


@pytest.mark.slow
def test_a_ratio_split_run_is_scored_on_its_own_parts(tmp_path, capsys):
    data = tmp_path / "flowers"
    for k, c in enumerate(("iris", "rose")):
        (data / c).mkdir(parents=True)
        for i in range(10):
            write_image(data / c / f"{i}.png", "RGB", seed=100 * k + i)
    run = tmp_path / "run"
    fit(capsys, data, "--out", run, "--split", "0.6,0.2,0.2", "--split-seed", "3")
    metrics = json.loads((run / "metrics.json").read_text())
    test = evaluate(capsys, run, data, "test")
    assert test["images"] == metrics["test_images"] == 4
    assert test["error"] == pytest.approx(metrics["error"])
    assert scored(run, data, "test") == listed(run, "test")
    assert scored(run, data, "val") == listed(run, "val")
    assert evaluate(capsys, run, data, "all")["images"] == 20


@pytest.mark.slow
def test_a_run_from_before_split_csv_keeps_its_micro_split(tmp_path, capsys):
    data = make_meta_album(tmp_path / "tiny", classes=3, per_class=10)
    run = tmp_path / "run"
    fit(capsys, data, "--out", run, "--train", "5", "--test", "5")
    before = scored(run, data, "test")
    assert before == listed(run, "test")
    error = json.loads((run / "metrics.json").read_text())["error"]
    _as_before(run)                       # no split.csv, no data options: the micro split
    assert not (run / "split.csv").exists() and "layout" not in Run(run).data
    assert scored(run, data, "test") == before
    test = evaluate(capsys, run, data, "test")
    assert test["images"] == 15 and test["error"] == pytest.approx(error)
    assert evaluate(capsys, run, data, "all")["images"] == 30


def test_split_csv_and_skipped_csv_are_run_files(tmp_path):
    assert {"split.csv", "skipped.csv"} <= set(RUN_FILES)
    assert len(RUN_OUTPUTS) == len(set(RUN_OUTPUTS))
    # a folder holding a split.csv that no run wrote is not taken as a fresh --out
    from rrrnet.errors import RunError
    from rrrnet.rundir import prepare_run
    (tmp_path / "split.csv").write_text("file,label,part\n")
    with pytest.raises(RunError, match="holds split.csv but is not an rrrnet run folder"):
        prepare_run(tmp_path, {}, resume=False, overwrite=True)
    assert (tmp_path / "split.csv").read_text() == "file,label,part\n"

