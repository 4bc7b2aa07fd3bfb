"""The RLlib backend's module for discrete actions: RLlib's default PPO module with the suite's masked categorical.

:class:`MaskedPPOTorchRLModule` is RLlib's default PPO module (encoder, policy head, value head, built
by ``PPOCatalog`` from ``model_config``), extended only through RLlib's documented hooks
(``_forward``, ``_forward_exploration``, ``_forward_train``, ``compute_values``), as RLlib's own
masking example (``rllib/examples/rl_modules/classes/action_masking_rlm.py``) does.

When the agent observes the mask (the suite's Dict observation), the module is fed only the
``"observation"`` entry and the ``"action_mask"`` entry is applied to the policy head's logits in every
forward pass (:func:`baselines.masked_logits.apply_mask`), so the PPO loss computes log-probabilities,
ratios and entropy of the masked distribution, the one the actions were sampled from. With
``mask_in_loss=False`` (naive masking) the module samples from the masked logits and returns the action
with its log-probability under the **unmasked** logits, and ``_forward_train`` returns the unmasked
logits: the loss is the unmasked policy's. When the agent sees no mask (penalty PPO) the observation is
the features and the logits are the network's.

With ``draw_actions=True`` (``rllib_learner=fast``, the default) the exploration pass draws the actions
itself with the suite's one masked categorical (:func:`baselines.masked_logits.sample_with_log_prob`:
Gumbel-max, all sub-actions of one size in one pass) and returns them with their log-probabilities, as
RLlib's runners take a module's own actions. With ``draw_actions=False`` (``rllib_learner=exact``) the draw
is left to RLlib's distribution classes (``get_exploration_action_dist_cls``), RLlib's own draws bit for bit.

Masked logits are set to the most negative float (not ``-inf``): their probability is exactly 0,
while entropy (``p log p``) and KL terms stay finite. ``Discrete`` and ``MultiDiscrete`` spaces
share one path: the flat mask has one block per sub-action, in the order RLlib's
multi-categorical distribution splits its logits.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import torch
from ray.rllib.algorithms.ppo.torch.default_ppo_torch_rl_module import DefaultPPOTorchRLModule
from ray.rllib.core.columns import Columns

from baselines.masked_logits import apply_mask, log_prob_and_entropy, sample_with_log_prob
from envs.masking import MASK_KEY, OBSERVATION_KEY, action_nvec

__all__ = ["MaskedPPOTorchRLModule", "ModeSwitchOnce"]


class ModeSwitchOnce:
    """torch's ``train``, skipped when the module and all its submodules are in ``mode`` already: RLlib's
    ``forward_train`` calls ``train()`` before every minibatch and ``forward_exploration``/``forward_inference``
    call ``eval()`` at every step, each a walk that sets the flag of every submodule (a few milliseconds per
    update, for nothing after the first). Mixed in before RLlib's module class."""

    def train(self, mode: bool = True):
        if all(module.training == mode for module in self.modules()):
            return self
        return super().train(mode)


class MaskedPPOTorchRLModule(ModeSwitchOnce, DefaultPPOTorchRLModule):
    """PPO's default torch module over a discrete action space, with the suite's action mask (when observed)
    applied to its logits.

    ``model_config`` takes RLlib's ``DefaultModelConfig`` keys plus ``env_name`` (for error messages),
    ``mask_in_loss`` (default True; False: naive masking) and ``draw_actions`` (default False; True: the module
    draws its actions itself). The observation space is the suite's ``Dict(observation=Box, action_mask=Box)``
    (the agent observes the mask) or the features' ``Box`` (it does not).
    """

    def __init__(self, *args, observation_space: gym.Space | None = None, action_space: gym.Space | None = None,
                 model_config: dict[str, Any] | None = None, **kwargs):
        self.observes_mask = isinstance(observation_space, gym.spaces.Dict)
        if self.observes_mask and set(observation_space.spaces) != {OBSERVATION_KEY, MASK_KEY}:
            raise ValueError(f"a masking module needs the suite's Dict observation with keys {OBSERVATION_KEY!r} "
                             f"and {MASK_KEY!r}; got {observation_space}")
        model_config = dict(model_config or {})
        self.env_name = model_config.pop("env_name", "?")
        self.mask_in_loss = bool(model_config.pop("mask_in_loss", True))
        self.draw_actions = bool(model_config.pop("draw_actions", False))
        self.nvec = action_nvec(action_space)
        self._observation_space_with_mask = observation_space
        # The catalog builds the encoder for the features alone.
        super().__init__(*args, observation_space=observation_space[OBSERVATION_KEY] if self.observes_mask
                         else observation_space, action_space=action_space, model_config=model_config, **kwargs)

    def setup(self):
        super().setup()
        self.observation_space = self._observation_space_with_mask

    def _unpack(self, batch: dict[str, Any]) -> tuple[dict[str, Any], torch.Tensor | None]:
        if not self.observes_mask:
            return batch, None
        observation = batch[Columns.OBS]
        return {**batch, Columns.OBS: observation[OBSERVATION_KEY]}, observation[MASK_KEY]

    def _masked(self, logits: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        return logits if mask is None else apply_mask(logits, mask, self.nvec, self.env_name)

    def _actions(self, actions: torch.Tensor) -> torch.Tensor:
        """``(N, len(nvec))`` actions in RLlib's layout: ``(N,)`` for a ``Discrete`` space."""
        return actions[..., 0] if isinstance(self.action_space, gym.spaces.Discrete) else actions

    def _forward(self, batch: dict[str, Any], **kwargs) -> dict[str, Any]:
        inner, mask = self._unpack(batch)
        out = super()._forward(inner, **kwargs)
        out[Columns.ACTION_DIST_INPUTS] = self._masked(out[Columns.ACTION_DIST_INPUTS], mask)
        return out

    def _forward_exploration(self, batch: dict[str, Any], **kwargs) -> dict[str, Any]:
        if self.mask_in_loss or not self.observes_mask:
            out = self._forward(batch, **kwargs)
            if self.draw_actions:  # else RLlib's distribution draws from the (masked) logits
                actions, out[Columns.ACTION_LOGP] = sample_with_log_prob(out[Columns.ACTION_DIST_INPUTS], self.nvec)
                out[Columns.ACTIONS] = self._actions(actions)
            return out
        inner, mask = self._unpack(batch)
        out = super()._forward(inner, **kwargs)
        logits = out[Columns.ACTION_DIST_INPUTS]
        actions, _ = sample_with_log_prob(self._masked(logits, mask), self.nvec)
        out[Columns.ACTION_LOGP] = log_prob_and_entropy(logits, actions, self.nvec)[0]
        out[Columns.ACTIONS] = self._actions(actions)
        return out  # ACTION_DIST_INPUTS stay the unmasked logits, the distribution the loss compares with

    def _forward_train(self, batch: dict[str, Any], **kwargs) -> dict[str, Any]:
        inner, mask = self._unpack(batch)
        out = super()._forward_train(inner, **kwargs)
        if self.mask_in_loss:
            out[Columns.ACTION_DIST_INPUTS] = self._masked(out[Columns.ACTION_DIST_INPUTS], mask)
        return out

    def compute_values(self, batch: dict[str, Any], embeddings: Any | None = None):
        if embeddings is None:
            batch, _ = self._unpack(batch)
        return super().compute_values(batch, embeddings)

    def unmasked_logits(self, features: torch.Tensor) -> torch.Tensor:
        """The policy head's logits before masking (evaluation with the mask removed)."""
        return super()._forward({Columns.OBS: features})[Columns.ACTION_DIST_INPUTS]
