"""suite.report: pure functions of the loaded frames, checked on synthetic runs with known answers,
the command line's files, plots and bad input, and several agents' runs scored against references of
their own env config."""

import math
import shutil

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from suite import report, results
from suite.cli import run_cli
from tests.helpers import run_main, unpadded

T_975_2 = stats.t.ppf(0.975, 2)  # 95% Student-t quantile for 3 seeds


@pytest.fixture
def toy(tmp_path, make_run):
    """Env "toy": random_valid returns 10 (seeds 9, 10, 11), oracle 20, masked PPO 14, 15, 16 with
    periodic evaluations crossing 18 (score 80) at 200 steps on seed 0, at 300 on seed 1, never on 2."""
    for seed, value in enumerate([9.0, 10.0, 11.0]):
        make_run(tmp_path, "toy", "random_valid", seed, returns=[value] * 3, algo_config={"num_envs": 4})
        make_run(tmp_path, "toy", "oracle", seed, returns=[20.0] * 3, algo_config={"num_envs": 4})
    curves = {0: [12.0, 18.0, 19.0], 1: [12.0, 17.0, 18.5], 2: [10.0, 11.0, 12.0]}
    for seed in range(3):
        make_run(tmp_path, "toy", "masked_ppo", seed, iterations=3, steps=300, returns=[14.0 + seed] * 3,
                 evals=[{"episode": 0, "policy": "greedy", "mask": "off", "return": 5.0}],
                 progress={"eval_return_mean": curves[seed], "invalid_action_rate": [0.5, 0.0, 0.0],
                           "env_steps_per_second": [100.0, 200.0, 300.0]})
    return tmp_path


def row(summary, algo, config=""):
    return summary[(summary["algo"] == algo) & (summary["config"] == config)].iloc[0]


def test_summary_numbers_are_the_known_answers(toy):
    summary, problems = report.summarize(results.load(toy))
    assert problems == []
    masked = row(summary, "masked_ppo")
    assert masked["seeds"] == 3 and masked["policy"] == "greedy, mask on"
    assert masked["return_mean"] == pytest.approx(15.0)
    assert masked["return_ci_high"] - 15.0 == pytest.approx(T_975_2 * 1.0 / math.sqrt(3))
    assert masked["score"] == pytest.approx(50.0)  # (15 - 10) / (20 - 10)
    assert masked["score_ci_low"] == pytest.approx(50.0 - 10 * T_975_2 / math.sqrt(3))
    assert masked["threshold"] == pytest.approx(18.0)  # the return at score 80
    assert masked["seeds_reaching"] == 2 and masked["seeds_evaluated"] == 3
    assert masked["steps_to_threshold"] == pytest.approx(250.0)  # median of 200 and 300
    assert masked["seconds_to_threshold"] == pytest.approx(3.75)  # median of 3.0 and 4.5
    assert masked["train_invalid_rate"] == pytest.approx(0.5 / 3)  # 50 of the first 100 of 300 steps
    assert masked["mask_off_return"] == pytest.approx(5.0) and masked["eval_invalid_rate"] == 0.0
    assert masked["env_steps_per_second"] == pytest.approx(200.0)  # median per run, mean over runs
    assert row(summary, "random_valid")["score"] == pytest.approx(0.0)
    assert row(summary, "oracle")["score"] == pytest.approx(100.0)
    assert math.isnan(row(summary, "oracle")["mask_off_return"])  # no mask-off policy evaluated


def test_seeds_without_periodic_evaluations_are_not_counted_as_missing_the_threshold(toy, make_run, tmp_path):
    make_run(tmp_path, "toy", "masked_ppo", 3, iterations=3, steps=300, returns=[15.0] * 3,
             evals=[{"episode": 0, "policy": "greedy", "mask": "off", "return": 5.0}])  # --eval-every 0
    summary, _ = report.summarize(results.load(toy))
    masked = row(summary, "masked_ppo")
    assert (masked["seeds"], masked["seeds_evaluated"], masked["seeds_reaching"]) == (4, 3, 2)
    _, _, text = report.write_report(toy, tmp_path / "out")
    assert "| 2/3 (1 without periodic evaluation) |" in unpadded(text)


