"""Env names -> specs, and the ``make`` functions of the four views.

Registration is data: a name, an entry point (``"module:Class"`` of an :class:`envs.core.EnvCore`
subclass, imported on first use, or the class itself) and a one-line description. Each env
registers itself at the end of its own module (the built-in ones are imported by ``envs``); a
user's env is one ``register`` call away from ``envs.make``, ``suite.run`` and ``suite.check``.
"""

from __future__ import annotations

import dataclasses
import importlib
from dataclasses import dataclass
from typing import Any

import gymnasium

from .config import ConfigError, UnknownConfigKey, build_config, check_fits, config_to_dict, describe_config, setting
from .contract import check_core
from .core import INVALID_ACTION_SETTINGS, EnvCore
from .gymnasium_ids import register_id, unregister_id
from .views import MultiAgentVectorView, ParallelView, SingleAgentView, VectorView

__all__ = ["EnvSpec", "CommonConfig", "register", "register_level", "levels", "unregister", "names", "spec",
           "gymnasium_id",
           "resolve_config", "config_dict",
           "describe", "make_core", "make", "make_parallel", "make_vector", "make_multi_agent_vector"]


@dataclass(frozen=True)
class CommonConfig:
    """Options every env accepts, whatever its own config."""

    strict: bool = setting(False, "raise ValueError naming the constraint on an inadmissible action, "
                                  "instead of executing the env's fallback")
    invalid_action: str = setting("", "how an inadmissible action is executed: noop (not executed: the env's "
                                      "do-nothing action) or repair (the nearest admissible action); the env's "
                                      "default when not given (its docstring says what each means)",
                                  choices=INVALID_ACTION_SETTINGS)


@dataclass(frozen=True)
class EnvSpec:
    """A registered env, or a level of one.

    Attributes:
        name: the registry name (``suite.run --env NAME``).
        entry_point: ``"package.module:CoreClass"`` or the :class:`EnvCore` subclass itself.
        description: one line for listings.
        defaults: config values of this name, under the user's overrides (a level's size).
        family: the env the name is a level of (itself for the seed size).
        level: 1 for the seed's size, then 2, 3, ... as the action space grows.
    """

    name: str
    entry_point: str | type[EnvCore]
    description: str = ""
    defaults: dict[str, Any] = dataclasses.field(default_factory=dict)
    family: str = ""
    level: int = 1

    def load(self) -> type[EnvCore]:
        """The core class, importing its module on first use (a one-line ``ConfigError`` if it cannot) and checking
        it against the :class:`EnvCore` contract on a probe batch the first time (:func:`envs.contract.check_core`,
        an :class:`~envs.contract.EnvContractError` naming the hook that breaks it)."""
        core_cls = self._import()
        check_core(core_cls, self.name)
        return core_cls

    def _import(self) -> type[EnvCore]:
        """The core class, unchecked."""
        if isinstance(self.entry_point, str):
            module_name, _, attr = self.entry_point.partition(":")
            try:
                core_cls = getattr(importlib.import_module(module_name), attr)
            except (ImportError, AttributeError) as error:
                raise ConfigError(f"env {self.name!r}: its entry point {self.entry_point!r} cannot be loaded "
                                  f"({type(error).__name__}: {str(error).splitlines()[0]})") from None
        else:
            core_cls = self.entry_point
        if not (isinstance(core_cls, type) and issubclass(core_cls, EnvCore)):
            raise TypeError(f"env {self.name!r}: entry point {self.entry_point!r} is not an EnvCore subclass")
        return core_cls


_REGISTRY: dict[str, EnvSpec] = {}


#: Words the command line gives a meaning of its own (``--env all``), so no env may be named so.
RESERVED_NAMES = ("all",)


