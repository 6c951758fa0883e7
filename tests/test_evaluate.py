import json
import math

import pytest
import torch

from conftest import make_meta_album
from rrrnet.cli import main
from rrrnet.evaluate import ensemble_metrics
from rrrnet.uncertainty import decompose, expected_calibration_error


def test_metrics_against_hand_computed_values():
    # two branches, three images, two classes
    probs = torch.tensor([[[0.9, 0.1], [0.2, 0.8], [0.6, 0.4]],
                          [[0.7, 0.3], [0.4, 0.6], [0.2, 0.8]]])
    labels = torch.tensor([0, 1, 0])
    m = ensemble_metrics(probs.log(), labels)  # logits whose softmax is probs
    # ensemble: [0.8, 0.2], [0.3, 0.7], [0.4, 0.6] -> predictions 0, 1, 1
    assert m["error"] == pytest.approx(1 / 3)
    assert m["branch_errors"] == pytest.approx([0, 1 / 3])
    assert m["nll"] == pytest.approx(-(math.log(0.8) + math.log(0.7) + math.log(0.4)) / 3)
    h = lambda p: -sum(x * math.log(x) for x in p)
    assert m["mean_entropy"] == pytest.approx((h([0.8, 0.2]) + h([0.3, 0.7]) + h([0.4, 0.6])) / 3)
    mi = [h(e) - (h(a) + h(b)) / 2 for e, a, b in [([0.8, 0.2], [0.9, 0.1], [0.7, 0.3]),
                                                   ([0.3, 0.7], [0.2, 0.8], [0.4, 0.6]),
                                                   ([0.4, 0.6], [0.6, 0.4], [0.2, 0.8])]]
    assert m["mean_mutual_information"] == pytest.approx(sum(mi) / 3)


def test_ece_by_hand():
    probs = torch.tensor([[0.95, 0.05], [0.95, 0.05], [0.6, 0.4], [0.55, 0.45]])
    labels = torch.tensor([0, 1, 0, 0])
    # bin (0.933, 1]: conf 0.95, acc 0.5 -> 0.45 x 2/4; bin (0.533, 0.6]: conf 0.575, acc 1 -> 0.425 x 2/4
    assert expected_calibration_error(probs, labels) == pytest.approx(0.45 / 2 + 0.425 / 2)


def test_agreeing_branches_have_no_mutual_information():
    p = torch.softmax(torch.randn(1, 5, 3), -1).expand(4, 5, 3)
    assert torch.allclose(decompose(p)["epistemic"], torch.zeros(5), atol=1e-6)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = make_meta_album(tmp_path_factory.mktemp("d") / "tiny", classes=3, per_class=10)
    run = tmp_path_factory.mktemp("r") / "run"
    code = main(["fit", str(root), "--out", str(run), "--arch", "resnet18", "--branches", "2",
                 "--weights", "none", "--epochs", "2", "--ema-epochs", "1", "--warm-stump-epochs",
                 "1", "--image-size", "32", "--batch-size", "8", "--train", "5", "--test", "5", "-q"])
    assert code == 0
    return root, run


def test_evaluate_command_writes_metrics(trained, capsys):
    root, run = trained
    assert main(["evaluate", str(run), str(root), "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    written = json.loads((run / "evaluate" / "tiny-test.json").read_text())
    assert printed == written and written["images"] == 15
    for key in ("error", "branch_errors", "nll", "ece", "mean_entropy", "mean_mutual_information"):
        assert key in written
    assert written["error"] == pytest.approx(json.loads((run / "metrics.json").read_text())["error"])
    assert main(["evaluate", str(run), str(root), "--split", "all", "--out", str(run / "all.json")]) == 0
    assert json.loads((run / "all.json").read_text())["images"] == 30


def test_predict_command(trained, capsys):
    root, run = trained
    images = sorted(str(p) for p in (root / "images").iterdir())[:2]
    assert main(["predict", str(run), *images, "--json", "-k", "2"]) == 0
    results = json.loads(capsys.readouterr().out)
    assert [r["file"] for r in results] == images
    for r in results:
        assert "top3_label" not in r and r["top1_probability"] >= r["top2_probability"]
        assert r["prediction"] == r["top1_label"] and r["prediction"].startswith("class_")
        assert r["entropy"] >= 0 and r["error"] == ""
    assert main(["predict", str(run), images[0]]) == 0
    assert "mutual information" in capsys.readouterr().out


def test_run_errors_exit_2(trained, tmp_path, capsys):
    root, run = trained
    assert main(["predict", str(tmp_path), "x.png"]) == 2
    assert "no trained model" in capsys.readouterr().err
    other = make_meta_album(tmp_path / "other", classes=4, per_class=10)
    assert main(["evaluate", str(run), str(other)]) == 2
    assert "classes" in capsys.readouterr().err
    assert main(["predict", str(run), str(tmp_path / "missing.png")]) == 2
    assert "missing.png" in capsys.readouterr().err
