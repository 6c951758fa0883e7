"""The distillation study (run_distill.sh): distill.csv (dataset, method, seed, val_error,
test_error, teacher) from the finished runs, and distill.md: the mean errors per dataset and
arm, the paired effects with 95% t-intervals, and the answer to the issue's two questions:
does distillation from B widen E's lead over C, and does E<-B beat E on the validation part of
both datasets (the condition for adding it to the benchmark of record as method F)?

    python docs/results/distill/compare.py [RUNS [OUT]]   (~/rrrnet-runs/distill, this folder)
"""
import json
import sys
from pathlib import Path

from rrrnet.io import write_csv
from rrrnet.report.stats import mean_ci

HERE = Path(__file__).parent
ARMS = ("B", "E", "C", "E-from-B", "E-from-B-ensemble", "C-from-B")


def rows(root: Path) -> list[dict]:
    found = []
    for path in sorted(root.glob("*/*/seed*/metrics.json")):
        dataset, arm, seed = path.parts[-4], path.parts[-3], int(path.parts[-2][4:])
        m = json.loads(path.read_text())
        config = json.loads((path.parent / "config.json").read_text())
        teacher = config.get("recipe", {}).get("distill") or ""
        found.append({"dataset": dataset, "method": arm, "seed": seed,
                      "val_error": (m.get("val") or {}).get("error"), "test_error": m["error"],
                      "teacher": teacher and Path(teacher).parent.name + "/" + Path(teacher).name})
    return sorted(found, key=lambda r: (r["dataset"], ARMS.index(r["method"]), r["seed"]))


def interval(diffs: list[float]) -> str:
    """Mean and 95% t-interval in points (rrrnet.report.stats.mean_ci)."""
    mean, low, high = mean_ci(diffs)
    if len(diffs) < 2:
        return f"{mean * 100:+.2f} (n = 1)"
    return f"{mean * 100:+.2f} [{low * 100:+.2f}, {high * 100:+.2f}] (n = {len(diffs)})"


def paired(by: dict, a: str, b: str, key: str, datasets) -> list[float]:
    return [by[d, a, s][key] - by[d, b, s][key] for (d, m, s) in sorted(by)
            if m == a and d in datasets and (d, b, s) in by and by[d, a, s][key] is not None]


def lead_change(by: dict, student: str, key: str, datasets) -> list[float]:
    """(student - C<-B) - (E - C) per (dataset, seed) that has all four arms: how much
    distilling both from B changes E's lead over C (negative: a wider lead)."""
    return [(by[d, student, s][key] - by[d, "C-from-B", s][key])
            - (by[d, "E", s][key] - by[d, "C", s][key])
            for (d, m, s) in sorted(by) if m == "E" and d in datasets
            and all((d, x, s) in by for x in ("C", student, "C-from-B"))]


def main(root: Path, out: Path = HERE) -> None:
    table = rows(root)
    if not table:
        sys.exit(f"no finished runs under {root}: run docs/results/distill/run_distill.sh first")
    write_csv(out / "distill.csv", table)
    by = {(r["dataset"], r["method"], r["seed"]): r for r in table}
    datasets = sorted({r["dataset"] for r in table})
    lines = ["| dataset | method | seeds | val error | test error |", "|---|---|---|---|---|"]
    for d in datasets:
        for arm in ARMS:
            got = [r for r in table if r["dataset"] == d and r["method"] == arm]
            if got:
                val = [r["val_error"] for r in got if r["val_error"] is not None]
                lines.append(f"| {d} | {arm} | {len(got)} | "
                             f"{sum(val) / len(val):.1%} | "
                             f"{sum(r['test_error'] for r in got) / len(got):.1%} |")
    lines += ["", "Paired differences in points (mean [95% t-interval]; negative: the first is "
              "lower):", ""]
    for a, b in (("E-from-B", "E"), ("E-from-B-ensemble", "E"), ("C-from-B", "C"), ("E", "C"),
                 ("E-from-B", "C-from-B"), ("E-from-B-ensemble", "E-from-B")):
        for key in ("val_error", "test_error"):
            diffs = paired(by, a, b, key, datasets)
            if diffs:
                lines.append(f"- {a} - {b}, {key}: {interval(diffs)}")
    for student in ("E-from-B", "E-from-B-ensemble"):
        lines += ["", f"Does distillation widen E's lead over C? ({student} - C-from-B) - (E - C) "
                  "in points, paired per dataset and seed (negative: a wider lead):"]
        for key in ("val_error", "test_error"):
            for name, among in [(d, [d]) for d in datasets] + [("both", datasets)]:
                change = lead_change(by, student, key, among)
                lines.append(f"- {key}, {name}: {interval(change)}" if change else
                             f"- {key}, {name}: no seed has E, C, {student} and C-from-B yet")
    lines += ["", "Method F (E<-B, either way of distilling the branches) joins the benchmark "
              "only if its val error minus E's is below 0 with the interval excluding 0 on both "
              "datasets:"]
    for student in ("E-from-B", "E-from-B-ensemble"):
        for d in datasets:
            diffs = paired(by, student, "E", "val_error", [d])
            if diffs:
                lines.append(f"- {student} - E, {d}: {interval(diffs)}")
    (out / "distill.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path.home() / "rrrnet-runs" / "distill",
         Path(sys.argv[2]) if len(sys.argv) > 2 else HERE)
