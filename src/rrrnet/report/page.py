"""The HTML report: one self-contained page per run (``rrrnet report RUN``) or per benchmark
(``rrrnet report BENCHMARK_DIR``).

A page is one file: the CSS inline, every figure a PNG ``data:`` URI, no script, no link to
anything outside it, so that it opens offline and can be sent as it is.

A run's page holds its configuration; its data (images per part and class, from the run's
``split.csv`` where it has one, and the files left out, from ``skipped.csv``); the learning
curves of ``history.csv``; test error, balanced error and the cost (parameters and MACs from
:func:`rrrnet.cost`, latency where recorded); the error analysis of ``rrrnet evaluate``
(confusion matrix, per-class table, most confidently wrong images, reliability; run here on the
run's own dataset when it has not been run and the dataset is at hand); calibration and
uncertainty from ``rrrnet uncertainty``; and, for a cell of a benchmark, the other methods on
the same dataset. An unfinished run's page says so at the top.
"""
from __future__ import annotations

import base64
import datetime as _dt
import html
import math
import os
from pathlib import Path
from typing import Any, Iterable, Sequence

from .. import __version__
from ..errors import RunError
from ..io import atomic_write, read_csv, read_json

CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;color:#1d2329;
background:#f6f7f9;line-height:1.45}
main{max-width:1180px;margin:0 auto;padding:24px 28px 60px}
h1{font-size:1.6rem;margin:.2rem 0 .4rem}h2{font-size:1.2rem;margin:2rem 0 .6rem;
border-bottom:2px solid #d8dde3;padding-bottom:.2rem}h3{font-size:1rem;margin:1.2rem 0 .4rem}
.meta{color:#5b6570;font-size:.9rem}
.banner{padding:10px 14px;border-radius:6px;margin:12px 0;font-weight:600}
.banner.warn{background:#fff3cd;border:1px solid #e0b84c}
.banner.ok{background:#e5f4ea;border:1px solid #7fbf95}
.cards{display:flex;flex-wrap:wrap;gap:10px;margin:10px 0}
.card{background:#fff;border:1px solid #d8dde3;border-radius:6px;padding:8px 14px;min-width:120px}
.card .v{font-size:1.35rem;font-weight:650}.card .k{font-size:.8rem;color:#5b6570}
table{border-collapse:collapse;background:#fff;font-size:.86rem;margin:6px 0 12px}
th,td{border:1px solid #d8dde3;padding:3px 8px;text-align:right;vertical-align:top}
th{background:#eef1f4;text-align:center}td.l,th.l{text-align:left}
tr.me td{background:#fff3cd;font-weight:600}
.scroll{max-height:460px;overflow:auto;display:inline-block;max-width:100%}
figure{margin:10px 0 18px;background:#fff;border:1px solid #d8dde3;border-radius:6px;
padding:8px;display:inline-block;max-width:100%;box-sizing:border-box}
figure img{max-width:100%;height:auto;display:block}figcaption{font-size:.85rem;color:#5b6570}
.grid2{display:flex;flex-wrap:wrap;gap:14px;align-items:flex-start}
code{background:#eef1f4;padding:0 3px;border-radius:3px}
.note{color:#5b6570;font-size:.9rem}
"""


# ---------------------------------------------------------------------------------------------
# HTML pieces
# ---------------------------------------------------------------------------------------------

def esc(value: Any) -> str:
    return html.escape(str(value), quote=True)


def data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def figure(png: bytes | None, caption: str, alt: str | None = None) -> str:
    if not png:
        return ""
    return (f'<figure><img src="{data_uri(png)}" alt="{esc(alt or caption)}">'
            f"<figcaption>{esc(caption)}</figcaption></figure>")


def figure_file(path: Path, caption: str) -> str:
    return figure(path.read_bytes(), caption) if path.is_file() else ""


def fmt(value: Any, kind: str = "") -> str:
    """A number as the page shows it: ``%`` (share), ``M``/``G`` (millions/billions), ``3``
    (three decimals); None and NaN as an en dash."""
    if value is None or value == "" or (isinstance(value, float) and math.isnan(value)):
        return "\u2013"
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return str(value)
    if kind == "%":
        return f"{100 * value:.1f}%"
    if kind == "M":
        return f"{value / 1e6:.2f} M"
    if kind == "G":
        return f"{value / 1e9:.3f} G"
    if kind == "ms":
        return f"{value:.2f} ms"
    if isinstance(value, int):
        return f"{value:,}"
    return f"{value:.4g}" if abs(value) >= 1e-3 or value == 0 else f"{value:.2e}"


def table(rows: Sequence[dict[str, Any]], columns: Sequence[str] | None = None,
          kinds: dict[str, str] | None = None, left: Iterable[str] = (),
          highlight=None, headers: dict[str, str] | None = None, scroll: bool = False) -> str:
    """An HTML table of ``rows``; ``kinds``: :func:`fmt` kinds per column; ``left``: columns
    aligned left; ``highlight(row)``: rows to mark."""
    if not rows:
        return '<p class="note">(none)</p>'
    columns = list(columns or dict.fromkeys(k for r in rows for k in r))
    kinds, left, headers = kinds or {}, set(left), headers or {}
    head = "".join(f'<th class="{"l" if c in left else ""}">{esc(headers.get(c, c))}</th>'
                   for c in columns)
    body = []
    for row in rows:
        cells = "".join(f'<td class="{"l" if c in left else ""}">{esc(fmt(row.get(c), kinds.get(c, "")))}</td>'
                        for c in columns)
        mark = ' class="me"' if highlight is not None and highlight(row) else ""
        body.append(f"<tr{mark}>{cells}</tr>")
    out = f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"
    return f'<div class="scroll">{out}</div>' if scroll else out


def cards(items: Sequence[tuple[str, str]]) -> str:
    return '<div class="cards">' + "".join(
        f'<div class="card"><div class="v">{esc(v)}</div><div class="k">{esc(k)}</div></div>'
        for k, v in items) + "</div>"


def page(title: str, body: Sequence[str]) -> str:
    stamp = _dt.datetime.now().strftime("%Y-%m-%d %H:%M")
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
            f"<title>{esc(title)}</title><style>{CSS}</style></head><body><main>"
            + "\n".join(b for b in body if b)
            + f'<p class="meta" style="margin-top:3rem">Written by rrrnet {esc(__version__)} on '
              f"{esc(stamp)}. One self-contained file: figures are embedded, nothing is "
              f"fetched.</p></main></body></html>\n")


def write_page(text: str, out: Path, reads: Iterable[Path] = ()) -> Path:
    out = Path(out)
    if out.suffix.lower() not in (".html", ".htm"):
        raise RunError(f"--out {out}: give a file ending in .html")
    target = Path(os.path.realpath(out))
    for read in reads:
        if Path(os.path.realpath(read)) == target:
            raise RunError(f"--out {out} would overwrite {read}, which the report reads; "
                           f"choose another --out")
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(out, lambda f: f.write(text), mode="w")
    return out


# ---------------------------------------------------------------------------------------------
# Figures drawn for the page
# ---------------------------------------------------------------------------------------------

def learning_curves(history: list[dict[str, Any]]) -> bytes | None:
    """Training loss and the errors per epoch (train, validation, averaged weights)."""
    if not history:
        return None
    from .interpret_figures import plt, png_bytes
    epochs = [r["epoch"] for r in history]
    fig, (loss_ax, err_ax) = plt.subplots(1, 2, figsize=(10, 3.6), dpi=100)
    if any(isinstance(r.get("loss"), (int, float)) for r in history):
        loss_ax.plot(epochs, [r.get("loss") for r in history], marker="o", ms=3, label="train loss")
    loss_ax.set_xlabel("epoch")
    loss_ax.set_ylabel("loss")
    loss_ax.set_title("training loss")
    labels = {"train_error": "train", "val_error": "validation", "val_error_ema":
              "validation, averaged weights", "test_error": "test"}
    for key, label in labels.items():
        points = [(e, r[key]) for e, r in zip(epochs, history)
                  if isinstance(r.get(key), (int, float))]
        if points:
            err_ax.plot([p[0] for p in points], [100 * p[1] for p in points], marker="o", ms=3,
                        label=label)
    err_ax.set_xlabel("epoch")
    err_ax.set_ylabel("error (%)")
    err_ax.set_title("error")
    for ax in (loss_ax, err_ax):
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
    fig.tight_layout()
    return png_bytes(fig)


# ---------------------------------------------------------------------------------------------
# A run
# ---------------------------------------------------------------------------------------------

def analysis_folder(run, data_root: str | None) -> Path | None:
    """The run's ``evaluate/<data>/`` folder with an error analysis: the one of its own
    dataset when there is one, else the first found."""
    candidates = []
    if data_root:
        candidates.append(run.evaluate_dir / Path(data_root).name)
    if run.evaluate_dir.is_dir():
        candidates += sorted(p for p in run.evaluate_dir.iterdir() if p.is_dir())
    for folder in candidates:
        if (folder / "confusion.csv").is_file():
            return folder
    return None


def ensure_analysis(run, evaluate: bool = True) -> tuple[Path | None, str]:
    """The run's error-analysis folder, running ``rrrnet evaluate`` on its own dataset first
    when there is none and it can (a finished run whose dataset is at hand); else None and why."""
    root = run.data.get("root")
    folder = analysis_folder(run, root)
    if folder is not None:
        return folder, ""
    if not run.is_finished:
        return None, "the run has no trained model yet, so nothing has been evaluated"
    if not evaluate:
        return None, "rrrnet evaluate RUN DATA writes the error analysis"
    if not root or not Path(root).is_dir():
        return None, (f"the run's dataset ({root or 'not recorded'}) is not at hand: rrrnet "
                      f"evaluate RUN DATA writes the error analysis")
    from ..evaluate import analysis_dir, evaluate_run
    try:
        evaluate_run(run.path, root)
    except RunError as err:
        return None, f"rrrnet evaluate could not run on {root}: {err}"
    return analysis_dir(run, root), ""


def balanced_error_from(folder: Path | None) -> float | None:
    if folder is None or not (folder / "confusion.csv").is_file():
        return None
    from ..interpret import balanced_error
    import numpy as np
    rows = read_csv(folder / "confusion.csv")
    matrix = np.array([[row[c] or 0 for c in list(row)[1:]] for row in rows], dtype=float)
    return balanced_error(matrix)


def benchmark_of(run_path: Path) -> tuple[Path, dict[str, str]] | None:
    """(benchmark folder, this cell) when the run is ``BENCH/cells/DATASET/METHOD/seedK`` of a
    benchmark with ``results.csv``."""
    parts = run_path.resolve().parts
    if len(parts) >= 5 and parts[-4] == "cells" and parts[-1].startswith("seed"):
        bench = Path(*parts[:-4])
        if (bench / "results.csv").is_file():
            return bench, {"dataset": parts[-3], "method": parts[-2], "seed": parts[-1][4:]}
    return None


def recorded_latency(run) -> dict[str, Any] | None:
    """A latency recorded for this run: ``latency.json`` in the run folder, the run's metrics,
    or its benchmark row (``row.json``)."""
    path = run.path / "latency.json"
    if path.is_file():
        value = read_json(path, "the run's latency")
        if isinstance(value, dict) and "median_ms" in value:
            return {"ms": value["median_ms"], "where": value.get("device_name", ""),
                    "batch": value.get("batch_size"), "threads": value.get("threads")}
    for key in ("cpu_ms_per_image", "cpu_ms", "latency_ms"):
        if isinstance(run.metrics.get(key), (int, float)):
            return {"ms": run.metrics[key], "where": "recorded in metrics.json"}
    row_path = run.path / "row.json"
    if row_path.is_file():
        row = (read_json(row_path, "the benchmark row") or {}).get("row") or {}
        if isinstance(row.get("cpu_ms"), (int, float)):
            return {"ms": row["cpu_ms"], "where": "CPU, the benchmark's measurement (row.json)"}
    return None


def split_counts(run) -> tuple[list[dict[str, Any]], str]:
    """Images per class and part: from ``split.csv`` when the run has one, else the per-class
    sizes of its configuration."""
    classes = run.classes or []
    split_csv = run.path / "split.csv"
    if split_csv.is_file():
        counts: dict[str, dict[str, int]] = {}
        for row in read_csv(split_csv):
            counts.setdefault(str(row.get("label")), {}).setdefault(str(row.get("part")), 0)
            counts[str(row["label"])][str(row["part"])] += 1
        names = classes or sorted(counts)
        rows = [{"class": c, **{p: counts.get(c, {}).get(p, 0) for p in ("train", "val", "test")}}
                for c in names]
        for r in rows:
            r["total"] = r["train"] + r["val"] + r["test"]
        return rows, "counted from the run's split.csv"
    data = run.data
    if not data or not classes:
        return [], ""
    per = {p: data.get(p) for p in ("train", "val", "test")}
    rows = [{"class": c, **{p: per[p] for p in per}} for c in classes]
    return rows, ("per class as the run's configuration sets them (a class with fewer images "
                  "has fewer; the run folder has no split.csv)")


def run_page(run, out: str | os.PathLike | None = None, evaluate: bool = True) -> Path:
    """Write the report page of ``run`` (a path or :class:`rrrnet.Run`) to ``out`` (default
    ``RUN/report.html``); returns its path."""
    from ..run import Run
    run = run if isinstance(run, Run) else Run(run)
    if run.is_quantized:
        raise RunError(f"{run.path} is an int8 model file; report its run folder")
    if not run.config_path.is_file():
        raise RunError(f"{run.path} is not a run folder (no config.json); give the --out of "
                       f"rrrnet fit, or a benchmark folder (with results.csv)")
    out = Path(out) if out is not None else run.path / "report.html"
    config, metrics, history = run.config, run.metrics, run.history
    name = run.path.resolve().name
    body = [f"<h1>rrrnet run {esc(name)}</h1>",
            f'<p class="meta">{esc(run.path.resolve())}</p>']

    # -- status ----------------------------------------------------------------------------
    epochs = config["recipe"].get("epochs")
    if not run.is_finished and not metrics:
        body.append(f'<div class="banner warn">Unfinished run: training has not finished '
                    f'({len(history)} of {epochs} epochs in history.csv; no model.pt, no '
                    f'metrics.json). This page shows what is there so far.</div>')
    elif not run.is_finished:
        body.append('<div class="banner warn">This folder holds the run\'s metrics but not its '
                    'model (model.pt is not here): nothing can be re-evaluated.</div>')
    else:
        body.append(f'<div class="banner ok">Finished: {len(history)} epochs trained.</div>')

    # -- headline numbers --------------------------------------------------------------------
    analysis, why_not = ensure_analysis(run, evaluate)
    balanced = metrics.get("balanced_error")
    if not isinstance(balanced, (int, float)):
        balanced = balanced_error_from(analysis)
    from ..cost import cost
    from ..model import ModelConfig
    try:
        model_config = ModelConfig.from_dict(config["model"])
        rep = cost(model_config, image_size=run.image_size)
        params, macs = rep.params, rep.macs
    except Exception as err:  # an unusual configuration: the page still renders
        params = macs = None
        why_cost = f"cost not computed ({type(err).__name__}: {err})"
    else:
        why_cost = ""
    latency = recorded_latency(run)
    body.append(cards([("test error", fmt(metrics.get("error"), "%")),
                       ("balanced error", fmt(balanced, "%")),
                       ("NLL", fmt(metrics.get("nll"))), ("ECE", fmt(metrics.get("ece"))),
                       ("parameters", fmt(params, "M")), ("MACs per image", fmt(macs, "G")),
                       ("latency per image", fmt(latency["ms"], "ms") if latency else "\u2013")]))
    notes = []
    if metrics.get("images"):
        notes.append(f"on {metrics['images']} {metrics.get('scored_on', 'test')} images")
    if latency:
        notes.append(f"latency: {latency['where']}")
    else:
        notes.append("latency not recorded (rrrnet latency RUN measures it)")
    if why_cost:
        notes.append(why_cost)
    body.append(f'<p class="note">{esc("; ".join(notes))}. Balanced error: 1 - the mean '
                f'recall over classes.</p>')

    # -- configuration -------------------------------------------------------------------------
    body.append("<h2>Configuration</h2>")
    model_rows = [{"option": k, "value": _text(v)} for k, v in config["model"].items()]
    if "resolved_shift" in config:
        model_rows.append({"option": "resolved shift", "value": config["resolved_shift"]})
    recipe_rows = [{"option": k, "value": _text(v)} for k, v in config["recipe"].items()]
    body.append('<div class="grid2"><div><h3>Model</h3>'
                + table(model_rows, left=("option", "value")) + "</div><div><h3>Recipe</h3>"
                + table(recipe_rows, left=("option", "value")) + "</div></div>")

    # -- data ------------------------------------------------------------------------------------
    body.append("<h2>Data</h2>")
    data = run.data
    if data:
        body.append(f'<p>Dataset <code>{esc(data.get("root", "?"))}</code>; '
                    f'{len(run.classes or [])} classes.</p>')
    counts, how = split_counts(run)
    if counts:
        totals = {"class": "all classes", **{p: sum((r.get(p) or 0) for r in counts)
                                             for p in ("train", "val", "test", "total")}}
        body.append(table(counts + [totals], ["class", "train", "val", "test",
                                              *(["total"] if "total" in counts[0] else [])],
                          left=("class",), scroll=True))
        body.append(f'<p class="note">Images {esc(how)}.</p>')
    skipped_csv = run.path / "skipped.csv"
    if skipped_csv.is_file():
        skipped = read_csv(skipped_csv)
        reasons: dict[str, int] = {}
        for row in skipped:
            key = str(row.get("reason", "")).split(" (")[0]
            reasons[key] = reasons.get(key, 0) + 1
        body.append(f"<h3>Files left out: {len(skipped)}</h3>")
        if skipped:
            body.append(table([{"reason": k, "files": v} for k, v in sorted(reasons.items())],
                              left=("reason",)))
            body.append(table(skipped[:100], ["file", "reason"], left=("file", "reason"),
                              scroll=True))
            if len(skipped) > 100:
                body.append(f'<p class="note">The first 100 of {len(skipped)}: every one is in '
                            f'{esc(skipped_csv)}.</p>')
        else:
            body.append('<p class="note">Every file of the dataset was used (skipped.csv is '
                        'empty).</p>')
    else:
        body.append('<p class="note">No skipped.csv in the run folder: no account of files '
                    'left out was written.</p>')

    # -- learning curves --------------------------------------------------------------------------
    body.append("<h2>Learning curves</h2>")
    curves = learning_curves(history)
    body.append(figure(curves, f"history.csv: {len(history)} epochs") if curves
                else '<p class="note">No epoch has finished yet (history.csv is empty).</p>')

    # -- errors -------------------------------------------------------------------------------------
    body.append("<h2>What the model gets wrong</h2>")
    if analysis is None:
        body.append(f'<p class="note">No error analysis: {esc(why_not)}.</p>')
    else:
        body.append(f'<p class="note">From <code>{esc(analysis)}</code> (rrrnet evaluate).</p>')
        body.append(figure_file(analysis / "confusion.png",
                                "Confusion matrix: rows are the true classes, columns the "
                                "predictions; counts, and shares of each true class."))
        body.append("<h3>Per class</h3>")
        body.append(table(read_csv(analysis / "per_class.csv"),
                          kinds={"precision": "%", "recall": "%", "f1": "%", "error": "%"},
                          left=("class",), scroll=True))
        top = read_csv(analysis / "top_losses.csv")
        body.append(f"<h3>Most confidently wrong ({len(top)})</h3>")
        body.append(figure_file(analysis / "top_losses.png",
                                "The most confidently wrong images, captioned with the true "
                                "class, the prediction and its probability, the entropy (H) and "
                                "the branches' mutual information (MI)."))
        if top:
            body.append(table(top, ["rank", "file", "true", "predicted", "probability",
                                    "entropy", "mutual_information"], left=("file", "true",
                                                                            "predicted"),
                              scroll=True))

    # -- calibration and uncertainty -----------------------------------------------------------------
    body.append("<h2>Calibration and uncertainty</h2>")
    figures = []
    if analysis is not None:
        figures.append(figure_file(analysis / "reliability.png",
                                   "Reliability: accuracy against confidence per bin (test)."))
    summary_path = run.uncertainty_dir / "uncertainty.json"
    if summary_path.is_file():
        s = read_json(summary_path, "the run's uncertainty report")
        rows = [{"measure": k, "value": fmt(s.get(k), "%" if k == "error" else "")} for k in
                ("images", "error", "nll", "brier", "ece", "ece_equal_mass", "temperature",
                 "ece_calibrated", "mean_entropy", "mean_aleatoric", "mean_mutual_information")]
        if s.get("conformal"):
            c = s["conformal"]
            rows += [{"measure": f"conformal sets (alpha {c['alpha']}): coverage",
                      "value": fmt(c.get("coverage"), "%")},
                     {"measure": "conformal sets: mean size", "value": c.get("mean_set_size")}]
        rows += [{"measure": f"selective, {k}: AURC / error at "
                             f"{v.get('coverage', 0.8):.0%} coverage",
                  "value": f"{fmt(v.get('aurc'))} / {fmt(v.get('error_at_coverage'), '%')}"}
                 for k, v in (s.get("selective") or {}).items()]
        for name, scores in (s.get("ood") or {}).items():
            rows += [{"measure": f"OOD {name}, {k}: AUROC", "value": v.get("auroc")}
                     for k, v in scores.items() if isinstance(v, dict)]
        body.append(f'<p class="note">From <code>{esc(summary_path)}</code> (rrrnet '
                    f'uncertainty, {esc(s.get("members_are", ""))}, split '
                    f'{esc(s.get("split", ""))}).</p>')
        body.append(table(rows, left=("measure",)))
        for file, caption in (("risk_coverage.png", "Selective prediction: error among the "
                                                    "kept images against the share kept."),
                              ("ood_scores.png", "Uncertainty scores in and out of "
                                                 "distribution.")):
            figures.append(figure_file(run.uncertainty_dir / file, caption))
    else:
        body.append('<p class="note">Not calibrated yet: rrrnet uncertainty RUN DATA adds '
                    'temperature scaling, conformal sets, selective prediction and OOD scores.'
                    '</p>')
    body.append('<div class="grid2">' + "".join(figures) + "</div>")

    # -- benchmark ----------------------------------------------------------------------------------
    bench = benchmark_of(run.path)
    if bench is not None:
        folder, cell = bench
        rows = [r for r in read_csv(folder / "results.csv")
                if str(r.get("dataset")) == cell["dataset"]]
        body.append(f"<h2>In its benchmark: {esc(cell['dataset'])}</h2>")
        body.append(f'<p class="note">Every cell of <code>{esc(folder)}</code> on this '
                    f'dataset; this run is marked.</p>')
        body.append(table(rows, ["method", "seed", "error", "nll", "ece", "params", "macs",
                                 "cpu_ms", "train_seconds"],
                          kinds={"error": "%", "params": "M", "macs": "G"}, left=("method",),
                          highlight=lambda r: str(r.get("method")) == cell["method"]
                          and str(r.get("seed")) == cell["seed"]))
    reads = [run.config_path, run.metrics_path, run.history_path, run.model_path]
    return write_page(page(f"rrrnet run {name}", body), out, reads)


def _text(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        return ", ".join(map(str, value))
    return "" if value is None else str(value)


# ---------------------------------------------------------------------------------------------
# A benchmark
# ---------------------------------------------------------------------------------------------

SUMMARY_KINDS = {"mean_error": "%", "median_error": "%", "params": "M", "macs": "G",
                 "E_minus_mean": "%", "E_minus_low": "%", "E_minus_high": "%"}


def benchmark_page(folder: str | os.PathLike, out: str | os.PathLike | None = None) -> Path:
    """Write the page of a benchmark folder (``results.csv``, and the ``summary.csv``,
    ``per_dataset.csv`` and ``figures/`` that ``rrrnet benchmark`` writes beside it) to ``out``
    (default ``FOLDER/report.html``)."""
    folder = Path(folder)
    results = folder / "results.csv"
    if not results.is_file():
        raise RunError(f"{folder} is not a benchmark folder (no results.csv)")
    out = Path(out) if out is not None else folder / "report.html"
    rows = read_csv(results)
    methods = sorted({str(r.get("method")) for r in rows})
    datasets = sorted({str(r.get("dataset")) for r in rows})
    body = [f"<h1>rrrnet benchmark {esc(folder.resolve().name)}</h1>",
            f'<p class="meta">{esc(folder.resolve())}</p>',
            cards([("cells", str(len(rows))), ("methods", ", ".join(methods)),
                   ("datasets", str(len(datasets))),
                   ("seeds", str(len({r.get('seed') for r in rows})))])]
    summary = read_csv(folder / "summary.csv")
    if summary:
        body.append("<h2>Per method</h2>")
        columns = [c for c in ("method", "datasets", "cells", "mean_error", "median_error",
                               "params", "macs", "cpu_ms", "gpu_ms", "wilcoxon_E_less_p",
                               "E_minus_mean", "E_minus_low", "E_minus_high") if c in summary[0]]
        body.append(table(summary, columns, SUMMARY_KINDS, left=("method",)))
        body.append('<p class="note">E_minus: the reference method\'s error minus the method\'s '
                    '(mean over datasets, with its 95% interval); p: one-tailed Wilcoxon '
                    'signed-rank test over datasets.</p>')
    per_dataset = read_csv(folder / "per_dataset.csv")
    if per_dataset:
        body.append("<h2>Per dataset (mean over seeds, 95% interval)</h2>")
        body.append(table(per_dataset, kinds={"mean": "%", "ci_low": "%", "ci_high": "%"},
                          left=("dataset", "method"), scroll=True))
    uncertainty = read_csv(folder / "uncertainty_summary.csv")
    if uncertainty:
        body.append("<h2>Calibration and uncertainty</h2>")
        body.append(table(uncertainty, left=("method", "measure", "metric"), scroll=True))
    figures = sorted((folder / "figures").glob("*.png"))
    if figures:
        body.append("<h2>Figures</h2>")
        body += [figure_file(p, p.stem.replace("_", " ")) for p in figures]
    body.append(f"<h2>Every cell ({len(rows)})</h2>")
    columns = [c for c in ("dataset", "method", "seed", "error", "nll", "ece", "params", "macs",
                           "cpu_ms", "train_seconds", "epochs", "weights") if rows and c in rows[0]]
    body.append(table(rows, columns, {"error": "%", "params": "M", "macs": "G"},
                      left=("dataset", "method", "weights"), scroll=True))
    reads = [results, folder / "summary.csv", folder / "per_dataset.csv", *figures]
    return write_page(page(f"rrrnet benchmark {folder.resolve().name}", body), out, reads)


def report(path: str | os.PathLike, out: str | os.PathLike | None = None,
           evaluate: bool = True) -> Path:
    """The page of a benchmark folder (it has ``results.csv``) or of a run folder."""
    path = Path(path)
    if not path.exists():
        raise RunError(f"{path} does not exist; give a run folder (rrrnet fit --out) or a "
                       f"benchmark folder (rrrnet benchmark --out)")
    if path.is_dir() and (path / "results.csv").is_file():
        return benchmark_page(path, out)
    return run_page(path, out, evaluate=evaluate)
