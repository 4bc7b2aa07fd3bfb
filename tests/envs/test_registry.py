"""The env registry: names, entry points and what make_core refuses up front."""

import numpy as np
import pytest

import envs
from envs.config import ConfigError


def test_registering_a_taken_name_is_refused():
    with pytest.raises(ValueError, match="already registered"):
        envs.register("portfolio", "envs.portfolio:PortfolioCore")
    with pytest.raises(TypeError, match="not an EnvCore"):
        envs.register("not_an_env", np.ndarray)
    assert "not_an_env" not in envs.names()


@pytest.mark.parametrize("name, entry_point, error, message", [
    (123, "envs.portfolio:PortfolioCore", ValueError, "env names are letters, digits"),
    ("", "envs.portfolio:PortfolioCore", ValueError, "env names are letters, digits"),
    ("all", "envs.portfolio:PortfolioCore", ValueError, "'all' cannot name an env"),
    ("mine", "envs.portfolio.PortfolioCore", ValueError, "an entry point is 'package.module:CoreClass'"),
    ("mine", "envs.portfolio:", ValueError, "an entry point is 'package.module:CoreClass'"),
])
def test_bad_registrations_are_refused_at_once_in_one_line(name, entry_point, error, message):
    with pytest.raises(error, match=message):
        envs.register(name, entry_point)
    assert name not in envs.names()


@pytest.mark.parametrize("entry_point, message", [
    ("no_such_module_anywhere:Core", "ModuleNotFoundError: No module named 'no_such_module_anywhere'"),
    ("envs.portfolio:NoSuchCore", "AttributeError"),
])
def test_an_entry_point_that_cannot_be_loaded_is_a_config_error_naming_it(entry_point, message):
    envs.register("broken", entry_point)
    try:
        with pytest.raises(ConfigError, match=f"env 'broken': its entry point {entry_point!r} cannot be loaded"):
            envs.make("broken")
        with pytest.raises(ConfigError, match=message):
            envs.make("broken")
    finally:
        envs.unregister("broken")


@pytest.mark.parametrize("action", [[np.inf, 0, 0], [np.nan, 5, 5], [5.5, 5, 5]])
def test_a_non_finite_or_fractional_action_is_a_caller_error_not_a_huge_integer(action):
    env = envs.make("portfolio")
    env.reset(seed=0)
    with pytest.raises(ValueError, match="actions must be finite integers"):
        env.step(np.array(action))


@pytest.mark.parametrize("name, num_envs, config", [
    ("portfolio", 64, {"periods": 100_000_000}), ("speed_limit", 64, {"road_length": 10_000_000}),
    ("sum_to_zero", 64, {"max_steps": 100_000}), ("portfolio", 10**7, {}), ("sum_to_zero", 4, {"n_targets": 10**9}),
])
def test_what_cannot_fit_in_memory_is_refused_before_anything_is_allocated(name, num_envs, config):
    with pytest.raises(ConfigError, match=r"GiB of memory needed \(estimate\), .* GiB available"):
        envs.make_core(name, num_envs, **config)


def test_the_estimates_are_of_the_right_size():
    """Each env's estimate against what its core really holds, within a factor of two."""
    for name, config in (("portfolio", {"periods": 2000}), ("speed_limit", {"road_length": 2000}),
                         ("sum_to_zero", {"max_steps": 500})):
        core = envs.make_core(name, 32, **config)
        core.reset(np.arange(32), [np.random.default_rng(i) for i in range(32)])
        held = sum(value.nbytes for value in vars(core.state).values() if isinstance(value, np.ndarray))
        held += sum(value.nbytes for value in vars(core).values() if isinstance(value, np.ndarray))
        estimate = envs.spec(name).load().state_bytes(core.config, 32)
        assert held / 2 <= estimate <= 2 * held, (name, held, estimate)
