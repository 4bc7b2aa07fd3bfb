"""Lagrangian PPO's objective (:mod:`baselines.methods.lagrangian_ppo`): the cost, its learned multiplier and
the advantage that weighs the two.

:class:`LagrangianObjective` is the method's :class:`baselines.objective.Objective`: a cost critic of the
inadmissibility cost, the multiplier's update from the episodes' costs and the combined advantages; the
backend that calls it runs plain PPO otherwise.

The multiplier's update is OmniSafe's (``omnisafe.common.lagrange.Lagrange``): ``lambda`` is a parameter
with an Adam optimiser of its own; each update takes one step on ``-lambda * (J_c - cost_limit)`` and
clips ``lambda`` to ``[0, lambda_max]``. ``J_c`` above the budget raises ``lambda``, below lowers it;
Adam makes each step about ``lambda_lr`` whatever the cost's scale.
"""

from __future__ import annotations

import copy
import math
from typing import Any

import numpy as np
import torch

from baselines.training_env import step_cost

__all__ = ["LagrangeMultiplier", "LagrangianObjective", "combined_advantages"]


class LagrangeMultiplier:
    """``lambda`` and its optimiser."""

    def __init__(self, cost_limit: float, lr: float, initial: float = 0.001, upper: float = math.inf):
        self.cost_limit, self.upper = float(cost_limit), float(upper)
        self.parameter = torch.nn.Parameter(torch.tensor(float(initial)))
        self.optimizer = torch.optim.Adam([self.parameter], lr=lr)

    @property
    def value(self) -> float:
        return float(self.parameter.detach())

    def update(self, episode_cost: float) -> float:
        """One step from the mean episode cost ``J_c`` (NaN: no episode ended, no step); the new ``lambda``."""
        if math.isnan(episode_cost):
            return self.value
        self.optimizer.zero_grad()
        loss = -self.parameter * (episode_cost - self.cost_limit)
        loss.backward()
        self.optimizer.step()
        with torch.no_grad():
            self.parameter.clamp_(0.0, self.upper)
        return self.value

    def state_dict(self) -> dict[str, Any]:
        return {"parameter": self.parameter.detach().clone(),
                "optimizer": copy.deepcopy(self.optimizer.state_dict())}  # a snapshot, not the live moments

    def load_state_dict(self, state: dict[str, Any]) -> None:
        with torch.no_grad():
            self.parameter.copy_(state["parameter"])
        self.optimizer.load_state_dict(state["optimizer"])


def _standardised(x: torch.Tensor) -> torch.Tensor:
    return (x - x.mean()) / (x.std() + 1e-8) if len(x) > 1 else x - x.mean()


def combined_advantages(reward_advantages: torch.Tensor, cost_advantages: torch.Tensor,
                        multiplier: float) -> torch.Tensor:
    """``(A_r - lambda A_c) / (1 + lambda)``, each advantage standardised over the batch first (OmniSafe's
    ``PPOLag._compute_adv_surrogate`` with ``standardized_adv_r`` and ``standardized_adv_c``)."""
    return (_standardised(reward_advantages) - multiplier * _standardised(cost_advantages)) / (1.0 + multiplier)


class LagrangianObjective:
    """Lagrangian PPO's :class:`baselines.objective.Objective`: the signal ``cost`` is
    :func:`baselines.training_env.step_cost` (inadmissible sub-actions; Box: distance to the admissible
    set); each iteration the multiplier takes its step from the mean cost of the episodes that ended, and
    the policy learns from :func:`combined_advantages` with the new multiplier."""

    name = "lagrange"
    signals = ("cost",)

    def __init__(self, config):
        """``config``: a :class:`baselines.methods.lagrangian_ppo.LagrangianPPOConfig`."""
        self.multiplier = LagrangeMultiplier(config.cost_limit, config.lambda_lr, config.lambda_init,
                                             config.lambda_max)

    def step_signals(self, info: dict[str, Any]) -> dict[str, np.ndarray]:
        return {"cost": step_cost(info)}

    def policy_advantages(self, advantages: torch.Tensor, signal_advantages: dict[str, torch.Tensor],
                          episode_sums: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, float]]:
        """The multiplier's step from the mean episode cost ``J_c`` (NaN, and no step, if no episode ended),
        then the combined advantages; ``progress.csv`` gets the new multiplier and ``J_c``."""
        episode_cost = episode_sums["cost"]
        mean_cost = float(episode_cost.mean()) if len(episode_cost) else math.nan
        multiplier = self.multiplier.update(mean_cost)
        combined = combined_advantages(advantages, signal_advantages["cost"], multiplier)
        return combined, {"lagrange_multiplier": multiplier, "episode_cost_mean": mean_cost}

    def state_dict(self) -> dict[str, Any]:
        return self.multiplier.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.multiplier.load_state_dict(state)
