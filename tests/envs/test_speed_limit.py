"""The speed-limit car: masks never empty over many layouts, the safe-speed table against braking
simulated forward, the dynamic-programming optimum against brute force, fallback, config errors,
and the env through the checker and the oracle algo."""

import re

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import envs
from baselines.random_valid import RandomValidPolicy
from envs.config import ConfigError
from envs.speed_limit import N_LEVELS, braking_respects_limits
from suite import check, run

CONFIGS = st.fixed_dictionaries({
    "road_length": st.integers(10, 80),
    "zone_limits": st.tuples(st.integers(1, 4), st.integers(3, 7), st.integers(6, 9)),
    "min_zone_length": st.integers(1, 4),
    "max_zone_length": st.integers(4, 15),
    "max_accel": st.integers(1, 3),
    "max_brake": st.integers(1, 4),
    "lookahead": st.integers(1, 15),
})


@settings(max_examples=25, deadline=None)
@given(config=CONFIGS, seed=st.integers(0, 2**31 - 1))
def test_the_mask_is_never_empty_on_any_layout_and_the_car_can_always_brake(config, seed):
    """Random admissible driving over 64 layouts per example: every reachable state keeps an action."""
    vec = envs.make_vector("speed_limit", 64, max_steps=4 * config["road_length"], **config)
    policy = RandomValidPolicy(vec.single_action_space, seed=seed)
    obs, _ = vec.reset(seed=seed)
    core = vec.core
    for _ in range(2 * config["road_length"]):
        assert obs["action_mask"].any(axis=-1).all()
        s = core.state
        cell = np.minimum(s.position, config["road_length"])
        assert (s.speed <= s.safe_speed[np.arange(64)[:, None], cell]).all()  # the invariant S3 keeps
        obs, _, _, _, info = vec.step(policy(obs))
        assert (info["invalid_actions"] == 0).all()


@settings(max_examples=30, deadline=None)
@given(config=CONFIGS, seed=st.integers(0, 2**31 - 1))
def test_safe_speed_table_matches_braking_simulated_forward(config, seed):
    core = envs.make_core("speed_limit", 16, **config)
    core.reset_envs(np.arange(16), [np.random.default_rng(seed + i) for i in range(16)])
    s, L = core.state, config["road_length"]
    cells = np.broadcast_to(np.arange(L)[:, None], (L, N_LEVELS)).reshape(1, -1).repeat(16, 0)
    levels = np.broadcast_to(np.arange(N_LEVELS), (L, N_LEVELS)).reshape(1, -1).repeat(16, 0)
    can_brake = braking_respects_limits(s.limits, cells, levels, L, config["max_brake"]).reshape(16, L, N_LEVELS)
    # Monotone in the level, with the table's value as the highest safe level of each cell.
    expected = np.where(can_brake, np.arange(N_LEVELS), -1).max(axis=-1)
    assert np.array_equal(s.safe_speed[:, :L], expected)
    assert np.array_equal(can_brake, np.arange(N_LEVELS) <= expected[..., None])


def brute_force_optimum(env) -> float:
    """Best return from the start by trying every admissible level through env steps (memoised)."""
    core = env.core
    memo = {}

    def best(position: int, speed: int) -> float:
        if (position, speed) in memo:
            return memo[(position, speed)]
        start = core.state.copy()
        start.position[:] = position
        start.speed[:] = speed
        core.state = start
        mask = core.action_mask()[0, 0]
        value = -np.inf
        for level in np.flatnonzero(mask):
            if level == 0 and speed == 0:
                continue  # staying at rest only costs time
            core.state = start.copy()
            result = core.step(np.array([[[level]]]))
            ahead = 0.0 if result.terminated[0, 0] else best(int(core.state.position[0, 0]), int(level))
            value = max(value, float(result.reward[0, 0]) + ahead)
        memo[(position, speed)] = value
        return value

    return best(0, 0)


