"""``penalty_ppo``: RLlib PPO that never sees the mask and is penalised for inadmissible actions.

The agent observes only the ``"observation"`` features and uses RLlib's default PPO module. An
inadmissible sub-action is executed as the env's documented fallback (e.g. hold in portfolio) and
costs ``penalty`` per inadmissible sub-action, in the units of the reward the agent trains on (the
training env's, before ``reward_scale``). Huang & Ontañón (2020) compare this "invalid action
penalty" with masking; a small sweep of ``--algo-config penalty=...`` shows how its size trades
invalid actions against return.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from baselines.base import Policy
from baselines.ppo import PPOSettings, RLlibPPO, logit_policy
from baselines.rllib_env import transform_features
from envs.config import ConfigError, setting
from envs.masking import OBSERVATION_KEY, is_discrete

__all__ = ["PenaltyPPOConfig", "PenaltyPPO"]


@dataclass(frozen=True)
class PenaltyPPOConfig(PPOSettings):
    """Penalty PPO's training config: the PPO settings plus the penalty."""

    penalty: float = setting(0.1, "reward subtracted per inadmissible sub-action, in training-reward units",
                             check=lambda v: v >= 0, accepts="a non-negative number")


class PenaltyPPO(RLlibPPO):
    Config = PenaltyPPOConfig
    masked = False
    #: portfolio: 0.01 of the start cash ($10) per inadmissible sub-action, in value_change units.
    env_defaults = {env: {**defaults, **({"penalty": 0.01} if env == "portfolio" else {})}
                    for env, defaults in RLlibPPO.env_defaults.items()}

    def _validate(self) -> None:
        super()._validate()
        if not is_discrete(self.action_space):
            raise ConfigError(f"penalty_ppo here supports Discrete and MultiDiscrete actions; env "
                              f"{self.env_name!r} has {self.action_space}")

    def env_context(self) -> dict[str, Any]:
        return {**super().env_context(), "penalty": self.config.penalty}

    def eval_policies(self) -> dict[tuple[str, str], Policy]:
        module = self.module()
        kind = self.config.obs_transform

        @torch.no_grad()
        def logits(observations: dict[str, np.ndarray]) -> np.ndarray:
            features = torch.from_numpy(transform_features(observations[OBSERVATION_KEY], kind))
            return module.forward_inference({"obs": features})["action_dist_inputs"].numpy()

        return {(policy, "off"): logit_policy(logits, self.action_space, stochastic=policy == "stochastic")
                for policy in ("greedy", "stochastic")}
