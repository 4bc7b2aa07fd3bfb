"""job_shop's ``placement`` setting (issue 34): ``semi_active`` (the default, v0's placement) and ``active`` (L2D's left
shift into the earliest idle gap of the machine where the operation fits).

The active placement is checked against a schedule computed by hand on a 3x3 instance where left shifts happen,
and against a left shift written here, apart from the env's code, on random instances: every start, the schedule's
feasibility, the reward's telescoping and the lower bound. The setting is part of a run's identity only where it is
not the default, and runs recorded before it existed read as ``semi_active``.
"""


import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import envs
from envs.config import ConfigError
from envs.job_shop import JobShopCore
from suite import aggregate, results
from suite.check import check_api, check_mask
from suite.runner import RunRequest
from tests.helpers import DURATIONS, HAND, MACHINES, assert_recorded_before_reads_as_default

# The hand-computed 3x3 instance (tests/helpers.py): HAND, MACHINES, DURATIONS.

# SPT's dispatch order on it, [1, 1, 0, 0, 0, 1, 2, 2, 2], placed by hand:
#   J1 op0 on M0 at 0-2; J1 op1 on M2 at 2-3; J0 op0 on M0 at 2-5; J0 op1 on M1 at 5-7; J0 op2 on M2 at 7-9;
#   J1 op2 (M1, 4), job free at 3: M1's gap 0-5 before J0 fits 3-7? no (7 > 5): after M1's last end, 7-11.
#   J2 op0 (M1, 4), job free at 0: M1's gap 0-5 fits 0-4: LEFT SHIFT to 0-4 (semi-active: 11-15).
#   J2 op1 (M2, 3), job free at 4: M2's gap 0-2 (from 4: no), gap 3-7 (from 4: 4-7 fits): LEFT SHIFT to 4-7 (15-18).
#   J2 op2 (M0, 1), job free at 7: M0's gaps all end by 2: after M0's last end (5) and the job: 7-8 (18-19).
# Makespan 11 (the optimum; semi-active: 19). Return: longest job (J2: 8) - 11 = -3.
SPT_ORDER = [1, 1, 0, 0, 0, 1, 2, 2, 2]
SPT_ACTIVE_STARTS = [[2, 5, 7], [0, 2, 7], [0, 4, 7]]
SPT_SEMI_ACTIVE_STARTS = [[2, 5, 7], [0, 2, 7], [11, 15, 18]]


@pytest.fixture
def hand_config(tmp_path):
    path = tmp_path / "hand.txt"
    path.write_text(HAND)
    return {"instance": str(path), "n_jobs": 3, "n_machines": 3}


def left_shift_reference(machines, durations, order):
    """Active placement written here, apart from the env: each machine keeps a list of (start, end) intervals; an
    operation whose job is free from ``ready`` goes to the earliest start ``t >= ready`` such that ``[t, t + d)``
    lies in an idle gap of the machine (gaps tried in time order: before the first interval, between two, after the
    last). Returns the start times."""
    n, m = machines.shape
    starts = np.full((n, m), -1)
    busy = {machine: [] for machine in range(m)}
    next_op, ready = [0] * n, [0] * n
    for j in order:
        k = next_op[j]
        machine, d = int(machines[j][k]), int(durations[j][k])
        intervals = sorted(busy[machine])
        t = ready[j]
        for begin, end in intervals:  # slide past every interval that leaves no room before it
            if t + d <= begin:
                break
            t = max(t, end)
        starts[j][k] = t
        busy[machine].append((t, t + d))
        ready[j] = t + d
        next_op[j] += 1
    return starts


def feasible_makespan(machines, durations, starts):
    """Precedence within each job and no overlap on any machine, checked pairwise; the makespan."""
    n, m = machines.shape
    for j in range(n):
        for k in range(1, m):
            assert starts[j][k] >= starts[j][k - 1] + durations[j][k - 1]
    ops = [(int(machines[j][k]), int(starts[j][k]), int(starts[j][k] + durations[j][k])) for j in range(n)
           for k in range(m)]
    for a, (ma, sa, ea) in enumerate(ops):
        for mb, sb, eb in ops[a + 1:]:
            assert ma != mb or ea <= sb or eb <= sa, "two operations of a machine overlap"
    return max(end for _, _, end in ops)


