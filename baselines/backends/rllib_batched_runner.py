"""The RLlib backend's EnvRunner: the suite's batched training env stepped as whole arrays.

RLlib's own ``SingleAgentEnvRunner`` steps a vector env but treats each entry one at a time: per step
and entry it unbatches observations, runs its env-to-module and module-to-env connector pipelines and
appends to an episode object (measured on portfolio: about 1.3 s of an 8,192-step iteration, against
0.13 s for the same rollout as arrays); for several agents RLlib 2.60 steps a list of single envs, one
episode at a time. :class:`BatchedEnvRunner` keeps everything RLlib's Learner, checkpoints, Tune and
remote EnvRunner actors rely on (it *is* a ``SingleAgentEnvRunner``: the same module, weights sync,
metrics and state) and replaces the sampling loop:

- the env is :class:`baselines.training_env.MultiAgentTrainingVector` (the torch backend's: the
  statistics, observation transform, mask, action mapping and penalty of every backend), its
  ``num_envs x n_agents`` agents being the runner's columns; one agent is the case k = 1, and
  several agents share the module (parameter sharing: each agent's steps are one column's episode);
- each step runs the module once on every column (``forward_exploration``), samples the actions
  from its action distribution as RLlib's ``GetActions`` connector does (or takes the module's own,
  as naive masking returns), unsquashes Box actions as ``NormalizeAndClipActions`` does, and steps the
  env with one array;
- the rollout is kept as arrays and cut into ``SingleAgentEpisode`` chunks at the end, one per
  column and episode, already in numpy (the form RLlib's ``to_numpy`` gives), with the actions'
  log-probabilities and distribution inputs the PPO loss reads; an episode still running continues
  in the next call's chunk (same id), as RLlib's own runner cuts it.

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
from ray.rllib.core.columns import Columns
from ray.rllib.core.distribution.torch.torch_distribution import TorchCategorical, TorchMultiCategorical
from ray.rllib.core.rl_module.torch.torch_rl_module import TorchRLModule
from ray.rllib.env.single_agent_env_runner import SingleAgentEnvRunner
from ray.rllib.env.single_agent_episode import SingleAgentEpisode
from ray.rllib.env.utils.infinite_lookback_buffer import InfiniteLookbackBuffer

from baselines.training_env import MultiAgentTrainingVector, TrainingContext, unsquash

__all__ = ["BatchedEnvRunner", "categorical_sample", "global_rng_state", "set_global_rng_state"]


def global_rng_state() -> dict[str, Any]:
    """This process's global generators: torch's (RLlib samples actions from it), numpy's (RLlib's Learner
    shuffles minibatches with it) and Python's."""
    return {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate()}


def set_global_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])


