"""Issue 32, item 5: the env and the user-env contract enforced where the user can act on it.

- stepping before ``reset`` (every view) and the single-agent view after its episode ended raise Gymnasium's
  ``ResetNeeded``; the vector view autoresets as before;
- a vector ``reset_mask`` of the wrong shape or dtype is refused in one line;
- ``envs.register`` checks a user core on a probe batch: the docs' ``ShelfCore`` broken on purpose in each hook
  is refused in one line naming the hook, and nothing is registered;
- a fallback returning an action outside the space or still inadmissible is reported as the fallback's fault.
"""

from __future__ import annotations

import dataclasses
import importlib
import re
import sys
import time
import types
from pathlib import Path

import gymnasium
import numpy as np
import pytest
from gymnasium import spaces
from gymnasium.error import ResetNeeded

import envs
from envs import contract
from envs.config import ConfigError, setting
from envs.core import EnvFailure

DOC = Path(__file__).resolve().parents[2] / "docs" / "register-env.md"


def _example_source() -> str:
    after = DOC.read_text().split("<!-- register-example -->", 1)[1]
    return after.split("```python\n", 1)[1].split("\n```", 1)[0]


@pytest.fixture(scope="module")
def shelf():
    """The docs' example module (its ``envs.register("shelf", ...)`` included: the good env passes the probe)."""
    envs.unregister("shelf")
    module = types.ModuleType("shelf_contract_example")
    sys.modules[module.__name__] = module
    exec(compile(_example_source(), str(DOC), "exec"), module.__dict__)
    assert "shelf" in envs.names()
    yield module
    envs.unregister("shelf")
    sys.modules.pop(module.__name__, None)


@pytest.fixture
def registered():
    names = []

    def register(name, entry_point, **kwargs):
        envs.register(name, entry_point, overwrite=True, **kwargs)
        names.append(name)
        return name

    yield register
    for name in names:
        envs.unregister(name)


# ------------------------------------------------------------------ order: reset first, reset after the end


def _step_every_view(name: str):
    """One step before any reset in each of the four views, as a user would call it."""
    single = envs.make(name)
    vector = envs.make_vector(name, 4)
    parallel = envs.make_parallel(name)
    multi = envs.make_multi_agent_vector(name, 4)
    action = single.action_space.sample()
    return [
        ("make", lambda: single.step(action)),
        ("make_vector", lambda: vector.step(np.stack([action] * 4))),
        ("make_parallel", lambda: parallel.step(dict.fromkeys(parallel.possible_agents, action))),
        ("make_multi_agent_vector", lambda: multi.step(np.stack([[action]] * 4))),
        ("make_core", lambda: envs.make_core(name).step(action[None, None])),
    ]


@pytest.mark.parametrize("name", ["portfolio", "speed_limit", "sum_to_zero"])
def test_a_step_before_reset_raises_resetneeded_in_every_view(name):
    for view, step in _step_every_view(name):
        with pytest.raises(ResetNeeded, match=r"step\(\) before .*reset\(\)") as info:
            step()
        assert name in str(info.value) and "\n" not in str(info.value), view


def test_portfolios_step_before_reset_is_the_brief_s_case_word_for_word():
    with pytest.raises(ResetNeeded, match=r"^Cannot call env\.step\(\) before calling env\.reset\(\)"):
        envs.make("portfolio").step([5, 5, 5])
    with pytest.raises(ResetNeeded):
        envs.make_vector("portfolio", 4).step(np.full((4, 3), 5))
    par = envs.make_parallel("portfolio")
    with pytest.raises(ResetNeeded):
        par.step({a: [5, 5, 5] for a in par.possible_agents})


def test_the_accessors_before_reset_raise_resetneeded_too():
    with pytest.raises(ResetNeeded, match=r"action_masks\(\)"):
        envs.make("portfolio").action_masks()
    with pytest.raises(ResetNeeded, match=r"action_masks\(\)"):
        envs.make_vector("speed_limit", 2).action_masks()
    with pytest.raises(ResetNeeded, match=r"admissible_set\(\)"):
        envs.make("sum_to_zero").admissible_set()
    with pytest.raises(ResetNeeded, match=r"action_mask\(\)"):
        envs.make_parallel("portfolio").action_mask("agent_0")


