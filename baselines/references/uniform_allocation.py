"""``uniform_allocation`` (sum_to_zero): move to the uniform allocation ``1/n`` and stay there.

The constant allocation a practitioner tries first without a demand model: one move at the first step
(paying its movement cost), then nothing. The demand process is symmetric across targets, so uniform is
the best constant allocation in expectation.
"""

from __future__ import annotations

import numpy as np

import envs
from baselines.references.player import ReferencePolicy


class UniformAllocation(ReferencePolicy):
    """``a = 1/n - w``."""

    families = ("sum_to_zero",)

    def act(self, obs: dict[str, np.ndarray], env: envs.views.VectorView) -> np.ndarray:
        core = env.core
        return core.reallocation_to(np.ones_like(core.state.weights))[:, 0]
