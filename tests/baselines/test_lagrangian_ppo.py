"""Lagrangian PPO: the multiplier's update rule by hand, the combined advantage, and a run that reports its
cost and multiplier and pushes the cost down."""

import math

import numpy as np
import pandas as pd
import pytest
import torch

from baselines.lagrange import LagrangeMultiplier, combined_advantages
from tests.helpers import TINY, run_folder, run_main


def test_the_first_adam_step_moves_lambda_by_its_learning_rate_towards_the_budget():
    """Adam's first step is lr * g / (|g| + eps) after bias correction: lambda moves by lr, whatever the cost's
    scale, up when the episodes cost more than the budget, down when less, never below 0."""
    up = LagrangeMultiplier(cost_limit=2.0, lr=0.05, initial=1.0)
    assert up.update(episode_cost=7.0) == pytest.approx(1.05, abs=1e-6)
    down = LagrangeMultiplier(cost_limit=2.0, lr=0.05, initial=1.0)
    assert down.update(episode_cost=0.5) == pytest.approx(0.95, abs=1e-6)
    floor = LagrangeMultiplier(cost_limit=2.0, lr=0.05, initial=0.01)
    assert floor.update(episode_cost=0.0) == 0.0
    ceiling = LagrangeMultiplier(cost_limit=0.0, lr=0.5, initial=1.0, upper=1.2)
    assert ceiling.update(episode_cost=100.0) == pytest.approx(1.2)
    assert ceiling.update(episode_cost=math.nan) == pytest.approx(1.2)  # no episode ended: no step


def test_the_multiplier_state_round_trips():
    a = LagrangeMultiplier(0.0, 0.1, 0.5)
    for cost in (3.0, 1.0, 4.0):
        a.update(cost)
    b = LagrangeMultiplier(0.0, 0.1, 0.5)
    b.load_state_dict(a.state_dict())
    assert a.update(2.0) == b.update(2.0)


def test_the_combined_advantage_is_omnisafes():
    reward = torch.tensor([1.0, 2.0, 3.0, 6.0])
    cost = torch.tensor([0.0, 0.0, 4.0, 0.0])
    standard = lambda x: (x - x.mean()) / (x.std() + 1e-8)  # noqa: E731
    expected = (standard(reward) - 0.5 * standard(cost)) / 1.5
    torch.testing.assert_close(combined_advantages(reward, cost, 0.5), expected)
    torch.testing.assert_close(combined_advantages(reward, cost, 0.0), standard(reward))


@pytest.mark.parametrize("env", ["speed_limit", "sum_to_zero"])
def test_a_lagrangian_run_reports_its_cost_and_multiplier_and_sees_no_mask(tmp_path, env):
    """The multiplier rises while the episodes cost more than the zero budget; the cost per episode and the
    cost critic's loss are in progress.csv; evaluation is mask off (the agent has no mask)."""
    assert run_main("--env", env, "--algo", "lagrangian_ppo", *TINY, "--algo-config", "lambda_lr=0.1",
                    "--steps", "4096", "--episodes", "4", "--out", str(tmp_path), "--quiet") == 0
    directory = run_folder(tmp_path, env, "lagrangian_ppo")
    progress = pd.read_csv(directory / "progress.csv")
    assert {"lagrange_multiplier", "episode_cost_mean", "cost_vf_loss"} <= set(progress.columns)
    costly = progress["episode_cost_mean"] > 0
    assert costly.any()
    multiplier = progress["lagrange_multiplier"].to_numpy()
    assert np.all(np.diff(multiplier)[costly.to_numpy()[1:]] > 0)  # rises after every costly rollout
    assert set(pd.read_csv(directory / "eval.csv")["mask"]) == {"off"}


def test_only_the_torch_backend_runs_the_lagrangian_objective():
    """RLlib's learner runs PPO's objective: its backend refuses a method with its own, in one line."""
    from baselines import load_algo

    method = load_algo("lagrangian_ppo")
    assert method.incompatibility("portfolio", {}, "torch") is None
    assert method.incompatibility("portfolio", {}, "rllib") == \
        "lagrangian_ppo adds to PPO's objective, which only the torch backend does"


@pytest.mark.parametrize("argv, message", [
    (["--algo-config", "cost_limit=-1"], "config key 'cost_limit' must be a non-negative number"),
    (["--algo-config", "lambda_lr=0"], "config key 'lambda_lr' must be a positive number"),
    (["--backend", "rllib"], "config key 'backend' must be one of torch; got 'rllib'"),
])
def test_bad_lagrangian_settings_are_one_line_with_status_2(tmp_path, capsys, argv, message):
    assert run_main("--env", "portfolio", "--algo", "lagrangian_ppo", *argv, "--out", str(tmp_path)) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1, err
