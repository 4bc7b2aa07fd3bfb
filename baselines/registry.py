"""Algo names and backend names -> what implements them, imported on first use.

An algo name resolves to an :class:`baselines.algorithm.AlgoEntry`: a
:class:`baselines.method.Method` (a way of handling the constraint, trained by a backend) or an
:class:`baselines.algorithm.Algorithm` subclass (the references, users' own algorithms). A
method's ``config.backend`` resolves to a backend class through :func:`load_backend`. Entries are
``"module:attribute"`` strings, so listing names (or running ``random_valid``) imports neither Ray
nor torch.
"""

from __future__ import annotations

import importlib
from typing import Any

from baselines.algorithm import AlgoEntry, Algorithm
from baselines.references import REFERENCES
from envs.config import ConfigError

__all__ = ["algo_names", "load_algo", "register_algo", "backend_names", "backend_summary", "load_backend"]

_ALGOS: dict[str, str | AlgoEntry] = {
    **REFERENCES,  # random_valid, the simple policies, the heuristics and the clairvoyant bounds
    "oracle": "baselines.oracle:Oracle",  # an env's own upper reference (users' envs); see baselines.references
    "masked_ppo": "baselines.methods.masked_ppo:METHOD",
    "naive_masked_ppo": "baselines.methods.naive_masked_ppo:METHOD",
    "penalty_ppo": "baselines.methods.penalty_ppo:METHOD",
    "normalize_ppo": "baselines.methods.normalize_ppo:METHOD",
    "lagrangian_ppo": "baselines.methods.lagrangian_ppo:METHOD",
    "dirichlet_ppo": "baselines.methods.dirichlet_ppo:METHOD",
    "sb3_maskable_ppo": "baselines.methods.sb3_maskable_ppo:METHOD",  # needs the compare extra
}

#: Backend name -> (implementation, what it is in one line: the help of a method's ``backend`` setting).
_BACKENDS: dict[str, tuple[str, str]] = {
    "rllib": ("baselines.backends.rllib_ppo:RLlibPPO", "Ray RLlib, from a laptop to a cluster"),
    "torch": ("baselines.backends.torch_ppo:TorchPPO", "one process, batched, the fastest on one machine"),
    "sb3": ("baselines.backends.sb3_ppo:SB3PPO", "sb3-contrib's MaskablePPO"),
}


def _load(entry: str | Any) -> Any:
    if not isinstance(entry, str):
        return entry
    module_name, _, attr = entry.partition(":")
    return getattr(importlib.import_module(module_name), attr)


def register_algo(name: str, entry_point: str | AlgoEntry, *, overwrite: bool = False) -> None:
    """Make an algorithm (an :class:`Algorithm` subclass or a :class:`~baselines.method.Method`) available to
    ``suite.run --algo name``."""
    if name in _ALGOS and not overwrite:
        raise ValueError(f"algo {name!r} is already registered; pass overwrite=True to replace it")
    _ALGOS[name] = entry_point


def algo_names() -> list[str]:
    return sorted(_ALGOS)


def load_algo(name: str) -> AlgoEntry:
    """The entry of ``name``; an unknown name raises ``ConfigError`` listing the known ones."""
    try:
        entry = _ALGOS[name]
    except KeyError:
        raise ConfigError(f"unknown algo {name!r}; known algos: {', '.join(algo_names())}") from None
    return _load(entry)


def backend_names() -> list[str]:
    return list(_BACKENDS)


def backend_summary(name: str) -> str:
    """What the backend ``name`` is, in one line (without importing it)."""
    return _BACKENDS[name][1]


def load_backend(name: str) -> type[Algorithm]:
    """The backend class of ``name`` (``rllib``, ``torch``, ``sb3``)."""
    try:
        return _load(_BACKENDS[name][0])
    except KeyError:
        raise ConfigError(f"unknown backend {name!r}; known backends: {', '.join(_BACKENDS)}") from None
