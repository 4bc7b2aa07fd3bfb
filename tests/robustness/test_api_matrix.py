"""Every Python-API input checked where the user passes it, as a matrix (issue 32, item 7: the survey's API area).

Generated from the envs and the run request themselves: every config key of every built-in env given values of
the wrong kind through ``envs.make``/``make_vector``/``make_parallel``; unknown keys; batch sizes that are no
count; actions of the wrong shape, kind or range in every view; stepping before ``reset``; ``reset`` options of
the wrong shape; ``runner.RunRequest.build`` with counts, seeds, names and configs that are no such thing. Each
case must raise an error the user can act on, in one line naming what was wrong: ``ValueError`` (the suite's
``ConfigError`` is one), ``TypeError`` or Gymnasium's ``ResetNeeded``, never an ``AttributeError``,
``IndexError`` or numpy's shape errors from deep inside, and never succeed silently.

``tests/envs/test_contract_enforced.py`` (a user's broken env core, 62 cases) is the other half of the area.
"""

from __future__ import annotations

import dataclasses
import typing

import numpy as np
import pytest
from gymnasium.error import ResetNeeded

import envs
from suite import runner

ENVS = ("portfolio", "speed_limit", "sum_to_zero", "job_shop")
USER_ERRORS = (ValueError, TypeError, ResetNeeded)


def _bad_python_values(annotation: str) -> list:
    if annotation == "<class 'bool'>":
        return ["abc", 2, None, [True]]
    if annotation == "<class 'int'>":
        return ["abc", 1.5, None, float("nan"), [1], True]
    if annotation == "<class 'float'>":
        return ["abc", None, float("nan"), [1.0], {}]
    if annotation == "<class 'str'>":
        return ["no-such-value-xyz", 5, None]
    if "tuple[int" in annotation:
        return ["abc", [1.5], None, 7.5]
    return ["abc", [float("nan")], None, ["x"]]


def config_cases() -> list[tuple[str, str, object]]:
    cases = []
    for env in ENVS:
        config_class = envs.spec(env).load().Config
        hints = typing.get_type_hints(config_class)
        for field in dataclasses.fields(config_class):
            cases += [(env, field.name, value) for value in _bad_python_values(str(hints[field.name]))]
    return cases


CONFIG_CASES = config_cases()


def _one_line_user_error(call) -> BaseException:
    with pytest.raises(Exception) as caught:
        call()
    error = caught.value
    assert isinstance(error, USER_ERRORS), f"{type(error).__name__}: {error}"
    message = str(error)
    assert message.strip() and "\n" not in message.strip(), message
    return error


@pytest.mark.parametrize("env, key, value", CONFIG_CASES,
                         ids=[f"{env}-{key}-{value!r}"[:60] for env, key, value in CONFIG_CASES])
def test_a_bad_config_value_is_one_line_naming_the_key(env, key, value):
    error = _one_line_user_error(lambda: envs.make(env, **{key: value}))
    assert key in str(error), error


MAKERS = {
    "make": lambda env, **kw: envs.make(env, **kw),
    "make_vector": lambda env, **kw: envs.make_vector(env, 3, **kw),
    "make_parallel": lambda env, **kw: envs.make_parallel(env, **kw),
}


@pytest.mark.parametrize("maker", MAKERS)
@pytest.mark.parametrize("env", ENVS)
@pytest.mark.parametrize("key", ["no_such_key", "Start_Cash", ""])
def test_an_unknown_config_key_is_refused(maker, env, key):
    error = _one_line_user_error(lambda: MAKERS[maker](env, **{key: 1}))
    assert repr(key) in str(error) or key in str(error), error


@pytest.mark.parametrize("env", ENVS)
@pytest.mark.parametrize("num_envs", [0, -1, 1.5, "4", None, True, 10**15])
def test_a_batch_size_that_is_no_count_is_refused(env, num_envs):
    _one_line_user_error(lambda: envs.make_vector(env, num_envs))


@pytest.mark.parametrize("name", ["", "nope", "PORTFOLIO", "portfolio-zz", None, 5])
def test_an_unknown_env_name_is_refused(name):
    _one_line_user_error(lambda: envs.make(name))