@pytest.mark.parametrize("seed", range(12))
def test_dynamic_programming_optimum_equals_brute_force_on_tiny_roads(seed):
    rng = np.random.default_rng(seed)
    length = int(rng.integers(3, 9))
    layout = "".join(rng.choice(list("RUA"), size=length))
    env = envs.make("speed_limit", road_length=length, layout=layout, zone_limits=(1, 2, 4),
                    comfort_cost=float(rng.choice([0.0, 0.5, 2.0])), max_accel=int(rng.integers(1, 3)))
    env.reset(seed=seed)
    core = env.core
    optimum = core.optimal_values(core.state.limits, core.state.safe_speed)[0, 0, 0]
    assert optimum == pytest.approx(brute_force_optimum(env))


def test_the_oracle_plays_its_optimum_and_random_valid_is_far_below():
    vec = envs.make_vector("speed_limit", 128)
    obs, _ = vec.reset(seed=7)
    optimum = vec.core.optimal_return()[:, 0]
    played, done = np.zeros(128), np.zeros(128, dtype=bool)
    while not done.all():
        obs, reward, terminated, truncated, info = vec.step(vec.core.oracle_actions()[:, 0, 0])
        assert (info["invalid_actions"][~done] == 0).all()
        played += np.where(done, 0.0, reward)
        done |= terminated | truncated
    assert np.allclose(played, optimum)
    # Flooring it (the fastest admissible level every step) pays the comfort cost: far from optimal.
    fastest, done = np.zeros(128), np.zeros(128, dtype=bool)
    obs, _ = vec.reset(seed=7)
    while not done.all():
        obs, reward, terminated, truncated, _ = vec.step((obs["action_mask"] * np.arange(N_LEVELS)).argmax(-1))
        fastest += np.where(done, 0.0, reward)
        done |= terminated | truncated
    assert (fastest <= optimum + 1e-9).all() and fastest.mean() < 0.8 * optimum.mean()


def test_an_inadmissible_level_becomes_the_nearest_admissible_one_or_raises_in_strict_mode():
    env = envs.make("speed_limit", road_length=30, layout="R" * 30)
    env.reset(seed=0)
    _, reward, _, _, info = env.step(8)  # from rest, 8 breaks S1 (limit 3), S2 (+2) and S3; nearest admissible: 2
    assert info["invalid_actions"] == 1 and set(info["violated"]) == {"S1", "S2", "S3"}
    comfort = env.core.config.comfort_cost
    assert env.core.state.position[0, 0] == 2 and reward == 2 - 1.0 - comfort * 2
    strict = envs.make("speed_limit", road_length=30, layout="R" * 30, strict=True)
    strict.reset(seed=0)
    with pytest.raises(ValueError, match="S1 .*no speed above the limit"):
        strict.step(8)


def test_observation_shows_speed_position_and_limits_ahead():
    env = envs.make("speed_limit", road_length=12, layout="AAAARRRRUUUU", lookahead=6)
    obs, _ = env.reset(seed=0)
    # Safe speed at cell 0 is 6: braking to 3 crosses cells 0-3 (limit 9), then stops; from 7 it would
    # cross cell 4 (residential, limit 3) at level 4.
    assert obs["observation"].tolist() == [0, 0, 12, 6, 9, 9, 9, 9, 3, 3]
    assert obs["action_mask"].tolist() == [1, 1, 1, 0, 0, 0, 0, 0, 0, 0]
    obs, *_ = env.step(2)
    assert obs["observation"].tolist() == [2, 2, 10, 6, 9, 9, 3, 3, 3, 3]
    assert obs["action_mask"].tolist() == [1, 1, 1, 1, 0, 0, 0, 0, 0, 0]  # 3 is the limit of cell 4 ahead


