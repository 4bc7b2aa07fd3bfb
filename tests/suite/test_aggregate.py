"""Statistics across tasks (suite.aggregate) against rliable's own numbers and values computed by hand, the
stratification included: a task with many runs must not outweigh one with few."""

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from suite import aggregate
from suite.aggregate import gap_to_anchor, iqm, median_of_task_means, weighted_iqm, weighted_mean

# rliable's numbers for two runs x tasks matrices (5 runs of 4 tasks, scores in percent), computed once in a
# scratch environment (rliable 1.2.0 does not import on pandas 3): Python 3.11.7, rliable 1.2.0, pandas 2.3.3,
# numpy 2.4.6, scipy 1.17.1, arch 7.2.0, with
#   from rliable import metrics
#   metrics.aggregate_median(X), metrics.aggregate_iqm(X), metrics.aggregate_mean(X),
#   metrics.aggregate_optimality_gap(X, gamma=100), metrics.probability_of_improvement(X, Y)
# on X = RLIABLE_X and Y = RLIABLE_Y below (rows are runs, columns tasks), printed with repr().
RLIABLE_X = 100 * np.array([[0.10, 0.55, 0.90, 0.30], [0.20, 0.65, 0.80, 0.35], [0.15, 0.50, 1.10, 0.25],
                            [0.40, 0.60, 0.95, 0.05], [0.05, 0.70, 0.85, 0.45]])
RLIABLE_Y = 100 * np.array([[0.12, 0.50, 0.70, 0.31], [0.22, 0.45, 0.75, 0.33], [0.05, 0.52, 1.00, 0.20],
                            [0.30, 0.61, 0.65, 0.15], [0.10, 0.40, 0.80, 0.40]])
RLIABLE = {"X": {"median": 44.0, "iqm": 47.5, "mean": 49.5, "gap_to_anchor": 51.0},
           "Y": {"median": 38.7, "iqm": 40.4, "mean": 42.800000000000004, "gap_to_anchor": 57.2}}
RLIABLE_P_X_OVER_Y = 0.6699999999999999


def tasks_of(matrix: np.ndarray) -> list[np.ndarray]:
    return [matrix[:, task] for task in range(matrix.shape[1])]


@pytest.mark.parametrize("name, matrix", [("X", RLIABLE_X), ("Y", RLIABLE_Y)])
def test_with_equal_runs_per_task_the_statistics_are_rliables(name, matrix):
    for metric, expected in RLIABLE[name].items():
        assert aggregate.METRICS[metric](tasks_of(matrix)) == pytest.approx(expected, rel=1e-12), metric


def test_the_probability_of_improvement_is_rliables():
    rows = [(f"t{task}", method, method, run, value) for method, matrix in (("x", RLIABLE_X), ("y", RLIABLE_Y))
            for run in range(5) for task, value in enumerate(matrix[run])]
    table = aggregate.probability_of_improvement(raw(rows), n_resamples=50).set_index(["method", "versus"])
    assert table.loc[("x", "y"), "probability_of_improvement"] == pytest.approx(RLIABLE_P_X_OVER_Y, rel=1e-12)


def test_the_median_is_of_task_means_and_the_iqm_trims_whole_scores():
    a, b, c = np.array([0.0, 0.0, 90.0]), np.array([50.0, 50.0, 50.0]), np.array([60.0, 70.0, 80.0])
    assert median_of_task_means([a, b, c]) == 50.0  # task means 30, 50, 70; the pooled runs' median is 50 too
    assert median_of_task_means([a, c]) == 50.0     # task means 30, 70 (the pooled median would be 65)
    pooled = np.concatenate([a, b, c])              # 9 scores: trim_mean drops int(0.25 * 9) = 2 from each end
    assert iqm([a, b, c]) == pytest.approx(stats.trim_mean(pooled, 0.25)) == pytest.approx((50 * 3 + 60 + 70) / 5)
    assert weighted_iqm([a, b, c]) != pytest.approx(iqm([a, b, c]))  # the fractional trim differs here


def test_the_task_interval_resamples_tasks_the_run_interval_does_not():
    one_run_each = [np.array([0.0]), np.array([100.0]), np.array([50.0])]
    low, high = aggregate.stratified_interval(one_run_each, weighted_mean)
    assert float(low) == float(high) == 50.0  # nothing within a task to resample: the tasks are taken as fixed
    low, high = aggregate.task_interval(one_run_each, weighted_mean, n_resamples=4000)
    assert float(low) < 20.0 and float(high) > 80.0  # which tasks were drawn is the uncertainty now
    alike = [np.array([40.0, 60.0]), np.array([40.0, 60.0])]
    low, high = aggregate.task_interval(alike, weighted_mean, n_resamples=2000)
    assert 40.0 <= float(low) < 50.0 < float(high) <= 60.0  # runs are still resampled within the drawn tasks


