"""Constrained portfolio trading, the problem of the action-masking post (``portfolio``).

## Description

A trader holds three assets and cash. It starts with $1,000 in cash and no holdings, and trades
once per investment period for 20 periods. Asset prices follow the post's mean curves with
Gaussian noise; each unit bought or sold pays a per-unit transaction cost. The goal is the largest
total portfolio value (cash + holdings at market prices) at the end.

Mean price of each asset at period t (the post's curves; at reset, t = 0, the post samples around
its "mean initial price" ``[40, 35, 48]``, which differs from the curve of asset 1 at 0):

- asset 1: ``40 + 0.4 t + 4 cos(2 pi t / 16)``
- asset 2: ``35 + 0.1 t``
- asset 3: ``48 + 0.3 t - 6 sin(2 pi t / 7)``

Each period's price is ``max(mean + std * N(0, 1), min_price)`` with std ``[4, 2, 7]``, drawn
independently per period and asset.

## Action Space

``MultiDiscrete([11, 11, 11])``, one sub-action per asset: 0..4 sell 50, 40, 30, 20, 10 units; 5
holds; 6..10 buy 10, 20, 30, 40, 50 units. Assets are processed in order 1, 2, 3 against the cash
left by the previous one. A buy that costs more than the cash is partially filled with the largest
multiple of 10 units the cash pays for (possibly none); a sale whose transaction cost exceeds the
cash is reduced the same way (the post's rules).

## Constraints (the action mask)

- ``C1``: no selling more units of an asset than held.
- ``C2``: no buying asset 3 while its holdings are worth more than 1/3 of the total portfolio value.
- ``C3``: no buying asset 2 while its holdings are worth more than 2/3 of the total portfolio value.
- ``C4``: no buying any asset while cash is below $1.

Holding (5) is always admissible, so no mask block is ever empty. The flat mask has 33 entries,
11 per asset. An inadmissible sub-action is reported in ``info["invalid_actions"]`` /
``info["violated"]`` and executed as the setting ``invalid_action`` says, asset by asset (the other
assets trade normally; with ``strict=True`` it raises ``ValueError`` naming the constraint instead):

- ``noop`` (the default, the env's published behaviour): not executed, the asset is **held**.
- ``repair``: the admissible trade nearest the attempted one. Per asset the admissible trades are one
  run of sizes around hold (sales up to what is held, C1; buys all or none, C2-C5, or up to what the
  cash pays for, C6), so that is the **largest admissible trade in the same direction** (sell all the
  lots held for a sale too large; the largest affordable buy), or hold when there is none.

## Observation Space

``Dict(observation=Box(0, float32 max, (8,), float32), action_mask=Box(0, 1, (33,), int8))``. The
observation is the post's 7-entry trading state in raw units, then one extra feature:

| index | entry | unit |
| --- | --- | --- |
| 0-2 | units held of assets 1, 2, 3 | units |
| 3 | cash | dollars |
| 4-6 | current prices of assets 1, 2, 3 | dollars per unit |
| 7 | fraction of the episode left, ``(periods - t) / periods`` | 1 |

## Rewards

``reward="final_value"`` (default): 0 at every step but the last, which pays the final total
portfolio value in dollars (the post's reward). For learners, ``"final_return"`` pays the final
value divided by the starting cash (3.0 for $3,000 from $1,000), and ``"value_change"`` pays at
every step the change in portfolio value divided by the starting cash (dense; sums to
``final_return - 1``). Whatever the reward, ``info["portfolio_value"]`` is the portfolio value in
dollars after the step.

## Starting State

``start_cash`` dollars, no holdings, prices drawn around the initial means.

## Reference policy (the suite's ``relaxed_heuristic``)

The env has no known exact optimum, so its anchor (the score's 100) is a **strong heuristic that knows the
price model** (:meth:`PortfolioCore.oracle_actions`; it does not see future noise). It solves the
*relaxed* problem exactly, in value per dollar: without lot sizes, the 50-unit cap, C2/C3 or
transaction costs, wealth is linear, so the best policy puts everything in the one position (cash
or an asset) with the largest expected continuation value. With prices independent across periods,
``v_t(p) = max(A[t+1], max_i B[t+1, i] / p_i)``, where ``A[t] = E[v_t(p_t)]`` and
``B[t, i] = E[p_t,i v_t(p_t)]`` are computed backwards from ``v_T = 1`` by Monte Carlo once per
configuration (:func:`continuation_values`, fixed seed). The real policy then follows the ranking
under the real rules: it sells a holding (as much as one action allows) when another position is
worth more by more than the round-trip transaction cost, and buys 50 units of the best buyable
asset worth more than cash (and of better-than-cash assets traded after it, which only use the cash
it leaves). With the default configuration it averages about $4,470 over 1,000 episodes (against about
$3,430 for a one-step lookahead on the mean curves; on the suite's 50 evaluation episodes $4,212 and $3,119);
the relaxed problem's expected final value, an upper bound on any policy, is about $9,300
(:func:`relaxed_value_bound`, :meth:`PortfolioCore.return_bound`, reported as "share of the bound"): the
50-unit cap and C2 are what separate the two.

## Episode End

Terminated after ``periods`` trades (20 by default). There is no truncation.

## Arguments

See :class:`PortfolioConfig`. Every env also accepts ``strict`` and ``invalid_action`` (``noop`` or ``repair``;
here ``noop`` by default, see "Constraints"; ``envs.registry.CommonConfig``).

## Several traders

``n_agents = k > 1`` puts ``k`` traders in one market: each has its own cash, holdings, C1..C4
mask and reward (its own final value), and all see the same prices. With ``price_impact = λ >
0`` (dollars per unit) the market moves with the traders' **net order flow**: after each period
every asset's price path shifts by ``λ`` times the units bought minus the units sold by all
traders that period, permanently (a linear permanent impact, as in Kyle's model), on top of the
noise: ``p_t = max(mean_t + std * z_t + λ * (net units traded before t), min_price)``. Traders
then constrain each other: buying pushes up the prices at which the others value their holdings,
so one trader's trades change the others' C2/C3 shares and what they may buy next. ``λ = 0`` (the
default, the post's market) recovers independent traders; ``0.01`` to ``0.05`` is a strong impact
for three traders who trade up to 150 units of an asset per period between them. One trader's own
flow moves prices too when ``λ > 0``.

## Levels

The seed's problem is ``portfolio`` (level 1). Bigger ones, each a registered name:

| name | assets | trade sizes per asset | flat mask | C6 | inadmissible share |
| --- | --- | --- | --- | --- | --- |
| ``portfolio`` | 3 | 11 | 33 | no | 44% |
| ``portfolio-m`` | 10 | 21 | 210 | yes | 90% |
| ``portfolio-l`` | 30 | 51 | 1,530 | yes | 96% |
| ``portfolio-xl`` | 30 | 101 | 3,030 | yes | 98% |

``n_assets`` adds assets after the post's three, each with a mean curve, noise, costs and a
concentration cap drawn from its index (:func:`asset_parameters`; the cap is constraint ``C5``, "no
buying it while it is worth more than its cap of the portfolio", generalising C2 and C3);
``lot_levels`` sets the trade sizes (sell or buy 10 to 10 x ``lot_levels`` units); ``affordable_buys``
adds ``C6``, "no buying more units than the cash pays for" (the post fills such a buy partially
instead). The inadmissible share is the mean fraction of the flat mask that is masked where
``random_valid`` plays (``python -m suite.levels``). The reference policy and
:func:`relaxed_value_bound` cover every level.

## Version History

- v0: the post's environment with its bugs fixed:
  - the buy branch deducted the *sell* transaction cost; it now deducts the buy cost;
  - ``update_mask`` applied C4 and then overwrote the buy masks of assets 2 and 3 back to 1 with
    the C2/C3 lines, so a trader with no cash could still "buy" them; the mask is now the
    conjunction of all constraints;
  - the code comments labelled C2 and C3 the wrong way round (asset 3's 1/3 rule is C2, asset
    2's 2/3 rule is C3, as in the post's text);
  - ``var`` was used as a standard deviation: it is now named ``price_noise_std``, and prices are
    floored at ``min_price`` so they can never be zero or negative;
  - the reward was paid after 19 trades of a 20-entry time vector; an episode now has exactly
    ``periods`` trades and pays the value after the last one.
  The episode's price noise is drawn at reset from the env's generator (one generator per batch
  entry), so a batch entry and a single env with the same seed see the same prices.
  ``n_assets``, ``lot_levels`` and ``affordable_buys`` (the levels) were added later without changing
  the default env; so was ``invalid_action`` (issue 35): its default, ``noop``, is v0's hold; ``repair`` is new.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property, lru_cache, partial

import numpy as np
from gymnasium import spaces

from .config import ConfigError, setting
from .core import EnvCore, StepResult
from .masking import MASK_DTYPE, Constraint, FlatMaskMultiDiscrete
from .registry import register, register_level

__all__ = ["PortfolioConfig", "PortfolioCore", "PortfolioState", "continuation_values", "relaxed_value_bound",
           "asset_parameters", "mean_prices"]

#: The post's assets; later ones (``n_assets > 3``) are generated from their index (:func:`asset_parameters`).
POST_ASSETS = 3
N_ASSETS = POST_ASSETS
#: Trade sizes per side at the post's granularity (sell 50..10, hold, buy 10..50): ``lot_levels``'s default.
LOT_LEVELS = 5
#: The hold action at the default granularity (action ``lot_levels`` in general).
HOLD = LOT_LEVELS
#: Units in one lot: action ``hold + k`` buys ``k`` lots, ``hold - k`` sells them.
LOT = 10
#: Units traded by each action value at the default granularity: sell 50..10, hold, buy 10..50.
TRADE_UNITS = LOT * np.arange(-LOT_LEVELS, LOT_LEVELS + 1, dtype=np.float64)
#: The post's mean price at reset and the parameters of its mean curves.
INITIAL_MEAN_PRICE = np.array([40.0, 35.0, 48.0])
#: C2 and C3: the largest share of the portfolio value an asset may have and still be bought.
C2_ASSET, C2_SHARE = 2, 1.0 / 3.0
C3_ASSET, C3_SHARE = 1, 2.0 / 3.0
#: C4: the least cash that allows buying.
C4_MIN_CASH = 1.0
REWARDS = ("final_value", "final_return", "value_change")
#: The post's headline result, more than $3,000 from $1,000: the report's and the race's target.
TARGET_MULTIPLE = 3.0
#: Monte Carlo draws per period for the reference policy's continuation values (0.3 s once per config).
PLAN_SAMPLES = 1 << 17
PLAN_SEED = 20_251_123
#: Seed of the generated assets' parameters (asset i draws from ``default_rng([ASSET_SEED, i])``).
ASSET_SEED = 20_261_130
#: The post's per-unit costs and noise, the defaults of the per-asset settings.
POST_BUY_COST, POST_SELL_COST, POST_NOISE = (0.03, 0.045, 0.035), (0.025, 0.035, 0.03), (4.0, 2.0, 7.0)


def _positive(x) -> bool:
    return x > 0


def _non_negative_numbers(xs) -> bool:
    return len(xs) > 0 and all(x >= 0 for x in xs)


def asset_parameters(n_assets: int) -> dict[str, np.ndarray]:
    """Every asset's mean curve, noise, costs and concentration cap: arrays of ``n_assets``.

    Assets 1 to 3 are the post's (mean curves in the module docstring; asset 3's cap of 1/3 is C2,
    asset 2's of 2/3 is C3, asset 1 has none). Asset ``i >= 4`` draws its own from
    ``np.random.default_rng([ASSET_SEED, i])``, the same on every machine: a mean curve
    ``p0 + trend t + amplitude sin(2 pi t / period + phase)`` with ``p0`` uniform in [20, 60], ``trend`` in
    [-0.1, 0.5], ``amplitude`` in [0, 6], ``period`` in [5, 20] periods and ``phase`` in [0, 2 pi); a noise
    standard deviation uniform in [1, 7] dollars; buy and sell costs uniform in [0.02, 0.05] and [0.02,
    0.04] dollars per unit; a concentration cap (C5) of 1/4, 1/3 or 1/2, equally likely.
    """
    keys = ("p0", "trend", "amplitude", "period", "phase", "noise", "buy_cost", "sell_cost", "cap")
    out = {key: np.zeros(n_assets) for key in keys}
    post = {"p0": INITIAL_MEAN_PRICE, "noise": POST_NOISE, "buy_cost": POST_BUY_COST, "sell_cost": POST_SELL_COST,
            "cap": (1.0, C3_SHARE, C2_SHARE)}
    for key, values in post.items():
        out[key][:POST_ASSETS] = np.asarray(values)[:n_assets]
    for i in range(POST_ASSETS, n_assets):
        rng = np.random.default_rng([ASSET_SEED, i])
        out["p0"][i], out["trend"][i] = rng.uniform(20, 60), rng.uniform(-0.1, 0.5)
        out["amplitude"][i], out["period"][i], out["phase"][i] = rng.uniform(0, 6), rng.uniform(5, 20), \
            rng.uniform(0, 2 * np.pi)
        out["noise"][i], out["buy_cost"][i], out["sell_cost"][i] = rng.uniform(1, 7), rng.uniform(0.02, 0.05), \
            rng.uniform(0.02, 0.04)
        out["cap"][i] = rng.choice([0.25, 1 / 3, 0.5])
    return out


def _per_asset(values: tuple[float, ...], generated: np.ndarray, n_assets: int) -> np.ndarray:
    """A per-asset setting: ``n_assets`` values, from the given ones and, past them, the generated ones."""
    given = np.asarray(values, dtype=np.float64)[:n_assets]
    return np.concatenate([given, generated[len(given):n_assets]])


@dataclass(frozen=True)
class PortfolioConfig:
    """Configuration of the portfolio env; every field can be set with ``--env-config KEY=VALUE``."""

    start_cash: float = setting(1000.0, "cash at the start of an episode, dollars",
                                check=_positive, accepts="a positive number")
    periods: int = setting(20, "investment periods (trades) per episode",
                           check=_positive, accepts="a positive integer")
    buy_cost: tuple[float, ...] = setting(POST_BUY_COST, "transaction cost per unit bought, per asset, dollars (the "
                                          "first assets' when fewer than n_assets: the rest are generated)",
                                          check=_non_negative_numbers, accepts="non-negative numbers, one per asset")
    sell_cost: tuple[float, ...] = setting(POST_SELL_COST, "transaction cost per unit sold, per asset, dollars (as "
                                           "buy_cost)", check=_non_negative_numbers,
                                           accepts="non-negative numbers, one per asset")
    price_noise_std: tuple[float, ...] = setting(POST_NOISE,
                                                 "standard deviation of each price around its mean, dollars (as "
                                                 "buy_cost)", check=_non_negative_numbers,
                                                 accepts="non-negative numbers, one per asset")
    min_price: float = setting(0.01, "floor of every price, dollars", check=_positive, accepts="a positive number")
    reward: str = setting("final_value", "reward: final_value (dollars), final_return (final value / start cash) "
                          "or value_change (dense, per-step change / start cash)", choices=REWARDS)
    n_agents: int = setting(1, "traders in one market (own cash, holdings and masks; shared prices)", check=_positive,
                            accepts="a positive integer")
    price_impact: float = setting(0.0, "dollars each price moves per unit of all traders' net order flow (units "
                                  "bought minus sold), permanently; 0: traders do not move prices",
                                  check=lambda v: v >= 0, accepts="a non-negative number")
    n_assets: int = setting(POST_ASSETS, "assets traded: the post's three, then generated ones (see Levels)",
                            check=lambda v: 1 <= v <= 1000, accepts="an integer in 1..1000")
    lot_levels: int = setting(LOT_LEVELS, "trade sizes per side: sell or buy 10, 20, ..., 10 x lot_levels units",
                              check=lambda v: 1 <= v <= 500, accepts="an integer in 1..500")
    affordable_buys: bool = setting(False, "C6: no buying more units of an asset than the cash pays for (price and "
                                    "buy cost; the post fills such a buy partially instead)")


@dataclass
class PortfolioState:
    """Batched state. ``B`` = batch entries, ``A`` = agents, ``K`` = assets."""

    holdings: np.ndarray  # (B, A, K) units held, float64 (multiples of 10)
    cash: np.ndarray      # (B, A) dollars
    prices: np.ndarray    # (B, K) current prices, shared by all agents of an entry
    t: np.ndarray         # (B,) trades made so far this episode
    impact: np.ndarray | None = None  # (B, K) dollars the traders' past net flow has moved prices (0: none)

    def __post_init__(self):
        if self.impact is None:
            self.impact = np.zeros_like(self.prices)

    def copy(self) -> PortfolioState:
        return PortfolioState(self.holdings.copy(), self.cash.copy(), self.prices.copy(), self.t.copy(),
                              self.impact.copy())


def mean_prices(periods: int, n_assets: int = POST_ASSETS) -> np.ndarray:
    """Mean price of each asset at t = 0..periods: ``(periods + 1, n_assets)``; row 0 is the reset mean."""
    t = np.arange(periods + 1, dtype=np.float64)
    post = np.stack([40.0 + 0.4 * t + 4.0 * np.cos(2 * np.pi * t / 16),
                     35.0 + 0.1 * t,
                     48.0 + 0.3 * t - 6.0 * np.sin(2 * np.pi * t / 7)], axis=-1)
    post[0] = INITIAL_MEAN_PRICE
    if n_assets <= POST_ASSETS:
        return post[:, :n_assets].copy()
    extra = asset_parameters(n_assets)
    k = slice(POST_ASSETS, n_assets)
    generated = extra["p0"][k] + extra["trend"][k] * t[:, None] + extra["amplitude"][k] * np.sin(
        2 * np.pi * t[:, None] / extra["period"][k] + extra["phase"][k])
    return np.concatenate([post, generated], axis=1)


def _draw_prices(rng: np.random.Generator, mean: np.ndarray, std: np.ndarray, min_price: float) -> np.ndarray:
    return np.maximum(mean + std * rng.standard_normal((PLAN_SAMPLES, len(mean))), min_price)


@lru_cache(maxsize=16)
def _plan(periods: int, price_noise_std: tuple[float, ...], min_price: float,
          n_assets: int = POST_ASSETS) -> tuple[np.ndarray, np.ndarray, float]:
    mean = mean_prices(periods, n_assets)
    std = _per_asset(price_noise_std, asset_parameters(n_assets)["noise"], n_assets)
    rng = np.random.default_rng(PLAN_SEED)
    cash_value, asset_value = np.ones(periods + 1), np.zeros((periods + 1, n_assets))
    for t in range(periods, -1, -1):
        prices = _draw_prices(rng, mean[t], std, min_price)
        if t == periods:
            per_dollar = np.ones(PLAN_SAMPLES)  # the episode ends: wealth is what it is worth at p_T
        else:
            per_dollar = np.maximum(cash_value[t + 1], (asset_value[t + 1] / prices).max(axis=1))
        if t == 0:
            bound = float(per_dollar.mean())
        else:
            cash_value[t], asset_value[t] = per_dollar.mean(), (prices * per_dollar[:, None]).mean(axis=0)
    for array in (cash_value, asset_value):
        array.flags.writeable = False
    return cash_value, asset_value, bound


def continuation_values(config: PortfolioConfig) -> tuple[np.ndarray, np.ndarray]:
    """The relaxed problem's expected continuation values, per dollar (see "Reference policy").

    Returns ``(A, B)``: ``A[t]`` (``(periods + 1,)``) is the expected final wealth of one dollar held
    in cash from period ``t`` on, acting optimally from there; ``B[t, i] / p`` (``(periods + 1, n_assets)``)
    is that of one dollar put in asset ``i`` at price ``p`` in period ``t - 1``. Entry 0 is unused.
    Deterministic (a fixed seed) and cached per configuration.
    """
    cash_value, asset_value, _ = _plan(config.periods, tuple(config.price_noise_std), config.min_price,
                                       config.n_assets)
    return cash_value, asset_value


def relaxed_value_bound(config: PortfolioConfig) -> float:
    """Expected final value of the relaxed problem: an upper bound on any policy's mean, dollars.

    Dropping lot sizes, the trade cap, C2/C3/C5 and transaction costs only enlarges what a trader
    can do, so no policy of the real env can average more (up to Monte Carlo error, about 0.1%).
    """
    return config.start_cash * _plan(config.periods, tuple(config.price_noise_std), config.min_price,
                                     config.n_assets)[2]


def portfolio_value(state: PortfolioState) -> np.ndarray:
    """Cash plus holdings at current prices: ``(B, A)`` dollars."""
    return state.cash + np.einsum("bak,bk->ba", state.holdings, state.prices)


class PortfolioCore(EnvCore):
    """Batched dynamics, reward and mask of the portfolio env (see the module docstring)."""

    Config = PortfolioConfig
    agent_prefix = "trader"
    version = 0
    episode_metrics = ("portfolio_value",)
    invalid_action_default = "noop"

    def __init__(self, config: PortfolioConfig, num_envs: int = 1, strict: bool = False):
        n = config.n_assets
        for key in ("buy_cost", "sell_cost", "price_noise_std"):
            given = len(getattr(config, key))
            if given not in (n, POST_ASSETS):
                raise ConfigError(f"config key {key!r} has {given} value(s) for n_assets={n}; give "
                                  f"{n}, or the post's {POST_ASSETS} (the first {n} of them are taken, or the rest "
                                  "generated)")
        super().__init__(config, num_envs, strict)
        self.n_assets, self.hold = n, config.lot_levels
        #: Units traded by each action value: sell 10 x lot_levels .. 10, hold, buy 10 .. 10 x lot_levels.
        self.trade_units = LOT * np.arange(-self.hold, self.hold + 1, dtype=np.float64)
        self.action_space = FlatMaskMultiDiscrete([len(self.trade_units)] * n)
        high = np.full(2 * n + 2, np.finfo(np.float32).max, dtype=np.float32)  # unbounded in practice
        high[-1] = 1.0
        self.feature_space = spaces.Box(np.zeros_like(high), high, dtype=np.float32)
        generated = asset_parameters(n)
        self._mean = mean_prices(config.periods, n)                      # (T + 1, n)
        self._std = _per_asset(config.price_noise_std, generated["noise"], n)
        self._buy_cost = _per_asset(config.buy_cost, generated["buy_cost"], n)
        self._sell_cost = _per_asset(config.sell_cost, generated["sell_cost"], n)
        #: Concentration caps of the assets after the post's (C5); the post's own are C2 and C3.
        self._caps = generated["cap"][POST_ASSETS:]
        self._noise = np.zeros((num_envs, config.periods + 1, n))  # each episode's standard normals
        self._last_value = np.zeros((num_envs, self.n_agents))

    @cached_property
    def constraints(self) -> Sequence[Constraint]:
        # Built once: they depend only on the frozen config and the sizes set in __init__. Every predicate is a
        # method or a partial of one (no closure), so a core holding them still pickles (training checkpoints).
        rules = [Constraint("C1", "no selling more units than held", self._admits_c1)]
        if self.n_assets > C2_ASSET:
            rules.append(Constraint("C2", "no buying asset 3 while it is worth more than 1/3 of the portfolio",
                                    partial(self._admits_share, C2_ASSET, C2_SHARE)))
        if self.n_assets > C3_ASSET:
            rules.append(Constraint("C3", "no buying asset 2 while it is worth more than 2/3 of the portfolio",
                                    partial(self._admits_share, C3_ASSET, C3_SHARE)))
        rules.append(Constraint("C4", "no buying with less than $1 cash", self._admits_c4))
        if self.n_assets > POST_ASSETS:
            rules.append(Constraint("C5", "no buying an asset after the third while it is worth more than its "
                                          "concentration cap of the portfolio (1/4, 1/3 or 1/2)", self._admits_c5))
        if self.config.affordable_buys:
            rules.append(Constraint("C6", "no buying more units of an asset than the cash pays for",
                                    self._admits_c6))
        return tuple(rules)

    # --- Constraint predicates: straight transcriptions of C1..C5, independent of the mask code. ---
    # Each takes the state and actions (B, A, n_assets) and says which sub-actions it admits.

    def _admits_c1(self, state: PortfolioState, actions: np.ndarray) -> np.ndarray:
        units_sold = np.where(actions < self.hold, LOT * (self.hold - actions), 0)
        return units_sold <= state.holdings

    def _admits_share(self, asset: int, share: float, state: PortfolioState, actions: np.ndarray) -> np.ndarray:
        """C2 / C3: no buying ``asset`` while it is worth more than ``share`` of the portfolio."""
        total = portfolio_value(state)
        holding_value = state.holdings[..., asset] * state.prices[:, None, asset]
        over = holding_value > total * share
        ok = np.ones(actions.shape, dtype=bool)
        ok[..., asset] = ~((actions[..., asset] > self.hold) & over)
        return ok

    def _admits_c4(self, state: PortfolioState, actions: np.ndarray) -> np.ndarray:
        return ~((actions > self.hold) & (state.cash[..., None] < C4_MIN_CASH))

    def _admits_c5(self, state: PortfolioState, actions: np.ndarray) -> np.ndarray:
        total = portfolio_value(state)[..., None]
        over = state.holdings[..., POST_ASSETS:] * state.prices[:, None, POST_ASSETS:] > total * self._caps
        ok = np.ones(actions.shape, dtype=bool)
        ok[..., POST_ASSETS:] = ~((actions[..., POST_ASSETS:] > self.hold) & over)
        return ok

    def _admits_c6(self, state: PortfolioState, actions: np.ndarray) -> np.ndarray:
        units = np.where(actions > self.hold, LOT * (actions - self.hold), 0)
        return units * (state.prices[:, None, :] + self._buy_cost) <= state.cash[..., None]

    # ------------------------------------------------------------------ episode

    def reset_envs(self, env_ids: np.ndarray, rngs: Sequence[np.random.Generator]) -> None:
        n = self.n_assets
        if self.state is None:
            B, A = self.num_envs, self.n_agents
            self.state = PortfolioState(np.zeros((B, A, n)), np.zeros((B, A)), np.zeros((B, n)),
                                        np.zeros(B, dtype=np.int64))
        for env_id, rng in zip(env_ids, rngs):  # once per episode, not per step
            self._noise[env_id] = rng.standard_normal((self.config.periods + 1, n))
        s = self.state
        s.holdings[env_ids] = 0.0
        s.cash[env_ids] = self.config.start_cash
        s.t[env_ids] = 0
        s.impact[env_ids] = 0.0
        s.prices[env_ids] = self._price_at(env_ids, s.t[env_ids])
        self._last_value[env_ids] = self.config.start_cash

    def _price_at(self, env_ids: np.ndarray, t: np.ndarray) -> np.ndarray:
        """Prices of entries ``env_ids`` at periods ``t`` (their episode's noise and impact, floored)."""
        t = np.minimum(t, self.config.periods)  # an ended entry stepped before its reset stays in range
        return np.maximum(self._mean[t] + self._std * self._noise[env_ids, t] + self.state.impact[env_ids],
                          self.config.min_price)

    # ------------------------------------------------------------------ views of the state

    def features(self) -> np.ndarray:
        s = self.state
        left = (self.config.periods - s.t) / self.config.periods
        prices = np.broadcast_to(s.prices[:, None, :], s.holdings.shape)
        left = np.broadcast_to(left[:, None, None], (*s.cash.shape, 1))
        return np.concatenate([s.holdings, s.cash[..., None], prices, left], axis=-1).astype(np.float32)

    def action_mask(self) -> np.ndarray:
        s, hold, n = self.state, self.hold, self.n_assets
        B, A = s.cash.shape
        mask = np.ones((B, A, n, len(self.trade_units)), dtype=MASK_DTYPE)
        # C1: sell action a sells -trade_units[a] units; admissible while that many are held.
        mask[..., :hold] = s.holdings[..., None] >= -self.trade_units[:hold]
        # C2, C3, C5: share of the portfolio value per asset; C4: cash. All buys of an asset share one verdict.
        total = portfolio_value(s)
        holding_value = s.holdings * s.prices[:, None, :]
        can_buy = np.broadcast_to((s.cash >= C4_MIN_CASH)[..., None], holding_value.shape).copy()
        for asset, share in ((C2_ASSET, C2_SHARE), (C3_ASSET, C3_SHARE)):
            if asset < n:
                can_buy[..., asset] &= ~(holding_value[..., asset] > total * share)
        if n > POST_ASSETS:
            can_buy[..., POST_ASSETS:] &= ~(holding_value[..., POST_ASSETS:] > total[..., None] * self._caps)
        mask[..., hold + 1:] = can_buy[..., None]
        if self.config.affordable_buys:  # C6: the buy of k lots costs 10 k (price + buy cost)
            unit_cost = s.prices[:, None, :, None] + self._buy_cost[:, None]
            mask[..., hold + 1:] &= self.trade_units[hold + 1:] * unit_cost <= s.cash[..., None, None]
        return mask.reshape(B, A, n * len(self.trade_units))

    def metrics(self) -> dict[str, np.ndarray]:
        return {"portfolio_value": portfolio_value(self.state)}

    def idle_action(self) -> np.ndarray:
        return np.full(self.n_assets, self.hold, dtype=np.int64)

    def render_text(self, entry: int) -> str:
        """The period, each asset's price, and each trader's cash, holdings and value."""
        s = self.state
        value = portfolio_value(s)[entry]
        shown = min(self.n_assets, 10)
        more = f" (+{self.n_assets - shown} more assets)" if self.n_assets > shown else ""
        lines = [f"period {int(s.t[entry])}/{self.config.periods}  prices "
                 + " ".join(f"{p:,.2f}" for p in s.prices[entry, :shown]) + more]
        for agent in range(self.n_agents):
            held = " ".join(f"{h:,.0f}" for h in s.holdings[entry, agent, :shown])
            lines.append(f"{self.agent_prefix}_{agent}: cash ${s.cash[entry, agent]:,.2f}  held {held}{more}  "
                         f"value ${value[agent]:,.2f}")
        return "\n".join(lines)

    # ------------------------------------------------------------------ dynamics

    def noop(self, actions: np.ndarray, inadmissible: np.ndarray) -> np.ndarray:
        """``invalid_action="noop"`` (the default): inadmissible sub-actions are not executed, their asset is held;
        the other sub-actions trade. (``repair`` is the base class's: per asset, the admissible trade nearest the
        attempted one, the largest admissible trade in the same direction, or hold.)"""
        return np.where(inadmissible, self.hold, actions)

    def transition(self, actions: np.ndarray) -> StepResult:
        s, hold = self.state, self.hold
        cash = s.cash.copy()
        held_before = s.holdings.copy()
        for k in range(self.n_assets):  # assets in order, each trading against the cash the previous left
            a = actions[..., k]
            lots = np.abs(a - hold).astype(np.float64)  # lots of 10 units
            price = s.prices[:, None, k]
            # Sale: the per-unit cost is paid from cash, so a sale is cut to what the cash covers.
            sell = a < hold
            sell_lots = np.where(LOT * lots * self._sell_cost[k] > cash,
                                 np.floor(cash / (LOT * self._sell_cost[k])) if self._sell_cost[k] > 0 else lots, lots)
            # Purchase: price plus the *buy* cost per unit, partially filled up to the cash.
            buy = a > hold
            unit_cost = price + self._buy_cost[k]
            buy_lots = np.where(LOT * lots * unit_cost > cash, np.floor(cash / (LOT * unit_cost)), lots)
            traded = np.where(sell, -sell_lots, np.where(buy, buy_lots, 0.0))
            s.holdings[..., k] += LOT * traded
            cash += np.where(sell, LOT * sell_lots * (price - self._sell_cost[k]),
                             np.where(buy, -LOT * buy_lots * unit_cost, 0.0))
        s.cash[...] = np.maximum(cash, 0.0)  # rounding of the partial fill can leave -1e-13
        s.t += 1
        if self.config.price_impact:
            s.impact += self.config.price_impact * (s.holdings - held_before).sum(axis=1)  # net units, all traders
        s.prices[...] = self._price_at(np.arange(self.num_envs), s.t)

        value = portfolio_value(s)
        done = np.broadcast_to((s.t >= self.config.periods)[:, None], value.shape).copy()
        if self.config.reward == "final_value":
            reward = np.where(done, value, 0.0)
        elif self.config.reward == "final_return":
            reward = np.where(done, value / self.config.start_cash, 0.0)
        else:  # value_change
            reward = (value - self._last_value) / self.config.start_cash
        self._last_value = value
        return StepResult(reward=reward, terminated=done, truncated=np.zeros_like(done),
                          info={"portfolio_value": value})

    @classmethod
    def state_bytes(cls, config: PortfolioConfig, num_envs: int) -> int:
        """Each entry's episode noise, ``(periods + 1, n_assets)``, dominates; then holdings, cash, prices, and
        the mask of ``n_assets x (2 lot_levels + 1)`` values per agent."""
        n, actions = config.n_assets, config.n_assets * (2 * config.lot_levels + 1)
        return 8 * (num_envs * ((config.periods + 1) * n + config.n_agents * (n + 2 + actions) + 2 * n + 1)
                    + (config.periods + 1) * n)

    @classmethod
    def target_return(cls, config: PortfolioConfig) -> float:
        """The post's headline, $3,000 from $1,000: three times the starting cash, in the reward's units
        (``final_value``: dollars; ``final_return``: 3.0; ``value_change``, which sums to
        ``final_return - 1``: 2.0)."""
        return {"final_value": TARGET_MULTIPLE * config.start_cash, "final_return": TARGET_MULTIPLE,
                "value_change": TARGET_MULTIPLE - 1.0}[config.reward]

    @classmethod
    def return_bound(cls, config: PortfolioConfig) -> tuple[float, str] | None:
        """The relaxed problem's expected final value (:func:`relaxed_value_bound`), in the reward's units;
        one trader in the post's market only (price impact lets traders move prices in their favour)."""
        if config.n_agents != 1 or config.price_impact != 0:
            return None
        value = relaxed_value_bound(config)
        units = {"final_value": value, "final_return": value / config.start_cash,
                 "value_change": value / config.start_cash - 1.0}[config.reward]
        return units, "the relaxed problem's value (no lots, caps, C2/C3/C5 or costs)"

    # ------------------------------------------------------------------ reference policy

    def oracle_actions(self) -> np.ndarray:
        """The model-aware reference policy's action for every entry: ``(batch, agents, n_assets)``.

        A strong heuristic, not an exact optimum (see "Reference policy" in the module docstring):
        rank cash and the assets by the relaxed problem's continuation value per dollar; sell what
        is beaten by more than its round-trip cost; buy the best buyable asset worth more than cash,
        as much of it as is admissible.
        Every action it returns is admissible.
        """
        s, c = self.state, self.config
        cash_value, asset_value = continuation_values(c)
        nxt = np.minimum(s.t, c.periods - 1) + 1                     # (B,) the period the trade pays in
        worth = (asset_value[nxt] / s.prices)[:, None, :]             # (B, 1, K) per dollar put in now
        in_cash = cash_value[nxt][:, None]                            # (B, 1)
        mask = self.action_mask().reshape(*s.holdings.shape, len(self.trade_units)).astype(bool)
        # The largest admissible buy of each asset: all of them without C6; with C6, the most lots the
        # cash pays for (C6 admits a prefix of the buy sizes, as a larger buy costs more).
        largest_buy = self.hold + mask[..., self.hold + 1:].sum(axis=-1)
        can_buy = largest_buy > self.hold
        buyable = np.where(can_buy, worth, -np.inf)                   # (B, A, K)
        best_buy = buyable.max(axis=-1)
        best_other = np.maximum(best_buy, in_cash)[..., None]
        round_trip = 1 + (self._sell_cost + self._buy_cost.max()) / s.prices[:, None, :]
        sell = (s.holdings > 0) & (worth * round_trip < best_other)
        # Assets trade in order 1, 2, 3, ... against the cash the previous left: buy the best one, and
        # better-than-cash ones after it (they get only its leftovers), never ones before it.
        first = np.where(np.isfinite(best_buy), buyable.argmax(axis=-1), self.n_assets)[..., None]
        buy = can_buy & ~sell & (worth > in_cash[..., None]) & (np.arange(self.n_assets) >= first)
        sell_lots = (np.minimum(s.holdings, self.trade_units[-1]) // LOT).astype(np.int64)
        return np.where(sell, self.hold - sell_lots, np.where(buy, largest_buy, self.hold))

    # ------------------------------------------------------------------ checkers

    def sample_states(self, rng: np.random.Generator, num_states: int) -> PortfolioState:
        """Arbitrary states, weighted towards the constraints' edges.

        Holdings are multiples of 10 with many at 0 .. 10 (lot_levels + 1) (the C1 edges); cash mixes
        values around $1 (C4) with large ones; asset 2 or 3 is often given a value share near 2/3 or 1/3
        (C3, C2).
        """
        A, n = self.n_agents, self.n_assets
        lots = [0, 1, 2, 3, 4, 5, 6, 10, 30, 100] if self.hold == LOT_LEVELS else \
            sorted({0, 1, 2, self.hold - 1, self.hold, self.hold + 1, 2 * self.hold, 10 * self.hold})
        holdings = float(LOT) * rng.choice(lots, size=(num_states, A, n))
        cash = np.where(rng.random((num_states, A)) < 0.3,
                        rng.choice([0.0, 0.5, 0.99, 1.0, 1.01], size=(num_states, A)),
                        rng.uniform(0, 5000, size=(num_states, A)))
        prices = rng.uniform(self.config.min_price, 100.0, size=(num_states, n))
        t = rng.integers(0, self.config.periods, size=num_states)
        state = PortfolioState(holdings, cash, prices, t)
        # Put some states right around the C2/C3 thresholds by choosing the price of that asset.
        near = rng.random(num_states) < (0.4 if n > C2_ASSET else 0.0)
        asset = rng.choice([C3_ASSET, C2_ASSET], size=num_states)
        share = np.where(asset == C2_ASSET, C2_SHARE, C3_SHARE) * rng.choice([0.999, 1.0, 1.001], size=num_states)
        rows = np.flatnonzero(near & (holdings[:, 0, :].min(axis=-1) > 0))
        for i in rows:  # only for checker states: a small loop over sampled rows is fine here
            k = asset[i]
            others = cash[i, 0] + sum(holdings[i, 0, j] * prices[i, j] for j in range(n) if j != k)
            # value_k = share * (others + value_k)  =>  value_k = share * others / (1 - share)
            prices[i, k] = max(share[i] * others / (1 - share[i]) / holdings[i, 0, k], self.config.min_price)
        return state


register("portfolio", PortfolioCore,
         description="constrained portfolio trading: 3 assets + cash, MultiDiscrete([11, 11, 11]), constraints C1-C4")
#: The levels (see "Levels" in the module docstring): more assets, finer trade sizes, buys the cash pays for.
LEVELS = {"portfolio-m": (2, {"n_assets": 10, "lot_levels": 10, "affordable_buys": True}),
          "portfolio-l": (3, {"n_assets": 30, "lot_levels": 25, "affordable_buys": True}),
          "portfolio-xl": (4, {"n_assets": 30, "lot_levels": 50, "affordable_buys": True})}
for _name, (_level, _overrides) in LEVELS.items():
    _actions = _overrides["n_assets"] * (2 * _overrides["lot_levels"] + 1)
    register_level(_name, "portfolio", _level, _overrides,
                   description=f"portfolio, level {_level}: {_overrides['n_assets']} assets x "
                               f"{2 * _overrides['lot_levels'] + 1} trade sizes ({_actions} flat mask entries), "
                               "C1-C6")
