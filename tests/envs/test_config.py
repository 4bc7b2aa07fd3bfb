"""Env configs: every mistake is one line naming the key and what is accepted."""

import gymnasium
import pytest

import envs
from envs.config import ConfigError, UnknownConfigKey, build_config, describe_config, parse_assignments
from envs.portfolio import PortfolioConfig


def test_strings_are_parsed_by_field_type():
    config = build_config(PortfolioConfig, parse_assignments(
        ["start_cash=500", "periods=5", "buy_cost=0.1, 0.2,0.3", "reward=value_change"]), owner="env")
    assert (config.start_cash, config.periods, config.buy_cost, config.reward) == \
        (500.0, 5, (0.1, 0.2, 0.3), "value_change")


def test_strict_is_a_common_option_of_every_env():
    assert envs.make_core("portfolio", strict="yes").strict is True
    assert envs.config_dict("portfolio", {})["strict"] is False
    assert "strict" in [row["key"] for row in envs.describe("portfolio")]


@pytest.mark.parametrize("overrides, message", [
    ({"cash": 5}, "unknown config key 'cash'; accepted keys: start_cash, periods, buy_cost, sell_cost, "
                  "price_noise_std, min_price, reward, n_agents, price_impact, n_assets, lot_levels, affordable_buys, "
                  "strict, invalid_action (an unexpected keyword argument 'cash')"),
    ({"periods": "abc"}, "config key 'periods' expects an integer, got 'abc'"),
    ({"periods": 2.5}, "config key 'periods' expects an integer"),
    ({"periods": 0}, "config key 'periods' must be a positive integer; got 0"),
    ({"start_cash": -1}, "config key 'start_cash' must be a positive number; got -1"),
    ({"buy_cost": "0.1,-0.2"}, "config key 'buy_cost' must be non-negative numbers, one per asset"),
    ({"buy_cost": "0.1,0.2"}, "config key 'buy_cost' has 2 value(s) for n_assets=3; give 3"),
    ({"n_assets": 0}, "config key 'n_assets' must be an integer in 1..1000; got 0"),
    ({"lot_levels": 0}, "config key 'lot_levels' must be an integer in 1..500; got 0"),
    ({"invalid_action": "skip"}, "config key 'invalid_action' must be one of noop, repair; got 'skip'"),
    ({"reward": "profit"}, "config key 'reward' must be one of final_value, final_return, value_change; got 'profit'"),
    ({"strict": "maybe"}, "config key 'strict' expects a boolean, got 'maybe'"),
    ({"n_agents": True}, "config key 'n_agents' expects an integer"),
])
def test_bad_values_give_one_line_naming_the_key(overrides, message):
    with pytest.raises(ConfigError) as error:
        envs.make("portfolio", **overrides)
    assert message in str(error.value)
    assert "\n" not in str(error.value)


def test_unknown_env_lists_known_envs():
    with pytest.raises(ConfigError, match="unknown env 'portfolo'; known envs: .*portfolio"):
        envs.make("portfolo")


def test_assignment_syntax_errors():
    with pytest.raises(ConfigError, match="expects KEY=VALUE, got 'periods'"):
        parse_assignments(["periods"])


def test_describe_lists_every_field_with_default_and_doc():
    rows = describe_config(PortfolioConfig)
    by_key = {r["key"]: r for r in rows}
    assert by_key["start_cash"]["default"] == "1000.0" and "dollars" in by_key["start_cash"]["doc"]
    assert by_key["reward"]["accepts"].startswith("one of final_value")


@pytest.mark.parametrize("make", [
    lambda **kw: envs.make("speed_limit", **kw),
    lambda **kw: envs.make_vector("speed_limit", 2, **kw),
    lambda **kw: envs.make_parallel("speed_limit", **kw),
    lambda **kw: envs.make_multi_agent_vector("speed_limit", 2, **kw),
    lambda **kw: gymnasium.make("maskbench/SpeedLimit-v0", **kw),
    lambda **kw: gymnasium.make_vec("maskbench/SpeedLimit-v0", 2, vectorization_mode="vector_entry_point", **kw),
    lambda **kw: build_config(envs.spec("speed_limit").load().Config, kw, owner="env 'speed_limit'"),
], ids=["make", "make_vector", "make_parallel", "make_multi_agent_vector", "gymnasium.make", "gymnasium.make_vec",
        "build_config"])
def test_an_unknown_keyword_is_a_type_error_in_pythons_words_and_a_config_error(make):
    """As Gymnasium's own envs: wrappers probe keywords and drop the ones that raise TypeError (TorchRL's GymEnv
    tries frameskip= and matches Python's words); the suite's command lines still print one line for it."""
    with pytest.raises(TypeError, match="unexpected keyword argument 'frameskip'") as error:
        make(frameskip=4)
    assert isinstance(error.value, UnknownConfigKey) and isinstance(error.value, ConfigError)
    assert "accepted keys: road_length" in str(error.value)
    with pytest.raises(ConfigError) as error:  # a bad value stays a ValueError, not a TypeError
        make(road_length=-1)
    assert not isinstance(error.value, TypeError)


def test_a_torchrl_style_keyword_probe_falls_back_to_the_env_without_the_keyword():
    """What TorchRL's GymEnv does (tested with TorchRL itself in test_renders_and_pettingzoo_tools.py where it is
    installed): make with frameskip=, and on a TypeError naming it, make without."""
    try:
        env = gymnasium.make("maskbench/SpeedLimit-v0", frameskip=1)
    except TypeError as error:
        assert "unexpected keyword argument 'frameskip'" in str(error)
        env = gymnasium.make("maskbench/SpeedLimit-v0")
    assert env.unwrapped.core.name == "speed_limit"
