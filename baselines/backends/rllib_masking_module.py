"""The masking RLModule of the RLlib backend; the masked logits are :mod:`baselines.masked_logits`.

:class:`MaskedPPOTorchRLModule` is RLlib's default PPO module (encoder, policy head, value head,
built by ``PPOCatalog`` from ``model_config``) fed only the ``"observation"`` entry of the suite's
Dict observation. The ``"action_mask"`` entry is applied to the policy head's logits in
``_forward`` (the inference and exploration passes) **and** ``_forward_train``, so the PPO loss
computes log-probabilities, ratios and entropy of the masked distribution, the one the actions
were sampled from.

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

from baselines.masked_logits import apply_mask
from envs.masking import MASK_KEY, OBSERVATION_KEY, action_nvec

__all__ = ["MaskedPPOTorchRLModule"]


class MaskedPPOTorchRLModule(DefaultPPOTorchRLModule):
    """PPO's default torch module with the suite's action mask applied to its logits.

    ``model_config`` takes RLlib's ``DefaultModelConfig`` keys plus ``env_name`` (for error
    messages). The observation space must be the suite's ``Dict(observation=Box,
    action_mask=Box)``.
    """

    def __init__(self, *args, observation_space: gym.Space | None = None, action_space: gym.Space | None = None,
                 model_config: dict[str, Any] | None = None, **kwargs):
        if not isinstance(observation_space, gym.spaces.Dict) or set(observation_space.spaces) != {
                OBSERVATION_KEY, MASK_KEY}:
            raise ValueError(f"masked PPO needs the suite's Dict observation with keys {OBSERVATION_KEY!r} and "
                             f"{MASK_KEY!r}; got {observation_space}")
        model_config = dict(model_config or {})
        self.env_name = model_config.pop("env_name", "?")
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

    def _forward_train(self, batch: dict[str, Any], **kwargs) -> dict[str, Any]:
        inner, mask = self._unpack(batch)
        out = super()._forward_train(inner, **kwargs)
        out[Columns.ACTION_DIST_INPUTS] = apply_mask(out[Columns.ACTION_DIST_INPUTS], mask, self.nvec, self.env_name)
        return out

    def compute_values(self, batch: dict[str, Any], embeddings: Any | None = None):
        if embeddings is None:
            batch, _ = self._unpack(batch)
        return super().compute_values(batch, embeddings)

    def unmasked_logits(self, features: torch.Tensor) -> torch.Tensor:
        """The policy head's logits before masking (evaluation with the mask removed)."""
        return super()._forward({Columns.OBS: features})[Columns.ACTION_DIST_INPUTS]
