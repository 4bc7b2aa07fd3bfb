"""An exact job-shop solver: minimum makespan of one instance, with a proof or a bound, cached on disk.

``solve(machines, durations)`` takes an instance as two ``(n_jobs, n_machines)`` integer arrays (operation
``k`` of job ``j`` runs on machine ``machines[j, k]`` for ``durations[j, k]`` time units; each row of
``machines`` is a permutation) and returns a :class:`Solution`: a feasible schedule (start times), its
makespan, the best proven lower bound and whether the makespan is proven optimal. It needs nothing of
``envs`` (numpy and the solver only).

**Solver.** The disjunctive mixed-integer program of Manne (1960), solved by HiGHS (``highspy``, the
optional extra ``pip install 'maskbench[jobshop]'``). OR-Tools' CP-SAT, the usual choice for job shop,
was ruled out for this suite: ``ortools==9.15.6755`` pins ``protobuf`` 6.33 while the suite's environment
runs ``protobuf`` 7.36 (Ray's), so installing it would downgrade a package Ray uses. The model:

- a start time ``s_o`` per operation, within ``[head_o, UB - tail_o]`` (``head_o``: the job's work
  before ``o``; ``tail_o``: the job's work from ``o`` on, ``o`` included; ``UB``: the best makespan of
  the warm-start schedules below, so no optimum is cut off);
- job precedence ``s_{j,k+1} >= s_{j,k} + d_{j,k}``; the makespan ``C >= s_{j,last} + d_{j,last}``;
- one binary ``y_ab`` per pair of operations on the same machine, with ``s_a + d_a <= s_b + M_ab (1 -
  y_ab)`` and ``s_b + d_b <= s_a + M_ba y_ab``, each big-M the least that keeps the row slack when it is
  switched off (``M_ab = max s_a + d_a - min s_b``);
- ``C >= LB``, the classic bound ``max(longest job, max over machines of (least head + load + least
  tail))``, which the LP relaxation of the big-M model does not see by itself;
- minimise ``C``. Warm start: the best of the dispatching rules SPT, MWKR, MOPNR and FIFO (the
  references' definitions) and a few random dispatch orders, each placed semi-actively.

Start times are integral at an optimum (with the machine orders fixed, earliest start times are longest
paths over integer durations), so the makespan variable ``C`` is declared integer (HiGHS then prunes on the
rounded bound) and the dual bound is rounded up.
``optimal`` is True when HiGHS reports the MIP optimal (gap 0) or the rounded bound meets the makespan.
With the time limit hit, the best schedule found and the best bound are both returned, ``optimal`` False.

**Speed** (one thread, measured on a busy 2-core machine). The MIP is much weaker than CP-SAT on job shop:
ft06, la01 and la05 are proven in about a second, la02-la04 in 10-30 s; random 6x6 instances in 0.8 s on
average (54 of 54 proven); two random 10x10 ones in 17 and 21 s; a random 15x15 one was not proven in 60 s
(its best bound 19% below the schedule found): there the best schedule and the bound are returned, and a
score built on them says "best known". See :mod:`baselines.references.job_shop_optimum`.

**Cache.** Every result is stored as JSON under ``cache_dir()`` (``$MASKBENCH_JOB_SHOP_CACHE``, else
``$XDG_CACHE_HOME/maskbench/job_shop``, else ``~/.cache/maskbench/job_shop``), keyed by a hash of the
instance. A proven optimum is reused whatever the time limit; an unproven result only for a time limit no
longer than the one it was solved with (a longer limit solves again and keeps the better answer).
Processes that ask for one instance at once solve it once: each holds the instance's lock file (``flock``)
from reading the cache to writing it, so the second reads the first's answer instead of solving again (two
reference seeds evaluate the same instances, usually side by side). Where the file system has no locks, each
solves on its own, as before.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

__all__ = ["Solution", "SolverMissing", "solve", "cache_dir", "instance_key", "semi_active_starts",
           "makespan_lower_bound", "check_schedule", "INSTALL_HINT"]

#: What to run when the solver is missing.
INSTALL_HINT = "pip install 'maskbench[jobshop]' (or: pip install highspy==1.16.0)"
#: Bumped when the model changes what is stored (old cache entries are then ignored).
CACHE_VERSION = 1


class SolverMissing(ImportError):
    """``highspy`` is not installed; the message says how to install it."""


@dataclass(frozen=True)
class Solution:
    """The solver's answer for one instance.

    Attributes:
        starts: ``(n_jobs, n_machines)`` int64 start time of every operation (a feasible schedule).
        makespan: the schedule's makespan.
        bound: the best proven lower bound on the optimal makespan (``== makespan`` when optimal).
        optimal: whether ``makespan`` is proven optimal.
        seconds: wall seconds the solver took (0 for a result read from the cache... see ``cached``).
        time_limit: the limit it was solved with, in seconds.
        cached: whether the result came from the cache.
    """

    starts: np.ndarray
    makespan: int
    bound: int
    optimal: bool
    seconds: float
    time_limit: float
    cached: bool = False

    @property
    def gap(self) -> float:
        """``makespan / bound - 1``: 0 when optimal."""
        return self.makespan / self.bound - 1.0 if self.bound > 0 else 0.0

    def dispatch_order(self) -> np.ndarray:
        """Job ids in the order of their operations' start times (ties: lower job, then earlier operation):
        the action sequence that replays this schedule through a semi-active dispatcher."""
        n, m = self.starts.shape
        jobs = np.repeat(np.arange(n), m)
        order = np.lexsort((np.tile(np.arange(m), n), jobs, self.starts.reshape(-1)))
        return jobs[order]


def cache_dir() -> Path:
    """Where solved instances are kept (see the module docstring)."""
    if os.environ.get("MASKBENCH_JOB_SHOP_CACHE"):
        return Path(os.environ["MASKBENCH_JOB_SHOP_CACHE"])
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "maskbench" / "job_shop"


def _validated(machines: np.ndarray, durations: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    machines, durations = np.asarray(machines), np.asarray(durations)
    if machines.ndim != 2 or machines.shape != durations.shape:
        raise ValueError(f"machines and durations must be two arrays of the same (n_jobs, n_machines) shape; got "
                         f"{machines.shape} and {durations.shape}")
    n, m = machines.shape
    if not (np.issubdtype(machines.dtype, np.integer) and np.issubdtype(durations.dtype, np.integer)):
        raise ValueError("machines and durations must be integers")
    if (durations <= 0).any():
        raise ValueError(f"every duration must be a positive integer; got {int(durations.min())}")
    if not (np.sort(machines, axis=1) == np.arange(m)).all():
        bad = int(np.flatnonzero(~(np.sort(machines, axis=1) == np.arange(m)).all(axis=1))[0])
        raise ValueError(f"job {bad}'s machine order {machines[bad].tolist()} is not a permutation of 0..{m - 1}")
    return machines.astype(np.int64), durations.astype(np.int64)


def instance_key(machines: np.ndarray, durations: np.ndarray) -> str:
    """A hash of the instance (its size, machine orders and durations): the cache key."""
    machines, durations = _validated(machines, durations)
    text = f"{machines.shape[0]}x{machines.shape[1]}:{machines.tolist()}:{durations.tolist()}"
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def semi_active_starts(machines: np.ndarray, durations: np.ndarray, order: np.ndarray) -> np.ndarray:
    """Start times of dispatching the jobs in ``order`` (one job id per operation), each operation at
    ``max(its job's previous completion, its machine's last completion)``: the env's placement."""
    n, m = machines.shape
    starts = np.zeros((n, m), dtype=np.int64)
    job_ready, machine_ready, next_op = np.zeros(n, np.int64), np.zeros(m, np.int64), np.zeros(n, np.int64)
    for j in order:
        k = next_op[j]
        machine = machines[j, k]
        start = max(job_ready[j], machine_ready[machine])
        starts[j, k] = start
        job_ready[j] = machine_ready[machine] = start + durations[j, k]
        next_op[j] += 1
    return starts


