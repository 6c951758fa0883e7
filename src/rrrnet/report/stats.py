"""Statistics over repeated runs: Student-t intervals (and, for the benchmark, Wilcoxon tests)."""
from __future__ import annotations

import math
from collections import defaultdict
from typing import Any, Iterable, Sequence

import numpy as np
from scipy import stats


def mean_ci(values: Sequence[float], confidence: float = 0.95) -> tuple[float, float, float]:
    """Mean and two-sided Student-t interval ``(mean, low, high)``; one value gives ``low = high
    = mean`` (no spread can be estimated), NaNs are ignored."""
    data = np.asarray([v for v in values if not math.isnan(v)], dtype=float)
    if data.size == 0:
        raise ValueError("mean_ci needs at least one value")
    mean = float(data.mean())
    if data.size == 1:
        return mean, mean, mean
    half = float(stats.t.ppf(0.5 + confidence / 2, data.size - 1) * stats.sem(data))
    return mean, mean - half, mean + half


# ---------------------------------------------------------------------------------------------
# The benchmark's statistics: rows are dicts with at least dataset, method, seed and error, one
# per (dataset, method, seed) cell; a method's error on a dataset is its mean over seeds.
# ---------------------------------------------------------------------------------------------

COST_KEYS = ("params", "macs", "cpu_ms", "gpu_ms")


def _finite(values: Iterable[Any]) -> list[float]:
    out = []
    for v in values:
        try:
            v = float(v)
        except (TypeError, ValueError):
            continue
        if not math.isnan(v):
            out.append(v)
    return out


def methods_of(rows: Sequence[dict[str, Any]]) -> list[str]:
    return sorted({str(r["method"]) for r in rows})


def datasets_of(rows: Sequence[dict[str, Any]]) -> list[str]:
    return sorted({str(r["dataset"]) for r in rows})


def seed_values(rows: Sequence[dict[str, Any]], key: str = "error"
                ) -> dict[tuple[str, str], list[float]]:
    """``{(dataset, method): [value of each seed]}`` (missing values left out)."""
    groups: dict[tuple[str, str], list[float]] = defaultdict(list)
    for r in sorted(rows, key=lambda r: (str(r["dataset"]), str(r["method"]), r.get("seed", 0))):
        groups[(str(r["dataset"]), str(r["method"]))].extend(_finite([r.get(key)]))
    return {k: v for k, v in groups.items() if v}


def seed_means(rows: Sequence[dict[str, Any]], key: str = "error") -> dict[tuple[str, str], float]:
    """``{(dataset, method): mean over seeds}``: what the comparisons over datasets pair up."""
    return {k: float(np.mean(v)) for k, v in seed_values(rows, key).items()}


def dataset_intervals(rows: Sequence[dict[str, Any]], key: str = "error",
                      confidence: float = 0.95) -> list[dict[str, Any]]:
    """Per (dataset, method): the mean over seeds with its Student-t interval (Figure 6)."""
    out = []
    for (dataset, method), values in sorted(seed_values(rows, key).items()):
        mean, low, high = mean_ci(values, confidence)
        out.append({"dataset": dataset, "method": method, "seeds": len(values),
                    "mean": mean, "ci_low": low, "ci_high": high})
    return out


def error_matrix(rows: Sequence[dict[str, Any]], key: str = "error",
                 complete: bool = True) -> tuple[list[str], list[str], np.ndarray]:
    """``(methods, datasets, M)`` with ``M[i, j]`` the seed-mean of method i on dataset j; with
    ``complete`` only the datasets every method has results on (NaN-free), else NaN for gaps."""
    means = seed_means(rows, key)
    methods, datasets = methods_of(rows), datasets_of(rows)
    if complete:
        datasets = [d for d in datasets if all((d, m) in means for m in methods)]
    matrix = np.array([[means.get((d, m), math.nan) for d in datasets] for m in methods],
                      dtype=float).reshape(len(methods), len(datasets))
    return methods, datasets, matrix


