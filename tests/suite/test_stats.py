"""The small statistics of summaries and races, against values computed by hand."""

import itertools
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from suite.stats import mean_ci, median_with_failures, ratio_of_medians_ci


def test_mean_ci_is_students_t_interval():
    mean, low, high = mean_ci([1.0, 2.0, 3.0, 4.0])
    half = 3.182446305284263 * math.sqrt(5 / 3) / 2  # t(0.975, 3) * s / sqrt(n), s^2 = 5/3
    assert mean == 2.5 and low == pytest.approx(2.5 - half) and high == pytest.approx(2.5 + half)
    assert math.isnan(mean_ci([7.0])[1]) and math.isnan(mean_ci([])[0])


def test_a_seed_that_never_reaches_the_target_counts_as_infinitely_slow():
    assert median_with_failures([30.0, 10.0, math.nan]) == 30.0  # sorted: 10, 30, inf
    assert median_with_failures([30.0, math.nan, math.nan]) == math.inf  # most seeds never got there
    assert math.isnan(median_with_failures([]))


def exact_bootstrap_ratios(x, y):
    """Every resample of two samples of three, equally likely: the exact bootstrap distribution."""
    medians = lambda v: [float(np.median(r)) for r in itertools.product(v, repeat=len(v))]  # noqa: E731
    return np.sort([a / b for a in medians(x) for b in medians(y)])


def test_the_ratio_interval_matches_the_exact_bootstrap_distribution():
    x, y = [10.0, 12.0, 20.0], [20.0, 30.0, 31.0]
    ratio, low, high = ratio_of_medians_ci(x, y, n_resamples=20_000)
    assert ratio == pytest.approx(12 / 30)
    exact = exact_bootstrap_ratios(x, y)
    q = lambda p: float(np.quantile(exact, p))  # noqa: E731
    assert q(0.015) <= low <= q(0.035) and q(0.965) <= high <= q(0.985)


def test_identical_seeds_give_a_point_interval_and_failures_an_open_one():
    assert ratio_of_medians_ci([5.0, 5.0, 5.0], [10.0, 10.0, 10.0]) == (0.5, 0.5, 0.5)
    ratio, low, high = ratio_of_medians_ci([10.0, 12.0, 14.0, 11.0, math.nan], [20.0, 25.0, 30.0, 22.0, 28.0])
    assert ratio == 12 / 25 and low < ratio and high == math.inf  # resamples with 3 failures of 5 are unbounded


@settings(max_examples=30, deadline=None)
@given(st.lists(st.floats(1, 1e4), min_size=2, max_size=8), st.lists(st.floats(1, 1e4), min_size=2, max_size=8))
def test_the_interval_is_ordered_and_within_the_extreme_ratios(x, y):
    """Every resample's medians lie between its sample's extremes, so every bootstrap ratio does too."""
    ratio, low, high = ratio_of_medians_ci(x, y, n_resamples=500)
    assert low <= high
    lowest, highest = min(x) / max(y), max(x) / min(y)
    for value in (ratio, low, high):
        assert lowest * (1 - 1e-12) <= value <= highest * (1 + 1e-12)


def test_p_greater_against_scipys_tests_and_the_exact_cases():
    from scipy import stats as scipy_stats

    from suite.stats import p_greater

    x, y = [3.0, 4.0, 5.0, 6.0], [1.0, 2.5, 3.0]
    assert p_greater(x, y) == pytest.approx(scipy_stats.ttest_ind(x, y, equal_var=False, alternative="greater").pvalue)
    # a deterministic reference (every seed alike on the shared evaluation episodes) is a constant
    assert p_greater(x, [4.0] * 10) == pytest.approx(scipy_stats.ttest_1samp(x, 4.0, alternative="greater").pvalue)
    assert p_greater([91.2] * 5, [86.8] * 10) == 0.0 and p_greater([86.8] * 5, [86.8] * 10) == 1.0
    # one seed of a method tells nothing about seed noise, whatever the reference
    assert math.isnan(p_greater([5.0], [1.0, 3.0, 2.0])) and math.isnan(p_greater([5.0], [4.0]))
    assert math.isnan(p_greater([], [1.0]))
    assert p_greater([1.0, 2.0, 3.0], [10.0, 11.0]) > 0.99
