"""References: fixed policies that put a learned score in context, each run like any algo.

Every reference is one small module here (or :mod:`baselines.random_valid`), a
:class:`~baselines.references.player.ReferencePolicy` with a *role* that says what its number means:

- ``lower``: ``random_valid``, the 0 of the normalised score;
- ``simple``: what a practitioner tries first (drive at the limit, cruise at the slowest limit, hold, uniform,
  last demand, buy and hold); the bar a method must clear before a task counts as learned;
- ``heuristic``: a stronger policy that uses only what the agent observes (and the env's published
  model); with the simple ones, a candidate for the task's **anchor**, its 100;
- ``optimum``: a solver's optimal policy for what the agent knows (job_shop: each instance's optimal schedule,
  replayed); the task's anchor, a 100 that is an optimum where the solver proved it (its evaluation records say
  episode by episode whether it did, and the report names a best known schedule as such);
- ``clairvoyant``: sees what the agent cannot (the next demand, the whole road): an upper bound on any
  policy with the agent's information, reported beside the score ("share of the bound"), never its 100.

:data:`REFERENCES` is the table the algo registry reads; :func:`roles` and :func:`current_name` are what
the report needs (a run recorded under the old name ``oracle`` reads as what that policy is).
"""

from __future__ import annotations

import importlib

__all__ = ["CATALOG", "REFERENCES", "ROLES", "ORACLE_RENAMED", "roles", "load", "current_name"]

_HERE = "baselines.references."
#: Algo name -> (``"module:class"``, role). Entries are imported on first use (numpy and envs only: no Ray,
#: no torch); the roles are data, so a report knows them without importing a policy.
CATALOG: dict[str, tuple[str, str]] = {
    "random_valid": ("baselines.random_valid:RandomValid", "lower"),
    "max_admissible_speed": (_HERE + "max_admissible_speed:MaxAdmissibleSpeed", "simple"),
    "cruise_lowest_limit": (_HERE + "cruise_lowest_limit:CruiseLowestLimit", "simple"),
    "lookahead_dp": (_HERE + "lookahead_dp:LookaheadDP", "heuristic"),
    "clairvoyant_dp": (_HERE + "clairvoyant_dp:ClairvoyantDP", "clairvoyant"),
    "never_move": (_HERE + "never_move:NeverMove", "simple"),
    "uniform_allocation": (_HERE + "uniform_allocation:UniformAllocation", "simple"),
    "last_demand": (_HERE + "last_demand:LastDemand", "simple"),
    "demand_forecast": (_HERE + "demand_forecast:DemandForecast", "simple"),
    "clairvoyant_demand": (_HERE + "clairvoyant_demand:ClairvoyantDemand", "clairvoyant"),
    "buy_and_hold": (_HERE + "buy_and_hold:BuyAndHold", "simple"),
    "equal_weight": (_HERE + "equal_weight:EqualWeight", "simple"),
    "one_step_lookahead": (_HERE + "one_step_lookahead:OneStepLookahead", "simple"),
    "relaxed_heuristic": (_HERE + "relaxed_heuristic:RelaxedHeuristic", "heuristic"),
    "shortest_processing_time": (_HERE + "shortest_processing_time:ShortestProcessingTime", "simple"),
    "most_work_remaining": (_HERE + "most_work_remaining:MostWorkRemaining", "simple"),
    "most_operations_remaining": (_HERE + "most_operations_remaining:MostOperationsRemaining", "simple"),
    "first_in_first_out": (_HERE + "first_in_first_out:FirstInFirstOut", "simple"),
    "job_shop_optimum": (_HERE + "job_shop_optimum:JobShopOptimum", "optimum"),
}
#: Algo name -> entry point, what the algo registry reads.
REFERENCES: dict[str, str] = {name: entry for name, (entry, _) in CATALOG.items()}

#: The roles, in the order tables list them.
ROLES = ("lower", "simple", "heuristic", "optimum", "clairvoyant")

#: Before the references had names of their own, each env's upper reference ran as ``oracle``. What that
#: policy is on each built-in env: runs recorded as ``oracle`` there read as this name.
ORACLE_RENAMED = {"portfolio": "relaxed_heuristic", "speed_limit": "clairvoyant_dp",
                  "sum_to_zero": "clairvoyant_demand"}


def load(name: str):
    """The class that plays reference ``name`` (or ``oracle``, a user env's own)."""
    module, _, attribute = (REFERENCES[name] if name != "oracle" else "baselines.oracle:Oracle").partition(":")
    return getattr(importlib.import_module(module), attribute)


def roles() -> dict[str, str]:
    """Every reference's role (``oracle``, a user env's own upper reference, counts as a heuristic)."""
    return {**{name: role for name, (_, role) in CATALOG.items()}, "oracle": "heuristic"}



def current_name(algo: str, env_family: str) -> str:
    """The name a run's algo has today: ``oracle`` on a built-in env becomes what it is there."""
    return ORACLE_RENAMED.get(env_family, algo) if algo == "oracle" else algo
