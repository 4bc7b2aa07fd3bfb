"""The learned Lagrange multiplier of constrained PPO (:mod:`baselines.methods.lagrangian_ppo`).

OmniSafe's update (``omnisafe.common.lagrange.Lagrange``): ``lambda`` is a parameter with an Adam
optimiser of its own; each update takes one step on ``-lambda * (J_c - cost_limit)`` and clips
``lambda`` to ``[0, lambda_max]``. ``J_c`` above the budget raises ``lambda``, below lowers it; Adam
makes each step about ``lambda_lr`` whatever the cost's scale. Torch only; any backend may hold one.
"""

from __future__ import annotations

import copy
import math
from typing import Any

import torch

__all__ = ["LagrangeMultiplier", "combined_advantages"]


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
