"""The training env: the suite's vector envs as every PPO backend's learner sees them.

What a learner trains on differs from the env in four ways, each decided by the method
(:mod:`baselines.method`) and the PPO settings, and written once here:

1. statistics: env steps, steps with any inadmissible sub-action and finished episodes, counted in
   the env's **own** reward (before anything below changes it), so ``progress.csv`` reports the same
   quantities for every method and backend; the runner drains them once per iteration;
2. the observation: the features through a fixed elementwise transform (:func:`transform_features`,
   ``symlog`` by default: stateless, so env runners, learner and evaluation agree without syncing
   statistics), with or without the mask (:attr:`TrainingContext.observes_mask`);
3. the action (continuous envs): how the agent's action becomes the env's (:func:`env_actions`:
   unchanged, projected onto the admissible set, or normalised target weights);
4. the learning reward (:func:`learning_reward`): minus ``penalty`` per unit of inadmissibility
   (penalty PPO), times ``reward_scale``.

One builder, :class:`MultiAgentTrainingVector`, over ``envs.make_multi_agent_vector``'s
``(num_envs, n_agents, ...)`` arrays (one agent is the case k = 1): the torch backend trains on it
directly, the RLlib backend's batched runner
(:class:`baselines.backends.rllib_batched_runner.BatchedEnvRunner`) steps it as arrays, and RLlib's
multi-agent API (one module per agent) steps it through
:class:`baselines.backends.rllib_multi_agent.MultiAgentTrainingEnv`. sb3-contrib's usual set-up of single
envs (:mod:`baselines.backends.sb3_ppo`) applies the same functions per env.

No Ray and no torch here: every backend uses this module.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from gymnasium import spaces

import envs
from baselines.episodes import EpisodeTracker
from envs.config import ConfigError, parse_assignments
from envs.masking import MASK_KEY, OBSERVATION_KEY, admit_all_unless

__all__ = ["OBS_TRANSFORMS", "ACTION_MODES", "TrainingContext", "training_env_config", "transform_features",
           "transformed_box", "agent_action_space", "env_actions", "agents_env_actions", "unsquash",
           "inadmissibility_cost", "step_cost", "learning_reward", "training_spaces", "MultiAgentTrainingVector"]

OBS_TRANSFORMS = ("none", "symlog")
#: How a continuous agent's action reaches the env:
#: ``raw``: unchanged (inadmissible ones meet the env's fallback);
#: ``project``: the Euclidean projection onto the state's admissible set (masked PPO);
#: ``normalize``: the agent outputs target weights in [0, 1]^n, rescaled to sum to 1 and applied as the
#: reallocation that reaches them (the question's answer; envs with ``reallocation_to``).
ACTION_MODES = ("raw", "project", "normalize")


def training_env_config(env_name: str, env_config: dict[str, Any], train_env_config: tuple[str, ...]) -> dict[str, Any]:
    """The training env's full config: the run's ``env_config`` with the settings' ``train_env_config``
    overrides (``KEY=VALUE`` strings, e.g. a denser reward) on top, validated.

    The overrides may change how the training env rewards or runs, not what the agents are: its agents
    and spaces must be the run's env's (the evaluation env's), or a one-line ``ConfigError`` says which
    differs.
    """
    overrides = parse_assignments(train_env_config, what="train_env_config")
    config = envs.config_dict(env_name, {**env_config, **overrides})
    if overrides:
        train, run = envs.make_core(env_name, 1, **config), envs.make_core(env_name, 1, **env_config)
        for what, mine, theirs in (("agents", train.agent_ids, run.agent_ids),
                                   ("observation space", train.observation_space, run.observation_space),
                                   ("action space", train.action_space, run.action_space)):
            if mine != theirs:
                raise ConfigError(f"train_env_config may change how the training env rewards or runs, not its "
                                  f"{what}: {mine} there, {theirs} in the run's env config")
    return config


@dataclass(frozen=True)
class TrainingContext:
    """Everything that makes the training env: handed to RLlib as its env config (:meth:`as_dict`).

    Attributes:
        env_name: the registered env.
        env_config: the training env's full config (:func:`training_env_config`).
        obs_transform: one of :data:`OBS_TRANSFORMS`.
        reward_scale: factor on the learning reward.
        observes_mask: whether the agent's observation carries the mask (discrete envs).
        penalty: learning reward lost per unit of inadmissibility (None: no penalty).
        action_mode: continuous envs, one of :data:`ACTION_MODES`.
    """

    env_name: str
    env_config: dict[str, Any]
    obs_transform: str
    reward_scale: float
    observes_mask: bool = True
    penalty: float | None = None
    action_mode: str = "raw"

    @classmethod
    def of_run(cls, env_name: str, env_config: dict[str, Any], method: Any, settings: Any) -> TrainingContext:
        """The training env of a run: ``method`` (a :class:`baselines.method.Method`) on ``env_name`` with
        the run's ``env_config`` and the method's ``settings`` (its config)."""
        return cls(env_name, training_env_config(env_name, env_config, settings.train_env_config),
                   settings.obs_transform, settings.reward_scale, observes_mask=method.observes_mask,
                   penalty=settings.penalty if method.penalised else None, action_mode=method.action_mode)

    def as_dict(self) -> dict[str, Any]:
        """RLlib's env config (a plain dict, which RLlib copies into each EnvRunner)."""
        return asdict(self)

    @classmethod
    def of(cls, config: dict[str, Any]) -> TrainingContext:
        """From RLlib's env config (:meth:`as_dict` plus keys RLlib adds, e.g. ``num_envs``)."""
        return cls(**{key: config[key] for key in cls.__dataclass_fields__ if key in config})


def agent_action_space(env_space: spaces.Box, mode: str) -> spaces.Box:
    """The action space the agent acts in under ``mode`` (targets in [0, 1] for ``normalize``)."""
    if mode == "normalize":
        return spaces.Box(0.0, 1.0, env_space.shape, env_space.dtype)
    return env_space


def env_actions(core: Any, actions: np.ndarray, mode: str) -> np.ndarray:
    """The env actions ``(N, *shape)`` for agent actions ``(N, *shape)`` in ``core``'s current state."""
    return agents_env_actions(core, np.asarray(actions)[:, None], mode)[:, 0]


def agents_env_actions(core: Any, actions: np.ndarray, mode: str) -> np.ndarray:
    """The env actions ``(N, agents, *shape)`` for agent actions ``(N, agents, *shape)`` in ``core``'s
    current state, by ``mode`` (:data:`ACTION_MODES`); the time a projection or normalisation takes is
    added to ``core.enforcement_seconds``."""
    batched = np.asarray(actions, dtype=np.float64)
    if mode == "raw":
        return batched
    if mode not in ACTION_MODES:
        raise ValueError(f"unknown action mode {mode!r}; accepted: {', '.join(ACTION_MODES)}")
    started = time.perf_counter()
    mapped = core.admissible_set().project(batched) if mode == "project" else core.reallocation_to(batched)
    core.enforcement_seconds += time.perf_counter() - started
    return mapped


def unsquash(actions: np.ndarray, space: spaces.Box) -> np.ndarray:
    """A Gaussian policy's actions, read as [-1, 1] per dimension, mapped onto ``space``'s bounds and
    clipped there: what RLlib's ``unsquash_action`` does in training (``normalize_actions=True``),
    the same arithmetic, so evaluation acts exactly as training did."""
    actions = space.low + (actions + 1.0) * (space.high - space.low) / 2.0
    return np.clip(actions, space.low, space.high)


def inadmissibility_cost(invalid: np.ndarray, distance: np.ndarray | None = None) -> np.ndarray:
    """How inadmissible each step's action was: the number of inadmissible sub-actions (discrete:
    ``distance`` None), or the Euclidean distance to the admissible set where the action was
    inadmissible (Box: ``distance``, the step's ``info["violation_distance"]``). ``invalid`` is the
    step's ``info["invalid_actions"]`` (0 for entries that only reset, which so cost nothing)."""
    invalid = np.asarray(invalid, dtype=np.float64)
    return invalid if distance is None else distance * (invalid > 0)


def step_cost(info: dict[str, Any]) -> np.ndarray:
    """:func:`inadmissibility_cost` of a step from its info (the core measured the distance, Box envs)."""
    return inadmissibility_cost(info["invalid_actions"], info.get("violation_distance"))


def learning_reward(reward: np.ndarray, cost: np.ndarray | None, penalty: float | None,
                    scale: float) -> np.ndarray:
    """The reward the agent learns from: the env's, minus ``penalty`` times ``cost`` (penalty PPO), times
    ``scale``. The env's own reward is what statistics and evaluation report."""
    if penalty is not None:
        reward = reward - penalty * cost
    if scale != 1.0:
        reward = reward * scale
    return reward


def transform_features(features: np.ndarray, kind: str) -> np.ndarray:
    """The observation features as the network sees them (``kind`` in :data:`OBS_TRANSFORMS`)."""
    if kind == "none":
        return features
    if kind == "symlog":
        return (np.sign(features) * np.log1p(np.abs(features))).astype(features.dtype, copy=False)
    raise ValueError(f"unknown observation transform {kind!r}; accepted: {', '.join(OBS_TRANSFORMS)}")


def transformed_box(box: spaces.Box, kind: str) -> spaces.Box:
    """The space of :func:`transform_features` applied to features in ``box``."""
    low = transform_features(box.low.astype(np.float64), kind).astype(box.dtype)
    high = transform_features(box.high.astype(np.float64), kind).astype(box.dtype)
    return spaces.Box(low, high, dtype=box.dtype)


def training_spaces(core: Any, context: TrainingContext) -> tuple[spaces.Space, spaces.Space]:
    """One agent's observation and action spaces in the training env of ``context`` over ``core`` (any batch
    size): the transformed features with the mask, or the features alone for a method that must not see it;
    the env's action space, or for Box envs the agent's (:func:`agent_action_space`)."""
    features = transformed_box(core.feature_space, context.obs_transform)
    observation = spaces.Dict({**core.observation_space.spaces, OBSERVATION_KEY: features}) \
        if core.discrete and context.observes_mask else features
    action = core.action_space if core.discrete else agent_action_space(core.action_space, context.action_mode)
    return observation, action


class MultiAgentTrainingVector:
    """``num_envs`` episodes of a k-agent env, each agent seeing and learning what one agent would.

    Over ``envs.make_multi_agent_vector`` (``(num_envs, n_agents, ...)`` arrays, next-step autoreset
    of an entry once all its agents have left), per agent: episode statistics in the env's own
    reward (drained once per iteration), the observation transform, the mask if the agent observes
    it (discrete envs), the agent's continuous actions mapped to the env's by ``action_mode`` (Box
    envs: the agent acts in :func:`agent_action_space`), and the learning reward.

    ``acted`` (after a step) and ``acting`` (for the next one) say which agents take part: an agent
    that has left or whose entry is resetting gets reward 0 and a stale observation, and its action
    is not executed; that agent's mask admits everything (the mask of an episode that is over may admit
    nothing, and no module may be handed an empty mask).
    """

    def __init__(self, context: TrainingContext, num_envs: int):
        self.vec = envs.make_multi_agent_vector(context.env_name, num_envs, **context.env_config)
        core = self.vec.core
        self.core, self.context = core, context
        self.num_envs, self.n_agents, self.agent_ids = num_envs, core.n_agents, list(core.agent_ids)
        self.observes_mask = core.discrete and context.observes_mask
        #: One agent's spaces (:func:`training_spaces`): the features alone for a method that must not see the mask.
        self.single_observation_space, self.single_action_space = training_spaces(core, context)
        self._tracker = EpisodeTracker.of(core, num_envs * core.n_agents, next_step_autoreset=False)
        self._enforcement_drained = core.enforcement_seconds
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
        """What the agents see; the mask of an agent that will not act admits everything (its action is not
        executed, and the mask of an agent whose episode is over may admit nothing)."""
        features = transform_features(obs[OBSERVATION_KEY], self.context.obs_transform)
        if not self.observes_mask:
            return features
        return {OBSERVATION_KEY: features, MASK_KEY: admit_all_unless(self.vec.acting, obs[MASK_KEY])}

    def reset(self, *, seed: int | list[int | None] | None = None):
        """Start every entry afresh; episodes in flight are abandoned (not counted)."""
        self._tracker.abandon_running()
        self._env_steps -= min(int(self._episode_env_steps.sum()), self._env_steps)  # a drain may have reported some
        self._episode_env_steps[:] = 0
        obs, info = self.vec.reset(seed=seed)
        return self._observe(obs), info

    def step(self, actions: np.ndarray):
        """``actions`` ``(num_envs, n_agents, n_sub)`` (Box: ``(num_envs, n_agents, *shape)`` in the agent's
        action space); returns the five values with the learning reward."""
        penalty = self.context.penalty
        if not self.core.discrete:
            actions = agents_env_actions(self.core, actions, self.context.action_mode)
        obs, reward, terminated, truncated, info = self.vec.step(actions)
        stepped = self.vec.acted.any(axis=1)
        self._env_steps += int(stepped.sum())
        self._episode_env_steps += stepped
        self._tracker.update(reward, terminated, truncated, info, active=self.vec.acted)
        cost = step_cost(info) if penalty is not None else None  # 0 for agents that did not act
        reward = learning_reward(reward, cost, penalty, self.context.reward_scale)
        self._episode_env_steps[~self.vec.live.any(axis=1)] = 0  # entries whose episode is over
        return self._observe(obs), reward, terminated, truncated, info

    def drain(self) -> dict[str, Any]:
        """Env steps, agent steps, agent steps with an inadmissible sub-action and finished agent-episodes
        (``env_index = i * n_agents + j`` for entry i, agent j) since the last drain."""
        spent, self._enforcement_drained = self.core.enforcement_seconds - self._enforcement_drained, \
            self.core.enforcement_seconds
        out = {"env_steps": self._env_steps, **self._tracker.drain(), "enforcement_seconds": spent}
        self._env_steps = 0
        return out

    def close(self) -> None:
        self.vec.close()
