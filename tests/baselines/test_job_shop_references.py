"""The job-shop solver and references: published optima reproduced through the optimum reference, solver schedules
checked by an independent checker, the solver against brute force, the dispatching rules against schedules
computed by hand, the cache, the per-episode proof in evaluation records, and the missing-solver message."""

import itertools
import sys

import numpy as np
import pandas as pd
import pytest

import envs
from baselines import job_shop_solver
from baselines.algorithm import EVAL_SEED_BASE
from baselines.evaluation import evaluate
from baselines.job_shop_solver import SolverMissing, cache_dir, semi_active_starts, solve
from baselines.random_valid import RandomValidConfig
from baselines.references import load, roles
from baselines.references.job_shop_optimum import JobShopOptimumConfig
from envs.job_shop import classic_instances, load_instance
from suite import report
from tests.helpers import DURATIONS, HAND, MACHINES, TINY, run_folder, run_main

# The hand-computed 3x3 instance (tests/helpers.py): HAND, MACHINES, DURATIONS.

# Each rule by hand, semi-active placement (start = max(job's last end, machine's last end)), ties to the lower job.
# SPT (next operation's duration): J1 (2) 0-2 on M0; J1 (1) 2-3 on M2; J0 (3 < 4, 4) 2-5 on M0; J0 (2) 5-7 on M1;
#   J0 (2) 7-9 on M2; J1 vs J2 both 4: J1 7-11 on M1; J2 11-15 on M1, 15-18 on M2, 18-19 on M0. Makespan 19.
# MWKR (work left; 7, 7, 8): J2 0-4 on M1; J0 (7 vs 7) 0-3 on M0; J1 (7) 3-5 on M0; J1 (5) 5-6 on M2;
#   J0 (4 = 4 = 4, lowest) 4-6 on M1; J1 (4 vs 4) 6-10 on M1; J2 (4) 6-9 on M2; J0 (2 > 1) 9-11 on M2;
#   J2 9-10 on M0. Makespan 11.
# MOPNR (operations left): J0 0-3 on M0; J1 3-5 on M0; J2 0-4 on M1; J0 4-6 on M1; J1 5-6 on M2; J2 6-9 on M2;
#   J0 9-11 on M2; J1 6-10 on M1; J2 9-10 on M0. Makespan 11.
# FIFO (job's ready time): J0 (all 0) 0-3 on M0; J1 (0) 3-5 on M0; J2 (0) 0-4 on M1; J0 (3) 4-6 on M1;
#   J2 (4) 4-7 on M2; J1 (5) 7-8 on M2; J0 (6) 8-10 on M2; J2 (7) 7-8 on M0; J1 8-12 on M1. Makespan 12.
HAND_SCHEDULES = {
    "shortest_processing_time": ([1, 1, 0, 0, 0, 1, 2, 2, 2], [[2, 5, 7], [0, 2, 7], [11, 15, 18]], 19),
    "most_work_remaining": ([2, 0, 1, 1, 0, 1, 2, 0, 2], [[0, 4, 9], [3, 5, 6], [0, 6, 9]], 11),
    "most_operations_remaining": ([0, 1, 2, 0, 1, 2, 0, 1, 2], [[0, 4, 9], [3, 5, 6], [0, 6, 9]], 11),
    "first_in_first_out": ([0, 1, 2, 0, 2, 1, 0, 2, 1], [[0, 4, 8], [3, 7, 8], [0, 4, 7]], 12),
}
RULES = list(HAND_SCHEDULES)