@pytest.mark.parametrize("config, message", [
    ({"layout": "RUA", "road_length": 10}, "layout has 3 cells but road_length is 10; set road_length=3"),
    ({"layout": "RUX"}, "must be letters R, U and A only"),
    ({"min_zone_length": 9, "max_zone_length": 3}, "min_zone_length (9) exceeds max_zone_length (3)"),
    ({"zone_limits": (0, 5, 9)}, "3 integers in 1..n_levels - 1"),
    ({"zone_limits": (3, 6, 10)}, "zone_limits [3, 6, 10] exceed the top level 9 of n_levels=10; give limits in 1..9"),
    ({"n_levels": 1}, "config key 'n_levels' must be an integer in 2..1000"),
    ({"n_levels": 30, "zone_limits": (3, 6, 30)}, "exceed the top level 29 of n_levels=30"),
])
def test_bad_config_is_one_line(config, message):
    with pytest.raises(ConfigError, match=None) as error:
        envs.make("speed_limit", **config)
    assert message in str(error.value) and "\n" not in str(error.value)


@pytest.mark.parametrize("env_config", [{}, {"observed_safe_speed": "window", "lookahead": 3,
                                              "invalid_action": "noop"}], ids=["default", "window"])
def test_the_checker_passes(env_config):
    results = check.run_checks("speed_limit", env_config, steps=300, seed=0)
    failed = [r for r in results if not r.passed]
    assert not failed, failed


def test_the_clairvoyant_dp_through_suite_run(tmp_path, capsys):
    argv = ["--env", "speed_limit", "--algo", "clairvoyant_dp", "--steps", "2000", "--episodes", "20",
            "--out", str(tmp_path), "--quiet"]
    assert run.run_cli(run.main, "python -m suite.run", argv) == 0
    import pandas as pd

    evaluation = pd.read_csv(tmp_path / "speed_limit" / "clairvoyant_dp" / "seed0" / "eval.csv")
    optimum = []
    for i in range(20):
        env = envs.make("speed_limit")
        env.reset(seed=1_000_000 + i)
        optimum.append(env.core.optimal_return()[0, 0])
    assert np.allclose(evaluation["return"], optimum) and (evaluation["invalid_actions"] == 0).all()
    short = ["--env", "speed_limit", "--algo", "clairvoyant_dp", "--env-config", "max_steps=50",
             "--out", str(tmp_path / "s")]
    assert run.run_cli(run.main, "python -m suite.run", short) == 2
    assert "(clairvoyant_dp) is exact only with max_steps >= 2 * road_length" in capsys.readouterr().err


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), config=CONFIGS)
def test_mask_is_the_conjunction_of_the_named_predicates_on_arbitrary_states(seed, config):
    core = envs.make_core("speed_limit", 256, **config)
    core.state = core.sample_states(np.random.default_rng(seed), 256)
    mask = core.action_mask().astype(bool)                                       # (256, 1, levels)
    for level in range(N_LEVELS):
        actions = np.full((256, 1, 1), level)
        admitted = np.ones((256, 1), dtype=bool)
        for constraint in core.constraints:
            admitted &= constraint.admits(core.state, actions)[..., 0]
        assert np.array_equal(mask[..., level], admitted), (level, seed)
    assert mask.any(axis=-1).all()


def test_return_is_progress_minus_time_and_comfort_and_the_episode_ends_at_the_road_end():
    env = envs.make("speed_limit", road_length=20, layout="A" * 20, time_cost=1.0, comfort_cost=0.5)
    env.reset(seed=0)
    total, levels, steps, terminated = 0.0, [2, 4, 6, 6, 6], 0, False
    for level in levels:
        _, reward, terminated, truncated, info = env.step(level)
        total += reward
        steps += 1
        assert info["invalid_actions"] == 0 and not truncated
        if terminated:
            break
    # 2 + 4 + 6 + 6 = 18 cells, then 6 more would pass the end: progress is capped at 20.
    assert terminated and steps == 5 and info["position"] == 20
    assert total == 20 - 1.0 * 5 - 0.5 * (2 + 2 + 2 + 0 + 0)


