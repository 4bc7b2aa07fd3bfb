"""``oracle``: the upper reference of an env, its exact optimum where it has one.

An env offers an oracle by implementing the optional hook ``EnvCore.oracle_actions`` (the reference
action of every batch entry in its current state, ``(batch, agents, n_sub)``), and may restrict the
configs where it holds with ``EnvCore.check_oracle_config``: ``speed_limit`` solves each
episode exactly by dynamic programming over its layout, ``sum_to_zero`` moves to the next demand
(exact for ``movement_cost <= 0.25``), and ``portfolio``, which has no known exact optimum, plays a
documented strong heuristic that knows the price model (not the future noise). Like ``random_valid``,
its "training" only plays episodes (a flat learning curve, the ceiling learners are measured against), and it is
evaluated as one deterministic policy (``greedy``, mask on).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from gymnasium import spaces

import envs
from baselines.algorithm import Policy
from baselines.random_valid import RandomValid, RandomValidConfig
from envs.config import ConfigError

__all__ = ["Oracle", "envs_with_oracle"]


def envs_with_oracle() -> list[str]:
    return [name for name in envs.names() if envs.spec(name).load().provides("oracle_actions")]


class Oracle(RandomValid):
    """Plays ``env.core.oracle_actions()``; each "iteration" is ``steps_per_iteration`` env steps."""

    Config = RandomValidConfig
    default_steps = 10_000
    masked = True

    @classmethod
    def incompatibility(cls, env_name: str, env_config) -> str | None:
        core_cls = envs.spec(env_name).load()
        if not core_cls.provides("oracle_actions"):
            return f"env {env_name!r} has no oracle; envs with one: {', '.join(envs_with_oracle())}"
        try:
            core_cls.check_oracle_config(envs.resolve_config(env_name, dict(env_config))[0])
        except ConfigError as error:
            return str(error)
        return None

    def __init__(self, env_name: str, env_config: dict[str, Any], config: RandomValidConfig, seed: int, *,
                 address: str | None = None, budget: int | None = None):
        reason = self.incompatibility(env_name, env_config)
        if reason:
            raise ConfigError(reason)
        super().__init__(env_name, env_config, config, seed, address=address, budget=budget)

    def _act(self, obs: dict[str, np.ndarray], rng: np.random.Generator, env: envs.views.VectorView) -> np.ndarray:
        actions = env.core.oracle_actions()  # (N, agents, ...): the vector env's (N, ...) with one agent
        actions = actions[:, 0] if env.core.n_agents == 1 else actions
        return actions[..., 0] if isinstance(env.single_action_space, spaces.Discrete) else actions

    def eval_policies(self) -> dict[tuple[str, str], Policy]:
        return {("greedy", "on"): self._act}