def _bad_actions(env: str) -> list:
    core = envs.make_core(env, 1)
    if core.discrete:
        nvec = np.asarray(core.nvec)
        return [np.asarray(nvec) + 5, [-1] * len(nvec), [0] * (len(nvec) + 1), "abc", None,
                np.full(len(nvec), 0.5), [[0] * len(nvec)] * 2]
    shape = core.action_space.shape
    return [np.full(shape, np.nan), np.zeros(shape[-1] + 1), "abc", None, np.full(shape, np.inf),
            np.zeros((2, *shape))]


ACTION_CASES = [(env, index) for env in ENVS for index in range(len(_bad_actions(env)))]


@pytest.mark.parametrize("env, index", ACTION_CASES)
def test_an_action_outside_the_space_is_one_line(env, index):
    view = envs.make(env)
    view.reset(seed=0)
    _one_line_user_error(lambda: view.step(_bad_actions(env)[index]))


def _bad_batched_actions(env: str) -> list:
    """Bad actions for a vector view of 2 entries (a batch of 3, or of 2 single actions each outside the space)."""
    core = envs.make_core(env, 1)
    if core.discrete:
        n = len(core.nvec)
        return [np.stack([np.asarray(core.nvec) + 5] * 2), np.full((2, n), -1), np.zeros((3, n), int),
                np.zeros((2, n + 1), int), "abc", None, np.full((2, n), 0.5)]
    shape = core.action_space.shape
    return [np.full((2, *shape), np.nan), np.zeros((2, shape[-1] + 1)), "abc", None, np.full((2, *shape), np.inf),
            np.zeros((3, *shape))]


BATCHED_CASES = [(env, index) for env in ENVS for index in range(len(_bad_batched_actions(env)))]


@pytest.mark.parametrize("env, index", BATCHED_CASES)
def test_an_action_outside_the_space_in_the_vector_view_is_one_line(env, index):
    vector = envs.make_vector(env, 2)
    vector.reset(seed=0)
    _one_line_user_error(lambda: vector.step(_bad_batched_actions(env)[index]))


@pytest.mark.parametrize("env", ENVS)
@pytest.mark.parametrize("view", ["make", "make_vector", "make_parallel"])
def test_stepping_before_reset_is_reset_needed(env, view):
    made = MAKERS[view](env)
    if view == "make_parallel":
        action = {agent: made.action_space(agent).sample() for agent in made.possible_agents}
    elif view == "make_vector":
        action = made.action_space.sample()
    else:
        action = made.action_space.sample()
    with pytest.raises(ResetNeeded):
        made.step(action)


@pytest.mark.parametrize("env", ENVS)
@pytest.mark.parametrize("reset_mask", [[True], [True] * 5, [[True, False, True]], [1, 0, 1], ["a", "b", "c"]])
def test_a_reset_mask_of_the_wrong_shape_or_kind_is_refused(env, reset_mask):
    vector = envs.make_vector(env, 3)
    vector.reset(seed=0)
    _one_line_user_error(lambda: vector.reset(options={"reset_mask": np.asarray(reset_mask)}))


BUILD = {"env": "portfolio", "algo": "random_valid", "seed": 0}
BUILD_CASES = [
    *({"steps": v} for v in (-5, 0, "abc", 1.5, True, float("nan"), 2**64)),
    *({"episodes": v} for v in (0, -3, "x", 2.5, None, True)),
    *({"seed": v} for v in (-1, "a", 1.5, None, 2**64)),
    *({"env": v} for v in ("", "nope", None, 3)),
    *({"algo": v} for v in ("", "nope", None, "masked_ppo,random_valid")),
    *({"env_config": v} for v in ({"no_such_key": 1}, {"start_cash": "abc"}, {"periods": -2}, {"start_cash": 1e308})),
    *({"algo_config": v} for v in ({"no_such_key": 1}, {"num_envs": 0}, {"steps_per_iteration": "x"})),
    *({"out": v} for v in ("", "   ")),
    *({"eval_mask_noise": v} for v in ((-0.5,), (1.5,), (float("nan"),))),
]


@pytest.mark.parametrize("change", BUILD_CASES, ids=[repr(c)[:50] for c in BUILD_CASES])
def test_run_request_build_refuses_what_execute_could_not_run(tmp_path, change):
    arguments = {**BUILD, "out": tmp_path / "out", **change}
    env, algo, seed = arguments.pop("env"), arguments.pop("algo"), arguments.pop("seed")
    _one_line_user_error(lambda: runner.RunRequest.build(env, algo, seed, **arguments))
    assert not (tmp_path / "out").exists()

