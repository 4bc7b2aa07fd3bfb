"""The references (baselines.references): every one admissible on every level it plays, each simple policy
doing what its definition says on a hand-checked case, the roles the report relies on, and the former
``oracle`` runs under names that say what they are."""

import dataclasses

import numpy as np
import pytest

import envs
from baselines.random_valid import RandomValidConfig
from baselines.references import CATALOG, ORACLE_RENAMED, ROLES, current_name, load, roles
from baselines.references.cruise_lowest_limit import lowest_limit
from baselines.references.max_admissible_speed import highest_admissible
from baselines.references.portfolio_trades import trade_towards
from envs.config import ConfigError
from envs.masking import nearest_admitted
from envs.portfolio import mean_prices
from envs.sum_to_zero import SumToZeroCore
from tests.helpers import one_step_lookahead as hand_written_one_step_lookahead
from tests.helpers import run_main

SEEDS = [1_000_000 + i for i in range(8)]


def player(name, env_name, num_envs=8, **env_config):
    return load(name)(env_name, env_config, RandomValidConfig(num_envs=num_envs), seed=0)


def plays(name):
    return [env for env in envs.names() if load(name).incompatibility(env, {}) is None]


def test_every_reference_has_a_role_and_plays_some_built_in_env():
    assert set(roles().values()) <= set(ROLES)
    for name, (_, role) in CATALOG.items():
        assert plays(name), name
        assert (role == "clairvoyant") == name.startswith("clairvoyant"), name  # the name says it sees more
    for family in ("portfolio", "speed_limit", "sum_to_zero", "job_shop"):  # each env has a simple policy and a 0
        assert any(roles()[name] == "simple" and family in load(name).families for name in CATALOG), family


@pytest.mark.parametrize("name", [n for n in CATALOG if n not in ("random_valid", "lookahead_dp")])
def test_every_reference_is_admissible_on_every_level_it_plays(name):
    """Strict envs raise on any inadmissible action; two episodes of 8 entries on each level."""
    for env_name in plays(name):
        if env_name.endswith(("-l", "-xl")) and name == "clairvoyant_dp":
            continue  # the full DP of a 1,000-cell road is the slow part; speed_limit-m covers the code
        if env_name != "job_shop" and name == "job_shop_optimum":
            continue  # an exact solve per 10x10 or 15x15 instance takes minutes; job_shop covers the code
        algo = player(name, env_name, strict=True)
        obs, _ = algo.env.reset(seed=SEEDS)
        for _ in range(2 * envs.spec(env_name).load().Config().__dict__.get("max_steps", 20)):
            obs, *_ = algo.env.step(algo.act(obs, algo.env))
        algo.close()


def speeds_driven(name, layout, steps):
    """The levels reference ``name`` drives on one speed_limit road of ``layout``, step by step."""
    algo = player(name, "speed_limit", num_envs=1, layout=layout)
    obs, _ = algo.env.reset(seed=SEEDS[:1])
    speeds = []
    for _ in range(steps):
        action = algo.act(obs, algo.env)
        speeds.append(int(action[0]))
        obs, *_ = algo.env.step(action)
    algo.close()
    return speeds


def test_max_admissible_speed_takes_the_last_admitted_level():
    mask = np.array([[1, 1, 1, 0, 0], [0, 0, 0, 0, 0], [1, 0, 0, 0, 1]], dtype=bool)
    assert highest_admissible(mask).tolist() == [2, 0, 4]
    speeds = speeds_driven("max_admissible_speed", "A" * 100, steps=6)
    assert speeds == [2, 4, 6, 8, 9, 9]  # from rest on an open road: +2 a step (max_accel) up to the top level


