"""What the four job-shop dispatching rules share: pick, among the admissible jobs, the one whose priority key is
smallest, the lowest job index on a tie.

Each rule (``shortest_processing_time``, ``most_work_remaining``, ``most_operations_remaining``,
``first_in_first_out``: one module each) gives only its key, ``(batch, n_jobs)``, from the env's state. Every
quantity a key uses is in the agent's observation too (each operation's duration and scheduled flag, and the
lower bound ``C_LB`` of the job's last scheduled operation, which is its end), so the rules use no more than the
agent knows. They are the rules a practitioner tries first and the ones L2D (Zhang et al. 2020) compares
against; played through the env's placement (``semi_active`` by default, or L2D's left shift with
``--env-config placement=active``), they are what the env can do with them. Their keys do not read the
placement: the same rule may build a different schedule under each (SPT most; FIFO never, see the env's
docstring).
"""

from __future__ import annotations

import numpy as np

import envs
from baselines.references.player import ReferencePolicy
from envs.job_shop import JobShopState, next_durations, remaining_work

__all__ = ["DispatchingRule", "dispatch", "next_durations", "remaining_work"]


def dispatch(key: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """The admissible job with the smallest ``key`` (the lowest index on a tie); 0 where none is admissible."""
    keyed = np.where(mask.astype(bool), key.astype(np.float64), np.inf)
    return keyed.argmin(axis=-1)


class DispatchingRule(ReferencePolicy):
    """A priority rule: :meth:`key` per job, smallest first among the admissible jobs."""

    families = ("job_shop",)

    def key(self, state: JobShopState) -> np.ndarray:
        """``(batch, n_jobs)``: the rule's priority, smaller dispatched first."""
        raise NotImplementedError

    def act(self, obs: dict[str, np.ndarray], env: envs.views.VectorView) -> np.ndarray:
        return dispatch(self.key(env.core.state), env.core.action_mask()[:, 0])
