"""Does a task separate methods (:mod:`suite.separation`)? The rule against hand-computed tests."""

import math

import pandas as pd
import pytest
from scipy import stats

from suite import aggregate, report, results, separation
from tests.helpers import unpadded


@pytest.fixture
def two_tasks(tmp_path, make_run):
    """toy: random_valid 10, oracle 20, last_demand (the best simple policy) 13, clairvoyant_demand (a bound) 30;
    masked PPO 17, 18, 19 and penalty PPO 10, 11, 12. toy2: random_valid 0, oracle 10, never_move 9; masked and
    penalty PPO both 14, 15, 16 (above the simple policy, indistinguishable from each other)."""
    for seed in range(3):
        for env, algo, value in (("toy", "random_valid", 10.0), ("toy", "oracle", 20.0), ("toy", "last_demand", 13.0),
                                 ("toy", "clairvoyant_demand", 30.0),
                                 ("toy", "masked_ppo", 17.0 + seed), ("toy", "penalty_ppo", 10.0 + seed),
                                 ("toy2", "random_valid", 0.0), ("toy2", "oracle", 10.0), ("toy2", "never_move", 9.0),
                                 ("toy2", "masked_ppo", 14.0 + seed), ("toy2", "penalty_ppo", 14.0 + seed)):
            make_run(tmp_path, env, algo, seed, returns=[value] * 3, algo_config={"num_envs": 4})
    return tmp_path


def _tables(folder):
    loaded = results.load(folder)
    summary, _ = report.summarize(loaded)
    scores = report.run_scores(loaded)
    pairs = separation.method_pairs(scores, summary)
    return summary, pairs, separation.separation_table(summary, pairs, aggregate.task_labels(scores))


def test_pairs_are_two_sided_welch_tests_holm_corrected_over_every_pair_of_the_report(two_tasks):
    _, pairs, _ = _tables(two_tasks)
    assert len(pairs) == 2  # one pair per task
    toy = pairs[pairs["env"] == "toy"].iloc[0]
    assert (toy["method_a"], toy["method_b"]) == ("masked_ppo", "penalty_ppo")  # a: the higher mean
    p = stats.ttest_ind([17.0, 18.0, 19.0], [10.0, 11.0, 12.0], equal_var=False).pvalue
    assert toy["p"] == pytest.approx(p) and toy["p_holm"] == pytest.approx(2 * p) and toy["differ"]
    tie = pairs[pairs["env"] == "toy2"].iloc[0]
    assert tie["p"] == pytest.approx(1.0) and not tie["differ"]


def test_a_task_separates_only_when_it_is_learned_and_two_methods_differ(two_tasks):
    summary, _, table = _tables(two_tasks)
    toy, toy2 = (table[table["task"] == name].iloc[0] for name in ("toy", "toy2"))
    # toy: masked PPO beats last_demand (one-sample t of 17, 18, 19 against 13, Holm over the four method rows)
    assert toy["learned"] and toy["differing_pairs"] == 1 and toy["pairs_tested"] == 1 and toy["separates"]
    assert toy["best_method"] == "masked_ppo" and toy["best_simple"] == "last_demand"
    assert toy["best_method_score"] == pytest.approx(80.0) and toy["best_simple_score"] == pytest.approx(30.0)
    # toy2: both methods beat never_move, and tie: learned, but no two methods differ
    assert toy2["learned"] and toy2["differing_pairs"] == 0 and toy2["separates"] is not None \
        and not toy2["separates"]
    lines = unpadded("\n".join(separation.separation_markdown(table, summary)))
    assert "**1 of 2 tasks separate, on 1 env.**" in lines
    # headroom: last_demand reaches (13 - 10) / (30 - 10) = 15% of the range from random_valid to the bound; toy2 has
    # no bound
    assert toy["headroom"] == pytest.approx(85.0) and math.isnan(toy2["headroom"])
    assert ("| toy | 200 | last_demand 30.0 | 85.0 | masked_ppo 80.0 (55.2–104.8) ×3; penalty_ppo 10.0 (-14.8–34.8) "
            "×3 | **yes** | 1 of 1 | **yes** |") in lines
    assert "| toy2 | 200 | never_move 90.0 | – |" in lines


