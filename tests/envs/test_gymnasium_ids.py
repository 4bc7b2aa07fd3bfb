"""Gymnasium ids: every env and level reached the way Gymnasium users reach an env (``gymnasium.make``,
``gymnasium.make_vec``, ``env.spec``, ``check_env``), and a user's env gets an id when it is registered."""

import os
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import gymnasium
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import envs

ROOT = Path(__file__).resolve().parents[2]


def test_every_env_and_level_has_a_versioned_id_in_the_maskbench_namespace():
    ids = {name: envs.gymnasium_id(name) for name in envs.names()}
    assert ids["portfolio"] == "maskbench/Portfolio-v0"
    assert ids["speed_limit-m"] == "maskbench/SpeedLimit-M-v0"
    assert ids["sum_to_zero-l"] == "maskbench/SumToZero-L-v0"
    for name, env_id in ids.items():
        assert gymnasium.spec(env_id).kwargs == {"name": name, "gymnasium_id": env_id}
        assert gymnasium.spec(env_id).version == envs.spec(name).load().version
    assert len(set(ids.values())) == len(ids)


@pytest.mark.parametrize("name", envs.names())
def test_gymnasium_make_gives_the_env_with_its_spec_and_masked_random_play_is_admissible(name):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # gymnasium.make's passive checker has nothing to say
        env = gymnasium.make(envs.gymnasium_id(name))
        obs, _ = env.reset(seed=0)
        assert env.spec.id == envs.gymnasium_id(name)
        assert isinstance(env.unwrapped, envs.make(name).__class__)
        for _ in range(20):
            if env.unwrapped.core.discrete:
                mask = env.unwrapped.action_masks()
                assert mask.dtype == np.int8 and np.array_equal(mask, obs["action_mask"])
                action = env.action_space.sample(mask=mask)
            else:
                action = env.unwrapped.admissible_set().sample(np.random.default_rng(0))
            obs, _, terminated, truncated, info = env.step(action)
            assert info["invalid_actions"] == 0
            if terminated or truncated:
                obs, _ = env.reset()


@pytest.mark.parametrize("env_id", ["maskbench/Portfolio-v0", "maskbench/SpeedLimit-v0", "maskbench/SumToZero-v0"])
def test_check_env_passes_on_the_made_env(env_id):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check_env(gymnasium.make(env_id).unwrapped)


def test_make_vec_with_the_vector_entry_point_is_the_natively_batched_env():
    vec = gymnasium.make_vec("maskbench/SpeedLimit-v0", 16, vectorization_mode="vector_entry_point", road_length=50)
    assert isinstance(vec, envs.make_vector("speed_limit", 2).__class__)
    assert vec.num_envs == 16 and vec.unwrapped.core.config.road_length == 50
    obs, _ = vec.reset(seed=0)
    masks = vec.action_masks()
    assert masks.dtype == np.int8 and masks.shape == (16, 10)
    actions = np.array([np.flatnonzero(row)[-1] for row in masks])
    _, _, _, _, info = vec.step(actions)
    assert not info["invalid_actions"].any()


def test_the_spec_of_a_configured_env_makes_the_same_env_again():
    env = envs.make("portfolio", n_assets=5, periods=7)
    assert env.spec.id == "maskbench/Portfolio-v0"
    again = gymnasium.make(env.spec)
    assert again.unwrapped.core.config == env.core.config
    assert envs.make_vector("portfolio", 3, n_assets=5).spec.kwargs == {"name": "portfolio", "n_assets": 5,
                                                                         "gymnasium_id": "maskbench/Portfolio-v0"}


@pytest.mark.parametrize("make", [
    lambda **kw: gymnasium.make("maskbench/Portfolio-v0", **kw),
    lambda **kw: gymnasium.make_vec("maskbench/Portfolio-v0", 2, vectorization_mode="vector_entry_point", **kw),
    lambda **kw: gymnasium.make_vec("maskbench/Portfolio-v0", 2, vectorization_mode="sync", **kw),
], ids=["make", "make_vec", "make_vec sync"])
def test_a_name_that_is_not_the_ids_env_is_refused(make):
    with pytest.raises(envs.ConfigError, match=r"maskbench/Portfolio-v0 is the env 'portfolio'; name='speed_limit' "
                                               r"names another env \(maskbench/SpeedLimit-v0\)"):
        make(name="speed_limit")
    with pytest.raises(envs.ConfigError, match="name='nope' names no env of that id"):
        make(name="nope")
    make(name="portfolio").close()  # the id's own name is no conflict
    with pytest.raises(envs.ConfigError, match="no Gymnasium id of a registered env"):
        envs.make("portfolio", gymnasium_id="maskbench/Nothing-v0")


