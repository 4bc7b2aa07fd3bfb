"""job_shop's ``job_features`` setting (issue 35): each job's dispatching features appended to the observation,
checked against the schedule read by hand, against what the dispatching rules read, and for the identity of every
run made before it existed."""


import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import envs
from envs.job_shop import JOB_FEATURES
from suite.check import check_api
from tests.helpers import assert_recorded_before_reads_as_default


def _by_hand(state, entry: int, job: int) -> list[float]:
    """Job ``job``'s features in entry ``entry``, read from the schedule one operation at a time."""
    n_machines = state.machines.shape[-1]
    time_scale = state.scale[entry] * n_machines
    scheduled = [k for k in range(n_machines) if state.starts[entry, job, k] >= 0]
    ready = max((state.starts[entry, job, k] + state.durations[entry, job, k] for k in scheduled), default=0)
    left = [k for k in range(n_machines) if k not in scheduled]
    if left:
        nxt = left[0]
        machine = state.machines[entry, job, nxt]
        on_machine = [state.starts[entry, j, k] + state.durations[entry, j, k]
                      for j in range(state.machines.shape[1]) for k in range(n_machines)
                      if state.machines[entry, j, k] == machine and state.starts[entry, j, k] >= 0]
        duration, machine_ready = state.durations[entry, job, nxt], max(on_machine, default=0)
    else:
        duration = machine_ready = 0
    work = sum(state.durations[entry, job, k] for k in left)
    return [ready / time_scale, duration / state.scale[entry], machine_ready / time_scale,
            max(ready, machine_ready) / time_scale, work / time_scale, len(left) / n_machines]


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), n=st.integers(1, 5), m=st.integers(1, 5),
       placement=st.sampled_from(["semi_active", "active"]))
def test_the_features_are_the_schedule_read_by_hand_and_leave_the_rest_of_the_observation_as_it_was(
        seed, n, m, placement):
    with_features = envs.make("job_shop", n_jobs=n, n_machines=m, placement=placement, job_features=True)
    without = envs.make("job_shop", n_jobs=n, n_machines=m, placement=placement)
    obs, _ = with_features.reset(seed=seed)
    plain, _ = without.reset(seed=seed)
    space = with_features.observation_space["observation"]
    assert space.shape[0] == without.observation_space["observation"].shape[0] + n * len(JOB_FEATURES)
    rng = np.random.default_rng(seed)
    for _ in range(n * m):
        assert space.contains(obs["observation"])
        head, tail = np.split(obs["observation"], [len(plain["observation"])])
        np.testing.assert_array_equal(head, plain["observation"])
        expected = [_by_hand(with_features.core.state, 0, job) for job in range(n)]
        np.testing.assert_allclose(tail.reshape(n, len(JOB_FEATURES)), expected, rtol=1e-6)
        job = int(rng.choice(np.flatnonzero(obs["action_mask"])))
        obs, _, terminated, *_ = with_features.step(job)
        plain, *_ = without.step(job)
    # the terminal observation: every job finished, its next-operation entries 0 and next_start its ready time
    assert terminated and space.contains(obs["observation"])
    tail = obs["observation"][len(plain["observation"]):].reshape(n, len(JOB_FEATURES))
    np.testing.assert_allclose(tail, [_by_hand(with_features.core.state, 0, job) for job in range(n)], rtol=1e-6)
    assert (tail[:, [1, 2, 4, 5]] == 0).all() and (tail[:, 3] == tail[:, 0]).all()


def test_the_features_hold_what_fifo_mopnr_and_spt_read():
    """FIFO is the open job of least ``ready`` (ties to the lowest index), MOPNR the most ``operations_left``,
    MWKR the most ``work_left``, SPT the least ``next_duration``: each rule's dispatch, read off the appended
    features, is the rule's own."""
    from baselines import load_algo
    from baselines.references.dispatching import dispatch

    rules = {"first_in_first_out": (0, np.argmin), "most_operations_remaining": (5, np.argmax),
             "shortest_processing_time": (1, np.argmin), "most_work_remaining": (4, np.argmax)}
    core = envs.make_core("job_shop-m", 8, job_features=True)
    core.reset(np.arange(8), [np.random.default_rng(i) for i in range(8)])
    rng = np.random.default_rng(1)
    k = len(JOB_FEATURES)
    for _ in range(60):
        mask = core.action_mask()[:, 0].astype(bool)
        features = core.features()[:, 0, -core.n_jobs * k:].reshape(8, core.n_jobs, k)
        for name, (column, pick) in rules.items():
            rule = load_algo(name)
            policy = rule.__new__(rule)  # key() reads the state only: no run around it needed
            keyed = np.where(mask, features[..., column], np.inf if pick is np.argmin else -np.inf)
            chosen = pick(keyed, axis=1)
            np.testing.assert_array_equal(chosen, dispatch(policy.key(core.state), mask), err_msg=name)
        core.step(np.array([rng.choice(np.flatnonzero(row)) for row in mask])[:, None, None])


@pytest.mark.parametrize("job_features", [False, True])
def test_the_checkers_pass_in_both_settings(job_features):
    assert [r.detail for r in check_api("job_shop", {"job_features": job_features}, seed=0) if not r.passed] == []


def test_the_per_job_network_reads_each_jobs_features():
    from envs.contract import _check_entry_features, _Probe

    core = envs.make_core("job_shop", 1, job_features=True)
    core.reset(np.arange(1), [np.random.default_rng(0)])
    _check_entry_features(_Probe(type(core), "job_shop"), core)  # the contract's check, on this config
    rows = core.entry_features()
    base = 6 * 6 * 9 + 6
    assert rows.shape == (6, 6 * 9 + 6 + len(JOB_FEATURES))
    np.testing.assert_array_equal(rows[2, -len(JOB_FEATURES):], base + 2 * len(JOB_FEATURES) + np.arange(6))
    assert envs.make_core("job_shop", 1).entry_features().shape == (6, 6 * 9 + 6)


def test_the_default_adds_nothing_to_a_runs_identity_and_a_run_before_it_reads_as_off(tmp_path):
    from suite.runner import RunRequest

    default = RunRequest.build("job_shop", "first_in_first_out", 0, out=tmp_path)
    explicit = RunRequest.build("job_shop", "first_in_first_out", 0, out=tmp_path,
                                env_config={"job_features": False})
    assert default.directory == explicit.directory == tmp_path.absolute() / "job_shop" / "first_in_first_out" / "seed0"
    on = RunRequest.build("job_shop", "first_in_first_out", 0, out=tmp_path, env_config={"job_features": True})
    assert on.directory.parent.name == "job_features=True"
    assert_recorded_before_reads_as_default("job_shop-m", "job_features", "first_in_first_out")