def test_standing_still_is_truncated_at_the_step_limit():
    env = envs.make("speed_limit", road_length=20, max_steps=7)
    env.reset(seed=0)
    for step in range(7):
        _, reward, terminated, truncated, _ = env.step(0)
        assert reward == -1.0 and not terminated and truncated == (step == 6)


def test_layouts_follow_zone_mix_and_zone_lengths():
    core = envs.make_core("speed_limit", 1, road_length=400, zone_mix=(1, 0, 0))
    assert (core.draw_layout(np.random.default_rng(0)) == 0).all()
    core = envs.make_core("speed_limit", 1, road_length=4000, min_zone_length=3, max_zone_length=6)
    zones = core.draw_layout(np.random.default_rng(1))
    assert np.bincount(zones, minlength=3).min() > 800  # about 30/40/30 %
    runs = np.diff(np.flatnonzero(np.diff(np.r_[-1, zones, -1]) != 0))  # lengths of runs of one zone type
    assert runs[:-1].min() >= 3  # zones are 3 to 6 cells (neighbours of one type merge; the last is cut at the end)
    assert np.mean(runs <= 6) > 0.5


def test_layouts_drawn_from_a_seed_never_change():
    """The layouts of seeds 0..199, pinned: results of earlier versions stay reproducible (the faster
    draw of v0's zone kinds consumes the generator exactly as ``Generator.choice`` did)."""
    import hashlib

    core = envs.make_core("speed_limit")
    layouts = np.concatenate([core.draw_layout(np.random.default_rng(seed)) for seed in range(200)])
    digest = hashlib.sha256(layouts.astype(np.int64).tobytes()).hexdigest()
    assert digest == "4191dca4f7de84e3754d7fdcfbef4404c8ec6bed0feef6daa0680fe91ca01cdc"


LANES = st.fixed_dictionaries({
    "n_agents": st.sampled_from([2, 3, 4]),
    "road_length": st.integers(40, 100),
    "max_accel": st.integers(1, 3),
    "max_brake": st.integers(1, 4),
    "min_gap": st.integers(1, 4),
    "start_gap": st.integers(4, 8),
    "lookahead": st.integers(1, 15),
})


def _driven_lane(config, seed, policy, steps=150, batch=32):
    """Drive ``batch`` lanes with ``policy(mask, rng)``; check the mask and the headway at every step."""
    core = envs.make_core("speed_limit", batch, strict=True, **config)  # strict: an inadmissible action raises
    rngs = [np.random.default_rng(seed + i) for i in range(batch)]
    core.reset_envs(np.arange(batch), rngs)
    rng = np.random.default_rng(seed)
    L, gap = config["road_length"], config["min_gap"]
    for _ in range(steps):
        mask = core.action_mask().astype(bool)
        assert mask.any(axis=-1).all(), "a car was left without an admissible speed"
        core.step(policy(mask, rng)[..., None])
        pos = core.state.position
        on_road = pos[:, :-1] < L
        assert ((pos[:, :-1] - pos[:, 1:] >= gap) | ~on_road).all(), "a car came within min_gap of its leader"
        assert (np.diff(np.minimum(pos, L), axis=1) <= 0).all(), "a car overtook its leader"
    return core


@settings(max_examples=25, deadline=None)
@given(config=LANES, seed=st.integers(0, 2**31 - 1))
def test_several_cars_never_run_out_of_admissible_speeds_nor_come_too_close(config, seed):
    """Random admissible driving and the most aggressive driving (always the fastest admissible
    level), on many layouts and starts: S4 keeps every mask non-empty and every headway."""
    random_valid = lambda mask, rng: np.argmax(mask * rng.random(mask.shape), axis=-1)  # noqa: E731
    fastest = lambda mask, rng: np.argmax(mask * (1 + np.arange(N_LEVELS)), axis=-1)  # noqa: E731
    for policy in (random_valid, fastest):
        _driven_lane(config, seed, policy)