@pytest.mark.parametrize("config, ending", [({"periods": 3}, "terminated"), ({"max_steps": 3}, "was truncated")])
def test_the_single_agent_view_refuses_to_step_an_ended_episode_until_reset(config, ending):
    name = "portfolio" if "periods" in config else "sum_to_zero"
    env = envs.make(name, **config)
    env.reset(seed=0)
    action = np.zeros(env.action_space.shape, env.action_space.dtype) if name == "sum_to_zero" else [5, 5, 5]
    for _ in range(3):
        _, _, terminated, truncated, _ = env.step(action)
    assert terminated or truncated
    with pytest.raises(ResetNeeded, match=f"after the episode {ending}: call env.reset"):
        env.step(action)
    env.reset()
    env.step(action)  # a new episode steps again


def test_the_same_through_gymnasium_make_and_its_wrappers():
    env = gymnasium.make("maskbench/Portfolio-v0", periods=2)
    with pytest.raises(ResetNeeded):
        env.step([5, 5, 5])
    env.reset(seed=0)
    env.step([5, 5, 5])
    _, _, terminated, _, _ = env.step([5, 5, 5])
    assert terminated
    with pytest.raises(ResetNeeded):
        env.step([5, 5, 5])


def test_the_vector_view_still_autoresets_after_an_episode_ends():
    vec = envs.make_vector("portfolio", 2, periods=2)
    vec.reset(seed=0)
    actions = np.full((2, 3), 5)
    for _ in range(2):
        _, _, terminated, _, _ = vec.step(actions)
    assert terminated.all()
    obs, reward, terminated, truncated, _ = vec.step(actions)  # the autoreset step
    assert not terminated.any() and not truncated.any() and (reward == 0).all()
    vec.step(actions)


# ------------------------------------------------------------------ reset_mask


@pytest.mark.parametrize("reset_mask, got", [
    ([True], "shape (1,)"),
    ([1, 0, 1, 0], "dtype int64"),
    (np.ones(4, dtype=np.int8), "dtype int8"),
    (np.ones((4, 1), dtype=bool), "shape (4, 1)"),
    ([True] * 5, "shape (5,)"),
    (True, "shape ()"),
    (None, "dtype object"),
    ("TTTT", "dtype <U4"),
    ([[True], [True, False]], "list"),
])
def test_a_reset_mask_of_the_wrong_shape_or_dtype_is_refused_in_one_line(reset_mask, got):
    vec = envs.make_vector("portfolio", 4)
    for _ in range(2):  # before the first reset and after it
        with pytest.raises(ValueError, match=r"options\['reset_mask'\] must be 4 bools, shape \(4,\)") as info:
            vec.reset(seed=0, options={"reset_mask": reset_mask})
        assert got in str(info.value) and "\n" not in str(info.value)
        vec.reset(seed=0)


def test_a_good_reset_mask_resets_those_entries_and_reseeds_only_them():
    vec = envs.make_vector("portfolio", 4, periods=5)
    first, _ = vec.reset(seed=0)
    vec.step(np.full((4, 3), 6))
    stepped = vec.core.features().copy()
    rngs = list(vec._rngs)
    obs, _ = vec.reset(seed=100, options={"reset_mask": np.array([True, False, True, False])})
    assert vec._rngs[1] is rngs[1] and vec._rngs[3] is rngs[3]  # entries not reset keep their generators
    assert vec._rngs[0] is not rngs[0]
    np.testing.assert_array_equal(obs["observation"][[1, 3]], stepped[[1, 3], 0])
    fresh, _ = envs.make_vector("portfolio", 4, periods=5).reset(seed=100)
    np.testing.assert_array_equal(obs["observation"][[0, 2]], fresh["observation"][[0, 2]])
    vec.reset(options={"reset_mask": [True, True, False, False]})  # a list of bools is fine


# ------------------------------------------------------------------ register probes the core


