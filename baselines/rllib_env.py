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
3. :class:`PenalizeInvalid` (penalty PPO only): drops the mask from the observation and subtracts
   ``penalty`` per inadmissible sub-action from the reward.
4. :class:`ScaleReward`: multiplies the learning reward by a constant (e.g. 1/1000 for dollars).
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from gymnasium.vector import VectorWrapper

import envs
from baselines.rollout import EpisodeTracker
from envs.masking import OBSERVATION_KEY

__all__ = ["OBS_TRANSFORMS", "transform_features", "make_training_env", "TrainingStats", "ScaleObservation",
           "PenalizeInvalid", "ScaleReward", "find_wrapper"]

OBS_TRANSFORMS = ("none", "symlog")


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
        self._finished: list[dict[str, Any]] = []
        self._drained_steps = 0
        self._drained_invalid = 0

    def reset(self, **kwargs):
        self._tracker = EpisodeTracker(self.num_envs, self._metrics)  # episodes in flight are abandoned
        self._drained_steps = self._drained_invalid = 0
        return super().reset(**kwargs)

    def step(self, actions):
        obs, reward, terminated, truncated, info = super().step(actions)
        self._finished += self._tracker.update(reward, terminated, truncated, info)
        return obs, reward, terminated, truncated, info

    def drain(self) -> dict[str, Any]:
        """Steps, steps with an inadmissible sub-action and finished episodes since the last drain."""
        out = {"steps": self._tracker.steps - self._drained_steps,
               "invalid_steps": self._tracker.steps_with_invalid - self._drained_invalid,
               "episodes": self._finished}
        self._drained_steps, self._drained_invalid = self._tracker.steps, self._tracker.steps_with_invalid
        self._finished = []
        return out


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


def _transformed_space(space: spaces.Dict, kind: str) -> spaces.Dict:
    box = space[OBSERVATION_KEY]
    low = transform_features(box.low.astype(np.float64), kind).astype(box.dtype)
    high = transform_features(box.high.astype(np.float64), kind).astype(box.dtype)
    return spaces.Dict({**space.spaces, OBSERVATION_KEY: spaces.Box(low, high, dtype=box.dtype)})


class PenalizeInvalid(VectorWrapper):
    """The agent sees only the observation features; each inadmissible sub-action costs ``penalty``.

    The env still executes its documented fallback for inadmissible sub-actions; this wrapper only
    changes what the agent observes and the reward it learns from.
    """

    def __init__(self, env: gym.vector.VectorEnv, penalty: float):
        super().__init__(env)
        self.penalty = penalty
        self.single_observation_space = env.single_observation_space[OBSERVATION_KEY]
        self.observation_space = env.observation_space[OBSERVATION_KEY]

    def reset(self, **kwargs):
        obs, info = super().reset(**kwargs)
        return obs[OBSERVATION_KEY], info

    def step(self, actions):
        obs, reward, terminated, truncated, info = super().step(actions)
        reward = reward - self.penalty * np.asarray(info["invalid_actions"], dtype=np.float64)
        return obs[OBSERVATION_KEY], reward, terminated, truncated, info


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
    ``reward_scale`` and, for penalty PPO, ``penalty`` (absent: the mask stays in the observation).
    """
    if "num_envs" not in context:
        raise ValueError("maskbench envs are natively batched: set "
                         "config.env_runners(gym_env_vectorize_mode='vector_entry_point')")
    env: gym.vector.VectorEnv = envs.make_vector(context["env_name"], int(context["num_envs"]),
                                                 **context["env_config"])
    env = TrainingStats(env)
    env = ScaleObservation(env, context["obs_transform"])
    if context.get("penalty") is not None:
        env = PenalizeInvalid(env, float(context["penalty"]))
    if context["reward_scale"] != 1.0:
        env = ScaleReward(env, float(context["reward_scale"]))
    return env
