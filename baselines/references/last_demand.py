"""``last_demand`` (sum_to_zero): move to the demand shares just observed.

The persistence forecast: tomorrow's demand is today's. It reads the observed demand (entries ``n .. 2n-1``
of the observation) and moves the allocation there, paying for the move every step.
"""

from __future__ import annotations

import numpy as np

import envs
from baselines.references.player import ReferencePolicy
from envs.masking import OBSERVATION_KEY


class LastDemand(ReferencePolicy):
    """``a = d_observed - w``."""

    families = ("sum_to_zero",)

    def act(self, obs: dict[str, np.ndarray], env: envs.views.VectorView) -> np.ndarray:
        n = env.single_action_space.shape[0]
        demand = np.asarray(obs[OBSERVATION_KEY][:, n:2 * n], dtype=np.float64)
        return env.core.reallocation_to(demand[:, None, :])[:, 0]