def categorical_sample(dist_cls, logits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor] | None:
    """``dist_cls.from_logits(logits)``'s ``sample()`` and the sample's ``logp``, as RLlib's ``TorchCategorical``
    and ``TorchMultiCategorical`` (the default PPO module's distributions) compute them, with the same draws
    from torch's generator and the same bits, without building a torch ``Categorical`` per sub-action
    (about a fifth of the sampling time). None for any other distribution class: the caller uses it."""
    if dist_cls is TorchCategorical:
        nvec = None
    elif dist_cls.__mro__[1] is TorchMultiCategorical and hasattr(dist_cls, "_merge_kwargs"):
        nvec = [int(n) for n in dist_cls._merge_kwargs()["input_lens"]]  # RLlib's partial class, with its lens
    else:
        return None
    blocks = [logits] if nvec is None else torch.split(logits, nvec, dim=-1)
    normalized = [block - block.logsumexp(dim=-1, keepdim=True) for block in blocks]  # torch's Categorical
    samples = [torch.multinomial(torch.softmax(n, dim=-1).reshape(-1, n.shape[-1]), 1, True).T.reshape(n.shape[:-1])
               for n in normalized]
    log_probs = [n.gather(-1, sample.long().unsqueeze(-1)).squeeze(-1) for n, sample in zip(normalized, samples)]
    if nvec is None:
        return samples[0], log_probs[0]
    return torch.stack(samples, dim=-1), torch.sum(torch.stack(log_probs), dim=0)


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
        self._needs_initial_reset = True
        self._obs: Any = None
        self._open = np.zeros(self._columns, dtype=bool)  # columns whose episode continues into the next chunk
        self._episode_ids = [uuid.uuid4().hex for _ in range(self._columns)]

    def get_metrics(self):
        """RLlib's metrics, with the per-episode ones logged only for the finished episodes their window keeps.

        ``SingleAgentEnvRunner.get_metrics`` logs nine values per finished episode (about 400 per portfolio
        iteration) into windows of ``ceil(metrics_num_episodes_for_smoothing / num_env_runners)`` values (the
        suite sets 1): the windows hold the same values, and so report the same, when only the last episodes
        are logged. The earlier ones' chunks are dropped from the ongoing-episode cache as RLlib drops them."""
        window = max(1, math.ceil(self.config.metrics_num_episodes_for_smoothing / (self.config.num_env_runners or 1)))
        done = self._done_episodes_for_metrics
        for episode in done[:-window]:
            self._ongoing_episodes_for_metrics.pop(episode.id_, None)
        del done[:-window]
        return super().get_metrics()

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
                             "needs_reset": self._needs_initial_reset, "rng": global_rng_state()})

    def set_suite_state(self, blob: bytes | None) -> None:
        """Continue exactly where :meth:`get_suite_state` left off."""
        if blob is None or getattr(self, "training_env", None) is None:
            return
        state = pickle.loads(blob)
        self.training_env.close()
        self.training_env = state["env"]
        self.env = _RunnerEnv(self.training_env)
        self._obs, self._open, self._episode_ids = state["obs"], state["open"], state["ids"]
        self._needs_initial_reset = state["needs_reset"]
        set_global_rng_state(state["rng"])

    # ------------------------------------------------------------------ sampling

    def _act(self, obs: Any, explore: bool, t: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Actions, their log-probabilities and the distribution inputs of every column, as RLlib's default
        module-to-env pipeline computes them (``GetActions``)."""
        batch = {Columns.OBS: _tensor(_columns(obs, self._columns))}
        module = self.module
        with torch.no_grad():
            if type(module).forward_exploration is TorchRLModule.forward_exploration and \
                    type(module).forward_inference is TorchRLModule.forward_inference and not module.training:
                # What TorchRLModule's forward_* do, without switching every submodule to eval mode and back
                # each step (a tenth of the sampling time): _sample puts the module in eval mode once.
                out = module._forward_exploration(batch, t=t) if explore else module._forward_inference(batch)
            else:
                out = module.forward_exploration(batch, t=t) if explore else module.forward_inference(batch)
            sampled = None
            if explore and Columns.ACTIONS not in out and Columns.ACTION_LOGP not in out:
                sampled = categorical_sample(module.get_exploration_action_dist_cls(),
                                             out[Columns.ACTION_DIST_INPUTS])
            if sampled is not None:
                out[Columns.ACTIONS], out[Columns.ACTION_LOGP] = sampled
            elif Columns.ACTIONS not in out:
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

    def _sample(self, *, num_timesteps: int | None = None, num_episodes: int | None = None, explore: bool,
                random_actions: bool = False, force_reset: bool = False) -> list[SingleAgentEpisode]:
        if num_episodes is not None or num_timesteps is None:
            raise NotImplementedError("BatchedEnvRunner samples a number of env steps (PPO's truncate_episodes)")
        vector, columns = self.training_env, self._columns
        if force_reset or self._needs_initial_reset:
            self._obs, _ = vector.reset(seed=self._seed if self._needs_initial_reset else None)
            self._open[:] = False
            self._needs_initial_reset = False
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
        done = [episode for episode in episodes if episode.is_done]
        self._done_episodes_for_metrics.extend(done)
        for episode in episodes:
            if not episode.is_done:
                self._ongoing_episodes_for_metrics[episode.id_].append(episode)
        self._log_env_steps(metric=self._metrics_num_env_steps_sampled, num_steps=ts)
        self._increase_sampled_metrics(ts, len(done))
        return episodes

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
        finished: list[tuple[int, int, SingleAgentEpisode]] = []
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
                if episode.is_done:
                    finished.append((last, column, episode))
                else:
                    ongoing.append(episode)
            last_step = len(acted) - 1
            self._open[column] = bool(acted[last_step, column] and not ended[last_step, column])
        return [episode for _, _, episode in sorted(finished, key=lambda item: item[:2])] + ongoing

