"""random_valid as a plain callable policy: only admissible actions, single and batched, seeded."""

import numpy as np
from gymnasium import spaces

import envs
from baselines.random_valid import RandomValidPolicy


def test_single_env_episodes_never_take_an_inadmissible_action():
    env = envs.make("portfolio")
    policy = RandomValidPolicy(env.action_space, seed=0)
    for episode in range(20):
        obs, _ = env.reset(seed=episode)
        done = False
        while not done:
            action = policy(obs)
            assert env.action_space.contains(action)
            obs, _, terminated, truncated, info = env.step(action)
            assert info["invalid_actions"] == 0
            done = terminated or truncated


def test_batched_observations_and_seeding():
    vec = envs.make_vector("portfolio", 128)
    obs, _ = vec.reset(seed=0)
    a = RandomValidPolicy(vec.single_action_space, seed=3)(obs)
    b = RandomValidPolicy(vec.single_action_space, seed=3)(obs)
    assert a.shape == (128, 3) and np.array_equal(a, b)
    _, _, _, _, info = vec.step(a)
    assert (info["invalid_actions"] == 0).all()


def test_discrete_action_spaces_get_plain_actions():
    policy = RandomValidPolicy(spaces.Discrete(4), seed=0)
    draws = {int(policy({"action_mask": np.array([0, 1, 0, 1], dtype=np.int8)})) for _ in range(50)}
    assert draws == {1, 3}
