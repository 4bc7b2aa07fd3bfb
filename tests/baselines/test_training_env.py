"""The training env: statistics in the env's own reward, the observation transform, the action modes and
the learning reward (one agent: the case k = 1 of :class:`baselines.training_env.MultiAgentTrainingVector`)."""

import numpy as np
import pytest

import envs
from baselines.training_env import MultiAgentTrainingVector, TrainingContext, transform_features


def test_symlog_keeps_sign_order_and_zero():
    x = np.array([-1000.0, -1.0, 0.0, 1.0, 40.0, 1000.0], dtype=np.float32)
    y = transform_features(x, "symlog")
    assert y.dtype == np.float32 and y[2] == 0 and np.all(np.diff(y) > 0)
    assert np.isclose(y[-1], np.log1p(1000.0)) and y[0] == -y[-1]
    with pytest.raises(ValueError, match="accepted: none, symlog"):
        transform_features(x, "tanh")


def test_training_env_counts_invalid_steps_and_penalises_them():
    context = TrainingContext("portfolio", {}, "symlog", 1.0, observes_mask=False, penalty=7.0)
    env = MultiAgentTrainingVector(context, 4)
    assert env.single_observation_space.shape == (8,)  # the mask is hidden
    obs, _ = env.reset(seed=0)
    raw, _ = envs.make_vector("portfolio", 4).reset(seed=0)
    assert np.allclose(obs[:, 0], transform_features(raw["observation"], "symlog"))
    sell_everything = np.zeros((4, 1, 3), dtype=np.int64)  # nothing is held: every sale is inadmissible
    _, reward, _, _, info = env.step(sell_everything)
    assert np.array_equal(info["invalid_actions"][:, 0], [3, 3, 3, 3])
    assert np.allclose(reward, -21.0)
    drained = env.drain()
    assert {key: drained[key] for key in ("steps", "invalid_steps", "episodes", "violations")} == \
        {"steps": 4, "invalid_steps": 4, "episodes": [], "violations": {"C1": 4, "C2": 0, "C3": 0, "C4": 0}}
    assert drained["violation_distance"] is None and drained["enforcement_seconds"] > 0
    assert env.drain()["steps"] == 0
    for _ in range(20):  # the episode ends after 20 trades; holding is always admissible
        env.step(np.full((4, 1, 3), 5))
    drained = env.drain()
    assert drained["steps"] == 19 * 4 and drained["invalid_steps"] == 0
    assert [e["invalid_steps"] for e in drained["episodes"]] == [1, 1, 1, 1]
    assert all(e["return"] == e["portfolio_value"] for e in drained["episodes"])  # the env's reward, unpenalised


def continuous_training_env(**context):
    return MultiAgentTrainingVector(TrainingContext("sum_to_zero", {}, "none", 1.0, observes_mask=False, **context), 8)


def test_projection_mode_sends_only_admissible_actions_to_the_env():
    env = continuous_training_env(action_mode="project")
    assert env.single_observation_space.shape == (26,) and env.single_action_space.shape == (13,)
    env.reset(seed=0)
    core = env.core
    rng = np.random.default_rng(0)
    for _ in range(60):  # past the end of the first episodes: autoreset included
        before = core.state.weights.copy()
        raw = rng.uniform(-1, 1, (8, 1, 13))
        expected = core.admissible_set().project(raw)
        _, _, _, _, info = env.step(raw)
        assert (info["invalid_actions"] == 0).all()
        moved = core.state.weights - before
        stepped = core.state.t > 0
        np.testing.assert_allclose(moved[stepped], expected[stepped], atol=1e-12)  # exactly the projection
    assert env.drain()["invalid_steps"] == 0


def test_normalize_mode_acts_in_target_weights_and_is_always_admissible():
    env = continuous_training_env(action_mode="normalize")
    assert env.single_action_space.low.min() == 0.0 and env.single_action_space.high.max() == 1.0
    env.reset(seed=0)
    targets = np.random.default_rng(1).uniform(0, 1, (8, 1, 13))
    _, _, _, _, info = env.step(targets)
    assert (info["invalid_actions"] == 0).all()
    np.testing.assert_allclose(env.core.state.weights[:, 0], targets[:, 0] / targets[:, 0].sum(axis=-1, keepdims=True),
                               atol=1e-12)


def test_continuous_penalty_is_proportional_to_the_distance_to_the_admissible_set():
    plain, penalised = continuous_training_env(), continuous_training_env(penalty=3.0)
    plain.reset(seed=0)
    penalised.reset(seed=0)
    actions = np.random.default_rng(2).uniform(-1, 1, (8, 1, 13))
    actions[0] = 0.0  # admissible: no penalty
    distance = penalised.core.admissible_set().distance(actions)[:, 0]
    _, reward, _, _, info = penalised.step(actions)
    _, plain_reward, _, _, _ = plain.step(actions)
    invalid = info["invalid_actions"][:, 0]
    assert invalid[0] == 0 and (invalid[1:] == 1).all()
    np.testing.assert_allclose(reward[:, 0], plain_reward[:, 0] - 3.0 * distance * (invalid > 0))
    assert distance[1:].min() > 0
