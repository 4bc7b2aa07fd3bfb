"""The env setting ``invalid_action`` (issue 35): how an inadmissible action is executed, ``noop`` (not executed: the
env's do-nothing action) or ``repair`` (the nearest admissible action), on every built-in env.

Each definition is checked against an independent computation: a brute-force nearest over every admissible value
for discrete actions, the admissible set's projection (itself checked to be nearer than sampled admissible points)
for Box actions, and each env's documented do-nothing action for ``noop``. The attempt is still counted and named in
the info, strict mode still raises, the Gymnasium and PettingZoo checkers pass under both settings, and the setting
is part of a run's identity only where it differs from the env's default.
"""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pandas as pd
import pytest
from gymnasium.utils.env_checker import check_env
from hypothesis import given, settings
from hypothesis import strategies as st
from pettingzoo.test import parallel_api_test

import envs
from envs.config import ConfigError
from envs.contract import EnvContractError
from envs.core import INVALID_ACTION_SETTINGS, EnvCore
from suite import aggregate, check, results
from suite.runner import RunRequest

ENVS = ("portfolio", "speed_limit", "sum_to_zero", "job_shop")
#: Each env's default: the fallback it had before the setting existed (so existing runs keep their identity).
DEFAULTS = {"portfolio": "noop", "speed_limit": "repair", "sum_to_zero": "noop", "job_shop": "repair"}
CASES = [(name, setting) for name in ENVS for setting in INVALID_ACTION_SETTINGS]


# ---------------------------------------------------------------- what each setting executes, computed independently


def brute_nearest(mask_block: np.ndarray, value: int) -> int:
    """The admissible value nearest ``value`` in one mask block, the lower on a tie: every value tried."""
    admissible = [v for v in range(len(mask_block)) if mask_block[v]]
    return min(admissible, key=lambda v: (abs(v - value), v))


def blocks(core: EnvCore, flat_mask: np.ndarray) -> list[np.ndarray]:
    """One agent's flat mask cut into its sub-actions' blocks."""
    edges = np.cumsum([0, *core.nvec])
    return [flat_mask[lo:hi] for lo, hi in zip(edges[:-1], edges[1:])]


def expected_executed(core: EnvCore, setting: str, attempted: np.ndarray) -> np.ndarray:
    """What ``setting`` must execute for the single-entry, single-agent ``core`` given ``attempted`` (its action in
    the view's form), by each env's definition (the module docstrings), written without the env's own code."""
    if not core.discrete:
        admissible = core.admissible_set()
        batched = np.asarray(attempted, dtype=np.float64).reshape(1, 1, -1)
        if bool(np.asarray(admissible.contains(batched)).reshape(-1)[0]):
            return batched.reshape(-1)
        if setting == "noop":  # sum_to_zero: no reallocation
            return np.zeros_like(batched.reshape(-1))
        return np.asarray(admissible.project(batched)).reshape(-1)
    mask = core.action_mask()[0, 0].astype(bool)
    subs = np.atleast_1d(np.asarray(attempted, dtype=np.int64)).copy()
    out = subs.copy()
    for k, block in enumerate(blocks(core, mask)):
        if block[subs[k]]:
            continue
        if setting == "repair":
            out[k] = brute_nearest(block, int(subs[k]))
        elif core.name.startswith("portfolio"):  # hold the asset
            out[k] = core.hold
        elif core.name.startswith("speed_limit"):  # keep the speed, else the admissible level nearest it
            out[k] = brute_nearest(block, int(core.state.speed[0, 0]))
        elif core.name.startswith("job_shop"):  # the lowest-index open job
            out[k] = int(np.flatnonzero(block)[0])
        else:
            raise AssertionError(f"no noop defined here for {core.name}")
    return out if out.shape != () and len(out) > 1 else out.reshape(())


def random_attempt(core: EnvCore, space, rng: np.random.Generator):
    """A uniformly random action of the space (mostly inadmissible), or for Box a third of the time an admissible
    one (so both paths are exercised)."""
    if not core.discrete and rng.random() < 1 / 3:
        return np.asarray(core.admissible_set().sample(rng)).reshape(space.shape).astype(np.float32)
    return space.sample()


