"""Typed env configuration: dataclasses whose fields say what they accept.

Every env has one frozen config dataclass. Each field is declared with :func:`setting`, which
records a one-line doc and what values are accepted. :func:`build_config` turns user input (Python
values from ``envs.make(name, **config)`` or ``KEY=VALUE`` strings from the command line) into a
validated instance, and every mistake becomes a :class:`ConfigError` whose message is one line
naming the key and what is accepted.
"""

from __future__ import annotations

import dataclasses
import math
import os
import typing
from collections.abc import Callable, Iterable, Mapping
from typing import Any

__all__ = [
    "ConfigError",
    "UnknownConfigKey",
    "available_memory",
    "check_fits",
    "setting",
    "build_config",
    "parse_assignments",
    "describe_config",
    "config_to_dict",
]


class ConfigError(ValueError):
    """A config key or value that is not accepted. The message is one line meant for a user."""


class UnknownConfigKey(ConfigError, TypeError):
    """A config key the env (or algo) does not have: a :class:`ConfigError` (one line on the command line) and,
    as for any Python function given an unexpected keyword argument, a ``TypeError``, with Python's words in the
    message, which wrappers that probe keywords rely on (TorchRL's ``GymEnv`` tries ``frameskip=`` and drops it on
    ``TypeError: ... unexpected keyword argument 'frameskip'``)."""

    @classmethod
    def of(cls, owner: str, key: str, accepted: Iterable[str]) -> UnknownConfigKey:
        return cls(f"{owner}: unknown config key {key!r}; accepted keys: {', '.join(accepted)} (an unexpected "
                   f"keyword argument {key!r})")


def available_memory() -> int:
    """Bytes of memory this machine can give now (``MemAvailable``; the physical memory where unknown)."""
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 1 << 62  # unknown: do not refuse


def check_fits(needed: float, what: str) -> None:
    """Refuse up front (one-line :class:`ConfigError`) what needs more memory than is available, with the
    estimate, instead of a ``MemoryError`` traceback minutes later. ``what`` names it for the message."""
    available = available_memory()
    if needed > available:
        raise ConfigError(f"{what}: about {needed / 2**30:,.1f} GiB of memory needed (estimate), "
                          f"{available / 2**30:,.1f} GiB available on this machine; make it smaller")


_TRUE = {"true", "1", "yes", "on"}
_FALSE = {"false", "0", "no", "off"}


def setting(
    default: Any,
    doc: str,
    *,
    check: Callable[[Any], bool] | None = None,
    accepts: str | None = None,
    choices: Iterable[Any] | None = None,
    finite: bool = True,
) -> Any:
    """Declare a config field.

    Args:
        default: the default value (tuples for sequences, so the config stays hashable).
        doc: one line saying what the field means, with its unit.
        check: predicate a value must satisfy (after type conversion).
        accepts: human words for what ``check`` accepts, used in error messages ("a positive integer").
        choices: the finite set of accepted values, for string options.
        finite: numbers must be finite (the default; ``inf`` would only make NaN later): False lets
            ``inf`` through where it means something ("no clip").
    """
    metadata = {"doc": doc, "check": check, "accepts": accepts,
                "choices": tuple(choices) if choices is not None else None, "finite": finite}
    return dataclasses.field(default=default, metadata=metadata)


def parse_assignments(assignments: Iterable[str], *, what: str = "--env-config") -> dict[str, str]:
    """Parse ``KEY=VALUE`` strings into a dict of strings; a later key overrides an earlier one."""
    parsed: dict[str, str] = {}
    for item in assignments:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"{what} expects KEY=VALUE, got {item!r}")
        parsed[key.strip()] = value.strip()
    return parsed


