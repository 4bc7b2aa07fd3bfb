"""The masking RLModule of masked PPO, and the masked-logit helpers it shares with evaluation.

:class:`MaskedPPOTorchRLModule` is RLlib's default PPO module (encoder, policy head, value head,
built by ``PPOCatalog`` from ``model_config``) fed only the ``"observation"`` entry of the suite's
Dict observation. The ``"action_mask"`` entry is applied to the policy head's logits in
``_forward`` (the inference and exploration passes) **and** ``_forward_train``, so the PPO loss
computes log-probabilities, ratios and entropy of the masked distribution, the one the actions
were sampled from.

Masked logits are set to the most negative float (not ``-inf``): their probability is exactly 0,
while entropy (``p log p``) and KL terms stay finite. ``Discrete`` and ``MultiDiscrete`` spaces
share one path: the flat mask has one block per sub-action, in the order RLlib's
multi-categorical distribution splits its logits.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import gymnasium as gym
import numpy as np
import torch

from ray.rllib.algorithms.ppo.torch.default_ppo_torch_rl_module import DefaultPPOTorchRLModule
from ray.rllib.core.columns import Columns

from envs.masking import MASK_KEY, OBSERVATION_KEY, EmptyMaskError, action_nvec

__all__ = ["MaskedPPOTorchRLModule", "apply_mask", "choose_actions"]

#: Logit of a masked value: probability exactly 0, entropy and KL terms finite.
MASKED_LOGIT = torch.finfo(torch.float32).min


def apply_mask(logits: torch.Tensor, mask: torch.Tensor, nvec: Sequence[int], env_name: str) -> torch.Tensor:
    """``logits`` with masked-out values at :data:`MASKED_LOGIT`.

    Raises :class:`envs.masking.EmptyMaskError` naming ``env_name`` when a row admits no value of
    some sub-action: sampling there would silently pick an inadmissible action.
    """
    admitted = mask.bool()
    blocks = torch.split(admitted, list(nvec), dim=-1)
    for k, block in enumerate(blocks):
        empty = ~block.any(dim=-1)
        if bool(empty.any()):
            count = int(empty.sum())
            raise EmptyMaskError(f"env {env_name!r} produced {count} observation(s) whose action mask admits no "
                                 f"value of sub-action {k}; every env must keep at least one action admissible")
    return torch.where(admitted, logits, torch.full_like(logits, MASKED_LOGIT))


def choose_actions(logits: np.ndarray, nvec: Sequence[int], rng: np.random.Generator | None) -> np.ndarray:
    """One value per sub-action from flat ``(N, sum(nvec))`` logits: ``(N, len(nvec))``.

    ``rng`` given: a sample of each block's categorical (Gumbel-max, so the draw depends only on
    ``rng``); ``rng=None``: the most likely value of each block (greedy).
    """
    if rng is not None:
        logits = logits - np.log(-np.log(rng.uniform(np.finfo(np.float64).tiny, 1.0, size=logits.shape)))
    bounds = np.cumsum([0, *nvec])
    return np.stack([logits[:, lo:hi].argmax(axis=-1) for lo, hi in zip(bounds[:-1], bounds[1:])], axis=-1)


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