def test_threshold_from_the_command_line_the_env_target_or_score_80(toy, make_run):
    loaded = results.load(toy)
    summary, _ = report.summarize(loaded, thresholds={"toy": 12.0})
    assert row(summary, "masked_ppo")["seeds_reaching"] == 3
    assert row(summary, "masked_ppo")["steps_to_threshold"] == pytest.approx(100.0)
    summary, _ = report.summarize(loaded)  # "toy" is no registered env: the return at score 80
    assert row(summary, "masked_ppo")["threshold"] == pytest.approx(10.0 + 0.8 * (20.0 - 10.0))
    # portfolio's own target, three times the start cash in the units of the run's reward
    make_run(toy, "portfolio", "masked_ppo", 0)
    make_run(toy / "ratio", "portfolio", "masked_ppo", 0, env_config={"reward": "final_return", "start_cash": 500})
    summary, _ = report.summarize(results.load(toy))
    targets = summary.loc[summary["env"] == "portfolio", "threshold"].tolist()
    assert sorted(targets) == [3.0, 3000.0]
    assert report.env_target("portfolio", {"start_cash": 500.0}) == 1500.0
    assert math.isnan(report.env_target("portfolio", {"start_cash": -1})) and math.isnan(report.env_target("toy", {}))


def test_without_references_scores_are_missing_not_invented(tmp_path, make_run):
    make_run(tmp_path, "toy", "masked_ppo", 0)
    summary, _ = report.summarize(results.load(tmp_path))
    assert math.isnan(summary["score"].iloc[0]) and math.isnan(summary["threshold"].iloc[0])


