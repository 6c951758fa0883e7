"""The distillation defaults chosen on held-out data (choose.sh): each setting's val error per
dataset and their mean, the lowest mean chosen (test errors are shown, never used). Writes
choice.csv, choice.md and choice.json (the chosen temperature and weight, which
run_distill.sh's distilled arms read; null until a setting has run on every dataset) here.

    python docs/results/distill/choose.py [RUNS [OUT]]   (~/rrrnet-runs/distill-choice, this folder)
"""
import json
import os
import sys
from pathlib import Path

from rrrnet.io import write_csv, write_json

HERE = Path(__file__).parent
DEFAULT_SETTINGS = "2:0.5 4:0.5 8:0.5 4:0.25 4:0.9"   # choose.sh's


def rows(root: Path) -> list[dict]:
    """One row per finished run: RUNS/DATASET/T{temperature}-w{weight}/seed{S}/metrics.json."""
    found = []
    for path in sorted(root.glob("*/T*-w*/seed*/metrics.json")):
        recipe = json.loads((path.parent / "config.json").read_text())["recipe"]
        m = json.loads(path.read_text())
        found.append({"dataset": path.parts[-4], "temperature": recipe["distill_temperature"],
                      "weight": recipe["distill_weight"], "seed": int(path.parts[-2][4:]),
                      "val_error": m["val"]["error"], "test_error": m["error"]})
    return found


def planned() -> set[tuple[float, float]]:
    """The settings choose.sh tries: its SETTINGS (``temperature:weight ...``), as there."""
    text = os.environ.get("SETTINGS") or DEFAULT_SETTINGS
    return {tuple(float(v) for v in item.split(":")) for item in text.split()}


def choose(table: list[dict], expected: set[tuple[float, float]] = frozenset()) \
        -> tuple[list[tuple], tuple | None]:
    """Per setting: (temperature, weight, mean val error over datasets and seeds, runs,
    datasets); the chosen setting: the lowest mean, once every setting (those run and the
    ``expected`` ones) has run on every dataset (None before: a partial grid chooses nothing)."""
    datasets = {r["dataset"] for r in table}
    settings = sorted({(r["temperature"], r["weight"]) for r in table})
    expected_missing = not set(expected) <= set(settings)
    summary = []
    for t, w in settings:
        got = [r for r in table if (r["temperature"], r["weight"]) == (t, w)]
        summary.append((t, w, sum(r["val_error"] for r in got) / len(got), len(got),
                        len({r["dataset"] for r in got})))
    if expected_missing or any(s[4] < len(datasets) for s in summary):
        return summary, None
    return summary, min(summary, key=lambda s: (s[2], s[0], s[1]))


def main(root: Path, out: Path = HERE) -> None:
    table = rows(root)
    if not table:
        sys.exit(f"no finished runs under {root}: run docs/results/distill/choose.sh first")
    write_csv(out / "choice.csv", table)
    summary, chosen = choose(table, planned())
    lines = ["| temperature | weight | mean val error | runs | datasets |", "|---|---|---|---|---|"]
    lines += [f"| {t:g} | {w:g} | {e:.2%} | {n} | {k} |" for t, w, e, n, k in summary]
    lines += ["", "Chosen (lowest val error, mean over the datasets at the first seed): "
                  f"temperature {chosen[0]:g}, weight {chosen[1]:g}" if chosen
              else "Not every setting has run on every dataset yet: no choice."]
    (out / "choice.md").write_text("\n".join(lines) + "\n")
    write_json(out / "choice.json", {"temperature": chosen[0], "weight": chosen[1]}
               if chosen else None)
    print("\n".join(lines))


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path.home() / "rrrnet-runs" / "distill-choice",
         Path(sys.argv[2]) if len(sys.argv) > 2 else HERE)
