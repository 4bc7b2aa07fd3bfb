"""``most_work_remaining`` (job_shop): MWKR, dispatch the job with the most processing time left.

Key: minus the summed duration of the job's unscheduled operations (its next one included); ties go to the
lowest job index. It pushes the longest remaining chains first, the usual best of the simple rules on makespan
(L2D's strongest baseline rule).
"""

from __future__ import annotations

import numpy as np

from baselines.references.dispatching import DispatchingRule, remaining_work
from envs.job_shop import JobShopState


class MostWorkRemaining(DispatchingRule):
    """MWKR."""

    def key(self, state: JobShopState) -> np.ndarray:
        return -remaining_work(state)