def test_learning_curves_average_seeds_on_one_step_grid(toy, make_run, tmp_path):
    from suite.learning_curves import learning_curves

    curves = learning_curves(results.load(toy))
    masked = curves[curves["algo"] == "masked_ppo"].set_index("env_steps")
    assert masked.index[0] == 100 and masked.index[-1] == 300 and (masked["seeds"] == 3).all()
    assert masked.loc[100, "mean"] == pytest.approx((12 + 12 + 10) / 3)
    assert masked.loc[300, "mean"] == pytest.approx((19 + 18.5 + 12) / 3)
    middle = masked.index[len(masked) // 2]  # seeds interpolated between their own points
    expected = [float(pd.Series(c).pipe(lambda v: np.interp(middle, [100, 200, 300], v))) for c in
                ([12.0, 18.0, 19.0], [12.0, 17.0, 18.5], [10.0, 11.0, 12.0])]
    assert masked.loc[middle, "mean"] == pytest.approx(np.mean(expected))
    assert masked["curve"].eq("eval_return_mean").all() and masked["same_units"].all()
    references = curves[curves["algo"] == "random_valid"]
    assert references["curve"].eq("episode_return_mean").all()  # no periodic evaluation: training returns
    # seeds whose iterations end at other step counts: one grid, every seed on every point (no zig-zag)
    for seed, steps in enumerate(([100, 200, 300], [120, 250, 290])):
        make_run(tmp_path / "uneven", "toy", "masked_ppo", seed, iterations=3, steps=290, returns=[15.0] * 3,
                 progress={"env_steps": steps, "eval_return_mean": [1.0, 2.0, 3.0]})
    uneven = learning_curves(results.load(tmp_path / "uneven"))
    assert uneven["env_steps"].min() == 120 and uneven["env_steps"].max() == 290
    assert (uneven["seeds"] == 2).all() and uneven["env_steps"].is_monotonic_increasing


def test_training_returns_in_other_units_are_not_drawn_against_the_references(tmp_path, make_run):
    from suite.learning_curves import learning_curves, plot_learning_curves

    make_run(tmp_path, "toy", "random_valid", 0, returns=[10.0] * 3)
    make_run(tmp_path, "toy", "oracle", 0, returns=[20.0] * 3)
    for seed in range(2):  # trained on another reward, no periodic evaluation, no metric equal to the return
        make_run(tmp_path, "toy", "masked_ppo", seed, iterations=3, steps=300, returns=[15.0] * 3,
                 algo_config={"train_env_config": "reward=dense"})
    loaded = results.load(tmp_path)
    curves = learning_curves(loaded)
    masked = curves[curves["algo"] == "masked_ppo"]
    assert masked["curve"].eq("episode_return_mean").all() and not masked["same_units"].any()
    summary, _ = report.summarize(loaded)
    figure = plot_learning_curves(curves, summary, "toy")
    labels = figure.axes[0].get_legend_handles_labels()[1]
    assert labels == ["masked_ppo"] and "other units" in figure.axes[0].get_ylabel()
    assert plot_learning_curves(curves, summary[summary["algo"] != "masked_ppo"], "toy") is None  # nothing to show


def test_mismatched_configs_are_reported_apart_with_a_message(toy, make_run):
    for penalty in (0.01, 1.0):
        for seed in range(2):
            make_run(toy / f"penalty{penalty}", "toy", "penalty_ppo", seed, returns=[12.0 + penalty] * 3,
                     algo_config={"lr": 0.001, "penalty": penalty}, progress={"invalid_action_rate": [penalty / 2] * 2})
    summary, problems = report.summarize(results.load(toy))
    rows = summary[summary["algo"] == "penalty_ppo"].set_index("config")
    assert set(rows.index) == {"penalty=0.01", "penalty=1.0"} and (rows["seeds"] == 2).all()
    assert rows.loc["penalty=1.0", "return_mean"] == pytest.approx(13.0)
    note = ("toy/penalty_ppo: 2 configs differ in algo.penalty; each is summarised on its own row (config column), "
            "never averaged together")
    assert problems == [] and report.config_notes(results.load(toy)) == [note]  # a grid is asked for, not a fault
    _, _, text = report.write_report(toy, toy / "report")
    assert f"## Configs compared\n\n- {note}" in text and "## Problems" not in text
    assert report.plot_penalty_sweep(summary, "toy") is not None
    assert report.plot_penalty_sweep(summary[summary["algo"] != "penalty_ppo"], "toy") is None


def test_damaged_and_unfinished_runs_are_listed_not_scored(toy, make_run):
    make_run(toy, "toy", "masked_ppo", 7, evaluated=False)
    (make_run(toy, "toy", "masked_ppo", 8) / "eval.csv").write_text("episode,policy\n0,gre")
    summary, problems = report.summarize(results.load(toy))
    assert row(summary, "masked_ppo")["seeds"] == 3 and row(summary, "masked_ppo")["return_mean"] == 15.0
    assert [p.split(":")[0] for p in problems] == ["toy/masked_ppo/seed7", "toy/masked_ppo/seed8"]


def test_a_diverged_seed_is_counted_beside_its_method_not_scored_and_another_failure_is_not_counted(
        toy, make_run, capsys):
    def failed(seed, last_line):  # the method's config (steps 300), stopped by an error: error.txt, no eval.csv
        directory = make_run(toy, "toy", "masked_ppo", seed, iterations=3, steps=300, evaluated=False)
        (directory / "error.txt").write_text(f"Traceback (most recent call last):\n  ...\n{last_line}\n")

    failed(7, f"suite.runner.RunFailed: {results.DIVERGED} at iteration 3: policy_loss, vf_loss, entropy are nan")
    failed(8, "MemoryError")  # a failure of the machine, not of the method: listed, not counted
    summary, problems = report.summarize(results.load(toy))
    masked = row(summary, "masked_ppo")
    assert masked["seeds"] == 3 and masked["diverged"] == 1
    assert masked["return_mean"] == 15.0  # the finished seeds' mean, as before
    assert row(summary, "random_valid")["diverged"] == 0
    assert [p.split(":")[0] for p in problems] == ["toy/masked_ppo/seed7", "toy/masked_ppo/seed8"]
    out = toy / "report"
    assert run_cli(report.main, "python -m suite.report", [str(toy), "--out", str(out)]) == 0
    text = unpadded((out / "report.md").read_text())
    assert "| masked_ppo | – | 3 (+1 diverged) | greedy, mask on | 15 (12.52 to 17.48) |" in text
    assert "a mean conditional on not diverging" in text
    assert pd.read_csv(out / "summary.csv").set_index("algo").loc["masked_ppo", "diverged"] == 1


def test_cli_writes_summary_report_and_plots(toy, capsys):
    out = toy / "report"
    assert run_cli(report.main, "python -m suite.report", [str(toy), "--out", str(out)]) == 0
    printed = capsys.readouterr()
    assert "| masked_ppo | – | 3 | greedy, mask on | 15 (12.52 to 17.48) | 50.0 (25.2 to 74.8) | – |" in \
        unpadded(printed.out)
    assert "100 = **oracle** (20)" in printed.out  # a user env's own upper reference is its anchor
    summary = pd.read_csv(out / "summary.csv")
    assert set(summary["algo"]) == {"random_valid", "oracle", "masked_ppo"}
    text = (out / "report.md").read_text()
    assert "## toy" in text and "![learning_curves_toy](plots/learning_curves_toy.png)" in text
    png = (out / "plots" / "learning_curves_toy.png").read_bytes()
    assert png.startswith(b"\x89PNG") and len(png) > 10_000
    # across tasks: every run's score for other tools, and the aggregate of the one learning method
    raw = pd.read_csv(out / "raw_scores.csv")
    assert len(raw) == 9 and set(raw.columns) >= {"task", "method", "seed", "score"}
    assert sorted(raw.loc[raw["method"] == "masked_ppo", "score"]) == pytest.approx(
        sorted(summary_scores(raw)))
    aggregate = pd.read_csv(out / "aggregate.csv")
    assert aggregate["method"].tolist() == ["masked_ppo"] and aggregate.loc[0, "mean"] == pytest.approx(50.0)
    assert "## Across tasks" in text and "![aggregate](plots/aggregate.png)" in text
    assert (out / "plots" / "performance_profiles.png").is_file()


def summary_scores(raw):
    """masked_ppo's per-seed scores by hand: (return - random_valid's mean) / (oracle's - random_valid's)."""
    lower = raw.loc[raw["algo"] == "random_valid", "return"].mean()
    upper = raw.loc[raw["algo"] == "oracle", "return"].mean()
    return [100 * (r - lower) / (upper - lower) for r in raw.loc[raw["method"] == "masked_ppo", "return"]]


@pytest.mark.parametrize("argv, message", [
    ([], "no runs under"),
    (["--threshold", "toy=fast"], "--threshold expects ENV=NUMBER"),
    (["--threshold", "toy"], "--threshold expects KEY=VALUE"),
])
def test_cli_bad_input_is_one_line_with_status_2(tmp_path, capsys, argv, message):
    assert run_cli(report.main, "python -m suite.report", [str(tmp_path), *argv]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "report.md").exists()


@pytest.mark.parametrize("argv, message", [
    (["--threshold", "toy=nan"], "--threshold expects a finite return, got toy=nan"),
    (["--threshold", "nope=3"], "--threshold names env 'nope', which no run under"),
    (["--out", "FILE"], "cannot write the report to"),
])
def test_cli_bad_input_on_real_runs_is_one_line_with_status_2(toy, capsys, argv, message):
    (toy / "FILE").write_text("a file, not a folder")
    argv = [str(toy / "FILE") if a == "FILE" else a for a in argv]
    assert run_cli(report.main, "python -m suite.report", [str(toy), *argv]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1, err


def test_a_damaged_run_is_a_problem_of_the_report_never_a_traceback(toy, make_run, capsys):
    header_only = make_run(toy, "toy", "masked_ppo", 7) / "progress.csv"
    header_only.write_text(header_only.read_text().splitlines()[0] + "\n")
    bad_seed = '{"env": "toy", "algo": "masked_ppo", "seed": "x"}'
    (make_run(toy, "toy", "masked_ppo", 8) / "config.json").write_text(bad_seed)
    assert run_cli(report.main, "python -m suite.report", [str(toy)]) == 0
    out, err = capsys.readouterr()
    assert "progress.csv has no rows though eval.csv exists" in err and "seed is not an integer" in err
    assert "## Problems" in out and "Traceback" not in err


def test_the_report_scores_each_env_config_against_its_own_references_and_lists_agents(tmp_path):
    for algo in ("random_valid", "relaxed_heuristic"):
        for agents in (1, 3):
            out = tmp_path / f"k{agents}"
            assert run_main("--env", "portfolio", "--env-config", f"n_agents={agents}", "--env-config",
                            "price_impact=0.02", "--algo", algo, "--steps", "2000", "--episodes", "20",
                            "--out", str(out), "--quiet") == 0
    # both configs in one folder, as a user comparing them would have them
    merged = tmp_path / "all"
    for agents in (1, 3):
        for path in (tmp_path / f"k{agents}").rglob("seed0"):
            target = merged / f"k{agents}" / path.relative_to(tmp_path / f"k{agents}")
            target.parent.mkdir(parents=True, exist_ok=True)
            path.rename(target)
    summary, _, text = report.write_report(merged, tmp_path / "report")
    assert len(summary) == 4
    # each config's random_valid scores 0 and its anchor 100 against references of its own config
    assert summary.set_index(["algo", "config"])["score"].round(6).to_dict() == {
        ("random_valid", "n_agents=1"): 0.0, ("relaxed_heuristic", "n_agents=1"): 100.0,
        ("random_valid", "n_agents=3"): 0.0, ("relaxed_heuristic", "n_agents=3"): 100.0}
    agents = pd.read_csv(tmp_path / "report" / "agents.csv")
    assert sorted(agents["agent"].unique()) == ["trader_0", "trader_1", "trader_2"]
    assert len(agents) == 2 * 3 and (agents["eval_invalid_rate"] == 0).all()
    assert "| relaxed_heuristic | n_agents=3 | trader_2 |" in unpadded(text)


def test_methods_that_ran_different_tasks_get_a_table_on_the_tasks_they_share(toy, make_run):
    """A second task "toy2" that only penalty PPO ran beside masked PPO's "toy": the report compares the two
    on "toy", the one task both ran, in a table and a figure of its own."""
    for seed in range(2):
        make_run(toy, "toy", "penalty_ppo", seed, returns=[12.0] * 3, algo_config={"num_envs": 4})  # score 20
        make_run(toy, "toy2", "random_valid", seed, returns=[0.0] * 3, algo_config={"num_envs": 4})
        make_run(toy, "toy2", "oracle", seed, returns=[10.0] * 3, algo_config={"num_envs": 4})
        make_run(toy, "toy2", "penalty_ppo", seed, returns=[5.0] * 3, algo_config={"num_envs": 4})  # score 50
    out = toy / "report"
    report.write_report(toy, out)
    text = (out / "report.md").read_text()
    task = "toy"  # a task is an env at its env config, named by the env where it ran at one config
    assert "### On the 1 task masked_ppo, penalty_ppo all ran" in text and f"Tasks: {task}." in text
    per_set = pd.read_csv(out / "aggregate_by_task_set.csv").set_index("method")
    assert per_set.loc["penalty_ppo", "mean"] == pytest.approx(20.0)  # toy only, not toy2's 50
    assert per_set.loc["masked_ppo", "mean"] == pytest.approx(50.0) and set(per_set["task_set"]) == {task}
    overall = pd.read_csv(out / "aggregate.csv").set_index("method")
    assert overall.loc["penalty_ppo", "mean"] == pytest.approx((20.0 + 50.0) / 2)
    assert (out / "plots" / "aggregate_tasks_1.png").is_file()
    differences = pd.read_csv(out / "iqm_differences.csv").set_index(["method", "versus"])
    pair = differences.loc[("masked_ppo", "penalty_ppo")]  # on toy alone, the task both ran: 50 - 20
    assert pair["tasks"] == 1 and pair["iqm_difference"] == pytest.approx(30.0)
    assert "### Which differences survive which resampling" in text


def test_an_aggregate_figure_is_titled_by_the_tasks_it_pools():
    from suite import aggregate, aggregate_plots

    frame = pd.DataFrame({"task": ["a", "a", "b"], "method": ["x", "x", "x"], "algo": ["x", "x", "x"],
                          "seed": [0, 1, 0], "score": [10.0, 20.0, 30.0]})
    figure = aggregate_plots.plot_aggregates(aggregate.aggregate_table(frame, n_resamples=50),
                                             title="On the 2 tasks x ran")
    assert figure._suptitle.get_text().startswith("On the 2 tasks x ran: point estimate")
    assert [ax.get_title() for ax in figure.axes] == ["Median of task means", "IQM", "Mean", "Gap to the anchor"]
    assert figure.axes[0].get_yticklabels()[0].get_text() == "x\n2 tasks, 3 runs"


def test_a_task_counts_as_learned_only_where_a_method_beats_its_best_simple_policy(toy, make_run):
    """toy: masked PPO's seeds 14, 15, 16 against a simple policy at 13 (one-sample t = 3.46, df 2: p = 0.037);
    toy2: penalty PPO at 5 against a simple policy at 9: not learned, listed, and left out of the aggregate."""
    for seed in range(3):
        make_run(toy, "toy", "last_demand", seed, returns=[13.0] * 3, algo_config={"num_envs": 4})
        make_run(toy, "toy2", "random_valid", seed, returns=[0.0] * 3, algo_config={"num_envs": 4})
        make_run(toy, "toy2", "never_move", seed, returns=[9.0] * 3, algo_config={"num_envs": 4})
        make_run(toy, "toy2", "oracle", seed, returns=[10.0] * 3, algo_config={"num_envs": 4})
        make_run(toy, "toy2", "penalty_ppo", seed, returns=[4.0 + seed] * 3)
    summary, _, text = report.write_report(toy, toy / "report")
    masked, penalty = row(summary, "masked_ppo"), row(summary, "penalty_ppo")
    p = stats.ttest_1samp([14.0, 15.0, 16.0], 13.0, alternative="greater").pvalue
    assert masked["best_simple"] == "last_demand" and masked["p_beats_best_simple"] == pytest.approx(p)
    assert masked["p_beats_best_simple_holm"] == pytest.approx(min(1.0, 2 * p))  # two method rows, Holm
    assert not masked["beats_best_simple"]  # 0.074 after the correction: not beyond seed noise
    assert penalty["p_beats_best_simple"] > 0.95 and not penalty["beats_best_simple"]
    assert "**Not learned at this budget**: no method beats the best simple policy (never_move)" in text
    assert "No task is learned at this budget" in text
    assert not (toy / "report" / "aggregate.csv").exists()
    # with the penalty's task taken away, one test is left: masked PPO beats its simple policy, toy is learned
    shutil.rmtree(toy / "toy2")
    summary, _, text = report.write_report(toy, toy / "report2")
    assert row(summary, "masked_ppo")["beats_best_simple"]
    assert "**Learned at this budget**: masked_ppo beat last_demand beyond seed noise." in text
    assert pd.read_csv(toy / "report2" / "aggregate.csv")["method"].tolist() == ["best simple policy", "masked_ppo"]
    assert "over the 1 task where some method beats the best simple policy beyond seed noise: toy;" in text


def test_old_oracle_runs_read_as_what_they_are_and_a_clairvoyant_bound_is_never_the_100(tmp_path, make_run):
    """speed_limit's former oracle sees the whole road: its runs (algo "oracle" in config.json) load as
    clairvoyant_dp, the bound; the 100 is the best non-clairvoyant reference (here the simple policy)."""
    for seed in range(2):
        make_run(tmp_path, "speed_limit", "random_valid", seed, returns=[-100.0] * 3, env_config={})
        make_run(tmp_path, "speed_limit", "oracle", seed, returns=[60.0] * 3, env_config={})
        make_run(tmp_path, "speed_limit", "max_admissible_speed", seed, returns=[40.0] * 3, env_config={})
        make_run(tmp_path, "speed_limit", "masked_ppo", seed, returns=[50.0 + seed] * 3, env_config={})
    summary, _, text = report.write_report(tmp_path, tmp_path / "report")
    assert set(summary["algo"]) == {"random_valid", "clairvoyant_dp", "max_admissible_speed", "masked_ppo"}
    masked = row(summary, "masked_ppo")
    assert masked["anchor"] == "max_admissible_speed" and masked["score"] == pytest.approx(100 * 150.5 / 140)
    assert masked["bound"] == "clairvoyant_dp" and masked["bound_share"] == pytest.approx(100 * 150.5 / 160)
    assert "100 = **max_admissible_speed** (40)" in text and "Upper bound: clairvoyant_dp (60)" in text
    raw = pd.read_csv(tmp_path / "report" / "raw_scores.csv").set_index("algo")
    assert raw.loc["clairvoyant_dp", "bound_share"].tolist() == [100.0, 100.0]


def test_text_from_results_cannot_inject_markdown_or_html(toy, make_run):
    make_run(toy, "toy", "masked_ppo", 9, returns=[15.0] * 3,
             evals=[{"episode": 0, "policy": "<b>x</b>|evil", "mask": "on", "return": 1.0}])
    (toy / "toy" / "masked_ppo" / "seed9" / "eval.csv").write_text(
        "episode,env_seed,policy,mask,return,length,invalid_steps,invalid_actions\n"
        + "".join(f"{i},{1_000_000 + i},<b>x</b>|evil,on,15.0,20,0,0\n" for i in range(3)))
    _, _, text = report.write_report(toy, toy / "report")
    assert "<b>" not in text and "&lt;b&gt;x&lt;/b&gt;\\|evil, mask on" in text


def test_two_configs_of_one_env_are_titled_by_what_differs_with_the_full_config_below(tmp_path, make_run):
    for periods in (20, 40):
        make_run(tmp_path / str(periods), "toy", "random_valid", 0, returns=[1.0],
                 env_config={"periods": periods, "n_assets": 3})
    text = report.markdown(*report.summarize(results.load(tmp_path)))
    assert "## toy [periods=20]" in text and "## toy [periods=40]" in text
    assert "Env config: `n_assets=3,periods=20`." in text


def test_an_env_setting_names_a_task_not_a_method_in_the_pooled_labels(tmp_path, make_run):
    """Across tasks a method is pooled by its algo config: two env configs of one env are two tasks, so the
    aggregates call masked PPO on both "masked_ppo", while the per-task rows keep telling the configs apart."""
    for periods in (20, 40):
        make_run(tmp_path / str(periods), "toy", "masked_ppo", 0, env_config={"periods": periods})
    runs = results.load(tmp_path).complete().runs
    per_task, _ = report._config_differences(runs)
    pooled, _ = report._config_differences(runs, pooled=True)
    assert sorted(per_task.values()) == ["periods=20", "periods=40"] and set(pooled.values()) <= {""}
