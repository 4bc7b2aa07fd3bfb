"""Job-shop scheduling by dispatching, with published instances and a solver's optimum (``job_shop``).

| | |
| --- | --- |
| Action space | ``Discrete(n_jobs)``: the job whose next operation is scheduled now |
| Observation | ``Dict(observation=Box((n_jobs * n_machines * (3 + n_machines) + n_machines,)),`` |
| | ``action_mask=Box(0, 1, (n_jobs,), int8))``; ``job_features=True``: ``+ 6 * n_jobs`` entries |
| Constraint | ``C1``: the job has an unscheduled operation |
| Placement | ``semi_active`` (default: appended on its machine) or ``active`` (L2D's left shift into a gap) |
| Episode | exactly ``n_jobs * n_machines`` steps (one operation each) |
| Return | ``-(makespan - initial lower bound)`` (time units) |
| Reference 100 | the solver's optimum, replayed (``job_shop_optimum``) |

## Description

``n_jobs`` jobs are processed on ``n_machines`` machines. Each job is a fixed sequence of
``n_machines`` operations, operation ``k`` of job ``j`` running on machine ``machines[j, k]`` for
``durations[j, k]`` time units without interruption; every job visits every machine once; a machine
runs one operation at a time. The goal is the smallest **makespan**, the time the last operation ends.

The agent builds the schedule by **dispatching**, as in Zhang et al. (2020, "Learning to Dispatch for
Job Shop Scheduling via Deep Reinforcement Learning", L2D): each step it picks a job, and the job's next
operation is placed on its machine as the setting ``placement`` says (see "Placement"). By default
(``semi_active``) it goes at ``max(the job's previous operation's end, its machine's last end)``: appended
after everything already on its machine. With ``placement="active"`` it is left-shifted, as L2D's env does,
into the earliest idle gap of its machine where it fits after the job's previous operation. Under either
placement every semi-active schedule, an optimal one included, is reachable: dispatching the operations of
any feasible schedule in order of their start times places each at or before its start there (the proof is in
:mod:`baselines.references.job_shop_optimum`), so nothing is lost by appending.

Instances are drawn per episode from the env's generator in **Taillard's style** (Taillard 1993): every
duration uniform on ``duration_low .. duration_high`` (1..99), every job's machine order a uniformly
random permutation. Or ``instance`` names a classic published instance (shipped with the suite, in
OR-Library format, under ``envs/job_shop_instances/``), or the path of a file in that format, played
every episode:

| instance | jobs x machines | optimum | source |
| --- | --- | --- | --- |
| ``ft06`` | 6 x 6 | 55 | Fisher & Thompson (1963) |
| ``la01`` .. ``la05`` | 10 x 5 | 666, 655, 597, 590, 593 | Lawrence (1984) |

(Data from the OR-Library's ``jobshop1.txt``, Beasley 1990; optima as published, e.g. JSPLIB's
``instances.json``; the tests reproduce each by solving it, :func:`classic_instances` lists them.)

## Action Space

``Discrete(n_jobs)``: the job whose next operation is dispatched.

## Constraints (the action mask)

- ``C1 job-open``: the job has an unscheduled operation (some operation of it has no start time yet).

The mask reads the job's operation counter (``next_op[j] < n_machines``); the C1 predicate reads the
schedule itself (an operation of the job without a start time), so ``suite.check`` compares two
representations. Until the episode ends some job has an operation left, so the mask is never empty
where the agent acts; at the end it is empty and the episode is over. The admissible set shrinks
within an episode as jobs finish: every action is admissible at the start, one at the last steps.

An inadmissible action is reported in ``info["invalid_actions"]`` / ``info["violated"]`` and executed as the
setting ``invalid_action`` says (with ``strict=True`` it raises ``ValueError`` naming C1 instead):

- ``repair`` (the default, the env's published behaviour): the **nearest admissible job** to the attempted
  index (the lower index on a tie).
- ``noop``: the attempted job is not dispatched; the **lowest-index open job** is, whatever the attempt. This
  is *not* a true no-op, which a dispatching env cannot have: a step that dispatches nothing would leave the
  state as it was, so an episode would no longer have its fixed ``n_jobs * n_machines`` steps (a policy that
  keeps picking a finished job would never end it), and with L2D's reward (the growth of the makespan lower
  bound) stalling would cost nothing: a schedule left unfinished would score better than any finished one.
  A fixed default dispatch keeps the episode and the reward's meaning and, like a no-op, does not depend on
  the attempt (the agent gains nothing from how near its inadmissible choice was).

## Placement

The setting ``placement`` says where a dispatched operation ``o`` of job ``j`` on machine ``k`` (duration ``d``)
starts, given ``r``, the end of ``j``'s previous operation (0 for its first):

- ``semi_active`` (the default, v0's only placement): at ``max(r, the latest end on k)``, after every operation
  already on ``k``. The schedule's operations on each machine are in the order they were dispatched.
- ``active`` (L2D's ``permissibleLS.py``): the operations already on ``k`` sorted by start leave idle gaps (before
  the first, between two); ``o`` starts at ``max(r, the gap's start)`` in the earliest gap where that leaves
  room for ``d`` before the gap's end, else as ``semi_active``. An operation can then run before ones dispatched
  earlier on its machine; nothing already placed moves.

For the same dispatch order no operation starts later under ``active`` than under ``semi_active`` (by induction
over the order: each operation's job is free no later, its machine's latest end is no later, and a left shift
only moves it earlier), so neither the makespan. The mask, the reward's definition (``H`` below), the
observation's layout and the episode length are the same under both; a dispatching rule plays the one its key
picks. FIFO (the job whose previous operation ended first) builds the same schedule under both: the ready times
it dispatches never decrease, and every gap on a machine ends at the start of an operation that started at its
own job's ready time, so no gap lies after the job's ready time. SPT is where they differ most (the
``results/job_shop/`` report has the numbers).

## Observation Space

``obs["observation"]``, float32, operation by operation (job-major: operation ``k`` of job ``j`` is row
``j * n_machines + k``), ``3 + n_machines`` entries each, then one entry per machine:

| entry | meaning | range |
| --- | --- | --- |
| 0 | the operation's completion-time lower bound ``C_LB`` / ``time_scale`` (L2D) | 0 .. n_jobs |
| 1 | scheduled (1) or not (0) (L2D) | 0, 1 |
| 2 | duration / ``duration_scale`` | 0 .. 1 |
| 3 .. 2 + n_machines | its machine, one-hot | 0, 1 |
| after all operations | each machine's last end / ``time_scale`` | 0 .. n_jobs |

``C_LB`` is L2D's: a scheduled operation's end, else the job's previous ``C_LB`` plus the duration
(machine contention ignored). ``duration_scale`` is ``duration_high`` (a classic instance: its longest
duration), ``time_scale = duration_scale * n_machines``; every time is at most the total work
(``n_jobs * time_scale``; under either placement each operation starts at 0 or at some earlier end), hence
the ranges. Beyond L2D's two features: L2D passes the instance and the machine state to a graph network
through the disjunctive graph's arcs, which a flat vector does not have, so the duration and machine of
every operation (the instance) and the machines' last ends are given here: with them the observation
determines the state (and the future) exactly, so the solver's optimum is the optimum for what the
agent knows (:meth:`JobShopCore.decode` recovers the state from an observation, a scheduled operation's
start being its ``C_LB`` minus its duration; a test checks it under both placements). The machine is one-hot
because it is a category (a number would order the machines).

With ``job_features=True`` (off by default: v0's observation), six entries per job follow, job by job
(:data:`JOB_FEATURES`): what the dispatching rules read, computed from the state so that a network scoring one
job at a time (``network=per_entry``, :meth:`JobShopCore.entry_features`) need not find its job's next operation
among the rows itself (a product of the "scheduled" flags, the one-hot machine and the machines' last ends that a
small MLP represents poorly):

| entry | meaning | range |
| --- | --- | --- |
| 0 ``ready`` | the job's last end (its next operation's release; FIFO's key) / ``time_scale`` | 0 .. n_jobs |
| 1 ``next_duration`` | its next operation's duration / ``duration_scale`` (SPT's key; 0 when finished) | 0 .. 1 |
| 2 ``next_machine_ready`` | its next operation's machine's last end / ``time_scale`` (0 when finished) | 0 .. n_jobs |
| 3 ``next_start`` | max of 0 and 2: its next operation's start if appended / ``time_scale`` | 0 .. n_jobs |
| 4 ``work_left`` | its unscheduled operations' durations summed (MWKR's key) / ``time_scale`` | 0 .. 1 |
| 5 ``operations_left`` | its unscheduled operations / ``n_machines`` (MOPNR's key) | 0 .. 1 |

Note: under ``placement=active`` the left shift may start it earlier (entry 3). They add nothing the rest does not
determine (a test reads them off the schedule by hand); the first part of the observation is the same under
both settings.

## Rewards

L2D's dense reward: each step, the negative increase of the makespan lower bound
``H = max over operations of C_LB`` (in time units): ``r_t = H(s_t) - H(s_{t+1}) <= 0``. ``H`` starts
at the longest job's total work and ends at the makespan (every operation scheduled, ``C_LB`` is its
end), so the return is ``-(makespan - H(s_0))``: with ``H(s_0)`` fixed by the instance, maximising the
return is minimising the makespan, and the per-step signal says which dispatch lengthened the schedule,
which a single terminal ``-makespan`` does not (L2D's reason for it). Rewards are never positive: a
dispatch only pushes ``C_LB`` of its own job's remaining operations later. ``info["makespan"]`` is the
latest end so far (the makespan at the end).

## Starting State

Nothing scheduled; a new instance (random, or the named one); every job admissible.

## Episode End

Terminated after ``n_jobs * n_machines`` steps, every operation scheduled. Never truncated.

## Arguments

See :class:`JobShopConfig`. Every env also accepts ``strict`` and ``invalid_action`` (``noop`` or ``repair``;
here ``repair`` by default, see "Constraints"; ``envs.registry.CommonConfig``). ``placement`` is part of a run's
identity where it is not the default (``suite.run --env-config placement=active`` writes under a
``placement=active`` folder; a run recorded before the setting existed reads as ``semi_active``). Bad input is
refused in one line: a duration range with a non-positive end, an instance file whose durations are not positive
or whose machine order is not a permutation, a ``n_jobs`` / ``n_machines`` that disagrees with the named
instance, a size that cannot fit in memory, a ``placement`` other than the two.

## Levels

| name | jobs x machines | actions | observation (``job_features``) | inadmissible share |
| --- | --- | --- | --- | --- |
| ``job_shop`` | 6 x 6 | 6 | 330 (366) | 18.6% |
| ``job_shop-m`` | 10 x 10 | 10 | 1,310 (1,370) | 15.4% |
| ``job_shop-l`` | 15 x 15 | 15 | 4,065 (4,155) | 13.1% |

The sizes of L2D's smallest three (6x6, 10x10, 15x15). The inadmissible share is the mean fraction of jobs
masked where ``random_valid`` dispatches (``python -m suite.levels --steps 57600``: 900 steps of each of 64
entries, whole episodes at every level). It grows within every episode but not with the level. By tenth of the
episode (1,000 episodes per level, ``random_valid``), 6x6: 0, 0, 0, 0.7, 3.5, 8.4, 17, 29, 47, 73%; 10x10: 0,
0, 0, 0.2, 1.2, 4.3, 11, 23, 43, 73%; 15x15: 0, 0, 0, 0, 0.3, 1.8, 6.3, 17, 37, 70%; at the last step all but
one job, ``(n_jobs - 1) / n_jobs`` (83, 90, 93%). A random dispatcher finishes jobs only near the end of an
episode, the later the larger the shop, so the whole episode's share falls with the level. Gymnasium ids
``maskbench/JobShop-v0``, ``maskbench/JobShop-M-v0``, ``maskbench/JobShop-L-v0``. The share does not depend on
``placement`` (the mask reads only how many operations of each job are scheduled).

## Version History

- v0: first version. ``invalid_action`` (issue 35) was added later: its default, ``repair``, is the
  fallback v0 always had; ``noop`` (the lowest-index open job) is new. ``placement`` (issue 34) was added
  later too: its default, ``semi_active``, is the placement v0 always had; ``active`` (L2D's left shift) is new.
  ``job_features`` (issue 35) too: off by default, v0's observation; on appends six entries per job.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
from gymnasium import spaces

from .config import ConfigError, setting
from .core import EnvCore, StepResult
from .masking import MASK_DTYPE, Constraint
from .registry import register, register_level

__all__ = ["JobShopConfig", "JobShopCore", "JobShopState", "Instance", "classic_instances", "load_instance",
           "parse_instance", "next_durations", "remaining_work", "INSTANCE_DIR", "JOB_FEATURES", "PLACEMENTS"]

#: Where the classic instances live (OR-Library format, one file each, and ``index.json``).
INSTANCE_DIR = Path(__file__).with_name("job_shop_instances")
#: The values of the setting ``placement`` (see "Placement" in the module docstring); the first is the default.
PLACEMENTS = ("semi_active", "active")


@dataclass(frozen=True)
class Instance:
    """One job-shop instance: ``machines`` and ``durations`` are ``(n_jobs, n_machines)`` int64."""

    name: str
    machines: np.ndarray
    durations: np.ndarray
    description: str = ""
    optimum: int | None = None


def parse_instance(text: str, name: str = "instance") -> Instance:
    """An instance from OR-Library text: a description line, ``n_jobs n_machines``, then one line per job
    of ``machine duration`` pairs (machines numbered from 0). ``ValueError`` in one line when it is not."""
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    start = next((i for i, line in enumerate(lines) if len(line.split()) == 2
                  and all(word.isdigit() for word in line.split())), None)
    if start is None:
        raise ValueError(f"{name}: no 'n_jobs n_machines' line (OR-Library format)")
    n, m = (int(word) for word in lines[start].split())
    rows = lines[start + 1:start + 1 + n]
    try:
        numbers = np.array([[int(word) for word in row.split()] for row in rows], dtype=np.int64)
    except ValueError:
        raise ValueError(f"{name}: a job line holds something other than integers") from None
    if n < 1 or m < 1 or numbers.shape != (n, 2 * m):
        raise ValueError(f"{name}: expected {n} job lines of {m} 'machine duration' pairs after '{n} {m}', got "
                         f"{len(rows)} lines of {sorted({len(row.split()) for row in rows})} numbers")
    machines, durations = numbers[:, 0::2], numbers[:, 1::2]
    _check_instance(machines, durations, name)
    return Instance(name, machines, durations, " ".join(lines[:start]))


def _check_instance(machines: np.ndarray, durations: np.ndarray, name: str) -> None:
    m = machines.shape[1]
    if (durations <= 0).any():
        j, k = np.argwhere(durations <= 0)[0]
        raise ValueError(f"{name}: job {j} operation {k} has duration {durations[j, k]}; durations must be positive")
    bad = np.flatnonzero(~(np.sort(machines, axis=1) == np.arange(m)).all(axis=1))
    if len(bad):
        raise ValueError(f"{name}: job {bad[0]}'s machine order {machines[bad[0]].tolist()} is not a permutation of "
                         f"0..{m - 1}")


@lru_cache(maxsize=1)
def classic_instances() -> dict[str, dict]:
    """The shipped instances: name -> ``{"jobs", "machines", "optimum", "source", "optimum_source"}``."""
    return json.loads((INSTANCE_DIR / "index.json").read_text())


@lru_cache(maxsize=32)
def load_instance(name_or_path: str) -> Instance:
    """A shipped instance by name (``ft06``, ``la01`` ...) or an OR-Library file by path."""
    index = classic_instances()
    if name_or_path in index:
        instance = parse_instance((INSTANCE_DIR / f"{name_or_path}.txt").read_text(), name_or_path)
        return Instance(name_or_path, instance.machines, instance.durations, instance.description,
                        index[name_or_path]["optimum"])
    path = Path(name_or_path)
    if not path.is_file():
        raise ValueError(f"instance {name_or_path!r} is neither a shipped instance ({', '.join(index)}) nor a file")
    return parse_instance(path.read_text(), name_or_path)


def _instance_or_empty(value: str) -> bool:
    if not value:
        return True
    try:
        load_instance(value)
    except (ValueError, OSError):
        return False
    return True


@dataclass(frozen=True)
class JobShopConfig:
    """Configuration of the job-shop env; every field can be set with ``--env-config KEY=VALUE``."""

    n_jobs: int = setting(6, "jobs (the actions)", check=lambda v: 1 <= v <= 1000, accepts="an integer in 1..1000")
    n_machines: int = setting(6, "machines (operations per job)", check=lambda v: 1 <= v <= 1000,
                              accepts="an integer in 1..1000")
    duration_low: int = setting(1, "random instances: shortest duration", check=lambda v: v >= 1,
                                accepts="a positive integer")
    duration_high: int = setting(99, "random instances: longest duration (Taillard: 99)", check=lambda v: v >= 1,
                                 accepts="a positive integer")
    instance: str = setting("", "a classic instance played every episode (ft06, la01 .. la05) or the path of an "
                                "OR-Library instance file; empty: a random instance per episode",
                            check=_instance_or_empty, accepts="a shipped instance name (ft06, la01, la02, la03, "
                            "la04, la05) or the path of an OR-Library instance file with positive durations and "
                            "machine orders that are permutations")
    placement: str = setting("semi_active", "where a dispatched operation goes on its machine: semi_active (after "
                             "every operation already there) or active (L2D's left shift: into the earliest idle gap "
                             "where it fits after its job's previous operation, else after every operation)",
                             choices=PLACEMENTS)
    job_features: bool = setting(False, "append each job's dispatching features to the observation (its ready time, "
                                 "its next operation's duration, that machine's last end and the start it would get "
                                 "appended, its work and operations left): what the dispatching rules read, per job")


#: The per-job entries ``job_features=True`` appends, in order (see "Observation Space" in the module docstring).
JOB_FEATURES = ("ready", "next_duration", "next_machine_ready", "next_start", "work_left", "operations_left")


@dataclass
class JobShopState:
    """Batched state. ``B`` batch entries, ``n`` jobs, ``m`` machines (= operations per job)."""

    machines: np.ndarray       # (B, n, m) machine of each operation, int64
    durations: np.ndarray      # (B, n, m) duration of each operation, int64
    starts: np.ndarray         # (B, n, m) start time, -1 while unscheduled
    next_op: np.ndarray        # (B, n) operations of the job scheduled so far
    job_ready: np.ndarray      # (B, n) end of the job's last scheduled operation
    machine_ready: np.ndarray  # (B, m) end of the machine's last scheduled operation
    lower_bound: np.ndarray    # (B, n, m) C_LB of every operation (L2D)
    scale: np.ndarray          # (B,) duration_scale, float64
    t: np.ndarray              # (B,) steps so far
    static: np.ndarray         # (B, features) float32: the observation's per-episode entries (durations, machines)

    def copy(self) -> JobShopState:
        return JobShopState(*(np.copy(getattr(self, f)) for f in self.__dataclass_fields__))


def _of_next_operation(state: JobShopState, per_operation: np.ndarray) -> np.ndarray:
    """``per_operation`` ``(batch, n_jobs, n_machines)`` read at every job's next operation (a finished job's last)."""
    op = np.minimum(state.next_op, per_operation.shape[-1] - 1)[..., None]
    return np.take_along_axis(per_operation, op, axis=-1)[..., 0]


def next_durations(state: JobShopState) -> np.ndarray:
    """The duration of every job's next operation, ``(batch, n_jobs)`` (a finished job's last one)."""
    return _of_next_operation(state, state.durations)


def remaining_work(state: JobShopState) -> np.ndarray:
    """The summed duration of every job's unscheduled operations, ``(batch, n_jobs)``."""
    m = state.durations.shape[-1]
    return np.where(np.arange(m) >= state.next_op[..., None], state.durations, 0).sum(axis=-1)


