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
against the optimum's 61.9 and ``max_admissible_speed``'s 43.2; equal to the optimum on 107 of the 200 episodes),
99.9 on ``speed_limit-m`` (245.0 on every episode, optimum 245.2; equal on 178) and **100.0 on ``speed_limit-l``**
(902.0 against 902.03; equal on 197): the comfort cost of speeding up and slowing down again exceeds the time it
saves in almost every zone the levels draw. Above ``lookahead_dp``, the planner over the window the car sees, at
every level.

**No rule setting tried leaves much to learn** (:func:`headroom`, ``python -m
baselines.references.cruise_lowest_limit``): on 54 variants of the seed's car (zone limits 3/6/9, 1/4/9 or
2/5/9; zones of 5-20, 3-40 or 10-60 cells on a 200-cell road; ``comfort_cost`` 2, 1 or 0.5; ``time_cost`` 1 or
2; 60 evaluation episodes each), the best of the simple policies (holding one zone limit, any of the three,
or ``max_admissible_speed``) is within 3.7 points of the clairvoyant optimum (0 = ``random_valid``, 100 = the
optimum), within 1 point on 37 of them. A constant speed, or the fastest admissible one when changes are
cheap, is all but optimal under these dynamics.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping
from typing import Any

import numpy as np

import envs
from baselines.references.player import ReferencePolicy
from envs.masking import MASK_KEY, admit_all_unless, nearest_admitted
from envs.speed_limit import ZONE_LETTERS


class CruiseLowestLimit(ReferencePolicy):
    """The admissible level nearest the lowest zone limit, every step (one car or several)."""

    families = ("speed_limit",)
    several_agents = True

    def act(self, obs: dict[str, np.ndarray], env: envs.views.VectorView) -> np.ndarray:
        mask = admit_all_unless(env.acting, obs[MASK_KEY]).astype(bool)  # an ended entry acts no more
        return nearest_admitted(mask, lowest_limit(env.core.config))


def lowest_limit(config: Any) -> int:
    """The lowest limit of the zones the road can have: of ``zone_limits``, those of the zones in ``layout``
    where one is fixed, else those ``zone_mix`` draws (probability above 0)."""
    if config.layout:
        present = {ZONE_LETTERS.index(letter) for letter in config.layout}
    else:
        present = {zone for zone, share in enumerate(config.zone_mix) if share > 0}
    return min(config.zone_limits[zone] for zone in present)


def headroom(level: str = "speed_limit", env_config: Mapping[str, Any] | None = None,
             episodes: int = 60) -> dict[str, float]:
    """What ``level`` under ``env_config`` leaves to learn: the mean return of ``random_valid``, of each simple
    policy (holding each zone limit, ``max_admissible_speed``) and of ``clairvoyant_dp`` on the evaluation
    episodes (env seeds ``EVAL_SEED_BASE + i``, played by :func:`baselines.evaluation.evaluate`), and
    ``headroom``, the points of the range from ``random_valid`` (0) to the clairvoyant optimum (100) that the
    best simple policy leaves (NaN if the range is empty)."""
    from baselines.algorithm import EVAL_SEED_BASE
    from baselines.evaluation import evaluate
    from baselines.random_valid import RandomValidConfig
    from baselines.references import load

    config = dict(env_config or {})
    policies = {}
    for name in ("random_valid", "max_admissible_speed", "clairvoyant_dp"):
        algo = load(name)(level, config, RandomValidConfig(num_envs=1), seed=0)
        (policies[name],) = algo.eval_policies().values()
    for limit in sorted(set(envs.config_dict(level, config)["zone_limits"])):
        policies[f"hold {limit}"] = lambda obs, rng, env, limit=limit: nearest_admitted(obs[MASK_KEY].astype(bool),
                                                                                         limit)
    returns = {name: float(np.mean([record["return"] for record in
                                    evaluate(level, config, policy, episodes=episodes, seed_base=EVAL_SEED_BASE,
                                             rng=np.random.default_rng(0))]))
               for name, policy in policies.items()}
    best_simple = max(value for name, value in returns.items() if name not in ("random_valid", "clairvoyant_dp"))
    span = returns["clairvoyant_dp"] - returns["random_valid"]
    room = 100 * (returns["clairvoyant_dp"] - best_simple) / span if span else math.nan
    return {**returns, "headroom": room}


#: The variants of :func:`scan`: the seed's car on a 200-cell road with these rules changed.
SCAN = {"zone_limits": [(3, 6, 9), (1, 4, 9), (2, 5, 9)],
        "zone_lengths": [(5, 20), (3, 40), (10, 60)],
        "comfort_cost": [2.0, 1.0, 0.5],
        "time_cost": [1.0, 2.0]}


def scan(episodes: int = 60) -> list[dict[str, Any]]:
    """:func:`headroom` of every combination of :data:`SCAN` (the numbers of the module docstring)."""
    rows = []
    for limits, (shortest, longest), comfort, time in itertools.product(*SCAN.values()):
        config = {"zone_limits": limits, "min_zone_length": shortest, "max_zone_length": longest,
                  "comfort_cost": comfort, "time_cost": time, "road_length": 200, "max_steps": 400}
        rows.append({**config, **headroom("speed_limit", config, episodes)})
    return rows


if __name__ == "__main__":
    found = scan()
    for row in found:
        print(f"limits {row['zone_limits']}, zones {row['min_zone_length']}-{row['max_zone_length']}, comfort "
              f"{row['comfort_cost']}, time {row['time_cost']}: headroom {row['headroom']:.1f}")
    rooms = [row["headroom"] for row in found]
    print(f"{len(rooms)} variants: headroom at most {max(rooms):.1f}; under 1 on {sum(r < 1 for r in rooms)}")
