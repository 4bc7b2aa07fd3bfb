"""The masking RLModule and the RLlib training-env wrappers, without a Ray cluster.

The module is built from its spec as RLlib builds it; its forward passes must put zero probability
on masked values (so the PPO loss sees the masked distribution), keep entropy finite, refuse an
empty mask block, and leave the value function untouched by the mask.
"""

import numpy as np
import pytest
import torch
from gymnasium import spaces
from hypothesis import given, settings
from hypothesis import strategies as st
from ray.rllib.core.columns import Columns
from ray.rllib.core.distribution.torch.torch_distribution import TorchMultiCategorical
from ray.rllib.core.rl_module.rl_module import RLModuleSpec

import envs
from baselines.masking_module import MASKED_LOGIT, MaskedPPOTorchRLModule, apply_mask, choose_actions
from baselines.rllib_env import TrainingStats, find_wrapper, make_training_env, transform_features
from envs.masking import EmptyMaskError, masked_observation_space, split_mask

NVEC = [11, 11, 11]


def build_module(action_space=None, features=8):
    action_space = action_space or spaces.MultiDiscrete(NVEC)
    obs_space = masked_observation_space(spaces.Box(-1, 1, (features,), np.float32), action_space)
    return RLModuleSpec(module_class=MaskedPPOTorchRLModule, observation_space=obs_space, action_space=action_space,
                        model_config={"fcnet_hiddens": [32], "env_name": "test-env"}).build()


def random_masks(rng, n, nvec):
    """Masks with at least one admissible value per block."""
    blocks = []
    for size in nvec:
        block = (rng.random((n, size)) < 0.4).astype(np.int8)
        block[np.arange(n), rng.integers(0, size, n)] = 1
        blocks.append(block)
    return np.concatenate(blocks, axis=1)


def test_every_forward_pass_gives_masked_values_zero_probability():
    module = build_module()
    rng = np.random.default_rng(0)
    mask = torch.from_numpy(random_masks(rng, 64, NVEC))
    batch = {Columns.OBS: {"observation": torch.randn(64, 8), "action_mask": mask}}
    for forward in (module.forward_inference, module.forward_exploration, module.forward_train):
        logits = forward(batch)[Columns.ACTION_DIST_INPUTS]
        dist = TorchMultiCategorical.from_logits(logits, input_lens=NVEC)
        probs = torch.cat([torch.softmax(block, -1) for block in torch.split(logits, NVEC, -1)], -1)
        assert torch.all(probs[mask == 0] == 0)
        assert torch.allclose(probs.view(64, 3, 11).sum(-1), torch.ones(64, 3))
        assert torch.isfinite(dist.entropy()).all()
        actions = dist.sample()
        flat = actions + torch.tensor([0, 11, 22])
        assert torch.all(mask.gather(1, flat) == 1)


def test_masked_log_probability_is_that_of_the_renormalised_distribution():
    module = build_module()
    mask = torch.zeros(1, 33, dtype=torch.int8)
    mask[0, [5, 6, 16, 27, 28, 29]] = 1
    batch = {Columns.OBS: {"observation": torch.randn(1, 8), "action_mask": mask}}
    logits = module.forward_train(batch)[Columns.ACTION_DIST_INPUTS]
    raw = module.unmasked_logits(batch[Columns.OBS]["observation"])
    action = torch.tensor([[6, 5, 7]])  # admitted: 6 of block 0, 16-11=5 of block 1, 29-22=7 of block 2
    logp = TorchMultiCategorical.from_logits(logits, input_lens=NVEC).logp(action)
    expected = (torch.log_softmax(raw[0, [5, 6]], -1)[1] + 0.0
                + torch.log_softmax(raw[0, [27, 28, 29]], -1)[2])
    assert torch.allclose(logp, expected.unsqueeze(0), atol=1e-5)


def test_values_do_not_depend_on_the_mask():
    module = build_module()
    obs = torch.randn(16, 8)
    ones = torch.ones(16, 33, dtype=torch.int8)
    some = torch.from_numpy(random_masks(np.random.default_rng(1), 16, NVEC))
    v1 = module.compute_values({Columns.OBS: {"observation": obs, "action_mask": ones}})
    v2 = module.compute_values({Columns.OBS: {"observation": obs, "action_mask": some}})
    assert v1.shape == (16,) and torch.equal(v1, v2)


