"""lookahead_dp: admissible, blind beyond its window, between the simple policy and the clairvoyant one."""

import numpy as np
import pandas as pd
import pytest

import envs
from baselines.random_valid import RandomValidConfig
from baselines.references.lookahead_dp import LookaheadDP
from baselines.references.max_admissible_speed import highest_admissible
from envs.config import ConfigError
from envs.masking import MASK_KEY, admit_all_unless
from envs.speed_limit import scaled_level

SEEDS = [1_000_000 + i for i in range(64)]


def player(env_name="speed_limit", **config):
    return LookaheadDP(env_name, config, RandomValidConfig(num_envs=1), seed=0)


def first_episodes(env, policy, seeds):
    """Each entry's first episode: its return (the batch plays until every entry has finished one)."""
    obs, _ = env.reset(seed=seeds)
    returns, done = np.zeros(env.num_envs), np.zeros(env.num_envs, dtype=bool)
    while not done.all():
        obs, reward, terminated, truncated, _ = env.step(policy(obs, env))
        returns += np.where(done, 0.0, reward)
        done |= terminated | truncated
    return returns


def highest(obs, env):
    return highest_admissible(admit_all_unless(env.acting, obs[MASK_KEY]).astype(bool))


def clairvoyant(obs, env):
    return env.core.oracle_actions()[:, 0, 0]


@pytest.mark.parametrize("config", [{}, {"lookahead": 1}, {"lookahead": 5}, scaled_level(25, 80)])
def test_every_action_is_admissible(config):
    env = envs.make_vector("speed_limit", 16, strict=True, **config)  # raises on an inadmissible level
    policy = player(**config)
    obs, _ = env.reset(seed=list(range(16)))
    for _ in range(120):  # over two episodes per entry (autoreset), ended entries included
        obs, _, _, _, info = env.step(policy.act(obs, env))
        assert (info["invalid_actions"] == 0).all()


def test_it_never_reads_beyond_its_window():
    # Two roads alike over their first 40 cells: the car's window (24 cells) first reaches the
    # residential zone of the second from cell 17 on; up to there the two must be driven alike.
    alike, lookahead = 40, 24
    roads = ["A" * 100, "A" * alike + "R" * 20 + "A" * 40]
    worlds = [envs.make_vector("speed_limit", 1, layout=road) for road in roads]
    policy = player(layout=roads[0])
    observations = [world.reset(seed=0)[0] for world in worlds]
    compared, seen_by_clairvoyant = 0, False
    while observations[0]["observation"][0, 1] + lookahead <= alike:
        assert np.array_equal(observations[0]["observation"], observations[1]["observation"])
        actions = [policy.act(obs, world) for obs, world in zip(observations, worlds)]
        assert actions[0] == actions[1]
        # the test can tell: the clairvoyant DP, which sees the whole road, drives the two differently
        bounds = [clairvoyant(obs, world) for obs, world in zip(observations, worlds)]
        seen_by_clairvoyant |= not np.array_equal(*bounds)
        observations = [world.step(action)[0] for world, action in zip(worlds, actions)]
        compared += 1
    assert compared >= 3 and seen_by_clairvoyant

    # Nor the env's state: scrambling the road beyond the window after the observation changes nothing.
    env = envs.make_vector("speed_limit", 32)
    obs, _ = env.reset(seed=SEEDS[:32])
    for _ in range(4):
        obs, *_ = env.step(policy.act(obs, env))
    before = policy.act(obs, env)
    state = env.core.state
    state.limits[:] = 1
    state.safe_speed[:] = 0
    state.cell_levels[:] = False
    assert np.array_equal(policy.act(obs, env), before)


def test_it_scores_between_the_highest_admissible_level_and_the_clairvoyant_dp():
    env = envs.make_vector("speed_limit", len(SEEDS))
    policy = player()
    planner = first_episodes(env, policy.act, SEEDS).mean()
    simple = first_episodes(env, highest, SEEDS).mean()
    bound = first_episodes(env, clairvoyant, SEEDS).mean()
    assert simple + 5 < planner <= bound
    assert bound - planner < 0.5 * (bound - simple)


WHOLE_ROAD = [{"lookahead": 100}, {**scaled_level(25, 40), "lookahead": 40}]


def assert_the_exact_optimum(config):
    env = envs.make_vector("speed_limit", 16, **config)
    returns = first_episodes(env, player(**config).act, SEEDS[:16])
    env.reset(seed=SEEDS[:16])
    np.testing.assert_allclose(returns, env.core.optimal_return()[:, 0])


@pytest.mark.parametrize("config", WHOLE_ROAD)
def test_with_the_whole_road_in_view_it_is_the_exact_optimum(config):
    assert_the_exact_optimum(config)


@pytest.mark.parametrize("config", WHOLE_ROAD)
def test_its_plan_reads_no_uninitialised_memory(config, monkeypatch):
    # Until 2026-12-06 the backward pass read V[j, 0] of a fresh ``np.empty`` before computing it: harmless
    # while the allocator left finite numbers there, a wrong plan (9-17 against 21) where it left NaN, which
    # happened in some full test runs only. Every ``np.empty`` filled with NaN makes such a read show every time.
    real_empty = np.empty

    def poisoned(shape, dtype=float, *args, **kwargs):
        out = real_empty(shape, dtype, *args, **kwargs)
        if np.issubdtype(out.dtype, np.floating):
            out.fill(np.nan)
        return out

    monkeypatch.setattr(np, "empty", poisoned)
    assert_the_exact_optimum(config)


def test_it_refuses_several_cars_and_other_envs():
    assert "n_agents=2" in LookaheadDP.incompatibility("speed_limit", {"n_agents": 2})
    assert LookaheadDP.incompatibility("portfolio", {}) is not None
    with pytest.raises(ConfigError):
        player(n_agents=2)


def test_it_runs_through_the_suite_runner(tmp_path):
    from suite.run import main

    assert main(["--env", "speed_limit", "--algo", "lookahead_dp", "--steps", "2000", "--episodes", "5",
                 "--out", str(tmp_path), "--quiet"]) == 0
    (evaluation,) = tmp_path.rglob("eval.csv")
    rows = pd.read_csv(evaluation)
    assert len(rows) == 5 and (rows["invalid_actions"] == 0).all()
