"""rrrnet.uncertainty against hand-computed values."""
import math

import pytest
import torch

from rrrnet.uncertainty import (brier, conformal_sets, decompose, expected_calibration_error,
                                fit_temperature, ood_detection, report, risk_coverage,
                                set_metrics)


def h(*p):
    return -sum(x * math.log(x) for x in p if x > 0)


def test_decomposition_is_the_entropy_of_the_mean_not_the_mean_of_the_entropies():
    members = torch.tensor([[[0.9, 0.1]], [[0.1, 0.9]]])       # two confident members disagree
    parts = decompose(members)
    assert parts["total"].item() == pytest.approx(math.log(2))           # H[0.5, 0.5]
    assert parts["aleatoric"].item() == pytest.approx(h(0.9, 0.1))       # 0.3251
    assert parts["epistemic"].item() == pytest.approx(math.log(2) - h(0.9, 0.1))
    agree = torch.tensor([[[0.7, 0.3]], [[0.7, 0.3]]])
    assert decompose(agree)["epistemic"].item() == pytest.approx(0, abs=1e-7)


def test_ece_equal_width_and_equal_mass_by_hand():
    probs = torch.tensor([[0.95, 0.05], [0.95, 0.05], [0.6, 0.4], [0.55, 0.45]])
    labels = torch.tensor([0, 1, 0, 0])
    # 2 equal-width bins: all four in (0.5, 1]: accuracy 0.75, confidence 0.7625
    assert expected_calibration_error(probs, labels, 2, "width") == pytest.approx(0.0125)
    # 2 equal-mass bins: {0.55, 0.6}: acc 1, conf 0.575; {0.95, 0.95}: acc 0.5, conf 0.95
    assert expected_calibration_error(probs, labels, 2, "mass") == \
        pytest.approx(0.5 * 0.425 + 0.5 * 0.45)
    # 15 equal-width bins (the default): 0.45 x 2/4 + 0.425 x 2/4
    assert expected_calibration_error(probs, labels) == pytest.approx(0.45 / 2 + 0.425 / 2)
    # Brier: (0.05^2 * 2), (0.95^2 * 2), (0.4^2 * 2), (0.45^2 * 2), averaged
    assert brier(probs, labels) == pytest.approx((0.005 + 1.805 + 0.32 + 0.405) / 4)


def test_risk_coverage_and_aurc_by_hand():
    uncertain = torch.tensor([0.1, 0.2, 0.3, 0.4])
    correct = torch.tensor([True, False, True, False])
    # keep 1, 2, 3, 4 most certain: risks 0, 1/2, 1/3, 2/4
    r = risk_coverage(uncertain, correct, coverage=0.8)
    assert r["aurc"] == pytest.approx((0 + 0.5 + 1 / 3 + 0.5) / 4)
    assert r["error_at_coverage"] == pytest.approx(0.5)                 # ceil(3.2) = 4 kept
    assert risk_coverage(uncertain, correct, coverage=0.5)["error_at_coverage"] == 0.5
    assert risk_coverage(uncertain, correct, coverage=0.25)["error_at_coverage"] == 0.0


def test_ood_auroc_aupr_fpr95_by_hand():
    s_in, s_out = torch.tensor([0.1, 0.4, 0.35]), torch.tensor([0.8, 0.4])
    r = ood_detection(s_in, s_out)
    # pairs (out > in): 0.8 beats all three; 0.4 beats 0.1 and 0.35 and ties 0.4 -> 5.5 / 6
    assert r["auroc"] == pytest.approx(5.5 / 6)
    # thresholds 0.8 (precision 1, recall 1/2) and 0.4 (precision 2/3, recall 1)
    assert r["aupr"] == pytest.approx(0.5 * 1 + 0.5 * 2 / 3)
    # the threshold keeping 95% of OOD is 0.4: one in-distribution image of three is above it
    assert r["fpr_at_95_tpr"] == pytest.approx(1 / 3)
    perfect = ood_detection(torch.tensor([0.1, 0.2]), torch.tensor([0.9, 0.8]))
    assert perfect == {"auroc": 1.0, "aupr": 1.0, "fpr_at_95_tpr": 0.0}