def test_a_users_env_gets_an_id_when_registered_and_loses_it_when_unregistered():
    envs.register("my_cars", "envs.speed_limit:SpeedLimitCore", description="a user's env")
    try:
        assert envs.gymnasium_id("my_cars") == "maskbench/MyCars-v0"
        env = gymnasium.make("maskbench/MyCars-v0", max_steps=30)
        env.reset(seed=1)
        assert env.unwrapped.core.config.max_steps == 30
    finally:
        envs.unregister("my_cars")
    assert "maskbench/MyCars-v0" not in gymnasium.registry
    with pytest.raises(gymnasium.error.Error):
        gymnasium.make("maskbench/MyCars-v0")


def _fresh_python(code: str, cwd: Path) -> subprocess.CompletedProcess:
    """``python -c code`` in a new interpreter run from ``cwd`` (first on its path, as for any user), the project
    importable as when installed."""
    environment = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    return subprocess.run([sys.executable, "-c", code], cwd=cwd, env=environment, capture_output=True, text=True,
                          timeout=300)


@pytest.mark.parametrize("own_envs", [False, True], ids=["plain folder", "folder with its own envs package"])
def test_the_maskbench_prefix_makes_an_env_in_a_fresh_interpreter(tmp_path, own_envs):
    """``gymnasium.make("maskbench:...")`` imports ``maskbench``, which registers the ids; a user's own ``envs``
    package in the folder (first on ``sys.path``) stays theirs and does not hide the suite's."""
    if own_envs:
        (tmp_path / "envs").mkdir()
        (tmp_path / "envs" / "__init__.py").write_text("WHOSE = 'the user'\n")
    code = textwrap.dedent("""
        import gymnasium
        env = gymnasium.make("maskbench:maskbench/Portfolio-v0")
        env.reset(seed=0)
        _, _, _, _, info = env.step(env.action_space.sample(mask=env.unwrapped.action_masks()))
        assert info["invalid_actions"] == 0, info
        vec = gymnasium.make_vec("maskbench/SpeedLimit-v0", 3, vectorization_mode="vector_entry_point")
        vec.reset(seed=0)
        import envs
        print(getattr(envs, "WHOSE", "the suite"), type(env.unwrapped).__module__)
    """)
    done = _fresh_python(code, tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == (["the", "user", "maskbench.envs.views"] if own_envs else
                                   ["the", "suite", "envs.views"])


def test_maskbench_is_the_envs_package_where_envs_is_the_suites():
    import maskbench

    assert maskbench.envs is envs and maskbench.make is envs.make
    assert set(maskbench.__all__) == {"envs", *envs.__all__}


@pytest.mark.parametrize("ask, says", [
    (lambda: gymnasium.make("maskbench/SumToZero-v0").unwrapped.action_masks(), "continuous action space"),
    (lambda: envs.make_vector("sum_to_zero", 2).action_masks(), "continuous action space"),
    (lambda: envs.make_parallel("sum_to_zero").action_mask("agent_0"), "continuous action space"),
    (lambda: gymnasium.make("maskbench/Portfolio-v0").unwrapped.admissible_set(), "discrete action space"),
    (lambda: envs.make_vector("speed_limit", 2).admissible_set(), "discrete action space"),
], ids=["box make", "box vector", "box parallel", "discrete make", "discrete vector"])
def test_asking_an_env_for_the_other_kinds_admissible_actions_says_what_it_has(ask, says):
    """Before a reset too: the kind of action space is known at once."""
    with pytest.raises(NotImplementedError, match=f"has a {says} .*: no (action mask|admissible set); its "
                                                  "admissible (set|actions) (is|are) "):
        ask()


def test_torchrls_gym_env_makes_and_steps_an_env_by_its_id():
    """TorchRL's GymEnv probes frameskip= and drops it on Python's TypeError words (an unknown keyword is one)."""
    torchrl_gym = pytest.importorskip("torchrl.envs.libs.gym", reason="TorchRL is not installed (pip install torchrl: "
                                                                      "it keeps torch==2.13.0)")
    env = torchrl_gym.GymEnv("maskbench/SpeedLimit-v0")
    rollout = env.rollout(5)
    assert rollout["action_mask"].shape == (5, 10) and rollout["next", "reward"].shape == (5, 1)