@pytest.mark.parametrize("name, setting", CASES)
def test_the_executed_action_is_the_settings_and_the_attempt_is_still_reported(name, setting):
    """Env A is given random actions; env B, same seed, is given what the setting must execute in their place
    (computed independently): A and B must see the same observations, rewards and ends, A's info must count and
    name each inadmissible attempt, B's nothing; a strict env raises on the same attempt."""
    a, b = envs.make(name, invalid_action=setting), envs.make(name, invalid_action=setting)
    strict = envs.make(name, invalid_action=setting, strict=True)
    a.action_space.seed(0)
    rng = np.random.default_rng(0)
    obs_a, _ = a.reset(seed=3)
    obs_b, _ = b.reset(seed=3)
    invalid = 0
    for _ in range(120):
        attempted = random_attempt(a.core, a.action_space, rng)
        executed = expected_executed(b.core, setting, attempted)
        state = (a.core.state.copy() if hasattr(a.core.state, "copy") else None)
        obs_a, r_a, term_a, trunc_a, info_a = a.step(attempted)
        obs_b, r_b, term_b, trunc_b, info_b = b.step(executed)
        for key in obs_a:
            np.testing.assert_allclose(obs_a[key], obs_b[key], atol=1e-6)
        assert (r_a, term_a, trunc_a) == pytest.approx((r_b, term_b, trunc_b), abs=1e-9)
        assert info_b["invalid_actions"] == 0 and list(info_b["violated"]) == []
        if info_a["invalid_actions"]:
            invalid += 1
            assert info_a["violated"], "an inadmissible attempt names the constraints it violated"
            if state is not None:
                strict.reset(seed=0)
                strict.core.state = state
                with pytest.raises(ValueError) as error:
                    strict.step(attempted)
                assert all(c in str(error.value) for c in info_a["violated"])
        if term_a or trunc_a:
            obs_a, _ = a.reset(seed=4)
            obs_b, _ = b.reset(seed=4)
    assert invalid > 10, "the random actions hit inadmissible ones"


@pytest.mark.parametrize("name, setting", CASES)
def test_the_fallback_on_a_batch_of_reachable_states_matches_the_definition(name, setting):
    """On 64 entries driven to varied states by random admissible play: admissible actions are untouched, inadmissible
    ones become the setting's action (the same definition as above), which is admissible, and under noop it does not
    depend on the attempt."""
    core = envs.make_core(name, num_envs=64, invalid_action=setting)
    rng = np.random.default_rng(1)
    core.reset(np.arange(64), [np.random.default_rng(i) for i in range(64)])
    steps = 30 if name == "job_shop" else int(rng.integers(3, 9))  # jobs finish late; every episode lasts longer
    for _ in range(steps):
        admissible = core._admissible()
        actions = np.stack([[_sample_block(core, admissible[e, 0], rng)] for e in range(64)]) if core.discrete \
            else admissible.sample(rng)
        result = core.step(actions)
        assert not (result.terminated | result.truncated).any()
    for trial in range(2):
        attempts = np.stack([[np.asarray(core.action_space.sample()) for _ in range(core.n_agents)]
                             for _ in range(64)])
        attempts = core.as_batched_actions(attempts)
        inadmissible = core.inadmissible(attempts)
        replaced = core.fallback(attempts, inadmissible)
        core._check_fallback(attempts, replaced, inadmissible, core._admissible())  # admissible, in the space
        assert inadmissible.any()
        if trial == 0:
            first = replaced, inadmissible
        for e in range(64):
            single = _entry(core, e)
            expected = expected_executed(single, setting, attempts[e, 0])
            np.testing.assert_allclose(replaced[e, 0].reshape(-1), np.asarray(expected).reshape(-1), atol=1e-9)
    if setting == "noop":  # the do-nothing action does not depend on what was attempted
        both = first[1] & inadmissible
        np.testing.assert_array_equal(np.where(both, first[0], 0), np.where(both, replaced, 0))


