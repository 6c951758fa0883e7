import math

import pytest

from rrrnet.report.stats import mean_ci


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
