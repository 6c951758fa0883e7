"""bf16 against fp32 for E: each finished bf16 cell here beside the benchmark of record's fp32
cell of the same (dataset, seed), the paired differences, their mean with a 95% t-interval,
and the step times of benchmarks/results/step_time*.json. Writes precision.csv and
precision.md here.

    python docs/results/precision/compare.py
"""
import csv
import json
import math
from pathlib import Path

from scipy import stats

HERE = Path(__file__).parent
RECORD = HERE.parent / "benchmark" / "results.csv"


def errors(path: Path) -> dict:
    with open(path, newline="") as f:
        return {(r["dataset"], int(r["seed"])): float(r["error"]) for r in csv.DictReader(f)
                if r["method"] == "E"}


def main() -> None:
    fp32, bf16 = errors(RECORD), errors(HERE / "results.csv")
    rows = [{"dataset": d, "seed": s, "fp32_error": fp32[(d, s)], "bf16_error": e,
             "bf16_minus_fp32": e - fp32[(d, s)]} for (d, s), e in sorted(bf16.items())]
    with open(HERE / "precision.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    diffs = [r["bf16_minus_fp32"] for r in rows]
    mean = sum(diffs) / len(diffs)
    if len(diffs) > 1:
        sd = math.sqrt(sum((d - mean) ** 2 for d in diffs) / (len(diffs) - 1))
        half = stats.t.ppf(0.975, len(diffs) - 1) * sd / math.sqrt(len(diffs))
    else:
        half = math.nan
    lines = ["| dataset | seed | fp32 | bf16 | bf16 - fp32 |", "|---|---|---|---|---|"]
    lines += [f"| {r['dataset']} | {r['seed']} | {r['fp32_error']:.1%} | {r['bf16_error']:.1%} | "
              f"{r['bf16_minus_fp32'] * 100:+.1f} |" for r in rows]
    lines.append(f"\nMean bf16 - fp32 over {len(diffs)} cells: {mean * 100:+.2f} points "
                 f"(95% t-interval {(mean - half) * 100:+.2f} to {(mean + half) * 100:+.2f}).")
    for timing in sorted((HERE.parent.parent.parent / "benchmarks" / "results").glob("step_time*.json")):
        t = json.loads(timing.read_text())
        p = t["precisions"]
        lines.append(f"\n{t['model']} (`{t['command']}`): " + ", ".join(
            f"{k} {v['median_ms']:.0f} ms/step" for k, v in p.items())
            + (f"; bf16 {p['bf16']['speedup_vs_fp32']:.2f}x faster" if "bf16" in p else ""))
    (HERE / "precision.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
