"""Where learning stops (:mod:`suite.budgets`), against hand-computed curves."""

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from suite.budgets import budget_markdown, budget_table
from suite.results import Results


def _loaded(curves: dict[str, list[float]], steps: list[int], algo="masked_ppo", status="complete") -> Results:
    runs = pd.DataFrame([{"env": "toy", "algo": algo, "seed": k, "status": status, "config_id": "abc", "run": run}
                         for k, run in enumerate(curves)])
    progress = pd.DataFrame([{"env": "toy", "algo": algo, "seed": k, "status": status, "config_id": "abc", "run": run,
                              "env_steps": s, "wall_seconds": s / 100.0, "eval_return_mean": r}
                             for k, (run, returns) in enumerate(curves.items()) for s, r in zip(steps, returns)])
    return Results(runs, progress, pd.DataFrame(columns=["run"]), ())


STEPS = [1000, 2000, 3000, 4000, 5000, 6000, 7000, 8000]


def test_a_curve_that_flattens_is_a_plateau_and_says_when_it_got_95_percent_there():
    # Mean curve 0, 50, 90, 96, 100, 100, 100, 100: gain 100 from the first evaluation, 95 reached at 4,000 steps.
    base = np.array([0, 50, 90, 96, 100, 100, 100, 100], dtype=float)
    loaded = _loaded({"a": list(base - 1), "b": list(base + 1), "c": list(base)}, STEPS)
    (row,) = budget_table(loaded, {"abc": "lr=0.001"}).to_dict("records")
    assert row["config"] == "lr=0.001" and row["seeds"] == 3 and row["evaluations"] == 8
    assert row["budget"] == 8000 and row["first_return"] == 0 and row["final_return"] == 100
    assert row["steps_to_95pct"] == 4000 and row["seconds_to_95pct"] == 40.0
    # Last quarter (100, 100) minus the quarter before (100, 100): no gain in any seed.
    assert row["late_gain"] == 0 and row["verdict"] == "plateau" and row["p_still_improving"] == 1.0


def test_a_curve_still_rising_in_its_last_quarter_is_still_improving_with_the_t_test_by_hand():
    rising = {"a": [0, 1, 2, 3, 4, 5, 7, 9], "b": [0, 1, 2, 3, 4, 5, 8, 10], "c": [0, 1, 2, 3, 4, 6, 7, 8]}
    (row,) = budget_table(_loaded(rising, STEPS)).to_dict("records")
    gains = np.array([(7 + 9) / 2 - (4 + 5) / 2, (8 + 10) / 2 - (4 + 5) / 2, (7 + 8) / 2 - (4 + 6) / 2])
    assert row["late_gain"] == pytest.approx(gains.mean())
    assert row["p_still_improving"] == pytest.approx(stats.ttest_1samp(gains, 0, alternative="greater").pvalue)
    low, high = stats.t.interval(0.95, 2, loc=gains.mean(), scale=stats.sem(gains))
    assert (row["late_gain_ci_low"], row["late_gain_ci_high"]) == pytest.approx((low, high))
    assert row["verdict"] == "still improving"
    # 95% of the mean gain (9 - 0) is 8.55: first reached at the last evaluation.
    assert row["steps_to_95pct"] == 8000


def test_two_seeds_are_a_tentative_plateau_and_a_curve_without_gain_has_no_time_to_it():
    flat = {"a": [5, 4, 5, 4, 5, 4, 5, 4], "b": [5, 5, 4, 4, 5, 5, 4, 4]}
    (row,) = budget_table(_loaded(flat, STEPS)).to_dict("records")
    assert row["verdict"] == "plateau?" and math.isnan(row["steps_to_95pct"]) and math.isnan(row["seconds_to_95pct"])


def test_seeds_evaluated_at_other_steps_are_interpolated_onto_the_shortest_grid():
    loaded = _loaded({"a": [0, 10, 20, 30], "b": [0, 10, 20, 30, 40]}, [1000, 2000, 3000, 4000, 5000])
    (row,) = budget_table(loaded).to_dict("records")
    assert row["budget"] == 4000 and row["evaluations"] == 4 and row["final_return"] == 30


def test_one_seed_is_not_tested_whatever_its_curve_did():
    (row,) = budget_table(_loaded({"a": [0, 1, 2, 3, 4, 5, 7, 9]}, STEPS)).to_dict("records")
    assert row["verdict"] == "one seed: not tested" and math.isnan(row["p_still_improving"])
    assert row["late_gain"] == pytest.approx(8 - 4.5)


