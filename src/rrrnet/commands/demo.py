"""``demo``: RRR-Net against baseline [A] on the embedded dataset."""
from __future__ import annotations

import argparse

from .args import add_run_flags


def add(sub) -> None:
    demo = sub.add_parser("demo", help="train RRR-Net and baseline [A] on the embedded dataset "
                                       "and compare them (about ten minutes on two CPU cores)")
    demo.add_argument("--out", "-o", default="rrrnet-demo", help="output folder")
    demo.add_argument("--weights", default=None,
                      help="default: ImageNet weights found locally, else astra-ct, else none")
    demo.add_argument("--quick", action="store_true", help="a few epochs only (a smoke test)")
    demo.add_argument("--epochs", type=int, default=None, help="RRR-Net epochs")
    demo.add_argument("--seed", type=int, default=0)
    add_run_flags(demo, what="a demo", resume="read a finished demo back, continue an "
                                                 "interrupted one")
    demo.set_defaults(func=demo_command)


def demo_command(a: argparse.Namespace) -> int:
    from ..demo import budget_for, format_rows, run_demo, write_pages
    rows = run_demo(a.out, budget_for(a.quick, a.epochs), weights=a.weights, seed=a.seed,
                    resume=a.resume, overwrite=a.overwrite, progress=not a.quiet)
    print("\n" + format_rows(rows))
    print(f"\nweights: {rows[0]['weights']}; report, CSV, JSON and plot in {a.out}/")
    pages = write_pages(rows)
    print("report pages and model cards (open the .html in any browser):")
    print("\n".join(f"  {path}" for path in pages))
    return 0