def test_holm_by_hand():
    # sorted 0.01, 0.02, 0.04 (and NaN left alone): 3 x 0.01, max(0.03, 2 x 0.02), max(0.04, 1 x 0.04)
    adjusted = aggregate.holm([0.04, 0.01, float("nan"), 0.02])
    assert adjusted[[0, 1, 3]].tolist() == pytest.approx([0.04, 0.03, 0.04])
    assert np.isnan(adjusted[2])
    assert aggregate.holm([0.5, 0.6]).tolist() == [1.0, 1.0]  # capped at 1


def test_a_task_with_many_runs_does_not_outweigh_one_with_few():
    few, many = np.array([90.0]), np.full(30, 10.0)
    for metric, expected in (("mean", 50.0), ("median", 50.0), ("iqm", 50.0), ("gap_to_anchor", 50.0)):
        assert aggregate.METRICS[metric]([np.full(3, 10.0), few]) == pytest.approx(expected), metric
        assert aggregate.METRICS[metric]([many, few]) == pytest.approx(expected), metric  # 30 seeds, same answer


def test_the_iqm_keeps_the_middle_half_of_the_mass():
    # one task, 6 runs of weight 1/6: the middle half [0.25, 0.75] takes half of run 2, runs 3 and 4, half of run 5
    x = np.array([0.0, 6.0, 12.0, 18.0, 24.0, 30.0])
    assert weighted_iqm([x]) == pytest.approx((0.5 * 6 + 12 + 18 + 0.5 * 24) / 3)


def test_scores_above_100_close_no_gap():
    assert gap_to_anchor([np.array([120.0, 80.0])]) == 10.0


def raw(rows):
    return pd.DataFrame(rows, columns=["task", "method", "algo", "seed", "score"])


def test_probability_of_improvement_by_hand():
    frame = raw([("t1", "x", "x", s, v) for s, v in enumerate([1.0, 2.0, 3.0])]
                + [("t1", "y", "y", s, v) for s, v in enumerate([2.0, 2.0])]
                + [("t2", "x", "x", 0, 5.0), ("t2", "y", "y", 0, 1.0), ("t3", "x", "x", 0, 7.0)])
    table = aggregate.probability_of_improvement(frame, n_resamples=200).set_index(["method", "versus"])
    # t1: of the 6 pairs, 1 vs 2 loses twice, 2 vs 2 ties twice, 3 vs 2 wins twice: (0 + 0 + .5 + .5 + 1 + 1) / 6
    # t2: 5 > 1. t3: y never ran it, so it is not shared.
    assert table.loc[("x", "y"), "probability_of_improvement"] == pytest.approx((0.5 + 1.0) / 2)
    assert table.loc[("y", "x"), "probability_of_improvement"] == pytest.approx(0.25)
    assert table.loc[("x", "y"), "tasks"] == 2
    low, high = table.loc[("x", "y"), ["ci_low", "ci_high"]]
    assert 0.5 <= low <= 0.75 <= high <= 1.0  # t1 resampled: P from 0 (x = 1,1,1) to 1 (x = 3,3,3); t2 fixed at 1
    assert table.loc[("y", "x"), "ci_low"] == pytest.approx(1 - high)


