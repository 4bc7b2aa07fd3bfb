"""The user-env contract, checked on a probe batch when an env is registered.

:func:`envs.register` hands every core class it can load to :func:`check_core` (once per class; a string
entry point that cannot be imported yet is checked when it is first loaded, by ``envs.make`` and the other
``make`` functions). The check builds a probe core of :data:`PROBE_ENTRIES` entries under the env's default
config, resets it, reads :meth:`~envs.core.EnvCore.features` and the mask (or the admissible set), steps it
once with admissible actions, asks the fallback to replace inadmissible ones where the probe state has
some (under its default ``invalid_action``, :data:`~envs.core.INVALID_ACTION_SETTINGS`; the class must
offer that default), and checks the kind, dtype, shape and values of what each hook returned, the spaces
and the config class. A problem is one line naming the env, the hook and what is wrong
(:class:`EnvContractError`), instead of a numpy error deep in a view ("cannot reshape array of size 3 into
shape (1,1,1,5)") or an env that runs on with a broken observation.

What it does not judge is left to ``suite.check``: whether the mask agrees with the constraints, whether it
is ever empty, determinism. The probe costs about a millisecond or two per class (the built-in envs are
checked when ``envs`` is imported).
"""

from __future__ import annotations

import dataclasses
import inspect
import weakref
from collections.abc import Sequence
from typing import Any

import numpy as np
from gymnasium import spaces

from . import masking
from .config import ConfigError, build_config
from .core import EnvCore, EnvFailure, StepResult

__all__ = ["EnvContractError", "PROBE_ENTRIES", "check_core"]

#: Batch entries of the probe core: more than one, so a missing batch or agent axis shows.
PROBE_ENTRIES = 2

#: Info keys :meth:`EnvCore.step` writes itself (the env's own values are replaced).
_STEP_KEYS = ("invalid_actions", "violated", "violation_distance")

_CHECKED: weakref.WeakSet[type] = weakref.WeakSet()


class EnvContractError(ConfigError, TypeError):
    """An env class breaks the :class:`~envs.core.EnvCore` contract: a hook returns the wrong kind, dtype,
    shape or values, a space or its ``Config`` is of the wrong kind. One line naming the env and the hook.

    A :class:`~envs.config.ConfigError` (so the command lines print it in one line, status 2) and a
    ``TypeError``."""


def _what(value: Any) -> str:
    """A short description of a returned value for a message."""
    if isinstance(value, np.ndarray):
        return f"a {value.dtype} array of shape {value.shape}"
    text = repr(value)
    text = text if len(text) <= 60 else text[:57] + "..."
    return text if text.startswith(type(value).__name__) else f"{type(value).__name__} {text}"


def _sample(values: np.ndarray) -> str:
    """A few of ``values`` (distinct, at most four), for a message."""
    try:
        shown = np.unique(values.reshape(-1))[:4].tolist()
    except TypeError:  # unorderable objects
        shown = values.reshape(-1)[:4].tolist()
    return ", ".join(repr(v) if isinstance(v, str) else str(v) for v in shown)


class _Probe:
    """One probe of one core class; :meth:`fail` raises the one-line error."""

    def __init__(self, core_cls: type[EnvCore], name: str):
        self.core_cls, self.name = core_cls, name

    def fail(self, message: str, error: BaseException | None = None) -> None:
        raise EnvContractError(f"env {self.name!r}: {message}") from error

    def call(self, hook: str, fn, *args):
        """``fn(*args)``, an exception in the env's code named after ``hook``."""
        try:
            return fn(*args)
        except EnvContractError:
            raise
        except Exception as error:
            cause = error.__cause__ if isinstance(error, EnvFailure) and error.__cause__ is not None else error
            if isinstance(cause, EnvFailure):  # the contract broken at run time: its message says how
                self.fail(str(cause).removeprefix(f"env {self.name!r}: "), error)
            if isinstance(error, EnvFailure) and " failed in its fallback " in str(error):
                hook = "fallback()"  # called by step() for an action left inadmissible by an empty mask block
            detail = str(cause).splitlines()[0] if str(cause) else ""
            self.fail(f"{hook} raised {type(cause).__name__}{': ' + detail if detail else ''} on the probe core "
                      f"(default config, {PROBE_ENTRIES} entries)", error)

    def array(self, hook: str, value: Any, shape: tuple[int, ...], layout: str, dtype: str | np.dtype) -> np.ndarray:
        """``value`` must be a numpy array of ``shape`` and ``dtype`` (a dtype or ``"real"`` / ``"bool"``)."""
        expected = f"{'a real' if dtype == 'real' else np.dtype(dtype).name} numpy array of shape {shape} ({layout})"
        returned, has = ("returned", "returned") if hook.endswith(")") else ("is", "has")  # a hook or a field
        if not isinstance(value, np.ndarray):
            self.fail(f"{hook} {returned} {_what(value)}; expected {expected}")
        wrong = (not (np.issubdtype(value.dtype, np.integer) or np.issubdtype(value.dtype, np.floating))
                 if dtype == "real" else value.dtype != np.dtype(dtype))
        if wrong:
            self.fail(f"{hook} {has} {value.dtype} values ({_sample(value)}); expected {expected}")
        if value.shape != shape:
            self.fail(f"{hook} {has} shape {value.shape}; expected {expected}")
        return value

    def finite(self, hook: str, value: np.ndarray) -> None:
        if np.issubdtype(value.dtype, np.floating) and not np.all(np.isfinite(value)):
            has = "returned" if hook.endswith(")") else "has"
            self.fail(f"{hook} {has} non-finite values ({_sample(value[~np.isfinite(value)])}); every value "
                      "must be a finite number")


