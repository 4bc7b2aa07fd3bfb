"""How an agent handles the constraint: the algorithms ``suite.run --algo NAME`` runs.

Algorithms are registered by name with a ``"module:Class"`` entry point and imported on first
use, so listing them (or running ``random_valid``) never imports Ray or torch.
"""

from __future__ import annotations

import importlib

from baselines.base import Algorithm, EVAL_SEED_BASE
from envs.config import ConfigError

__all__ = ["Algorithm", "EVAL_SEED_BASE", "algo_names", "load_algo", "register_algo"]

_ALGOS: dict[str, str | type[Algorithm]] = {
    "random_valid": "baselines.random_valid:RandomValid",
    "masked_ppo": "baselines.masked_ppo:MaskedPPO",
    "penalty_ppo": "baselines.penalty_ppo:PenaltyPPO",
    "normalize_ppo": "baselines.normalize_ppo:NormalizePPO",
    "oracle": "baselines.oracle:Oracle",
    "sb3_maskable_ppo": "baselines.sb3_maskable_ppo:SB3MaskablePPO",  # needs the compare extra
}


def register_algo(name: str, entry_point: str | type[Algorithm], *, overwrite: bool = False) -> None:
    """Make an :class:`Algorithm` available to ``suite.run --algo name``."""
    if name in _ALGOS and not overwrite:
        raise ValueError(f"algo {name!r} is already registered; pass overwrite=True to replace it")
    _ALGOS[name] = entry_point


def algo_names() -> list[str]:
    return sorted(_ALGOS)


def load_algo(name: str) -> type[Algorithm]:
    """The algorithm class of ``name``; an unknown name raises ``ConfigError`` listing the known ones."""
    try:
        entry = _ALGOS[name]
    except KeyError:
        raise ConfigError(f"unknown algo {name!r}; known algos: {', '.join(algo_names())}") from None
    if isinstance(entry, str):
        module_name, _, attr = entry.partition(":")
        entry = getattr(importlib.import_module(module_name), attr)
    return entry
