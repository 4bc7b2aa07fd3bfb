"""``clairvoyant_demand`` (sum_to_zero): move exactly to the next step's demand, knowing it.

The exact optimum of every episode for ``movement_cost <= 0.25`` (refused above; the env's docstring has the
proof), but it sees the demand the step will be served at, which the agent does not: **clairvoyant**, an
upper bound reported as "share of the bound", never the score's 100. Runs recorded as ``oracle`` on
sum_to_zero are this policy.
"""

from __future__ import annotations

from baselines.references.env_reference import EnvReference


class ClairvoyantDemand(EnvReference):
    """``a = d_next - w``."""

    families = ("sum_to_zero",)
