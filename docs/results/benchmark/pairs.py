"""E - method paired per (dataset, seed) over the cells both have, with its 95% t-interval: the
figure to read while a method's cells are still coming (the summary pairs per dataset, seed
means against seed means).

    python docs/results/benchmark/pairs.py [FILE.csv] [METHOD ...]   (this folder's results.csv; B)
"""
import csv
import sys
from pathlib import Path

from rrrnet.report.stats import mean_ci


def main(path: Path, methods: list[str]) -> None:
    with open(path, newline="") as f:
        error = {(r["dataset"], r["method"], int(r["seed"])): float(r["error"])
                 for r in csv.DictReader(f)}
    for method in methods:
        pairs = sorted((d, s) for d, m, s in error if m == method and (d, "E", s) in error)
        if not pairs:
            print(f"E - {method}: no (dataset, seed) has both")
            continue
        diffs = [error[d, "E", s] - error[d, method, s] for d, s in pairs]
        mean, low, high = (100 * v for v in mean_ci(diffs))
        print(f"E - {method} over {len(pairs)} (dataset, seed) pairs: {mean:+.2f} points "
              f"[{low:+.2f}, {high:+.2f}] (95% t-interval); E lower in "
              f"{sum(x < 0 for x in diffs)}, {method} lower in {sum(x > 0 for x in diffs)}, "
              f"{sum(x == 0 for x in diffs)} level")


if __name__ == "__main__":
    args = sys.argv[1:]
    given = args.pop(0) if args and args[0].endswith(".csv") else None
    main(Path(given) if given else Path(__file__).with_name("results.csv"), args or ["B"])
