"""Env stepping (``group="env_step"``): ``envs.make_vector`` against Gymnasium's ``SyncVectorEnv``.

Run with ``pytest --benchmark`` (skipped otherwise); ``extra_info["env_steps_per_second"]`` is the
rate. One benchmark round is one ``step`` of all ``N`` entries, observations with their masks
included, episodes ending and resetting inside the rounds (autoreset). Both sides step the same
env (``SyncVectorEnv`` of ``N`` single ``envs.make`` envs, the default way to batch a Gymnasium env)
with actions from the same cheap state-dependent policy, chosen so that every action is
admissible: portfolio holds, speed_limit takes the fastest admissible level, sum_to_zero stays.

``test_vector_step_with_random_actions`` steps ``make_vector("portfolio", 1024)`` with uniformly random
actions (about 83% of the entries inadmissible each step: the fallback, the constraint predicates and
``info["violated"]`` all run) and times ``SyncVectorEnv`` on the same actions in the same test, half of its
rounds before the benchmark and half after; ``extra_info["times_sync_vector_env"]`` is the ratio of the
rates (the goal: at least 100).
"""

import time

import gymnasium as gym
import numpy as np
import pytest

import envs

#: The episode lengths are 20 (portfolio), about 20 (speed_limit) and 50 (sum_to_zero) steps, so
#: the default rounds cross several autoresets. The largest levels (portfolio-xl: 30 assets x 101
#: trade sizes; speed_limit-l: 50 levels, a 1,000-cell road; sum_to_zero-l: 1,000 targets) follow.
CASES = [("portfolio", 1024), ("portfolio", 4096), ("speed_limit", 1024), ("sum_to_zero", 1024),
         ("portfolio-xl", 1024), ("speed_limit-l", 1024), ("sum_to_zero-l", 1024)]


def admissible_policy(name):
    """``observations -> actions`` for a batch, admissible by construction."""
    core = envs.make_core(name)
    family = envs.spec(name).family
    if family == "portfolio":
        hold = core.hold
        return lambda obs: np.full((len(obs["action_mask"]), core.n_assets), hold)          # hold
    if family == "speed_limit":
        levels = np.arange(core.action_space.n)
        return lambda obs: (obs["action_mask"] * levels).argmax(axis=-1)                    # fastest admissible
    shape = core.action_space.shape
    return lambda obs: np.zeros((len(obs["observation"]), *shape), dtype=np.float32)      # no reallocation


@pytest.mark.parametrize("name, n", CASES, ids=[f"{name}-{n}" for name, n in CASES])
@pytest.mark.parametrize("impl", ["make_vector", "sync_vector_env"])
@pytest.mark.benchmark(group="env_step")
def test_vector_step(benchmark, name, n, impl):
    env = envs.make_vector(name, n) if impl == "make_vector" else \
        gym.vector.SyncVectorEnv([lambda: envs.make(name) for _ in range(n)])
    policy = admissible_policy(name)
    last = {"obs": env.reset(seed=0)[0], "invalid": 0}

    def step():
        obs, _, _, _, info = env.step(policy(last["obs"]))
        last["obs"] = obs
        last["invalid"] += int(np.sum(info["invalid_actions"]))

    benchmark.pedantic(step, rounds=40 if impl == "make_vector" else 5, iterations=1, warmup_rounds=1)
    assert last["invalid"] == 0
    benchmark.extra_info["env_steps_per_second"] = n / benchmark.stats["mean"]
    env.close()


#: Steps of the same random actions timed on ``SyncVectorEnv`` before and after the benchmark (each side).
SYNC_ROUNDS = 3


@pytest.mark.benchmark(group="env_step_random")
def test_vector_step_with_random_actions(benchmark):
    name, n = "portfolio", 1024
    vector = envs.make_vector(name, n)
    sync = gym.vector.SyncVectorEnv([lambda: envs.make(name) for _ in range(n)])
    vector.action_space.seed(0)
    actions = [vector.action_space.sample() for _ in range(64)]
    vector.reset(seed=0)
    sync.reset(seed=0)
    counts = {"invalid": 0, "steps": 0, "sync_seconds": 0.0, "sync_steps": 0}

    def time_sync(rounds):
        for _ in range(rounds):
            action = actions[counts["sync_steps"] % len(actions)]
            started = time.perf_counter()
            sync.step(action)
            counts["sync_seconds"] += time.perf_counter() - started
            counts["sync_steps"] += 1

    def step():
        _, _, _, _, info = vector.step(actions[counts["steps"] % len(actions)])
        counts["steps"] += 1
        counts["invalid"] += int(np.count_nonzero(info["invalid_actions"]))

    time_sync(SYNC_ROUNDS)
    benchmark.pedantic(step, rounds=60, iterations=1, warmup_rounds=1)
    time_sync(SYNC_ROUNDS)
    rate = n / benchmark.stats["mean"]
    sync_rate = n * counts["sync_steps"] / counts["sync_seconds"]
    assert counts["invalid"] > 0.5 * n * counts["steps"]  # mostly inadmissible, as random actions are
    benchmark.extra_info["env_steps_per_second"] = rate
    benchmark.extra_info["sync_vector_env_steps_per_second"] = sync_rate
    benchmark.extra_info["times_sync_vector_env"] = rate / sync_rate
    vector.close()
    sync.close()
