"""``relaxed_heuristic`` (portfolio): the relaxed problem's ranking, played under the real rules.

The strongest known policy of this env, and not an optimum (none is known). It knows the published price
model (mean curves and noise levels, which are fixed and part of the env's spec) and sees what the agent
sees (holdings, cash, prices, time), never future noise: ranks cash and the assets by the relaxed problem's
continuation value per dollar, sells what is beaten by more than its round trip, buys the best buyable
asset (``PortfolioCore.oracle_actions``; the env docstring's "Reference policy"). It is the **anchor**
candidate of every portfolio level; the relaxed problem's value (``relaxed_value_bound``, about $9,300 at
the seed size) is the upper bound reported beside it. Several traders are played each on their own.
Runs recorded as ``oracle`` on portfolio are this policy.
"""

from __future__ import annotations

from baselines.references.env_reference import EnvReference


class RelaxedHeuristic(EnvReference):
    """The env's model-aware reference policy."""

    families = ("portfolio",)
    several_agents = True