def test_conformal_sets_by_hand_and_their_coverage():
    true_p = torch.tensor([0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1])
    cal = torch.stack([true_p, 1 - true_p], dim=1)
    sets = conformal_sets(cal, torch.zeros(9, dtype=torch.long),
                          torch.tensor([[0.7, 0.25, 0.05], [0.15, 0.15, 0.7]])[:, :3], alpha=0.2)
    # rank ceil(10 x 0.8) = 8 of the scores 0.1 .. 0.9: threshold 0.8, i.e. p >= 0.2
    assert sets["threshold"] == pytest.approx(0.8)
    assert sets["sets"].tolist() == [[True, True, False], [False, False, True]]
    assert set_metrics(sets["sets"], torch.tensor([1, 0])) == {"coverage": 0.5,
                                                               "mean_set_size": 1.5}
    # on exchangeable data the sets cover at least 1 - alpha (here 90%), on average
    g = torch.Generator().manual_seed(0)
    covered = []
    for _ in range(50):
        logits = torch.randn(400, 5, generator=g) * 2
        labels = torch.distributions.Categorical(logits=logits).sample()
        probs = logits.softmax(-1)
        s = conformal_sets(probs[:200], labels[:200], probs[200:], alpha=0.1)
        covered.append(set_metrics(s["sets"], labels[200:])["coverage"])
    assert sum(covered) / len(covered) >= 0.89


def test_temperature_fit_by_hand():
    # one member, three images with logits [3, 0] and labels 0, 0, 1: the NLL is smallest where
    # sigmoid(3 / T) = 2/3, i.e. T = 3 / ln 2
    logits = torch.tensor([[[3.0, 0.0], [3.0, 0.0], [3.0, 0.0]]])
    assert fit_temperature(logits, torch.tensor([0, 0, 1])) == pytest.approx(3 / math.log(2),
                                                                             rel=1e-3)


def test_report_keys_and_missing_validation():
    g = torch.Generator().manual_seed(1)
    logits, labels = torch.randn(4, 30, 5, generator=g), torch.randint(0, 5, (30,), generator=g)
    summary, rows = report(logits, labels, ood={"noise": torch.randn(4, 10, 5, generator=g)})
    for key in ("nll", "brier", "ece", "ece_equal_mass", "selective", "ood", "mean_entropy",
                "mean_mutual_information"):
        assert key in summary
    assert summary["temperature"] is None and summary["conformal"] is None  # no validation
    assert set(summary["ood"]["noise"]) == {"images", "max_probability", "entropy",
                                            "mutual_information"}
    assert len(rows) == 40 and [r["dataset"] for r in rows].count("noise") == 10
    assert rows[0]["entropy"] == pytest.approx(
        rows[0]["aleatoric"] + rows[0]["mutual_information"], abs=1e-5)


def test_uncertainty_command_on_a_tiny_run(tmp_path, capsys):
    """A tiny run with a validation split (temperature, conformal sets), an OOD dataset, and a
    dropout run read as Monte-Carlo dropout; figures and the per-image CSV are written."""
    import json

    from conftest import make_meta_album
    from rrrnet.cli import main
    data = make_meta_album(tmp_path / "data", classes=4, per_class=12)
    other = make_meta_album(tmp_path / "other", classes=3, per_class=5, seed=9)
    common = ["--arch", "resnet18", "--blocks", "1,1,1,1", "--weights", "none", "--epochs", "2",
              "--ema-epochs", "1", "--warm-stump-epochs", "1", "--image-size", "32",
              "--batch-size", "8", "--train", "6", "--val", "3", "--test", "3", "-q"]
    assert main(["fit", str(data), "--out", str(tmp_path / "E"), "--branches", "2", *common]) == 0
    capsys.readouterr()
    assert main(["uncertainty", str(tmp_path / "E"), str(data), "--ood", str(other),
                 "--alpha", "0.2", "--json"]) == 0
    s = json.loads(capsys.readouterr().out)
    assert s["members"] == 2 and s["images"] == 12 and s["validation_images"] == 12
    assert s["temperature"] > 0 and s["conformal"]["alpha"] == 0.2
    assert 0 <= s["conformal"]["coverage"] <= 1 and s["ood"]["other"]["images"] == 15
    out = tmp_path / "E" / "uncertainty"
    for name in ("uncertainty.json", "scores.csv", "reliability.png", "risk_coverage.png",
                 "ood_scores.png"):
        assert (out / name).stat().st_size > 0
    # a dropout model: members are Monte-Carlo passes; a model without dropout is refused
    assert main(["fit", str(data), "--out", str(tmp_path / "D"), "--branches", "1",
                 "--dropout", "0.3", *common]) == 0
    capsys.readouterr()
    assert main(["uncertainty", str(tmp_path / "D"), str(data), "--mc-samples", "4",
                 "--json"]) == 0
    s = json.loads(capsys.readouterr().out)
    assert s["members"] == 4 and s["members_are"] == "4 Monte-Carlo dropout passes"
    assert s["mean_mutual_information"] > 0          # the passes disagree
    assert main(["uncertainty", str(tmp_path / "E"), str(data), "--mc-samples", "4"]) == 2
    assert "no dropout layers" in capsys.readouterr().err
