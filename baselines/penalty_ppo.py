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
from envs.config import setting

__all__ = ["PenaltyPPOConfig", "PenaltyPPO"]


@dataclass(frozen=True)
class PenaltyPPOConfig(PPOSettings):
    """Penalty PPO's training config: the PPO settings plus the penalty."""

    penalty: float = setting(0.1, "reward subtracted per inadmissible sub-action, in training-reward units",
                             check=lambda v: v >= 0, accepts="a non-negative number")


class PenaltyPPO(RLlibPPO):
    Config = PenaltyPPOConfig
    masked = False
    #: portfolio: 0.01 of the start cash ($10) per inadmissible sub-action, in value_change units;
    #: speed_limit: 1, the time cost of one step.
    env_defaults = {"portfolio": {**RLlibPPO.env_defaults["portfolio"], "penalty": 0.01},
                    "speed_limit": {**RLlibPPO.env_defaults["speed_limit"], "penalty": 1.0}}

    def env_context(self) -> dict[str, Any]:
        return {**super().env_context(), "penalty": self.config.penalty}

    def eval_policies(self) -> dict[tuple[str, str], Policy]:
        module = self.module()

        @torch.no_grad()
        def logits(observations: dict[str, np.ndarray]) -> np.ndarray:
            return module.forward_inference({"obs": self.features(observations)})["action_dist_inputs"].numpy()

        return {(policy, "off"): logit_policy(logits, self.action_space, stochastic=policy == "stochastic")
                for policy in ("greedy", "stochastic")}
