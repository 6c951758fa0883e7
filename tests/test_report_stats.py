"""rrrnet.report.stats (the benchmark's statistics) against hand-computed values."""
import math

import numpy as np
import pytest

from rrrnet.report.stats import (dataset_intervals, error_matrix, mean_ci, method_summary,
                                 seed_means, wilcoxon_against, wilcoxon_less)

T_975_2 = 4.302652729911275  # Student t quantile, 0.975, 2 degrees of freedom


def rows_from(errors: dict[tuple[str, str], list[float]], **costs) -> list[dict]:
    """Rows of a grid from ``{(dataset, method): [error of seed 0, 1, ...]}``."""
    return [{"dataset": d, "method": m, "seed": s, "error": e,
             **{k: v[m] for k, v in costs.items()}}
            for (d, m), values in errors.items() for s, e in enumerate(values)]


def test_dataset_interval_is_the_t_interval_over_seeds():
    rows = rows_from({("d1", "E"): [0.1, 0.2, 0.3], ("d1", "A"): [0.4]})
    by_method = {r["method"]: r for r in dataset_intervals(rows)}
    half = T_975_2 * 0.1 / math.sqrt(3)  # sd 0.1, sem 0.1 / sqrt(3)
    e = by_method["E"]
    assert e["seeds"] == 3
    assert (e["mean"], e["ci_low"], e["ci_high"]) == pytest.approx((0.2, 0.2 - half, 0.2 + half))
    a = by_method["A"]  # one seed: no spread to estimate
    assert (a["mean"], a["ci_low"], a["ci_high"]) == pytest.approx((0.4, 0.4, 0.4))


def test_method_mean_and_median_are_over_datasets_of_seed_means():
    # E's seed means: d1 0.1, d2 0.2, d3 0.6 -> mean 0.3, median 0.2.
    rows = rows_from({("d1", "E"): [0.0, 0.2], ("d2", "E"): [0.1, 0.3], ("d3", "E"): [0.6, 0.6],
                      ("d1", "A"): [0.5, 0.5]},
                     params={"E": 8, "A": 60}, cpu_ms={"E": 2.0, "A": float("nan")})
    summary = {r["method"]: r for r in method_summary(rows)}
    e = summary["E"]
    assert (e["datasets"], e["cells"]) == (3, 6)
    assert e["mean_error"] == pytest.approx(0.3)
    assert e["median_error"] == pytest.approx(0.2)
    assert e["params"] == 8 and e["cpu_ms"] == 2.0
    assert math.isnan(e["gpu_ms"])          # never measured
    assert math.isnan(summary["A"]["cpu_ms"])
    assert math.isnan(e["wilcoxon_E_less_p"])  # no test of E against itself
    # A is paired with E on d1 only: one negative difference, exact p = 1/2.
    assert summary["A"]["wilcoxon_E_less_n"] == 1
    assert summary["A"]["wilcoxon_E_less_p"] == pytest.approx(0.5)


def test_wilcoxon_all_differences_negative_gives_exact_one_over_32():
    result = wilcoxon_less([0.10, 0.20, 0.30, 0.40, 0.50], [0.11, 0.22, 0.33, 0.44, 0.55])
    # Every sign pattern of 5 ranks is equally likely under H0; only "all negative" has T+ = 0.
    assert result["statistic"] == 0.0
    assert result["p_value"] == pytest.approx(1 / 32)
    assert (result["n"], result["nonzero"]) == (5, 5)


def test_wilcoxon_one_positive_difference_of_rank_one():
    # Differences +0.01, -0.02, -0.03, -0.04, -0.05: T+ = 1 (rank of +0.01); P(T+ <= 1) counts
    # the sign patterns {} and {1}: 2/32.
    reference = [0.21, 0.18, 0.27, 0.36, 0.45]
    other = [0.20, 0.20, 0.30, 0.40, 0.50]
    result = wilcoxon_less(reference, other)
    assert result["statistic"] == pytest.approx(1.0)
    assert result["p_value"] == pytest.approx(2 / 32)
    # The other direction ("other" is the lower one): P(T+ >= 1) = 1 - P(T+ = 0) = 31/32.
    assert result["p_value_greater"] == pytest.approx(31 / 32)
    # Mean paired difference (reference - other) with its 95% t-interval (t_0.975,4 = 2.776).
    diff = np.array(reference) - np.array(other)
    half = 2.7764451 * diff.std(ddof=1) / np.sqrt(5)
    assert result["mean_difference"] == pytest.approx(diff.mean())
    assert (result["difference_low"], result["difference_high"]) == pytest.approx(
        (diff.mean() - half, diff.mean() + half), rel=1e-6)


