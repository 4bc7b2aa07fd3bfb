"""The admissible set of a box cut by a sum: exact projection against an independent bisection,
KKT conditions, idempotence, batching, errors, and sampling uniform over the polytope."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from envs.masking import AdmissibleSet, BoundedSumSet, project_bounded_sum


def bisection_projection(y, lower, upper, total, iterations=200):
    """Reference for one row: bisection on the dual variable tau of sum(clip(y - tau, l, u)) = total."""
    lo, hi = np.min(y - upper) - 1.0, np.max(y - lower) + 1.0  # g(lo) = sum(upper), g(hi) = sum(lower)
    for _ in range(iterations):
        mid = (lo + hi) / 2
        if np.clip(y - mid, lower, upper).sum() > total:
            lo = mid
        else:
            hi = mid
    tau = (lo + hi) / 2
    return np.clip(y - tau, lower, upper), tau


@st.composite
def problems(draw, max_n=16):
    """A feasible set {l <= a <= u, sum(a) = c} and a point to project (inside or far outside)."""
    n = draw(st.integers(1, max_n))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    lower = rng.uniform(-2, 1, n)
    upper = lower + rng.uniform(0, 2, n) * (rng.random(n) > 0.1)  # some coordinates fixed (l == u)
    total = float(lower.sum() + draw(st.floats(0, 1)) * (upper.sum() - lower.sum()))
    y = rng.normal(0, draw(st.sampled_from([0.01, 1.0, 10.0])), n)
    return y, lower, upper, total


@settings(max_examples=300, deadline=None)
@given(problem=problems())
def test_projection_matches_bisection_and_satisfies_kkt(problem):
    y, lower, upper, total = problem
    p = project_bounded_sum(y, lower, upper, total)
    reference, tau = bisection_projection(y, lower, upper, total)
    # Feasible.
    assert np.all(p >= lower) and np.all(p <= upper)
    assert abs(p.sum() - total) <= 1e-9 * (1 + abs(total) + np.abs(p).sum())
    # The same point as the independent reference.
    np.testing.assert_allclose(p, reference, atol=1e-9)
    # KKT: one multiplier tau with p = clip(y - tau): free coordinates share y - p, coordinates at a
    # bound are pushed there (y - p <= tau at the lower bound, >= tau at the upper bound).
    residual = y - p
    free = (p > lower + 1e-9) & (p < upper - 1e-9)
    assert np.allclose(residual[free], tau, atol=1e-7)
    at_lower = (p <= lower + 1e-12) & (lower < upper)
    at_upper = (p >= upper - 1e-12) & (lower < upper)
    assert np.all(residual[at_lower & ~free] <= tau + 1e-7)
    assert np.all(residual[at_upper & ~free] >= tau - 1e-7)
    # Idempotent.
    np.testing.assert_allclose(project_bounded_sum(p, lower, upper, total), p, atol=1e-12)


@settings(max_examples=100, deadline=None)
@given(problem=problems(max_n=8), seed=st.integers(0, 2**32 - 1))
def test_projection_is_nearer_than_any_admissible_point(problem, seed):
    """The variational inequality <y - p, s - p> <= 0 for admissible s, so |y - p| <= |y - s|."""
    y, lower, upper, total = problem
    admissible = BoundedSumSet(lower, upper, total)
    p = admissible.project(y)
    try:
        others = BoundedSumSet(np.broadcast_to(lower, (256, len(y))), np.broadcast_to(upper, (256, len(y))),
                               total).sample(np.random.default_rng(seed), max_rounds=200)
    except ValueError:  # a thin set that rejection sampling cannot fill quickly: nothing to compare with
        return
    assert np.all((others - p) @ (y - p) <= 1e-9 * (1 + np.abs(y).sum()))
    assert np.all(np.linalg.norm(y - p) <= np.linalg.norm(y - others, axis=-1) + 1e-12)


@settings(max_examples=50, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), batch=st.sampled_from([(5,), (3, 4), (2, 1, 3)]))
def test_projection_batches_over_leading_axes_like_row_by_row(seed, batch):
    rng = np.random.default_rng(seed)
    n = 13
    w = rng.dirichlet(np.ones(n), size=batch)
    y = rng.normal(0, 1, (*batch, n))
    batched = project_bounded_sum(y, -w, 1 - w, 0.0)
    rows = np.stack([project_bounded_sum(yi, -wi, 1 - wi, 0.0) for yi, wi in zip(y.reshape(-1, n), w.reshape(-1, n))])
    np.testing.assert_allclose(batched.reshape(-1, n), rows, atol=0)
    assert batched.dtype == np.float64


def test_projection_computes_in_float64_whatever_the_input():
    w = np.full(13, 1 / 13)
    p = project_bounded_sum(np.linspace(-1, 1, 13, dtype=np.float32), -w, 1 - w)
    assert p.dtype == np.float64 and abs(p.sum()) < 1e-14


@pytest.mark.parametrize("values, lower, upper, total, message", [
    ([np.nan, 0.0], [-1, -1], [1, 1], 0.0, "non-finite"),
    ([np.inf, 0.0], [-1, -1], [1, 1], 0.0, "non-finite"),
    ([0.0, 0.0], [1, -1], [0, 1], 0.0, "lower bound exceeds"),
    ([0.0, 0.0], [0, 0], [1, 1], 3.0, "outside [sum(lower), sum(upper)]"),
])
def test_projection_rejects_bad_input_with_one_line(values, lower, upper, total, message):
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("(", r"\(").replace(")", r"\)")):
        project_bounded_sum(np.array(values), np.array(lower, float), np.array(upper, float), total)


def test_bounded_sum_set_is_an_admissible_set_with_its_own_tolerance():
    w = np.array([[0.5, 0.5, 0.0]])
    admissible = BoundedSumSet(-w, 1 - w, 0.0, atol=1e-5)
    assert isinstance(admissible, AdmissibleSet)
    near = np.array([[0.1, -0.1 + 5e-6, 0.0]])
    assert admissible.contains(near)[0] and not admissible.contains(near, atol=1e-7)[0]
    assert not admissible.contains(np.array([[0.0, 0.0, -1e-3]]))[0]  # would make a weight negative
    assert not admissible.contains(np.array([[np.nan, 0.0, 0.0]]))[0]
    # target 2 holds nothing, so the excess 0.3 is taken half from target 0, half from target 1
    assert admissible.distance(np.array([[0.3, 0.0, 0.0]]))[0] == pytest.approx(0.15 * np.sqrt(2))


def test_sample_is_uniform_on_the_simplex_when_upper_bounds_are_implied():
    """w + a uniform on the simplex: each weight is Beta(1, n - 1), the pairs' sum Beta(2, n - 2)."""
    n, count = 13, 20_000
    w = np.random.default_rng(0).dirichlet(np.ones(n))
    batch_w = np.broadcast_to(w, (count, n))
    a = BoundedSumSet(-batch_w, 1 - batch_w, 0.0).sample(np.random.default_rng(1))
    allocation = w + a
    assert stats.kstest(allocation[:, 3], stats.beta(1, n - 1).cdf).pvalue > 1e-3
    assert stats.kstest(allocation[:, 0] + allocation[:, 7], stats.beta(2, n - 2).cdf).pvalue > 1e-3


def test_sample_is_uniform_when_upper_bounds_cut_the_simplex():
    """n = 2: the set is a segment, so a_0 must be uniform on [max(l0, c - u1), min(u0, c - l1)]."""
    lower, upper, total, count = np.array([-1.0, -0.5]), np.array([0.3, 2.0]), 0.5, 20_000
    admissible = BoundedSumSet(np.broadcast_to(lower, (count, 2)), np.broadcast_to(upper, (count, 2)), total)
    a = admissible.sample(np.random.default_rng(2))
    assert admissible.contains(a).all()
    lo, hi = max(lower[0], total - upper[1]), min(upper[0], total - lower[1])
    assert stats.kstest(a[:, 0], stats.uniform(lo, hi - lo).cdf).pvalue > 1e-3


def test_sample_says_when_rejection_cannot_fill_a_thin_set():
    lower, upper = np.zeros((1, 10)), np.full((1, 10), 0.1001)  # a tiny corner of the simplex of total 1
    with pytest.raises(ValueError, match="rejected 5 uniform draws"):
        BoundedSumSet(lower, upper, 1.0).sample(np.random.default_rng(0), max_rounds=5)
