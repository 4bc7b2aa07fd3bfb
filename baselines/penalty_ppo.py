"""``penalty_ppo``: RLlib PPO that never sees the mask and is penalised for inadmissible actions.

The agent observes only the ``"observation"`` features and uses RLlib's default PPO module. An
inadmissible sub-action is executed as the env's documented fallback (e.g. hold in portfolio) and
costs ``penalty`` per inadmissible sub-action, in the units of the reward the agent trains on (the
training env's, before ``reward_scale``). Continuous envs: the Gaussian's action goes to the env as
it is; an inadmissible one is not executed (the env's fallback) and costs ``penalty`` times its
Euclidean distance to the admissible set. Huang & Ontañón (2020) compare this "invalid action
penalty" with masking; a small sweep of ``--algo-config penalty=...`` shows how its size trades
invalid actions against return.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from baselines.base import Policy
from baselines.ppo import PPOSettings, RLlibPPO, backend_setting
from envs.config import setting

__all__ = ["PenaltyPPOConfig", "PenaltyPPO"]


@dataclass(frozen=True)
class PenaltyPPOConfig(PPOSettings):
    """Penalty PPO's training config: the PPO settings plus the penalty."""

    penalty: float = setting(0.1, "reward subtracted per inadmissible sub-action (continuous: per unit of distance "
                             "to the admissible set), in training-reward units",
                             check=lambda v: v >= 0, accepts="a non-negative number")
    backend: str = backend_setting()


class PenaltyPPO(RLlibPPO):
    Config = PenaltyPPOConfig
    masked = False
    #: portfolio: 0.01 of the start cash ($10) per inadmissible sub-action, in value_change units;
    #: speed_limit: 1, the time cost of one step; sum_to_zero: 1 per unit of distance to the admissible
    #: set (a step's reward is at most 1).
    env_defaults = {"portfolio": {**RLlibPPO.env_defaults["portfolio"], "penalty": 0.01},
                    "speed_limit": {**RLlibPPO.env_defaults["speed_limit"], "penalty": 1.0},
                    "sum_to_zero": {**RLlibPPO.env_defaults["sum_to_zero"], "penalty": 1.0}}

    def env_context(self) -> dict[str, Any]:
        return {**super().env_context(), "penalty": self.config.penalty}

    def module_eval_policies(self, module) -> dict[tuple[str, str], Policy]:
        dist_inputs = self.features_dist_inputs(module)
        return {(policy, "off"): self.module_policy(dist_inputs, stochastic=policy == "stochastic")
                for policy in ("greedy", "stochastic")}