def test_methods_with_one_seed_are_in_no_test_and_the_task_is_not_judged(tmp_path, make_run):
    for algo, value in (("random_valid", 0.0), ("oracle", 10.0), ("never_move", 5.0), ("masked_ppo", 9.0),
                        ("penalty_ppo", 1.0)):
        make_run(tmp_path, "toy", algo, 0, returns=[value] * 3, algo_config={"num_envs": 4})
    _, pairs, table = _tables(tmp_path)
    assert pairs.empty
    (row,) = table.to_dict("records")
    assert row["learned"] is None and row["separates"] is None and row["pairs_tested"] == 0


def test_the_report_writes_the_verdicts_and_a_section(two_tasks):
    _, _, text = report.write_report(two_tasks, two_tasks / "report")
    verdicts = pd.read_csv(two_tasks / "report" / "separation.csv")
    assert verdicts.set_index("task")["separates"].to_dict() == {"toy": True, "toy2": False}
    assert (two_tasks / "report" / "method_pairs.csv").exists()
    assert "## Does each task separate methods?" in text
    assert "masked_ppo 80.0 (" in text and "×3" in text


def test_p_differ_is_welch_two_sided_and_exact_between_constants():
    from suite.stats import p_differ

    x, y = [1.0, 2.0, 4.0], [2.0, 3.0, 7.0, 8.0]
    assert p_differ(x, y) == pytest.approx(stats.ttest_ind(x, y, equal_var=False).pvalue)
    assert p_differ(x, y) == pytest.approx(p_differ(y, x))
    assert p_differ(x, [3.0, 3.0]) == pytest.approx(stats.ttest_1samp(x, 3.0).pvalue)
    assert p_differ([3.0, 3.0], x) == pytest.approx(stats.ttest_1samp(x, 3.0).pvalue)
    assert p_differ([2.0, 2.0], [3.0, 3.0]) == 0.0 and p_differ([2.0, 2.0], [2.0, 2.0]) == 1.0
    assert math.isnan(p_differ([1.0], y)) and math.isnan(p_differ(x, [1.0, math.nan]))


def test_at_a_budget_each_learning_run_is_read_off_its_curve_between_the_evaluations_around_it(tmp_path, make_run):
    """Masked PPO's curve passes penalty PPO's late: at 250 env steps, halfway between the evaluations at 200 and
    300, penalty PPO leads (13.5, 14.5, 15.5 against 9.5, 10.5, 11.5), at the end masked PPO does; the
    references' returns hold at every budget."""
    for seed in range(3):
        for algo, value in (("random_valid", 0.0), ("oracle", 20.0), ("never_move", 5.0)):
            make_run(tmp_path, "toy", algo, seed, returns=[value] * 3, algo_config={"num_envs": 4})
        make_run(tmp_path, "toy", "masked_ppo", seed, iterations=3, steps=300, returns=[18.0 + seed] * 3,
                 progress={"eval_return_mean": [0.0, 1.0 + seed, 18.0 + seed]})
        make_run(tmp_path, "toy", "penalty_ppo", seed, iterations=3, steps=300, returns=[15.0 + seed] * 3,
                 progress={"eval_return_mean": [10.0, 12.0 + seed, 15.0 + seed]})
    loaded = results.load(tmp_path)
    scores = report.run_scores(loaded)
    at = separation.returns_at(scores, loaded.complete().progress, {"toy": 250})
    by = at.groupby("algo")["return"].apply(sorted).to_dict()
    assert by["masked_ppo"] == [9.5, 10.5, 11.5] and by["penalty_ppo"] == [13.5, 14.5, 15.5]
    assert by["never_move"] == [5.0] * 3 and set(at.loc[at["algo"] == "masked_ppo", "env_steps"]) == {250}
    late = separation.returns_at(scores, loaded.complete().progress, {"toy": 10_000})  # past the end: the final
    assert sorted(late.loc[late["algo"] == "masked_ppo", "return"]) == [18.0, 19.0, 20.0]
    assert separation.returns_at(scores, loaded.complete().progress, {"toy": 50})["algo"].isin(
        ["masked_ppo", "penalty_ppo"]).sum() == 0  # before the first evaluation: no number to read
    summary = separation.summary_at(at, report.references(scores), {})
    pairs = separation.method_pairs(at, summary)
    (table,) = separation.separation_table(summary, pairs, {}).to_dict("records")
    assert table["best_method"] == "penalty_ppo" and table["learned"] and table["separates"]
    assert table["budget_low"] == table["budget_high"] == 250
    _, _, text = report.write_report(tmp_path, tmp_path / "report", separation_at={"toy": 250})
    assert "## Does each task separate methods at its chosen budget?" in text and "Budgets (env steps): toy 250" in text
    assert (tmp_path / "report" / "separation_at_budgets.csv").exists()