def test_s4_binds_on_sampled_lanes_and_matches_its_simulated_predicate():
    core = envs.make_core("speed_limit", 4000, n_agents=3)
    core.state = core.sample_states(np.random.default_rng(0), 4000)
    mask = core.action_mask().astype(bool)
    actions = np.broadcast_to(np.arange(N_LEVELS)[None, None, :], mask.shape)[..., None]
    by_name = {c.name: np.stack([c.admits(core.state, actions[..., k, :])[..., 0] for k in range(N_LEVELS)], -1)
               for c in core.constraints}
    assert np.array_equal(mask, by_name["S1"] & by_name["S2"] & by_name["S3"] & by_name["S4"])
    removed_by_s4 = (by_name["S1"] & by_name["S2"] & by_name["S3"] & ~by_name["S4"]).any(axis=-1)
    assert removed_by_s4[:, 1:].mean() > 0.2  # followers in sampled lanes are often held back by S4
    assert not removed_by_s4[:, 0].any()      # the front car never is
    assert (core.state.position[:, 0] >= 100).any()  # some leaders have already left the road


def test_a_car_that_reaches_the_end_leaves_the_episode_and_frees_the_car_behind():
    par = envs.make_parallel("speed_limit", n_agents=2, road_length=30, layout="A" * 30, start_gap=5)
    obs, _ = par.reset(seed=0)
    assert [o["observation"][-2:].tolist() for o in obs.values()] == [[30.0, 0.0], [5.0, 0.0]]
    rewards = {"car_0": 0.0, "car_1": 0.0}
    while par.agents:
        actions = {a: int(np.flatnonzero(par.action_mask(a)).max()) for a in par.agents}  # fastest admissible
        obs, reward, terminated, truncated, _ = par.step(actions)
        for agent in reward:
            rewards[agent] += reward[agent]
        if "car_1" in obs and "car_0" not in par.agents:
            assert obs["car_1"]["observation"][-2:].tolist() == [30.0, 0.0]  # no leader any more
    assert par.core.state.position.min() >= 30
    assert rewards["car_0"] > rewards["car_1"] - 30  # each car earned its own progress (car 1 started 5 behind)
    single = envs.make("speed_limit")
    assert single.observation_space["observation"].shape == (4 + 24,)  # the single-car layout is unchanged
    assert [c.name for c in single.core.constraints] == ["S1", "S2", "S3"]