def register(name: str, entry_point: str | type[EnvCore], *, description: str = "",
             overwrite: bool = False) -> EnvSpec:
    """Register an env under ``name``; refuses to replace an existing name unless ``overwrite``.

    ``entry_point`` is the :class:`EnvCore` subclass or ``"package.module:Class"``. The class (a string's
    target, when it can be imported now) is checked against the :class:`EnvCore` contract on a probe batch
    under its default config (:func:`envs.contract.check_core`): a hook returning the wrong kind, dtype, shape
    or values, a space or ``Config`` of the wrong kind is refused here with an
    :class:`~envs.contract.EnvContractError` naming the hook. A string that cannot be imported yet is checked
    when it is first loaded (``envs.make`` and the other ``make`` functions).
    """
    if not isinstance(name, str) or not name or not name.replace("_", "").replace("-", "").isalnum():
        raise ValueError(f"env names are letters, digits, '_' and '-'; got {name!r}")
    if name in RESERVED_NAMES:
        raise ValueError(f"{name!r} cannot name an env: the command line reads it as a keyword")
    if isinstance(entry_point, str):
        module_name, colon, attr = entry_point.partition(":")
        if not colon or not module_name or not attr.isidentifier():
            raise ValueError(f"env {name!r}: an entry point is 'package.module:CoreClass', got {entry_point!r}")
    elif not (isinstance(entry_point, type) and issubclass(entry_point, EnvCore)):
        raise TypeError(f"env {name!r}: entry point {entry_point!r} is not an EnvCore subclass")
    if name in _REGISTRY and not overwrite:
        raise ValueError(f"env {name!r} is already registered; pass overwrite=True to replace it")
    env_spec = EnvSpec(name, entry_point, description, family=name)
    try:
        core_cls = env_spec._import()
    except (ConfigError, TypeError):
        core_cls = None  # a string entry point not importable yet: checked when first loaded
    if core_cls is not None:
        check_core(core_cls, name)
    _REGISTRY[name] = env_spec
    _register_gymnasium_id(_REGISTRY[name])
    return _REGISTRY[name]


def _register_gymnasium_id(env_spec: EnvSpec) -> None:
    """``env_spec``'s Gymnasium id (:mod:`envs.gymnasium_ids`), versioned by its core class; an entry point
    that cannot be loaded yet gets none (``envs.make`` names the problem when the env is used)."""
    unregister_id(env_spec.name)
    try:
        version = env_spec.load().version
    except (ConfigError, TypeError):
        return
    register_id(env_spec.name, version)


def register_level(name: str, base: str, level: int, overrides: dict[str, Any], *, description: str = "",
                   overwrite: bool = False) -> EnvSpec:
    """Register ``name`` as level ``level`` of the env ``base``: the same env with ``overrides`` as its
    defaults (a bigger action space). The seed's size is ``base`` itself, level 1."""
    family = spec(base)
    if not isinstance(level, int) or level < 2:
        raise ValueError(f"level {name!r}: levels above the seed's are numbered from 2, got {level!r}")
    register(name, family.entry_point, description=description, overwrite=overwrite)
    _REGISTRY[name] = dataclasses.replace(_REGISTRY[name], defaults={**family.defaults, **overrides},
                                          family=family.family, level=level)
    resolve_config(name, {})  # the overrides are checked now
    return _REGISTRY[name]


def levels(family: str) -> list[str]:
    """The names of ``family``'s levels, smallest first (the family itself is level 1)."""
    return [s.name for s in sorted(_REGISTRY.values(), key=lambda s: s.level) if s.family == family]


def unregister(name: str) -> None:
    """Remove a registered env and its Gymnasium id (tests and notebooks that register throwaway envs)."""
    _REGISTRY.pop(name, None)
    unregister_id(name)


def gymnasium_id(name: str) -> str | None:
    """The Gymnasium id of the registered env ``name`` (``gymnasium.make(envs.gymnasium_id("portfolio"))``),
    None while its entry point cannot be loaded."""
    from . import gymnasium_ids

    env_spec = spec(name)
    try:
        return gymnasium_ids.gymnasium_id(name, env_spec.load().version)
    except (ConfigError, TypeError):
        return None


def names() -> list[str]:
    """Registered env names, sorted."""
    return sorted(_REGISTRY)


def spec(name: str) -> EnvSpec:
    """The spec of ``name``; an unknown name raises :class:`ConfigError` listing the known ones."""
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ConfigError(f"unknown env {name!r}; known envs: {', '.join(names())}") from None


