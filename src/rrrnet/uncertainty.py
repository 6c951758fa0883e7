"""Know when it is wrong: calibrated, decomposed uncertainty from the branches.

The paper closes with "the ensemble nature of the proposed recycling technique lends itself to
predictive uncertainty computation". Here it is computed and measured. Every function takes
*member* probabilities ``[m, N, classes]``: the ``b`` branches of an RRR-Net, the ``T``
stochastic passes of a dropout model (Monte-Carlo dropout, :func:`mc_dropout_logits`), or a single
model (``m = 1``, whose epistemic part is then zero). The prediction is their mean.

The measures :mod:`rrrnet.evaluate` shares (entropy, :func:`decompose`, NLL, ECE) live in
:mod:`rrrnet.metrics` and are re-exported here.

* **Decomposition** (:func:`decompose`): total = entropy of the mean prediction
  ``H[mean_m p_m]``; aleatoric = mean of the members' entropies ``mean_m H[p_m]``; epistemic =
  their difference, the mutual information between the prediction and the member (the
  members' disagreement). The entropy of the mean is *not* the mean of the entropies
  (torch-uncertainty's PR #304 fixed exactly that).
* **Calibration**: NLL, Brier score, ECE over 15 bins (equal-width by default, or equal-mass:
  :func:`expected_calibration_error`), and temperature scaling (:func:`fit_temperature`, one
  temperature dividing every member's logits, fitted on the validation split by NLL).
* **Selective prediction** (:func:`risk_coverage`): predictions sorted by a confidence score,
  the error among the kept ones against the share kept; its area (AURC) and the error at 80%
  coverage.
* **Out-of-distribution detection** (:func:`ood_detection`): AUROC, AUPR (OOD images as
  positives) and the false-positive rate at 95% true-positive rate of a score that should be
  higher on OOD images.
* **Conformal prediction** (:func:`conformal_sets`): split conformal with the LAC score
  (1 - probability of the true class; Sadinle et al. 2019), calibrated on the validation split:
  sets that contain the true class with probability at least ``1 - alpha`` on exchangeable data.
"""
from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any, Iterable, Sequence

import torch

from .metrics import (BINNINGS, ECE_BINS, batches, collect_logits, decompose,  # noqa: F401
                      entropy, expected_calibration_error, nll)

SCORES = ("max_probability", "entropy", "mutual_information")  # the uncertainty scores compared
SELECTIVE_COVERAGE = 0.8


# ---------------------------------------------------------------------------------------------
# Per-image quantities.
# ---------------------------------------------------------------------------------------------

def image_scores(member_probs: torch.Tensor) -> dict[str, torch.Tensor]:
    """The scores per image, each *higher = more uncertain* except ``max_probability``."""
    parts = decompose(member_probs)
    return {"max_probability": member_probs.mean(0).max(-1).values,
            "entropy": parts["total"], "aleatoric": parts["aleatoric"],
            "mutual_information": parts["epistemic"]}


def _uncertainty(name: str, scores: dict[str, torch.Tensor]) -> torch.Tensor:
    """Score ``name`` oriented so that higher means more uncertain."""
    return -scores[name] if name == "max_probability" else scores[name]


# ---------------------------------------------------------------------------------------------
# Calibration.
# ---------------------------------------------------------------------------------------------

def brier(probs: torch.Tensor, labels: torch.Tensor) -> float:
    """Mean over images of the squared distance between the prediction and the one-hot label
    (summed over classes: 0 is perfect, 2 the worst)."""
    onehot = torch.nn.functional.one_hot(labels, probs.shape[-1]).to(probs.dtype)
    return ((probs - onehot) ** 2).sum(-1).mean().item()


def reliability(probs: torch.Tensor, labels: torch.Tensor, bins: int = ECE_BINS
                ) -> list[dict[str, float]]:
    """The equal-width reliability diagram: per bin its range, share, accuracy and confidence."""
    confidence, predicted = probs.max(-1)
    correct = (predicted == labels).float()
    edges = torch.linspace(0, 1, bins + 1)
    rows = []
    for low, high in zip(edges[:-1].tolist(), edges[1:].tolist()):
        inside = (confidence > low) & (confidence <= high)
        rows.append({"low": low, "high": high, "share": inside.float().mean().item(),
                     "accuracy": correct[inside].mean().item() if inside.any() else None,
                     "confidence": confidence[inside].mean().item() if inside.any() else None})
    return rows


