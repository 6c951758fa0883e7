"""``evaluate`` and ``uncertainty``: what a finished run gets right, and how sure it is."""
from __future__ import annotations

import argparse
import json


def add(sub) -> None:
    ev = sub.add_parser("evaluate", help="metrics of a trained run on a dataset")
    ev.add_argument("run", help="run folder written by rrrnet fit")
    ev.add_argument("data", help="dataset folder (or labels CSV)")
    ev.add_argument("--split", default="test", choices=("train", "val", "test", "all"),
                    help="which part of the run's split: on its own dataset, the images its "
                         "split.csv lists (all: every image)")
    ev.add_argument("--out", help="metrics file (default: RUN/evaluate/<dataset>-<split>.json)")
    ev.add_argument("--skip-bad-images", action="store_true")
    ev.add_argument("--json", action="store_true", help="print the metrics as JSON")
    ev.add_argument("--overwrite", action="store_true", help="replace an existing --out file")
    ev.set_defaults(func=evaluate_command)

    un = sub.add_parser(
        "uncertainty", help="calibration, uncertainty decomposition, selective prediction, OOD "
                            "detection and conformal sets of a trained run",
        description="Members are the branches (or, with --mc-samples, Monte-Carlo dropout "
                    "passes). Temperature scaling and conformal sets are calibrated on the "
                    "run's validation split (fit --val K), never on the test images. See "
                    "docs/uncertainty.md.")
    un.add_argument("run", help="run folder written by rrrnet fit")
    un.add_argument("data", help="the run's dataset folder")
    un.add_argument("--out", "-o", help="output folder (default: RUN/uncertainty)")
    un.add_argument("--split", default="test", choices=("train", "val", "test"))
    un.add_argument("--ood", nargs="*", default=[], metavar="DATA",
                    help="out-of-distribution dataset folders (every image is used)")
    un.add_argument("--alpha", type=float, default=0.1,
                    help="conformal sets cover the true class with probability >= 1 - alpha")
    un.add_argument("--mc-samples", type=int, default=0,
                    help="Monte-Carlo dropout passes as members (a dropout model, method D)")
    un.add_argument("--skip-bad-images", action="store_true")
    un.add_argument("--json", action="store_true", help="print uncertainty.json's content")
    un.add_argument("--overwrite", action="store_true",
                    help="replace what an existing, non-empty --out folder holds")
    un.set_defaults(func=uncertainty_command)


def evaluate_command(a: argparse.Namespace) -> int:
    from ..evaluate import evaluate_run
    path, m = evaluate_run(a.run, a.data, a.split, a.out, skip_bad_images=a.skip_bad_images,
                           overwrite=a.overwrite)
    print(json.dumps(m, indent=2) if a.json else
          f"{path}: {a.split} error {m['error']:.2%} on {m['images']} images, "
          f"NLL {m['nll']:.3f}, ECE {m['ece']:.3f}, mean entropy {m['mean_entropy']:.3f}, "
          f"mutual information {m['mean_mutual_information']:.3f}")
    return 0


def uncertainty_command(a: argparse.Namespace) -> int:
    from ..uncertainty import uncertainty_run
    out, s = uncertainty_run(a.run, a.data, a.out, a.split, a.ood, a.alpha, a.mc_samples,
                             skip_bad_images=a.skip_bad_images, overwrite=a.overwrite)
    if a.json:
        from ..io import json_safe
        print(json.dumps(json_safe(s), indent=2))
        return 0
    sel = s["selective"]
    print(f"{s['members_are']}, {s['images']} images: error {s['error']:.2%}, NLL {s['nll']:.3f}, "
          f"Brier {s['brier']:.3f}, ECE {s['ece']:.3f}"
          + (f" (temperature {s['temperature']:.2f}: ECE {s['ece_calibrated']:.3f})"
             if s["temperature"] else ""))
    print("selective (AURC / error at 80% coverage): " + "; ".join(
        f"{k} {v['aurc']:.3f} / {v['error_at_coverage']:.1%}" for k, v in sel.items()))
    for name, scores in s["ood"].items():
        print(f"OOD {name} (AUROC): " + "; ".join(f"{k} {v['auroc']:.3f}" for k, v in scores.items()
                                                  if k != "images"))
    if s["conformal"]:
        c = s["conformal"]
        print(f"conformal sets at alpha {c['alpha']}: coverage {c['coverage']:.1%}, mean size "
              f"{c['mean_set_size']:.2f}")
    print(f"uncertainty.json, scores.csv and figures in {out}/")
    return 0
