"""suite.job_shop_gaps: the optimality gap on held-out job-shop instances, checked against numbers computed by
hand on a synthetic results folder, and its place in suite.report (job_shop_gaps.csv, the report's section)."""

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from baselines.references import roles
from suite import job_shop_gaps, report, results

SIX = {"n_jobs": 6, "n_machines": 6, "duration_low": 1, "duration_high": 99, "instance": ""}

# Three held-out instances (env seeds 1,000,000 .. 1,000,002). The solver proves the first two optimal (100 and
# 200) but not the third (its schedule 400, its bound 300); first_in_first_out finds 380 there, the best known.
MAKESPANS = {("job_shop_optimum", 0): [100, 200, 400], ("first_in_first_out", 0): [110, 220, 380],
             ("most_work_remaining", 0): [120, 240, 440], ("random_valid", 0): [200, 300, 600],
             ("masked_ppo", 0): [105, 210, 390], ("masked_ppo", 1): [115, 230, 420]}


@pytest.fixture
def shop(tmp_path, make_run):
    for (algo, seed), makespans in MAKESPANS.items():
        metrics = {"makespan": makespans}
        if algo == "job_shop_optimum":
            metrics.update(proven_optimal=[1, 1, 0], optimum_bound=[100, 200, 300])
        make_run(tmp_path, "job_shop", algo, seed, env_config=SIX, returns=[-float(m) for m in makespans],
                 metrics=metrics, algo_config={"num_envs": 4} if algo != "masked_ppo" else None)
    # the optimum's rows written in another order: the join is on the episode's env seed, not the row
    path = next(tmp_path.glob("job_shop/job_shop_optimum/**/eval.csv"))
    pd.read_csv(path).iloc[::-1].to_csv(path, index=False)
    return tmp_path


def table_of(root) -> pd.DataFrame:
    done = results.load(root).complete()
    return job_shop_gaps.gap_table(done.runs, done.evals, roles())


def row(table, algo):
    return table[table["algo"] == algo].iloc[0]


def test_gaps_are_the_hand_computed_ones(shop):
    table = table_of(shop)
    assert set(table["algo"]) == {algo for algo, _ in MAKESPANS}
    assert (table["size"] == "6x6").all() and (table["episodes"] == 3).all()
    # the third instance is not proven: its reference is the best known, 380 (first_in_first_out's), not 400
    assert (table["reference"] == "best known").all() and table["proven_share"].iloc[0] == pytest.approx(2 / 3)
    fifo = row(table, "first_in_first_out")
    assert fifo["gap_mean"] == pytest.approx((0.10 + 0.10 + 0.0) / 3)
    assert fifo["gap_to_bound_mean"] == pytest.approx((0.10 + 0.10 + 380 / 300 - 1) / 3)
    assert fifo["reference_mean"] == pytest.approx((100 + 200 + 380) / 3)
    assert math.isnan(fifo["gap_ci_low"])  # one seed: no interval over seeds
    assert row(table, "most_work_remaining")["gap_mean"] == pytest.approx((0.2 + 0.2 + 440 / 380 - 1) / 3)
    assert row(table, "job_shop_optimum")["gap_mean"] == pytest.approx((400 / 380 - 1) / 3)
    assert row(table, "random_valid")["gap_mean"] == pytest.approx((1.0 + 0.5 + 600 / 380 - 1) / 3)
    # masked PPO: the mean over its two seeds of each seed's mean gap, Student-t over the seeds
    per_seed = np.array([(0.05 + 0.05 + 390 / 380 - 1) / 3, (0.15 + 0.15 + 420 / 380 - 1) / 3])
    masked = row(table, "masked_ppo")
    assert masked["seeds"] == 2 and masked["role"] == "method"
    assert masked["gap_mean"] == pytest.approx(per_seed.mean())
    half = stats.t.ppf(0.975, 1) * per_seed.std(ddof=1) / math.sqrt(2)
    assert (masked["gap_ci_low"], masked["gap_ci_high"]) == pytest.approx((per_seed.mean() - half,
                                                                           per_seed.mean() + half))
    # ... and over the instances: each instance's gap averaged over the seeds, Student-t over the three
    per_instance = np.array([0.10, 0.10, (390 / 380 + 420 / 380) / 2 - 1])
    half = stats.t.ppf(0.975, 2) * per_instance.std(ddof=1) / math.sqrt(3)
    assert (masked["instance_ci_low"], masked["instance_ci_high"]) == pytest.approx(
        (per_instance.mean() - half, per_instance.mean() + half))
    assert masked["makespan_mean"] == pytest.approx(np.mean(MAKESPANS["masked_ppo", 0] + MAKESPANS["masked_ppo", 1]))
    # below the best rule (first_in_first_out, deterministic: a one-sample test of the seeds against its gap)
    assert masked["p_below_best_rule"] == pytest.approx(
        stats.ttest_1samp(-per_seed, -fifo["gap_mean"], alternative="greater").pvalue)
    assert math.isnan(fifo["p_below_best_rule"])
    # beside the literature's number for the same rule at the same size
    assert row(table, "most_work_remaining")["zhang2020_name"] == "MWKR"
    assert row(table, "most_work_remaining")["zhang2020_gap"] == pytest.approx(0.346)
    assert math.isnan(fifo["zhang2020_gap"])
    assert list(table["algo"])[:2] == ["job_shop_optimum", "first_in_first_out"]  # sorted by gap


