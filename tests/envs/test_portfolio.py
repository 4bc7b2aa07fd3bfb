"""The portfolio env: mask vs C1-C4 on arbitrary states, the post's bugs fixed, dynamics, views."""

import pickle

import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from pettingzoo.test import parallel_api_test, parallel_seed_test

import envs
from envs.masking import InadmissibleActionError, sample_masked
from envs.portfolio import HOLD, PortfolioState, continuation_values, mean_prices, portfolio_value, relaxed_value_bound
from suite.check import audit_mask, run_checks
from tests.helpers import one_step_lookahead

SELL_50, SELL_10, BUY_10, BUY_50 = 0, 4, 6, 10


def core_with(holdings, cash, prices, t=0, **config):
    """A batch-1, 1-agent core set to an arbitrary state."""
    core = envs.make_core("portfolio", **config)
    core.reset_envs(np.array([0]), [np.random.default_rng(0)])
    core.state = PortfolioState(np.array([[holdings]], dtype=float), np.array([[cash]], dtype=float),
                                np.array([prices], dtype=float), np.array([t]))
    return core


def mask_of(core):
    return core.action_mask()[0, 0].reshape(3, 11)


finite = {"allow_nan": False, "allow_infinity": False}


@st.composite
def portfolio_states(draw, batch=8, agents=2):
    """Arbitrary states, not only reachable ones: any holdings (also non-multiples of 10), any cash."""
    holdings = draw(hnp.arrays(np.float64, (batch, agents, 3),
                               elements=st.one_of(st.sampled_from([0.0, 9.0, 10.0, 40.0, 50.0, 51.0]),
                                                  st.floats(0, 1e4, **finite))))
    cash = draw(hnp.arrays(np.float64, (batch, agents),
                           elements=st.one_of(st.sampled_from([0.0, 0.999, 1.0, 1.001]), st.floats(0, 1e6, **finite))))
    prices = draw(hnp.arrays(np.float64, (batch, 3), elements=st.floats(0.01, 1e3, **finite)))
    t = draw(hnp.arrays(np.int64, (batch,), elements=st.integers(0, 19)))
    return PortfolioState(holdings, cash, prices, t)


@settings(max_examples=200, deadline=None)
@given(portfolio_states())
def test_mask_is_sound_complete_and_never_empty_on_arbitrary_states(state):
    core = envs.make_core("portfolio", num_envs=8, n_agents=2)
    core.state = state
    audit = audit_mask(core)
    assert audit.unsound == {"C1": 0, "C2": 0, "C3": 0, "C4": 0}, audit.examples
    assert audit.incomplete == 0, audit.examples
    assert audit.empty == 0, audit.examples


def test_sample_states_hit_every_constraint():
    core = envs.make_core("portfolio", num_envs=2000)
    core.state = core.sample_states(np.random.default_rng(0), 2000)
    mask = core.action_mask().reshape(2000, 1, 3, 11).astype(bool)
    s = core.state
    assert (~mask[..., :5]).any()                                      # C1 binds
    assert (~mask[:, :, 2, 6:]).any() and (~mask[:, :, 1, 6:]).any()  # C2 / C3 / C4 bind
    assert (s.cash < 1).any() and mask[..., 6:].any()


def test_c1_no_selling_more_than_held():
    m = mask_of(core_with([30, 0, 55], 100, [40, 35, 48]))
    np.testing.assert_array_equal(m[0, :5], [0, 0, 1, 1, 1])   # can sell 30, 20, 10 of 30 held
    np.testing.assert_array_equal(m[1, :5], [0, 0, 0, 0, 0])
    np.testing.assert_array_equal(m[2, :5], [1, 1, 1, 1, 1])
    assert m[:, HOLD].all()


def test_c2_is_the_one_third_rule_on_asset_3_and_c3_the_two_thirds_rule_on_asset_2():
    # asset 3 worth 40% of the portfolio: C2 forbids buying it; asset 2 worth 40% < 2/3: buying allowed
    core = core_with([0, 40, 40], 200, [10, 10, 10])  # cash 200, asset2 400, asset3 400 -> 40% each
    m = mask_of(core)
    assert not m[2, 6:].any() and m[1, 6:].all() and m[0, 6:].all()
    core.step([[[HOLD, HOLD, BUY_10]]])
    with pytest.raises(InadmissibleActionError, match="C2"):
        core_with([0, 40, 40], 200, [10, 10, 10], strict=True).step([[[HOLD, HOLD, BUY_10]]])
    # asset 2 worth 70% of the portfolio: C3 forbids it
    core = core_with([0, 70, 0], 300, [10, 10, 10])
    assert not mask_of(core)[1, 6:].any()
    with pytest.raises(InadmissibleActionError, match="C3"):
        core_with([0, 70, 0], 300, [10, 10, 10], strict=True).step([[[HOLD, BUY_10, HOLD]]])