def _type_name(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin is tuple:
        (inner, *_rest) = typing.get_args(tp)
        return f"comma-separated list of {_type_name(inner)}s"
    return {int: "integer", float: "number", bool: "boolean", str: "string"}.get(tp, str(tp))


def _article(noun: str) -> str:
    return f"{'an' if noun[0] in 'aeiou' else 'a'} {noun}"


def _convert(value: Any, tp: Any) -> Any:
    """Convert ``value`` to ``tp``; raise ``TypeError`` when it is of the wrong kind."""
    origin = typing.get_origin(tp)
    if origin is tuple:
        inner = typing.get_args(tp)[0]
        items = value.split(",") if isinstance(value, str) else value
        if isinstance(items, Mapping) or not isinstance(items, Iterable):
            raise TypeError
        return tuple(_convert(item.strip() if isinstance(item, str) else item, inner) for item in items)
    if tp is bool:
        if isinstance(value, str):
            if value.lower() in _TRUE:
                return True
            if value.lower() in _FALSE:
                return False
            raise TypeError
        if isinstance(value, bool):
            return value
        raise TypeError
    if tp is int:
        if isinstance(value, str):
            return int(value)  # ValueError on "1.5" or "abc"
        if isinstance(value, bool) or not float(value).is_integer():
            raise TypeError
        return int(value)
    if tp is float:
        if isinstance(value, bool):
            raise TypeError
        converted = float(value)  # accepts ints, numpy scalars and numeric strings
        if math.isnan(converted):
            raise TypeError
        return converted
    if tp is str:
        if not isinstance(value, str):
            raise TypeError
        return value
    raise TypeError(f"unsupported config field type {tp!r}")


def build_config(config_cls: type, overrides: Mapping[str, Any], *, owner: str) -> Any:
    """Build a validated ``config_cls`` instance from defaults and ``overrides``.

    ``owner`` names the env (or algo) in error messages. String values are parsed according to
    the field type, so CLI ``KEY=VALUE`` pairs and Python values go through the same checks.
    """
    fields = {f.name: f for f in dataclasses.fields(config_cls)}
    hints = typing.get_type_hints(config_cls)
    values: dict[str, Any] = {}
    for key, raw in overrides.items():
        if key not in fields:
            raise UnknownConfigKey.of(owner, key, fields)
        meta = fields[key].metadata
        tp = hints[key]
        try:
            value = _convert(raw, tp)
        except (TypeError, ValueError):
            raise ConfigError(
                f"{owner}: config key {key!r} expects {_article(_type_name(tp))}, got {raw!r}") from None
        numbers = value if isinstance(value, tuple) else (value,)
        if meta.get("finite", True) and any(isinstance(x, float) and not math.isfinite(x) for x in numbers):
            raise ConfigError(f"{owner}: config key {key!r} must be finite; got {raw!r}")
        choices = meta.get("choices")
        if choices is not None and value not in choices:
            raise ConfigError(
                f"{owner}: config key {key!r} must be one of {', '.join(map(str, choices))}; got {raw!r}")
        check = meta.get("check")
        if check is not None and not check(value):
            accepts = meta.get("accepts") or "a valid value"
            raise ConfigError(f"{owner}: config key {key!r} must be {accepts}; got {raw!r}")
        values[key] = value
    return config_cls(**values)


def describe_config(config_cls: type) -> list[dict[str, str]]:
    """One row per field: key, type, default, accepted values and doc (for ``--help`` and docs)."""
    hints = typing.get_type_hints(config_cls)
    rows = []
    for f in dataclasses.fields(config_cls):
        meta = f.metadata
        accepts = meta.get("accepts") or ""
        if meta.get("choices"):
            accepts = "one of " + ", ".join(map(str, meta["choices"]))
        default = f.default
        if isinstance(default, tuple):
            default = ",".join(map(str, default))
        rows.append({"key": f.name, "type": _type_name(hints[f.name]), "default": str(default),
                     "accepts": accepts, "doc": meta.get("doc", "")})
    return rows


def config_to_dict(config: Any) -> dict[str, Any]:
    """A JSON-ready dict of a config instance (tuples become lists)."""
    return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(config).items()}