def _variants(shelf):
    """``(id, class or thing to register, hook named, problem named)``: the docs' ShelfCore broken one way each."""
    Shelf = shelf.ShelfCore

    def sub(**members):
        return type("BrokenShelfCore", (Shelf,), members)

    def step_with(**fields):
        def transition(self, actions):
            result = Shelf.transition(self, actions)
            return dataclasses.replace(result, **{k: f(result) for k, f in fields.items()})
        return sub(transition=transition)

    @dataclasses.dataclass(frozen=True)
    class TightConfig:  # capacity 3: orders of 4 are inadmissible from the first state, so the probe asks the fallback
        capacity: int = setting(3, "shelf capacity")
        days: int = setting(30, "days per episode")

    def tight(**members):
        return sub(Config=TightConfig, **members)

    def with_space(attribute, space):
        def __init__(self, config, num_envs=1, strict=False):
            Shelf.__init__(self, config, num_envs, strict)
            setattr(self, attribute, space)
        return sub(__init__=__init__)

    class NoTransition(envs.EnvCore):  # abstract: transition missing
        Config = shelf.ShelfConfig
        constraints = Shelf.constraints
        reset_envs, features, action_mask, fallback = Shelf.reset_envs, Shelf.features, Shelf.action_mask, \
            Shelf.fallback

    mask = Shelf.action_mask
    return [
        ("mask of 0.5 floats", sub(action_mask=lambda self: mask(self) * 0.5), "action_mask()",
         r"float64 values \(0.5\); expected int8"),
        ("mask with NaN", sub(action_mask=lambda self: np.where(np.arange(5) == 4, np.nan, mask(self))),
         "action_mask()", r"float64 values \(1.0, nan\)"),
        ("mask of bools", sub(action_mask=lambda self: mask(self).astype(bool)), "action_mask()", "bool values"),
        ("mask of 2s", sub(action_mask=lambda self: mask(self) * 2), "action_mask()",
         "values 2; a mask holds 0 and 1 only"),
        ("mask of the wrong length", sub(action_mask=lambda self: mask(self)[..., :3]), "action_mask()",
         r"shape \(2, 1, 3\); expected int8 numpy array of shape \(2, 1, 5\)"),
        ("mask without the agent axis", sub(action_mask=lambda self: mask(self)[:, 0]), "action_mask()",
         r"shape \(2, 5\)"),
        ("mask None", sub(action_mask=lambda self: None), "action_mask()", "NoneType None"),
        ("mask a list", sub(action_mask=lambda self: mask(self).tolist()), "action_mask()", "returned list"),
        ("features of the wrong shape", sub(features=lambda self: Shelf.features(self)[..., :1]), "features()",
         r"shape \(2, 1, 1\); expected float32 numpy array of shape \(2, 1, 2\)"),
        ("features with NaN", sub(features=lambda self: Shelf.features(self) * np.float32(np.nan)), "features()",
         "non-finite values"),
        ("features of float64", sub(features=lambda self: Shelf.features(self).astype(np.float64)), "features()",
         r"float64 values \(.*\); expected float32"),
        ("rewards of the wrong shape", step_with(reward=lambda r: r.reward[:, 0]), "transition()'s reward",
         r"shape \(2,\); expected a real numpy array of shape \(2, 1\)"),
        ("rewards as strings", step_with(reward=lambda r: r.reward.astype(str)), "transition()'s reward",
         "<U32 values"),
        ("rewards with NaN", step_with(reward=lambda r: r.reward * np.nan), "transition()'s reward", "non-finite"),
        ("terminated of the wrong shape", step_with(terminated=lambda r: r.terminated[:, 0]),
         "transition()'s terminated", r"shape \(2,\)"),
        ("truncated of floats", step_with(truncated=lambda r: r.truncated.astype(float)),
         "transition()'s truncated", r"float64 values \(0.0\); expected bool"),
        ("info of the wrong shape", step_with(info=lambda r: {"sold": np.zeros(2)}), "transition()'s info['sold']",
         r"shape \(2,\)"),
        ("transition returning a tuple",
         sub(transition=lambda self, a: tuple(vars(Shelf.transition(self, a)).values())), "transition()",
         "returned tuple"),
        ("a Text action space", with_space("action_space", spaces.Text(5)), "action_space", "got Text"),
        ("a Discrete feature space", with_space("feature_space", spaces.Discrete(3)), "feature_space",
         "must be a gymnasium Box"),
        ("Config None", sub(Config=None), "Config", "must be a dataclass class .*; got NoneType None"),
        ("Config a dict", sub(Config={"capacity": 8, "days": 30}), "Config", "got dict"),
        ("EnvCore itself", envs.EnvCore, "EnvCore", "base class"),
        ("an abstract subclass", NoTransition, "NoTransition", "does not implement transition"),
        ("reset_envs leaving no state", sub(reset_envs=lambda self, ids, rngs: None), "reset_envs()",
         "left self.state None"),
        ("reset_envs raising", sub(reset_envs=lambda self, ids, rngs: {}["stock"]), "reset_envs()",
         "raised KeyError"),
        ("episode_metrics nobody provides", sub(episode_metrics=("revenue",)), "episode_metrics", "'revenue'"),
        ("fallback out of range", tight(fallback=lambda self, a, bad: np.where(bad, 7, a)), "fallback()",
         r"returned \[7\] .* in place of the inadmissible \[\d\]: outside the action space Discrete\(5\)"),
        ("fallback still inadmissible", tight(fallback=lambda self, a, bad: a), "fallback()",
         r"returned \[(\d)\] .* in place of the inadmissible \[\1\]: still inadmissible under the action mask"),
        ("fallback a list", tight(fallback=lambda self, a, bad: a.tolist()), "fallback()", "returned list"),
        ("fallback raising", tight(fallback=lambda self, a, bad: 1 / 0), "fallback()", "raised ZeroDivisionError"),
        ("transition raising", sub(transition=lambda self, a: self.state["no such key"]), "transition()",
         "raised KeyError: 'no such key' on the probe core"),
    ]


