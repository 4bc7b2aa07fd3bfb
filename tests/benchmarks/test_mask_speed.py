"""Speed of the action masks (``group="mask"``), each against a per-state loop in the same run.

Run with ``pytest --benchmark`` (skipped otherwise); ``extra_info["states_per_second"]`` is the
rate. The baselines are the masks written the way the post writes ``update_mask``: one state at
a time, Python lists and loops, with its bugs fixed (so both sides compute the same masks, which
each benchmark asserts). Batches of 1, 64 and 4096 states show where batching starts to pay.

At the largest levels (``portfolio-xl``: 30 assets x 101 trade sizes; ``speed_limit-l``: 50 levels on
a 1,000-cell road) the per-state loops are the same rules written generally (any number of assets,
lot sizes, per-asset caps, affordability; any number of levels), over 4096 states.
"""

import numpy as np
import pytest

import envs
from envs.portfolio import C2_ASSET, C2_SHARE, C3_ASSET, C3_SHARE, C4_MIN_CASH, POST_ASSETS, portfolio_value
from envs.speed_limit import N_LEVELS


def post_style_mask(holdings, cash, prices):
    """Per-state transcription of the post's update_mask (lists, Python loops), with its C4 bug fixed."""
    masks = []
    for h, c, p in zip(holdings, cash, prices):
        total = c + float(np.dot(h, p))
        mask = [[1.0] * 11 for _ in range(3)]
        for asset, share in ((C2_ASSET, C2_SHARE), (C3_ASSET, C3_SHARE)):
            if total > 0 and p[asset] * h[asset] / total > share:
                mask[asset][6:] = [0.0] * 5
        if c < C4_MIN_CASH:
            for jj in range(3):
                mask[jj][6:] = [0.0] * 5
        for k in range(3):
            cap = int(min(5, h[k] / 10))
            mask[k][:5] = [0.0] * (5 - cap) + [1.0] * cap
        masks.append(mask)
    return masks


def per_state_portfolio_mask(holdings, cash, prices, core):
    """The portfolio mask of any level, one state, one asset and one trade size at a time (Python loops)."""
    units, hold, caps = core.trade_units.tolist(), core.hold, [C2_SHARE, C3_SHARE, *core._caps.tolist()]
    caps = dict(zip([C2_ASSET, C3_ASSET, *range(POST_ASSETS, core.n_assets)], caps))
    buy_cost, affordable = core._buy_cost.tolist(), core.config.affordable_buys
    masks = []
    for h, c, p in zip(holdings.tolist(), cash.tolist(), prices.tolist()):
        total = c + sum(units_held * price for units_held, price in zip(h, p))
        mask = []
        for k in range(core.n_assets):
            can_buy = c >= C4_MIN_CASH and not (k in caps and h[k] * p[k] > total * caps[k])
            for a, trade in enumerate(units):
                if a < hold:
                    mask.append(h[k] >= -trade)
                elif a == hold:
                    mask.append(True)
                else:
                    mask.append(can_buy and (not affordable or trade * (p[k] + buy_cost[k]) <= c))
        masks.append(mask)
    return masks


def post_style_speed_limit_mask(positions, speeds, limits, safe_speed, road_length, max_accel, max_brake,
                                n_levels=N_LEVELS):
    """Per-state loop of the speed-limit mask in the post's style (S3 from the same per-episode table)."""
    masks = []
    for p, v, lim, safe in zip(positions, speeds, limits, safe_speed):
        p = min(p, road_length)
        mask = [0] * n_levels
        for a in range(n_levels):
            if not v - max_brake <= a <= v + max_accel:                     # S2
                continue
            if any(lim[cell] < a for cell in range(p, p + a + 1)):          # S1
                continue
            if p + a < road_length and a > safe[p + a]:                     # S3
                continue
            mask[a] = 1
        masks.append(mask)
    return masks


@pytest.mark.parametrize("batch", [1, 64, 4096])
@pytest.mark.parametrize("impl", ["batched", "post_loop"])
@pytest.mark.benchmark(group="mask")
def test_portfolio_mask(benchmark, batch, impl):
    core = envs.make_core("portfolio", num_envs=batch)
    core.state = core.sample_states(np.random.default_rng(0), batch)
    if impl == "batched":
        result = benchmark(core.action_mask)
    else:
        s = core.state
        args = (s.holdings[:, 0], s.cash[:, 0], s.prices)
        result = benchmark(post_style_mask, *args)
        # Same masks, except on states built exactly at a C2/C3 threshold, where the post's
        # division and the env's multiplication may round to different sides.
        share = s.holdings[:, 0] * s.prices / portfolio_value(s)[:, :1]
        knife_edge = (np.abs(share[:, C2_ASSET] - C2_SHARE) < 1e-9) | (np.abs(share[:, C3_ASSET] - C3_SHARE) < 1e-9)
        np.testing.assert_array_equal(np.asarray(result).reshape(batch, 33)[~knife_edge],
                                      core.action_mask()[~knife_edge, 0])
    benchmark.extra_info["states_per_second"] = batch / benchmark.stats["mean"]


@pytest.mark.parametrize("env, batch", [("speed_limit", 1), ("speed_limit", 64), ("speed_limit", 4096),
                                        ("speed_limit-l", 4096)])
@pytest.mark.parametrize("impl", ["batched", "post_loop"])
@pytest.mark.benchmark(group="mask")
def test_speed_limit_mask(benchmark, env, batch, impl):
    """The seed's road and the largest level's (50 speed levels, a 1,000-cell road)."""
    core = envs.make_core(env, num_envs=batch)
    core.state = core.sample_states(np.random.default_rng(0), batch)
    if impl == "batched":
        result = benchmark(core.action_mask)
    else:
        s, c = core.state, core.config
        args = (s.position[:, 0].tolist(), s.speed[:, 0].tolist(), s.limits.tolist(), s.safe_speed.tolist(),
                c.road_length, c.max_accel, c.max_brake, c.n_levels)
        if env == "speed_limit":
            result = benchmark(post_style_speed_limit_mask, *args)
        else:  # seconds per round at the largest level
            result = benchmark.pedantic(post_style_speed_limit_mask, args, rounds=3, iterations=1)
        np.testing.assert_array_equal(np.asarray(result), core.action_mask()[:, 0])
    assert core.action_mask().shape[-1] == core.config.n_levels
    benchmark.extra_info["states_per_second"] = batch / benchmark.stats["mean"]


@pytest.mark.parametrize("impl", ["batched", "per_state_loop"])
@pytest.mark.benchmark(group="mask-largest-level")
def test_portfolio_xl_mask(benchmark, impl):
    batch = 4096
    core = envs.make_core("portfolio-xl", num_envs=batch)
    core.state = core.sample_states(np.random.default_rng(0), batch)
    if impl == "batched":
        result = benchmark(core.action_mask)
    else:
        s = core.state
        result = benchmark.pedantic(per_state_portfolio_mask, (s.holdings[:, 0], s.cash[:, 0], s.prices, core),
                                    rounds=3, iterations=1)
        np.testing.assert_array_equal(np.asarray(result, dtype=np.int8), core.action_mask()[:, 0])
    assert core.action_mask().shape[-1] == 30 * 101
    benchmark.extra_info["states_per_second"] = batch / benchmark.stats["mean"]
