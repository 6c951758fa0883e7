"""Error analysis (rrrnet.interpret): the confusion matrix, per-class results, top losses and
reliability as data, by hand on small cases; the figures at 5 and 100 classes; and what
``rrrnet evaluate`` writes after a tiny fit."""
import json
import math

import numpy as np
import pytest
import torch
from PIL import Image

import rrrnet
from conftest import make_meta_album, read_csv
from rrrnet.cli import main
from rrrnet.interpret import (FILES, Interpretation, balanced_error, confusion_matrix,
                              interpret_logits, normalise_rows, per_class_rows, top_loss_rows)
from rrrnet.report import interpret_figures as figures

CLASSES = ["cat", "dog", "fox"]


def test_confusion_counts_and_rows_by_hand():
    labels = [0, 0, 0, 1, 1, 2]
    predicted = [0, 1, 0, 1, 1, 1]
    m = confusion_matrix(labels, predicted, 3)
    assert m.tolist() == [[2, 1, 0], [0, 2, 0], [0, 1, 0]]
    assert normalise_rows(m)[0].tolist() == pytest.approx([2 / 3, 1 / 3, 0])
    assert normalise_rows(np.zeros((2, 2), dtype=int)).tolist() == [[0, 0], [0, 0]]
    # recalls 2/3, 1, 0 -> balanced error 1 - 5/9; plain error 2/6
    assert balanced_error(m) == pytest.approx(1 - (2 / 3 + 1 + 0) / 3)
    assert math.isnan(balanced_error(np.zeros((2, 2), dtype=int)))


def test_per_class_precision_recall_f1_and_uncertainty_by_hand():
    labels = np.array([0, 0, 0, 1, 1, 2])
    m = confusion_matrix(labels, [0, 1, 0, 1, 1, 1], 3)
    entropy = np.array([0.1, 0.2, 0.3, 1.0, 2.0, 5.0])
    mi = np.array([0.0, 0.0, 0.3, 0.1, 0.1, 0.4])
    rows = {r["class"]: r for r in per_class_rows(m, CLASSES, labels, entropy, mi)}
    cat, dog, fox = rows["cat"], rows["dog"], rows["fox"]
    assert (cat["support"], cat["predicted"], cat["precision"], cat["recall"]) == (3, 2, 1.0, pytest.approx(2 / 3, abs=1e-6))
    assert cat["f1"] == pytest.approx(0.8, abs=1e-6)           # 2 * 1 * 2/3 / (1 + 2/3)
    assert dog["precision"] == pytest.approx(0.5) and dog["recall"] == 1.0
    assert dog["f1"] == pytest.approx(2 / 3, abs=1e-6)
    assert fox["precision"] is None and fox["recall"] == 0.0 and fox["f1"] == 0.0  # never predicted
    assert cat["mean_entropy"] == pytest.approx(0.2) and cat["mean_mutual_information"] == pytest.approx(0.1)
    assert fox["mean_entropy"] == pytest.approx(5.0) and fox["error"] == 1.0


def test_top_losses_are_the_most_confidently_wrong_first():
    probs = np.array([[0.9, 0.1, 0.0],    # right
                      [0.2, 0.7, 0.1],    # wrong, p 0.7
                      [0.1, 0.1, 0.8],    # wrong, p 0.8
                      [0.45, 0.55, 0.0],  # wrong, p 0.55
                      [0.3, 0.6, 0.1]])   # right
    labels = np.array([0, 0, 1, 0, 1])
    files = [f"img{i}.png" for i in range(5)]
    zeros = np.zeros(5)
    rows = top_loss_rows(probs, labels, CLASSES, files, zeros + 0.5, zeros + 0.01, top=2)
    assert [r["file"] for r in rows] == ["img2.png", "img1.png"]
    assert rows[0] == {"rank": 1, "file": "img2.png", "true": "dog", "predicted": "fox",
                       "probability": 0.8, "true_probability": 0.1,
                       "loss": pytest.approx(-math.log(0.1), abs=1e-6), "entropy": 0.5,
                       "mutual_information": 0.01}
    assert len(top_loss_rows(probs, labels, CLASSES, files, zeros, zeros, top=10)) == 3
    right = np.eye(3)[[0, 1]]
    assert top_loss_rows(right, np.array([0, 1]), CLASSES, files[:2], zeros[:2], zeros[:2]) == []


def test_interpret_logits_agrees_with_the_ensemble_metrics():
    g = torch.Generator().manual_seed(3)
    labels = torch.randint(0, 4, (60,), generator=g)
    logits = torch.randn(3, 60, 4, generator=g)
    logits[:, torch.arange(60), labels] += 1.0
    interp = interpret_logits(logits, labels, ["a", "b", "c", "d"], [f"f{i}" for i in range(60)],
                              top=5)
    from rrrnet.evaluate import ensemble_metrics
    metrics = ensemble_metrics(logits, labels)
    assert isinstance(interp, Interpretation) and interp.images == 60 and interp.branches == 3
    assert interp.error == pytest.approx(metrics["error"])
    assert interp.ece == pytest.approx(metrics["ece"])
    assert interp.entropy.mean() == pytest.approx(metrics["mean_entropy"], abs=1e-6)
    assert interp.mutual_information.mean() == pytest.approx(metrics["mean_mutual_information"], abs=1e-6)
    assert interp.confusion.sum() == 60 and np.trace(interp.confusion) == round(60 * (1 - metrics["error"]))
    assert sum(r["support"] for r in interp.per_class) == 60
    assert len(interp.top_losses) == 5 and all(r["true"] != r["predicted"] for r in interp.top_losses)
    shares = [b["share"] for b in interp.reliability]
    assert len(shares) == 15 and sum(shares) == pytest.approx(1.0)