VARIANT_IDS = [
    "mask of 0.5 floats", "mask with NaN", "mask of bools", "mask of 2s", "mask of the wrong length",
    "mask without the agent axis", "mask None", "mask a list", "features of the wrong shape", "features with NaN",
    "features of float64", "rewards of the wrong shape", "rewards as strings", "rewards with NaN",
    "terminated of the wrong shape", "truncated of floats", "info of the wrong shape", "transition returning a tuple",
    "a Text action space", "a Discrete feature space", "Config None", "Config a dict", "EnvCore itself",
    "an abstract subclass", "reset_envs leaving no state", "reset_envs raising", "episode_metrics nobody provides",
    "fallback out of range", "fallback still inadmissible", "fallback a list", "fallback raising",
    "transition raising",
]


@pytest.mark.parametrize("variant", VARIANT_IDS)
def test_register_refuses_a_broken_core_in_one_line_naming_the_hook(shelf, variant):
    found = {v[0]: v[1:] for v in _variants(shelf)}
    assert set(found) == set(VARIANT_IDS)
    core_cls, hook, problem = found[variant]
    with pytest.raises(envs.EnvContractError) as info:
        envs.register("broken_shelf", core_cls)
    message = str(info.value)
    assert message.startswith("env 'broken_shelf': ") and "\n" not in message, message
    assert hook in message and re.search(problem, message), message
    assert isinstance(info.value, ConfigError) and isinstance(info.value, TypeError)  # one line on the CLIs, status 2
    assert "broken_shelf" not in envs.names()


def test_the_good_example_and_its_subclasses_register_and_a_class_is_probed_once(shelf, registered, monkeypatch):
    calls = []
    monkeypatch.setattr(shelf.ShelfCore, "reset_envs",
                        lambda self, ids, rngs, _f=shelf.ShelfCore.reset_envs: (calls.append(1), _f(self, ids, rngs)))
    contract._CHECKED.discard(shelf.ShelfCore)
    registered("shelf_again", shelf.ShelfCore)
    registered("shelf_once_more", shelf.ShelfCore)
    assert len(calls) == 1  # the second registration of the class does not probe again
    env = envs.make("shelf_again", capacity=3)
    env.reset(seed=0)
    env.step(4)  # inadmissible: the example's fallback orders nothing
    assert env.step(0)[4]["invalid_actions"] == 0


def test_a_string_entry_point_is_probed_when_it_can_be_imported(shelf, registered, tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(tmp_path))
    broken = _example_source().replace('envs.register("shelf", ShelfCore, description="restock a shelf without '
                                       'overfilling it")', "")
    broken = broken.replace("return (self.state", "return 0.5 * (self.state")  # the mask as floats
    assert broken != _example_source()
    (tmp_path / "contract_shelf_now.py").write_text(broken)
    with pytest.raises(envs.EnvContractError, match=r"env 'shelf_str': action_mask\(\) returned float64 values"):
        envs.register("shelf_str", "contract_shelf_now:ShelfCore")
    assert "shelf_str" not in envs.names()
    # not importable yet: registered, and probed when first loaded
    registered("shelf_later", "contract_shelf_later:ShelfCore")
    (tmp_path / "contract_shelf_later.py").write_text(broken)
    importlib.invalidate_caches()
    try:
        with pytest.raises(envs.EnvContractError, match=r"env 'shelf_later': action_mask\(\) returned float64"):
            envs.make("shelf_later")
        assert envs.gymnasium_id("shelf_later") is None
    finally:
        sys.modules.pop("contract_shelf_now", None)
        sys.modules.pop("contract_shelf_later", None)


