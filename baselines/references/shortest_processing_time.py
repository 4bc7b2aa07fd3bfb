"""``shortest_processing_time`` (job_shop): SPT, dispatch the job whose next operation is shortest.

Key: the duration of the job's next operation; ties go to the lowest job index. A greedy rule that keeps
machines busy with short work first; it ignores what waits behind each operation (see ``most_work_remaining``).
"""

from __future__ import annotations

import numpy as np

from baselines.references.dispatching import DispatchingRule, next_durations
from envs.job_shop import JobShopState


class ShortestProcessingTime(DispatchingRule):
    """SPT."""

    def key(self, state: JobShopState) -> np.ndarray:
        return next_durations(state)