# Under placement="active" (a dispatched operation left-shifted into the earliest idle gap of its machine where it
# fits after its job's previous operation; tests/envs/test_job_shop_placement.py), by hand:
# SPT: the same order (its key does not depend on the placement); J1's last operation (M1, 4, job free at 3) does
#   not fit M1's gap 0-5 (3-7 > 5): 7-11; J2's first (M1, 4, free at 0) fits it: 0-4 (semi-active 11-15); J2's
#   second (M2, 3, free at 4) fits M2's gap 3-7: 4-7 (15-18); J2's last (M0, 1, free at 7): 7-8. Makespan 11.
# FIFO: no gap ever fits (J1's second operation, M2, 1, free at 5, meets M2's gap 0-4 too late: 7-8), so the
#   schedule is the semi-active one. (MWKR and MOPNR: not computed by hand.)
HAND_ACTIVE_SCHEDULES = {
    "shortest_processing_time": ([1, 1, 0, 0, 0, 1, 2, 2, 2], [[2, 5, 7], [0, 2, 7], [0, 4, 7]], 11),
    "first_in_first_out": HAND_SCHEDULES["first_in_first_out"],
}


def player(name, env_name, num_envs=1, **env_config):
    # a generous ceiling: the proofs take 1-30 s, and a busy machine must not turn a wall-clock limit into a failure
    config = JobShopOptimumConfig(num_envs=num_envs, time_limit=600.0) if name == "job_shop_optimum" else \
        RandomValidConfig(num_envs=num_envs)
    return load(name)(env_name, env_config, config, seed=0)


def play_episode(algo, seeds):
    """One episode of every entry; returns (actions taken per step, returns, final state)."""
    obs, _ = algo.env.reset(seed=seeds)
    n = len(seeds)
    actions, total, done = [], np.zeros(n), np.zeros(n, dtype=bool)
    while not done.all():
        action = algo.act(obs, algo.env)
        actions.append(np.asarray(action).copy())
        obs, reward, terminated, truncated, _ = algo.env.step(action)
        total += np.where(done, 0.0, reward)
        done |= terminated | truncated
    return np.array(actions), total, algo.env.core.state


def independent_check(machines, durations, starts):
    """Feasibility written here, apart from the env's and the solver's code: every job's operations in order, no
    two operations of a machine overlapping. Returns the makespan."""
    n, m = machines.shape
    for j in range(n):
        for k in range(1, m):
            assert starts[j][k] >= starts[j][k - 1] + durations[j][k - 1], f"job {j} op {k} starts too early"
    intervals = {}
    for j in range(n):
        for k in range(m):
            start = int(starts[j][k])
            intervals.setdefault(int(machines[j][k]), []).append((start, start + int(durations[j][k])))
    for machine, spans in intervals.items():
        spans.sort()
        for (_, end), (start, _) in zip(spans, spans[1:]):
            assert start >= end, f"machine {machine} overlaps"
    return max(int(starts[j][m - 1] + durations[j][m - 1]) for j in range(n))


def brute_force_optimum(machines, durations):
    """The best semi-active schedule over every dispatch order (distinct multiset permutations)."""
    n, m = machines.shape
    best = np.inf
    for order in set(itertools.permutations(np.repeat(np.arange(n), m))):
        best = min(best, (semi_active_starts(machines, durations, np.array(order)) + durations).max())
    return int(best)


@pytest.fixture
def hand_instance(tmp_path):
    path = tmp_path / "hand.txt"
    path.write_text(HAND)
    return {"instance": str(path), "n_jobs": 3, "n_machines": 3}


@pytest.mark.parametrize("rule", RULES)
def test_rules_match_the_hand_computed_schedules(rule, hand_instance):
    order, starts, makespan = HAND_SCHEDULES[rule]
    actions, total, state = play_episode(player(rule, "job_shop", **hand_instance), [0])
    assert actions[:, 0].tolist() == order
    assert state.starts[0].tolist() == starts
    assert state.machine_ready[0].max() == makespan
    assert total[0] == DURATIONS.sum(axis=1).max() - makespan
    assert independent_check(MACHINES, DURATIONS, state.starts[0]) == makespan


@pytest.mark.parametrize("rule", list(HAND_ACTIVE_SCHEDULES))
def test_rules_under_active_placement_match_the_hand_computed_schedules(rule, hand_instance):
    order, starts, makespan = HAND_ACTIVE_SCHEDULES[rule]
    actions, total, state = play_episode(player(rule, "job_shop", **hand_instance, placement="active"), [0])
    assert actions[:, 0].tolist() == order
    assert state.starts[0].tolist() == starts
    assert total[0] == DURATIONS.sum(axis=1).max() - makespan
    assert independent_check(MACHINES, DURATIONS, state.starts[0]) == makespan