def test_too_few_evaluations_unfinished_runs_and_no_periodic_evaluation_give_no_row():
    assert budget_table(_loaded({"a": [0, 1, 2]}, [1000, 2000, 3000])).empty
    assert budget_table(_loaded({"a": [0, 1, 2, 3]}, STEPS[:4], status="unfinished")).empty
    no_eval = _loaded({"a": [0, 1, 2, 3]}, STEPS[:4])
    assert budget_table(Results(no_eval.runs, no_eval.progress.drop(columns="eval_return_mean"), no_eval.evals,
                                ())).empty
    assert budget_markdown(pd.DataFrame()) == []


def test_the_markdown_section_shows_every_config_with_its_verdict():
    rising = {"a": [0, 1, 2, 3, 4, 5, 7, 9], "b": [0, 1, 2, 3, 4, 5, 8, 10], "c": [0, 1, 2, 3, 4, 6, 7, 8]}
    lines = budget_markdown(budget_table(_loaded(rising, STEPS)))
    assert lines[0] == "## Where learning stops"
    table = "\n".join(lines)
    assert "still improving" in table and "8,000" in table and "| toy " in table


def test_a_rise_the_seeds_agree_on_but_too_small_to_matter_is_creeping_not_still_improving():
    # Gain 0 -> 100 by the fourth evaluation, then +0.1 to +0.3 per seed in the last quarter: p < 0.05, but
    # the last-quarter gain (about 0.2) is under 1% of the curve's gain (100).
    base = [0, 50, 90, 100, 100, 100]
    creeping = {"a": base + [100.1, 100.1], "b": base + [100.2, 100.2], "c": base + [100.3, 100.3]}
    (row,) = budget_table(_loaded(creeping, STEPS)).to_dict("records")
    assert row["p_still_improving"] < 0.05 and 0 < row["late_gain"] < 0.01 * 100
    assert row["verdict"] == "creeping"


def test_the_chosen_budget_is_where_the_best_config_stopped_or_all_of_it_while_still_improving():
    from suite.budgets import chosen_budgets

    table = pd.DataFrame([
        {"env": "a", "final_return": 10.0, "verdict": "plateau", "steps_to_95pct": 4000.0, "budget": 8000.0},
        {"env": "a", "final_return": 5.0, "verdict": "still improving", "steps_to_95pct": 8000.0, "budget": 8000.0},
        {"env": "b", "final_return": 3.0, "verdict": "still improving", "steps_to_95pct": 7000.0, "budget": 8000.0},
        {"env": "c", "final_return": 1.0, "verdict": "plateau", "steps_to_95pct": math.nan, "budget": 6000.0}])
    assert chosen_budgets(table) == {"a": 4000, "b": 8000, "c": 6000}


def test_a_fall_the_seeds_agree_on_is_declining_and_the_final_score_says_how_far_below_its_best():
    # every seed rises to 100 and falls in the last quarter (to 80, 70, 90): the last quarter lost about 20 of the
    # curve's gain of 100, the seeds agree (one-sided p < 0.05 the other way), and each seed's last quarter (two
    # evaluations) lies 15, 25 and 7.5 below its best two in a row (100, 100)
    base = [0, 50, 90, 100, 100, 100]
    falling = {"a": base + [90, 80], "b": base + [80, 70], "c": base + [95, 90]}
    (row,) = budget_table(_loaded(falling, STEPS)).to_dict("records")
    gains = np.array([85 - 100, 75 - 100, 92.5 - 100])
    assert row["late_gain"] == pytest.approx(gains.mean()) and row["p_still_improving"] > 0.95
    p_declining = stats.ttest_1samp(gains, 0, alternative="less").pvalue
    assert row["p_declining"] == pytest.approx(p_declining) and p_declining < 0.05
    assert row["verdict"] == "declining" and row["below_best"] == pytest.approx((15 + 25 + 7.5) / 3)
    assert "declining" in "\n".join(budget_markdown(pd.DataFrame([row])))
    # a curve that ends at its best has nothing below it
    (flat,) = budget_table(_loaded({"a": base + [100, 100], "b": base + [100, 100]}, STEPS)).to_dict("records")
    assert flat["below_best"] == 0 and flat["verdict"] == "plateau?"
