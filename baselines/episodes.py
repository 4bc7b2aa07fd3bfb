"""Episode bookkeeping over a vector env, shared by training statistics and evaluation, and the
``progress.csv`` row every algorithm reports."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["EpisodeTracker", "progress_row", "agent_columns"]


@dataclass
class EpisodeTracker:
    """Accumulates per-entry returns and invalid actions of a vector env.

    Feed it every ``step`` result; it returns one record per finished episode with ``return``,
    ``length``, ``invalid_steps`` (steps with any inadmissible sub-action), ``invalid_actions``
    (inadmissible sub-actions) and the env's episode metrics at the end. With
    ``next_step_autoreset`` (Gymnasium's and the suite's vector envs), steps that only reset an
    entry (the step after an episode ended) are not counted; without it (an env that resets
    within the step that ends an episode, as Stable-Baselines3's ``VecEnv`` does), every step counts.
    Arrays may have any shape that flattens to ``num_envs`` entries: a multi-agent vector env's
    ``(N, agents)`` arrays are ``N * agents`` entries, one per agent (``env_index = i * agents + j``).
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
               info: dict[str, Any], active: np.ndarray | None = None) -> list[dict[str, Any]]:
        """Record one step; ``active`` (bool per entry, default all) leaves out entries that did not act
        (agents that already left a multi-agent episode). Returns the episodes that ended."""
        stepped = ~self._resetting if active is None else ~self._resetting & np.reshape(active, -1)
        reward, terminated, truncated = np.reshape(reward, -1), np.reshape(terminated, -1), np.reshape(truncated, -1)
        invalid = np.reshape(info["invalid_actions"], -1)
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
                record[key] = float(np.reshape(info[key], -1)[i])
            finished.append(record)
        self._return[done] = 0.0
        self._length[done] = 0
        self._invalid_steps[done] = 0
        self._invalid_actions[done] = 0
        self._resetting = done if self.next_step_autoreset else self._resetting
        self._finished += finished
        return finished

    def abandon_running(self) -> None:
        """Forget the episodes in flight, steps included (their env was reset before they ended, as RLlib's
        env checker does before training)."""
        # Only steps not yet drained can be taken back (a drain may have reported part of the episode).
        self.steps -= min(int(self._length.sum()), self.steps - self._drained[0])
        self.steps_with_invalid -= min(int(self._invalid_steps.sum()), self.steps_with_invalid - self._drained[1])
        for accumulator in (self._return, self._length, self._invalid_steps, self._invalid_actions):
            accumulator[:] = 0
        self._resetting[:] = False

    def drain(self) -> dict[str, Any]:
        """Steps, steps with an inadmissible sub-action and finished episodes since the last drain."""
        out = {"steps": self.steps - self._drained[0], "invalid_steps": self.steps_with_invalid - self._drained[1],
               "episodes": self._finished}
        self._drained, self._finished = (self.steps, self.steps_with_invalid), []
        return out


def progress_row(*, env_steps: int, episodes: int, steps: int, invalid_steps: int, finished: list[dict[str, Any]],
                 seconds: float, learner: dict[str, float] | None = None, agent_steps: int | None = None,
                 agent_ids: list[str] | None = None) -> dict[str, float]:
    """One ``progress.csv`` row of an iteration (see ``Algorithm.train_iteration``).

    ``env_steps`` / ``episodes``: cumulative counts; ``steps``, ``invalid_steps`` and ``finished``
    (:class:`EpisodeTracker` records): this iteration's; ``seconds``: its wall time; ``learner``:
    a learner's statistics (``entropy``, ``policy_loss``, ``vf_loss``, ``vf_explained_var``,
    ``lr``; missing ones are NaN; None: not a learner, no such columns). Episode metrics become
    ``<metric>_mean`` columns.

    Several agents: ``steps`` counts env steps (all agents act in one), ``agent_steps`` the agents'
    steps, the unit of ``invalid_steps`` and of ``invalid_action_rate``; ``agent_ids`` adds
    :func:`agent_columns` and ``agent_steps_per_second``. Returns and metrics are per agent-episode.
    """
    returns = np.array([f["return"] for f in finished]) if finished else np.array([np.nan])
    acting = steps if agent_steps is None else agent_steps
    row = {"env_steps": env_steps, "episodes": episodes,
           "episode_return_mean": float(np.mean(returns)), "episode_return_min": float(np.min(returns)),
           "episode_return_max": float(np.max(returns)),
           "invalid_action_rate": invalid_steps / acting if acting else float("nan")}
    if learner is not None:
        for key in ("entropy", "policy_loss", "vf_loss", "vf_explained_var", "lr"):
            row[key] = float(learner.get(key, np.nan))
    row["env_steps_per_second"] = steps / seconds if seconds > 0 else float("nan")
    metrics = finished[0].keys() - {"env_index", "return", "length", "invalid_steps", "invalid_actions"} \
        if finished else ()
    for key in sorted(metrics):
        row[f"{key}_mean"] = float(np.mean([f[key] for f in finished]))
    if agent_ids:
        row["agent_steps_per_second"] = acting / seconds if seconds > 0 else float("nan")
        row.update(agent_columns(finished, agent_ids))
    return row


def agent_columns(finished: list[dict[str, Any]], agent_ids: list[str]) -> dict[str, float]:
    """Per-agent ``progress.csv`` columns of a multi-agent iteration, from its finished episodes.

    ``finished`` are :class:`EpisodeTracker` records over ``(N, agents)`` entries (agent ``j`` is
    ``env_index % agents``): ``<agent>_episode_return_mean`` and ``<agent>_invalid_action_rate``
    (the fraction of that agent's steps in those episodes with an inadmissible sub-action).
    """
    columns: dict[str, float] = {}
    for j, agent in enumerate(agent_ids):
        mine = [f for f in finished if f["env_index"] % len(agent_ids) == j]
        steps = sum(f["length"] for f in mine)
        columns[f"{agent}_episode_return_mean"] = float(np.mean([f["return"] for f in mine])) if mine else math.nan
        columns[f"{agent}_invalid_action_rate"] = sum(f["invalid_steps"] for f in mine) / steps if steps else math.nan
    return columns
