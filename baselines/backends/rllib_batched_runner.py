"""The RLlib backend's EnvRunner: the suite's batched training env stepped as whole arrays.

RLlib's own ``SingleAgentEnvRunner`` steps a vector env but treats each entry one at a time: per step
and entry it unbatches observations, runs its env-to-module and module-to-env connector pipelines and
appends to an episode object (measured on portfolio: about 1.3 s of an 8,192-step iteration, against
0.13 s for the same rollout as arrays); for several agents RLlib 2.60 steps a list of single envs, one
episode at a time. :class:`BatchedEnvRunner` is a ``SingleAgentEnvRunner`` (the same module, weights
sync, state and checkpoints, built by RLlib from the config's ``env_runner_cls``) that overrides only
the public methods of RLlib's ``EnvRunner`` interface: ``make_env``, ``sample`` and ``get_metrics``.

- the env is :class:`baselines.training_env.MultiAgentTrainingVector` (the torch backend's: the
  statistics, observation transform, mask, action mapping and penalty of every backend), its
  ``num_envs x n_agents`` agents being the runner's columns; one agent is the case k = 1, and
  several agents share the module (parameter sharing: each agent's steps are one column's episode);
- each step runs the module once on every column (``forward_exploration``); the actions are the module's
  own (the suite's modules draw them, :mod:`baselines.backends.rllib_masking_module`) or drawn from the
  module's action distribution class as RLlib's ``GetActions`` connector draws them (Box actions, and
  ``rllib_learner=exact``); Box actions are unsquashed as ``NormalizeAndClipActions`` does, and the env
  is stepped with one array;
- the rollout is kept as arrays and cut into ``SingleAgentEpisode`` chunks at the end, one per
  column and episode, already in numpy (the form RLlib's ``to_numpy`` gives), with the actions'
  log-probabilities and distribution inputs the PPO loss reads; an episode still running continues
  in the next call's chunk (same id), as RLlib's own runner cuts it;
- the metrics RLlib's algorithm reads of a runner (env, agent and module steps, episodes, their
  lifetime sums, and the returns and lengths of the last finished episodes) are logged through the
  runner's public ``MetricsLogger`` under RLlib's metric names.

Steps are counted as env steps (an entry in which some agent acted), so ``train_batch_size`` keeps its
meaning with several agents; RLlib's lifetime counters (the learning-rate schedule's clock) are the
same. Sampling a number of episodes (``num_episodes``) is not supported: PPO samples env steps.
"""

from __future__ import annotations

import math
import pickle
import random
import uuid
from typing import Any

import numpy as np
import torch
from gymnasium.vector.utils import batch_space
from ray.rllib.core import DEFAULT_AGENT_ID, DEFAULT_MODULE_ID
from ray.rllib.core.columns import Columns
from ray.rllib.env.single_agent_env_runner import SingleAgentEnvRunner
from ray.rllib.env.single_agent_episode import SingleAgentEpisode
from ray.rllib.env.utils.infinite_lookback_buffer import InfiniteLookbackBuffer
from ray.rllib.utils.metrics import (
    EPISODE_LEN_MAX,
    EPISODE_LEN_MEAN,
    EPISODE_LEN_MIN,
    EPISODE_RETURN_MAX,
    EPISODE_RETURN_MEAN,
    EPISODE_RETURN_MIN,
    NUM_AGENT_STEPS_SAMPLED,
    NUM_AGENT_STEPS_SAMPLED_LIFETIME,
    NUM_ENV_STEPS_SAMPLED,
    NUM_ENV_STEPS_SAMPLED_LIFETIME,
    NUM_EPISODES,
    NUM_EPISODES_LIFETIME,
    NUM_MODULE_STEPS_SAMPLED,
    NUM_MODULE_STEPS_SAMPLED_LIFETIME,
    SAMPLE_TIMER,
)

from baselines.training_env import MultiAgentTrainingVector, TrainingContext, unsquash

__all__ = ["BatchedEnvRunner", "global_rng_state", "set_global_rng_state"]


def global_rng_state() -> dict[str, Any]:
    """This process's global generators: torch's (RLlib samples actions from it), numpy's (RLlib's Learner
    shuffles minibatches with it) and Python's."""
    return {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate()}


def set_global_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])


class _RunnerEnv:
    """What RLlib reads of its runner's env (spaces over the columns, their number, ``close``), over the
    training vector."""

    def __init__(self, vector: MultiAgentTrainingVector):
        self.vector = vector
        self.num_envs = vector.num_envs * vector.n_agents
        self.single_observation_space = vector.single_observation_space
        self.single_action_space = vector.single_action_space
        self.observation_space = batch_space(self.single_observation_space, self.num_envs)
        self.action_space = batch_space(self.single_action_space, self.num_envs)
        self.unwrapped = self

    def close(self) -> None:
        self.vector.close()