def test_iqm_differences_by_hand_oriented_and_paired_by_task():
    # three tasks far apart, every run of a task alike; on each, x scores y's plus 5: the IQM difference is 5
    # whatever is drawn, so both intervals are [5, 5] -- an unpaired task draw (x's tasks and y's drawn apart)
    # would span about -130 to +150
    levels = {"t1": 0.0, "t2": 100.0, "t3": -80.0}
    rows = [(task, m, m, s, level + (5.0 if m == "x" else 0.0)) for task, level in levels.items()
            for m in ("x", "y") for s in range(4)]
    rows += [("t4", "x", "x", 0, 1e6)]  # x alone: not shared, not counted
    table = aggregate.iqm_differences(raw(rows), n_resamples=300)
    assert len(table) == 1
    row = table.iloc[0]
    assert (row["method"], row["versus"], row["tasks"]) == ("x", "y", 3)
    assert row["iqm_difference"] == pytest.approx(5.0)
    assert row[["ci_low", "ci_high", "task_ci_low", "task_ci_high"]].tolist() == pytest.approx([5.0] * 4)
    assert row["beyond_runs"] and row["beyond_tasks"]
    # oriented: with the better method sorting second ("b" for x), the pair still reads as b over a, intervals too
    flipped = aggregate.iqm_differences(raw([(t, {"x": "b", "y": "a"}[m], a, s, v) for t, m, a, s, v in rows]),
                                        n_resamples=300).iloc[0]
    assert (flipped["method"], flipped["versus"]) == ("b", "a") and flipped["iqm_difference"] == pytest.approx(5.0)
    assert flipped[["ci_low", "ci_high", "task_ci_low", "task_ci_high"]].tolist() == pytest.approx([5.0] * 4)
    same = [(t, m, m, s, v) for t in ("t1", "t2") for m in ("x", "y") for s, v in enumerate([1.0, 2.0, 3.0])]
    row = aggregate.iqm_differences(raw(same), n_resamples=300).iloc[0]
    assert row["iqm_difference"] == 0.0 and not row["beyond_runs"] and not row["beyond_tasks"]
    assert row["ci_low"] < 0 < row["ci_high"]


def test_iqm_differences_task_interval_is_wide_where_tasks_disagree():
    # x beats y by 10 on two tasks and loses by 10 on one; runs are tight: the runs interval excludes 0 (these
    # tasks), the tasks interval does not (tasks like these)
    offsets = {"t1": 10.0, "t2": 10.0, "t3": -10.0}
    rows = [(task, m, m, s, 50.0 + s * 0.1 + (off if m == "x" else 0.0)) for task, off in offsets.items()
            for m in ("x", "y") for s in range(5)]
    row = aggregate.iqm_differences(raw(rows), n_resamples=2000).iloc[0]
    assert (row["method"], row["versus"]) == ("x", "y") and row["iqm_difference"] > 0
    assert row["beyond_runs"] and not row["beyond_tasks"]


def test_iqm_difference_intervals_are_simultaneous_over_the_tables_pairs():
    # three methods on three tasks: three pairs, so each interval is at 1 - 0.05 / 3 and at least as wide as a
    # lone pair's 95% interval of the same data (Bonferroni: all three hold together with at least 95%)
    rows = [(task, m, m, s, 50.0 + 3.0 * s + {"x": 4.0, "y": 2.0, "z": 0.0}[m] + 20.0 * k)
            for k, task in enumerate(("t1", "t2", "t3")) for m in ("x", "y", "z") for s in range(5)]
    table = aggregate.iqm_differences(raw(rows), n_resamples=300).set_index(["method", "versus"])
    assert len(table) == 3 and table["confidence"].tolist() == pytest.approx([1 - 0.05 / 3] * 3)
    lone = aggregate.iqm_differences(raw([r for r in rows if r[1] != "z"]), n_resamples=300).iloc[0]
    assert lone["confidence"] == pytest.approx(0.95)
    joint = table.loc[("x", "y")]
    assert joint["iqm_difference"] == pytest.approx(lone["iqm_difference"]) == pytest.approx(2.0)
    assert joint["ci_low"] < lone["ci_low"] and joint["ci_high"] > lone["ci_high"]
    assert joint["task_ci_low"] <= lone["task_ci_low"] and joint["task_ci_high"] >= lone["task_ci_high"]


def test_an_interval_that_cannot_vary_claims_nothing():
    # one run of each method per task: the runs interval is the point; one shared task: the tasks interval too
    single_runs = [(t, m, m, 0, v + (3.0 if m == "x" else 0.0)) for t, v in (("t1", 1.0), ("t2", 40.0))
                   for m in ("x", "y")]
    row = aggregate.iqm_differences(raw(single_runs), n_resamples=200).iloc[0]
    assert row["ci_low"] == row["ci_high"] == pytest.approx(3.0)
    assert row["beyond_runs"] is None and row["beyond_tasks"] is not None
    one_task = [("t1", m, m, s, s + (3.0 if m == "x" else 0.0)) for m in ("x", "y") for s in range(4)]
    row = aggregate.iqm_differences(raw(one_task), n_resamples=200).iloc[0]
    assert row["beyond_tasks"] is None and row["beyond_runs"] is not None


def test_a_task_draw_that_cannot_split_into_tasks_is_refused():
    with pytest.raises(ValueError, match="per_task=2 does not divide the 3 samples"):
        aggregate.task_interval([np.ones(2)] * 3, weighted_mean, per_task=2)


