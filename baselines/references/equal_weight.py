"""``equal_weight`` (portfolio): rebalance every period to equal dollar weights across the assets.

The textbook diversified portfolio (1/N): each period, the target of every asset is the total portfolio
value divided by the number of assets, in units at today's price; each asset trades towards it (in lots,
within the trade cap, the admissible trade closest to it). It uses only what the agent observes (holdings,
cash, prices) and pays transaction costs on every rebalance. Several traders each rebalance their own.
"""

from __future__ import annotations

import numpy as np

import envs
from baselines.references.player import ReferencePolicy, single_agent_actions
from baselines.references.portfolio_trades import equal_weight_units, trade_towards


class EqualWeight(ReferencePolicy):
    """Trade towards ``value / n_assets`` dollars of every asset."""

    families = ("portfolio",)
    several_agents = True

    def act(self, obs: dict[str, np.ndarray], env: envs.views.VectorView) -> np.ndarray:
        return single_agent_actions(trade_towards(env.core, equal_weight_units(env.core)), env)
