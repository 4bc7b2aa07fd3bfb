"""Training throughput (``group="train"``): RLlib's sampling and one PPO iteration per trainer.

Run with ``pytest --benchmark`` (skipped otherwise); ``extra_info["env_steps_per_second"]`` is the
rate. Portfolio, the default settings (64 envs per runner, 8,192 env steps per iteration, 10
epochs of minibatches of 1,024, two 256x256 tanh networks), one process, Ray started here with 2
CPUs and shut down at the end.

- ``test_rllib_sampling``: an RLlib ``SingleAgentEnvRunner`` with masked PPO's module collecting
  8,192 env steps from the suite's batched env (``gym_env_vectorize_mode="vector_entry_point"``,
  the suite's default) against RLlib's default ``"sync"`` vectorisation of 64 single envs.
- ``test_train_iteration``: one training iteration (sampling and learning) of masked PPO on RLlib
  and on the torch backend, and of sb3-contrib's MaskablePPO at the same settings in its usual
  set-up (a DummyVecEnv of single envs) and on the suite's batched env (the last two need
  ``pip install -e ".[compare]"``).
  With ``n_agents`` 3, the same iteration of masked PPO with three traders in one market (one
  shared policy) on RLlib's multi-agent API (which steps one episode at a time) and on the torch
  backend (all entries and agents batched); ``agent_steps_per_second`` counts each trader's steps.
"""

import gymnasium as gym
import pytest

STEPS = 8192


@pytest.fixture(scope="module")
def ray_local():
    import ray

    from baselines.ray_session import connect_ray

    owned = connect_ray(None, num_cpus=2)
    yield
    if owned:
        ray.shutdown()


class _SymlogFeatures(gym.ObservationWrapper):
    """A single env's features through the same transform as the batched training env (mask kept)."""

    def __init__(self, env):
        from baselines.training_env import transformed_box

        super().__init__(env)
        space = env.observation_space
        self.observation_space = gym.spaces.Dict({**space.spaces,
                                                  "observation": transformed_box(space["observation"], "symlog")})

    def observation(self, observation):
        from baselines.training_env import transform_features

        return {**observation, "observation": transform_features(observation["observation"], "symlog")}


def _single_training_env(context):
    import envs

    return _SymlogFeatures(envs.make(context["env_name"], **context["env_config"]))


@pytest.mark.parametrize("mode", ["vector_entry_point", "sync"])
@pytest.mark.benchmark(group="train")
def test_rllib_sampling(benchmark, ray_local, mode):
    from ray.rllib.env.single_agent_env_runner import SingleAgentEnvRunner
    from ray.tune.registry import register_env

    from tests.helpers import build_algo

    algo = build_algo("masked_ppo", "portfolio", budget=10**6)
    try:
        rllib_config = algo._rllib_config()
        if mode == "sync":
            register_env("maskbench-single-env", _single_training_env)
            rllib_config = rllib_config.environment(env="maskbench-single-env").env_runners(
                gym_env_vectorize_mode="sync")
        runner = SingleAgentEnvRunner(config=rllib_config)
        runner.sample(num_timesteps=STEPS)  # warm-up: first reset, module build

        def sample():
            return sum(len(episode) for episode in runner.sample(num_timesteps=STEPS))

        steps = benchmark.pedantic(sample, rounds=3, iterations=1)
        assert steps >= STEPS
        benchmark.extra_info["env_steps_per_second"] = steps / benchmark.stats["mean"]
        runner.stop()
    finally:
        algo.close()


def _trainer(name, n_agents):
    from tests.helpers import build_algo

    if name.startswith("sb3"):
        pytest.importorskip("sb3_contrib", reason='the compare extra: pip install -e ".[compare]"')
        return build_algo("sb3_maskable_ppo", "portfolio", {"n_agents": n_agents}, budget=10**7,
                          vec_env="dummy" if name == "sb3_dummy_vec_env" else "batched")
    return build_algo("masked_ppo", "portfolio", {"n_agents": n_agents}, budget=10**7,
                      backend=name.rsplit("_", 1)[-1])


@pytest.mark.parametrize("name, n_agents", [("masked_ppo_rllib", 1), ("masked_ppo_torch", 1), ("sb3_dummy_vec_env", 1),
                                             ("sb3_batched", 1), ("masked_ppo_rllib", 3), ("masked_ppo_torch", 3)])
@pytest.mark.benchmark(group="train")
def test_train_iteration(benchmark, ray_local, name, n_agents):
    algo = _trainer(name, n_agents)
    try:
        first = algo.train_iteration()  # warm-up
        rows = []
        benchmark.pedantic(lambda: rows.append(algo.train_iteration()), rounds=3, iterations=1)
        steps = (rows[-1]["env_steps"] - first["env_steps"]) / len(rows)
        assert all(row["invalid_action_rate"] == 0 for row in rows)
        benchmark.extra_info["env_steps_per_iteration"] = float(steps)
        benchmark.extra_info["env_steps_per_second"] = float(steps) / benchmark.stats["mean"]
        benchmark.extra_info["agent_steps_per_second"] = n_agents * float(steps) / benchmark.stats["mean"]
    finally:
        algo.close()