def check_schedule(machines: np.ndarray, durations: np.ndarray, starts: np.ndarray) -> int:
    """The makespan of ``starts``; ``ValueError`` naming the first violated precedence or machine overlap."""
    n, m = machines.shape
    ends = starts + durations
    if (starts < 0).any():
        raise ValueError("a start time is negative")
    late = np.argwhere(starts[:, 1:] < ends[:, :-1])
    if len(late):
        j, k = late[0]
        raise ValueError(f"job {j}: operation {k + 1} starts at {starts[j, k + 1]} before operation {k} ends "
                         f"({ends[j, k]})")
    for machine in range(m):
        on = machines == machine
        s, e = starts[on], ends[on]
        order = np.argsort(s, kind="stable")
        if (s[order][1:] < e[order][:-1]).any():
            raise ValueError(f"machine {machine} runs two operations at once")
    return int(ends.max())


def makespan_lower_bound(machines: np.ndarray, durations: np.ndarray) -> int:
    """The one-machine preemptive bound: no schedule is shorter.

    For each machine, its operations with their heads (the job's work before them) and tails (the job's work
    after them) form a one-machine problem whose preemptive relaxation is solved exactly by Jackson's preemptive
    schedule (at every moment run the released operation with the longest tail); the bound is the largest of
    those optima and the longest job. It dominates ``max(longest job, least head + load + least tail)``.
    """
    heads = np.cumsum(durations, axis=1) - durations
    tails = durations.sum(axis=1, keepdims=True) - heads - durations  # work after the operation
    bound = int(durations.sum(axis=1).max())
    for machine in range(machines.shape[1]):
        on = machines == machine
        bound = max(bound, _jackson_preemptive(heads[on].tolist(), durations[on].tolist(), tails[on].tolist()))
    return bound


