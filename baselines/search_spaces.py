"""What a tuning study searches per method: Ray Tune search spaces, sampled with a seed.

Every learning method is tuned over the settings that matter for it, with ranges placed around the setting
each run would otherwise have (its per-env default, or the study group's ``algo_config``), since the units
differ per env (portfolio's penalty is in ``value_change`` units, a hundredth of the start cash; speed_limit's
in seconds of travel time):

- every method: ``lr`` log-uniform from a third to three times its default; ``entropy_coeff`` one of 0, 1e-4,
  1e-3, 1e-2 (discrete envs: 0, 1e-3, 1e-2, 3e-2); ``hidden`` one of two widths (64x64 or 256x256; 32x32 or
  64x64 for ``network=per_entry``);
- ``penalty_ppo``: ``penalty`` log-uniform from a tenth to ten times its default;
- ``lagrangian_ppo``: ``lambda_lr`` log-uniform from a tenth to three times its default; ``cost_limit`` one of
  0, 1 or 5 inadmissible sub-actions (Box: units of distance) per episode;
- a Gaussian policy on a Box env (masked, penalty, Lagrangian, normalisation PPO): ``log_std_init``
  uniform within 1.5 of its default (a spread from 0.22 to 4.5 times the default's).

:func:`sample_trials` draws a study group's trials from these spaces with Ray Tune's own samplers
(``Domain.sample``, what Tune's random search, ``BasicVariantGenerator``, draws with) and a fixed seed per
method: the trials are known before any starts, so each is an ordinary run (resumable, on a cluster with the
same command) and every method gets exactly the trials asked for. A method draws the same relative positions on
every env (the seed does not depend on the env).
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Collection, Mapping
from typing import Any

import numpy as np

__all__ = ["search_space", "searched_keys", "sample_trials", "at_edge"]

_WIDTHS = {"mlp": [(64, 64), (256, 256)], "per_entry": [(32, 32), (64, 64)]}


def searched_keys(fields: Collection[str], *, gaussian: bool) -> list[str]:
    """The settings a method's space searches, in order: from the fields of its config (``penalty`` only where
    the method has one, ...) and whether its policy is a Gaussian over a Box env."""
    keys = ["lr", "entropy_coeff", "hidden"]
    keys += ["penalty"] if "penalty" in fields else []
    keys += ["lambda_lr", "cost_limit"] if "lambda_lr" in fields else []
    keys += ["log_std_init"] if gaussian else []
    return keys


def search_space(algo: str, base: Mapping[str, Any], *, discrete: bool, gaussian: bool) -> dict[str, Any]:
    """The Ray Tune search space of ``algo`` around ``base`` (the config its runs would otherwise have, as a
    dict): the :func:`searched_keys` of that config mapped to ``ray.tune`` domains. ``discrete``: the env's
    actions are; ``gaussian``: the method's policy is a Gaussian over a Box env."""
    from ray import tune

    def domain(key: str) -> Any:
        if key == "lr":
            return tune.loguniform(base["lr"] / 3, base["lr"] * 3)
        if key == "entropy_coeff":
            return tune.choice([0.0, 1e-3, 1e-2, 3e-2] if discrete else [0.0, 1e-4, 1e-3, 1e-2])
        if key == "hidden":
            return tune.choice(_WIDTHS[base.get("network", "mlp")])
        if key == "penalty":
            return tune.loguniform(max(base["penalty"], 1e-6) / 10, max(base["penalty"], 1e-6) * 10)
        if key == "lambda_lr":
            return tune.loguniform(base["lambda_lr"] / 10, base["lambda_lr"] * 3)
        if key == "cost_limit":
            return tune.choice([0.0, 1.0, 5.0])
        return tune.uniform(base["log_std_init"] - 1.5, base["log_std_init"] + 1.5)  # log_std_init

    return {key: domain(key) for key in searched_keys(base, gaussian=gaussian)}


#: How near a bound of a continuous range a value is "at the edge": the outer tenth (of the log range for a
#: log-uniform one).
EDGE_SHARE = 0.1


def at_edge(config: Mapping[str, Any], space: Mapping[str, Any]) -> list[str]:
    """The searched settings of ``config`` that lie at an edge of ``space`` (Tune domains), each as a phrase: in
    the outer :data:`EDGE_SHARE` of a continuous range, or the largest (or a non-zero smallest) of three or more
    ordered numeric choices. A chosen setting at an edge says the best may lie outside what was searched, which
    a reader of the tuned settings should know; 0 is a natural floor (no entropy bonus, no cost allowed), not an
    edge, and a choice of two (the widths) has no inside."""
    from ray.tune.search.sample import Categorical, Float

    found = []
    for key, domain in space.items():
        value = config.get(key)
        if isinstance(domain, Float) and isinstance(value, (int, float)):
            lo, hi = float(domain.lower), float(domain.upper)
            log = type(domain.get_sampler()).__name__ == "_LogUniform"
            position = (math.log(value / lo) / math.log(hi / lo)) if log and value > 0 else (value - lo) / (hi - lo)
            where = "top" if position >= 1 - EDGE_SHARE else "bottom" if position <= EDGE_SHARE else ""
            if where:
                found.append(f"{key} {value:.3g} near the {where} of {lo:.3g}..{hi:.3g}")
        elif isinstance(domain, Categorical) and isinstance(value, (int, float)):
            numbers = sorted(c for c in domain.categories if isinstance(c, (int, float)))
            if len(numbers) >= 3 and (value == numbers[-1] or (value == numbers[0] and value != 0)):
                where = "largest" if value == numbers[-1] else "smallest"
                found.append(f"{key} {value:g} the {where} of {', '.join(f'{c:g}' for c in numbers)}")
    return found


def _rounded(value: Any) -> Any:
    """Three significant digits for a drawn float (a settings file a person reads); choices as they are."""
    if isinstance(value, float) and value != 0 and math.isfinite(value):
        return float(f"{value:.3g}")
    return tuple(value) if isinstance(value, list) else value


def sample_trials(algo: str, space: Mapping[str, Any], trials: int, seed: int) -> list[dict[str, Any]]:
    """``trials`` configs drawn from ``space`` (Tune domains) with a random state seeded by ``seed`` and the
    method's name, each key drawn in the space's order; distinct configs (a repeat is drawn again, up to a
    limit: a space smaller than ``trials`` is refused)."""
    state = np.random.RandomState((seed * 1_000_003 + zlib.crc32(algo.encode())) % 2**32)
    drawn: list[dict[str, Any]] = []
    attempts = 0
    while len(drawn) < trials:
        attempts += 1
        if attempts > 100 * trials:
            raise ValueError(f"{algo}'s search space holds fewer than {trials} distinct configs")
        config = {key: _rounded(domain.sample(random_state=state)) for key, domain in space.items()}
        if config not in drawn:
            drawn.append(config)
    return drawn
