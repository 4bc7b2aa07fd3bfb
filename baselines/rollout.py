"""Episode bookkeeping over a vector env, shared by training statistics and evaluation."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

import envs
from baselines.base import Policy

__all__ = ["EpisodeTracker", "evaluate"]


@dataclass
class EpisodeTracker:
    """Accumulates per-entry returns and invalid actions of a next-step-autoreset vector env.

    Feed it every ``step`` result; it returns one record per finished episode with ``return``,
    ``length``, ``invalid_steps`` (steps with any inadmissible sub-action), ``invalid_actions``
    (inadmissible sub-actions) and the env's episode metrics at the end. Steps that only reset an
    entry (the step after an episode ended) are not counted.
    """

    num_envs: int
    metrics: tuple[str, ...] = ()
    _return: np.ndarray = field(init=False)
    _length: np.ndarray = field(init=False)
    _invalid_steps: np.ndarray = field(init=False)
    _invalid_actions: np.ndarray = field(init=False)
    _resetting: np.ndarray = field(init=False)
    steps: int = field(init=False, default=0)
    steps_with_invalid: int = field(init=False, default=0)

    def __post_init__(self):
        self._return = np.zeros(self.num_envs)
        self._length = np.zeros(self.num_envs, dtype=np.int64)
        self._invalid_steps = np.zeros(self.num_envs, dtype=np.int64)
        self._invalid_actions = np.zeros(self.num_envs, dtype=np.int64)
        self._resetting = np.zeros(self.num_envs, dtype=bool)

    def update(self, reward: np.ndarray, terminated: np.ndarray, truncated: np.ndarray,
               info: dict[str, Any]) -> list[dict[str, Any]]:
        stepped = ~self._resetting
        invalid = np.asarray(info["invalid_actions"])
        self.steps += int(stepped.sum())
        self.steps_with_invalid += int(((invalid > 0) & stepped).sum())
        self._return[stepped] += reward[stepped]
        self._length[stepped] += 1
        self._invalid_steps[stepped] += invalid[stepped] > 0
        self._invalid_actions[stepped] += invalid[stepped]
        done = (terminated | truncated) & stepped
        finished = []
        for i in np.flatnonzero(done):  # once per finished episode, not per step
            record = {"env_index": int(i), "return": float(self._return[i]), "length": int(self._length[i]),
                      "invalid_steps": int(self._invalid_steps[i]), "invalid_actions": int(self._invalid_actions[i])}
            for key in self.metrics:
                record[key] = float(info[key][i])
            finished.append(record)
        self._return[done] = 0.0
        self._length[done] = 0
        self._invalid_steps[done] = 0
        self._invalid_actions[done] = 0
        self._resetting = done
        return finished


def evaluate(env_name: str, env_config: dict[str, Any], policy: Policy, *, episodes: int,
             seed_base: int, rng: np.random.Generator, max_batch: int = 256,
             max_steps: int = 1_000_000) -> list[dict[str, Any]]:
    """Play ``episodes`` episodes, episode i on env seed ``seed_base + i``, batched.

    Returns one record per episode (see :class:`EpisodeTracker`) with ``episode`` and ``env_seed``.
    """
    records: list[dict[str, Any]] = []
    for start in range(0, episodes, max_batch):
        n = min(max_batch, episodes - start)
        env = envs.make_vector(env_name, n, **env_config)
        tracker = EpisodeTracker(n, env.core.episode_metrics)
        obs, _ = env.reset(seed=[seed_base + start + i for i in range(n)])
        done = np.zeros(n, dtype=bool)
        batch_records: dict[int, dict[str, Any]] = {}
        for _ in range(max_steps):
            if done.all():
                break
            obs, reward, terminated, truncated, info = env.step(policy(obs, rng, env))
            for record in tracker.update(reward, terminated, truncated, info):
                i = record.pop("env_index")
                if not done[i]:
                    batch_records[i] = {"episode": start + i, "env_seed": seed_base + start + i, **record}
                    done[i] = True
        if not done.all():
            raise RuntimeError(f"evaluation on {env_name!r}: {int((~done).sum())} episode(s) still running "
                               f"after {max_steps} steps; does the env ever end an episode?")
        env.close()
        records.extend(batch_records[i] for i in range(n))
    return records
