"""The suite's vector envs as RLlib sees them.

RLlib's ``SingleAgentEnvRunner`` with ``gym_env_vectorize_mode="vector_entry_point"`` calls the
env creator with its env config plus ``num_envs``; :func:`make_training_env` answers with
``envs.make_vector`` (one natively batched env per runner, no per-env Python loop) wrapped in:

1. :class:`TrainingStats`: counts env steps, steps with any inadmissible sub-action and finished
   episodes in the env's own reward (before anything below changes it), so ``progress.csv``
   reports the same quantities for every algo. The runner drains it once per iteration.
2. :class:`ScaleObservation`: the observation features through a fixed elementwise transform
   (``symlog``: ``sign(x) log(1 + |x|)``), so raw dollars and units do not saturate the network.
   Stateless, so every env runner, the learner and evaluation agree without syncing statistics.
3. :class:`PenalizeInvalid` (penalty PPO only): subtracts ``penalty`` per inadmissible sub-action
   (discrete) or ``penalty`` times the Euclidean distance to the admissible set (continuous).
4. :class:`FeaturesOnly`: the agent sees only the ``"observation"`` features (penalty PPO, which
   must not see the mask, and every continuous env, whose Dict has nothing else).
5. :class:`MapActions` (continuous envs): how the agent's action becomes the env's, see
   :data:`ACTION_MODES` and :func:`env_actions`; masked PPO **projects** here, on the env-facing
   side, so every action the env receives is admissible while PPO's loss is computed on the
   Gaussian sample the module drew (the projection is part of the environment the agent sees).
6. :class:`ScaleReward`: multiplies the learning reward by a constant (e.g. 1/1000 for dollars).
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from gymnasium.vector import VectorWrapper
from gymnasium.vector.utils import batch_space

import envs
from baselines.rollout import EpisodeTracker
from envs.masking import OBSERVATION_KEY

__all__ = ["OBS_TRANSFORMS", "ACTION_MODES", "transform_features", "transformed_box", "agent_action_space", "env_actions",
           "make_training_env", "TrainingStats", "ScaleObservation", "PenalizeInvalid", "FeaturesOnly", "MapActions",
           "ScaleReward", "find_wrapper"]

OBS_TRANSFORMS = ("none", "symlog")
#: How a continuous agent's action reaches the env:
#: ``raw``: unchanged (inadmissible ones meet the env's fallback);
#: ``project``: the Euclidean projection onto the state's admissible set (masked PPO);
#: ``normalize``: the agent outputs target weights in [0, 1]^n, rescaled to sum to 1 and applied as the
#: reallocation that reaches them (the question's answer; envs with ``reallocation_to``).
ACTION_MODES = ("raw", "project", "normalize")


def agent_action_space(env_space: spaces.Box, mode: str) -> spaces.Box:
    """The action space the agent acts in under ``mode`` (targets in [0, 1] for ``normalize``)."""
    if mode == "normalize":
        return spaces.Box(0.0, 1.0, env_space.shape, env_space.dtype)
    return env_space


def env_actions(core: Any, actions: np.ndarray, mode: str) -> np.ndarray:
    """The env actions ``(N, *shape)`` for agent actions ``(N, *shape)`` in ``core``'s current state."""
    batched = np.asarray(actions, dtype=np.float64)[:, None]  # (N, agents=1, ...)
    if mode == "raw":
        return batched[:, 0]
    if mode == "project":
        return core.admissible_set().project(batched)[:, 0]
    if mode == "normalize":
        return core.reallocation_to(batched)[:, 0]
    raise ValueError(f"unknown action mode {mode!r}; accepted: {', '.join(ACTION_MODES)}")


def transform_features(features: np.ndarray, kind: str) -> np.ndarray:
    """The observation features as the network sees them (``kind`` in :data:`OBS_TRANSFORMS`)."""
    if kind == "none":
        return features
    if kind == "symlog":
        return (np.sign(features) * np.log1p(np.abs(features))).astype(features.dtype, copy=False)
    raise ValueError(f"unknown observation transform {kind!r}; accepted: {', '.join(OBS_TRANSFORMS)}")


class TrainingStats(VectorWrapper):
    """Episode statistics of the training env in its own reward, drained by the runner."""

    def __init__(self, env: gym.vector.VectorEnv):
        super().__init__(env)
        self._metrics = tuple(getattr(env.unwrapped, "core").episode_metrics)
        self._tracker = EpisodeTracker(self.num_envs, self._metrics)

    def reset(self, **kwargs):
        self._tracker = EpisodeTracker(self.num_envs, self._metrics)  # episodes in flight are abandoned
        return super().reset(**kwargs)

    def step(self, actions):
        obs, reward, terminated, truncated, info = super().step(actions)
        self._tracker.update(reward, terminated, truncated, info)
        return obs, reward, terminated, truncated, info

    def drain(self) -> dict[str, Any]:
        """Steps, steps with an inadmissible sub-action and finished episodes since the last drain."""
        return self._tracker.drain()


