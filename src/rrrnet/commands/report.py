"""``report`` and ``card``: a run (or a benchmark) written up for people: one self-contained
HTML page, and a Hugging Face model card."""
from __future__ import annotations

import argparse


def add(sub) -> None:
    rep = sub.add_parser(
        "report", help="one self-contained HTML page of a run or of a benchmark folder",
        description="A run folder: configuration, data, learning curves, error and cost, "
                    "confusion matrix, per-class table, most confidently wrong images, "
                    "calibration and uncertainty (running rrrnet evaluate on the run's own "
                    "dataset first when it has not been run). A benchmark folder (with "
                    "results.csv): its tables and figures. Figures are embedded; the page "
                    "fetches nothing.")
    rep.add_argument("path", metavar="RUN_OR_BENCHMARK", help="run folder or benchmark folder")
    rep.add_argument("--out", "-o", help="HTML file (default: PATH/report.html)")
    rep.add_argument("--no-evaluate", dest="evaluate", action="store_false",
                     help="do not run rrrnet evaluate when the run has no error analysis yet")
    rep.set_defaults(func=report_command)

    card = sub.add_parser("card", help="write the run's model card (RUN/MODEL_CARD.md, Hugging "
                                       "Face layout)")
    card.add_argument("run", help="run folder written by rrrnet fit")
    card.add_argument("--out", "-o", help="file to write (default: RUN/MODEL_CARD.md)")
    card.add_argument("--latency-runs", type=int, default=30,
                      help="timed runs at batch 1 when no latency is recorded for the run "
                           "(0: leave latency out; default 30)")
    card.set_defaults(func=card_command)


def report_command(a: argparse.Namespace) -> int:
    from ..report.page import report
    path = report(a.path, a.out, evaluate=a.evaluate)
    print(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB, self-contained: open it in any "
          f"browser)")
    return 0


def card_command(a: argparse.Namespace) -> int:
    from ..card import write_card
    path = write_card(a.run, a.out, latency_runs=a.latency_runs)
    print(f"wrote {path}")
    return 0