@pytest.mark.parametrize("flag, message", [
    ("toy=abc", "--separation-at expects ENV=ENV_STEPS (a positive integer), got toy=abc"),
    ("toy=0", "--separation-at expects ENV=ENV_STEPS (a positive integer), got toy=0"),
    ("nope=100", "--separation-at names env 'nope', which no run under"),
])
def test_a_bad_budget_is_one_line_with_status_2(two_tasks, capsys, flag, message):
    from suite.cli import run_cli

    assert run_cli(report.main, "python -m suite.report", [str(two_tasks), "--separation-at", flag]) == 2
    assert message in capsys.readouterr().err


def test_two_configs_with_one_label_stay_two_methods_and_an_empty_budget_is_no_section(tmp_path, make_run):
    """Two masked PPO configs that differ only in their evaluation episodes (a tuning copy): never pooled."""
    import json as _json

    for seed in range(3):
        for algo, value in (("random_valid", 0.0), ("oracle", 20.0), ("never_move", 5.0)):
            make_run(tmp_path, "toy", algo, seed, returns=[value] * 3, algo_config={"num_envs": 4})
        make_run(tmp_path, "toy", "masked_ppo", seed, returns=[16.0 + seed] * 3)
        tuned = make_run(tmp_path / "tuning", "toy", "masked_ppo", seed, returns=[11.0 + seed] * 3)
        record = _json.loads((tuned / "config.json").read_text())
        record["eval_seeds"] = [2_000_000, 2_000_002]
        (tuned / "config.json").write_text(_json.dumps(record))
    loaded = results.load(tmp_path)
    summary, _ = report.summarize(loaded)
    masked = summary[summary["algo"] == "masked_ppo"]
    assert len(masked) == 2 and set(masked["config"]) == {"eval_seed_base=1000000", "eval_seed_base=2000000"}
    pairs = separation.method_pairs(report.run_scores(loaded), summary)
    (pair,) = pairs.to_dict("records")
    assert (pair["return_a"], pair["return_b"]) == (17.0, 12.0) and pair["differ"]
    _, _, text = report.write_report(tmp_path, tmp_path / "report", separation_at={"toy": 1})
    assert "at its chosen budget" not in text  # no learning run evaluated by then: nothing to judge, no traceback


def test_headroom_is_measured_against_a_proven_optimum_anchor_where_the_task_has_no_other_bound(tmp_path, make_run):
    """random_valid 0, job_shop_optimum (role optimum, the anchor) 10, first_in_first_out (simple) 8: the best
    simple policy leaves 20 points below the optimum; with random_valid equal to the bound there is no range."""
    for seed in range(2):
        for algo, value in (("random_valid", 0.0), ("job_shop_optimum", 10.0), ("first_in_first_out", 8.0),
                            ("masked_ppo", 9.0 + seed / 2)):
            make_run(tmp_path, "toy", algo, seed, returns=[value] * 3, algo_config={"num_envs": 4})
    _, _, table = _tables(tmp_path)
    assert table.iloc[0]["headroom"] == pytest.approx(20.0)
    flat = tmp_path / "flat"
    for seed in range(2):
        for algo, value in (("random_valid", 5.0), ("clairvoyant_demand", 5.0), ("last_demand", 5.0),
                            ("masked_ppo", 5.0 + seed)):
            make_run(flat, "toy", algo, seed, returns=[value] * 3, algo_config={"num_envs": 4})
    _, _, table = _tables(flat)
    assert math.isnan(table.iloc[0]["headroom"])  # bound == random_valid: no range to take a share of
