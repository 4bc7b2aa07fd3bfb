"""Renders (``render_mode="ansi"`` everywhere, ``"rgb_array"`` for the road) and the PettingZoo tools
researchers run on a multi-agent env (its API tests, ``performance_benchmark``, a global ``state()``,
SuperSuit's vector env), used as their users use them."""

import re
import warnings

import gymnasium
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env
from pettingzoo.test import api_test, parallel_api_test, performance_benchmark, render_test
from pettingzoo.utils.conversions import parallel_to_aec

import envs
from envs.masking import sample_masked


def step_randomly(env, steps=3):
    for _ in range(steps):
        if env.unwrapped.core.discrete:
            action = env.action_space.sample(mask=env.unwrapped.action_masks())
        else:
            action = env.unwrapped.admissible_set().sample(np.random.default_rng(0))
        env.step(action)


@pytest.mark.parametrize("name", envs.names())
def test_every_env_and_level_renders_its_state_as_text(name):
    env = envs.make(name, render_mode="ansi")
    assert "ansi" in env.metadata["render_modes"]
    env.reset(seed=0)
    step_randomly(env)
    text = env.render()
    assert isinstance(text, str) and text.count("\n") >= 1
    family = envs.spec(name).family
    expected = {"portfolio": r"period 3/\d+ +prices .*\ntrader_0: cash \$[\d,.]+ +held .* value \$",
                "speed_limit": r"step 3 +road \|[rua0]+\| .*\ncar_0: cell \d+/\d+ +speed \d+",
                "sum_to_zero": r"step 3/\d+ +demand +[\d. ]+.*\nallocator_0: weights [\d. ]+",
                "job_shop": r"step 3/\d+ +makespan so far \d+ +lower bound \d+\nmachine 0: "}[family]
    assert re.search(expected, text), text


def test_the_road_is_drawn_with_the_car_where_it_stands():
    env = envs.make("speed_limit", render_mode="rgb_array", road_length=100)
    assert env.metadata["render_modes"] == ["ansi", "human", "rgb_array"]
    env.reset(seed=0)
    env.step(2)
    env.step(3)
    image = env.render()
    assert image.dtype == np.uint8 and image.shape == (20, 800, 3)
    cell = int(env.unwrapped.core.state.position[0, 0])
    red = np.flatnonzero((image[15] == (200, 30, 30)).all(axis=-1))  # the car's lane
    assert red.min() == 8 * cell and red.max() == 8 * cell + 7


def test_render_modes_an_env_does_not_offer_are_one_line():
    with pytest.raises(envs.ConfigError, match=r"render_mode 'rgb_array' is not offered; accepted: ansi, human "
                                               r"\(or None\)"):
        envs.make("portfolio", render_mode="rgb_array")
    assert envs.make("portfolio").render() is None  # no mode: nothing drawn, as Gymnasium specifies


@pytest.mark.parametrize("env_id", ["maskbench/Portfolio-v0", "maskbench/SpeedLimit-v0", "maskbench/SumToZero-v0"])
def test_check_env_checks_every_render_mode_through_the_spec(env_id):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        env = gymnasium.make(env_id, render_mode="ansi")
        check_env(env.unwrapped)  # with a spec, check_env also makes the env in each of its render modes


@pytest.mark.parametrize("name, n_agents", [("portfolio", 3), ("speed_limit", 3), ("speed_limit", 1)])
def test_the_pettingzoo_view_renders_and_has_a_global_state(name, n_agents):
    env = envs.make_parallel(name, n_agents=n_agents, render_mode="ansi")
    assert env.render_mode == "ansi"
    env.reset(seed=0)
    assert env.render().count("\n") == n_agents  # a headline, then a line per agent
    state = env.state()
    assert env.state_space.contains(state) and state.shape == (n_agents * env.core.feature_space.shape[0],)
    np.testing.assert_array_equal(state, np.concatenate([env.core.features()[0, i] for i in range(n_agents)]))


@pytest.mark.parametrize("name, n_agents", [("portfolio", 2), ("speed_limit", 3), ("sum_to_zero", 1)])
def test_pettingzoos_api_tests_pass_on_both_apis(name, n_agents):
    parallel_api_test(envs.make_parallel(name, n_agents=n_agents), num_cycles=60)
    api_test(parallel_to_aec(envs.make_parallel(name, n_agents=n_agents)), num_cycles=60)


