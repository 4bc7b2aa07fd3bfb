"""Episode bookkeeping over a vector env, shared by training statistics and evaluation."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

import envs
from baselines.base import Policy

__all__ = ["EpisodeTracker", "evaluate", "progress_row"]


@dataclass
class EpisodeTracker:
    """Accumulates per-entry returns and invalid actions of a vector env.

    Feed it every ``step`` result; it returns one record per finished episode with ``return``,
    ``length``, ``invalid_steps`` (steps with any inadmissible sub-action), ``invalid_actions``
    (inadmissible sub-actions) and the env's episode metrics at the end. With
    ``next_step_autoreset`` (Gymnasium's and the suite's vector envs), steps that only reset an
    entry (the step after an episode ended) are not counted; without it (an env that resets
    within the step that ends an episode, as Stable-Baselines3's ``VecEnv`` does), every step counts.
    """

    num_envs: int
    metrics: tuple[str, ...] = ()
    next_step_autoreset: bool = True
    _return: np.ndarray = field(init=False)
    _length: np.ndarray = field(init=False)
    _invalid_steps: np.ndarray = field(init=False)
    _invalid_actions: np.ndarray = field(init=False)
    _resetting: np.ndarray = field(init=False)
    steps: int = field(init=False, default=0)
    steps_with_invalid: int = field(init=False, default=0)
    _finished: list = field(init=False, default_factory=list)
    _drained: tuple[int, int] = field(init=False, default=(0, 0))

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
        self._resetting = done if self.next_step_autoreset else self._resetting
        self._finished += finished
        return finished

    def drain(self) -> dict[str, Any]:
        """Steps, steps with an inadmissible sub-action and finished episodes since the last drain."""
        out = {"steps": self.steps - self._drained[0], "invalid_steps": self.steps_with_invalid - self._drained[1],
               "episodes": self._finished}
        self._drained, self._finished = (self.steps, self.steps_with_invalid), []
        return out


def progress_row(*, env_steps: int, episodes: int, steps: int, invalid_steps: int, finished: list[dict[str, Any]],
                 seconds: float, learner: dict[str, float]) -> dict[str, float]:
    """One ``progress.csv`` row of a learner's iteration (see ``Algorithm.train_iteration``).

    ``env_steps`` / ``episodes``: cumulative counts; ``steps``, ``invalid_steps`` and ``finished``
    (:class:`EpisodeTracker` records): this iteration's; ``seconds``: its wall time; ``learner``:
    the learner's statistics (``entropy``, ``policy_loss``, ``vf_loss``, ``vf_explained_var``,
    ``lr``; missing ones are NaN). Episode metrics become ``<metric>_mean`` columns.
    """
    returns = np.array([f["return"] for f in finished]) if finished else np.array([np.nan])
    row = {"env_steps": env_steps, "episodes": episodes,
           "episode_return_mean": float(np.mean(returns)), "episode_return_min": float(np.min(returns)),
           "episode_return_max": float(np.max(returns)),
           "invalid_action_rate": invalid_steps / steps if steps else float("nan")}
    for key in ("entropy", "policy_loss", "vf_loss", "vf_explained_var", "lr"):
        row[key] = float(learner.get(key, np.nan))
    row["env_steps_per_second"] = steps / seconds if seconds > 0 else float("nan")
    metrics = finished[0].keys() - {"env_index", "return", "length", "invalid_steps", "invalid_actions"} \
        if finished else ()
    for key in sorted(metrics):
        row[f"{key}_mean"] = float(np.mean([f[key] for f in finished]))
    return row


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
