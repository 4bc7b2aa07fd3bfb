"""A method: how an agent handles the constraint, declared once as data; backends implement PPO with it.

A :class:`Method` says what the agent observes, what happens to an inadmissible action, how the
agent's continuous actions become the env's, and which policies are evaluated. It holds no training
code: each backend (:mod:`baselines.backends`: RLlib, the single-process torch loop, sb3-contrib)
reads the declaration and trains "PPO with this method", and no backend inherits from another.
Adding a method is one module in :mod:`baselines.methods` (its config and its declaration) and one
line in :mod:`baselines.registry`; a method that changes PPO's objective adds its
:class:`baselines.objective.Objective` (the torch backend's hooks), in a module of its own.

A method is also the registry entry of its algo name (:class:`baselines.algorithm.AlgoEntry`): it
builds its config with the per-env defaults of :mod:`baselines.settings`, says which envs it cannot
run, and resolves ``config.backend`` to the backend that runs it.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import envs
from baselines.algorithm import Algorithm
from baselines.objective import Objective
from baselines.registry import load_backend
from baselines.settings import env_defaults
from baselines.training_env import ACTION_MODES
from baselines.tuned_settings import TRAINING_TASK_KEYS, shown_value, tuned_entry
from envs.config import ConfigError, build_config

__all__ = ["Method", "MASK_ON", "MASK_OFF", "DISTRIBUTIONS"]

#: How a policy is evaluated: with the method's handling of the constraint (``on``: masked logits,
#: projected or normalised actions) or without it (``off``: the raw network, the env's fallback meets
#: inadmissible actions and counts them).
MASK_ON, MASK_OFF = "on", "off"
_SPACES = ("discrete", "continuous")
#: Box envs: the action distributions a method may declare.
DISTRIBUTIONS = ("gaussian", "dirichlet")


@dataclass(frozen=True)
class Method:
    """How an agent handles the constraint.

    Attributes:
        name: the algo name (``suite.run --algo NAME``).
        Config: the settings dataclass: :class:`baselines.settings.PPOSettings` plus the method's own
            fields and ``backend`` (whose choices are the backends that implement the method).
        summary: one line: what the agent observes, what happens to an inadmissible action.
        observes_mask: discrete envs: the policy sees the mask and samples only admissible actions.
        mask_in_loss: with ``observes_mask``, the PPO loss uses the masked distribution too (False:
            the loss uses the unmasked logits, "naive" masking).
        penalised: the learning reward loses ``config.penalty`` per inadmissible sub-action (Box:
            per unit of distance to the admissible set).
        objective: a method whose objective is not PPO's: the factory, called with the run's config, of
            its :class:`baselines.objective.Objective` (e.g. Lagrangian PPO's cost critic and multiplier,
            :class:`baselines.lagrange.LagrangianObjective`); None: PPO's objective. Only the torch
            backend calls its hooks; the others refuse such a method.
        distribution: Box envs: the policy's action distribution, ``gaussian`` (a diagonal Gaussian,
            unsquashed onto the action box) or ``dirichlet`` (target weights on the simplex).
        action_mode: Box envs: how the agent's action becomes the env's
            (``baselines.training_env.ACTION_MODES``).
        action_spaces: the kinds of action space it handles (``discrete``, ``continuous``).
        requires: optional ``EnvCore`` hooks the env must provide (``EnvCore.provides``).
        eval_masks: the evaluated masks, ``on`` and/or ``off``, the first one being the headline's.
        default_steps: the default budget in env steps.
    """

    name: str
    Config: type
    summary: str
    observes_mask: bool
    mask_in_loss: bool = True
    penalised: bool = False
    objective: Callable[[Any], Objective] | None = None
    distribution: str = "gaussian"
    action_mode: str = "raw"
    action_spaces: tuple[str, ...] = _SPACES
    requires: tuple[str, ...] = ()
    eval_masks: tuple[str, ...] = (MASK_ON, MASK_OFF)
    default_steps: int = 1_000_000

    def __post_init__(self):
        if self.action_mode not in ACTION_MODES:
            raise ValueError(f"method {self.name}: action_mode must be one of {ACTION_MODES}")
        if not set(self.action_spaces) <= set(_SPACES) or not set(self.eval_masks) <= {MASK_ON, MASK_OFF}:
            raise ValueError(f"method {self.name}: action_spaces in {_SPACES}, eval_masks in (on, off)")
        if self.distribution not in DISTRIBUTIONS:
            raise ValueError(f"method {self.name}: distribution must be one of {DISTRIBUTIONS}")

    @property
    def backends(self) -> tuple[str, ...]:
        """The backends that implement it: the choices of its config's ``backend`` field."""
        field = next(f for f in dataclasses.fields(self.Config) if f.name == "backend")
        return tuple(field.metadata["choices"])

    # ------------------------------------------------------------------ the registry entry

    def make_config(self, env_name: str, overrides: Mapping[str, Any], *, owner: str) -> Any:
        """``Config`` defaults < the env's :func:`baselines.settings.env_defaults` (the keys that are fields of
        ``Config``) < the entry of the tuned settings file ``overrides["settings"]`` names for this method and env
        (:mod:`baselines.tuned_settings`), when it names one < ``overrides``; validated, one-line errors."""
        fields = {f.name for f in dataclasses.fields(self.Config)}
        defaults = {key: value for key, value in env_defaults(env_name).items() if key in fields}
        name = build_config(self.Config, {**defaults, **overrides}, owner=owner).settings
        tuned, tuned_with = tuned_entry(name, self.name, env_name) if name else ({}, {})
        if name:  # the task the trials trained on: the training env as the per-env default made it, unless recorded
            untuned = build_config(self.Config, defaults, owner=owner)
            tuned_with = {**{key: getattr(untuned, key) for key in TRAINING_TASK_KEYS if key in fields},
                          **tuned_with}
        config = build_config(self.Config, {**defaults, **tuned, **overrides}, owner=owner)
        differing = [key for key, value in tuned_with.items() if getattr(config, key, value) != value]
        if differing:
            raise ConfigError(f"algo config: settings={name} was tuned for {self.name} on {env_name} with "
                              + ", ".join(f"{key}={shown_value(tuned_with[key])}" for key in differing)
                              + "; this run has "
                              + ", ".join(f"{key}={shown_value(getattr(config, key))}" for key in differing)
                              + " (set them, or tune for this setting)")
        return config

    def implementation(self, config: Any) -> Callable[..., Algorithm]:
        """The backend named by ``config.backend``, bound to this method."""
        return functools.partial(load_backend(config.backend), method=self)

    def incompatibility(self, env_name: str, env_config: Mapping[str, Any], backend: str | None = None, *,
                        core: Any = None) -> str | None:
        """Why this method (on ``backend``, default its first) cannot run ``env_name`` with ``env_config``;
        ``core``: a batch-1 core of that env a backend has built already (else one is made here)."""
        core = core if core is not None else envs.make_core(env_name, 1, **dict(env_config))
        kind = "discrete" if core.discrete else "continuous"
        if kind not in self.action_spaces:
            return f"{self.name} handles {' and '.join(self.action_spaces)} actions; env {env_name!r} has " \
                   f"{' '.join(str(core.action_space).split())}"
        missing = [hook for hook in self.requires if not core.provides(hook)]
        if missing:
            hooks = ", ".join(f"{hook}()" for hook in missing)
            return f"{self.name} needs an env core with {hooks}; env {env_name!r} has none"
        try:
            backend_cls = load_backend(backend or self.backends[0])
        except ConfigError as error:
            return str(error)
        return backend_cls.incompatibility_with(self, env_name, core)

    def check(self, env_name: str, env_config: Mapping[str, Any], backend: str, *, core: Any = None) -> None:
        """Raise a one-line ``ConfigError`` where :meth:`incompatibility` finds a reason."""
        if backend not in self.backends:
            raise ConfigError(f"{self.name} runs on backend {', '.join(self.backends)}, not {backend}")
        reason = self.incompatibility(env_name, env_config, backend, core=core)
        if reason:
            raise ConfigError(reason)