def test_the_built_in_cores_pass_the_probe_in_milliseconds():
    classes = [envs.spec(name).load() for name in ("portfolio", "speed_limit", "sum_to_zero")]
    try:
        for core_cls in classes:
            contract._CHECKED.discard(core_cls)
        started = time.perf_counter()
        for core_cls, name in zip(classes, ("portfolio", "speed_limit", "sum_to_zero")):
            contract.check_core(core_cls, name)
        seconds = time.perf_counter() - started
    finally:
        contract._CHECKED.update(classes)
    assert seconds < 0.25, f"probing the three built-in cores took {seconds:.3f} s"


# ------------------------------------------------------------------ the fallback's fault is the fallback's


def _fallback_env(shelf, registered, fallback):
    core_cls = type("FallbackShelfCore", (shelf.ShelfCore,), {"fallback": fallback})
    return registered("fallback_shelf", core_cls)  # capacity 8 by default: the probe never needs the fallback


@pytest.mark.parametrize("fallback, message", [
    (lambda self, a, bad: np.where(bad, 7, a),
     r"^env 'fallback_shelf': fallback\(\) returned \[7\] for agent shop_0 in place of the inadmissible \[4\]: "
     r"outside the action space Discrete\(5\) \(a fallback must return admissible actions\)$"),
    (lambda self, a, bad: np.where(bad, -1, a), r"returned \[-1\] .*outside the action space"),
    (lambda self, a, bad: np.where(bad, 3.5, a), r"returned \[3.5\] .*outside the action space"),
    (lambda self, a, bad: a, r"returned \[4\] for agent shop_0 in place of the inadmissible \[4\]: still inadmissible"),
    (lambda self, a, bad: None, r"fallback\(\) returned NoneType None; expected the actions it was given"),
    (lambda self, a, bad: a[..., 0], r"fallback\(\) returned a int64 array of shape \(1, 1\)"),
], ids=["7 of Discrete(5)", "-1", "3.5", "the inadmissible action itself", "None", "the wrong shape"])
def test_a_fallback_returning_a_bad_action_is_reported_as_the_fallbacks_fault(shelf, registered, fallback, message):
    name = _fallback_env(shelf, registered, fallback)
    env = envs.make(name, capacity=3)
    env.reset(seed=0)
    with pytest.raises(EnvFailure, match=message) as info:
        env.step(4)  # 0 + 4 > 3: inadmissible
    assert "\n" not in str(info.value) and "nothing admissible" not in str(info.value)
    vec = envs.make_vector(name, 3, capacity=3)
    vec.reset(seed=0)
    with pytest.raises(EnvFailure, match=r"^env 'fallback_shelf': fallback\(\) returned "):
        vec.step(np.array([0, 4, 0]))


def test_an_empty_mask_stays_the_masks_fault_not_the_fallbacks(shelf, registered):
    """A mask leaving nothing admissible is reported where an agent must act (as before), not blamed on the fallback."""
    def action_mask(self):
        mask = shelf.ShelfCore.action_mask(self)
        mask[self.state["day"] >= 1] = 0
        return mask

    name = registered("empty_shelf", type("EmptyShelfCore", (shelf.ShelfCore,), {"action_mask": action_mask}))
    core = envs.make_core(name, 2)
    core.reset(np.arange(2), [np.random.default_rng(i) for i in range(2)])
    core.step(np.zeros((2, 1, 1), dtype=np.int64))
    core.step(np.zeros((2, 1, 1), dtype=np.int64))  # every action inadmissible, the fallback's 0 too: no blame
    env = envs.make(name)
    env.reset(seed=0)
    with pytest.raises(EnvFailure, match="nothing admissible"):
        env.step(0)


def test_builtin_fallbacks_pass_the_check_on_random_actions():
    """Random (mostly inadmissible) actions through every built-in env: the fallbacks are admissible."""
    for name in ("portfolio", "speed_limit", "sum_to_zero"):
        vec = envs.make_vector(name, 16)
        vec.reset(seed=0)
        vec.action_space.seed(0)
        invalid = 0
        for _ in range(50):
            _, _, _, _, info = vec.step(vec.action_space.sample())
            invalid += int(info["invalid_actions"].sum())
        assert invalid > 0, name
