"""``max_admissible_speed`` (speed_limit): drive at the highest level the mask admits, every step.

What a practitioner tries first on this env: the mask already encodes the limits, the comfort rule and
braking in time, so "as fast as allowed" is always safe. It is not optimal: it pays the comfort cost
for every change of level (2 per level) and brakes late into every slower zone, where a planner would
coast. It reads only the action mask.
"""

from __future__ import annotations

import numpy as np

import envs
from baselines.references.player import ReferencePolicy
from envs.masking import MASK_KEY, admit_all_unless


class MaxAdmissibleSpeed(ReferencePolicy):
    """The highest admissible speed level of every entry (one car or several)."""

    families = ("speed_limit",)
    several_agents = True

    def act(self, obs: dict[str, np.ndarray], env: envs.views.VectorView) -> np.ndarray:
        mask = admit_all_unless(env.acting, obs[MASK_KEY]).astype(bool)  # an ended entry acts no more
        return highest_admissible(mask)


def highest_admissible(mask: np.ndarray) -> np.ndarray:
    """The index of the last admissible entry over the last axis (0 where nothing is admitted)."""
    n = mask.shape[-1]
    return np.where(mask.any(axis=-1), n - 1 - np.argmax(mask[..., ::-1], axis=-1), 0)