def play(config, order):
    env = envs.make("job_shop", **config)
    env.reset(seed=0)
    rewards = [env.step(int(j))[1] for j in order]
    return env, rewards


def test_the_default_is_semi_active_and_a_bad_value_is_refused_in_one_line():
    assert envs.config_dict("job_shop", {})["placement"] == "semi_active"
    assert envs.make_core("job_shop-m").config.placement == "semi_active"
    with pytest.raises(ConfigError, match="config key 'placement' must be one of semi_active, active; got 'left'"):
        envs.make("job_shop", placement="left")


def test_spt_order_is_left_shifted_as_computed_by_hand(hand_config):
    env, rewards = play({**hand_config, "placement": "active"}, SPT_ORDER)
    s = env.core.state
    assert s.starts[0].tolist() == SPT_ACTIVE_STARTS
    assert s.machine_ready[0].tolist() == [8, 11, 9]  # each machine's latest end, not its last placed one's
    assert s.job_ready[0].tolist() == [9, 11, 8]
    assert feasible_makespan(MACHINES, DURATIONS, s.starts[0]) == 11
    assert sum(rewards) == 8 - 11 and all(r <= 0 for r in rewards)
    np.testing.assert_array_equal(s.lower_bound, JobShopCore.lower_bounds(s))
    semi, _ = play(hand_config, SPT_ORDER)
    assert semi.core.state.starts[0].tolist() == SPT_SEMI_ACTIVE_STARTS
    assert left_shift_reference(MACHINES, DURATIONS, SPT_ORDER).tolist() == SPT_ACTIVE_STARTS


def test_the_reference_left_shift_fills_a_gap_between_two_operations():
    """The reference itself on two cases computed by hand. One machine, four one-operation jobs: no gap ever
    opens, each is appended (0-2, 2-6, 6-9, 9-13). Two machines: J1 on M0 at 0-2; J0 on M1 at 0-5, then on M0 from
    its job's end, 5-9; J2's 3-unit operation on M0, its job free at 0, fits M0's gap 2-5 exactly."""
    machines = np.array([[0], [0], [0], [0]])
    durations = np.array([[2], [4], [3], [4]])
    assert left_shift_reference(machines, durations, [0, 1, 2, 3])[:, 0].tolist() == [0, 2, 6, 9]
    machines = np.array([[1, 0], [0, 1], [0, 1]])
    durations = np.array([[5, 4], [2, 1], [3, 1]])
    starts = left_shift_reference(machines, durations, [1, 0, 0, 2])
    assert starts[1, 0] == 0 and starts[0].tolist() == [0, 5] and starts[2, 0] == 2


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), n=st.integers(1, 6), m=st.integers(1, 6))
def test_active_placement_matches_an_independent_left_shift(seed, n, m):
    """Random instances and random dispatch orders: every start is the reference's, the schedule is feasible, the
    incremental lower bound is its definition, the return telescopes, and no operation starts later than the
    semi-active placement of the same order would start it (so the makespan is never longer)."""
    config = {"n_jobs": n, "n_machines": m, "duration_high": 20}
    env = envs.make("job_shop", placement="active", **config)
    semi = envs.make("job_shop", **config)
    obs, _ = env.reset(seed=seed)
    semi.reset(seed=seed)
    s = env.core.state
    rng = np.random.default_rng(seed)
    order, total = [], 0.0
    for _ in range(n * m):
        job = int(rng.choice(np.flatnonzero(obs["action_mask"])))
        order.append(job)
        obs, reward, terminated, _, info = env.step(job)
        semi.step(job)
        total += reward
        np.testing.assert_array_equal(s.lower_bound, JobShopCore.lower_bounds(s))
        np.testing.assert_array_equal(s.starts[0][s.starts[0] >= 0],
                                      left_shift_reference(s.machines[0], s.durations[0], order)[s.starts[0] >= 0])
    assert terminated
    makespan = feasible_makespan(s.machines[0], s.durations[0], s.starts[0])
    assert info["makespan"] == makespan == s.machine_ready[0].max()
    assert total == pytest.approx(s.durations[0].sum(axis=1).max() - makespan)
    assert (s.starts[0] <= semi.core.state.starts[0]).all()