def test_the_constraints_are_built_once_and_a_core_that_used_them_still_pickles():
    """Cached (the core reads them every step), and no closure among them: a training checkpoint pickles the
    env, core included."""
    vec = envs.make_vector("portfolio-xl", 4)
    vec.reset(seed=0)
    vec.step(vec.action_space.sample())
    core = vec.core
    assert core.constraints is core.constraints
    copy = pickle.loads(pickle.dumps(vec)).core
    actions = core.as_batched_actions(vec.action_space.sample())
    assert [c.name for c in copy.constraints] == [c.name for c in core.constraints] == ["C1", "C2", "C3", "C4", "C5",
                                                                                         "C6"]
    for mine, theirs in zip(core.constraints, copy.constraints):
        assert np.array_equal(mine.admits(core.state, actions), theirs.admits(copy.state, actions))


def test_c4_forbids_all_buys_below_one_dollar_and_is_not_overwritten_by_c2_c3():
    # the post's update_mask set the buy masks of assets 2 and 3 back to 1 after C4 zeroed them
    m = mask_of(core_with([10, 10, 0], 0.5, [40, 35, 48]))
    assert not m[:, 6:].any()
    assert mask_of(core_with([10, 10, 0], 1.0, [40, 35, 48]))[:, 6:].all()


def test_buy_deducts_price_plus_buy_cost_and_sell_credits_price_minus_sell_cost():
    core = core_with([20, 0, 0], 1000, [40, 35, 48])
    core.step([[[HOLD, BUY_10, HOLD]]])
    s = core.state
    assert s.holdings[0, 0].tolist() == [20, 10, 0]
    assert s.cash[0, 0] == pytest.approx(1000 - 10 * (35 + 0.045))  # buy cost, not the sell cost 0.035
    core = core_with([20, 0, 0], 1000, [40, 35, 48])
    core.step([[[3, HOLD, HOLD]]])  # sell 20 of asset 1
    assert core.state.cash[0, 0] == pytest.approx(1000 + 20 * (40 - 0.025))


def test_buy_beyond_cash_is_partially_filled_in_lots_of_ten():
    core = core_with([0, 0, 0], 1000, [40, 35, 48])
    core.step([[[BUY_50, HOLD, HOLD]]])  # 50 units cost 2001.5: 2 lots (20 units) fit in 1000
    assert core.state.holdings[0, 0, 0] == 20
    assert core.state.cash[0, 0] == pytest.approx(1000 - 20 * 40.03)
    core = core_with([0, 0, 0], 1000, [40, 35, 48])
    core.step([[[BUY_50, BUY_50, HOLD]]])  # asset 2 buys with what asset 1 left
    left = 1000 - 20 * 40.03
    assert core.state.holdings[0, 0, 1] == 10 * np.floor(left / (10 * 35.045))


def test_episode_has_exactly_periods_trades_and_pays_the_final_value():
    env = envs.make("portfolio")
    obs, info = env.reset(seed=3)
    rewards = []
    for t in range(20):
        obs, reward, terminated, truncated, info = env.step(np.array([HOLD, HOLD, BUY_10]) if t == 0 else [HOLD] * 3)
        rewards.append(reward)
        assert terminated == (t == 19) and not truncated
    assert rewards[:-1] == [0.0] * 19
    assert rewards[-1] == pytest.approx(info["portfolio_value"])
    assert obs["observation"][7] == 0.0  # no periods left
    value = obs["observation"][3] + obs["observation"][:3] @ obs["observation"][4:7]
    assert rewards[-1] == pytest.approx(value, rel=1e-5)