def test_an_empty_mask_block_is_an_error_naming_the_env():
    module = build_module()
    mask = torch.ones(4, 33, dtype=torch.int8)
    mask[2, 11:22] = 0
    with pytest.raises(EmptyMaskError, match="'test-env'.*1 observation.*sub-action 1"):
        module.forward_exploration({Columns.OBS: {"observation": torch.randn(4, 8), "action_mask": mask}})


def test_discrete_actions_use_the_same_path():
    module = build_module(spaces.Discrete(5), features=3)
    mask = torch.tensor([[0, 1, 0, 0, 1]] * 200, dtype=torch.int8)
    logits = module.forward_exploration({Columns.OBS: {"observation": torch.randn(200, 3), "action_mask": mask}})[
        Columns.ACTION_DIST_INPUTS]
    assert set(choose_actions(logits.detach().numpy(), [5], np.random.default_rng(0))[:, 0]) <= {1, 4}


def test_the_module_rejects_an_observation_without_the_mask():
    with pytest.raises(ValueError, match="Dict observation"):
        RLModuleSpec(module_class=MaskedPPOTorchRLModule, observation_space=spaces.Box(-1, 1, (3,)),
                     action_space=spaces.Discrete(2), model_config={}).build()


@settings(max_examples=50, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(1, 20))
def test_sampling_masked_logits_only_picks_admissible_values(seed, n):
    rng = np.random.default_rng(seed)
    mask = random_masks(rng, n, NVEC)
    logits = apply_mask(torch.from_numpy(rng.normal(0, 5, (n, 33)).astype(np.float32)), torch.from_numpy(mask),
                        NVEC, "x").numpy()
    for draw_rng in (rng, None):
        actions = choose_actions(logits, NVEC, draw_rng)
        for k, block in enumerate(split_mask(mask, NVEC)):
            assert np.all(block[np.arange(n), actions[:, k]] == 1)


def test_stochastic_choice_follows_the_softmax():
    logits = np.tile(np.log(np.array([[0.2, 0.5, 0.3, 1e-12]])), (20000, 1))
    counts = np.bincount(choose_actions(logits, [4], np.random.default_rng(0))[:, 0], minlength=4) / 20000
    assert np.allclose(counts, [0.2, 0.5, 0.3, 0.0], atol=0.015)
    assert choose_actions(logits[:1], [4], None)[0, 0] == 1
    assert MASKED_LOGIT < -1e38


def test_symlog_keeps_sign_order_and_zero():
    x = np.array([-1000.0, -1.0, 0.0, 1.0, 40.0, 1000.0], dtype=np.float32)
    y = transform_features(x, "symlog")
    assert y.dtype == np.float32 and y[2] == 0 and np.all(np.diff(y) > 0)
    assert np.isclose(y[-1], np.log1p(1000.0)) and y[0] == -y[-1]
    with pytest.raises(ValueError, match="accepted: none, symlog"):
        transform_features(x, "tanh")


def test_training_env_counts_invalid_steps_and_penalises_them():
    context = {"env_name": "portfolio", "env_config": {}, "obs_transform": "symlog", "reward_scale": 1.0,
               "penalty": 7.0, "num_envs": 4}
    env = make_training_env(context)
    assert env.single_observation_space.shape == (8,)  # the mask is hidden
    obs, _ = env.reset(seed=0)
    raw, _ = envs.make_vector("portfolio", 4).reset(seed=0)
    assert np.allclose(obs, transform_features(raw["observation"], "symlog"))
    sell_everything = np.zeros((4, 3), dtype=np.int64)  # nothing is held: every sale is inadmissible
    _, reward, _, _, info = env.step(sell_everything)
    assert np.array_equal(info["invalid_actions"], [3, 3, 3, 3])
    assert np.allclose(reward, -21.0)
    stats = find_wrapper(env, TrainingStats)
    assert stats.drain() == {"steps": 4, "invalid_steps": 4, "episodes": []}
    assert stats.drain()["steps"] == 0
    for _ in range(20):  # the episode ends after 20 trades; holding is always admissible
        env.step(np.full((4, 3), 5))
    drained = stats.drain()
    assert drained["steps"] == 19 * 4 and drained["invalid_steps"] == 0
    assert [e["invalid_steps"] for e in drained["episodes"]] == [1, 1, 1, 1]
    assert all(e["return"] == e["portfolio_value"] for e in drained["episodes"])  # the env's reward, unpenalised