def _jackson_preemptive(heads: list[int], durations: list[int], tails: list[int]) -> int:
    """``max_i (completion_i + tail_i)`` of Jackson's preemptive schedule: the optimum of the one-machine
    problem with heads and tails when preemption is allowed (Carlier 1982)."""
    import heapq

    released = sorted(range(len(heads)), key=lambda i: heads[i])
    left = list(durations)
    ready: list[tuple[int, int]] = []
    t, i, bound = 0, 0, 0
    while i < len(released) or ready:
        if not ready and t < heads[released[i]]:
            t = heads[released[i]]
        while i < len(released) and heads[released[i]] <= t:
            heapq.heappush(ready, (-tails[released[i]], released[i]))
            i += 1
        key, op = heapq.heappop(ready)
        run = min(left[op], (heads[released[i]] if i < len(released) else t + left[op]) - t)
        t += run
        left[op] -= run
        if left[op]:
            heapq.heappush(ready, (key, op))
        else:
            bound = max(bound, t + tails[op])
    return bound


def _warm_start(machines: np.ndarray, durations: np.ndarray, rng: np.random.Generator, tries: int = 20,
                moves: int = 200) -> np.ndarray:
    """A good schedule to start from: the best semi-active schedule of the four dispatching rules and ``tries``
    random orders, improved by a local search over the dispatch order (``moves`` per operation: swap two
    entries or move one, kept when the makespan does not grow; at most 20,000 moves). Start times."""
    n, m = machines.shape
    orders = [_rule_order(durations, rule) for rule in ("spt", "mwkr", "mopnr", "fifo")]
    orders += [rng.permutation(np.repeat(np.arange(n), m)) for _ in range(tries)]
    spans = [(semi_active_starts(machines, durations, order) + durations).max() for order in orders]
    order, best = orders[int(np.argmin(spans))], min(spans)
    for _ in range(min(moves * n * m, 20_000)):
        i, k = rng.integers(0, n * m, 2)
        if rng.random() < 0.5:
            candidate = order.copy()
            candidate[i], candidate[k] = order[k], order[i]
        else:
            candidate = np.insert(np.delete(order, i), k, order[i])
        makespan = (semi_active_starts(machines, durations, candidate) + durations).max()
        if makespan <= best:
            order, best = candidate, makespan
    return semi_active_starts(machines, durations, order)


def _rule_order(durations: np.ndarray, rule: str) -> np.ndarray:
    """The dispatch order of one priority rule on the semi-active dispatcher (ties: the lowest job)."""
    n, m = durations.shape
    next_op, job_ready = np.zeros(n, np.int64), np.zeros(n, np.int64)
    remaining = durations.sum(axis=1)
    order = []
    for _ in range(n * m):
        open_ = next_op < m
        k = np.minimum(next_op, m - 1)
        key = {"spt": durations[np.arange(n), k], "mwkr": -remaining, "mopnr": -(m - next_op),
               "fifo": job_ready}[rule]
        j = int(np.flatnonzero(open_)[np.argmin(key[open_])])
        order.append(j)
        job_ready[j] += durations[j, next_op[j]]  # an upper estimate; only the warm start uses it
        remaining[j] -= durations[j, next_op[j]]
        next_op[j] += 1
    return np.array(order)


