"""Speed of the sum-to-zero projection at batch 4096, against baselines in the same run, at the seed's 13
targets and at the largest level's 1,000 (``sum_to_zero-l``).

Run with ``pytest --benchmark`` (skipped otherwise). ``extra_info["actions_per_second"]`` is the
rate. Baselines: the same exact projection called row by row (what a per-env step would do), and
a 60-step bisection on the dual variable, batched (the usual iterative method).
"""

import numpy as np
import pytest

from envs.masking import BoundedSumSet, project_bounded_sum

BATCH = 4096


def bisection(y, lower, upper, total, iterations=60):
    """Batched bisection on tau of sum(clip(y - tau, lower, upper)) = total (to float64 resolution)."""
    lo = (y - upper).min(axis=-1) - 1.0
    hi = (y - lower).max(axis=-1) + 1.0
    for _ in range(iterations):
        mid = (lo + hi) / 2
        above = np.clip(y - mid[:, None], lower, upper).sum(axis=-1) > total
        lo, hi = np.where(above, mid, lo), np.where(above, hi, mid)
    return np.clip(y - ((lo + hi) / 2)[:, None], lower, upper)


@pytest.mark.parametrize("n", [13, 1000])
@pytest.mark.parametrize("impl", ["exact_batched", "exact_per_row", "bisection_batched"])
@pytest.mark.benchmark(group="projection")
def test_sum_to_zero_projection(benchmark, impl, n):
    rng = np.random.default_rng(0)
    weights = rng.dirichlet(np.ones(n), size=BATCH)
    admissible = BoundedSumSet(-weights, 1 - weights, 0.0)
    actions = rng.normal(0, 0.3 * np.sqrt(13 / n), (BATCH, n))  # moves of the same size per weight
    if impl == "exact_batched":
        result = benchmark(admissible.project, actions)
    elif impl == "exact_per_row":
        result = benchmark(lambda: np.stack([project_bounded_sum(a, -w, 1 - w, 0.0) for a, w in zip(actions, weights)]))
    else:
        result = benchmark(bisection, actions, -weights, 1 - weights, np.zeros(BATCH))
    np.testing.assert_allclose(result, admissible.project(actions), atol=1e-9)
    benchmark.extra_info["actions_per_second"] = BATCH / benchmark.stats["mean"]
