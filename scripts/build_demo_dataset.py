#!/usr/bin/env python3
"""Build rrrnet's embedded demo dataset (src/rrrnet/data/demo/) from Debian's openclipart-png.

    apt-get install openclipart-png          # public-domain clip art, /usr/share/openclipart/png
    python scripts/build_demo_dataset.py --overwrite
    python scripts/build_demo_dataset.py --stats   # usable images per class, writes nothing

20 classes x 40 images, Meta-Album format (labels.csv, info.json, images/), 128x128 RGB JPEG.
A thin wrapper over ``rrrnet.data.sources.openclipart.convert_openclipart`` (``rrrnet data openclipart``),
which holds the hand-picked classes and the file filters; this script only names the dataset as
the demo and checks that it stays small enough to ship inside the package.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from rrrnet.data.sources.openclipart import (OPENCLIPART_CLASSES, OPENCLIPART_DIR,  # noqa: E402
                                             convert_openclipart, select_openclipart)
from rrrnet.errors import DataError  # noqa: E402

CLASSES = OPENCLIPART_CLASSES
OUT = REPO / "src" / "rrrnet" / "data" / "demo"
NAME = "rrrnet demo (Open Clip Art, 20 classes)"
BUILDER = "scripts/build_demo_dataset.py"
PER_CLASS = 40
SEED = 0
MAX_MB = 8.0


def print_stats(source: Path, per_class: int, seed: int) -> None:
    """Candidates, unambiguous and usable files of every class (loads every candidate)."""
    picks = select_openclipart(source, per_class, seed, count_usable=True, strict=False)
    for p in picks:
        print(f"{p.name:<18} candidates {p.candidates:4d}  unambiguous {p.unambiguous:4d}  "
              f"usable {p.usable:4d}  picked {len(p.picked)}")
    short = [p.name for p in picks if len(p.picked) < per_class]
    if short:
        raise DataError(f"fewer than {per_class} usable images in: {', '.join(short)}")


def folder_mb(folder: Path) -> float:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) / 1e6


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--source", type=Path, default=OPENCLIPART_DIR,
                   help="openclipart-png's png folder")
    p.add_argument("--out", type=Path, default=OUT, help="output folder")
    p.add_argument("--per-class", type=int, default=PER_CLASS)
    p.add_argument("--seed", type=int, default=SEED)
    p.add_argument("--overwrite", action="store_true", help="replace an existing dataset")
    p.add_argument("--stats", action="store_true", help="print the counts only; write nothing")
    args = p.parse_args(argv)

    if args.stats:
        print_stats(args.source, args.per_class, args.seed)
        return 0
    out = convert_openclipart(args.out, args.per_class, args.seed, args.source, args.overwrite,
                              name=NAME, builder=BUILDER)
    size = folder_mb(out)
    print(f"wrote {out}: {args.per_class * len(CLASSES)} images, {size:.2f} MB")
    if size > MAX_MB:
        raise SystemExit(f"the dataset is {size:.2f} MB, more than {MAX_MB} MB")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except DataError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
