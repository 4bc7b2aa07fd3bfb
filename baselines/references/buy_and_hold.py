"""``buy_and_hold`` (portfolio): put the cash into equal dollar amounts of every asset, never sell.

The passive investor's policy: buy towards equal weights (as :mod:`equal_weight` does) with whatever cash
is left, but never sell, so after the first periods it holds. Uses only what the agent observes.
"""

from __future__ import annotations

import numpy as np

import envs
from baselines.references.player import ReferencePolicy, single_agent_actions
from baselines.references.portfolio_trades import equal_weight_units, trade_towards


class BuyAndHold(ReferencePolicy):
    """Buy towards ``value / n_assets`` dollars of every asset; no sales."""

    families = ("portfolio",)
    several_agents = True

    def act(self, obs: dict[str, np.ndarray], env: envs.views.VectorView) -> np.ndarray:
        return single_agent_actions(trade_towards(env.core, equal_weight_units(env.core), sell=False), env)
