"""``buy_and_hold`` (portfolio): put the cash into equal dollar amounts of every asset, never sell.

The passive investor's policy: buy towards equal weights (as :mod:`equal_weight` does) with whatever cash
is left, but never sell, so after the first periods it holds. Uses only what the agent observes.
"""

from __future__ import annotations

import numpy as np

import envs
from baselines.references.player import ReferencePolicy, single_agent_actions
from baselines.references.portfolio_trades import portfolio_value_of, trade_towards


class BuyAndHold(ReferencePolicy):
    """Buy towards ``value / n_assets`` dollars of every asset; no sales."""

    families = ("portfolio",)
    several_agents = True

    def act(self, obs: dict[str, np.ndarray], env: envs.views.VectorView) -> np.ndarray:
        core = env.core
        target = portfolio_value_of(core)[..., None] / core.n_assets / core.state.prices[:, None, :]
        return single_agent_actions(trade_towards(core, target, sell=False), env)
