"""``job_shop_optimum`` (job_shop): the solver's optimal schedule of each episode's instance, replayed.

At the start of each episode the instance (every operation's machine and duration, which the agent observes
too) is solved by :func:`baselines.job_shop_solver.solve` (HiGHS's MIP, a time limit, the on-disk cache), and
the policy then dispatches the operations in order of their start times in the solver's schedule (ties: the
lower job). Role ``optimum``: where the solver proves its schedule optimal this is the exact optimum for what
the agent knows (the observation determines the instance and the state, and the episode is deterministic), the
score's 100 with a meaning: "optimality gap" is the gap to it. Where the time limit is hit first, the schedule
is the best found (best known, not proven) and the solver's lower bound is recorded beside it.

**Why the replay reproduces the schedule.** Let ``S`` be any feasible schedule (start ``s_o`` for every
operation ``o``, durations ``d_o >= 1``) and dispatch the operations in order of ``s_o``. The env places each at
``s'_o = max(end of the job's previous operation, end of the machine's last operation)``. By induction over the
dispatch order, ``s'_o <= s_o``: the job's previous operation ``p`` was dispatched earlier (``s_p + d_p <= s_o``,
so ``s_p < s_o``) and ends at ``s'_p + d_p <= s_p + d_p <= s_o``; the machine's last operation ``q`` was
dispatched earlier, so ``s_q <= s_o``, and as ``q`` and ``o`` do not overlap in ``S``, ``s_q + d_q <= s_o``
(``s_q = s_o`` would overlap, durations being positive), hence ``s'_q + d_q <= s_o``. So every operation ends no
later than in ``S`` and the replayed makespan is at most ``S``'s; being a feasible schedule, it is at least the
optimum. Replaying an optimal ``S`` therefore gives exactly the optimal makespan (the tests check it on every
shipped instance and on random ones), and an unproven ``S`` gives at most its makespan. Under the env setting
``placement="active"`` the same holds: the left shift starts an operation no later than appending it would, so
``s'_o <= s_o`` by the same induction (the machine's operations placed so far, wherever they sit, all end by
``s_o``); the replayed schedule may then differ from ``S`` (an operation can move into an earlier gap), not its
makespan where ``S`` is optimal (tested on ft06, la01, la05 and random 6x6 instances).

**What it records.** Each evaluation episode's record gets ``proven_optimal`` (1 where the solver proved the
schedule optimal, else 0) and ``optimum_bound`` (the solver's lower bound on the makespan), beside the env's
``makespan``; ``suite.report`` says "proven optimum" only where every evaluation episode is proven, and "best
known" with the share proven otherwise.

**Cost.** One solve per new instance (the cache remembers solved instances across runs): random 6x6 instances
take under a second each, 10x10 ones tens of seconds, and 15x15 ones are not proven within a minute (this MIP
is far weaker than CP-SAT; measurements in the solver module). Its "training" also solves every episode
it plays: run it with a small budget (``--steps 1``: one step of ``num_envs`` entries).
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from typing import Any

import numpy as np

import envs
from baselines.algorithm import Policy
from baselines.job_shop_solver import INSTALL_HINT, Solution, instance_key, solve
from baselines.references.player import ReferencePolicy
from envs.config import setting

__all__ = ["JobShopOptimum", "JobShopOptimumConfig"]


@dataclass(frozen=True)
class JobShopOptimumConfig:
    num_envs: int = setting(4, "vector env entries played at once (each new episode is one solve)",
                            check=lambda v: v > 0, accepts="a positive integer")
    steps_per_iteration: int = setting(1, "env steps per progress row", check=lambda v: v > 0,
                                       accepts="a positive integer")
    time_limit: float = setting(60.0, "seconds the solver may spend on one instance", check=lambda v: v > 0,
                                accepts="a positive number")
    threads: int = setting(1, "solver threads", check=lambda v: v > 0, accepts="a positive integer")


class _Plans:
    """The dispatch plans of one vector env's entries: the instance each was solved for, the job sequence, and
    the solver's certificate."""

    def __init__(self, core: Any):
        n, m, B = core.n_jobs, core.n_machines, core.num_envs
        self.core = core
        self.machines = np.full((B, n, m), -1, dtype=np.int64)
        self.durations = np.zeros((B, n, m), dtype=np.int64)
        self.order = np.zeros((B, n * m), dtype=np.int64)
        self.proven = np.zeros(B)
        self.bound = np.zeros(B)


class JobShopOptimum(ReferencePolicy):
    """Replays the solver's schedule of each episode's instance."""

    Config = JobShopOptimumConfig
    default_steps = 1
    families = ("job_shop",)

    @classmethod
    def config_problem(cls, env_config: Any) -> str | None:
        if importlib.util.find_spec("highspy") is None:
            return f"job_shop_optimum needs the HiGHS solver: {INSTALL_HINT}"
        return None

    def __init__(self, env_name: str, env_config: dict[str, Any], config: JobShopOptimumConfig, seed: int, *,
                 address: str | None = None, budget: int | None = None):
        self._plans: _Plans | None = None
        self._solved: dict[str, Solution] = {}
        super().__init__(env_name, env_config, config, seed, address=address, budget=budget)

    def solution(self, machines: np.ndarray, durations: np.ndarray) -> Solution:
        """The solver's answer for one instance (remembered in memory and on disk)."""
        key = instance_key(machines, durations)
        if key not in self._solved:
            self._solved[key] = solve(machines, durations, time_limit=getattr(self.config, "time_limit", 60.0),
                                      threads=getattr(self.config, "threads", 1))
        return self._solved[key]

    def _plans_for(self, core: Any) -> _Plans:
        if self._plans is None or self._plans.core is not core:
            self._plans = _Plans(core)
        plans, s = self._plans, core.state
        stale = np.flatnonzero(((plans.machines != s.machines) | (plans.durations != s.durations)).any(axis=(1, 2)))
        for b in stale:  # once per new instance
            answer = self.solution(s.machines[b], s.durations[b])
            plans.machines[b], plans.durations[b] = s.machines[b], s.durations[b]
            plans.order[b] = answer.dispatch_order()
            plans.proven[b], plans.bound[b] = float(answer.optimal), float(answer.bound)
        return plans

    def act(self, obs: dict[str, np.ndarray], env: envs.views.VectorView) -> np.ndarray:
        core = env.core
        plans = self._plans_for(core)
        step = np.minimum(core.state.t, plans.order.shape[1] - 1)  # a finished entry's action is ignored
        return plans.order[np.arange(core.num_envs), step]

    def episode_metrics(self, env: envs.views.VectorView) -> dict[str, np.ndarray]:
        """Per entry, about the schedule being replayed: ``proven_optimal`` (1/0) and ``optimum_bound``."""
        plans = self._plans_for(env.core)
        return {"proven_optimal": plans.proven.copy(), "optimum_bound": plans.bound.copy()}

    def eval_policies(self) -> dict[tuple[str, str], Policy]:
        def replay(obs, rng, env):
            return self._act(obs, rng, env)

        replay.episode_metrics = self.episode_metrics
        return {("greedy", "on"): replay}