@pytest.mark.parametrize("periods", [1, 5, 20])
def test_reward_modes_agree(periods):
    finals = {}
    for mode in ("final_value", "final_return", "value_change"):
        env = envs.make("portfolio", reward=mode, periods=periods)
        env.reset(seed=11)
        env.action_space.seed(11)
        total = 0.0
        for _ in range(periods):
            _, r, terminated, _, info = env.step(np.array([BUY_10, BUY_10, BUY_10]))
            total += r
        assert terminated
        finals[mode] = (total, info["portfolio_value"])
    value = finals["final_value"][1]
    assert finals["final_value"][0] == pytest.approx(value)
    assert finals["final_return"][0] == pytest.approx(value / 1000)
    assert finals["value_change"][0] == pytest.approx(value / 1000 - 1)


def test_prices_follow_the_mean_curves_and_are_floored():
    means = mean_prices(20)
    np.testing.assert_allclose(means[0], [40, 35, 48])
    np.testing.assert_allclose(means[16], [40 + 6.4 + 4, 35 + 1.6, 48 + 4.8 - 6 * np.sin(2 * np.pi * 16 / 7)])
    core = envs.make_core("portfolio", num_envs=256, price_noise_std=(200.0, 200.0, 200.0), min_price=0.5)
    core.reset_envs(np.arange(256), [np.random.default_rng(i) for i in range(256)])
    lows = [core.state.prices.min()]
    for _ in range(19):
        core.step(np.full((256, 1, 3), HOLD))
        lows.append(core.state.prices.min())
    assert min(lows) == 0.5


def test_noise_free_prices_equal_the_means():
    env = envs.make("portfolio", price_noise_std=(0.0, 0.0, 0.0))
    obs, _ = env.reset(seed=0)
    np.testing.assert_allclose(obs["observation"][4:7], mean_prices(20)[0], rtol=1e-6)
    for t in range(1, 21):
        obs, *_ = env.step([HOLD] * 3)
        np.testing.assert_allclose(obs["observation"][4:7], mean_prices(20)[t], rtol=1e-6)


def test_inadmissible_sub_action_holds_that_asset_only_and_is_reported():
    env = envs.make("portfolio")
    env.reset(seed=0)
    _, _, _, _, info = env.step(np.array([SELL_50, BUY_10, SELL_10]))  # nothing held: two C1 violations
    assert info["invalid_actions"] == 2 and info["violated"] == ["C1"]
    held = env.core.state.holdings[0, 0]
    assert held.tolist() == [0, 10, 0]  # asset 2 still traded
    _, _, _, _, info = env.step(np.array([HOLD, HOLD, HOLD]))
    assert info["invalid_actions"] == 0 and info["violated"] == []


def test_strict_mode_raises_naming_the_constraint_and_changes_nothing():
    env = envs.make("portfolio", strict=True)
    env.reset(seed=0)
    before = env.core.state.copy()
    with pytest.raises(ValueError, match=r"C1 \(no selling more units than held\)"):
        env.step(np.array([SELL_50, HOLD, HOLD]))
    np.testing.assert_array_equal(env.core.state.cash, before.cash)


def test_actions_outside_the_action_space_are_errors_not_inadmissible_actions():
    env = envs.make("portfolio")
    env.reset(seed=0)
    with pytest.raises(ValueError, match="out of the action space"):
        env.step(np.array([11, 5, 5]))
    with pytest.raises(ValueError, match="shape"):
        env.step(np.array([5, 5]))


def test_gymnasium_checker_passes():
    check_env(envs.make("portfolio"), skip_render_check=True)


@pytest.mark.parametrize("price_impact", [0.0, 0.05])
@pytest.mark.parametrize("n_agents", [1, 2, 4])
def test_pettingzoo_api_and_seed_tests_pass(n_agents, price_impact):
    parallel_api_test(envs.make_parallel("portfolio", n_agents=n_agents, price_impact=price_impact), num_cycles=100)
    parallel_seed_test(lambda: envs.make_parallel("portfolio", n_agents=n_agents, price_impact=price_impact))


def test_independent_traders_share_prices_but_not_portfolios():
    env = envs.make_parallel("portfolio", n_agents=2)
    obs, _ = env.reset(seed=5)
    obs, rewards, *_ = env.step({"trader_0": np.array([BUY_10, HOLD, HOLD]), "trader_1": np.array([HOLD] * 3)})
    a, b = obs["trader_0"]["observation"], obs["trader_1"]["observation"]
    np.testing.assert_array_equal(a[4:7], b[4:7])
    assert a[0] == 10 and b[0] == 0 and b[3] == 1000