def test_a_proven_optimum_is_the_reference_even_where_a_run_claims_better(shop, make_run, tmp_path):
    done = results.load(shop).complete()
    evals = done.evals.copy()
    optimum = evals["algo"] == "job_shop_optimum"
    evals.loc[optimum, "proven_optimal"] = 1  # now every instance is proven: 400 is the optimum of the third
    table = job_shop_gaps.gap_table(done.runs, evals, roles())
    assert (table["reference"] == "proven optimum").all() and table["proven_share"].iloc[0] == 1.0
    assert row(table, "first_in_first_out")["gap_mean"] == pytest.approx((0.10 + 0.10 + 380 / 400 - 1) / 3)
    assert row(table, "first_in_first_out")["gap_to_bound_mean"] == pytest.approx(
        row(table, "first_in_first_out")["gap_mean"])


def test_only_tasks_with_the_optimum_and_only_their_own_env_config(shop, make_run):
    # another env config (a classic instance) without its own optimum run: no row; portfolio: no row
    make_run(shop / "ft06", "job_shop", "first_in_first_out", 0, env_config={**SIX, "instance": "ft06"},
             returns=[-60.0] * 3, metrics={"makespan": [60, 60, 60]}, algo_config={"num_envs": 2})
    make_run(shop, "portfolio", "masked_ppo", 0)
    table = table_of(shop)
    assert len(table) == len(MAKESPANS) - 1 and set(table["env"]) == {"job_shop"}
    assert "instance=ft06" not in set(table["env_config"])
    done = results.load(shop).complete()
    without = done.evals[done.evals["algo"] != "job_shop_optimum"]
    assert job_shop_gaps.gap_table(done.runs, without, roles()).empty


def test_the_report_writes_the_csv_and_the_section(shop, tmp_path):
    _, _, text = report.write_report(shop, tmp_path / "out")
    written = pd.read_csv(tmp_path / "out" / "job_shop_gaps.csv")
    assert written["gap_mean"].tolist() == pytest.approx(table_of(shop)["gap_mean"].tolist())
    assert "## Job shop: optimality gap on held-out instances" in text
    assert "the solver proved 67% of them optimal" in text and "| gap to best known |" in text
    assert "| first_in_first_out | simple | 1 | 3 | 236.7 | 6.7% | – |" in text
    assert "| most_work_remaining | simple | 1 | 3 | 266.7 | 18.6% |" in text and "| MWKR 34.6% |" in text
    assert "Zhang et al. (2020) at 6x6: SPT 42.0%, MWKR 34.6%, FDD/MWKR 24.0%, MOPNR 29.2%, L2D 17.7%" in text
    assert job_shop_gaps.ZHANG_2020_SOURCE in text


def test_the_section_says_which_placement_each_task_used(shop, make_run, tmp_path):
    """The same instances under placement=active (its own optimum run): a task of its own, titled by the setting,
    whose note says its operations are left-shifted as L2D's are; the default task's note says they are appended."""
    active = {**SIX, "placement": "active"}
    for algo, makespans in (("job_shop_optimum", [100, 200, 400]), ("shortest_processing_time", [130, 260, 520])):
        metrics = {"makespan": makespans}
        if algo == "job_shop_optimum":
            metrics.update(proven_optimal=[1, 1, 1], optimum_bound=[100, 200, 400])
        make_run(shop / "active", "job_shop", algo, 0, env_config=active, returns=[-float(m) for m in makespans],
                 metrics=metrics, algo_config={"num_envs": 4})
    _, _, text = report.write_report(shop, tmp_path / "out")
    assert "### job_shop [placement=active] (6x6)" in text
    assert "| shortest_processing_time | simple | 1 | 3 | 303.3 | 30.0% |" in text and "| SPT 42.0% |" in text
    assert "here every operation is left-shifted as L2D's env does it (placement=active" in text
    assert "here it is appended (placement=semi_active, semi-active)" in text
    assert "| job_shop_optimum | optimum |" in text and "| job_shop_optimum (placement" not in text


def test_no_job_shop_runs_no_file_and_no_section(tmp_path, make_run):
    make_run(tmp_path, "toy", "random_valid", 0, algo_config={"num_envs": 4})
    make_run(tmp_path, "toy", "masked_ppo", 0)
    _, _, text = report.write_report(tmp_path, tmp_path / "out")
    assert not (tmp_path / "out" / "job_shop_gaps.csv").exists() and "Job shop" not in text


def test_the_literature_numbers_are_table_1s():
    """Zhang et al. 2020, Table 1, as printed (gap %, for their rules and L2D, and OR-Tools' optimal rate)."""
    assert job_shop_gaps.ZHANG_2020[6, 6] == {"SPT": 42.0, "MWKR": 34.6, "FDD/MWKR": 24.0, "MOPNR": 29.2,
                                              "L2D": 17.7, "opt_rate": 100.0}
    assert job_shop_gaps.ZHANG_2020[15, 15]["L2D"] == 26.7 and job_shop_gaps.ZHANG_2020[15, 15]["opt_rate"] == 99.0
    assert job_shop_gaps.ZHANG_2020[10, 10]["MOPNR"] == 36.5
