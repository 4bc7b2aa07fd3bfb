"""``clairvoyant_dp`` (speed_limit): the exact optimum of each episode, knowing the whole road.

Dynamic programming over the episode's full layout (``SpeedLimitCore.optimal_values``): the best any
driver can do on that road. The agent sees only ``lookahead`` cells ahead, so this is **clairvoyant**: an
upper bound on every policy with the agent's information, reported as "share of the bound", not the
score's 100. Exact while ``max_steps >= 2 * road_length``, for one car (refused otherwise). Runs recorded
as ``oracle`` on speed_limit are this policy.
"""

from __future__ import annotations

from baselines.references.env_reference import EnvReference


class ClairvoyantDP(EnvReference):
    """The full-information dynamic program's level."""

    families = ("speed_limit",)
