"""Episode bookkeeping over a vector env, shared by training statistics and evaluation, and the
``progress.csv`` row every algorithm reports."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["EpisodeTracker", "merge_drains", "progress_row", "agent_columns", "VIOLATIONS", "VIOLATION_DISTANCE",
           "RECORD_KEYS", "LEARNER_KEYS"]

#: Prefix of the per-constraint violation counts of an episode record (``violations_C1``) and of
#: ``progress.csv``'s rates (``violation_rate_C1``).
VIOLATIONS = "violations_"
#: The summed distance of an episode's attempted Box actions to the admissible set.
VIOLATION_DISTANCE = "violation_distance"
#: The learner statistics every PPO backend reports (a method may add its own).
LEARNER_KEYS = ("entropy", "policy_loss", "vf_loss", "vf_explained_var", "lr")
#: The keys every episode record has (the rest: violations and the env's metrics).
RECORD_KEYS = ("env_index", "return", "length", "invalid_steps", "invalid_actions")


@dataclass
class EpisodeTracker:
    """Accumulates per-entry returns, invalid actions and violations of a vector env.

    Feed it every ``step`` result; it returns one record per finished episode with ``return``,
    ``length``, ``invalid_steps`` (steps with any inadmissible sub-action), ``invalid_actions``
    (inadmissible sub-actions), ``violations_<name>`` per constraint in ``constraints`` (steps whose
    attempted action violated it, before the env's fallback), for Box envs (``box``)
    ``violation_distance`` (the summed Euclidean distance of the attempted actions to the admissible
    set) and the env's episode metrics at the end. With ``next_step_autoreset`` (Gymnasium's and the
    suite's vector envs), steps that only reset an entry (the step after an episode ended) are not
    counted; without it (an env that resets within the step that ends an episode, as
    Stable-Baselines3's ``VecEnv`` does), every step counts. Arrays may have any shape that flattens
    to ``num_envs`` entries: a multi-agent vector env's ``(N, agents)`` arrays are ``N * agents``
    entries, one per agent (``env_index = i * agents + j``). :meth:`of` takes the metrics,
    constraints and action space from an env core.
    """

    num_envs: int
    metrics: tuple[str, ...] = ()
    next_step_autoreset: bool = True
    constraints: tuple[str, ...] = ()
    box: bool = False
    _return: np.ndarray = field(init=False)
    _length: np.ndarray = field(init=False)
    _invalid_steps: np.ndarray = field(init=False)
    _invalid_actions: np.ndarray = field(init=False)
    _violations: np.ndarray = field(init=False)
    _distance: np.ndarray = field(init=False)
    _resetting: np.ndarray = field(init=False)
    steps: int = field(init=False, default=0)
    steps_with_invalid: int = field(init=False, default=0)
    #: Steps whose attempted action violated each constraint, and the summed distance (Box), since the start.
    violation_steps: np.ndarray = field(init=False)
    violation_distance: float = field(init=False, default=0.0)
    _finished: list = field(init=False, default_factory=list)
    _drained: tuple = field(init=False, default=(0, 0, None, 0.0))

    @classmethod
    def of(cls, core: Any, num_envs: int, *, next_step_autoreset: bool = True) -> EpisodeTracker:
        """A tracker of ``num_envs`` entries of ``core``'s env: its metrics, constraint names and action kind."""
        return cls(num_envs, tuple(core.episode_metrics), next_step_autoreset,
                   tuple(c.name for c in core.constraints), not core.discrete)

    def __post_init__(self):
        self._return = np.zeros(self.num_envs)
        self._length = np.zeros(self.num_envs, dtype=np.int64)
        self._invalid_steps = np.zeros(self.num_envs, dtype=np.int64)
        self._invalid_actions = np.zeros(self.num_envs, dtype=np.int64)
        self._violations = np.zeros((self.num_envs, len(self.constraints)), dtype=np.int64)
        self._distance = np.zeros(self.num_envs)
        self._resetting = np.zeros(self.num_envs, dtype=bool)
        self.violation_steps = np.zeros(len(self.constraints), dtype=np.int64)
        self._drained = (0, 0, self.violation_steps.copy(), 0.0)

    def _violated(self, info: dict[str, Any], invalid: np.ndarray) -> np.ndarray:
        """``(num_envs, n_constraints)`` bool from ``info["violated"]``: the core's bool array, the vector view's
        ``violated_flags`` (the same array) or its lists of names (only entries with an inadmissible sub-action
        are read)."""
        violated = info.get("violated_flags", info.get("violated"))
        if violated is None or not self.constraints:
            return np.zeros((self.num_envs, len(self.constraints)), dtype=bool)
        violated = np.asarray(violated)
        if violated.dtype == bool:
            return violated.reshape(self.num_envs, len(self.constraints))
        out = np.zeros((self.num_envs, len(self.constraints)), dtype=bool)
        index = {name: k for k, name in enumerate(self.constraints)}
        flat = violated.reshape(-1)
        for i in np.flatnonzero(invalid > 0):
            for name in flat[i]:
                out[i, index[name]] = True
        return out

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
        if (invalid[stepped] > 0).any():
            violated = self._violated(info, invalid) & stepped[:, None]
            self._violations += violated
            self.violation_steps += violated.sum(axis=0)
            if self.box and "violation_distance" in info:
                distance = np.where(stepped, np.reshape(info["violation_distance"], -1), 0.0)
                self._distance += distance
                self.violation_distance += float(distance.sum())
        done = (terminated | truncated) & stepped
        finished = []
        for i in np.flatnonzero(done):  # once per finished episode, not per step
            record = {"env_index": int(i), "return": float(self._return[i]), "length": int(self._length[i]),
                      "invalid_steps": int(self._invalid_steps[i]), "invalid_actions": int(self._invalid_actions[i])}
            counts = zip(self.constraints, self._violations[i].tolist())
            record.update({f"{VIOLATIONS}{name}": count for name, count in counts})
            if self.box:
                record[VIOLATION_DISTANCE] = float(self._distance[i])
            for key in self.metrics:
                record[key] = float(np.reshape(info[key], -1)[i])
            finished.append(record)
        for accumulator in (self._return, self._length, self._invalid_steps, self._invalid_actions, self._violations,
                            self._distance):
            accumulator[done] = 0
        self._resetting = done if self.next_step_autoreset else self._resetting
        self._finished += finished
        return finished

    def abandon_running(self) -> None:
        """Forget the episodes in flight, steps included (their env was reset before they ended, as RLlib's
        env checker does before training)."""
        # Only what was not yet drained can be taken back (a drain may have reported part of the episode).
        steps, invalid, violations, distance = self._drained
        self.steps -= min(int(self._length.sum()), self.steps - steps)
        self.steps_with_invalid -= min(int(self._invalid_steps.sum()), self.steps_with_invalid - invalid)
        self.violation_steps -= np.minimum(self._violations.sum(axis=0), self.violation_steps - violations)
        self.violation_distance -= min(float(self._distance.sum()), self.violation_distance - distance)
        for accumulator in (self._return, self._length, self._invalid_steps, self._invalid_actions, self._violations,
                            self._distance):
            accumulator[:] = 0
        self._resetting[:] = False

    def drain(self) -> dict[str, Any]:
        """Since the last drain: steps, steps with an inadmissible sub-action, finished episodes, steps
        violating each constraint (``violations``, name -> count) and, for Box envs, the summed distance of
        the attempted actions to the admissible set (``violation_distance``; None for discrete envs)."""
        steps, invalid, violations, distance = self._drained
        out = {"steps": self.steps - steps, "invalid_steps": self.steps_with_invalid - invalid,
               "episodes": self._finished,
               "violations": dict(zip(self.constraints, (self.violation_steps - violations).tolist())),
               "violation_distance": self.violation_distance - distance if self.box else None}
        self._drained = (self.steps, self.steps_with_invalid, self.violation_steps.copy(), self.violation_distance)
        self._finished = []
        return out


def merge_drains(parts: list[dict[str, Any]]) -> dict[str, Any]:
    """Several :meth:`EpisodeTracker.drain` results (RLlib's runners, sb3's envs) as one."""
    out: dict[str, Any] = {"steps": 0, "invalid_steps": 0, "episodes": [], "violations": {},
                           "violation_distance": None}
    for part in parts:
        out["steps"] += part["steps"]
        out["invalid_steps"] += part["invalid_steps"]
        out["episodes"] += part["episodes"]
        for name, count in part.get("violations", {}).items():
            out["violations"][name] = out["violations"].get(name, 0) + count
        if part.get("violation_distance") is not None:
            out["violation_distance"] = (out["violation_distance"] or 0.0) + part["violation_distance"]
    return out


def progress_row(*, env_steps: int, episodes: int, steps: int, invalid_steps: int, finished: list[dict[str, Any]],
                 seconds: float, learner: dict[str, float] | None = None, agent_steps: int | None = None,
                 agent_ids: list[str] | None = None, violations: dict[str, int] | None = None,
                 violation_distance: float | None = None, enforcement_seconds: float | None = None
                 ) -> dict[str, float]:
    """One ``progress.csv`` row of an iteration (see ``Algorithm.train_iteration``).

    ``env_steps`` / ``episodes``: cumulative counts; ``steps``, ``invalid_steps`` and ``finished``
    (:class:`EpisodeTracker` records): this iteration's; ``seconds``: its wall time; ``learner``:
    a learner's statistics (``entropy``, ``policy_loss``, ``vf_loss``, ``vf_explained_var``,
    ``lr``; missing ones are NaN; None: not a learner, no such columns). Episode metrics become
    ``<metric>_mean`` columns.

    Several agents: ``steps`` counts env steps (all agents act in one), ``agent_steps`` the agents'
    steps, the unit of ``invalid_steps`` and of ``invalid_action_rate``; ``agent_ids`` adds
    :func:`agent_columns` and ``agent_steps_per_second``. Returns and metrics are per agent-episode.

    Constraints (:meth:`EpisodeTracker.drain`): ``violations`` (name -> steps whose attempted action
    violated it) become ``violation_rate_<name>`` (per agent step); ``violation_distance`` (Box: the
    summed distance of attempted actions to the admissible set) becomes ``violation_distance_mean``,
    per step with an inadmissible action; ``enforcement_seconds`` (time in masks, admissibility checks
    and projections) becomes ``enforcement_share`` of the iteration's wall time.
    """
    returns = np.array([f["return"] for f in finished]) if finished else np.array([np.nan])
    acting = steps if agent_steps is None else agent_steps
    row = {"env_steps": env_steps, "episodes": episodes,
           "episode_return_mean": float(np.mean(returns)), "episode_return_min": float(np.min(returns)),
           "episode_return_max": float(np.max(returns)),
           "invalid_action_rate": invalid_steps / acting if acting else float("nan")}
    if learner is not None:
        for key in LEARNER_KEYS:
            row[key] = float(learner.get(key, np.nan))
        for key in sorted(set(learner) - set(LEARNER_KEYS)):  # a method's own (e.g. the Lagrange multiplier)
            row[key] = float(learner[key])
    row["env_steps_per_second"] = steps / seconds if seconds > 0 else float("nan")
    for name, count in (violations or {}).items():
        row[f"violation_rate_{name}"] = count / acting if acting else float("nan")
    if violation_distance is not None:
        row[f"{VIOLATION_DISTANCE}_mean"] = violation_distance / invalid_steps if invalid_steps else float("nan")
    if enforcement_seconds is not None:
        row["enforcement_share"] = enforcement_seconds / seconds if seconds > 0 else float("nan")
    metrics = [key for key in finished[0] if key not in RECORD_KEYS and not key.startswith(VIOLATIONS)
               and key != VIOLATION_DISTANCE] if finished else ()
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