def _check_class(probe: _Probe) -> Any:
    """The class-level contract; returns the default config."""
    core_cls, name = probe.core_cls, probe.name
    if core_cls is EnvCore:
        probe.fail("EnvCore itself is the base class; register a subclass of it that implements the env")
    if core_cls.invalid_action_default not in core_cls.invalid_action_settings():
        probe.fail(f"invalid_action_default is {core_cls.invalid_action_default!r}, a setting it does not offer "
                   f"(it offers {', '.join(core_cls.invalid_action_settings())}; noop needs a noop() method)")
    if inspect.isabstract(core_cls):
        missing = ", ".join(sorted(core_cls.__abstractmethods__))
        probe.fail(f"{core_cls.__name__} does not implement {missing} (abstract in EnvCore)")
    config_cls = getattr(core_cls, "Config", None)
    if not (isinstance(config_cls, type) and dataclasses.is_dataclass(config_cls)):
        probe.fail(f"{core_cls.__name__}.Config must be a dataclass class (fields declared with "
                   f"envs.config.setting); got {_what(config_cls)}")
    version = getattr(core_cls, "version", None)
    if isinstance(version, bool) or not isinstance(version, int) or version < 0:
        probe.fail(f"{core_cls.__name__}.version must be a non-negative integer; got {_what(version)}")
    metrics = getattr(core_cls, "episode_metrics", None)
    if not isinstance(metrics, (tuple, list)) or not all(isinstance(m, str) for m in metrics):
        probe.fail(f"{core_cls.__name__}.episode_metrics must be a tuple of info keys; got {_what(metrics)}")
    try:
        return build_config(config_cls, {}, owner=f"env {name!r}")
    except ConfigError:
        raise
    except Exception as error:
        probe.fail(f"{core_cls.__name__}.Config() cannot be built from its defaults "
                   f"({type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}); every field "
                   "needs a default (envs.config.setting)", error)


def _check_spaces(probe: _Probe, core: EnvCore) -> None:
    name = type(core).__name__
    action_space = getattr(core, "action_space", None)
    if isinstance(action_space, spaces.Discrete):
        if int(action_space.start) != 0:
            probe.fail(f"action_space {action_space} must start at 0 (mask entry i is action i)")
    elif isinstance(action_space, spaces.MultiDiscrete):
        if np.any(action_space.start != 0):
            probe.fail(f"action_space {action_space} must start at 0 in every sub-action (the mask's layout)")
    elif not isinstance(action_space, spaces.Box):
        probe.fail(f"action_space must be a gymnasium Discrete, MultiDiscrete or Box (set in {name}.__init__); "
                   f"got {_what(action_space)}")
    feature_space = getattr(core, "feature_space", None)
    if not isinstance(feature_space, spaces.Box):
        probe.fail(f"feature_space must be a gymnasium Box (the observation's features, set in {name}.__init__); "
                   f"got {_what(feature_space)}")
    constraints = probe.call("constraints", lambda: core.constraints)
    if not isinstance(constraints, Sequence) or isinstance(constraints, str) \
            or not all(isinstance(c, masking.Constraint) for c in constraints):
        probe.fail(f"constraints must be a list of envs.Constraint; got {_what(constraints)}")


