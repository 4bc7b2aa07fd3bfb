"""The masking RLModule of the RLlib backend; the masked logits are :mod:`baselines.masked_logits`.

:class:`MaskedPPOTorchRLModule` is RLlib's default PPO module (encoder, policy head, value head,
built by ``PPOCatalog`` from ``model_config``) fed only the ``"observation"`` entry of the suite's
Dict observation. The ``"action_mask"`` entry is applied to the policy head's logits in
``_forward`` (the inference and exploration passes) **and** ``_forward_train``, so the PPO loss
computes log-probabilities, ratios and entropy of the masked distribution, the one the actions
were sampled from.

With ``mask_in_loss=False`` (naive masking) the module samples from the masked logits itself in the
exploration pass and returns the action with its log-probability under the **unmasked** logits, and
``_forward_train`` returns the unmasked logits: the loss is the unmasked policy's.

With ``draw_actions=True`` (the fast learner's runs, ``rllib_learner=fast``) the module also draws the
actions of masked PPO itself, with the torch backend's Gumbel-max draw (:func:`sample_with_log_prob`, one
pass over sub-actions of one size) and their log-probabilities, instead of leaving the draw to RLlib's
``GetActions`` (a torch ``multinomial`` per sub-action and its ``logsumexp``): the same distribution, other
draws from torch's generator, in about a third of the time. RLlib's own runner takes a module's actions as
it takes naive masking's.

Masked logits are set to the most negative float (not ``-inf``): their probability is exactly 0,
while entropy (``p log p``) and KL terms stay finite. ``Discrete`` and ``MultiDiscrete`` spaces
share one path: the flat mask has one block per sub-action, in the order RLlib's
multi-categorical distribution splits its logits. The same :func:`apply_mask` serves the
single-process torch backend (:mod:`baselines.backends.torch_ppo`).
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import torch
from ray.rllib.algorithms.ppo.torch.default_ppo_torch_rl_module import DefaultPPOTorchRLModule
from ray.rllib.core.columns import Columns

from baselines.masked_logits import apply_mask, log_prob_and_entropy, sample_with_log_prob
from envs.masking import MASK_KEY, OBSERVATION_KEY, action_nvec

__all__ = ["MaskedPPOTorchRLModule"]


class MaskedPPOTorchRLModule(DefaultPPOTorchRLModule):
    """PPO's default torch module with the suite's action mask applied to its logits.

    ``model_config`` takes RLlib's ``DefaultModelConfig`` keys plus ``env_name`` (for error
    messages), ``mask_in_loss`` (default True; False: naive masking) and ``draw_actions`` (default False;
    True: the module draws masked PPO's actions itself). The observation space must be the suite's
    ``Dict(observation=Box, action_mask=Box)``.
    """

    def __init__(self, *args, observation_space: gym.Space | None = None, action_space: gym.Space | None = None,
                 model_config: dict[str, Any] | None = None, **kwargs):
        if not isinstance(observation_space, gym.spaces.Dict) or set(observation_space.spaces) != {
                OBSERVATION_KEY, MASK_KEY}:
            raise ValueError(f"masked PPO needs the suite's Dict observation with keys {OBSERVATION_KEY!r} and "
                             f"{MASK_KEY!r}; got {observation_space}")
        model_config = dict(model_config or {})
        self.env_name = model_config.pop("env_name", "?")
        self.mask_in_loss = bool(model_config.pop("mask_in_loss", True))
        self.draw_actions = bool(model_config.pop("draw_actions", False))
        self.nvec = action_nvec(action_space)
        self._observation_space_with_mask = observation_space
        # The catalog builds the encoder for the features alone.
        super().__init__(*args, observation_space=observation_space[OBSERVATION_KEY], action_space=action_space,
                         model_config=model_config, **kwargs)

    def setup(self):
        super().setup()
        self.observation_space = self._observation_space_with_mask

    def _unpack(self, batch: dict[str, Any]) -> tuple[dict[str, Any], torch.Tensor]:
        observation = batch[Columns.OBS]
        return {**batch, Columns.OBS: observation[OBSERVATION_KEY]}, observation[MASK_KEY]

    def _forward(self, batch: dict[str, Any], **kwargs) -> dict[str, Any]:
        inner, mask = self._unpack(batch)
        out = super()._forward(inner, **kwargs)
        out[Columns.ACTION_DIST_INPUTS] = apply_mask(out[Columns.ACTION_DIST_INPUTS], mask, self.nvec, self.env_name)
        return out

    def _forward_exploration(self, batch: dict[str, Any], **kwargs) -> dict[str, Any]:
        if self.mask_in_loss and not self.draw_actions:
            return self._forward(batch, **kwargs)  # RLlib samples from the masked logits
        if self.mask_in_loss:
            out = self._forward(batch, **kwargs)
            actions, out[Columns.ACTION_LOGP] = sample_with_log_prob(out[Columns.ACTION_DIST_INPUTS], self.nvec)
            out[Columns.ACTIONS] = actions[..., 0] if isinstance(self.action_space, gym.spaces.Discrete) else actions
            return out
        inner, mask = self._unpack(batch)
        out = super()._forward(inner, **kwargs)
        logits = out[Columns.ACTION_DIST_INPUTS]
        actions, _ = sample_with_log_prob(apply_mask(logits, mask, self.nvec, self.env_name), self.nvec)
        out[Columns.ACTION_LOGP] = log_prob_and_entropy(logits, actions, self.nvec)[0]
        out[Columns.ACTIONS] = actions[..., 0] if isinstance(self.action_space, gym.spaces.Discrete) else actions
        return out  # ACTION_DIST_INPUTS stay the unmasked logits, the distribution the loss compares with

    def _forward_train(self, batch: dict[str, Any], **kwargs) -> dict[str, Any]:
        inner, mask = self._unpack(batch)
        out = super()._forward_train(inner, **kwargs)
        if self.mask_in_loss:
            out[Columns.ACTION_DIST_INPUTS] = apply_mask(out[Columns.ACTION_DIST_INPUTS], mask, self.nvec,
                                                         self.env_name)
        return out

    def train(self, mode: bool = True):
        """torch's ``train``, skipped when this module and all its submodules are in ``mode`` already: RLlib's
        ``forward_train`` calls ``train()`` before every minibatch's forward pass, a walk that sets the flag
        of every submodule (a few milliseconds per update, for nothing after the first)."""
        if all(module.training == mode for module in self.modules()):
            return self
        return super().train(mode)

    def compute_values(self, batch: dict[str, Any], embeddings: Any | None = None):
        if embeddings is None:
            batch, _ = self._unpack(batch)
        return super().compute_values(batch, embeddings)

    def unmasked_logits(self, features: torch.Tensor) -> torch.Tensor:
        """The policy head's logits before masking (evaluation with the mask removed)."""
        return super()._forward({Columns.OBS: features})[Columns.ACTION_DIST_INPUTS]