def test_cruise_lowest_limit_speeds_up_to_the_slowest_limit_and_holds_it():
    mask = np.array([[1, 1, 1, 0, 0], [0, 0, 0, 0, 0], [0, 0, 0, 1, 1], [0, 1, 0, 1, 0]], dtype=bool)
    assert nearest_admitted(mask, 2).tolist() == [2, 2, 3, 1]  # nothing admitted: the target; a tie: the lower
    assert nearest_admitted(mask, np.array([4, 0, 0, 2])).tolist() == [2, 0, 3, 1]
    speeds = speeds_driven("cruise_lowest_limit", "A" * 30 + "R" * 10 + "A" * 60, steps=12)
    assert speeds == [2, 3] + [3] * 10  # the residential limit (3) on an arterial road too: one speed, no changes
    lane = player("cruise_lowest_limit", "speed_limit-m", num_envs=2, n_agents=3)
    obs, _ = lane.env.reset(seed=SEEDS[:2])
    for _ in range(20):
        obs, _, _, _, info = lane.env.step(lane.act(obs, lane.env))
        assert (np.asarray(info["invalid_actions"]) == 0).all()
        assert (lane.env.core.state.speed <= 8).all()  # never above speed_limit-m's lowest limit
    config = envs.make_core("speed_limit").config
    assert lowest_limit(config) == 3  # the residential limit
    assert lowest_limit(dataclasses.replace(config, layout="AAUU", road_length=4)) == 6  # no residential cell
    assert lowest_limit(dataclasses.replace(config, zone_mix=(0.0, 0.0, 1.0))) == 9  # only arterial zones drawn


def test_never_move_keeps_the_allocation():
    algo = player("never_move", "sum_to_zero")
    obs, _ = algo.env.reset(seed=SEEDS)
    start = algo.env.core.state.weights.copy()
    for _ in range(10):
        obs, reward, *_ = algo.env.step(algo.act(obs, algo.env))
    np.testing.assert_allclose(algo.env.core.state.weights, start, atol=1e-12)  # up to the env's renormalising


def test_uniform_allocation_moves_to_one_over_n_once():
    algo = player("uniform_allocation", "sum_to_zero")
    obs, _ = algo.env.reset(seed=SEEDS)
    obs, *_ = algo.env.step(algo.act(obs, algo.env))
    np.testing.assert_allclose(algo.env.core.state.weights, 1 / 13, atol=1e-12)
    np.testing.assert_allclose(algo.act(obs, algo.env), 0.0, atol=1e-12)  # then it stays


def test_last_demand_moves_to_the_demand_it_observed():
    algo = player("last_demand", "sum_to_zero")
    obs, _ = algo.env.reset(seed=SEEDS)
    for _ in range(3):
        observed = obs["observation"][:, 13:].astype(np.float64)
        obs, *_ = algo.env.step(algo.act(obs, algo.env))
        np.testing.assert_allclose(algo.env.core.state.weights[:, 0], observed / observed.sum(-1, keepdims=True),
                                   atol=1e-12)


def test_demand_forecast_is_uniform_without_persistence_and_the_last_demand_at_full_persistence():
    """softmax(rho log d): rho = 0 forgets the demand (uniform), rho -> 1 keeps it (the last demand)."""
    algo = player("demand_forecast", "sum_to_zero", demand_persistence=0.0)
    obs, _ = algo.env.reset(seed=SEEDS)
    obs, *_ = algo.env.step(algo.act(obs, algo.env))
    np.testing.assert_allclose(algo.env.core.state.weights, 1 / 13, atol=1e-12)
    forecast, last = player("demand_forecast", "sum_to_zero", demand_persistence=0.999999), \
        player("last_demand", "sum_to_zero", demand_persistence=0.999999)
    obs, _ = forecast.env.reset(seed=SEEDS)
    np.testing.assert_allclose(forecast.act(obs, forecast.env), last.act(obs, forecast.env), atol=1e-5)


