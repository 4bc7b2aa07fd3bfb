"""``most_operations_remaining`` (job_shop): MOPNR, dispatch the job with the most operations left.

Key: minus the number of the job's unscheduled operations; ties go to the lowest job index. With every job
visiting every machine once, it advances the jobs in lock step (a round robin over the least advanced jobs).
"""

from __future__ import annotations

import numpy as np

from baselines.references.dispatching import DispatchingRule
from envs.job_shop import JobShopState


class MostOperationsRemaining(DispatchingRule):
    """MOPNR."""

    def key(self, state: JobShopState) -> np.ndarray:
        return -(state.durations.shape[-1] - state.next_op)