def _check_observation(probe: _Probe, core: EnvCore) -> np.ndarray | masking.AdmissibleSet:
    """features() and the mask or admissible set of the current state; returns the mask or the set."""
    batch = (core.num_envs, core.n_agents)
    features = probe.call("features()", core.features)
    features = probe.array("features()", features, (*batch, *core.feature_space.shape),
                           "batch, agents, *feature_space.shape", core.feature_space.dtype)
    probe.finite("features()", features)
    if core.discrete:
        size = masking.mask_size(core.action_space)
        mask = probe.call("action_mask()", core.action_mask)
        mask = probe.array("action_mask()", mask, (*batch, size), "batch, agents, mask size; 1 = admissible",
                           masking.MASK_DTYPE)
        outside = (mask != 0) & (mask != 1)
        if outside.any():
            probe.fail(f"action_mask() returned values {_sample(mask[outside])}; a mask holds 0 and 1 only "
                       "(1 = admissible)")
        return mask
    admissible = probe.call("admissible_set()", core.admissible_set)
    missing = [m for m in ("contains", "project", "sample", "distance") if not callable(getattr(admissible, m, None))]
    if missing:
        probe.fail(f"admissible_set() returned {_what(admissible)}, which has no {', '.join(missing)}(); expected "
                   "an envs.AdmissibleSet batched (batch, agents), e.g. envs.masking.BoundedSumSet")
    return admissible


def _admissible_actions(probe: _Probe, core: EnvCore, admissible: Any, rng: np.random.Generator) -> np.ndarray:
    batch = (core.num_envs, core.n_agents)
    if core.discrete:  # a block with nothing admissible (suite.check reports it) takes any value
        parts = masking.split_mask(admissible, core.nvec)
        filled = masking.join_mask([np.where(part.any(axis=-1, keepdims=True), part, 1) for part in parts])
        return masking.sample_masked(rng, filled, core.nvec)
    actions = probe.call("admissible_set().sample", admissible.sample, rng)
    actions = probe.array("admissible_set().sample", actions, (*batch, *core.action_space.shape),
                          "batch, agents, *action_space.shape", "real")
    probe.finite("admissible_set().sample", actions)
    contains = probe.call("admissible_set().contains", admissible.contains, actions)
    probe.array("admissible_set().contains", contains, batch, "batch, agents", "bool")  # its answers: suite.check's
    return actions


def _check_info(probe: _Probe, hook: str, info: Any, batch: tuple[int, int]) -> None:
    if not isinstance(info, dict):
        probe.fail(f"{hook} returned {_what(info)}; expected a dict of info key -> (batch, agents) array")
    for key, value in info.items():
        if key in _STEP_KEYS:
            continue
        if not isinstance(key, str):
            probe.fail(f"{hook} returned info key {key!r}; info keys are strings")
        kind = "bool" if isinstance(value, np.ndarray) and value.dtype == bool else "real"
        probe.finite(f"{hook}[{key!r}]", probe.array(f"{hook}[{key!r}]", value, batch, "batch, agents", kind))


def _check_step(probe: _Probe, core: EnvCore, actions: np.ndarray) -> StepResult:
    batch = (core.num_envs, core.n_agents)
    result = probe.call("transition()", core.step, actions)
    if not isinstance(result, StepResult):
        probe.fail(f"transition() returned {_what(result)}; expected an envs.StepResult")
    reward = probe.array("transition()'s reward", result.reward, batch, "batch, agents", "real")
    probe.finite("transition()'s reward", reward)
    probe.array("transition()'s terminated", result.terminated, batch, "batch, agents", "bool")
    probe.array("transition()'s truncated", result.truncated, batch, "batch, agents", "bool")
    _check_info(probe, "transition()'s info", result.info, batch)
    return result


