"""The suite's multi-agent envs (``n_agents > 1``) as RLlib's multi-agent API sees them.

:class:`MultiAgentTrainingEnv` is an RLlib ``MultiAgentEnv`` over one entry of
:class:`baselines.training_env.MultiAgentTrainingVector`, which applies per agent what every
backend's training env applies (episode statistics in the env's own reward, drained by the runner
once per iteration; the observation transform; the mask if the method observes it; the learning
reward); this class only turns its arrays into
RLlib's per-agent dicts. Agents that leave the episode (a car that reaches the end of the road) get
no further observations, as RLlib and PettingZoo expect.

Only runs with one module per agent (``policies=per_agent``) come here: RLlib 2.60's
``MultiAgentEnvRunner`` vectorises multi-agent envs only as a ``SyncVectorMultiAgentEnv`` of such
single envs (``gym_env_vectorize_mode="sync"``), stepped one by one in Python. With one shared
module (the default) the backend's batched runner
(:class:`baselines.backends.rllib_batched_runner.BatchedEnvRunner`) steps the
:class:`~baselines.training_env.MultiAgentTrainingVector` as whole arrays instead, as the torch
backend does.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from ray.rllib.env.multi_agent_env import MultiAgentEnv

from baselines.training_env import MultiAgentTrainingVector, TrainingContext
from envs.masking import MASK_KEY, OBSERVATION_KEY

__all__ = ["MultiAgentTrainingEnv", "make_multi_agent_training_env"]


class MultiAgentTrainingEnv(MultiAgentEnv):
    """One k-agent episode at a time, each agent seeing and learning what a single agent would.

    ``context`` is the :class:`~baselines.training_env.TrainingContext` of the run.
    """

    def __init__(self, context: TrainingContext):
        super().__init__()
        self.batch = MultiAgentTrainingVector(context, 1)
        self.possible_agents = list(self.batch.agent_ids)
        self.agents = []
        self.observation_spaces = dict.fromkeys(self.possible_agents, self.batch.single_observation_space)
        self.action_spaces = dict.fromkeys(self.possible_agents, self.batch.single_action_space)
        core = self.batch.core
        self._actions = np.zeros((1, core.n_agents, len(core.nvec)), dtype=np.int64)  # agents that left: ignored

    def _observations(self, obs: dict[str, np.ndarray] | np.ndarray, which: np.ndarray) -> dict[str, Any]:
        if not isinstance(obs, dict):  # features only (penalty PPO)
            return {agent: obs[0, j] for j, agent in enumerate(self.possible_agents) if which[j]}
        return {agent: {OBSERVATION_KEY: obs[OBSERVATION_KEY][0, j], MASK_KEY: obs[MASK_KEY][0, j]}
                for j, agent in enumerate(self.possible_agents) if which[j]}

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        obs, _ = self.batch.reset(seed=seed)  # an episode cut off by a reset (RLlib's env checker) is not counted
        self.agents = list(self.possible_agents)
        return self._observations(obs, self.batch.live[0]), {agent: {} for agent in self.agents}

    def step(self, action_dict: dict[str, Any]):
        actions = self._actions.copy()
        for j, agent in enumerate(self.possible_agents):
            if agent in action_dict:
                actions[0, j] = np.reshape(action_dict[agent], -1)
        obs, reward, terminated, truncated, _ = self.batch.step(actions)
        acted, live = self.batch.acted[0], self.batch.live[0]
        acting = [j for j in range(len(self.possible_agents)) if acted[j]]
        rewards = {self.possible_agents[j]: float(reward[0, j]) for j in acting}
        terminateds = {self.possible_agents[j]: bool(terminated[0, j]) for j in acting}
        truncateds = {self.possible_agents[j]: bool(truncated[0, j]) for j in acting}
        # RLlib ends the episode on either flag; cars that left earlier count as terminated.
        everyone_done = not live.any()
        truncateds["__all__"] = everyone_done and any(truncateds.values())
        terminateds["__all__"] = everyone_done and not truncateds["__all__"]
        self.agents = [agent for j, agent in enumerate(self.possible_agents) if live[j]]
        return (self._observations(obs, acted), rewards, terminateds, truncateds,
                {self.possible_agents[j]: {} for j in acting})

    def drain(self) -> dict[str, Any]:
        """What :meth:`baselines.training_env.MultiAgentTrainingVector.drain` reports."""
        return self.batch.drain()


def make_multi_agent_training_env(config: dict[str, Any]) -> MultiAgentTrainingEnv:
    """RLlib's env creator for multi-agent training: ``config`` is :meth:`TrainingContext.as_dict`."""
    return MultiAgentTrainingEnv(TrainingContext.of(config))
