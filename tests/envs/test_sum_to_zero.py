"""The sum-to-zero env: the checker, the oracle's optimality, fallback and strict mode, the reward,
the simplex invariant, the question's normalisation, config errors, and the runner."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import envs
from envs.config import ConfigError
from suite import check, run
from suite.cli import run_cli


def play(name_or_core, policy, seed, episodes=64, **config):
    """Mean return of ``policy(core) -> (N, n)`` over ``episodes`` episodes on env seeds seed, seed + 1, ..."""
    vec = envs.make_vector("sum_to_zero", episodes, **config)
    vec.reset(seed=seed)
    total = np.zeros(episodes)
    for _ in range(vec.core.config.max_steps):
        _, reward, _, truncated, info = vec.step(policy(vec.core))
        total += reward
        assert (info["invalid_actions"] == 0).all()
    assert truncated.all()
    return total


def test_suite_check_passes():
    rows = check.run_checks("sum_to_zero", steps=4000)
    assert [r for r in rows if not r.passed] == []
    assert {r.check for r in rows} >= {"set sound", "contains == predicates", "projection nearest", "set never empty",
                                       "invalid actions reported", "strict mode raises", "gymnasium check_env",
                                       "pettingzoo parallel_api_test", "vector == single"}


@settings(max_examples=10, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), cost=st.sampled_from([0.0, 0.1, 0.25]),
       persistence=st.sampled_from([0.0, 0.9]))
def test_the_oracle_beats_every_other_policy_on_every_episode(seed, cost, persistence):
    """Moving to the next demand is optimal for movement_cost <= 0.25: no policy does better on any episode."""
    config = {"movement_cost": cost, "demand_persistence": persistence, "max_steps": 20}
    oracle = play("sum_to_zero", lambda core: core.oracle_actions()[:, 0], seed, **config)
    rng = np.random.default_rng(seed)
    others = {
        "hold": lambda core: np.zeros((core.num_envs, core.config.n_targets)),
        "forecast": lambda core: core.forecast_actions()[:, 0],
        "random": lambda core: core.admissible_set().sample(rng)[:, 0],
        # the oracle's move, perturbed and projected back: the optimum is not a local accident
        "perturbed oracle": lambda core: core.admissible_set().project(
            core.oracle_actions() + 0.02 * rng.standard_normal(core.oracle_actions().shape))[:, 0],
        # half way to the demand: less movement, less served
        "half way": lambda core: 0.5 * core.oracle_actions()[:, 0],
    }
    for name, policy in others.items():
        returns = play("sum_to_zero", policy, seed, **config)
        assert np.all(returns <= oracle + 1e-9), name


def test_the_references_are_ordered_as_documented():
    returns = {name: play("sum_to_zero", policy, 7, episodes=256).mean() for name, policy in {
        "oracle": lambda core: core.oracle_actions()[:, 0],
        "forecast": lambda core: core.forecast_actions()[:, 0],
        "hold": lambda core: np.zeros((core.num_envs, core.config.n_targets)),
    }.items()}
    assert returns["oracle"] > returns["forecast"] > returns["hold"]
    assert returns["oracle"] == pytest.approx(47.6, abs=0.5)


def test_the_clairvoyant_refuses_a_movement_cost_where_it_is_not_optimal(tmp_path, capsys):
    argv = ["--env", "sum_to_zero", "--algo", "clairvoyant_demand", "--env-config", "movement_cost=0.3",
            "--out", str(tmp_path)]
    assert run_cli(run.main, "python -m suite.run", argv) == 2
    assert "is optimal only for movement_cost <= 0.25, got 0.3" in capsys.readouterr().err
    assert not any(tmp_path.iterdir())


def test_reward_is_demand_served_minus_movement_cost():
    env = envs.make("sum_to_zero", movement_cost=0.2)
    obs, _ = env.reset(seed=3)
    core = env.core
    w = core.state.weights[0, 0].copy()
    a = np.zeros(13)
    a[0], a[1] = -w[0], w[0]  # move target 0's weight to target 1
    next_demand = core._demand_at(1)[0]
    obs, reward, terminated, truncated, info = env.step(a)
    expected_w = w + a
    assert reward == pytest.approx(np.minimum(expected_w, next_demand).sum() - 0.2 * 2 * w[0])
    np.testing.assert_allclose(obs["observation"][:13], expected_w, atol=1e-7)
    np.testing.assert_allclose(obs["observation"][13:], next_demand, atol=1e-7)
    served = np.minimum(expected_w, next_demand).sum()
    assert info == {"invalid_actions": 0, "violated": [], "violation_distance": 0.0,
                    "demand_served": pytest.approx(served)}
    assert not terminated and not truncated


def test_an_inadmissible_action_is_not_executed_and_is_reported():
    env = envs.make("sum_to_zero")
    obs, _ = env.reset(seed=0)
    before = env.core.state.weights.copy()
    action = np.full(13, 0.05)  # sums to 0.65
    obs, reward, _, _, info = env.step(action)
    np.testing.assert_allclose(env.core.state.weights, before, atol=1e-15)  # up to the renormalisation
    assert info["invalid_actions"] == 1 and info["violated"] == ["Z1"]
    overdraw = np.zeros(13)
    i, j = np.argsort(before[0, 0])[:2]  # the two smallest weights: take more than target i holds
    overdraw[i], overdraw[j] = -(before[0, 0, i] + 0.01), before[0, 0, i] + 0.01
    _, _, _, _, info = env.step(overdraw)
    assert info["violated"] == ["Z2"]


def test_strict_mode_raises_naming_the_constraint():
    env = envs.make("sum_to_zero", strict=True)
    env.reset(seed=0)
    with pytest.raises(ValueError, match="violates Z1"):
        env.step(np.full(13, 0.05))


def test_actions_within_the_tolerance_are_admissible_and_the_weights_stay_on_the_simplex():
    vec = envs.make_vector("sum_to_zero", 256, tolerance=1e-5)
    vec.reset(seed=1)
    rng = np.random.default_rng(0)
    for _ in range(200):  # four episodes, autoreset included
        a = vec.core.admissible_set().sample(rng)[:, 0] + rng.uniform(-4e-7, 4e-7, (256, 13))  # float32-sized noise
        _, _, _, _, info = vec.step(a.astype(np.float32))
        assert (info["invalid_actions"] == 0).all()
        w = vec.core.state.weights
        assert (w >= 0).all() and np.allclose(w.sum(axis=-1), 1.0, atol=1e-12)


def test_reallocation_to_is_the_questions_normalisation_corrected():
    core = envs.make_core("sum_to_zero", 2)
    core.reset_envs(np.arange(2), [np.random.default_rng(i) for i in range(2)])
    targets = np.zeros((2, 1, 13))
    targets[0, 0, :3] = [0.2, 0.2, 0.6]  # normalised: 0.2, 0.2, 0.6 of the resource... scaled by the sum
    targets[0, 0, 3] = 1.5                # clipped to 1
    moves = core.reallocation_to(targets)
    np.testing.assert_allclose(core.state.weights[0, 0] + moves[0, 0],
                               np.r_[[0.2, 0.2, 0.6, 1.0], np.zeros(9)] / 2.0, atol=1e-12)
    np.testing.assert_array_equal(moves[1], 0.0)  # all-zero targets: keep the allocation, no division by zero
    assert core.admissible_set().contains(moves).all()


@pytest.mark.parametrize("key, value, message", [
    ("n_targets", "1", "n_targets' must be an integer of at least 2"),
    ("demand_persistence", "1", "demand_persistence' must be a number in [0, 1)"),
    ("tolerance", "0", "tolerance' must be a positive number"),
    ("n_agents", "2", "n_agents' must be 1"),
])
def test_config_errors_are_one_line(key, value, message):
    with pytest.raises(ConfigError) as error:
        envs.make("sum_to_zero", **{key: value})
    assert message in str(error.value) and "\n" not in str(error.value)


def test_random_valid_and_the_clairvoyant_run_through_the_runner(tmp_path):
    for algo in ("random_valid", "clairvoyant_demand"):
        assert run.main(["--env", "sum_to_zero", "--algo", algo, "--steps", "2000", "--episodes", "20",
                         "--out", str(tmp_path), "--quiet"]) == 0
    import pandas as pd

    random_valid = pd.read_csv(tmp_path / "sum_to_zero" / "random_valid" / "seed0" / "eval.csv")
    oracle = pd.read_csv(tmp_path / "sum_to_zero" / "clairvoyant_demand" / "seed0" / "eval.csv")
    assert (random_valid["invalid_steps"] == 0).all() and (oracle["invalid_steps"] == 0).all()
    assert oracle["return"].mean() > random_valid["return"].mean() + 20
    assert np.allclose(oracle["demand_served"], 1.0)


def test_every_view_hands_out_its_admissible_set():
    from baselines.random_valid import RandomValidPolicy

    env = envs.make("sum_to_zero")
    obs, _ = env.reset(seed=0)
    admissible = env.admissible_set()
    assert admissible.batch_shape == () and np.allclose(-admissible.lower, obs["observation"][:13], atol=1e-7)
    action = RandomValidPolicy(env.action_space, seed=0)(obs, admissible_set=admissible)
    assert action.shape == (13,) and admissible.contains(action)
    assert env.step(action)[4]["invalid_actions"] == 0
    vec = envs.make_vector("sum_to_zero", 8)
    vec.reset(seed=0)
    assert vec.admissible_set().batch_shape == (8,) and vec.admissible_set()[3].batch_shape == ()
    par = envs.make_parallel("sum_to_zero")
    par.reset(seed=0)
    assert par.admissible_set("allocator_0").contains(np.zeros(13))
    with pytest.raises(IndexError, match="at most 1 indices"):
        vec.admissible_set()[0, 0]