class ScaleObservation(VectorWrapper):
    """Applies :func:`transform_features` to the ``observation`` entry (the mask is untouched)."""

    def __init__(self, env: gym.vector.VectorEnv, kind: str):
        super().__init__(env)
        self.kind = kind
        self.single_observation_space = _transformed_space(env.single_observation_space, kind)
        self.observation_space = _transformed_space(env.observation_space, kind)

    def _transform(self, obs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return {**obs, OBSERVATION_KEY: transform_features(obs[OBSERVATION_KEY], self.kind)}

    def reset(self, **kwargs):
        obs, info = super().reset(**kwargs)
        return self._transform(obs), info

    def step(self, actions):
        obs, reward, terminated, truncated, info = super().step(actions)
        return self._transform(obs), reward, terminated, truncated, info


def transformed_box(box: spaces.Box, kind: str) -> spaces.Box:
    """The space of :func:`transform_features` applied to features in ``box``."""
    low = transform_features(box.low.astype(np.float64), kind).astype(box.dtype)
    high = transform_features(box.high.astype(np.float64), kind).astype(box.dtype)
    return spaces.Box(low, high, dtype=box.dtype)


def _transformed_space(space: spaces.Dict, kind: str) -> spaces.Dict:
    return spaces.Dict({**space.spaces, OBSERVATION_KEY: transformed_box(space[OBSERVATION_KEY], kind)})


class PenalizeInvalid(VectorWrapper):
    """Each inadmissible action costs reward: ``penalty`` per inadmissible sub-action (discrete), or
    ``penalty`` times its Euclidean distance to the admissible set (continuous).

    The env still executes its documented fallback for inadmissible actions; this wrapper only
    changes the reward the agent learns from.
    """

    def __init__(self, env: gym.vector.VectorEnv, penalty: float):
        super().__init__(env)
        self.penalty = penalty
        self.core = env.unwrapped.core

    def step(self, actions):
        distance = None if self.core.discrete else \
            self.core.admissible_set().distance(np.asarray(actions, dtype=np.float64)[:, None])[:, 0]
        obs, reward, terminated, truncated, info = super().step(actions)
        invalid = np.asarray(info["invalid_actions"], dtype=np.float64)
        cost = invalid if distance is None else distance * (invalid > 0)  # entries that only reset cost nothing
        return obs, reward - self.penalty * cost, terminated, truncated, info


class FeaturesOnly(VectorWrapper):
    """The agent observes only the ``"observation"`` features (a Box, no mask)."""

    def __init__(self, env: gym.vector.VectorEnv):
        super().__init__(env)
        self.single_observation_space = env.single_observation_space[OBSERVATION_KEY]
        self.observation_space = env.observation_space[OBSERVATION_KEY]

    def reset(self, **kwargs):
        obs, info = super().reset(**kwargs)
        return obs[OBSERVATION_KEY], info

    def step(self, actions):
        obs, reward, terminated, truncated, info = super().step(actions)
        return obs[OBSERVATION_KEY], reward, terminated, truncated, info


class MapActions(VectorWrapper):
    """Turns the agent's continuous actions into the env's with :func:`env_actions` (``mode``)."""

    def __init__(self, env: gym.vector.VectorEnv, mode: str):
        super().__init__(env)
        if mode not in ACTION_MODES:
            raise ValueError(f"unknown action mode {mode!r}; accepted: {', '.join(ACTION_MODES)}")
        self.mode = mode
        self.core = env.unwrapped.core
        self.single_action_space = agent_action_space(env.single_action_space, mode)
        self.action_space = batch_space(self.single_action_space, self.num_envs)

    def step(self, actions):
        return super().step(env_actions(self.core, actions, self.mode))


class ScaleReward(VectorWrapper):
    """Multiplies the reward the agent learns from by ``scale``."""

    def __init__(self, env: gym.vector.VectorEnv, scale: float):
        super().__init__(env)
        self.scale = scale

    def step(self, actions):
        obs, reward, terminated, truncated, info = super().step(actions)
        return obs, reward * self.scale, terminated, truncated, info


def find_wrapper(env: Any, kind: type) -> Any | None:
    """The first wrapper of type ``kind`` in ``env``'s wrapper chain (RLlib adds its own on top)."""
    while env is not None:
        if isinstance(env, kind):
            return env
        env = getattr(env, "env", None)
    return None


def make_training_env(context: dict[str, Any]) -> gym.vector.VectorEnv:
    """RLlib's env creator: ``context`` is the RLlib env config plus ``num_envs``.

    Keys: ``env_name``, ``env_config`` (the suite env's config), ``obs_transform``,
    ``reward_scale``, and optionally ``penalty`` (penalty PPO: the mask is hidden and inadmissible
    actions cost reward) and ``action_mode`` (continuous envs, see :data:`ACTION_MODES`; default
    ``raw``).
    """
    if "num_envs" not in context:
        raise ValueError("maskbench envs are natively batched: set "
                         "config.env_runners(gym_env_vectorize_mode='vector_entry_point')")
    env: gym.vector.VectorEnv = envs.make_vector(context["env_name"], int(context["num_envs"]),
                                                 **context["env_config"])
    discrete = env.unwrapped.core.discrete
    env = TrainingStats(env)
    env = ScaleObservation(env, context["obs_transform"])
    if context.get("penalty") is not None:
        env = PenalizeInvalid(env, float(context["penalty"]))
    if context.get("penalty") is not None or not discrete:
        env = FeaturesOnly(env)
    if not discrete:
        env = MapActions(env, context.get("action_mode", "raw"))
    if context["reward_scale"] != 1.0:
        env = ScaleReward(env, float(context["reward_scale"]))
    return env
