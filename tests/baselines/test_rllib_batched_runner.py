"""The RLlib backend's batched EnvRunner: what it hands RLlib's Learner is what RLlib's own runner would,
step for step; several agents are one column each; its state carries a rollout across a checkpoint."""

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
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

    from baselines.training_env import make_training_env

    register_env("maskbench-training-env", make_training_env)
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


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**31), nvec=st.lists(st.integers(1, 12), min_size=1, max_size=4), rows=st.integers(1, 40))
def test_sampling_is_rllibs_categorical_draw_for_draw(seed, nvec, rows):
    """The same actions and log-probabilities as RLlib's distribution classes, from the same draws of torch's
    generator (which is left in the same state), on logits masked as the masking module masks them."""
    from ray.rllib.core.distribution.torch.torch_distribution import TorchCategorical, TorchMultiCategorical

    from baselines.backends.rllib_batched_runner import categorical_sample
    from baselines.masked_logits import MASKED_LOGIT

    generator = np.random.default_rng(seed)
    logits = torch.tensor(generator.normal(scale=3.0, size=(rows, sum(nvec))).astype(np.float32))
    masked = torch.tensor(generator.random(logits.shape) < 0.3)
    for start, n in zip(np.cumsum([0, *nvec[:-1]]), nvec):  # keep one value of each sub-action
        masked[:, int(start) + int(generator.integers(0, n))] = False
    logits = torch.where(masked, MASKED_LOGIT, logits)
    discrete = len(nvec) == 1 and seed % 2 == 0
    dist_cls = TorchCategorical if discrete else TorchMultiCategorical.get_partial_dist_cls(input_lens=nvec)
    torch.manual_seed(seed)
    theirs = dist_cls.from_logits(logits)
    actions = theirs.sample()
    expected = (actions, theirs.logp(actions), torch.rand(3))
    torch.manual_seed(seed)
    got = (*categorical_sample(dist_cls, logits), torch.rand(3))
    for mine, rllib in zip(got, expected):
        assert mine.shape == rllib.shape and mine.dtype == rllib.dtype and torch.equal(mine, rllib)
    assert not masked.gather(-1, (actions if not discrete else actions[:, None]) + torch.tensor(
        np.cumsum([0, *nvec[:-1]]))).any()


def test_other_distributions_are_left_to_rllib():
    from ray.rllib.core.distribution.torch.torch_distribution import TorchDiagGaussian

    from baselines.backends.rllib_batched_runner import categorical_sample

    assert categorical_sample(TorchDiagGaussian, torch.zeros(2, 4)) is None


def test_episode_metrics_are_rllibs(ray_local):
    """Logging only the finished episodes the metrics' window keeps reports what logging all of them does:
    two runners on the same seed, one with RLlib's own ``get_metrics``, over three samples."""
    from ray.rllib.env.single_agent_env_runner import SingleAgentEnvRunner

    from baselines.backends.rllib_batched_runner import BatchedEnvRunner, global_rng_state, set_global_rng_state

    class AllEpisodes(BatchedEnvRunner):
        get_metrics = SingleAgentEnvRunner.get_metrics

    algo, config = _config("portfolio")
    try:
        runners = [cls(config=config) for cls in (BatchedEnvRunner, AllEpisodes)]
        keys = ["episode_return_mean", "episode_return_min", "episode_return_max", "episode_len_mean",
                "episode_len_min", "episode_len_max", "num_episodes", "num_episodes_lifetime"]
        for _ in range(3):
            metrics, state = [], global_rng_state()
            for runner in runners:  # the same draws from the global generators for each
                set_global_rng_state(state)
                episodes = runner.sample(num_timesteps=300)
                metrics.append(runner.get_metrics())
            assert sum(e.is_done for e in episodes) > 1  # several finished episodes per sample, the window 1
            for key in keys:
                assert metrics[0][key].peek() == metrics[1][key].peek(), key
            # the chunks of episodes still running are kept alike (episode ids are random: compare their sizes)
            assert sorted(map(len, runners[0]._ongoing_episodes_for_metrics.values())) == \
                sorted(map(len, runners[1]._ongoing_episodes_for_metrics.values()))
        for runner in runners:
            runner.stop()
    finally:
        algo.close()