def resolve_config(name: str, overrides: dict[str, Any]) -> tuple[Any, CommonConfig]:
    """Validate ``overrides`` for env ``name``: its own config and the common options.

    Unknown keys, wrong types and out-of-range values raise a one-line :class:`ConfigError` (an unknown key
    an :class:`~envs.config.UnknownConfigKey`, also a ``TypeError``).
    """
    env_spec = spec(name)
    core_cls = env_spec.load()
    overrides = {**env_spec.defaults, **overrides}
    own = [f.name for f in dataclasses.fields(core_cls.Config)]
    common_keys = [f.name for f in dataclasses.fields(CommonConfig) if f.name not in own]
    unknown = [k for k in overrides if k not in own and k not in common_keys]
    if unknown:
        raise UnknownConfigKey.of(f"env {name!r}", unknown[0], [*own, *common_keys])
    env_config = build_config(core_cls.Config, {k: v for k, v in overrides.items() if k in own}, owner=f"env {name!r}")
    common = build_config(CommonConfig, {k: v for k, v in overrides.items() if k in common_keys}, owner=f"env {name!r}")
    if "invalid_action" in common_keys:
        common = _with_invalid_action(name, core_cls, common)
    return env_config, common


def _with_invalid_action(name: str, core_cls: type[EnvCore], common: CommonConfig) -> CommonConfig:
    """``common`` with ``invalid_action`` resolved: the env's default where not given; a setting the env does
    not offer refused in one line."""
    offered = core_cls.invalid_action_settings()
    if not common.invalid_action:
        return dataclasses.replace(common, invalid_action=core_cls.invalid_action_default)
    if common.invalid_action not in offered:
        raise ConfigError(f"env {name!r}: config key 'invalid_action' must be one of {', '.join(offered)} for this "
                          f"env; got {common.invalid_action!r}")
    return common


def config_dict(name: str, overrides: dict[str, Any]) -> dict[str, Any]:
    """Every config key of env ``name`` (defaults included) after validating ``overrides``: JSON-ready."""
    env_config, common = resolve_config(name, overrides)
    return {**config_to_dict(common), **config_to_dict(env_config)}


def config_overrides(name: str, overrides: dict[str, Any]) -> dict[str, Any]:
    """The config keys of env ``name`` whose value after ``overrides`` differs from the env's default: what makes
    a config another task (a run's folder, a tuned entry's ``env_config``). ``overrides`` may be a full config."""
    defaults = config_dict(name, {})
    return {key: value for key, value in config_dict(name, overrides).items() if defaults[key] != value}


def describe(name: str) -> list[dict[str, str]]:
    """One row per config key of env ``name`` (its own, then the common options), a level's defaults shown."""
    env_spec = spec(name)
    own = describe_config(env_spec.load().Config)
    for row in own:
        if row["key"] in env_spec.defaults:
            value = env_spec.defaults[row["key"]]
            row["default"] = ",".join(map(str, value)) if isinstance(value, (tuple, list)) else str(value)
    taken = {row["key"] for row in own}
    common = [row for row in describe_config(CommonConfig) if row["key"] not in taken]
    for row in common:
        if row["key"] == "invalid_action":
            row["default"] = env_spec.load().invalid_action_default
            row["accepts"] = "one of " + ", ".join(env_spec.load().invalid_action_settings())
    return own + common


#: Memory of each batch entry beyond the core's own arrays: its random generator and the views' bookkeeping.
ENTRY_BYTES = 2048


def make_core(name: str, num_envs: int = 1, **config: Any) -> EnvCore:
    """The batched core of ``name`` with a validated config (what the views wrap).

    A config and batch that cannot fit in memory are refused first (:meth:`EnvCore.state_bytes`).
    """
    _check_num_envs(name, num_envs)
    env_config, common = resolve_config(name, config)
    core_cls = spec(name).load()
    check_fits(core_cls.state_bytes(env_config, num_envs) + ENTRY_BYTES * num_envs,
               f"env {name!r} with {num_envs:,} entr{'y' if num_envs == 1 else 'ies'} and this config")
    try:
        core = core_cls(env_config, num_envs=num_envs, strict=common.strict)
    except ConfigError as error:  # the core's checks across keys, named after the env as the user called it
        message = str(error)
        raise ConfigError(message if message.startswith("env ") else f"env {name!r}: {message}") from None
    core.name = name
    if common.invalid_action:  # empty only where an env's own Config has a field of that name
        core.invalid_action = common.invalid_action
    return core


