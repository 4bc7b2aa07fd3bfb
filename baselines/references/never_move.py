"""``never_move`` (sum_to_zero): keep the starting allocation, never reallocate (``a = 0``).

The cheapest policy there is: it never pays the movement cost, and serves whatever demand the random
starting allocation happens to meet. What a penalty or Lagrangian agent that learned "do nothing" scores.
"""

from __future__ import annotations

import numpy as np

import envs
from baselines.references.player import ReferencePolicy


class NeverMove(ReferencePolicy):
    """Zero reallocation."""

    families = ("sum_to_zero",)

    def act(self, obs: dict[str, np.ndarray], env: envs.views.VectorView) -> np.ndarray:
        return np.zeros((env.num_envs, *env.single_action_space.shape), dtype=np.float64)
