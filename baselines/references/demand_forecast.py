"""``demand_forecast`` (sum_to_zero): move to the demand the published AR(1) model forecasts.

Log-demand follows ``z' = rho z + noise`` and the shares are ``softmax(z)``; the observed shares ``d``
give ``z`` up to a constant, which softmax ignores, so ``softmax(rho log d)`` is the model's point forecast
of the next shares from what the agent sees (``rho`` = ``demand_persistence``, part of the env's spec).
Not the optimum under uncertainty: it ignores the noise (the mean of a softmax is not the softmax of the
mean) and the movement cost (it always moves all the way).
"""

from __future__ import annotations

import numpy as np

import envs
from baselines.references.player import ReferencePolicy
from envs.masking import OBSERVATION_KEY
from envs.sum_to_zero import softmax


class DemandForecast(ReferencePolicy):
    """``a = softmax(rho log d_observed) - w``."""

    families = ("sum_to_zero",)

    def act(self, obs: dict[str, np.ndarray], env: envs.views.VectorView) -> np.ndarray:
        n = env.single_action_space.shape[0]
        demand = np.asarray(obs[OBSERVATION_KEY][:, n:2 * n], dtype=np.float64)
        log_demand = np.log(np.maximum(demand, np.finfo(np.float32).tiny))
        forecast = softmax(env.core.config.demand_persistence * log_demand)
        return env.core.reallocation_to(forecast[:, None, :])[:, 0]
