"""``one_step_lookahead`` (portfolio): hold what the mean curves say rises next period, sell the rest.

The greedy model-aware trader: for each asset it compares today's price with the published mean curve of
the next period (``envs.portfolio.mean_prices``, part of the env's spec); it buys the largest admissible
lot of every asset expected to rise and sells (as much as one trade allows) every holding expected to fall.
One period ahead only: it ignores transaction costs, later periods and the concentration rules' effect on
later buys. Uses only what the agent observes (time, prices, holdings) and the model.
"""

from __future__ import annotations

import numpy as np

import envs
from baselines.references.player import ReferencePolicy, single_agent_actions
from envs.portfolio import mean_prices


class OneStepLookahead(ReferencePolicy):
    """Buy the risers (largest admissible lot), sell the fallers."""

    families = ("portfolio",)
    several_agents = True

    def act(self, obs: dict[str, np.ndarray], env: envs.views.VectorView) -> np.ndarray:
        core = env.core
        s, c, hold = core.state, core.config, core.hold
        means = mean_prices(c.periods, core.n_assets)
        rising = (means[np.minimum(s.t, c.periods - 1) + 1] > s.prices)[:, None, :]   # (B, 1, K)
        mask = core.action_mask().reshape(*s.holdings.shape, 2 * hold + 1).astype(bool)
        largest_buy = hold + mask[..., hold + 1:].sum(axis=-1)                         # buy sizes: a prefix
        sell_lots = np.minimum(s.holdings // 10, hold).astype(np.int64)
        actions = np.where(rising, largest_buy, np.where(s.holdings > 0, hold - sell_lots, hold))
        return single_agent_actions(actions, env)