def test_a_batch_places_each_entry_as_a_single_env_does():
    vec = envs.make_vector("job_shop-m", 8, placement="active")
    obs, _ = vec.reset(seed=5)
    singles = [envs.make("job_shop-m", placement="active") for _ in range(8)]
    for i, single in enumerate(singles):
        single.reset(seed=5 + i)  # the vector's entry i is seeded 5 + i
    rng = np.random.default_rng(1)
    for _ in range(100):
        actions = np.array([rng.choice(np.flatnonzero(row)) for row in obs["action_mask"]])
        obs, *_ = vec.step(actions)
        for i, single in enumerate(singles):
            single.step(int(actions[i]))
    for i, single in enumerate(singles):
        np.testing.assert_array_equal(vec.core.state.starts[i], single.core.state.starts[0])
        feasible_makespan(single.core.state.machines[0], single.core.state.durations[0], single.core.state.starts[0])


def test_checkers_pass_under_active_placement():
    assert [r.detail for r in check_api("job_shop", {"placement": "active"}, seed=0) if not r.passed] == []
    rows = check_mask("job_shop", {"placement": "active"}, steps=5_000, seed=0)
    assert [(r.check, r.detail) for r in rows if not r.passed or not r.exercised] == []


def test_the_observation_still_determines_the_state():
    vec = envs.make_vector("job_shop", 4, placement="active")
    obs, _ = vec.reset(seed=2)
    rng = np.random.default_rng(0)
    for _ in range(35):
        obs, *_ = vec.step(np.array([rng.choice(np.flatnonzero(row)) for row in obs["action_mask"]]))
        decoded, s = vec.core.decode(obs["observation"]), vec.core.state
        starts = np.where(decoded["scheduled"], decoded["lower_bound"] - decoded["durations"], -1)
        np.testing.assert_array_equal(starts, s.starts)  # a scheduled operation's C_LB is its end
        np.testing.assert_array_equal(decoded["machine_ready"], s.machine_ready)


# ---------------------------------------------------------------- the setting as part of a run's identity


def test_the_default_adds_nothing_to_a_runs_identity_and_active_names_its_folder(tmp_path):
    default = RunRequest.build("job_shop", "first_in_first_out", 0, out=tmp_path)
    explicit = RunRequest.build("job_shop", "first_in_first_out", 0, out=tmp_path,
                                env_config={"placement": "semi_active"})
    assert default.directory == explicit.directory == tmp_path.absolute() / "job_shop" / "first_in_first_out" / "seed0"
    active = RunRequest.build("job_shop", "first_in_first_out", 0, out=tmp_path, env_config={"placement": "active"})
    assert active.directory.parent.name == "placement=active"
    assert active.record()["env_config"]["placement"] == "active"


def test_a_run_recorded_before_the_setting_reads_as_semi_active():
    assert_recorded_before_reads_as_default("job_shop-m", "placement", "first_in_first_out")
    other = {"env": "speed_limit", "env_config": envs.config_dict("speed_limit", {}), "algo": "random_valid",
             "algo_config": {}}
    assert "placement" not in results.with_added_settings(other)["env_config"]


def test_the_task_name_shows_active_placement():
    import pandas as pd

    from suite.report import named_settings

    alone = {placement: pd.DataFrame({"env": ["job_shop"],
                                      "env_config": [f"invalid_action=repair,n_jobs=6,placement={placement}"]})
             for placement in ("semi_active", "active")}
    named = named_settings(["job_shop"])
    assert aggregate.task_labels(alone["active"], named) == {
        ("job_shop", "invalid_action=repair,n_jobs=6,placement=active"): "job_shop [placement=active]"}
    assert aggregate.task_labels(alone["semi_active"], named) == {
        ("job_shop", "invalid_action=repair,n_jobs=6,placement=semi_active"): "job_shop"}