def test_make_refuses_multi_agent_and_vector_refuses_bad_sizes():
    with pytest.raises(envs.ConfigError, match="make_parallel"):
        envs.make("portfolio", n_agents=2)
    with pytest.raises(envs.ConfigError, match="num_envs"):
        envs.make_vector("portfolio", 0)


def test_vector_entry_equals_single_env_with_the_same_seed_across_autoreset():
    vec = envs.make_vector("portfolio", 3)
    single = envs.make("portfolio")
    vec_obs, _ = vec.reset(seed=7)
    obs, _ = single.reset(seed=9)  # entry 2 is seeded 7 + 2
    rng = np.random.default_rng(0)
    for t in range(45):  # two episodes and a bit: crosses the next-step autoreset twice
        actions = np.stack([rng.integers(0, 11, 3) for _ in range(3)])
        vec_obs, vec_r, vec_term, _, vec_info = vec.step(actions)
        if t in (20, 41):  # the step after an episode end resets (and ignores the action)
            obs, info = single.reset()
            r, term = 0.0, False
        else:
            obs, r, term, _, info = single.step(actions[2])
        np.testing.assert_array_equal(vec_obs["observation"][2], obs["observation"])
        np.testing.assert_array_equal(vec_obs["action_mask"][2], obs["action_mask"])
        assert (vec_r[2], vec_term[2]) == (r, term)
        assert vec_info["invalid_actions"][2] == info["invalid_actions"]
        assert list(vec_info["violated"][2]) == info["violated"]


def test_suite_check_passes_on_portfolio():
    failed = [r for r in run_checks("portfolio", steps=5000) if not r.passed]
    assert not failed, failed


@pytest.mark.parametrize("price_impact", [0.0, 0.03])
def test_suite_check_passes_on_multi_agent_portfolio(price_impact):
    failed = [r for r in run_checks("portfolio", {"n_agents": 3, "price_impact": price_impact}, steps=3000)
              if not r.passed]
    assert not failed, failed


def test_net_order_flow_moves_every_later_price_by_the_impact():
    """Noise-free prices: after trader 0 buys 20 of asset 1 and trader 1 sells 10 of it, asset 1 is
    10 units x impact dearer in every later period; the other assets are untouched."""
    par = envs.make_parallel("portfolio", n_agents=2, price_impact=0.02, price_noise_std=(0.0, 0.0, 0.0))
    par.reset(seed=0)
    core = par.core
    core.state.holdings[0, 1, 0] = 20.0  # trader 1 has something to sell
    par.step({"trader_0": np.array([BUY_10 + 1, HOLD, HOLD]), "trader_1": np.array([SELL_10, HOLD, HOLD])})
    means = mean_prices(20)
    assert core.state.holdings[0, :, 0].tolist() == [20.0, 10.0]
    np.testing.assert_allclose(core.state.prices[0], means[1] + [0.02 * 10, 0, 0])
    for t in range(2, 5):
        par.step({a: np.array([HOLD] * 3) for a in par.agents})
        np.testing.assert_allclose(core.state.prices[0], means[t] + [0.02 * 10, 0, 0])


def test_one_traders_buying_changes_what_another_may_buy():
    """Trader 1 holds asset 3 worth just under 1/3 of its portfolio; trader 0's purchase of asset 3
    (20 units, all its cash pays for) lifts the price past the line, so C2 forbids trader 1 to buy
    more of it; without impact it still may."""
    masks = {}
    for impact in (0.0, 0.05):
        par = envs.make_parallel("portfolio", n_agents=2, price_impact=impact, price_noise_std=(0.0, 0.0, 0.0))
        par.reset(seed=0)
        s = par.core.state
        price_next = mean_prices(20)[1, 2]
        s.holdings[0, 1, 2] = 10.0
        s.cash[0, 1] = 2 * 10 * price_next + 1.0  # asset 3 just under 1/3 at next period's mean price
        par.step({"trader_0": np.array([HOLD, HOLD, BUY_50]), "trader_1": np.array([HOLD] * 3)})
        masks[impact] = par.action_mask("trader_1").reshape(3, 11)
    assert masks[0.0][2, BUY_10] == 1 and masks[0.05][2, BUY_10] == 0


def test_mask_never_empty_on_long_rollouts():
    core = envs.make_core("portfolio", num_envs=512)
    core.reset_envs(np.arange(512), [np.random.default_rng(i) for i in range(512)])
    rng = np.random.default_rng(0)
    for _ in range(20):
        mask = core.action_mask().reshape(512, 3, 11)
        assert mask.any(axis=-1).all()
        core.step(rng.integers(0, 11, (512, 1, 3)))
    assert portfolio_value(core.state).min() >= 0