def wilcoxon_less(reference: Sequence[float], other: Sequence[float]) -> dict[str, Any]:
    """One-tailed Wilcoxon signed-rank test that ``reference`` is lower than ``other`` (paired):
    ``p_value``; ``p_value_greater`` tests the other direction (``other`` lower). Also the mean
    paired difference ``reference - other`` with its 95% t-interval (NaN for one pair).

    Zero differences are dropped (SciPy's ``zero_method="wilcox"``); with no non-zero difference
    there is nothing to test and the p-values are NaN.
    """
    diff = np.asarray(reference, dtype=float) - np.asarray(other, dtype=float)
    nonzero = int(np.count_nonzero(diff))
    mean, low, high = mean_ci(diff) if len(diff) else (math.nan,) * 3
    found = {"n": len(diff), "nonzero": nonzero, "mean_difference": mean,
             "difference_low": low if len(diff) > 1 else math.nan,
             "difference_high": high if len(diff) > 1 else math.nan}
    if nonzero == 0:
        return {**found, "statistic": math.nan, "p_value": math.nan, "p_value_greater": math.nan}
    result = stats.wilcoxon(diff, alternative="less")
    greater = stats.wilcoxon(diff, alternative="greater")  # the other direction: other is lower
    return {**found, "statistic": float(result.statistic), "p_value": float(result.pvalue),
            "p_value_greater": float(greater.pvalue)}


def wilcoxon_against(rows: Sequence[dict[str, Any]], reference: str = "E",
                     key: str = "error") -> dict[str, dict[str, Any]]:
    """``{method: test}``: is ``reference`` better (lower ``key``) than each other method, paired
    per dataset on the seed-mean, over the datasets both have results on."""
    means = seed_means(rows, key)
    out = {}
    for method in methods_of(rows):
        if method == reference:
            continue
        pairs = [(means[(d, reference)], means[(d, method)]) for d in datasets_of(rows)
                 if (d, reference) in means and (d, method) in means]
        if pairs:
            ref, oth = zip(*pairs)
            out[method] = wilcoxon_less(ref, oth)
        else:
            out[method] = {"n": 0, "nonzero": 0, "statistic": math.nan, "p_value": math.nan,
                           "p_value_greater": math.nan, "mean_difference": math.nan,
                           "difference_low": math.nan, "difference_high": math.nan}
    return out


def method_summary(rows: Sequence[dict[str, Any]], reference: str = "E",
                   key: str = "error") -> list[dict[str, Any]]:
    """Per method: mean and median over datasets of the seed-mean error, the mean cost columns
    over its cells (NaN when never measured, e.g. no GPU), and the Wilcoxon test of
    ``reference`` against it."""
    means = seed_means(rows, key)
    tests = wilcoxon_against(rows, reference, key)
    out = []
    for method in methods_of(rows):
        errors = [v for (d, m), v in means.items() if m == method]
        cells = [r for r in rows if str(r["method"]) == method]
        row = {"method": method, "datasets": len(errors), "cells": len(cells),
               f"mean_{key}": float(np.mean(errors)) if errors else math.nan,
               f"median_{key}": float(np.median(errors)) if errors else math.nan}
        for cost_key in COST_KEYS:
            values = _finite(r.get(cost_key) for r in cells)
            row[cost_key] = float(np.mean(values)) if values else math.nan
        test = tests.get(method, {})
        row.update({f"wilcoxon_{reference}_less_n": test.get("n", math.nan),
                    f"wilcoxon_{reference}_less_statistic": test.get("statistic", math.nan),
                    f"wilcoxon_{reference}_less_p": test.get("p_value", math.nan),
                    f"wilcoxon_{reference}_greater_p": test.get("p_value_greater", math.nan),
                    f"{reference}_minus_mean": test.get("mean_difference", math.nan),
                    f"{reference}_minus_low": test.get("difference_low", math.nan),
                    f"{reference}_minus_high": test.get("difference_high", math.nan)})
        out.append(row)
    return out