def test_the_solver_finds_the_brute_force_optimum_of_small_instances():
    assert brute_force_optimum(MACHINES, DURATIONS) == 11  # no 10: M1's 10 units cannot all start before time 4
    rng = np.random.default_rng(5)
    cases = [(MACHINES, DURATIONS)] + [(rng.permuted(np.tile(np.arange(3), (3, 1)), axis=1),
                                        rng.integers(1, 10, (3, 3))) for _ in range(6)]
    for machines, durations in cases:
        solution = solve(machines, durations, cache=False)
        assert solution.optimal and solution.bound == solution.makespan == brute_force_optimum(machines, durations)
        assert independent_check(machines, durations, solution.starts) == solution.makespan


@pytest.mark.parametrize("size", [(6, 6), (10, 5), (4, 7)])
def test_a_random_instances_solver_schedule_is_feasible(size):
    rng = np.random.default_rng(sum(size))
    machines = rng.permuted(np.tile(np.arange(size[1]), (size[0], 1)), axis=1)
    durations = rng.integers(1, 100, size)
    solution = solve(machines, durations, time_limit=30, cache=False)
    assert independent_check(machines, durations, solution.starts) == solution.makespan
    assert solution.bound <= solution.makespan
    assert solution.bound >= durations.sum(axis=1).max()  # at least the longest job
    assert solution.optimal == (solution.bound == solution.makespan)


def classic(name):
    row = classic_instances()[name]
    return {"instance": name, "n_jobs": row["jobs"], "n_machines": row["machines"]}


@pytest.mark.parametrize("name", ["ft06", "la01", "la05", pytest.param("la02", marks=pytest.mark.slow),
                                  pytest.param("la03", marks=pytest.mark.slow),
                                  pytest.param("la04", marks=pytest.mark.slow)])
def test_published_optima_reproduce_through_the_optimum_reference(name):
    """The data is right and the replay is exact: the solver proves the published optimum, and replaying its
    schedule through the env ends at that makespan (ft06, la01, la05 take about a second; la02-la04 10-30 s)."""
    optimum = classic_instances()[name]["optimum"]
    algo = player("job_shop_optimum", "job_shop", **classic(name))
    actions, total, state = play_episode(algo, [0])
    makespan = int(state.machine_ready[0].max())
    assert makespan == optimum
    instance = load_instance(name)
    assert independent_check(instance.machines, instance.durations, state.starts[0]) == optimum
    assert total[0] == instance.durations.sum(axis=1).max() - optimum
    metrics = algo.episode_metrics(algo.env)
    assert metrics["proven_optimal"][0] == 1.0 and metrics["optimum_bound"][0] == optimum


def test_the_replay_ends_at_the_solvers_makespan_on_random_instances():
    algo = player("job_shop_optimum", "job_shop", num_envs=6)
    seeds = [EVAL_SEED_BASE + i for i in range(6)]
    _, total, state = play_episode(algo, seeds)
    for b in range(6):
        solution = solve(state.machines[b], state.durations[b])
        assert solution.cached and solution.optimal
        assert state.machine_ready[b].max() == solution.makespan
        np.testing.assert_array_equal(state.starts[b], solution.starts)  # the solver's schedule is semi-active
        assert independent_check(state.machines[b], state.durations[b], state.starts[b]) == solution.makespan
    rules = {rule: play_episode(player(rule, "job_shop", num_envs=6), seeds)[1] for rule in RULES}
    for rule, returns in rules.items():  # nothing beats the proven optimum
        assert (returns <= total + 1e-9).all(), rule