def play(core, policy, episodes_seed=1_000_000):
    """Final portfolio values ``(batch, agents)`` of one episode per entry under ``policy(core)``."""
    core.reset_envs(np.arange(core.num_envs), [np.random.default_rng(episodes_seed + i) for i in range(core.num_envs)])
    for _ in range(core.config.periods):
        result = core.step(policy(core))
    assert result.terminated.all()
    return portfolio_value(core.state)


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), periods=st.integers(1, 30), n_agents=st.integers(1, 3),
       start_cash=st.sampled_from([0.5, 50.0, 1000.0, 1e5]), noise=st.sampled_from([0.0, 1.0, 4.0]))
def test_reference_policy_only_takes_admissible_actions(seed, periods, n_agents, start_cash, noise):
    core = envs.make_core("portfolio", 16, periods=periods, n_agents=n_agents, start_cash=start_cash,
                          price_noise_std=(noise, 2.0, 7.0), strict=True)  # strict: any inadmissible action raises
    values = play(core, lambda c: c.oracle_actions(), episodes_seed=seed)
    assert (values >= 0).all()


def test_reference_policy_beats_simpler_policies_and_stays_under_the_relaxed_bound():
    core = envs.make_core("portfolio", 1000)
    reference = play(core, lambda c: c.oracle_actions()).mean()
    lookahead = play(core, one_step_lookahead).mean()
    rng = np.random.default_rng(0)
    random_valid = play(core, lambda c: sample_masked(rng, c.action_mask(), [11, 11, 11])).mean()
    bound = relaxed_value_bound(core.config)
    assert random_valid < lookahead < reference < bound
    assert reference > 1.2 * lookahead  # about $4,470 against $3,430: a strong reference, not a token one
    assert 9000 < bound < 9700


@pytest.mark.parametrize("level", ["portfolio-m", "portfolio-l", "portfolio-xl"])
def test_reference_policy_at_every_level_is_admissible_and_beats_random_valid_by_far(level):
    """At the levels C6 admits only the buys the cash pays for: the reference buys the largest admissible one (it
    once asked for the largest of all, which C6 refused, and held cash: $1,569 against random-valid's $1,870)."""
    core = envs.make_core(level, 200, strict=True)  # strict: any inadmissible action raises
    nvec = [int(n) for n in core.nvec]
    reference = play(core, lambda c: c.oracle_actions()).mean()
    rng = np.random.default_rng(0)
    random_valid = play(core, lambda c: sample_masked(rng, c.action_mask(), nvec)).mean()
    assert reference > 3 * random_valid, (reference, random_valid)
    assert reference < relaxed_value_bound(core.config)


def test_relaxed_bound_without_noise_is_the_product_of_the_best_growth_per_period():
    """Noise-free prices are the mean curves: the relaxed optimum rides the best-rising asset each period."""
    config = envs.resolve_config("portfolio", {"price_noise_std": (0.0, 0.0, 0.0)})[0]
    means = mean_prices(config.periods)
    growth = np.maximum(1.0, (means[1:] / means[:-1]).max(axis=1))
    assert relaxed_value_bound(config) == pytest.approx(config.start_cash * growth.prod(), rel=1e-9)
    cash_value, asset_value = continuation_values(config)
    assert cash_value[-1] == 1.0 and np.allclose(asset_value[-1], means[-1])
    assert continuation_values(config)[0] is cash_value  # cached per configuration


def test_relaxed_heuristic_plays_the_reference_policy_on_portfolio(tmp_path):
    from suite import run
    from suite.cli import run_cli

    argv = ["--env", "portfolio", "--algo", "relaxed_heuristic", "--steps", "400", "--episodes", "50",
            "--out", str(tmp_path), "--quiet"]
    assert run_cli(run.main, "python -m suite.run", argv) == 0
    import pandas as pd

    evaluation = pd.read_csv(tmp_path / "portfolio" / "relaxed_heuristic" / "seed0" / "eval.csv")
    core = envs.make_core("portfolio", 50)
    expected = play(core, lambda c: c.oracle_actions())[:, 0]
    assert np.allclose(evaluation["return"], expected) and (evaluation["invalid_actions"] == 0).all()
