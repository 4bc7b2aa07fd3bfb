"""The algorithm every reference is: a fixed policy played like ``random_valid``, evaluated greedily.

A reference subclasses :class:`ReferencePolicy` and gives two things: :meth:`ReferencePolicy.act` (the
policy, over the vector env's batch) and the env ``families`` it understands; its role (simple,
heuristic, clairvoyant) is declared in :data:`baselines.references.CATALOG`. Like ``random_valid`` its
"training" only plays episodes (a flat learning curve); it is evaluated as one deterministic policy
(``greedy``, mask on), on the same evaluation seeds as every other run, so every training seed of a
deterministic reference scores the same.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np
from gymnasium import spaces

import envs
from baselines.algorithm import Policy
from baselines.random_valid import RandomValid, RandomValidConfig
from envs.config import ConfigError

__all__ = ["ReferencePolicy", "single_agent_actions"]


def single_agent_actions(actions: np.ndarray, env: envs.views.VectorView) -> np.ndarray:
    """A core's ``(N, agents, ...)`` actions as the vector env takes them: ``(N, ...)`` for one agent,
    and a ``Discrete`` env's trailing sub-action axis dropped."""
    actions = actions[:, 0] if env.core.n_agents == 1 else actions
    return actions[..., 0] if isinstance(env.single_action_space, spaces.Discrete) else actions


class ReferencePolicy(RandomValid):
    """Plays :meth:`act`; each "iteration" is ``steps_per_iteration`` env steps."""

    Config = RandomValidConfig
    default_steps = 10_000
    masked = True
    #: The env families (``envs.spec(name).family``) the policy understands.
    families: ClassVar[tuple[str, ...]] = ()
    #: Whether the policy acts for several agents (``n_agents > 1``); most are written for one.
    several_agents: ClassVar[bool] = False

    @classmethod
    def incompatibility(cls, env_name: str, env_config: Mapping[str, Any]) -> str | None:
        family = envs.spec(env_name).family
        if cls.families and family not in cls.families:
            return f"{cls.name()} is a reference policy of {', '.join(cls.families)}, not of {env_name!r}"
        try:
            n_agents = int(envs.config_dict(env_name, dict(env_config)).get("n_agents", 1))
        except ConfigError as error:
            return str(error)
        if n_agents > 1 and not cls.several_agents:
            return f"{cls.name()} plays one agent; got n_agents={n_agents}"
        return cls.config_problem(envs.resolve_config(env_name, dict(env_config))[0])

    @classmethod
    def name(cls) -> str:
        return cls.__module__.rsplit(".", 1)[-1]

    @classmethod
    def config_problem(cls, env_config: Any) -> str | None:
        """Why the policy is not what its docstring claims under this env config (one line), or None."""
        return None

    def __init__(self, env_name: str, env_config: dict[str, Any], config: RandomValidConfig, seed: int, *,
                 address: str | None = None, budget: int | None = None):
        reason = self.incompatibility(env_name, env_config)
        if reason:
            raise ConfigError(reason)
        super().__init__(env_name, env_config, config, seed, address=address, budget=budget)

    def act(self, obs: dict[str, np.ndarray], env: envs.views.VectorView) -> np.ndarray:
        """The policy's actions for the vector env's batch of observations (as ``env.step`` takes them)."""
        raise NotImplementedError

    def _act(self, obs: dict[str, np.ndarray], rng: np.random.Generator, env: envs.views.VectorView) -> np.ndarray:
        return self.act(obs, env)

    def eval_policies(self) -> dict[tuple[str, str], Policy]:
        return {("greedy", "on"): self._act}
