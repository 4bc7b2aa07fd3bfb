"""Portfolio references' one shared step: trade each asset towards a target number of units.

The env trades in lots of 10 units, at most ``lot_levels`` lots a side per period; the action of an
asset is ``hold + lots`` (``hold`` = ``lot_levels``). :func:`trade_towards` rounds each asset's wanted
change to lots, caps it, and then takes the admissible action closest to it on the way back to hold (hold
is always admissible), so a reference never sends an inadmissible trade.
"""

from __future__ import annotations

import numpy as np

from envs.portfolio import LOT, PortfolioCore

__all__ = ["trade_towards", "portfolio_value_of", "equal_weight_units"]


def portfolio_value_of(core: PortfolioCore) -> np.ndarray:
    """Cash plus holdings at today's prices, ``(batch, agents)``."""
    s = core.state
    return s.cash + (s.holdings * s.prices[:, None, :]).sum(axis=-1)


def equal_weight_units(core: PortfolioCore) -> np.ndarray:
    """The units of every asset that put equal dollar amounts of the whole portfolio value in each,
    ``(batch, agents, assets)``."""
    return portfolio_value_of(core)[..., None] / core.n_assets / core.state.prices[:, None, :]


def trade_towards(core: PortfolioCore, target_units: np.ndarray, sell: bool = True) -> np.ndarray:
    """Actions ``(batch, agents, assets)`` moving the holdings towards ``target_units`` (same shape).

    ``sell=False`` never sells (a wanted sale becomes hold).
    """
    s, hold = core.state, core.hold
    lots = np.rint((target_units - s.holdings) / LOT).astype(np.int64)
    lots = np.clip(lots, -hold if sell else 0, hold)
    wanted = hold + lots                                                          # (B, A, K)
    mask = core.action_mask().reshape(*s.holdings.shape, 2 * hold + 1).astype(bool)
    index = np.arange(2 * hold + 1)
    between = (index >= np.minimum(wanted, hold)[..., None]) & (index <= np.maximum(wanted, hold)[..., None])
    allowed = mask & between
    allowed[..., hold] = True                                                    # hold is always admissible
    distance = np.where(allowed, np.abs(index - wanted[..., None]), np.iinfo(np.int64).max)
    return distance.argmin(axis=-1)