def test_the_stratified_interval_of_one_task_is_scipys_bootstrap():
    x = np.array([3.0, 9.0, 4.0, 12.0, 7.0])
    low, high = aggregate.stratified_interval([x, np.array([50.0])], lambda s: np.mean(s[0]), n_resamples=999, seed=4)
    expected = stats.bootstrap((x,), np.mean, n_resamples=999, method="percentile", vectorized=False,
                               rng=np.random.default_rng(4)).confidence_interval
    assert (float(low), float(high)) == pytest.approx((expected.low, expected.high))
    point = aggregate.stratified_interval([np.array([1.0]), np.array([3.0])], weighted_mean)
    assert float(point[0]) == float(point[1]) == 2.0  # nothing to resample: the interval is the point


def _unequal_tasks(seed: int = 3) -> list[np.ndarray]:
    """Two methods' runs on five tasks of 3, 5 and 10 runs (X's then Y's on each task)."""
    rng = np.random.default_rng(seed)
    return [rng.normal(20.0 * task + shift, 5.0, runs) for task, runs in enumerate((3, 5, 10, 5, 3))
            for shift in (4.0, 0.0)]


def _iqm_difference(drawn):
    return iqm(drawn[0::2]) - iqm(drawn[1::2])


@pytest.mark.parametrize("statistic", [_iqm_difference, weighted_mean, median_of_task_means, gap_to_anchor])
def test_the_batched_run_interval_is_the_one_by_one_interval(statistic):
    # the statistics take all resamples at once; scipy draws the same resamples either way, so the intervals
    # agree to rounding (every task a different number of runs: the weighted IQM; one task of a single run)
    samples = [*_unequal_tasks(), np.array([33.0]), np.array([31.0])]
    one_by_one = aggregate.stratified_interval(samples, statistic, n_resamples=500, seed=7)
    batched = aggregate.stratified_interval(samples, statistic, n_resamples=500, seed=7, batched=True)
    assert np.allclose(one_by_one, batched, rtol=1e-12, atol=1e-12)


def test_the_batched_task_interval_draws_from_the_same_distribution_as_the_loop():
    # the batched task bootstrap groups resamples by the runs' counts of the drawn tasks; its draws differ from
    # the loop's, their distribution must not: compare both with 20,000 resamples each, paired by task
    samples = _unequal_tasks()
    rng = np.random.default_rng(11)
    batched = aggregate._task_draws(samples, _iqm_difference, 5, 2, 20000, rng)
    loop = []
    for _ in range(20000):
        drawn = []
        for task in rng.integers(0, 5, 5):
            drawn += [values[rng.integers(0, len(values), len(values))] for values in samples[2 * task:2 * task + 2]]
        loop.append(_iqm_difference(drawn))
    loop = np.asarray(loop)
    spread = loop.std()
    assert abs(batched.mean() - loop.mean()) < 0.05 * spread  # about 3.5 standard errors of the difference
    assert batched.std() == pytest.approx(spread, rel=0.05)
    assert np.percentile(batched, [5, 50, 95]) == pytest.approx(np.percentile(loop, [5, 50, 95]), abs=0.1 * spread)


def test_the_batched_task_interval_keeps_each_task_whole_and_paired():
    # X scores 7 above Y on every task, tasks far apart, runs alike within a task: any draw of whole tasks,
    # the same for X and Y, gives exactly 7 (drawn apart, the tasks' spread would show)
    base = [np.full(n, 40.0 * n) for n in (2, 4, 7)]
    samples = [values for task in base for values in (task + 7.0, task)]
    low, high = aggregate.task_interval(samples, lambda d: weighted_mean(d[0::2]) - weighted_mean(d[1::2]),
                                        n_resamples=300, per_task=2, batched=True)
    assert float(low) == pytest.approx(7.0) and float(high) == pytest.approx(7.0)


def test_performance_profiles_weigh_tasks_equally():
    frame = raw([("t1", "x", "x", 0, 10.0), ("t1", "x", "x", 1, 50.0), ("t2", "x", "x", 0, 90.0)])
    profile = aggregate.performance_profiles(frame, taus=[0, 40, 60, 95], n_resamples=200).set_index("tau")
    assert profile["fraction_above"].tolist() == [1.0, 0.75, 0.5, 0.0]  # t1 gives 1/2 above 40, t2 all
    assert (profile["ci_low"] <= profile["fraction_above"]).all()
    assert (profile["fraction_above"] <= profile["ci_high"]).all()