@pytest.mark.parametrize("name", ["ft06", "la01", "la05"])
def test_published_optima_reproduce_under_active_placement(name):
    """The oracle under ``placement="active"``: replayed in order of start times, each operation still starts no
    later than in the solver's schedule (the proof in job_shop_optimum's docstring holds with the left shift: it
    only moves an operation earlier than appending would), so the replay ends at the published optimum."""
    optimum = classic_instances()[name]["optimum"]
    algo = player("job_shop_optimum", "job_shop", **classic(name), placement="active")
    _, total, state = play_episode(algo, [0])
    instance = load_instance(name)
    assert independent_check(instance.machines, instance.durations, state.starts[0]) == optimum
    assert total[0] == instance.durations.sum(axis=1).max() - optimum


def test_the_replay_under_active_placement_ends_at_the_solvers_optimum_on_random_instances():
    algo = player("job_shop_optimum", "job_shop", num_envs=6, placement="active")
    seeds = [EVAL_SEED_BASE + i for i in range(6)]
    _, total, state = play_episode(algo, seeds)
    for b in range(6):
        solution = solve(state.machines[b], state.durations[b])
        assert solution.optimal
        assert (state.starts[b] <= solution.starts).all()  # never later than the solver's schedule
        assert independent_check(state.machines[b], state.durations[b], state.starts[b]) == solution.makespan
    for rule in RULES:  # nothing beats the proven optimum under this placement either
        returns = play_episode(player(rule, "job_shop", num_envs=6, placement="active"), seeds)[1]
        assert (returns <= total + 1e-9).all(), rule


def test_evaluation_records_say_whether_each_episode_is_proven():
    algo = player("job_shop_optimum", "job_shop", num_envs=2)
    policy = algo.eval_policies()[("greedy", "on")]
    records = evaluate("job_shop", {}, policy, episodes=3, seed_base=EVAL_SEED_BASE, rng=np.random.default_rng(0))
    assert [r["proven_optimal"] for r in records] == [1.0, 1.0, 1.0]
    assert all(r["optimum_bound"] == r["makespan"] for r in records)
    plain = evaluate("job_shop", {}, player("first_in_first_out", "job_shop").eval_policies()[("greedy", "on")],
                     episodes=2, seed_base=EVAL_SEED_BASE, rng=np.random.default_rng(0))
    assert "proven_optimal" not in plain[0]
    assert all(p["makespan"] >= r["makespan"] for p, r in zip(plain, records))


def test_an_unproven_result_is_cached_and_solved_again_with_a_longer_limit(tmp_path):
    instance = load_instance("la03")  # the warm start does not meet the bound: the MIP runs
    first = solve(instance.machines, instance.durations, time_limit=0.01, cache=tmp_path)
    assert not first.optimal and not first.cached and first.bound < first.makespan
    assert independent_check(instance.machines, instance.durations, first.starts) == first.makespan
    again = solve(instance.machines, instance.durations, time_limit=0.01, cache=tmp_path)
    assert again.cached and again.makespan == first.makespan and again.bound == first.bound
    longer = solve(instance.machines, instance.durations, time_limit=0.05, cache=tmp_path)
    assert not longer.cached and longer.makespan <= first.makespan
    assert len(list(tmp_path.glob("*.json"))) == 1


def test_processes_asking_for_one_instance_at_once_solve_it_once(tmp_path):
    # two reference seeds evaluate the same instances side by side: the instance's lock makes the second wait for
    # the first's answer and read it from the cache. A fork of this process solves slowly (the MIP sleeps first),
    # holding the lock; this process asks meanwhile and must get the child's answer, cached.
    import multiprocessing
    import time

    instance = load_instance("la03")
    ready = multiprocessing.get_context("fork").Event()

    def slow_solver():
        real = job_shop_solver._solve_mip

        def slowly(*args):
            ready.set()
            time.sleep(1.0)
            return real(*args)
        job_shop_solver._solve_mip = slowly
        solve(instance.machines, instance.durations, time_limit=0.01, cache=tmp_path)

    child = multiprocessing.get_context("fork").Process(target=slow_solver)
    child.start()
    try:
        assert ready.wait(60), "the child never started solving"
        mine = solve(instance.machines, instance.durations, time_limit=0.01, cache=tmp_path)
    finally:
        child.join(60)
    assert child.exitcode == 0 and mine.cached  # solved once, by the child
    assert len(list(tmp_path.glob("*.json"))) == 1

