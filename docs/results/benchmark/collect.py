"""Copy a benchmark's finished cells (their small files) from its run folder into the committed
folder, then write results.csv and rebuild the summaries and figures there; the weights (*.pt)
stay. The cells train beside each other and are not timed: where OUT/latency.json exists
(measure_latency.sh, one measurement per method on an idle machine), each method's median
batch-1 latency fills its rows' cpu_ms.

    python docs/results/benchmark/collect.py RUNS OUT
"""
import json
import shutil
import sys
from pathlib import Path

from rrrnet.experiments.benchmark import build_report, collect_rows, write_results

SMALL_FILES = ("row.json", "config.json", "metrics.json", "history.csv")


def main(runs: str, out: str) -> None:
    runs, out = Path(runs), Path(out)
    for row in sorted(runs.glob("cells/*/*/seed*/row.json")):
        cell = row.parent
        target = out / cell.relative_to(runs)
        target.mkdir(parents=True, exist_ok=True)
        for name in SMALL_FILES:
            if (cell / name).exists():
                shutil.copy2(cell / name, target / name)
    if (runs / "benchmark.json").exists():
        shutil.copy2(runs / "benchmark.json", out / "benchmark.json")
    rows = collect_rows(out)
    if (out / "latency.json").exists():
        latency = json.loads((out / "latency.json").read_text())
        for row in rows:
            if row["method"] in latency:
                row["cpu_ms"] = latency[row["method"]]["median_ms"]
    if rows:
        write_results(out, rows)
        build_report(out, rows)
    print(f"{len(rows)} cells in {out}")


if __name__ == "__main__":
    main(*sys.argv[1:3])
