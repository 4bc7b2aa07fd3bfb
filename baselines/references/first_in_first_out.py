"""``first_in_first_out`` (job_shop): FIFO, dispatch the job whose next operation has been ready longest.

A job's next operation is *ready* when the job's previous operation ends (at time 0 for its first); FIFO's key
is that ready time, the earliest first, ties to the lowest job index. It serves the jobs in the order they
arrived at their next machine's queue, whatever that machine's load (so not "earliest possible start", which
would also wait for the machine).
"""

from __future__ import annotations

import numpy as np

from baselines.references.dispatching import DispatchingRule
from envs.job_shop import JobShopState


class FirstInFirstOut(DispatchingRule):
    """FIFO."""

    def key(self, state: JobShopState) -> np.ndarray:
        return state.job_ready
