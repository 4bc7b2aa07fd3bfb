"""The batched multi-agent view against PettingZoo's: entry i plays as the parallel env seeded s + i,
agents leave and entries reset."""

import numpy as np
import pandas as pd
import pytest

import envs
from baselines.episodes import EpisodeTracker
from envs.masking import MASK_KEY, OBSERVATION_KEY, sample_masked

CONFIGS = [("portfolio", {"n_agents": 2, "price_impact": 0.05}), ("speed_limit", {"n_agents": 3})]


@pytest.mark.parametrize("name,config", CONFIGS)
def test_the_batched_multi_agent_view_plays_entry_i_as_the_pettingzoo_view_seeded_s_plus_i(name, config):
    vec = envs.make_multi_agent_vector(name, 3, **config)
    singles = [envs.make_parallel(name, **config) for _ in range(3)]
    obs, _ = vec.reset(seed=10)
    single_obs = [env.reset(seed=10 + i)[0] for i, env in enumerate(singles)]
    rng = np.random.default_rng(0)
    ended = np.zeros(3, dtype=bool)
    for _ in range(400):
        for i, env in enumerate(singles):
            if ended[i]:
                continue
            for j, agent in enumerate(vec.agent_ids):
                live = agent in env.agents
                assert vec.live[i, j] == live
                if live:
                    np.testing.assert_array_equal(obs[OBSERVATION_KEY][i, j], single_obs[i][agent][OBSERVATION_KEY])
                    np.testing.assert_array_equal(obs[MASK_KEY][i, j], single_obs[i][agent][MASK_KEY])
        actions = sample_masked(rng, obs[MASK_KEY], vec.core.nvec)
        obs, reward, terminated, truncated, _ = vec.step(actions)
        for i, env in enumerate(singles):
            if ended[i]:
                continue
            acting = list(env.agents)
            single_obs[i], rewards, *_ = env.step({a: actions[i, vec.agent_ids.index(a)] for a in acting})
            for agent in acting:
                assert reward[i, vec.agent_ids.index(agent)] == pytest.approx(rewards[agent])
            ended[i] = not env.agents
        if ended.all():
            break
    assert ended.all()


def test_agents_that_left_are_idle_and_an_entry_resets_once_all_have_left():
    vec = envs.make_multi_agent_vector("speed_limit", 2, n_agents=3)
    obs, _ = vec.reset(seed=3)
    tracker = EpisodeTracker(2 * 3, next_step_autoreset=False)
    rng = np.random.default_rng(1)
    finished = []
    saw_partial = False
    for _ in range(2000):
        obs, reward, terminated, truncated, info = vec.step(sample_masked(rng, obs[MASK_KEY], vec.core.nvec))
        assert not (reward[~vec.acted]).any() and not terminated[~vec.acted].any()
        assert (info["invalid_actions"] == 0).all()  # admissible actions for live agents, idle for the others
        saw_partial |= bool((vec.acted.any(axis=1) & ~vec.acted.all(axis=1)).any())
        finished += tracker.update(reward, terminated, truncated, info, active=vec.acted)
        if len(finished) >= 12:
            break
    assert saw_partial, "no car ever left before the others"
    # every agent of every entry finished two episodes, one record each
    counts = pd.Series([f["env_index"] for f in finished]).value_counts()
    assert set(counts.index) == set(range(6)) and (counts >= 1).all()