def test_the_forecast_beats_the_last_demand_and_both_beat_doing_nothing_on_average():
    def mean_return(name):
        algo = player(name, "sum_to_zero", num_envs=64)
        obs, _ = algo.env.reset(seed=[1_000_000 + i for i in range(64)])
        total = np.zeros(64)
        for _ in range(50):
            obs, reward, *_ = algo.env.step(algo.act(obs, algo.env))
            total += reward
        return total.mean()

    returns = {name: mean_return(name) for name in ("never_move", "uniform_allocation", "last_demand",
                                                    "demand_forecast", "clairvoyant_demand")}
    assert returns["never_move"] < returns["uniform_allocation"] < returns["last_demand"] \
        < returns["demand_forecast"] < returns["clairvoyant_demand"]


def test_trade_towards_rounds_to_lots_caps_and_steps_back_to_the_admissible():
    core = envs.make_core("portfolio", 1)
    core.reset_envs(np.arange(1), [np.random.default_rng(0)])
    core.state.cash[:] = 10_000.0
    target = core.state.holdings + np.array([[[26.0, 999.0, -30.0]]])  # 3 lots; capped at 5; no holdings to sell
    assert trade_towards(core, target).tolist() == [[[5 + 3, 5 + 5, 5]]]
    core.state.holdings[:] = [[[40.0, 0.0, 0.0]]]
    target = np.array([[[0.0, 0.0, 0.0]]])
    assert trade_towards(core, target).tolist() == [[[5 - 4, 5, 5]]]     # sell the 40 units held
    assert trade_towards(core, target, sell=False).tolist() == [[[5, 5, 5]]]


def test_buy_and_hold_buys_an_equal_split_then_never_sells():
    algo = player("buy_and_hold", "portfolio", num_envs=1)
    obs, _ = algo.env.reset(seed=SEEDS[:1])
    prices = algo.env.core.state.prices[0]
    lots = np.rint(1000.0 / 3 / prices / 10)  # $333 of each asset, in lots of 10 units
    assert algo.act(obs, algo.env)[0].tolist() == (5 + lots).astype(int).tolist()
    held = []
    for _ in range(20):
        obs, *_ = algo.env.step(algo.act(obs, algo.env))
        held.append(algo.env.core.state.holdings[0, 0].copy())
    assert all((later >= earlier).all() for earlier, later in zip(held, held[1:-1]))


def test_equal_weight_sells_what_is_over_its_share():
    algo = player("equal_weight", "portfolio", num_envs=1)
    obs, _ = algo.env.reset(seed=SEEDS[:1])
    core = algo.env.core
    core.state.holdings[:] = [[[50.0, 0.0, 0.0]]]
    core.state.cash[:] = 0.0
    value = 50.0 * core.state.prices[0, 0]
    wanted = np.rint((value / 3 / core.state.prices[0, 0] - 50.0) / 10)  # sell down to a third of the value
    action = algo.act(core.observe(np.ones((1, 1), bool)), algo.env)
    assert action[0, 0] == 5 + wanted and action[0, 1] == 5 and action[0, 2] == 5  # no cash: C4 blocks buys


def test_one_step_lookahead_is_the_hand_written_rule_at_the_seed_size():
    algo = player("one_step_lookahead", "portfolio", num_envs=16)
    obs, _ = algo.env.reset(seed=[1_000_000 + i for i in range(16)])
    for _ in range(20):
        expected = hand_written_one_step_lookahead(algo.env.core)[:, 0]
        action = algo.act(obs, algo.env)
        np.testing.assert_array_equal(action, expected)
        obs, *_ = algo.env.step(action)
    assert mean_prices(20).shape == (21, 3)


def test_the_clairvoyant_dp_drives_the_optimum_of_each_road():
    algo = player("clairvoyant_dp", "speed_limit")
    obs, _ = algo.env.reset(seed=SEEDS)
    optimum = algo.env.core.optimal_return()[:, 0]
    total, done = np.zeros(8), np.zeros(8, dtype=bool)
    while not done.all():
        obs, reward, terminated, truncated, _ = algo.env.step(algo.act(obs, algo.env))
        total += np.where(done, 0.0, reward)
        done |= terminated | truncated
    np.testing.assert_allclose(total, optimum)