def test_wilcoxon_without_any_difference_has_no_p_value():
    result = wilcoxon_less([0.1, 0.2], [0.1, 0.2])
    assert result["nonzero"] == 0 and math.isnan(result["p_value"])


def test_wilcoxon_against_pairs_seed_means_per_dataset():
    # E beats C on five datasets by 1..5 points of seed-mean error; D lacks d5 (paired on 4).
    errors = {}
    for i in range(1, 6):
        errors[(f"d{i}", "E")] = [0.30, 0.30]
        errors[(f"d{i}", "C")] = [0.30 + i / 100 - 0.005, 0.30 + i / 100 + 0.005]
        if i < 5:
            errors[(f"d{i}", "D")] = [0.30 - i / 100]   # D better everywhere
    tests = wilcoxon_against(rows_from(errors), reference="E")
    assert set(tests) == {"C", "D"}
    assert tests["C"]["n"] == 5 and tests["C"]["p_value"] == pytest.approx(1 / 32)
    # E worse on all 4 pairs: T+ = 1+2+3+4 = 10, the maximum; P(T+ <= 10) = 1.
    assert tests["D"]["n"] == 4 and tests["D"]["p_value"] == pytest.approx(1.0)
    # ... and D better on all 4: the other direction's exact p is 1/16.
    assert tests["D"]["p_value_greater"] == pytest.approx(1 / 16)
    assert tests["D"]["mean_difference"] == pytest.approx(0.025)   # (1+2+3+4)/4 points


def test_error_matrix_keeps_complete_datasets_and_seed_means():
    rows = rows_from({("d1", "A"): [0.1, 0.3], ("d1", "E"): [0.4], ("d2", "A"): [0.5]})
    assert seed_means(rows)[("d1", "A")] == pytest.approx(0.2)
    methods, datasets, matrix = error_matrix(rows)
    assert (methods, datasets) == (["A", "E"], ["d1"])
    np.testing.assert_allclose(matrix, [[0.2], [0.4]])
    _, datasets, matrix = error_matrix(rows, complete=False)
    assert datasets == ["d1", "d2"] and math.isnan(matrix[1, 1])


def test_mean_ci_matches_hand_computed_t_interval():
    # values 1, 2, 3: mean 2, sd 1, sem 1/sqrt(3), t(0.975, 2) = 4.302652729911275
    mean, low, high = mean_ci([1.0, 2.0, 3.0])
    half = 4.302652729911275 / math.sqrt(3)
    assert mean == pytest.approx(2.0)
    assert (low, high) == pytest.approx((2.0 - half, 2.0 + half))


def test_mean_ci_single_value_and_nan():
    assert mean_ci([0.25, float("nan")]) == (0.25, 0.25, 0.25)
    with pytest.raises(ValueError):
        mean_ci([])


def test_crowded_labels_of_the_cost_figure_are_moved_apart():
    import matplotlib.pyplot as plt
    from rrrnet.report.benchmark_figures import _labelled_scatter, _move_labels_apart

    def overlaps(ax):
        renderer = ax.figure.canvas.get_renderer()
        boxes = [t.get_window_extent(renderer) for t in ax.texts]
        return sum(a.overlaps(b) for i, a in enumerate(boxes) for b in boxes[i + 1:])
    # C, D and E of a benchmark: 8 M parameters each, errors 0.2 points apart.
    points = [(8.04, 19.0, "C", "red", True), (8.04, 18.8, "D", "purple", True),
              (8.00, 18.6, "E", "orange", True), (58.2, 18.3, "B", "green", True),
              (58.2, 36.0, "B (paper)", "green", False), (58.2, 35.8, "A (paper)", "blue", False)]
    fig, ax = plt.subplots(figsize=(5, 4))
    _labelled_scatter(ax, points)
    fig.tight_layout()
    assert overlaps(ax) >= 2          # as drawn, the labels of C, D, E and the paper's A, B collide
    _move_labels_apart(ax)
    assert overlaps(ax) == 0
    assert [t.get_text().strip() for t in ax.texts] == [p[2] for p in points]
    plt.close(fig)