def scaled_probs(member_logits: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """The mean prediction with every member's logits divided by ``temperature``."""
    return (member_logits / temperature).softmax(-1).mean(0)


def fit_temperature(member_logits: torch.Tensor, labels: torch.Tensor) -> float:
    """The temperature minimising the NLL of the mean prediction on held-out images (Guo et al.
    2017, applied to every member before averaging), searched on a log scale in [0.05, 20]."""
    from scipy.optimize import minimize_scalar
    logits = member_logits.double()

    def loss(log_t: float) -> float:
        return nll(scaled_probs(logits, math.exp(log_t)), labels)
    best = minimize_scalar(loss, bounds=(math.log(0.05), math.log(20.0)), method="bounded",
                           options={"xatol": 1e-4})
    return float(math.exp(best.x))


# ---------------------------------------------------------------------------------------------
# Selective prediction, OOD detection, conformal sets.
# ---------------------------------------------------------------------------------------------

def risk_coverage(uncertain: torch.Tensor, correct: torch.Tensor,
                  coverage: float = SELECTIVE_COVERAGE) -> dict[str, Any]:
    """Keep the ``k`` most certain predictions, k = 1..N (ties broken by image order): the error
    among them (risk) against k / N (coverage). AURC is the mean risk over the N coverages;
    ``error_at_coverage`` the risk when ``ceil(coverage x N)`` images are kept."""
    order = torch.argsort(uncertain, stable=True)
    wrong = (~correct.bool())[order].double()
    kept = torch.arange(1, len(wrong) + 1, dtype=torch.float64)
    risk = wrong.cumsum(0) / kept
    k = max(1, math.ceil(coverage * len(wrong) - 1e-9))
    return {"aurc": risk.mean().item(), "error_at_coverage": risk[k - 1].item(),
            "coverage": coverage, "curve": {"coverage": (kept / len(wrong)).tolist(),
                                            "risk": risk.tolist()}}


def selective_threshold(score: torch.Tensor, coverage: float = SELECTIVE_COVERAGE,
                        name: str = "entropy") -> float:
    """The value of score ``name`` (in its own units) that keeps ``ceil(coverage x N)`` of these
    images: keep an image when its entropy or mutual information is at most this (its max
    probability at least this); ``rrrnet predict --abstain`` marks the others."""
    uncertain = _uncertainty(name, {name: score.double()})
    k = max(1, math.ceil(coverage * len(uncertain) - 1e-9))
    value = uncertain.sort().values[k - 1].item()
    return -value if name == "max_probability" else value


def abstains(score: torch.Tensor, threshold: float, name: str = "entropy") -> torch.Tensor:
    """Which images :func:`selective_threshold`'s rule leaves out (``True``: abstain)."""
    return score < threshold if name == "max_probability" else score > threshold


def ood_detection(score_in: torch.Tensor, score_out: torch.Tensor) -> dict[str, float]:
    """How well a score (higher = more likely OOD) separates OOD images (positives) from
    in-distribution ones: AUROC (the probability that a random OOD image scores higher than a
    random in-distribution one, ties counting half), AUPR (average precision with OOD as
    positives) and FPR95 (the share of in-distribution images above the threshold that catches
    95% of the OOD images)."""
    s_in, s_out = score_in.double(), score_out.double()
    greater = (s_out[:, None] > s_in[None, :]).double().sum()
    ties = (s_out[:, None] == s_in[None, :]).double().sum()
    auroc = ((greater + 0.5 * ties) / (len(s_in) * len(s_out))).item()
    scores = torch.cat([s_out, s_in])
    positive = torch.cat([torch.ones(len(s_out)), torch.zeros(len(s_in))]).double()
    order = torch.argsort(-scores, stable=True)
    positive, scores = positive[order], scores[order]
    # average precision: mean precision at each positive, over the distinct thresholds
    tp = positive.cumsum(0)
    precision = tp / torch.arange(1, len(positive) + 1, dtype=torch.float64)
    last_of_tie = torch.ones(len(scores), dtype=torch.bool)
    last_of_tie[:-1] = scores[1:] != scores[:-1]
    recall_step = torch.diff(torch.cat([torch.zeros(1, dtype=torch.float64),
                                        tp[last_of_tie] / len(s_out)]))
    aupr = (recall_step * precision[last_of_tie]).sum().item()
    threshold = torch.quantile(s_out, 0.05, interpolation="lower")  # 95% of OOD >= threshold
    fpr95 = (s_in >= threshold).double().mean().item()
    return {"auroc": auroc, "aupr": aupr, "fpr_at_95_tpr": fpr95}


def conformal_sets(cal_probs: torch.Tensor, cal_labels: torch.Tensor, probs: torch.Tensor,
                   alpha: float = 0.1) -> dict[str, Any]:
    """Split conformal prediction with the LAC score ``1 - p(true class)``: the threshold is the
    ``ceil((n + 1)(1 - alpha)) / n`` empirical quantile of the calibration scores; a class is in
    an image's set when its score is at most the threshold. Returns the threshold and the sets
    (a boolean ``[N, classes]`` mask)."""
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    n = len(cal_labels)
    scores = 1 - cal_probs.gather(1, cal_labels[:, None]).squeeze(1)
    rank = math.ceil((n + 1) * (1 - alpha))
    threshold = math.inf if rank > n else scores.sort().values[rank - 1].item()
    return {"threshold": threshold, "sets": (1 - probs) <= threshold + 1e-12}


def set_metrics(sets: torch.Tensor, labels: torch.Tensor) -> dict[str, float]:
    return {"coverage": sets[torch.arange(len(labels)), labels].float().mean().item(),
            "mean_set_size": sets.float().sum(-1).mean().item()}


# ---------------------------------------------------------------------------------------------
# Everything at once, on member logits.
# ---------------------------------------------------------------------------------------------

def report(member_logits: torch.Tensor, labels: torch.Tensor, *,
           val: tuple[torch.Tensor, torch.Tensor] | None = None,
           ood: dict[str, torch.Tensor] | None = None, alpha: float = 0.1,
           bins: int = ECE_BINS) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The uncertainty report of a model's member logits ``[m, N, classes]`` on test images:
    ``(summary, per-image rows)``. ``val``: member logits and labels of the validation split
    (temperature scaling and conformal calibration; without it those keys are None), ``ood``:
    member logits of out-of-distribution datasets by name."""
    member_probs = member_logits.softmax(-1)
    probs = member_probs.mean(0)
    correct = probs.argmax(-1) == labels
    scores = image_scores(member_probs)
    summary: dict[str, Any] = {
        "images": int(len(labels)), "members": int(member_logits.shape[0]),
        "error": 1 - correct.float().mean().item(),
        "nll": nll(probs, labels), "brier": brier(probs, labels),
        "ece": expected_calibration_error(probs, labels, bins, "width"),
        "ece_equal_mass": expected_calibration_error(probs, labels, bins, "mass"),
        "ece_bins": bins, "ece_binning": "equal-width (ece), equal-mass (ece_equal_mass)",
        "mean_entropy": scores["entropy"].mean().item(),
        "mean_aleatoric": scores["aleatoric"].mean().item(),
        "mean_mutual_information": scores["mutual_information"].mean().item(),
        "reliability": reliability(probs, labels, bins),
        "temperature": None, "nll_calibrated": None, "ece_calibrated": None,
        "conformal": None, "validation_images": 0 if val is None else int(len(val[1])),
    }
    summary["selective"] = {name: risk_coverage(_uncertainty(name, scores), correct)
                            for name in SCORES}
    for name, sel in summary["selective"].items():
        sel["threshold"] = selective_threshold(scores[name], sel["coverage"], name)
    if val is not None:
        val_logits, val_labels = val
        t = fit_temperature(val_logits, val_labels)
        calibrated = scaled_probs(member_logits, t)
        summary.update(temperature=t, nll_calibrated=nll(calibrated, labels),
                       ece_calibrated=expected_calibration_error(calibrated, labels, bins))
        sets = conformal_sets(scaled_probs(val_logits, t), val_labels, calibrated, alpha)
        summary["conformal"] = {"score": "LAC (1 - probability of the true class), on the "
                                         "temperature-scaled prediction",
                                "alpha": alpha,
                                # too few calibration images for this alpha: every class
                                "threshold": None if math.isinf(sets["threshold"])
                                else sets["threshold"],
                                **set_metrics(sets["sets"], labels)}
    summary["ood"] = {}
    rows = [{"dataset": "in-distribution", "index": i, "label": int(labels[i]),
             "predicted": int(probs[i].argmax()), "correct": bool(correct[i]),
             **{k: round(v[i].item(), 6) for k, v in scores.items()}}
            for i in range(len(labels))]
    for name, logits in (ood or {}).items():
        out_scores = image_scores(logits.softmax(-1))
        summary["ood"][name] = {"images": int(logits.shape[1]), **{
            score: ood_detection(_uncertainty(score, scores), _uncertainty(score, out_scores))
            for score in SCORES}}
        predicted = logits.softmax(-1).mean(0).argmax(-1)
        rows += [{"dataset": name, "index": i, "label": None, "predicted": int(predicted[i]),
                  "correct": None, **{k: round(v[i].item(), 6) for k, v in out_scores.items()}}
                 for i in range(logits.shape[1])]
    return summary, rows


def stack_members(logits: Iterable[torch.Tensor]) -> torch.Tensor:
    """Member logits ``[m, N, C]`` from passes of ``[b, N, C]`` (b branches each), e.g. the
    Monte-Carlo passes of a dropout model."""
    return torch.cat(list(logits), dim=0)


@torch.no_grad()
def mc_dropout_logits(model: torch.nn.Module, loader: Iterable, samples: int,
                      device: torch.device | str = "cpu", seed: int = 0) -> torch.Tensor:
    """``samples`` stochastic passes of ``model`` with its dropout layers active and everything
    else in eval mode (Gal and Ghahramani 2016), as member logits ``[samples x b, N, C]``."""
    if not any(isinstance(m, torch.nn.Dropout) for m in model.modules()):
        raise ValueError("Monte-Carlo dropout needs a model with dropout layers (method D)")
    passes = []
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for _ in range(samples):
            model.eval()
            for m in model.modules():
                if isinstance(m, torch.nn.Dropout):
                    m.train()
            passes.append(collect_logits(model, loader, device, keep_mode=True)[0])
    model.eval()
    return stack_members(passes)


__all__: Sequence[str] = ("BINNINGS", "ECE_BINS", "SCORES", "brier", "conformal_sets",
                          "decompose", "entropy", "expected_calibration_error", "fit_temperature",
                          "image_scores", "mc_dropout_logits", "nll", "ood_detection",
                          "member_logits", "reliability", "report", "risk_coverage",
                          "scaled_probs", "set_metrics", "uncertainty", "uncertainty_run",
                          "selective_threshold", "abstains", "read_calibration")


# ---------------------------------------------------------------------------------------------
# On a model and data: the Python API (rrrnet.uncertainty(model, data, ...)).
# ---------------------------------------------------------------------------------------------

def member_logits(model: torch.nn.Module, data: Any, *, image_size: int = 128,
                  batch_size: int = 64, mc_samples: int = 0,
                  device: torch.device | str | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Member logits ``[m, N, C]`` and labels of ``model`` on ``data`` (ready batches, or a
    Dataset of ``(image, label)`` pairs, resized and normalised): the branches, or with
    ``mc_samples`` that many Monte-Carlo dropout passes."""
    from .io import resolve_device
    device = resolve_device(device)
    loader = batches(data, image_size, batch_size)
    model.to(device)
    if mc_samples:
        logits = mc_dropout_logits(model, loader, mc_samples, device)
        return logits, collect_logits(model, loader, device)[1]
    return collect_logits(model, loader, device)


def uncertainty(model: torch.nn.Module, data: Any, *, val_data: Any = None,
                ood: dict[str, Any] | None = None, alpha: float = 0.1, mc_samples: int = 0,
                image_size: int = 128, device: torch.device | str | None = None
                ) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The uncertainty report (:func:`report`) of ``model`` on ``data``: ``val_data`` calibrates
    the temperature and the conformal sets, ``ood`` maps names to out-of-distribution data;
    data in either of :func:`rrrnet.train`'s forms. ``mc_samples``: Monte-Carlo dropout passes
    instead of the branches (a dropout model, method D)."""
    from .checks import number
    number(alpha, "--alpha", 0, 1, low_open=True, high_open=True)

    def logits_of(d):
        return member_logits(model, d, image_size=image_size, mc_samples=mc_samples,
                             device=device)
    logits, labels = logits_of(data)
    val = None if val_data is None else logits_of(val_data)
    out = {name: logits_of(d)[0] for name, d in (ood or {}).items()}
    summary, rows = report(logits, labels, val=val, ood=out, alpha=alpha)
    summary["members_are"] = (f"{mc_samples} Monte-Carlo dropout passes" if mc_samples
                              else f"{logits.shape[0]} branch(es)")
    return summary, rows


def uncertainty_run(run: str | os.PathLike, data: str | os.PathLike,
                    out: str | os.PathLike | None = None, split: str = "test",
                    ood: Sequence[str | os.PathLike] = (), alpha: float = 0.1,
                    mc_samples: int = 0, skip_bad_images: bool = False,
                    device: str = "auto", overwrite: bool = False) -> tuple[Path, dict[str, Any]]:
    """The uncertainty report of a finished run (or its int8 file) on ``split`` of ``data``:
    calibrated on the run's validation split when it has one, every image of each ``ood``
    dataset as out-of-distribution. Writes ``uncertainty.json``, ``scores.csv`` and figures
    into ``out`` (default: ``RUN/uncertainty``); returns that folder and the summary."""
    from .data import ImageDataset, load_dataset
    from .errors import RunError
    from .io import json_safe, make_folder, write_csv, write_json
    from .report.uncertainty_figures import write_figures
    from .run import Run
    from .checks import number
    from .rundir import check_output
    number(alpha, "--alpha", 0, 1, low_open=True, high_open=True)  # before anything is read
    if out is not None:
        reads = [data, *ood] + ([run] if Path(run).is_file() else [])
        out = check_output(out, inputs=reads, overwrite=overwrite, folder=True)
    run = Run(run).require_finished()
    if split not in ("train", "val", "test"):
        raise RunError(f"--split must be train, val or test, got {split!r}")
    if mc_samples < 0:
        raise RunError(f"--mc-samples must be 0 (the branches) or more, got {mc_samples}")
    if not run.data:
        raise RunError(f"{run.config_path} records no data split")
    parts = run.split(data, skip_bad_images)   # on its own dataset, the parts of split.csv
    if not len(getattr(parts, split)):
        raise RunError(f"{data} has no {split} images as {run.path} splits it; give another "
                       f"--split")
    model, size = run.model, run.image_size
    if mc_samples and not any(isinstance(m, torch.nn.Dropout) for m in model.modules()):
        raise RunError(f"{run.path} has no dropout layers: --mc-samples needs a dropout model "
                       f"(fit --method D, or --dropout RATE)")
    val = ImageDataset(parts.val, size=size) if len(parts.val) and split != "val" else None
    others = {Path(p).name: ImageDataset(load_dataset(p, skip_bad_images=skip_bad_images),
                                         size=size) for p in ood}
    summary, rows = uncertainty(model, ImageDataset(getattr(parts, split), size=size),
                                val_data=val, ood=others, alpha=alpha, mc_samples=mc_samples,
                                image_size=size, device=device)
    summary.update(run=str(run.path), dataset=str(data), split=split,
                   weights=model.config.weights if model.config else None,
                   calibration_split="val" if val is not None else None)
    if val is None:
        summary["calibration_note"] = ("the run has no validation split (fit --val K makes one): "
                                       "no temperature scaling, no conformal sets")
    out = make_folder(Path(out) if out is not None else run.uncertainty_dir, "uncertainty folder")
    write_json(out / "uncertainty.json", json_safe(summary))
    write_csv(out / "scores.csv", rows)
    write_figures(summary, rows, out, title=run.path.name)
    return out, summary


def read_calibration(folder: str | os.PathLike) -> dict[str, Any] | None:
    """What ``rrrnet predict`` needs of a run's ``uncertainty.json`` (in ``folder``, e.g.
    ``RUN/uncertainty``): the temperature, the conformal threshold (None when the run had no
    validation split) and the selective-prediction thresholds per score; None when the run has
    not been through ``rrrnet uncertainty``. Thresholds missing from an older file are
    recomputed from its ``scores.csv``."""
    from .io import read_csv, read_json
    path = Path(folder) / "uncertainty.json"
    if not path.is_file():
        return None
    summary = read_json(path, "the run's uncertainty report")
    selective = {}
    for name, sel in (summary.get("selective") or {}).items():
        threshold = sel.get("threshold")
        if threshold is None:
            values = [r[name] for r in read_csv(Path(folder) / "scores.csv")
                      if r.get("dataset") == "in-distribution" and r.get(name) is not None]
            if not values:
                continue
            threshold = selective_threshold(torch.tensor(values, dtype=torch.float64),
                                            sel.get("coverage", SELECTIVE_COVERAGE), name)
        selective[name] = {"coverage": sel.get("coverage", SELECTIVE_COVERAGE),
                           "threshold": threshold}
    conformal = summary.get("conformal")
    return {"source": str(path), "split": summary.get("split"),
            "temperature": summary.get("temperature"),
            "conformal": None if not conformal else
            {"alpha": conformal["alpha"], "threshold": conformal["threshold"],
             "coverage": conformal.get("coverage"), "score": conformal.get("score")},
            "selective": selective}


def _install() -> None:
    from ._callable import callable_module
    callable_module(__name__, uncertainty)  # rrrnet.uncertainty(model, data) is this module


_install()