def _synthetic(n_classes, n_images=None, seed=0):
    n_images = n_images or 4 * n_classes
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(n_images) % n_classes
    logits = torch.randn(2, n_images, n_classes, generator=g)
    logits[:, torch.arange(n_images), labels] += 2.0
    return interpret_logits(logits, labels, [f"class {i}" for i in range(n_classes)])


def test_the_confusion_figure_scales_with_the_class_count():
    small, large = _synthetic(5), _synthetic(100)
    fig_small = figures.confusion_figure(small)
    texts_small = sum(len(ax.texts) for ax in fig_small.axes)
    width_small = fig_small.get_size_inches()[0]
    fig_large = figures.confusion_figure(large)
    texts_large = sum(len(ax.texts) for ax in fig_large.axes)
    width_large = fig_large.get_size_inches()[0]
    assert texts_small == 2 * np.count_nonzero(small.confusion)   # each non-zero cell, twice
    assert texts_large == 0                                       # 100 classes: no cell text
    assert width_large > 3 * width_small
    labels = fig_large.axes[0].get_yticklabels()
    assert len(labels) == 100 and labels[0].get_fontsize() >= 5   # every class named, readable
    png = figures.png_bytes(fig_large)
    image = Image.open(__import__("io").BytesIO(png))
    assert image.size[0] > 2500 and image.size[1] > 1200
    figures.png_bytes(fig_small)


# ------------------------------------------------------------------- after a tiny fit

@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    # 6 classes, one epoch from random weights: some test images are misclassified
    root = make_meta_album(tmp_path_factory.mktemp("d") / "shapes", classes=6, per_class=10)
    run = tmp_path_factory.mktemp("r") / "run"
    recipe = rrrnet.Recipe(epochs=1, batch_size=8, ema_epochs=1, warm_stump_epochs=1,
                           image_size=32)
    rrrnet.fit(rrrnet.DataSpec(str(root), train=5, val=0, test=5), run,
               rrrnet.ModelConfig(arch="resnet18", blocks=(1, 1, 1, 1), branches=2,
                                  weights="none"), recipe, progress=False)
    return root, run


def test_evaluate_writes_the_error_analysis(trained, capsys):
    root, run = trained
    assert main(["evaluate", str(run), str(root), "--json"]) == 0
    metrics = json.loads(capsys.readouterr().out)
    folder = run / "evaluate" / "shapes"
    assert metrics["analysis"] == str(folder)
    assert sorted(p.name for p in folder.iterdir()) == sorted(FILES)
    classes = [f"class_{i}" for i in range(6)]
    confusion = read_csv(folder / "confusion.csv")
    assert [r["true"] for r in confusion] == classes and list(confusion[0]) == ["true", *classes]
    counts = np.array([[int(r[c]) for c in classes] for r in confusion])
    assert counts.sum() == metrics["images"] == 30
    assert 1 - np.trace(counts) / counts.sum() == pytest.approx(metrics["error"])
    assert metrics["balanced_error"] == pytest.approx(balanced_error(counts))
    shares = read_csv(folder / "confusion_normalised.csv")
    assert sum(float(shares[0][c]) for c in classes) == pytest.approx(1.0, abs=1e-5)
    per_class = read_csv(folder / "per_class.csv")
    assert [r["class"] for r in per_class] == classes
    assert all(int(r["support"]) == 5 for r in per_class)
    assert list(per_class[0]) == ["class", "support", "predicted", "precision", "recall", "f1",
                                  "error", "mean_entropy", "mean_mutual_information"]
    top = read_csv(folder / "top_losses.csv")
    wrong = int(counts.sum() - np.trace(counts))
    assert wrong > 0 and len(top) == min(16, wrong)   # one epoch from random weights errs
    for row in top:
        assert row["true"] != row["predicted"] and (root / "images").as_posix() in row["file"]
    probabilities = [float(r["probability"]) for r in top]
    assert probabilities == sorted(probabilities, reverse=True)
    for name in ("confusion.png", "top_losses.png", "reliability.png"):
        with Image.open(folder / name) as image:
            assert image.size[0] > 200 and image.size[1] > 100
    manifest = json.loads((run / "manifest.json").read_text())["files"]
    assert "evaluate/shapes/per_class.csv" in manifest and "evaluate/shapes-test.json" in manifest
    # the Python API gives the same objects as data
    interp = rrrnet.interpret(run, root)
    assert isinstance(interp, Interpretation)
    assert interp.confusion.tolist() == counts.tolist()
    assert [r["file"] for r in interp.top_losses] == [r["file"] for r in top]
    assert interp.balanced_error == pytest.approx(metrics["balanced_error"])
