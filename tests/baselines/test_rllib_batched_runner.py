"""The RLlib backend's batched EnvRunner: what it hands RLlib's Learner is what RLlib's own runner would,
step for step; several agents are one column each; its state carries a rollout across a checkpoint."""

import numpy as np
import pytest
from ray.rllib.core.columns import Columns

from envs.masking import MASK_KEY, split_mask

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def _config(env, env_config=None, **settings):
    from tests.helpers import build_algo

    algo = build_algo("masked_ppo", env, env_config, budget=10**6, num_envs_per_env_runner=4, **settings)
    return algo, algo._rllib_config()


def _rllib_own_runner(config):
    """RLlib's ``SingleAgentEnvRunner`` on the suite's training env as a Gymnasium vector env."""
    from ray.rllib.env.single_agent_env_runner import SingleAgentEnvRunner
    from ray.tune.registry import register_env

    from tests.helpers import training_vector_env

    register_env("maskbench-training-env", training_vector_env)
    return SingleAgentEnvRunner(config=config.environment(env="maskbench-training-env", observation_space=None,
                                                          action_space=None)
                                .env_runners(env_runner_cls=SingleAgentEnvRunner,
                                             gym_env_vectorize_mode="vector_entry_point"))


def _arrays(episode):
    obs = episode.get_observations()
    obs = obs if isinstance(obs, dict) else {"obs": obs}
    return {**{f"obs/{key}": np.asarray(value) for key, value in obs.items()},
            "actions": np.asarray(episode.get_actions()), "rewards": np.asarray(episode.get_rewards(), np.float64),
            "logp": np.asarray(episode.get_extra_model_outputs(Columns.ACTION_LOGP)),
            "dist_inputs": np.asarray(episode.get_extra_model_outputs(Columns.ACTION_DIST_INPUTS))}


@pytest.mark.parametrize("env", ["portfolio", "sum_to_zero"])
def test_the_batched_runner_samples_what_rllibs_own_runner_samples(ray_local, env):
    """Same seed, same module: the same episodes in the same order, with the same observations, actions,
    rewards, log-probabilities and distribution inputs (across two calls, so chunks continue too)."""
    from baselines.backends.rllib_batched_runner import BatchedEnvRunner

    algo, config = _config(env)
    try:
        samples = {}
        for name, make in (("rllib", _rllib_own_runner), ("batched", lambda c: BatchedEnvRunner(config=c))):
            runner = make(config)
            samples[name] = [runner.sample(num_timesteps=300, explore=True) for _ in range(2)]
            runner.stop()
        for ours, theirs in zip(samples["batched"], samples["rllib"], strict=True):
            assert [len(e) for e in ours] == [len(e) for e in theirs]
            assert [(e.is_terminated, e.is_truncated) for e in ours] == [(e.is_terminated, e.is_truncated)
                                                                       for e in theirs]
            for mine, reference in zip(ours, theirs):
                a, b = _arrays(mine), _arrays(reference)
                assert a.keys() == b.keys()
                for key in a:
                    np.testing.assert_allclose(a[key], b[key], rtol=1e-6, atol=1e-7, err_msg=key)
        assert sum(len(e) for e in samples["batched"][0]) >= 300
    finally:
        algo.close()


def test_several_agents_are_one_column_each_and_never_act_inadmissibly(ray_local):
    """Three traders in one market, one shared module: every chunk is one agent's steps, they add up to the
    agent steps the training env counted, and no sampled action is outside the mask it was sampled under."""
    from baselines.backends.rllib_batched_runner import BatchedEnvRunner

    algo, config = _config("portfolio", {"n_agents": 3})
    try:
        runner = BatchedEnvRunner(config=config)
        assert (runner.num_envs, runner.env.num_envs) == (4, 12)
        episodes = runner.sample(num_timesteps=400, explore=True)
        drained = runner.drain()
        assert drained["env_steps"] >= 400
        assert sum(len(e) for e in episodes) == drained["steps"]  # agent steps
        nvec = runner.env.single_action_space.nvec
        for episode in episodes:
            masks = np.asarray(episode.get_observations()[MASK_KEY])[:-1]
            for action, mask in zip(np.asarray(episode.get_actions()), masks):
                blocks = split_mask(mask, nvec)
                assert all(block[a] == 1 for block, a in zip(blocks, action))
        runner.stop()
    finally:
        algo.close()


def test_the_suite_state_continues_a_rollout_exactly(ray_local):
    """A runner restored from another's state samples what the other samples next."""
    from baselines.backends.rllib_batched_runner import BatchedEnvRunner

    algo, config = _config("speed_limit")
    try:
        first = BatchedEnvRunner(config=config)
        first.sample(num_timesteps=150, explore=True)
        state = first.get_suite_state()
        expected = [_arrays(e) for e in first.sample(num_timesteps=150, explore=True)]
        second = BatchedEnvRunner(config=config)
        second.set_state(first.get_state())
        second.set_suite_state(state)
        got = [_arrays(e) for e in second.sample(num_timesteps=150, explore=True)]
        assert len(got) == len(expected)
        for a, b in zip(got, expected):
            for key in a:
                np.testing.assert_array_equal(a[key], b[key], err_msg=key)
        first.stop()
        second.stop()
    finally:
        algo.close()


def test_episode_metrics_are_those_of_the_last_finished_episode(ray_local):
    """With RLlib's window of one episode (the suite's ``metrics_num_episodes_for_smoothing``), the runner's
    episode metrics are the length and return of the last episode that finished, its earlier chunks included."""
    from ray.rllib.utils.metrics import EPISODE_LEN_MEAN, EPISODE_RETURN_MEAN, NUM_ENV_STEPS_SAMPLED_LIFETIME

    from baselines.backends.rllib_batched_runner import BatchedEnvRunner

    algo, config = _config("speed_limit")
    try:
        runner = BatchedEnvRunner(config=config)
        chunks: dict[str, list] = {}
        for _ in range(3):
            episodes = runner.sample(num_timesteps=300)
            steps = sum(len(e) for e in episodes)
            for episode in episodes:
                chunks.setdefault(episode.id_, []).append(episode)
            last = [e for e in episodes if e.is_done][-1]
            metrics = runner.get_metrics()
            whole = chunks[last.id_]
            assert metrics[EPISODE_LEN_MEAN].peek() == sum(len(e) for e in whole)
            assert metrics[EPISODE_RETURN_MEAN].peek() == pytest.approx(sum(e.get_return() for e in whole))
            assert metrics[NUM_ENV_STEPS_SAMPLED_LIFETIME].peek() == steps  # since the last get_metrics
        runner.stop()
    finally:
        algo.close()
