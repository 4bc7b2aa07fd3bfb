"""The suite's vector envs as the PPO learners see them (RLlib, and the torch backend).

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

With several agents, :class:`MultiAgentTrainingVector` applies the same per-agent steps (1 to 4 and
6; several agents train with masked categorical actions only) to ``envs.make_multi_agent_vector``'s
``(num_envs, n_agents, ...)`` arrays: the torch backend trains on it directly, RLlib's multi-agent
API through :class:`baselines.rllib_multi_agent.MultiAgentTrainingEnv` (one entry as agent dicts).
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
from envs.masking import MASK_KEY, OBSERVATION_KEY

__all__ = ["OBS_TRANSFORMS", "ACTION_MODES", "transform_features", "transformed_box", "agent_action_space", "env_actions",
           "make_training_env", "TrainingStats", "ScaleObservation", "PenalizeInvalid", "FeaturesOnly", "MapActions",
           "ScaleReward", "find_wrapper", "MultiAgentTrainingVector"]

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


class MultiAgentTrainingVector:
    """``num_envs`` episodes of a k-agent discrete env, each agent seeing and learning what one agent would.

    Over ``envs.make_multi_agent_vector`` (``(num_envs, n_agents, ...)`` arrays, next-step autoreset
    of an entry once all its agents have left), per agent: episode statistics in the env's own
    reward (drained once per iteration), the observation transform, the penalty and hidden mask of
    penalty PPO and the reward scale, as :func:`make_training_env` does for one agent. ``context``
    has :func:`make_training_env`'s keys (``action_mode`` is ignored: the actions are categorical).

    ``acted`` (after a step) and ``acting`` (for the next one) say which agents take part: an agent
    that has left or whose entry is resetting gets reward 0 and a stale observation, and its action
    is not executed. With one agent this is :func:`make_training_env`'s env with an agent axis.
    """

    def __init__(self, context: dict[str, Any], num_envs: int):
        self.vec = envs.make_multi_agent_vector(context["env_name"], num_envs, **context["env_config"])
        core = self.vec.core
        if not core.discrete:
            raise ValueError(f"several agents train with masked categorical actions; env {context['env_name']!r} "
                             f"has {core.action_space}")
        self.core = core
        self.num_envs, self.n_agents, self.agent_ids = num_envs, core.n_agents, list(core.agent_ids)
        self.obs_transform = context["obs_transform"]
        self.penalty = None if context.get("penalty") is None else float(context["penalty"])
        self.reward_scale = float(context["reward_scale"])
        features = transformed_box(core.feature_space, self.obs_transform)
        #: One agent's observation space: the features alone for penalty PPO (which must not see the mask).
        self.single_observation_space = features if self.penalty is not None else \
            spaces.Dict({**core.observation_space.spaces, OBSERVATION_KEY: features})
        self.single_action_space = core.action_space
        self._tracker = EpisodeTracker(num_envs * core.n_agents, core.episode_metrics, next_step_autoreset=False)
        self._env_steps = 0  # steps of an entry in which any of its agents acted, since the last drain
        self._episode_env_steps = np.zeros(num_envs, dtype=np.int64)

    @property
    def acted(self) -> np.ndarray:
        return self.vec.acted

    @property
    def acting(self) -> np.ndarray:
        return self.vec.acting

    @property
    def live(self) -> np.ndarray:
        return self.vec.live

    def _observe(self, obs: dict[str, np.ndarray]) -> dict[str, np.ndarray] | np.ndarray:
        features = transform_features(obs[OBSERVATION_KEY], self.obs_transform)
        return features if self.penalty is not None else {OBSERVATION_KEY: features, MASK_KEY: obs[MASK_KEY]}

    def reset(self, *, seed: int | list[int | None] | None = None):
        """Start every entry afresh; episodes in flight are abandoned (not counted)."""
        self._tracker.abandon_running()
        self._env_steps -= min(int(self._episode_env_steps.sum()), self._env_steps)  # a drain may have reported some
        self._episode_env_steps[:] = 0
        obs, info = self.vec.reset(seed=seed)
        return self._observe(obs), info

    def step(self, actions: np.ndarray):
        """``actions`` ``(num_envs, n_agents, n_sub)``; returns the five values with the learning reward."""
        obs, reward, terminated, truncated, info = self.vec.step(actions)
        stepped = self.vec.acted.any(axis=1)
        self._env_steps += int(stepped.sum())
        self._episode_env_steps += stepped
        self._tracker.update(reward, terminated, truncated, info, active=self.vec.acted)
        if self.penalty is not None:
            reward = reward - self.penalty * info["invalid_actions"]  # 0 for agents that did not act
        if self.reward_scale != 1.0:
            reward = reward * self.reward_scale
        self._episode_env_steps[~self.vec.live.any(axis=1)] = 0  # entries whose episode is over
        return self._observe(obs), reward, terminated, truncated, info

    def drain(self) -> dict[str, Any]:
        """Env steps, agent steps, agent steps with an inadmissible sub-action and finished agent-episodes
        (``env_index = i * n_agents + j`` for entry i, agent j) since the last drain."""
        out = {"env_steps": self._env_steps, **self._tracker.drain()}
        self._env_steps = 0
        return out

    def close(self) -> None:
        self.vec.close()
