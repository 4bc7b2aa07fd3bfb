"""Violations per constraint: the core's distance of Box actions, the tracker's counts by constraint, and the
columns a penalty run writes; the enforcement share."""

import numpy as np
import pandas as pd
import pytest

import envs
from baselines.episodes import EpisodeTracker, merge_drains
from tests.helpers import TINY, run_folder, run_main


def test_the_core_reports_each_box_actions_distance_to_the_admissible_set_where_it_was_inadmissible():
    core = envs.make_core("sum_to_zero", 8)
    core.reset(np.arange(8), [np.random.default_rng(i) for i in range(8)])
    rng = np.random.default_rng(0)
    actions = rng.normal(0, 0.1, (8, 1, 13))
    actions[:4] = core.admissible_set().project(actions)[:4]  # four admissible, four not
    expected = core.admissible_set().distance(actions)
    result = core.step(actions)
    distance = result.info["violation_distance"]
    assert np.all(distance[:4] == 0) and np.allclose(distance[4:], expected[4:]) and np.all(distance[4:] > 0)
    assert result.info["violated"][4:, 0, 0].all()  # Z1: a Gaussian draw misses the sum-to-zero plane


def test_the_tracker_counts_steps_per_constraint_from_arrays_and_from_names():
    info = {"invalid_actions": np.array([2, 0, 1]),
            "violated": np.array([[True, False, True], [False, False, False], [False, True, False]])}
    names = {"invalid_actions": info["invalid_actions"],
             "violated": np.array([["A", "C"], [], ["B"]], dtype=object)}
    for step_info in (info, names):
        tracker = EpisodeTracker(3, constraints=("A", "B", "C"))
        tracker.update(np.zeros(3), np.array([True, False, False]), np.zeros(3, bool), step_info)
        finished = tracker.update(np.zeros(3), np.ones(3, bool), np.zeros(3, bool), step_info)
        drained = tracker.drain()
        assert drained["violations"] == {"A": 1, "B": 2, "C": 1}  # entry 0's second step only resets it
        assert [(f["violations_A"], f["violations_B"], f["violations_C"]) for f in finished] == [(0, 0, 0), (0, 2, 0)]
    merged = merge_drains([drained, drained])
    assert merged["violations"] == {"A": 2, "B": 4, "C": 2} and merged["violation_distance"] is None


@pytest.mark.parametrize("env", ["portfolio", "sum_to_zero"])
def test_a_penalty_run_records_each_constraints_violation_rate(tmp_path, env):
    """Each constraint's rate is at most the share of steps with an inadmissible action, and together they cover
    it (a step is inadmissible because it breaks at least one rule); eval.csv counts them per episode."""
    assert run_main("--env", env, "--algo", "penalty_ppo", "--backend", "torch", *TINY, "--steps", "2048",
                    "--episodes", "4", "--out", str(tmp_path), "--quiet") == 0
    directory = run_folder(tmp_path, env, "penalty_ppo")
    progress, evaluation = pd.read_csv(directory / "progress.csv"), pd.read_csv(directory / "eval.csv")
    names = [c.name for c in envs.make_core(env).constraints]
    rates = progress[[f"violation_rate_{name}" for name in names]]
    assert (rates.max(axis=1) <= progress["invalid_action_rate"] + 1e-12).all()
    assert (rates.sum(axis=1) >= progress["invalid_action_rate"] - 1e-12).all()
    assert (progress["invalid_action_rate"] > 0).all()
    assert ((progress["enforcement_share"] > 0) & (progress["enforcement_share"] < 1)).all()
    counts = evaluation[[f"violations_{name}" for name in names]]
    assert (counts.max(axis=1) <= evaluation["invalid_steps"]).all()
    if env == "sum_to_zero":
        assert (progress["violation_distance_mean"] > 0).all() and (evaluation["violation_distance"] > 0).all()
