"""What the three references that play an env's own ``oracle_actions`` hook share.

Before the references had names, each built-in env's upper reference ran as ``oracle`` and set the 100 of
the score. On none of them is it the optimum for what the agent knows: speed_limit's dynamic program sees
the whole road, sum_to_zero's move sees the next demand (both clairvoyant, so upper bounds), and
portfolio's is a heuristic. Each now runs under a name that says so (:data:`baselines.references.ORACLE_RENAMED`).
"""

from __future__ import annotations

from typing import Any

import numpy as np

import envs
from baselines.references.player import ReferencePolicy, single_agent_actions
from envs.config import ConfigError

__all__ = ["EnvReference"]


class EnvReference(ReferencePolicy):
    """Plays ``env.core.oracle_actions()``, refusing the configs where the env says it is not what it claims."""

    @classmethod
    def config_problem(cls, env_config: Any) -> str | None:
        try:
            cls._core_class().check_oracle_config(env_config)
        except ConfigError as error:
            return str(error)
        return None

    @classmethod
    def _core_class(cls):
        return envs.spec(cls.families[0]).load()

    def act(self, obs: dict[str, np.ndarray], env: envs.views.VectorView) -> np.ndarray:
        return single_agent_actions(env.core.oracle_actions(), env)
