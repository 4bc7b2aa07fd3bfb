"""Statistics across tasks (suite.aggregate) against values computed by hand, the stratification
included: a task with many runs must not outweigh one with few."""

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from suite import aggregate
from suite.aggregate import optimality_gap, weighted_iqm, weighted_mean, weighted_median


def test_with_equal_seeds_the_statistics_are_rliables():
    a, b = np.array([0.0, 10.0, 20.0, 30.0]), np.array([40.0, 50.0, 60.0, 70.0])
    pooled = np.concatenate([a, b])
    assert weighted_iqm([a, b]) == pytest.approx(stats.trim_mean(pooled, 0.25)) == pytest.approx(35.0)
    assert weighted_median([a, b]) == np.median(pooled) == 35.0
    assert weighted_mean([a, b]) == 35.0
    assert optimality_gap([a, b]) == 65.0


def test_a_task_with_many_runs_does_not_outweigh_one_with_few():
    few, many = np.array([90.0]), np.full(30, 10.0)
    for metric, expected in (("mean", 50.0), ("median", 50.0), ("iqm", 50.0), ("optimality_gap", 50.0)):
        assert aggregate.METRICS[metric]([np.full(3, 10.0), few]) == pytest.approx(expected), metric
        assert aggregate.METRICS[metric]([many, few]) == pytest.approx(expected), metric  # 30 seeds, same answer


def test_the_iqm_keeps_the_middle_half_of_the_mass():
    # one task, 6 runs of weight 1/6: the middle half [0.25, 0.75] takes half of run 2, runs 3 and 4, half of run 5
    x = np.array([0.0, 6.0, 12.0, 18.0, 24.0, 30.0])
    assert weighted_iqm([x]) == pytest.approx((0.5 * 6 + 12 + 18 + 0.5 * 24) / 3)


def test_scores_above_100_close_no_gap():
    assert optimality_gap([np.array([120.0, 80.0])]) == 10.0


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


def test_the_stratified_interval_of_one_task_is_scipys_bootstrap():
    x = np.array([3.0, 9.0, 4.0, 12.0, 7.0])
    low, high = aggregate.stratified_interval([x, np.array([50.0])], lambda s: np.mean(s[0]), n_resamples=999, seed=4)
    expected = stats.bootstrap((x,), np.mean, n_resamples=999, method="percentile", vectorized=False,
                               rng=np.random.default_rng(4)).confidence_interval
    assert (float(low), float(high)) == pytest.approx((expected.low, expected.high))
    point = aggregate.stratified_interval([np.array([1.0]), np.array([3.0])], weighted_mean)
    assert float(point[0]) == float(point[1]) == 2.0  # nothing to resample: the interval is the point


def test_performance_profiles_weigh_tasks_equally():
    frame = raw([("t1", "x", "x", 0, 10.0), ("t1", "x", "x", 1, 50.0), ("t2", "x", "x", 0, 90.0)])
    profile = aggregate.performance_profiles(frame, taus=[0, 40, 60, 95], n_resamples=200).set_index("tau")
    assert profile["fraction_above"].tolist() == [1.0, 0.75, 0.5, 0.0]  # t1 gives 1/2 above 40, t2 all
    assert (profile["ci_low"] <= profile["fraction_above"]).all()
    assert (profile["fraction_above"] <= profile["ci_high"]).all()


def test_the_aggregate_table_leaves_the_references_out_and_counts_tasks_and_runs():
    frame = raw([("t1", "x", "x", s, v) for s, v in enumerate([20.0, 40.0, 60.0])]
                + [("t2", "x", "x", 0, 80.0), ("t1", "random_valid", "random_valid", 0, 0.0),
                   ("t1", "oracle", "oracle", 0, 100.0)])
    table = aggregate.aggregate_table(frame, n_resamples=200).set_index("method")
    assert table.index.tolist() == ["x"]
    assert table.loc["x", "tasks"] == 2 and table.loc["x", "runs"] == 4
    assert table.loc["x", "mean"] == pytest.approx((40.0 + 80.0) / 2)
    assert table.loc["x", "optimality_gap"] == pytest.approx((60.0 + 20.0) / 2)
    assert table.loc["x", "mean_ci_low"] <= table.loc["x", "mean"] <= table.loc["x", "mean_ci_high"]


def test_raw_scores_normalise_each_run_against_its_own_tasks_references():
    scores = pd.DataFrame({"env": ["e", "e", "e", "e"], "env_config": ["", "", "", "n=2"],
                           "algo": ["a", "a", "b", "a"], "config_id": ["c1", "c2", "c3", "c4"], "seed": [0, 0, 0, 0],
                           "return": [150.0, 250.0, 100.0, 30.0]})
    references = pd.DataFrame({"lower": [100.0, 10.0], "upper": [200.0, 50.0]},
                              index=pd.MultiIndex.from_tuples([("e", ""), ("e", "n=2")], names=["env", "env_config"]))
    out = aggregate.raw_scores(scores, references, {"c1": "penalty=1", "c2": "penalty=10"})
    assert out["score"].tolist() == [50.0, 150.0, 0.0, 50.0]
    assert out["method"].tolist() == ["a (penalty=1)", "a (penalty=10)", "b", "a"]
    assert out["task"].tolist() == ["e", "e", "e", "e [n=2]"]


def test_methods_that_ran_different_tasks_are_compared_on_the_tasks_they_share():
    """As in the reference set: masking and the penalty ran every task, naive masking only the discrete ones,
    the Dirichlet only the allocation one (references never count)."""
    every, discrete = ["portfolio", "speed_limit", "sum_to_zero"], ["portfolio", "speed_limit"]
    frame = raw([(t, "masked", "masked", 0, 50.0) for t in every] + [(t, "penalty", "penalty", 0, 40.0) for t in every]
                + [(t, "naive", "naive", 0, 30.0) for t in discrete]
                + [("sum_to_zero", "dirichlet", "dirichlet", 0, 60.0), ("portfolio", "oracle", "oracle", 0, 100.0)])
    assert aggregate.comparable_task_sets(frame) == [
        (tuple(every), ("masked", "penalty")),
        (tuple(discrete), ("masked", "naive", "penalty")),
        (("sum_to_zero",), ("dirichlet", "masked", "penalty"))]
    same = frame[frame["method"].isin(["masked", "penalty", "oracle"])]
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