@pytest.mark.parametrize("config, message", [
    ({"n_agents": 3, "start_gap": 1, "min_gap": 2}, "start_gap (1) must be at least min_gap (2)"),
    ({"n_agents": 30, "start_gap": 4}, "30 cars 4 cells apart do not fit on a road of 100 cells"),
])
def test_lane_config_errors_are_one_line(config, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        envs.make_core("speed_limit", **config)


def test_the_clairvoyant_dp_is_for_one_car():
    from baselines.references.clairvoyant_dp import ClairvoyantDP

    reason = ClairvoyantDP.incompatibility("speed_limit", {"n_agents": 2})
    assert reason == "clairvoyant_dp plays one agent; got n_agents=2"
    assert ClairvoyantDP.config_problem(envs.resolve_config("speed_limit", {"n_agents": 2})[0]) == \
        "the speed_limit full-road dynamic program (clairvoyant_dp) is the exact optimum of one car; got n_agents=2"


@settings(max_examples=30, deadline=None)
@given(config=CONFIGS, seed=st.integers(0, 2**31 - 1))
def test_window_safe_speed_is_braking_simulated_forward_on_the_road_the_car_sees(config, seed):
    """``observed_safe_speed=window``: observation entry 3 is the highest level from which braking fully respects
    the limits of the ``lookahead`` cells the car sees (every unseen cell at the top limit), computed here by
    simulating the braking forward on that road; never below the road's safe speed (what the mask uses), and
    equal to it where the car sees every cell braking from the top crosses."""
    vec = envs.make_vector("speed_limit", 16, observed_safe_speed="window", max_steps=4 * config["road_length"],
                           **config)
    policy = RandomValidPolicy(vec.single_action_space, seed=seed)
    obs, _ = vec.reset(seed=seed)
    core, L, K = vec.core, config["road_length"], config["lookahead"]
    for _ in range(config["road_length"]):
        s = core.state
        cell = np.minimum(s.position[:, 0], L)
        window = obs["observation"][:, 4:4 + K].astype(np.int64)
        assert np.array_equal(window, s.limits[np.arange(16)[:, None], cell[:, None] + np.arange(K)])
        seen_road = np.full((16, K + 2 * N_LEVELS), N_LEVELS - 1)
        seen_road[:, :K] = window
        levels = np.arange(N_LEVELS)
        can_brake = braking_respects_limits(seen_road, np.zeros((16, N_LEVELS), dtype=np.int64),
                                            np.broadcast_to(levels, (16, N_LEVELS)).copy(), seen_road.shape[1],
                                            config["max_brake"])
        expected = np.where(can_brake, levels, -1).max(axis=-1)
        observed = obs["observation"][:, 3].astype(np.int64)
        assert np.array_equal(observed, expected)
        road_safe = s.safe_speed[np.arange(16), cell]
        assert (observed >= road_safe).all()  # the window road is the most permissive one the car could be on
        if K > core._braking_distance[-1]:
            assert np.array_equal(observed, road_safe)
        obs, *_ = vec.step(policy(obs))


def test_window_safe_speed_hides_a_slow_zone_beyond_the_lookahead_which_the_mask_still_enforces():
    """An arterial road with a residential zone from cell 40: at cell 35 with a lookahead of 4 the car sees only
    arterial cells, so entry 3 says the top level is safe, while the road's safe speed (the default observation)
    is 7, and the mask, which knows the whole road, admits nothing that would enter the zone above its limit."""
    layout = "A" * 40 + "R" * 20
    seen = envs.make("speed_limit", road_length=60, layout=layout, lookahead=4, observed_safe_speed="window")
    told = envs.make("speed_limit", road_length=60, layout=layout, lookahead=4)
    obs_seen, _ = seen.reset(seed=0)
    obs_told, _ = told.reset(seed=0)
    for level in (2, 4, 6, 8, 9, 6):  # to cell 35 at level 6
        obs_seen, *_ = seen.step(level)
        obs_told, *_ = told.step(level)
    assert obs_seen["observation"][1] == 35 and obs_seen["observation"][0] == 6
    assert (obs_seen["observation"][4:8] == 9).all()  # all it sees is arterial
    assert obs_seen["observation"][3] == N_LEVELS - 1
    assert obs_told["observation"][3] == 7
    assert np.array_equal(obs_seen["action_mask"], obs_told["action_mask"])
    assert list(np.flatnonzero(obs_seen["action_mask"])) == [3, 4]  # 5 would enter the zone (cell 40, limit 3)


def test_observed_safe_speed_default_adds_nothing_to_a_runs_identity_and_a_run_before_it_reads_as_road(tmp_path):
    from suite.runner import RunRequest
    from tests.helpers import assert_recorded_before_reads_as_default

    default = RunRequest.build("speed_limit", "max_admissible_speed", 0, out=tmp_path)
    explicit = RunRequest.build("speed_limit", "max_admissible_speed", 0, out=tmp_path,
                                env_config={"observed_safe_speed": "road"})
    folder = tmp_path.absolute() / "speed_limit" / "max_admissible_speed" / "seed0"
    assert default.directory == explicit.directory == folder
    window = RunRequest.build("speed_limit", "max_admissible_speed", 0, out=tmp_path,
                              env_config={"observed_safe_speed": "window"})
    assert window.directory.parent.name == "observed_safe_speed=window"
    assert_recorded_before_reads_as_default("speed_limit-m", "observed_safe_speed", "max_admissible_speed")
    with pytest.raises(ConfigError, match="observed_safe_speed' must be one of road, window; got 'map'"):
        envs.make_core("speed_limit", observed_safe_speed="map")