def _check_fallback(probe: _Probe, core: EnvCore, admissible: Any, actions: np.ndarray,
                    rng: np.random.Generator) -> None:
    """Ask the fallback to replace inadmissible actions where the current state has some."""
    batch = (core.num_envs, core.n_agents)
    if core.discrete:
        masked = ~admissible.astype(bool)
        empty = masking.empty_blocks(admissible, core.nvec)
        attempted = actions.copy()
        offsets = np.concatenate([[0], np.cumsum(core.nvec)[:-1]])
        for sub, (offset, n) in enumerate(zip(offsets, core.nvec)):  # the first masked value of each block
            block = masked[..., offset:offset + n]
            has = block.any(axis=-1) & ~empty[..., sub]
            attempted[..., sub] = np.where(has, block.argmax(axis=-1), attempted[..., sub])
        inadmissible = ~masking.mask_admits(admissible, attempted, core.nvec)
    else:
        low, high = core.action_space.low, core.action_space.high
        attempted = rng.uniform(np.where(np.isfinite(low), low, -1.0), np.where(np.isfinite(high), high, 1.0),
                                size=(*batch, *core.action_space.shape))
        contains = probe.call("admissible_set().contains", admissible.contains, attempted)
        inadmissible = ~np.asarray(contains, dtype=bool)[..., None]
        attempted = np.where(inadmissible, attempted, actions)
    if inadmissible.any():
        # The default setting's fallback only: the other one is checked at every step it runs (EnvCore.step), and
        # a Box env's repair is its admissible set's projection, which suite.check audits with a diagnosis.
        replaced = probe.call("fallback()", core.fallback, attempted, inadmissible)
        try:
            core._check_fallback(attempted, replaced, inadmissible, admissible)
        except EnvFailure as error:
            probe.fail(str(error).removeprefix(f"env {probe.name!r}: "), error)


def _check_entry_features(probe: _Probe, core: EnvCore) -> None:
    """``entry_features()``: one row of feature indices per entry of a one-dimensional Box action, or per choice
    of a single ``Discrete(n)`` action."""
    if core.discrete and len(core.nvec) == 1:
        n_entries = int(core.nvec[0])
    elif not core.discrete and len(core.action_space.shape) == 1:
        n_entries = core.action_space.shape[0]
    else:
        probe.fail("entry_features() is offered, but the action is neither a one-dimensional Box nor one Discrete "
                   "choice; the per-entry network describes the entries of a Box(n) action or the n choices of a "
                   "Discrete(n) one")
    rows = probe.call("entry_features()", core.entry_features)
    n_features = int(np.prod(core.feature_space.shape))
    if not isinstance(rows, np.ndarray) or rows.ndim != 2 or not np.issubdtype(rows.dtype, np.integer):
        probe.fail(f"entry_features() returned {_what(rows)}; expected an integer numpy array of shape "
                   f"({n_entries}, k): row i the indices of the features describing action entry i")
    probe.array("entry_features()", rows, (n_entries, rows.shape[1]), "entries x features", rows.dtype)
    if rows.size and (rows.min() < 0 or rows.max() >= n_features):
        probe.fail(f"entry_features() has indices outside the {n_features} features ({_sample(rows)})")


def check_core(core_cls: type[EnvCore], name: str) -> None:
    """Check ``core_cls`` against the :class:`EnvCore` contract on a probe batch (once per class).

    Raises :class:`EnvContractError` (one line naming ``name``, the hook and the problem), or the
    ``ConfigError`` of a default config that its own checks refuse.
    """
    if core_cls in _CHECKED:
        return
    probe = _Probe(core_cls, name)
    config = _check_class(probe)
    core = probe.call(f"{core_cls.__name__}.__init__", core_cls, config, PROBE_ENTRIES)
    core.name = name
    _check_spaces(probe, core)
    rng = np.random.default_rng(0)
    probe.call("reset_envs()", core.reset, np.arange(core.num_envs),
               [np.random.default_rng(i) for i in range(core.num_envs)])
    if core.state is None:
        probe.fail("reset_envs() left self.state None; it must create the state on its first call")
    batch = (core.num_envs, core.n_agents)
    admissible = _check_observation(probe, core)
    if type(core).provides("entry_features"):
        _check_entry_features(probe, core)
    if type(core).provides("metrics"):
        _check_info(probe, "metrics()", probe.call("metrics()", core.metrics), batch)
    actions = _admissible_actions(probe, core, admissible, rng)
    result = _check_step(probe, core, actions)
    known = set(result.info) | (set(core.metrics()) if type(core).provides("metrics") else set())
    missing = [m for m in core.episode_metrics if m not in known]
    if missing:
        probe.fail(f"episode_metrics names {', '.join(map(repr, missing))}, which neither metrics() nor "
                   "transition()'s info provides")
    admissible = _check_observation(probe, core)
    _check_fallback(probe, core, admissible, _admissible_actions(probe, core, admissible, rng), rng)
    _CHECKED.add(core_cls)