def test_a_proven_result_is_reused_whatever_the_limit(tmp_path, monkeypatch):
    solution = solve(MACHINES, DURATIONS, cache=tmp_path)
    assert solution.optimal and not solution.cached
    assert solve(MACHINES, DURATIONS, time_limit=1e-3, cache=tmp_path).cached
    monkeypatch.setenv("MASKBENCH_JOB_SHOP_CACHE", str(tmp_path / "elsewhere"))
    assert cache_dir() == tmp_path / "elsewhere"
    solve(MACHINES, DURATIONS)
    assert len(list((tmp_path / "elsewhere").glob("*.json"))) == 1


@pytest.mark.parametrize("durations, machines, message", [
    ([[1, 0], [2, 3]], [[0, 1], [1, 0]], "positive"),
    ([[1, 2], [2, 3]], [[0, 0], [1, 0]], "not a permutation"),
])
def test_the_solver_refuses_bad_instances(durations, machines, message):
    with pytest.raises(ValueError, match=message):
        solve(np.array(machines), np.array(durations), cache=False)


def test_a_missing_solver_says_how_to_install_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "highspy", None)  # import highspy now raises ImportError
    instance = load_instance("la03")
    with pytest.raises(SolverMissing, match=r"pip install 'maskbench\[jobshop\]'"):
        solve(instance.machines, instance.durations, cache=False)
    import importlib.util

    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *args: None)
    reason = load("job_shop_optimum").incompatibility("job_shop", {})
    assert reason and "pip install" in reason
    assert load("first_in_first_out").incompatibility("job_shop", {}) is None  # everything else still works


def test_roles_and_the_reports_words_for_the_anchor():
    assert roles()["job_shop_optimum"] == "optimum"
    assert all(roles()[rule] == "simple" for rule in RULES)
    proven = pd.Series({"role": "optimum", "proven_optimal": 1.0})
    partly = pd.Series({"role": "optimum", "proven_optimal": 0.96})
    heuristic = pd.Series({"role": "heuristic", "proven_optimal": float("nan")})
    assert report._optimum_words(proven) == "a proven optimum on every evaluation episode"
    assert "best known" in report._optimum_words(partly) and "96%" in report._optimum_words(partly)
    assert report._optimum_words(heuristic) == "not a proven optimum"


def test_the_dispatch_order_breaks_ties_by_job_then_operation():
    solution = job_shop_solver.Solution(np.array([[0, 5], [0, 3]]), 9, 9, True, 0.0, 1.0)
    assert solution.dispatch_order().tolist() == [0, 1, 1, 0]


def test_dispatching_rules_refuse_other_envs():
    assert "reference policy of job_shop" in load("most_work_remaining").incompatibility("speed_limit", {})
    assert envs.spec("job_shop-l").family == "job_shop"


def test_masked_ppo_on_job_shop_never_takes_an_inadmissible_action(tmp_path):
    """Trained (a tiny budget, torch backend) and evaluated with its mask, masked PPO never sends a finished job;
    without the mask at evaluation it does (the check can fail)."""
    assert run_main("--env", "job_shop", "--algo", "masked_ppo", "--backend", "torch", "--steps", "1024",
                    "--episodes", "8", "--out", str(tmp_path), "--quiet", *TINY) == 0
    directory = run_folder(tmp_path, "job_shop", "masked_ppo")
    progress, evaluation = pd.read_csv(directory / "progress.csv"), pd.read_csv(directory / "eval.csv")
    assert (progress["invalid_action_rate"] == 0).all() and progress["episodes"].iloc[-1] > 0
    assert (evaluation.loc[evaluation["mask"] == "on", "invalid_actions"] == 0).all()
    assert evaluation.loc[evaluation["mask"] == "off", "invalid_actions"].sum() > 0
    assert (evaluation["length"] == 36).all() and (evaluation["makespan"] > 0).all()