def _solve_mip(machines: np.ndarray, durations: np.ndarray, time_limit: float, threads: int,
               warm: np.ndarray) -> tuple[np.ndarray, int, int, bool]:
    n, m = machines.shape
    d = durations.reshape(-1)
    ops = n * m
    upper = int((warm + durations).max())
    lower = makespan_lower_bound(machines, durations)
    if upper <= lower:  # the warm start meets the bound: proven without the MIP
        return warm, upper, lower, True
    try:
        import highspy
    except ImportError:
        raise SolverMissing(f"the job-shop solver needs HiGHS: {INSTALL_HINT}") from None
    heads = (np.cumsum(durations, axis=1) - durations).reshape(-1)
    tails = (durations.sum(axis=1, keepdims=True) - np.cumsum(durations, axis=1) + durations).reshape(-1)
    s_low, s_high = heads.astype(float), (upper - tails).astype(float)
    pairs = [(a, b) for machine in range(m) for a, b in _pairs(np.flatnonzero(machines.reshape(-1) == machine))]
    n_cols = ops + 1 + len(pairs)  # starts, C, one binary per pair
    c_col = ops
    rows, cols, vals, row_low, row_high = [], [], [], [], []

    def row(entries, low, high):
        r = len(row_low)
        for col, val in entries:
            rows.append(r)
            cols.append(col)
            vals.append(val)
        row_low.append(low)
        row_high.append(high)

    for j in range(n):
        for k in range(m - 1):
            a = j * m + k
            row([(a + 1, 1.0), (a, -1.0)], float(d[a]), np.inf)    # s_next - s >= d
        last = j * m + m - 1
        row([(c_col, 1.0), (last, -1.0)], float(d[last]), np.inf)  # C - s_last >= d_last
    for p, (a, b) in enumerate(pairs):
        y = ops + 1 + p
        big_ab = s_high[a] + d[a] - s_low[b]
        big_ba = s_high[b] + d[b] - s_low[a]
        # y = 1: a before b: s_a + d_a - s_b <= M_ab (1 - y)  ->  s_a - s_b + M_ab y <= M_ab - d_a
        row([(a, 1.0), (b, -1.0), (y, big_ab)], -np.inf, float(big_ab - d[a]))
        # y = 0: b before a: s_b + d_b - s_a <= M_ba y  ->  s_b - s_a - M_ba y <= -d_b
        row([(b, 1.0), (a, -1.0), (y, -big_ba)], -np.inf, float(-d[b]))

    lp = highspy.HighsLp()
    lp.num_col_, lp.num_row_ = n_cols, len(row_low)
    lp.col_cost_ = np.r_[np.zeros(ops), 1.0, np.zeros(len(pairs))]
    lp.col_lower_ = np.r_[s_low, float(lower), np.zeros(len(pairs))]
    lp.col_upper_ = np.r_[s_high, float(upper), np.ones(len(pairs))]
    lp.row_lower_, lp.row_upper_ = np.array(row_low), np.array(row_high)
    # C integral: the optimum is (see the docstring), and HiGHS then prunes with the rounded bound exactly
    lp.integrality_ = [highspy.HighsVarType.kContinuous] * ops + [highspy.HighsVarType.kInteger] * (1 + len(pairs))
    order = np.lexsort((np.array(cols), np.array(rows)))
    matrix = lp.a_matrix_
    matrix.format_ = highspy.MatrixFormat.kRowwise
    matrix.start_ = np.r_[0, np.cumsum(np.bincount(rows, minlength=len(row_low)))].astype(np.int32)
    matrix.index_ = np.array(cols, dtype=np.int32)[order]
    matrix.value_ = np.array(vals, dtype=float)[order]
    matrix.num_col_, matrix.num_row_ = n_cols, len(row_low)

    h = highspy.Highs()
    h.setOptionValue("output_flag", False)
    h.setOptionValue("time_limit", float(time_limit))
    h.setOptionValue("threads", int(threads))
    h.setOptionValue("mip_rel_gap", 0.0)
    h.setOptionValue("random_seed", 0)
    h.passModel(lp)
    warm_flat = warm.reshape(-1)
    start = highspy.HighsSolution()
    start.col_value = list(np.r_[warm_flat, float(upper),
                                 [1.0 if warm_flat[a] < warm_flat[b] else 0.0 for a, b in pairs]])
    start.value_valid = True
    h.setSolution(start)
    h.run()
    info = h.getInfo()
    bound = max(lower, int(np.ceil(info.mip_dual_bound - 1e-6))) if np.isfinite(info.mip_dual_bound) else lower
    starts = warm
    if info.primal_solution_status == 2:  # feasible
        values = np.asarray(h.getSolution().col_value[:ops])
        candidate = np.rint(values).astype(np.int64).reshape(n, m)
        # the solver's machine orders, placed semi-actively: never later than its own start times
        order = np.repeat(np.arange(n), m)[np.lexsort((np.tile(np.arange(m), n), candidate.reshape(-1)))]
        candidate = semi_active_starts(machines, durations, order)
        if (candidate + durations).max() <= (starts + durations).max():
            starts = candidate
    makespan = check_schedule(machines, durations, starts)
    return starts, makespan, min(bound, makespan), bound >= makespan