#: A start time later than any (an unscheduled operation, in the left shift's sort).
_NEVER = np.iinfo(np.int64).max // 4


class JobShopCore(EnvCore):
    """Batched dispatching, reward and mask of the job-shop env (see the module docstring)."""

    Config = JobShopConfig
    agent_prefix = "dispatcher"
    version = 0
    invalid_action_default = "repair"
    episode_metrics = ("makespan",)

    def __init__(self, config: JobShopConfig, num_envs: int = 1, strict: bool = False):
        if config.duration_low > config.duration_high:
            raise ConfigError(f"duration_low ({config.duration_low}) exceeds duration_high ({config.duration_high})")
        self.instance = load_instance(config.instance) if config.instance else None
        if self.instance is not None and self.instance.machines.shape != (config.n_jobs, config.n_machines):
            n, m = self.instance.machines.shape
            raise ConfigError(f"instance {config.instance!r} is {n} jobs x {m} machines; set n_jobs={n} "
                              f"n_machines={m}")
        super().__init__(config, num_envs, strict)
        n, m = config.n_jobs, config.n_machines
        self.n_jobs, self.n_machines = n, m
        self.action_space = spaces.Discrete(n)
        per_op = np.r_[float(n), 1.0, 1.0, np.ones(m)]
        per_job = np.r_[float(n), 1.0, float(n), float(n), 1.0, 1.0] if config.job_features else np.zeros(0)
        high = np.r_[np.tile(per_op, n * m), np.full(m, float(n)), np.tile(per_job, n)].astype(np.float32)
        self.feature_space = spaces.Box(np.zeros_like(high), high, dtype=np.float32)
        self._ops = np.arange(m)
        self._one_hot = np.eye(m, dtype=np.float32)

    @classmethod
    def state_bytes(cls, config: JobShopConfig, num_envs: int) -> int:
        """Per entry: five ``(n, m)`` int64 arrays, the job and machine vectors, and the float32 observation
        (its per-episode part kept in the state, built once per step, and once more by the views)."""
        n, m = config.n_jobs, config.n_machines
        per_job = len(JOB_FEATURES) * n if config.job_features else 0
        return num_envs * (5 * 8 * n * m + 16 * n + 8 * m + 32 + 3 * 4 * (n * m * (3 + m) + m + per_job))

    # ------------------------------------------------------------------ constraints

    @property
    def constraints(self) -> Sequence[Constraint]:
        return (Constraint("C1", "the job has an unscheduled operation", self._admits_c1),)

    def _admits_c1(self, state: JobShopState, actions: np.ndarray) -> np.ndarray:
        """C1 from the schedule itself: some operation of the chosen job has no start time."""
        job = actions[..., 0]                                                  # (B, A)
        starts = state.starts[np.arange(len(state.starts))[:, None], job]      # (B, A, m)
        return (starts < 0).any(axis=-1)[..., None]

    def action_mask(self) -> np.ndarray:
        return (self.state.next_op < self.n_machines).astype(MASK_DTYPE)[:, None, :]

    # ------------------------------------------------------------------ episodes

    def draw_instance(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """Taillard-style: durations uniform on ``duration_low .. duration_high``, each job's machine order a
        uniformly random permutation (or the named instance)."""
        if self.instance is not None:
            return self.instance.machines, self.instance.durations
        c = self.config
        durations = rng.integers(c.duration_low, c.duration_high + 1, size=(self.n_jobs, self.n_machines))
        machines = rng.permuted(np.tile(self._ops, (self.n_jobs, 1)), axis=1)
        return machines, durations

    def reset_envs(self, env_ids: np.ndarray, rngs: Sequence[np.random.Generator]) -> None:
        n, m, B = self.n_jobs, self.n_machines, self.num_envs
        if self.state is None:
            self.state = JobShopState(np.zeros((B, n, m), np.int64), np.ones((B, n, m), np.int64),
                                      np.full((B, n, m), -1, np.int64), np.zeros((B, n), np.int64),
                                      np.zeros((B, n), np.int64), np.zeros((B, m), np.int64),
                                      np.zeros((B, n, m), np.int64), np.ones(B), np.zeros(B, np.int64),
                                      np.zeros((B, self.feature_space.shape[0]), np.float32))
        s = self.state
        for env_id, rng in zip(env_ids, rngs):  # once per episode, not per step
            s.machines[env_id], s.durations[env_id] = self.draw_instance(rng)
        s.starts[env_ids] = -1
        s.next_op[env_ids] = 0
        s.job_ready[env_ids] = 0
        s.machine_ready[env_ids] = 0
        s.t[env_ids] = 0
        s.scale[env_ids] = float(self.instance.durations.max()) if self.instance is not None \
            else float(self.config.duration_high)
        s.lower_bound[env_ids] = np.cumsum(s.durations[env_ids], axis=-1)
        per_op = s.static[env_ids, :n * m * (3 + m)].reshape(len(env_ids), n, m, 3 + m)
        per_op[..., 2] = s.durations[env_ids] / s.scale[env_ids, None, None]
        per_op[..., 3:] = self._one_hot[s.machines[env_ids]]
        s.static[env_ids, :n * m * (3 + m)] = per_op.reshape(len(env_ids), -1)

    @staticmethod
    def lower_bounds(state: JobShopState) -> np.ndarray:
        """``C_LB`` of every operation from the schedule, from scratch (the step updates it incrementally):
        a scheduled operation's end; an unscheduled one, its job's last end plus the durations up to it."""
        m = state.starts.shape[-1]
        scheduled = np.arange(m) < state.next_op[..., None]
        cumulative = np.cumsum(state.durations, axis=-1)
        done = np.take_along_axis(cumulative, np.maximum(state.next_op - 1, 0)[..., None], -1)
        done = np.where(state.next_op[..., None] > 0, done, 0)
        return np.where(scheduled, state.starts + state.durations, state.job_ready[..., None] + cumulative - done)

    # ------------------------------------------------------------------ views of the state

    def features(self) -> np.ndarray:
        """The per-episode entries (durations, machines) come from ``state.static``, written at reset; the rest is
        filled in from the state on each call."""
        s, n, m = self.state, self.n_jobs, self.n_machines
        B = self.num_envs
        out = s.static.copy()
        per_op = out[:, :n * m * (3 + m)].reshape(B, n * m, 3 + m)
        time_scale = (s.scale * m)[:, None]
        per_op[..., 0] = s.lower_bound.reshape(B, n * m) / time_scale
        per_op[..., 1] = s.starts.reshape(B, n * m) >= 0
        out[:, n * m * (3 + m):n * m * (3 + m) + m] = s.machine_ready / time_scale
        if self.config.job_features:
            out[:, n * m * (3 + m) + m:] = self._job_features(time_scale).reshape(B, -1)
        return out[:, None, :]

    def _job_features(self, time_scale: np.ndarray) -> np.ndarray:
        """``(B, n_jobs, 6)``: each job's :data:`JOB_FEATURES`; a finished job's ``next_duration``,
        ``next_machine_ready``, ``work_left`` and ``operations_left`` are 0 and its ``next_start`` is its ``ready``.
        ``next_start`` is where its next operation would start appended (``semi_active``; under ``active`` the
        left shift can start it earlier, never later)."""
        s, m = self.state, self.n_machines
        open_job = s.next_op < m
        duration = np.where(open_job, next_durations(s), 0)
        machine_ready = np.where(open_job, np.take_along_axis(s.machine_ready, _of_next_operation(s, s.machines), -1),
                                 0)
        return np.stack([s.job_ready / time_scale, duration / s.scale[:, None], machine_ready / time_scale,
                         np.maximum(s.job_ready, machine_ready) / time_scale, remaining_work(s) / time_scale,
                         (m - s.next_op) / m], axis=-1)

    def entry_features(self) -> np.ndarray:
        """Job ``j`` (action ``j``) is described by its own operations' rows (``C_LB``, scheduled, duration, machine
        one-hot, in the job's order), every machine's last end and, with ``job_features``, its own dispatching
        features: ``n_machines * (3 + n_machines) + n_machines`` (``+ 6``) indices. Jobs are exchangeable
        (renumbering them renumbers the actions), so ``network=per_entry`` scores every job with one network, as
        L2D scores every operation with one graph network."""
        n, m = self.n_jobs, self.n_machines
        width = m * (3 + m)
        own = np.arange(n)[:, None] * width + np.arange(width)[None, :]
        machines = np.broadcast_to(n * width + np.arange(m), (n, m))
        k = len(JOB_FEATURES)
        dispatching = n * width + m + np.arange(n)[:, None] * k + np.arange(k)[None, :]
        return np.concatenate([own, machines, *([dispatching] if self.config.job_features else [])], axis=1)

    def decode(self, features: np.ndarray) -> dict[str, np.ndarray]:
        """The instance and the dispatch state recovered from observations ``(B, feature_size)``: ``machines``,
        ``durations``, ``scheduled``, ``lower_bound`` and ``machine_ready`` (times rounded to integers).
        Needs only the config's scales (``duration_scale``); a test checks it returns the state."""
        n, m = self.n_jobs, self.n_machines
        scale = float(self.instance.durations.max()) if self.instance is not None else float(self.config.duration_high)
        per_op = features[:, :n * m * (3 + m)].reshape(-1, n, m, 3 + m).astype(np.float64)
        return {"machines": per_op[..., 3:].argmax(axis=-1), "durations": np.rint(per_op[..., 2] * scale).astype(int),
                "scheduled": per_op[..., 1] > 0.5,
                "lower_bound": np.rint(per_op[..., 0] * scale * m).astype(int),
                "machine_ready": np.rint(features[:, n * m * (3 + m):n * m * (3 + m) + m].astype(np.float64)
                                         * scale * m).astype(int)}

    def metrics(self) -> dict[str, np.ndarray]:
        return {"makespan": self.state.machine_ready.max(axis=-1).astype(np.float64)[:, None]}

    def render_text(self, entry: int) -> str:
        s, n, m = self.state, self.n_jobs, self.n_machines
        lines = [f"step {int(s.t[entry])}/{n * m}  makespan so far {int(s.machine_ready[entry].max())}  "
                 f"lower bound {int(s.lower_bound[entry, :, -1].max())}"]
        for machine in range(m):
            on = np.argwhere((s.machines[entry] == machine) & (s.starts[entry] >= 0))
            on = sorted(on.tolist(), key=lambda jk: s.starts[entry, jk[0], jk[1]])
            ops = " ".join(f"j{j}[{s.starts[entry, j, k]}-{s.starts[entry, j, k] + s.durations[entry, j, k]}]"
                           for j, k in on)
            lines.append(f"machine {machine}: {ops}")
        left = ", ".join(f"j{j}: {m - int(s.next_op[entry, j])}" for j in range(n))
        lines.append(f"operations left per job: {left}")
        return "\n".join(lines)

    # ------------------------------------------------------------------ dynamics

    def noop(self, actions: np.ndarray, inadmissible: np.ndarray) -> np.ndarray:
        """``invalid_action="noop"``: the attempted job is not dispatched; the lowest-index open job is, whatever the
        attempt. Not a true no-op (see "Constraints" in the module docstring: a dispatching env has no step without
        a dispatch). (``repair``, the default, is the base class's: the open job nearest the attempted index.)"""
        first_open = self.action_mask().astype(bool).argmax(axis=-1)[..., None]   # (B, A, 1)
        return np.where(inadmissible, first_open, actions)

    def transition(self, actions: np.ndarray) -> StepResult:
        s, m = self.state, self.n_machines
        job = actions[:, 0, 0]
        # entries about to be reset by their view send any action, finished jobs included: they do not move
        rows = np.flatnonzero(s.next_op[np.arange(self.num_envs), job] < m)
        job = job[rows]
        before = s.lower_bound[:, :, -1].max(axis=1)
        op = s.next_op[rows, job]
        machine = s.machines[rows, job, op]
        duration = s.durations[rows, job, op]
        start = np.maximum(s.job_ready[rows, job], s.machine_ready[rows, machine])
        if self.config.placement == "active":
            start = self._left_shifted(rows, machine, s.job_ready[rows, job], duration, start)
        end = start + duration
        s.starts[rows, job, op] = start
        s.job_ready[rows, job] = end
        s.machine_ready[rows, machine] = np.maximum(s.machine_ready[rows, machine], end)
        s.next_op[rows, job] = op + 1
        cumulative = np.cumsum(s.durations[rows, job], axis=-1)            # (r, m)
        shifted = end[:, None] + cumulative - cumulative[np.arange(len(rows)), op][:, None]
        s.lower_bound[rows, job] = np.where(self._ops >= op[:, None], shifted, s.lower_bound[rows, job])
        s.t[rows] += 1
        after = s.lower_bound[:, :, -1].max(axis=1)
        terminated = (s.t >= self.n_jobs * m)[:, None]
        return StepResult(reward=(before - after).astype(np.float64)[:, None], terminated=terminated,
                          truncated=np.zeros_like(terminated), info=self.metrics())

    def _left_shifted(self, rows: np.ndarray, machine: np.ndarray, ready: np.ndarray, duration: np.ndarray,
                      appended: np.ndarray) -> np.ndarray:
        """``placement="active"``: the start of an operation of ``duration`` on ``machine`` whose job is free from
        ``ready``, in each of the entries ``rows``: the earliest idle gap of the machine that it fits in, at or after
        ``ready``, else ``appended`` (after everything on the machine). Batched: the machine's ``n_jobs``
        operations (one per job) sorted by start, each gap's earliest start compared with the next start."""
        s = self.state
        r = len(rows)
        on = s.machines[rows] == machine[:, None, None]                       # (r, n, m): the machine's operations
        starts = np.where(on & (s.starts[rows] >= 0), s.starts[rows], _NEVER).min(axis=-1)        # (r, n)
        ends = np.where(starts < _NEVER, starts + (s.durations[rows] * on).sum(axis=-1), _NEVER)
        order = np.argsort(starts, axis=1)
        starts, ends = np.take_along_axis(starts, order, 1), np.take_along_axis(ends, order, 1)
        gap_start = np.maximum(ready[:, None], np.concatenate([np.zeros((r, 1), np.int64), ends[:, :-1]], axis=1))
        fits = (starts < _NEVER) & (gap_start + duration[:, None] <= starts)
        first = fits.argmax(axis=1)
        return np.where(fits.any(axis=1), gap_start[np.arange(r), first], appended)

    # ------------------------------------------------------------------ checkers

    def sample_states(self, rng: np.random.Generator, num_states: int) -> JobShopState:
        """Partial schedules of random instances: each job with a random number of operations scheduled (every
        job finished but one in a tenth of them, the end of an episode), placed as ``placement`` says in a random
        order of dispatch. Never a finished schedule (nothing to act on there)."""
        n, m = self.n_jobs, self.n_machines
        probe = JobShopCore(self.config, num_states)
        probe.reset_envs(np.arange(num_states), [np.random.default_rng(rng.integers(1 << 62)) for _ in
                                                 range(num_states)])
        done = rng.integers(0, m + 1, size=(num_states, n))
        last = rng.random(num_states) < 0.1
        done[last] = m
        open_job = rng.integers(0, n, num_states)
        done[np.arange(num_states), open_job] = np.where(last, rng.integers(0, m, num_states),
                                                         np.minimum(done[np.arange(num_states), open_job], m - 1))
        # a random dispatch order: each job's id repeated as often as it has operations scheduled, shuffled
        keys = np.where(np.arange(m) < done[..., None], rng.random((num_states, n, m)), np.inf).reshape(num_states, -1)
        order = np.argsort(keys, axis=1) // m                                  # job ids, finished ones first
        for t in range(n * m):
            acting = t < done.sum(axis=1)
            probe._dispatch_some(acting, order[:, t])
        return probe.state

    def _dispatch_some(self, acting: np.ndarray, jobs: np.ndarray) -> None:
        """Dispatch ``jobs`` in the entries ``acting`` only (the checker's state builder): the others' jobs look
        finished for the one transition, so they do not move."""
        saved = self.state.next_op.copy()
        self.state.next_op[~acting] = self.n_machines
        self.transition(np.where(acting, jobs, 0)[:, None, None])
        self.state.next_op[~acting] = saved[~acting]


register("job_shop", JobShopCore,
         description="job-shop scheduling by dispatching: Discrete(6) jobs of a 6x6 Taillard-style instance, "
                     "constraint C1 job-open; the solver's optimum as the reference")

#: The levels: L2D's sizes.
LEVELS = {"job_shop-m": (2, 10), "job_shop-l": (3, 15)}
for _name, (_level, _size) in LEVELS.items():
    register_level(_name, "job_shop", _level, {"n_jobs": _size, "n_machines": _size},
                   description=f"job_shop, level {_level}: {_size} jobs x {_size} machines, Taillard-style")
