"""Small statistics used by summaries and reports."""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence

import numpy as np
from scipy import stats

__all__ = ["mean_ci", "median_with_failures", "ratio_of_medians_ci", "p_greater", "p_differ", "welch_interval"]


def mean_ci(values: Sequence[float] | np.ndarray, confidence: float = 0.95) -> tuple[float, float, float]:
    """Mean and Student-t confidence interval ``(mean, low, high)`` (``scipy.stats.t.interval`` around the mean
    with the standard error of the mean); NaN bounds for fewer than 2 values, the mean itself for values that
    do not vary (scipy's t needs a positive scale)."""
    x = np.asarray(values, dtype=np.float64)
    x = x[~np.isnan(x)]
    if x.size == 0:
        return (math.nan, math.nan, math.nan)
    mean = float(x.mean())
    if x.size < 2:
        return (mean, math.nan, math.nan)
    sem = float(stats.sem(x))
    if sem == 0:
        return (mean, mean, mean)
    low, high = stats.t.interval(confidence, x.size - 1, loc=mean, scale=sem)
    return (mean, float(low), float(high))


def median_with_failures(values: Sequence[float] | np.ndarray) -> float:
    """The median of times to a target over seeds, a seed that never reached it counting as infinitely slow
    (NaN in ``values``): the median is finite only when more than half the seeds reached the target."""
    x = np.asarray(values, dtype=np.float64)
    if x.size == 0:
        return math.nan
    return float(np.median(np.where(np.isnan(x), np.inf, x)))


def ratio_of_medians_ci(values: Sequence[float] | np.ndarray, baseline: Sequence[float] | np.ndarray,
                        confidence: float = 0.95, n_resamples: int = 10_000,
                        seed: int = 0) -> tuple[float, float, float]:
    """``median(values) / median(baseline)`` and its percentile bootstrap interval (scipy.stats.bootstrap, the
    two samples resampled independently: different seeds of different trainers are not paired).

    Medians are :func:`median_with_failures` (NaN: a seed that never reached the target). A resample whose
    medians are both infinite has no ratio and counts as infinitely slow, so an interval reaching ``inf``
    says the seeds cannot bound the ratio from above.
    """
    x, y = np.asarray(values, dtype=np.float64), np.asarray(baseline, dtype=np.float64)
    if x.size == 0 or y.size == 0:
        return (math.nan, math.nan, math.nan)

    def ratio(a: np.ndarray, b: np.ndarray, axis: int = -1) -> np.ndarray:
        top = np.median(np.where(np.isnan(a), np.inf, a), axis=axis)
        bottom = np.median(np.where(np.isnan(b), np.inf, b), axis=axis)
        with np.errstate(invalid="ignore", divide="ignore"):
            out = top / bottom
        return np.where(np.isnan(out), np.inf, out)

    point = float(ratio(x, y))
    if x.size < 2 and y.size < 2:
        return (point, math.nan, math.nan)
    with warnings.catch_warnings():  # scipy warns when every resample gives one value (identical seeds)
        warnings.simplefilter("ignore")
        result = stats.bootstrap((x, y), ratio, paired=False, vectorized=True, confidence_level=confidence,
                                 n_resamples=n_resamples, method="percentile", rng=np.random.default_rng(seed))
    return (point, float(result.confidence_interval.low), float(result.confidence_interval.high))


def p_greater(values: Sequence[float] | np.ndarray, reference: Sequence[float] | np.ndarray) -> float:
    """One-sided p-value of "``values`` (a method's seeds) average more than ``reference`` (a reference's)".

    Welch's t-test (``scipy.stats.ttest_ind(equal_var=False, alternative="greater")``). A reference whose
    seeds all score alike (a deterministic policy on the shared evaluation episodes) is a constant: the
    one-sample t-test against it. When neither side's seeds vary (two or more each) the comparison is exact
    (0 if greater, else 1). A method with one seed gives NaN: one seed cannot tell noise from difference.
    """
    x = np.asarray(values, dtype=np.float64)
    y = np.asarray(reference, dtype=np.float64)
    x, y = x[~np.isnan(x)], y[~np.isnan(y)]
    if x.size < 2 or y.size == 0:
        return math.nan
    x_varies = x.size > 1 and np.ptp(x) > 0
    y_varies = y.size > 1 and np.ptp(y) > 0
    if not x_varies and not y_varies:  # equal up to rounding of the means is not greater
        return 0.0 if x.mean() > y.mean() and not math.isclose(x.mean(), y.mean(), rel_tol=1e-12) else 1.0
    if not y_varies:
        return float(stats.ttest_1samp(x, y.mean(), alternative="greater").pvalue)
    return float(stats.ttest_ind(x, y, equal_var=False, alternative="greater").pvalue)


def p_differ(values: Sequence[float] | np.ndarray, other: Sequence[float] | np.ndarray) -> float:
    """Two-sided p-value of "``values`` and ``other`` (two methods' seeds) average differently".

    Welch's t-test (``scipy.stats.ttest_ind(equal_var=False)``). A side whose seeds all score alike is a
    constant: the one-sample t-test of the other side against it. When neither side varies the comparison is
    exact (0 if the means differ beyond rounding, else 1). Fewer than two seeds on either side gives NaN: one
    seed cannot tell noise from difference.
    """
    x = np.asarray(values, dtype=np.float64)
    y = np.asarray(other, dtype=np.float64)
    x, y = x[~np.isnan(x)], y[~np.isnan(y)]
    if x.size < 2 or y.size < 2:
        return math.nan
    x_varies, y_varies = np.ptp(x) > 0, np.ptp(y) > 0
    if not x_varies and not y_varies:
        return 1.0 if math.isclose(x.mean(), y.mean(), rel_tol=1e-12) else 0.0
    if not y_varies:
        return float(stats.ttest_1samp(x, y.mean()).pvalue)
    if not x_varies:
        return float(stats.ttest_1samp(y, x.mean()).pvalue)
    return float(stats.ttest_ind(x, y, equal_var=False).pvalue)


def welch_interval(estimate: float, parts: Sequence[tuple[float, int]],
                   confidence: float = 0.95) -> tuple[float, float]:
    """Welch's interval of a sum or difference of independent means, each given as (variance of its mean,
    seeds): Welch-Satterthwaite degrees of freedom. (estimate, estimate) where no part varies; NaN where a
    part has no variance (one seed)."""
    if any(math.isnan(v) for v, _ in parts):
        return math.nan, math.nan
    total = sum(v for v, _ in parts)
    if total == 0:
        return estimate, estimate
    dof = total ** 2 / sum(v ** 2 / (n - 1) for v, n in parts if v > 0)
    half = stats.t.ppf(0.5 + confidence / 2, dof) * math.sqrt(total)
    return estimate - half, estimate + half
