"""The suite's multi-agent envs (``n_agents > 1``) as RLlib's multi-agent API sees them.

:class:`MultiAgentTrainingEnv` is an RLlib ``MultiAgentEnv`` over one entry of
``envs.make_multi_agent_vector`` that applies, per agent, what :func:`baselines.rllib_env.
make_training_env` applies to a single agent: episode statistics in the env's own reward
(drained by the runner once per iteration), the observation transform, the penalty and the
hidden mask of penalty PPO, and the reward scale. Agents that leave the episode (a car that
reaches the end of the road) get no further observations, as RLlib and PettingZoo expect.

RLlib 2.60's ``MultiAgentEnvRunner`` vectorises multi-agent envs only as a
``SyncVectorMultiAgentEnv`` of such single envs (``gym_env_vectorize_mode="sync"``), stepped one
by one in Python, so multi-agent sampling is slower per agent step than single-agent sampling
through the vector entry point.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from gymnasium import spaces
from ray.rllib.env.multi_agent_env import MultiAgentEnv

import envs
from baselines.rollout import EpisodeTracker
from baselines.rllib_env import transform_features, transformed_box
from envs.masking import MASK_KEY, OBSERVATION_KEY

__all__ = ["MultiAgentTrainingEnv", "make_multi_agent_training_env", "SHARED_MODULE"]

#: The module id of the policy all agents share (``policies=shared``); per agent, the agent ids.
SHARED_MODULE = "shared"


class MultiAgentTrainingEnv(MultiAgentEnv):
    """One k-agent episode at a time, each agent seeing and learning what a single agent would.

    ``context`` is :meth:`baselines.ppo.RLlibPPO.env_context`: ``env_name``, ``env_config`` (with
    ``n_agents``), ``obs_transform``, ``reward_scale`` and optionally ``penalty`` (the mask is
    hidden and each inadmissible sub-action costs ``penalty``).
    """

    def __init__(self, context: dict[str, Any]):
        super().__init__()
        self.vec = envs.make_multi_agent_vector(context["env_name"], 1, **context["env_config"])
        core = self.vec.core
        if not core.discrete:
            raise ValueError(f"multi-agent training masks categorical actions; env {context['env_name']!r} has "
                             f"{core.action_space}")
        self.obs_transform = context["obs_transform"]
        self.penalty = context.get("penalty")
        self.reward_scale = float(context["reward_scale"])
        self.possible_agents = list(core.agent_ids)
        self.agents = []
        features = transformed_box(core.feature_space, self.obs_transform)
        observation_space = features if self.penalty is not None else \
            spaces.Dict({**core.observation_space.spaces, OBSERVATION_KEY: features})
        self.observation_spaces = {agent: observation_space for agent in self.possible_agents}
        self.action_spaces = {agent: core.action_space for agent in self.possible_agents}
        self._actions = self.vec.core.as_batched_actions(
            np.broadcast_to(core.idle_action(), (1, core.n_agents, *np.shape(core.idle_action()))))
        self._tracker = EpisodeTracker(core.n_agents, core.episode_metrics, next_step_autoreset=False)
        self._env_steps = 0
        self._episode_env_steps = 0

    def _observations(self, obs: dict[str, np.ndarray], which: np.ndarray) -> dict[str, Any]:
        features = transform_features(obs[OBSERVATION_KEY][0], self.obs_transform)
        return {agent: features[j] if self.penalty is not None else
                {OBSERVATION_KEY: features[j], MASK_KEY: obs[MASK_KEY][0, j]}
                for j, agent in enumerate(self.possible_agents) if which[j]}

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        self._tracker.abandon_running()  # an episode cut off by a reset (RLlib's env checker) is not counted
        self._env_steps -= min(self._episode_env_steps, self._env_steps)  # a drain may have reported some
        self._episode_env_steps = 0
        obs, _ = self.vec.reset(seed=seed)
        self.agents = list(self.possible_agents)
        return self._observations(obs, self.vec.live[0]), {agent: {} for agent in self.agents}

    def step(self, action_dict: dict[str, Any]):
        actions = self._actions.copy()
        for j, agent in enumerate(self.possible_agents):
            if agent in action_dict:
                actions[0, j] = np.reshape(action_dict[agent], -1)
        obs, reward, terminated, truncated, info = self.vec.step(actions)
        acted = self.vec.acted[0]
        self._env_steps += 1
        self._episode_env_steps += 1
        self._tracker.update(reward, terminated, truncated, info, active=self.vec.acted)
        if self.penalty is not None:
            reward = reward - self.penalty * info["invalid_actions"]
        reward = reward * self.reward_scale
        acting = [agent for j, agent in enumerate(self.possible_agents) if acted[j]]
        index = {agent: j for j, agent in enumerate(self.possible_agents)}
        rewards = {agent: float(reward[0, index[agent]]) for agent in acting}
        terminateds = {agent: bool(terminated[0, index[agent]]) for agent in acting}
        truncateds = {agent: bool(truncated[0, index[agent]]) for agent in acting}
        live = self.vec.live[0]
        # RLlib ends the episode on either flag; cars that left earlier count as terminated.
        everyone_done = not live.any()
        if everyone_done:
            self._episode_env_steps = 0
        truncateds["__all__"] = everyone_done and any(truncateds.values())
        terminateds["__all__"] = everyone_done and not truncateds["__all__"]
        self.agents = [agent for j, agent in enumerate(self.possible_agents) if live[j]]
        return self._observations(obs, acted), rewards, terminateds, truncateds, {agent: {} for agent in acting}

    def drain(self) -> dict[str, Any]:
        """Env steps, agent steps, agent steps with an inadmissible sub-action and finished agent-episodes
        (``env_index`` = the agent's index) since the last drain."""
        out = {"env_steps": self._env_steps, **self._tracker.drain()}
        self._env_steps = 0
        return out


def make_multi_agent_training_env(context: dict[str, Any]) -> MultiAgentTrainingEnv:
    """RLlib's env creator for multi-agent training (``context``: see :class:`MultiAgentTrainingEnv`)."""
    return MultiAgentTrainingEnv(dict(context))
