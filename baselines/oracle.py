"""``oracle``: a user env's own upper reference, the policy of its ``EnvCore.oracle_actions`` hook.

An env offers one by implementing the optional hook ``EnvCore.oracle_actions`` (the reference action of
every batch entry in its current state, ``(batch, agents, n_sub)``), and may restrict the configs where
it holds with ``EnvCore.check_oracle_config``. The report treats it as a non-clairvoyant heuristic (a
candidate for the task's 100); its docstring should say whether it is an exact optimum.

On the built-in envs the hook's policy is not an optimum for what the agent knows, so it runs under a
name that says what it is (:data:`baselines.references.ORACLE_RENAMED`: ``relaxed_heuristic``,
``clairvoyant_dp``, ``clairvoyant_demand``) and ``--algo oracle`` there says so instead of running.
Like ``random_valid``, its "training" only plays episodes; it is evaluated as one deterministic policy
(``greedy``, mask on).
"""

from __future__ import annotations

import numpy as np

import envs
from baselines.references import ORACLE_RENAMED
from baselines.references import roles as reference_roles
from baselines.references.player import ReferencePolicy, single_agent_actions
from envs.config import ConfigError

__all__ = ["Oracle", "envs_with_oracle"]


def envs_with_oracle() -> list[str]:
    return [name for name in envs.names() if envs.spec(name).load().provides("oracle_actions")
            and envs.spec(name).family not in ORACLE_RENAMED]


def _role_words(name: str) -> str:
    return {"heuristic": "a heuristic, the best known policy", "clairvoyant": "clairvoyant: an upper bound"}.get(
        reference_roles()[name], reference_roles()[name])


class Oracle(ReferencePolicy):
    """Plays ``env.core.oracle_actions()``; each "iteration" is ``steps_per_iteration`` env steps."""

    several_agents = True  # the hook acts for every agent

    @classmethod
    def incompatibility(cls, env_name: str, env_config) -> str | None:
        family = envs.spec(env_name).family
        if family in ORACLE_RENAMED:
            renamed = ORACLE_RENAMED[family]
            return (f"{env_name!r} has no oracle (no policy is known to be optimal for what its agent observes); "
                    f"its former oracle is --algo {renamed} ({_role_words(renamed)})")
        core_cls = envs.spec(env_name).load()
        if not core_cls.provides("oracle_actions"):
            return f"env {env_name!r} has no oracle; envs with one: {', '.join(envs_with_oracle())}"
        try:
            core_cls.check_oracle_config(envs.resolve_config(env_name, dict(env_config))[0])
        except ConfigError as error:
            return str(error)
        return None

    def act(self, obs: dict[str, np.ndarray], env: envs.views.VectorView) -> np.ndarray:
        return single_agent_actions(env.core.oracle_actions(), env)
