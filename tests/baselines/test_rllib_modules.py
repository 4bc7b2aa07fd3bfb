"""The RLlib backend's modules: the masking module's forward passes and log-probabilities, the Gaussian
module's spread."""

import numpy as np
import pytest
import torch
from gymnasium import spaces
from ray.rllib.core.columns import Columns
from ray.rllib.core.distribution.torch.torch_distribution import TorchMultiCategorical
from ray.rllib.core.rl_module.rl_module import RLModuleSpec

from baselines.backends.rllib_masking_module import MaskedPPOTorchRLModule
from baselines.evaluation import choose_actions
from envs.masking import EmptyMaskError, masked_observation_space
from tests.helpers import random_masks

NVEC = [11, 11, 11]


def build_module(action_space=None, features=8):
    action_space = action_space or spaces.MultiDiscrete(NVEC)
    obs_space = masked_observation_space(spaces.Box(-1, 1, (features,), np.float32), action_space)
    return RLModuleSpec(module_class=MaskedPPOTorchRLModule, observation_space=obs_space, action_space=action_space,
                        model_config={"fcnet_hiddens": [32], "env_name": "test-env"}).build()


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


def test_the_module_rejects_a_dict_observation_other_than_the_suites():
    with pytest.raises(ValueError, match="Dict observation"):
        RLModuleSpec(module_class=MaskedPPOTorchRLModule, observation_space=spaces.Dict(
            {"observation": spaces.Box(-1, 1, (3,))}), action_space=spaces.Discrete(2), model_config={}).build()


def test_without_the_mask_the_module_draws_from_the_networks_logits():
    """Penalty PPO's module: the features alone, unmasked logits, its own draw with their log-probabilities."""
    module = RLModuleSpec(module_class=MaskedPPOTorchRLModule, observation_space=spaces.Box(-1, 1, (8,), np.float32),
                          action_space=spaces.MultiDiscrete(NVEC),
                          model_config={"fcnet_hiddens": [32], "draw_actions": True}).build()
    obs = torch.randn(16, 8)
    out = module.forward_exploration({Columns.OBS: obs})
    logits = out[Columns.ACTION_DIST_INPUTS]
    assert torch.equal(logits, module.unmasked_logits(obs))
    dist = TorchMultiCategorical.from_logits(logits, input_lens=NVEC)
    torch.testing.assert_close(out[Columns.ACTION_LOGP], dist.logp(out[Columns.ACTIONS]))


def test_gaussian_module_starts_at_the_configured_spread():
    """Same weights, log_std_init -2.5: every log-std output is the default module's minus 2.5."""
    from baselines.backends.rllib_gaussian_module import GaussianPPOTorchRLModule

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


def test_naive_masking_samples_admissible_actions_with_the_unmasked_log_probability():
    """Its log-probability differs from masked PPO's exactly where the mask removes probability mass:
    log p_naive(a) = log p_masked(a) + log(admitted mass of each block)."""
    naive = RLModuleSpec(module_class=MaskedPPOTorchRLModule,
                         observation_space=masked_observation_space(spaces.Box(-1, 1, (8,), np.float32),
                                                                    spaces.MultiDiscrete(NVEC)),
                         action_space=spaces.MultiDiscrete(NVEC),
                         model_config={"fcnet_hiddens": [32], "env_name": "test-env", "mask_in_loss": False}).build()
    rng = np.random.default_rng(1)
    mask = random_masks(rng, 256, NVEC)
    mask[:64] = 1  # nothing removed in the first 64 rows
    batch = {Columns.OBS: {"observation": torch.randn(256, 8), "action_mask": torch.from_numpy(mask)}}
    out = naive.forward_exploration(batch)
    actions = out[Columns.ACTIONS]
    assert torch.all(torch.from_numpy(mask).gather(1, actions + torch.tensor([0, 11, 22])) == 1)  # admissible
    unmasked = out[Columns.ACTION_DIST_INPUTS]
    masked = naive._forward({**batch})[Columns.ACTION_DIST_INPUTS]  # the masked logits of the same network
    logp_unmasked = TorchMultiCategorical.from_logits(unmasked, input_lens=NVEC).logp(actions)
    logp_masked = TorchMultiCategorical.from_logits(masked, input_lens=NVEC).logp(actions)
    assert torch.allclose(out[Columns.ACTION_LOGP], logp_unmasked)
    admitted_mass = sum(torch.log((torch.softmax(block, -1) * block_mask).sum(-1))
                        for block, block_mask in zip(torch.split(unmasked, NVEC, -1),
                                                     torch.split(torch.from_numpy(mask).float(), NVEC, -1)))
    assert torch.allclose(logp_unmasked, logp_masked + admitted_mass, atol=1e-5)
    assert torch.allclose(logp_unmasked[:64], logp_masked[:64], atol=1e-6)  # no mass removed: equal
    assert torch.all(logp_unmasked[64:] < logp_masked[64:])                # mass removed: lower
    train = naive.forward_train(batch)[Columns.ACTION_DIST_INPUTS]
    assert torch.allclose(train, unmasked)  # the loss sees the unmasked logits


@pytest.mark.parametrize("action_space", [spaces.MultiDiscrete(NVEC), spaces.Discrete(5)])
def test_drawing_in_the_module_samples_the_masked_distribution(action_space):
    """``draw_actions``: admissible actions, their log-probability under the masked logits (RLlib's), and
    frequencies those of the masked distribution (many draws of one observation)."""
    nvec = NVEC if isinstance(action_space, spaces.MultiDiscrete) else [5]
    module = RLModuleSpec(module_class=MaskedPPOTorchRLModule,
                          observation_space=masked_observation_space(spaces.Box(-1, 1, (8,), np.float32),
                                                                     action_space),
                          action_space=action_space,
                          model_config={"fcnet_hiddens": [32], "env_name": "test-env", "draw_actions": True}).build()
    rows = 20_000
    mask = np.repeat(random_masks(np.random.default_rng(2), 1, nvec), rows, axis=0)
    batch = {Columns.OBS: {"observation": torch.randn(1, 8).repeat(rows, 1), "action_mask": torch.from_numpy(mask)}}
    torch.manual_seed(0)
    with torch.no_grad():
        out = module.forward_exploration(batch)
    actions, logits = out[Columns.ACTIONS], out[Columns.ACTION_DIST_INPUTS]
    assert actions.shape == ((rows, len(nvec)) if len(nvec) > 1 else (rows,))
    per_block = actions.reshape(rows, len(nvec))
    offsets = torch.tensor(np.cumsum([0, *nvec[:-1]]))
    assert torch.all(torch.from_numpy(mask).gather(1, per_block + offsets) == 1)  # admissible
    dist = TorchMultiCategorical.from_logits(logits, input_lens=nvec)
    torch.testing.assert_close(out[Columns.ACTION_LOGP], dist.logp(per_block))
    for k, block in enumerate(torch.split(logits[0], nvec)):
        frequencies = torch.bincount(per_block[:, k], minlength=nvec[k]).double() / rows
        np.testing.assert_allclose(frequencies, torch.softmax(block.double(), -1), atol=0.015)
    assert torch.equal(module.forward_exploration(batch)[Columns.ACTION_DIST_INPUTS], logits)  # masked logits