def _sample_block(core: EnvCore, flat_mask: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    return np.array([rng.choice(np.flatnonzero(block)) for block in blocks(core, flat_mask.astype(bool))])


def _entry(core: EnvCore, e: int) -> EnvCore:
    """Entry ``e`` of ``core`` as a one-entry core of the same env and setting (its state sliced)."""
    single = envs.make_core(core.name, num_envs=1, **_overrides(core))
    state = core.state
    if dataclasses.is_dataclass(state):
        fields = {}
        for f in dataclasses.fields(state):
            value = getattr(state, f.name)
            fields[f.name] = value[e:e + 1].copy() if isinstance(value, np.ndarray) else value
        single.state = type(state)(**fields)
    else:
        raise AssertionError(f"cannot slice the state of {core.name}")
    return single


def _overrides(core: EnvCore) -> dict:
    return {"invalid_action": core.invalid_action}


def test_box_repair_is_nearer_than_any_sampled_admissible_point():
    """The projection ``repair`` executes on sum_to_zero is the nearest admissible point: no uniformly sampled
    admissible point is nearer to the attempt."""
    core = envs.make_core("sum_to_zero", num_envs=16, invalid_action="repair")
    core.reset(np.arange(16), [np.random.default_rng(i) for i in range(16)])
    rng = np.random.default_rng(2)
    attempts = rng.uniform(-1, 1, (16, 1, 13))
    repaired = core.fallback(attempts, core.inadmissible(attempts))
    nearest = np.linalg.norm(repaired - attempts, axis=-1)
    for _ in range(200):
        other = core.admissible_set().sample(rng)
        assert (np.linalg.norm(other - attempts, axis=-1) >= nearest - 1e-9).all()


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), lot_levels=st.sampled_from([1, 5, 10]), affordable=st.booleans())
def test_portfolio_repair_is_the_largest_admissible_trade_in_the_same_direction(seed, lot_levels, affordable):
    """portfolio's documented repair: per asset, the largest admissible sale (or buy) for an inadmissible sale
    (buy), hold when there is none; on arbitrary states (sample_states)."""
    core = envs.make_core("portfolio", num_envs=32, invalid_action="repair", lot_levels=lot_levels,
                          affordable_buys=affordable)
    rng = np.random.default_rng(seed)
    core.state = core.sample_states(rng, 32)
    attempts = rng.integers(0, 2 * lot_levels + 1, (32, 1, 3))
    inadmissible = core.inadmissible(attempts)
    repaired = core.fallback(attempts, inadmissible)
    mask = core.action_mask().reshape(32, 1, 3, 2 * lot_levels + 1).astype(bool)
    hold = lot_levels
    for e, _, k in np.argwhere(inadmissible):
        a, block = attempts[e, 0, k], mask[e, 0, k]
        side = np.flatnonzero(block[:hold]) if a < hold else hold + 1 + np.flatnonzero(block[hold + 1:])
        largest = (side.min() if a < hold else side.max()) if len(side) else hold
        assert repaired[e, 0, k] == largest
    assert (repaired[~inadmissible] == attempts[~inadmissible]).all()


def test_speed_limit_noop_keeps_the_speed_where_it_is_admissible_and_brakes_gently_where_not():
    """On an open arterial road an inadmissible level leaves the car at its speed. Driving as fast as admitted
    towards a residential zone, the car reaches a state where its speed is inadmissible (it must brake): there noop
    executes the admissible level nearest its speed, below it."""
    open_road = envs.make("speed_limit", road_length=60, layout="A" * 60, invalid_action="noop")
    open_road.reset(seed=0)
    open_road.step(2)
    _, _, _, _, info = open_road.step(5)  # S2 comfort: at most +2 a step
    assert info["invalid_actions"] == 1 and int(open_road.core.state.speed[0, 0]) == 2
    env = envs.make("speed_limit", road_length=60, layout="A" * 30 + "R" * 30, invalid_action="noop")
    env.reset(seed=0)
    while True:
        mask, speed = env.core.action_mask()[0, 0].astype(bool), int(env.core.state.speed[0, 0])
        if speed > 0 and not mask[speed]:
            break
        env.step(int(np.flatnonzero(mask).max()))
    _, _, _, _, info = env.step(9)  # never admissible here (S2 or S3)
    executed = int(env.core.state.speed[0, 0])
    assert info["invalid_actions"] == 1 and executed == brute_nearest(mask, speed) and executed < speed


def test_job_shop_noop_dispatches_the_lowest_open_job_and_episodes_still_end():
    """A dispatching env has no step without a dispatch: noop dispatches the lowest-index open job, so an agent that
    only ever picks a finished job still ends the episode in n_jobs * n_machines steps."""
    env = envs.make("job_shop", invalid_action="noop")
    env.reset(seed=0)
    steps = 0
    for _ in range(6):  # finish job 5
        env.step(5)
        steps += 1
    done = False
    while not done:
        _, _, term, trunc, info = env.step(5)  # job 5 is finished: inadmissible every time
        steps += 1
        assert info["invalid_actions"] == 1
        done = term or trunc
    assert steps == 36 and (env.core.state.next_op == 6).all()


@pytest.mark.parametrize("name, setting", CASES)
def test_strict_mode_raises_whatever_the_setting(name, setting):
    env = envs.make(name, invalid_action=setting, strict=True)
    env.reset(seed=0)
    env.action_space.seed(0)
    with pytest.raises(ValueError, match="inadmissible action"):
        for _ in range(200):
            env.step(env.action_space.sample())


@pytest.mark.parametrize("name, setting", CASES)
def test_the_gymnasium_and_pettingzoo_checkers_pass_under_both_settings(name, setting):
    check_env(envs.make(name, invalid_action=setting))
    parallel_api_test(envs.make_parallel(name, invalid_action=setting), num_cycles=40)