@pytest.mark.parametrize("env_name", ["portfolio", "speed_limit-m", "sum_to_zero"])
def test_oracle_on_a_built_in_env_names_what_its_former_oracle_is(env_name, tmp_path, capsys):
    assert run_main("--env", env_name, "--algo", "oracle", "--out", str(tmp_path)) == 2
    err = capsys.readouterr().err
    renamed = ORACLE_RENAMED[envs.spec(env_name).family]
    assert f"its former oracle is --algo {renamed}" in err and len(err.strip().splitlines()) == 1
    assert current_name("oracle", envs.spec(env_name).family) == renamed
    assert current_name("oracle", "a_users_env") == "oracle" and current_name("masked_ppo", "portfolio") == "masked_ppo"


def test_references_refuse_envs_they_do_not_understand():
    assert "reference policy of sum_to_zero, not of 'portfolio'" in load("never_move").incompatibility("portfolio", {})
    assert "plays one agent; got n_agents=2" in load("clairvoyant_dp").incompatibility("speed_limit", {"n_agents": 2})
    assert load("max_admissible_speed").incompatibility("speed_limit", {"n_agents": 2}) is None  # each car its own
    with pytest.raises(ConfigError, match="movement_cost <= 0.25"):
        player("clairvoyant_demand", "sum_to_zero", movement_cost=0.3)


@pytest.mark.slow  # a Ray Tune sweep: 15-45 s
def test_algo_references_runs_every_reference_of_the_env(tmp_path, capsys):
    assert run_main("--env", "sum_to_zero", "--algo", "references", "--steps", "2000", "--episodes", "3",
                    "--out", str(tmp_path), "--quiet") == 0
    ran = sorted(path.parent.name for path in tmp_path.glob("sum_to_zero/*/seed0"))
    assert ran == sorted(name for name in CATALOG if name in plays_family("sum_to_zero"))
    assert "6 of 6 run(s) complete" in capsys.readouterr().out


def plays_family(family):
    return [name for name in CATALOG if not load(name).families or family in load(name).families]


class ForecastingCore(SumToZeroCore):
    """A user's env whose own ``oracle_actions`` is the demand forecast (module level: checkpoints pickle it)."""

    def oracle_actions(self):
        return self.forecast_actions()


def test_oracle_plays_a_users_envs_own_hook(tmp_path):
    envs.register("users_allocation", ForecastingCore, overwrite=True)
    try:
        assert run_main("--env", "users_allocation", "--algo", "oracle", "--steps", "2000", "--episodes", "3",
                        "--out", str(tmp_path), "--quiet") == 0
        oracle = player("oracle", "users_allocation")
        forecast = player("demand_forecast", "sum_to_zero")
        obs, _ = oracle.env.reset(seed=SEEDS)
        np.testing.assert_allclose(oracle.act(obs, oracle.env), forecast.act(obs, oracle.env), atol=1e-6)
    finally:
        envs.unregister("users_allocation")


def test_headroom_is_what_the_best_simple_policy_leaves_below_the_clairvoyant_optimum():
    """A residential road of 30 cells: holding its limit (3) is the optimum, 30 cells - 11 steps - 2 x (2 + 1)
    levels of change = 13, so nothing is left to learn; random_valid is far below."""
    from baselines.references.cruise_lowest_limit import headroom

    found = headroom("speed_limit", {"road_length": 30, "layout": "R" * 30}, episodes=4)
    assert found["hold 3"] == found["clairvoyant_dp"] == 13.0
    assert found["headroom"] == 0.0 and found["random_valid"] < 13.0
    assert found["max_admissible_speed"] <= 13.0 and set(found) >= {"hold 6", "hold 9"}