def _check_id(name: str, env_id: str | None) -> None:
    """Refuse (one-line :class:`ConfigError`) a ``name`` that is not the env of the Gymnasium id ``env_id`` it came
    with (``gymnasium.make("maskbench/Portfolio-v0", name="speed_limit")``: the caller's ``name`` overrode the
    spec's)."""
    if env_id is None:
        return
    registered = gymnasium.registry.get(env_id)
    owner = registered.kwargs.get("name") if registered is not None else None
    if owner is None:
        raise ConfigError(f"gymnasium_id={env_id!r} is no Gymnasium id of a registered env; leave it out")
    if owner != name:
        other = gymnasium_id(name) if name in _REGISTRY else None
        raise ConfigError(f"{env_id} is the env {owner!r}; name={name!r} names "
                          f"{'another env (' + other + ')' if other else 'no env of that id'}: leave name out, or "
                          f"make {other or 'the id of the env you mean'}")


def make(name: str, render_mode: str | None = None, *, gymnasium_id: str | None = None,
         **config: Any) -> SingleAgentView:
    """``name`` as a single-agent ``gymnasium.Env``; ``render_mode`` ``"ansi"`` (every env) or ``"rgb_array"``
    (envs that draw a picture) makes ``render()`` return it. ``gymnasium_id``: the id Gymnasium made it by (its
    entry point passes it), which must be ``name``'s."""
    _check_id(name, gymnasium_id)
    core = make_core(name, **config)
    if core.n_agents != 1:
        raise ConfigError(f"env {name!r}: make() is single-agent; use make_parallel() (PettingZoo) or "
                          f"make_multi_agent_vector() (batched) for n_agents={core.n_agents}")
    view = SingleAgentView(core, spec_name=name, render_mode=render_mode)
    view.spec = _gymnasium_spec(name, {**config, **({"render_mode": render_mode} if render_mode else {})})
    return view


def make_parallel(name: str, render_mode: str | None = None, *, black_death: bool = False,
                  **config: Any) -> ParallelView:
    """``name`` as a ``pettingzoo.ParallelEnv`` with ``n_agents`` agents (``render_mode`` as in :func:`make`).

    ``black_death=True``: agents whose episode ended stay in it, idle, until it ends for all (see
    :class:`~envs.views.ParallelView`), as SuperSuit's ``pettingzoo_env_to_vec_env_v1`` needs for envs whose
    agents leave at different steps (speed_limit's cars)."""
    return ParallelView(make_core(name, **config), spec_name=name, render_mode=render_mode, black_death=black_death)


def _check_num_envs(name: str, num_envs: Any) -> None:
    if isinstance(num_envs, bool) or not isinstance(num_envs, int) or num_envs < 1:
        raise ConfigError(f"env {name!r}: num_envs must be a positive integer, got {num_envs!r}")


def make_vector(name: str, num_envs: int, *, gymnasium_id: str | None = None, **config: Any) -> VectorView:
    """``name`` as a natively batched ``gymnasium.vector.VectorEnv`` of ``num_envs`` entries (``gymnasium_id`` as in
    :func:`make`)."""
    _check_id(name, gymnasium_id)
    _check_num_envs(name, num_envs)
    core = make_core(name, num_envs=num_envs, **config)
    if core.n_agents != 1:
        raise ConfigError(f"env {name!r}: make_vector() is single-agent; use make_multi_agent_vector() for "
                          f"n_agents={core.n_agents}")
    view = VectorView(core, spec_name=name)
    view.spec = _gymnasium_spec(name, config)
    return view


def _gymnasium_spec(name: str, config: dict[str, Any]) -> gymnasium.envs.registration.EnvSpec | None:
    """The Gymnasium spec of ``name`` with this config as its kwargs (``env.spec``, as ``gymnasium.make`` sets it),
    so ``gymnasium.make(env.spec)`` makes the same env again."""
    env_id = gymnasium_id(name)
    if env_id is None or env_id not in gymnasium.registry:
        return None
    return dataclasses.replace(gymnasium.registry[env_id], kwargs={**gymnasium.registry[env_id].kwargs, **config})


def make_multi_agent_vector(name: str, num_envs: int, **config: Any) -> MultiAgentVectorView:
    """``name`` with all its agents, batched over ``num_envs`` entries (``(num_envs, n_agents, ...)`` arrays)."""
    _check_num_envs(name, num_envs)
    return MultiAgentVectorView(make_core(name, num_envs=num_envs, **config), spec_name=name)