def test_the_aggregate_table_leaves_the_references_out_and_counts_tasks_and_runs():
    frame = raw([("t1", "x", "x", s, v) for s, v in enumerate([20.0, 40.0, 60.0])]
                + [("t2", "x", "x", 0, 80.0), ("t1", "random_valid", "random_valid", 0, 0.0),
                   ("t1", "relaxed_heuristic", "relaxed_heuristic", 0, 100.0),
                   ("t1", "never_move", "never_move", 0, 30.0)])
    table = aggregate.aggregate_table(frame, n_resamples=200).set_index("method")
    assert table.index.tolist() == ["x"]
    assert table.loc["x", "tasks"] == 2 and table.loc["x", "runs"] == 4
    assert table.loc["x", "mean"] == pytest.approx((40.0 + 80.0) / 2)
    assert table.loc["x", "gap_to_anchor"] == pytest.approx((60.0 + 20.0) / 2)
    for kind in ("ci", "task_ci"):
        assert table.loc["x", f"mean_{kind}_low"] <= table.loc["x", "mean"] <= table.loc["x", f"mean_{kind}_high"]


def test_raw_scores_normalise_each_run_against_its_own_tasks_references():
    scores = pd.DataFrame({"env": ["e", "e", "e", "e"], "env_config": ["", "", "", "n=2"],
                           "algo": ["a", "a", "b", "a"], "config_id": ["c1", "c2", "c3", "c4"], "seed": [0, 0, 0, 0],
                           "return": [150.0, 250.0, 100.0, 30.0]})
    references = pd.DataFrame({"lower": [100.0, 10.0], "anchor": [200.0, 50.0], "bound": [300.0, float("nan")]},
                              index=pd.MultiIndex.from_tuples([("e", ""), ("e", "n=2")], names=["env", "env_config"]))
    out = aggregate.raw_scores(scores, references, {"c1": "penalty=1", "c2": "penalty=10"})
    assert out["score"].tolist() == [50.0, 150.0, 0.0, 50.0]
    assert out["bound_share"].tolist()[:3] == [25.0, 75.0, 0.0] and np.isnan(out["bound_share"].iloc[3])
    assert out["method"].tolist() == ["a (penalty=1)", "a (penalty=10)", "b", "a"]
    assert out["task"].tolist() == ["e", "e", "e", "e [n=2]"]


def test_methods_that_ran_different_tasks_are_compared_on_the_tasks_they_share():
    """As in the reference set: masking and the penalty ran every task, naive masking only the discrete ones,
    the Dirichlet only the allocation one (references never count)."""
    every, discrete = ["portfolio", "speed_limit", "sum_to_zero"], ["portfolio", "speed_limit"]
    frame = raw([(t, "masked", "masked", 0, 50.0) for t in every] + [(t, "penalty", "penalty", 0, 40.0) for t in every]
                + [(t, "naive", "naive", 0, 30.0) for t in discrete]
                + [("sum_to_zero", "dirichlet", "dirichlet", 0, 60.0),
                   ("portfolio", "relaxed_heuristic", "relaxed_heuristic", 0, 100.0)])
    assert aggregate.comparable_task_sets(frame) == [
        (tuple(every), ("masked", "penalty")),
        (tuple(discrete), ("masked", "naive", "penalty")),
        (("sum_to_zero",), ("dirichlet", "masked", "penalty"))]
    same = frame[frame["method"].isin(["masked", "penalty", "relaxed_heuristic"])]
    assert aggregate.comparable_task_sets(same) == []  # one set: the overall table compares them already
    lonely = raw([("a", "x", "x", 0, 1.0), ("b", "y", "y", 0, 2.0)])
    assert aggregate.comparable_task_sets(lonely) == []  # no two methods share a task


def test_a_task_is_named_by_its_env_and_only_the_config_keys_that_tell_it_apart():
    scores = pd.DataFrame({"env": ["p", "p", "q", "p-l"],
                           "env_config": ["n=3,cost=0.03,0.045,lots=5", "n=10,cost=0.03,0.045,lots=5",
                                          "x=1", "n=30,cost=0.1,lots=25"]})
    assert aggregate.task_labels(scores) == {("p", "n=3,cost=0.03,0.045,lots=5"): "p [n=3]",
                                             ("p", "n=10,cost=0.03,0.045,lots=5"): "p [n=10]",
                                             ("q", "x=1"): "q", ("p-l", "n=30,cost=0.1,lots=25"): "p-l"}