def test_training_env_needs_the_vector_entry_point():
    with pytest.raises(ValueError, match="vector_entry_point"):
        make_training_env({"env_name": "portfolio", "env_config": {}, "obs_transform": "none", "reward_scale": 1.0})


def continuous_training_env(**context):
    return make_training_env({"env_name": "sum_to_zero", "env_config": {}, "obs_transform": "none",
                              "reward_scale": 1.0, "num_envs": 8, **context})


def test_projection_mode_sends_only_admissible_actions_to_the_env():
    env = continuous_training_env(action_mode="project")
    assert env.single_observation_space.shape == (26,) and env.single_action_space.shape == (13,)
    env.reset(seed=0)
    core = env.unwrapped.core
    rng = np.random.default_rng(0)
    for _ in range(60):  # past the end of the first episodes: autoreset included
        before = core.state.weights.copy()
        raw = rng.uniform(-1, 1, (8, 13))
        expected = core.admissible_set().project(raw[:, None])
        _, _, _, _, info = env.step(raw)
        assert (info["invalid_actions"] == 0).all()
        moved = core.state.weights - before
        stepped = core.state.t > 0
        np.testing.assert_allclose(moved[stepped], expected[stepped], atol=1e-12)  # exactly the projection
    assert find_wrapper(env, TrainingStats).drain()["invalid_steps"] == 0


def test_normalize_mode_acts_in_target_weights_and_is_always_admissible():
    env = continuous_training_env(action_mode="normalize")
    assert env.single_action_space.low.min() == 0.0 and env.single_action_space.high.max() == 1.0
    env.reset(seed=0)
    core = env.unwrapped.core
    targets = np.random.default_rng(1).uniform(0, 1, (8, 13))
    _, _, _, _, info = env.step(targets)
    assert (info["invalid_actions"] == 0).all()
    np.testing.assert_allclose(core.state.weights[:, 0], targets / targets.sum(axis=-1, keepdims=True), atol=1e-12)


def test_continuous_penalty_is_proportional_to_the_distance_to_the_admissible_set():
    plain, penalised = continuous_training_env(), continuous_training_env(penalty=3.0)
    plain.reset(seed=0)
    penalised.reset(seed=0)
    core = penalised.unwrapped.core
    actions = np.random.default_rng(2).uniform(-1, 1, (8, 13))
    actions[0] = 0.0  # admissible: no penalty
    distance = core.admissible_set().distance(actions[:, None])[:, 0]
    _, reward, _, _, info = penalised.step(actions)
    _, plain_reward, _, _, _ = plain.step(actions)
    assert info["invalid_actions"][0] == 0 and (info["invalid_actions"][1:] == 1).all()
    np.testing.assert_allclose(reward, plain_reward - 3.0 * distance * (info["invalid_actions"] > 0))
    assert distance[1:].min() > 0


def test_gaussian_module_starts_at_the_configured_spread():
    """Same weights, log_std_init -2.5: every log-std output is the default module's minus 2.5."""
    from baselines.gaussian_module import GaussianPPOTorchRLModule

    def build(log_std_init):
        torch.manual_seed(0)
        return GaussianPPOTorchRLModule(observation_space=spaces.Box(0, 1, (26,), np.float32),
                                        action_space=spaces.Box(-1, 1, (13,)), inference_only=False,
                                        model_config={"log_std_init": log_std_init, "fcnet_hiddens": [8]})

    shifted, default = build(-2.5), build(0.0)
    obs = torch.rand(5, 26)
    for forward in ("forward_inference", "forward_exploration", "forward_train"):
        mean, log_std = getattr(shifted, forward)({Columns.OBS: obs})[Columns.ACTION_DIST_INPUTS].chunk(2, dim=-1)
        mean0, log_std0 = getattr(default, forward)({Columns.OBS: obs})[Columns.ACTION_DIST_INPUTS].chunk(2, dim=-1)
        assert torch.allclose(mean, mean0) and torch.allclose(log_std, log_std0 - 2.5)