def _columns(obs: Any, n: int) -> Any:
    """``(num_envs, n_agents, ...)`` observations (a dict of arrays, or one) as ``(n, ...)`` columns."""
    if isinstance(obs, dict):
        return {key: value.reshape(n, *value.shape[2:]) for key, value in obs.items()}
    return obs.reshape(n, *obs.shape[2:])


def _stack(steps: list[Any]) -> Any:
    if isinstance(steps[0], dict):
        return {key: np.stack([step[key] for step in steps]) for key in steps[0]}
    return np.stack(steps)


def _slice(data: Any, rows: slice, column: int) -> Any:
    if isinstance(data, dict):
        return {key: value[rows, column] for key, value in data.items()}
    return data[rows, column]


def _tensor(data: Any) -> Any:
    if isinstance(data, dict):
        return {key: torch.from_numpy(value) for key, value in data.items()}
    return torch.from_numpy(data)


class BatchedEnvRunner(SingleAgentEnvRunner):
    """A ``SingleAgentEnvRunner`` that samples the suite's training env as arrays (see the module docstring)."""

    def make_env(self) -> None:
        if self.env is not None:
            self.env.close()
        context = TrainingContext.of(dict(self.config.env_config))
        self.training_env = MultiAgentTrainingVector(context, int(self.config.num_envs_per_env_runner))
        self.env = _RunnerEnv(self.training_env)
        #: Entries (RLlib sizes a rollout as fragment length x num_envs env steps) and columns (entries x agents).
        self.num_envs, self._columns = self.training_env.num_envs, self.env.num_envs
        self._box = None if self.training_env.core.discrete else self.training_env.single_action_space
        self._obs: Any = None  # None: the env is reset (seeded) before the next sample
        self._open = np.zeros(self._columns, dtype=bool)  # columns whose episode continues into the next chunk
        self._episode_ids = [uuid.uuid4().hex for _ in range(self._columns)]
        #: Per column, the length and return of the chunks of its episode already returned.
        self._carried = np.zeros((2, self._columns))
        self._finished: list[tuple[int, float]] = []  # (length, return) of episodes finished since get_metrics

    @property
    def seed(self) -> int | None:
        """The env's seed on this runner: RLlib's (the config's seed plus the runner's index)."""
        if self.config.seed is None:
            return None
        return int(self.config.seed + (self.worker_index or 0) + 1e6 * self.config.in_evaluation)

    def get_metrics(self):
        """RLlib's runner metrics: the returns and lengths of the last finished episodes (the window RLlib's
        runner keeps, ``ceil(metrics_num_episodes_for_smoothing / num_env_runners)``) and the step counters
        :meth:`sample` logged."""
        window = max(1, math.ceil(self.config.metrics_num_episodes_for_smoothing / (self.config.num_env_runners or 1)))
        log = self.metrics.log_value
        for length, ret in self._finished[-window:]:
            log(EPISODE_LEN_MEAN, length, window=window)
            log(EPISODE_RETURN_MEAN, ret, window=window)
            log(("agent_episode_return_mean", DEFAULT_AGENT_ID), ret, window=window)
            log(("module_episode_return_mean", DEFAULT_MODULE_ID), ret, window=window)
            log(EPISODE_LEN_MIN, length, reduce="min", window=window)
            log(EPISODE_RETURN_MIN, ret, reduce="min", window=window)
            log(EPISODE_LEN_MAX, length, reduce="max", window=window)
            log(EPISODE_RETURN_MAX, ret, reduce="max", window=window)
        self._finished.clear()
        return self.metrics.reduce()

    def drain(self) -> dict[str, Any]:
        """The training env's statistics since the last drain (:meth:`MultiAgentTrainingVector.drain`)."""
        return self.training_env.drain()

    def get_suite_state(self) -> bytes | None:
        """What RLlib's checkpoint leaves out and an exact resume needs: the training env as it is (its
        entries' states and generators, the episodes in flight and their statistics), the last observation,
        the chunks in flight and this process's global generators. None for a runner without an env (the
        local one, when remote runners sample)."""
        if getattr(self, "training_env", None) is None:
            return None
        return pickle.dumps({"env": self.training_env, "obs": self._obs, "open": self._open, "ids": self._episode_ids,
                             "needs_reset": self._obs is None, "carried": self._carried, "rng": global_rng_state()})

    def set_suite_state(self, blob: bytes | None) -> None:
        """Continue exactly where :meth:`get_suite_state` left off."""
        if blob is None or getattr(self, "training_env", None) is None:
            return
        state = pickle.loads(blob)
        self.training_env.close()
        self.training_env = state["env"]
        self.env = _RunnerEnv(self.training_env)
        self._obs = None if state["needs_reset"] else state["obs"]
        self._open, self._episode_ids = state["open"], state["ids"]
        self._carried = state.get("carried", np.zeros((2, self._columns)))  # older checkpoints: episode metrics only
        set_global_rng_state(state["rng"])

    # ------------------------------------------------------------------ sampling

    def _act(self, obs: Any, explore: bool, t: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Actions, their log-probabilities and the distribution inputs of every column: the module's own
        actions, or a draw from its action distribution as RLlib's ``GetActions`` connector makes it."""
        batch = {Columns.OBS: _tensor(_columns(obs, self._columns))}
        module = self.module
        with torch.no_grad():
            out = module.forward_exploration(batch, t=t) if explore else module.forward_inference(batch)
            if Columns.ACTIONS not in out:
                dist_cls = module.get_exploration_action_dist_cls() if explore else \
                    module.get_inference_action_dist_cls()
                dist = dist_cls.from_logits(out[Columns.ACTION_DIST_INPUTS])
                if not explore:
                    dist = dist.to_deterministic()
                out[Columns.ACTIONS] = dist.sample()
                if Columns.ACTION_LOGP not in out:
                    out[Columns.ACTION_LOGP] = dist.logp(out[Columns.ACTIONS])
        return (out[Columns.ACTIONS].numpy(), out[Columns.ACTION_LOGP].numpy(),
                out[Columns.ACTION_DIST_INPUTS].numpy())

    def sample(self, *, num_timesteps: int | None = None, num_episodes: int | None = None, explore: bool | None = None,
               random_actions: bool = False, force_reset: bool = False) -> list[SingleAgentEpisode]:
        """``EnvRunner.sample``: at least ``num_timesteps`` env steps (default: RLlib's rollout fragment length
        times the entries) as ``SingleAgentEpisode`` chunks (see the module docstring)."""
        if num_episodes is not None:
            raise NotImplementedError("BatchedEnvRunner samples a number of env steps (PPO's truncate_episodes)")
        if explore is None:
            explore = self.config.explore
        if num_timesteps is None:
            num_timesteps = self.config.get_rollout_fragment_length(self.worker_index) * self.num_envs
        with self.metrics.log_time(SAMPLE_TIMER):
            episodes, steps, finished = self._sample_steps(num_timesteps, explore, random_actions, force_reset)
        log = self.metrics.log_value
        for key in (NUM_ENV_STEPS_SAMPLED, (NUM_AGENT_STEPS_SAMPLED, DEFAULT_AGENT_ID),
                    (NUM_MODULE_STEPS_SAMPLED, DEFAULT_MODULE_ID)):
            log(key, steps, reduce="sum")
        log(NUM_EPISODES, finished, reduce="sum")
        log(NUM_ENV_STEPS_SAMPLED_LIFETIME, steps, reduce="lifetime_sum", with_throughput=True)
        for key in ((NUM_AGENT_STEPS_SAMPLED_LIFETIME, DEFAULT_AGENT_ID),
                    (NUM_MODULE_STEPS_SAMPLED_LIFETIME, DEFAULT_MODULE_ID)):
            log(key, steps, reduce="lifetime_sum")
        log(NUM_EPISODES_LIFETIME, finished, reduce="lifetime_sum")
        return episodes

    def _sample_steps(self, num_timesteps: int, explore: bool, random_actions: bool,
                      force_reset: bool) -> tuple[list[SingleAgentEpisode], int, int]:
        """The episode chunks of at least ``num_timesteps`` env steps, the env steps and the finished episodes."""
        vector, columns = self.training_env, self._columns
        if force_reset or self._obs is None:
            self._obs, _ = vector.reset(seed=self.seed if self._obs is None else None)
            self._open[:] = False
            self._carried[:] = 0.0
        rollout = {"observations": [_columns(self._obs, columns)], "actions": [], "log_probs": [], "dist_inputs": [],
                   "rewards": [], "terminated": [], "truncated": [], "acted": []}
        lifetime = self.num_env_steps_sampled_lifetime * (self.config.num_env_runners or 1)
        was_training = getattr(self.module, "training", False)
        if was_training:
            self.module.eval()
        try:
            ts = self._step_until(num_timesteps, explore, random_actions, lifetime, rollout)
        finally:
            if was_training:
                self.module.train()
        episodes = self._episodes(_stack(rollout.pop("observations")), *(np.stack(rollout[key]) for key in rollout))
        return episodes, ts, sum(episode.is_done for episode in episodes)

    def _step_until(self, num_timesteps: int, explore: bool, random_actions: bool, lifetime: int,
                    rollout: dict[str, list]) -> int:
        """Step the training env until ``num_timesteps`` env steps, appending each step's arrays to ``rollout``'s
        lists; the env steps taken."""
        vector, columns = self.training_env, self._columns
        ts = 0
        while ts < num_timesteps:
            if random_actions:
                action = np.stack([self.env.single_action_space.sample() for _ in range(columns)])
                log_prob = np.zeros(columns, dtype=np.float32)
                inputs = np.zeros((columns, 0), dtype=np.float32)
            else:
                action, log_prob, inputs = self._act(self._obs, explore, lifetime + ts)
            to_env = unsquash(action, self._box) if self._box is not None else action  # float32, as RLlib does
            self._obs, reward, done, cut, _ = vector.step(to_env.reshape(vector.num_envs, vector.n_agents,
                                                                        *to_env.shape[1:]))
            ts += int(vector.acted.any(axis=1).sum())
            for key, value in (("observations", _columns(self._obs, columns)), ("actions", action),
                               ("log_probs", log_prob), ("dist_inputs", inputs), ("rewards", reward.reshape(-1)),
                               ("terminated", done.reshape(-1)), ("truncated", cut.reshape(-1)),
                               ("acted", vector.acted.reshape(-1).copy())):
                rollout[key].append(value)
        return ts

    def _episodes(self, observations, actions, log_probs, dist_inputs, rewards, terminated, truncated,
                  acted) -> list[SingleAgentEpisode]:
        """Cut the rollout's arrays (steps x columns) into one chunk per column and episode: the finished ones in
        the order they finished (by step, then column), then the ongoing ones by column, as RLlib's runner
        returns them (the Learner's minibatches are drawn from the rows in this order)."""
        ended = (terminated | truncated) & acted
        finished: list[tuple[int, int, SingleAgentEpisode, int, float]] = []
        ongoing: list[SingleAgentEpisode] = []
        for column in range(self._columns):
            steps = np.flatnonzero(acted[:, column])
            if not len(steps):
                continue
            # A chunk ends where its episode ends, or before a step in which the column did not act.
            boundaries = np.flatnonzero(ended[steps[:-1], column] | (np.diff(steps) > 1)) + 1
            for run in np.split(steps, boundaries):
                first, last = int(run[0]), int(run[-1])
                if not (first == 0 and self._open[column]):  # not the continuation of the last chunk's episode
                    self._episode_ids[column] = uuid.uuid4().hex
                    self._carried[:, column] = 0.0
                rows = slice(first, last + 1)
                episode = SingleAgentEpisode(
                    id_=self._episode_ids[column],
                    observations=InfiniteLookbackBuffer(_slice(observations, slice(first, last + 2), column)),
                    infos=InfiniteLookbackBuffer([{} for _ in range(last - first + 2)]),
                    actions=InfiniteLookbackBuffer(actions[rows, column]),
                    rewards=InfiniteLookbackBuffer(rewards[rows, column].astype(np.float64)),
                    extra_model_outputs={Columns.ACTION_LOGP: InfiniteLookbackBuffer(log_probs[rows, column]),
                                         Columns.ACTION_DIST_INPUTS: InfiniteLookbackBuffer(
                                             dist_inputs[rows, column])},
                    terminated=bool(terminated[last, column] and acted[last, column]),
                    truncated=bool(truncated[last, column] and acted[last, column]),
                    observation_space=self.env.single_observation_space,
                    action_space=self.env.single_action_space, len_lookback_buffer=0)
                self._carried[:, column] += (len(episode), float(rewards[rows, column].sum(dtype=np.float64)))
                if episode.is_done:
                    finished.append((last, column, episode, int(self._carried[0, column]),
                                     float(self._carried[1, column])))
                else:
                    ongoing.append(episode)
            last_step = len(acted) - 1
            self._open[column] = bool(acted[last_step, column] and not ended[last_step, column])
        finished.sort(key=lambda item: item[:2])
        self._finished.extend((length, ret) for *_, length, ret in finished)
        del self._finished[:-10_000]  # get_metrics reads the last few; a runner nobody asks keeps no more
        return [item[2] for item in finished] + ongoing