def _pairs(ops: np.ndarray):
    for i in range(len(ops)):
        for k in range(i + 1, len(ops)):
            yield int(ops[i]), int(ops[k])


def _read_cache(path: Path) -> dict | None:
    try:
        entry = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return entry if isinstance(entry, dict) and entry.get("version") == CACHE_VERSION else None


def _write_cache(path: Path, entry: dict) -> None:
    """Atomically (temp file + rename), so concurrent solvers never leave a half-written entry."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile("w", dir=path.parent, delete=False, suffix=".tmp") as tmp:
            json.dump(entry, tmp)
        os.replace(tmp.name, path)
    except OSError:
        pass  # a read-only cache only costs time


@contextlib.contextmanager
def _solving(path: Path | None):
    """Hold ``path``'s instance lock (``<key>.lock`` beside its cache entry) while solving it; nothing without a
    cache, a lockable file system or ``fcntl`` (Windows)."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        fcntl = None
    handle = None
    if path is not None and fcntl is not None:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            handle = open(path.with_suffix(".lock"), "a")  # held across the yield
            fcntl.flock(handle, fcntl.LOCK_EX)
        except OSError:  # read-only cache, or no locks here: solve without
            if handle is not None:
                handle.close()
            handle = None
    try:
        yield
    finally:
        if handle is not None:
            handle.close()  # releases the lock


def solve(machines: np.ndarray, durations: np.ndarray, *, time_limit: float = 60.0, threads: int = 1,
          cache: bool | str | Path = True) -> Solution:
    """Solve one instance (see the module docstring).

    Args:
        machines, durations: ``(n_jobs, n_machines)`` integers; each row of ``machines`` a permutation of
            ``0..n_machines - 1``, every duration positive (``ValueError`` naming the problem otherwise).
        time_limit: seconds the solver may take (the warm start and model building come on top).
        threads: solver threads.
        cache: True: :func:`cache_dir`; a path: that folder; False: no cache.

    Raises:
        SolverMissing: ``highspy`` is not installed (the message says how to install it).
    """
    machines, durations = _validated(machines, durations)
    path = None
    if cache is not False:
        folder = cache_dir() if cache is True else Path(cache)
        path = folder / f"{instance_key(machines, durations)}.json"
    with _solving(path):
        return _solve_cached(machines, durations, time_limit, threads, path)


def _solve_cached(machines: np.ndarray, durations: np.ndarray, time_limit: float, threads: int,
                  path: Path | None) -> Solution:
    if path is not None:
        entry = _read_cache(path)
        if entry is not None and (entry["optimal"] or entry["time_limit"] >= time_limit):
            starts = np.array(entry["starts"], dtype=np.int64)
            check_schedule(machines, durations, starts)
            return Solution(starts, entry["makespan"], entry["bound"], entry["optimal"], entry["seconds"],
                            entry["time_limit"], cached=True)
    started = time.perf_counter()
    warm = _warm_start(machines, durations, np.random.default_rng(0))
    starts, makespan, bound, optimal = _solve_mip(machines, durations, time_limit, threads, warm)
    solution = Solution(starts, makespan, bound, optimal, time.perf_counter() - started, float(time_limit))
    if path is not None:
        entry = {k: v for k, v in asdict(solution).items() if k != "cached"}
        _write_cache(path, {**entry, "starts": starts.tolist(), "version": CACHE_VERSION})
    return solution
