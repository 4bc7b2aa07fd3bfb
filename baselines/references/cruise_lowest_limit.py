"""``cruise_lowest_limit`` (speed_limit): hold one speed, the slowest zone's limit, the whole road.

What a practitioner tries first besides "as fast as allowed": cruise control at the one speed that is
admissible in every zone. Each step it drives the admissible level nearest the lowest of ``zone_limits``
(the lower on a tie): from rest it accelerates to that level as fast as S2 allows, then holds it, and it
drives slower only where the mask demands (a car ahead, with several cars). It reads the action mask and
the env's published config (the zone limits), nothing of the road.

Why it is a strong simple policy here: every change of speed costs ``comfort_cost`` per level, and with
the post's costs (2 per level against 1 per step) speeding up for a zone pays only if the zone is long.
Measured (200 evaluation episodes, env seeds 1,000,000 + i, as ``lookahead_dp``'s docstring measures; share of the
bound: 0 = ``random_valid``, 100 = the clairvoyant optimum ``clairvoyant_dp``): 98.8 on ``speed_limit`` (return 60.0
against the optimum's 61.9 and ``max_admissible_speed``'s 43.2), 99.9 on ``speed_limit-m`` (245.0 on every
episode, optimum 245.2) and **100.0 on ``speed_limit-l``**, where holding the lowest limit *is* the optimum of
every episode (902.0): the comfort cost of speeding up and slowing down again exceeds the time it saves in every
zone the levels draw. Above ``lookahead_dp``, the planner over the window the car sees, at every level.
"""

from __future__ import annotations

import numpy as np

import envs
from baselines.references.player import ReferencePolicy
from envs.masking import MASK_KEY, admit_all_unless


class CruiseLowestLimit(ReferencePolicy):
    """The admissible level nearest the lowest zone limit, every step (one car or several)."""

    families = ("speed_limit",)
    several_agents = True

    def act(self, obs: dict[str, np.ndarray], env: envs.views.VectorView) -> np.ndarray:
        mask = admit_all_unless(env.acting, obs[MASK_KEY]).astype(bool)  # an ended entry acts no more
        target = min(env.core.config.zone_limits)
        return nearest_admissible_level(mask, target)


def nearest_admissible_level(mask: np.ndarray, target: int) -> np.ndarray:
    """Per row of ``mask`` (levels on the last axis), the admissible level nearest ``target``, the lower on a tie
    (``target`` where nothing is admitted)."""
    levels = np.arange(mask.shape[-1])
    distance = np.where(mask, np.abs(levels - target) * 2 + (levels > target), np.iinfo(np.int64).max)
    return np.where(mask.any(axis=-1), distance.argmin(axis=-1), target)
