"""Speed of the portfolio mask and env step, each against its baseline in the same run.

Run with ``pytest --benchmark`` (skipped otherwise). Rates are in ``extra_info``.
"""

import numpy as np
import pytest

import envs
from envs.portfolio import C2_ASSET, C2_SHARE, C3_ASSET, C3_SHARE, C4_MIN_CASH, portfolio_value


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


@pytest.mark.parametrize("impl", ["make_vector", "sync_vector_env"])
@pytest.mark.benchmark(group="env_step")
def test_portfolio_vector_step(benchmark, impl):
    import gymnasium as gym

    n = 1024
    env = envs.make_vector("portfolio", n) if impl == "make_vector" else \
        gym.vector.SyncVectorEnv([lambda: envs.make("portfolio") for _ in range(n)])
    env.reset(seed=0)
    actions = np.full((n, 3), 5)  # hold: always admissible, the same work for both
    benchmark(env.step, actions)
    benchmark.extra_info["env_steps_per_second"] = n / benchmark.stats["mean"]