@pytest.mark.parametrize("name, n_agents", [("portfolio", 2), ("speed_limit", 3), ("sum_to_zero", 1)])
def test_pettingzoos_render_test_passes_in_every_mode(capsys, name, n_agents):
    """PettingZoo's render_test makes the env with render_mode="human" first, then in each declared mode."""
    render_test(lambda render_mode=None: parallel_to_aec(envs.make_parallel(name, n_agents=n_agents,
                                                                            render_mode=render_mode)))
    assert f"{envs.make_core(name).agent_prefix}_0" in capsys.readouterr().out  # "human" printed the state


def test_human_mode_prints_the_state_after_every_reset_and_step(capsys):
    env = envs.make("speed_limit", render_mode="human")
    env.reset(seed=0)
    env.step(1)
    assert env.render() is None
    printed = capsys.readouterr().out
    assert printed.count("car_0: cell") == 3 and printed.startswith("step 0")


def test_pettingzoos_performance_benchmark_runs_on_a_discrete_action_env(capsys):
    performance_benchmark(parallel_to_aec(envs.make_parallel("speed_limit", n_agents=3)))
    assert "cycles per second" in capsys.readouterr().out


def test_a_single_index_for_a_multi_discrete_action_is_refused_in_one_line():
    """PettingZoo's performance_benchmark draws one index from the flat mask, an action of a Discrete space
    only: on portfolio (MultiDiscrete) the env says what it accepts."""
    with pytest.raises(ValueError, match=r"agent 'trader_0': an action of MultiDiscrete\(\[11 11 11\]\) has shape "
                                         r"\(3,\); got \d+ \(one index into the flat mask is an action of a "
                                         r"Discrete space only\)"):
        performance_benchmark(parallel_to_aec(envs.make_parallel("portfolio", n_agents=2)))


def test_sum_to_zero_says_it_has_one_agent():
    with pytest.raises(envs.ConfigError, match="config key 'n_agents' must be 1; got 2"):
        envs.make_parallel("sum_to_zero", n_agents=2)


def test_supersuits_vector_env_steps_the_traders():
    supersuit = pytest.importorskip("supersuit", reason="the test extra installs SuperSuit")
    vec = supersuit.pettingzoo_env_to_vec_env_v1(envs.make_parallel("portfolio", n_agents=2))
    obs, _ = vec.reset(seed=0)
    assert vec.num_envs == 2 and obs["action_mask"].shape == (2, 33)
    masks = obs["action_mask"].reshape(2, 3, 11)
    actions = np.array([[np.flatnonzero(block)[0] for block in agent] for agent in masks])
    _, rewards, _, _, infos = vec.step(actions)
    assert rewards.shape == (2,) and all(info["invalid_actions"] == 0 for info in infos)


def test_supersuits_vector_env_plays_cars_that_leave_the_road_at_different_steps_with_black_death():
    """SuperSuit's pettingzoo_env_to_vec_env_v1 needs every agent in every step until the episode ends: cars that
    reach the end of the road before the others make it assert; with black_death=True they stay in the episode,
    idle (zero features, everything admitted, reward 0), until the last one arrives."""
    supersuit = pytest.importorskip("supersuit", reason="the test extra installs SuperSuit")

    def play(vec, steps):
        obs, _ = vec.reset(seed=0)
        rng = np.random.default_rng(0)
        staggered = episodes = 0
        for _ in range(steps):
            obs, rewards, terminated, truncated, infos = vec.step(sample_masked(rng, obs["action_mask"], [10])[:, 0])
            assert all(info["invalid_actions"] == 0 for info in infos)
            idle = obs["action_mask"].all(axis=1) & ~obs["observation"].any(axis=1)
            staggered += bool(idle.any() and not idle.all())
            assert not (idle & (rewards != 0)).any()
            ended = terminated | truncated
            assert ended.all() or not ended.any()  # the episode ends for all cars together
            episodes += bool(ended.all())
        return staggered, episodes

    with pytest.raises(AssertionError, match="unless black_death is set to True"):
        play(supersuit.pettingzoo_env_to_vec_env_v1(envs.make_parallel("speed_limit", n_agents=3)), 300)
    staggered, episodes = play(supersuit.pettingzoo_env_to_vec_env_v1(
        envs.make_parallel("speed_limit", n_agents=3, black_death=True)), 300)
    assert staggered > 0 and episodes >= 2  # cars did leave before others, across several episodes


@pytest.mark.parametrize("name, n_agents", [("speed_limit", 3), ("portfolio", 2)])
def test_pettingzoos_api_test_passes_with_black_death(name, n_agents):
    parallel_api_test(envs.make_parallel(name, n_agents=n_agents, black_death=True), num_cycles=200)