@pytest.mark.parametrize("name, setting", CASES)
def test_a_seed_fixes_the_trajectory_under_both_settings(name, setting):
    def trajectory():
        env = envs.make(name, invalid_action=setting)
        env.action_space.seed(7)
        obs, _ = env.reset(seed=11)
        out = [obs["observation"].copy()]
        for _ in range(40):
            obs, reward, term, trunc, info = env.step(env.action_space.sample())
            out += [obs["observation"].copy(), np.float64(reward), np.float64(info["invalid_actions"])]
            if term or trunc:
                obs, _ = env.reset(seed=12)
        return out

    first, second = trajectory(), trajectory()
    for x, y in zip(first, second):
        np.testing.assert_array_equal(x, y)


# ---------------------------------------------------------------- the setting as part of the env's identity


@pytest.mark.parametrize("name", ENVS)
def test_the_default_is_todays_fallback_and_adds_nothing_to_a_runs_identity(name, tmp_path):
    assert envs.config_dict(name, {})["invalid_action"] == DEFAULTS[name]
    assert envs.make_core(name).invalid_action == DEFAULTS[name]
    default = RunRequest.build(name, "penalty_ppo", 0, out=tmp_path, algo_config={"backend": "torch"})
    explicit = RunRequest.build(name, "penalty_ppo", 0, out=tmp_path, algo_config={"backend": "torch"},
                                env_config={"invalid_action": DEFAULTS[name]})
    assert default.directory == explicit.directory == tmp_path.absolute() / name / "penalty_ppo" / "backend=torch" / \
        "seed0"
    other = "repair" if DEFAULTS[name] == "noop" else "noop"
    changed = RunRequest.build(name, "penalty_ppo", 0, out=tmp_path, algo_config={"backend": "torch"},
                               env_config={"invalid_action": other})
    assert changed.directory.parent.name == f"backend=torch,invalid_action={other}"
    assert changed.record()["env_config"]["invalid_action"] == other  # config.json records it


def test_a_run_recorded_before_the_setting_reads_as_its_envs_default():
    record = {"env": "speed_limit", "env_config": {k: v for k, v in envs.config_dict("speed_limit", {}).items()
                                                   if k != "invalid_action"},
              "algo": "penalty_ppo", "algo_config": {"backend": "torch", "rllib_learner": "fast"}}
    completed = results.with_added_settings(json.loads(json.dumps(record)))
    assert completed["env_config"] == envs.config_dict("speed_limit", {})
    assert completed["algo_config"] == {**record["algo_config"], "network": "mlp", "settings": ""}  # added later too
    assert results.config_id(completed) == results.config_id(
        {**record, "env_config": envs.config_dict("speed_limit", {}), "algo_config": completed["algo_config"]})


def test_the_task_name_shows_a_setting_that_is_not_the_envs_default():
    from suite.report import named_settings

    scores = pd.DataFrame({"env": ["speed_limit", "portfolio", "portfolio"],
                                     "env_config": ["strict=False,invalid_action=noop,road_length=100",
                                                    "strict=False,invalid_action=noop,n_assets=3",
                                                    "strict=False,invalid_action=noop,n_assets=5"]})
    labels = aggregate.task_labels(scores, named_settings(["speed_limit", "portfolio"]))
    assert labels[("speed_limit", "strict=False,invalid_action=noop,road_length=100")] == \
        "speed_limit [invalid_action=noop]"
    assert labels[("portfolio", "strict=False,invalid_action=noop,n_assets=5")] == "portfolio [n_assets=5]"


def test_an_unknown_setting_or_one_the_env_does_not_offer_is_refused_in_one_line():
    with pytest.raises(ConfigError, match="config key 'invalid_action' must be one of noop, repair; got 'skip'"):
        envs.make("speed_limit", invalid_action="skip")

    class OwnFallback(envs.make_core("speed_limit").__class__):
        """A user's env written before the setting: it overrides fallback, so it offers its default only."""

        def fallback(self, actions, inadmissible):
            return self.repair(actions, inadmissible)

    envs.register("own_fallback_car", OwnFallback, overwrite=True)
    try:
        assert OwnFallback.invalid_action_settings() == ("repair",)
        with pytest.raises(ConfigError, match="must be one of repair for this env; got 'noop'"):
            envs.make("own_fallback_car", invalid_action="noop")
    finally:
        envs.unregister("own_fallback_car")


def test_a_default_the_class_cannot_execute_is_refused_at_registration():
    class NoNoop(envs.make_core("job_shop").__class__):
        noop = None  # opts out of the hook
        invalid_action_default = "noop"

    with pytest.raises(EnvContractError, match="invalid_action_default is 'noop'"):
        envs.register("no_noop_shop", NoNoop)
    assert "no_noop_shop" not in envs.names()


def test_the_checker_passes_on_speed_limit_under_noop():
    failed = [r for r in check.run_checks("speed_limit", {"invalid_action": "noop"}, steps=300, seed=0)
              if not r.passed]
    assert not failed, failed
