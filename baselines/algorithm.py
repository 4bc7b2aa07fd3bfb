"""The interface between an algorithm and the runner (``suite.run``).

Two things meet here:

- an :class:`Algorithm` is one algorithm training on one env with one seed: it trains in
  iterations, each returning one ``progress.csv`` row, evaluates a set of named policies on fixed
  evaluation seeds, and saves/restores itself so an interrupted run can be resumed;
- an :class:`AlgoEntry` is what the registry (``baselines.load_algo``) resolves an algo name to:
  its typed config, its default budget, which pairs of env and config it cannot run, and, for a
  validated config, the :class:`Algorithm` class that runs it (the backend's implementation of a
  method, see :mod:`baselines.method`). An :class:`Algorithm` subclass is an entry itself, through
  its class methods: the references (``random_valid`` and :mod:`baselines.references`) and users' own
  algorithms.

The runner owns files, budgets and progress display; the algorithm owns learning.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, ClassVar, Protocol

import numpy as np

from envs.config import build_config

__all__ = ["Algorithm", "AlgoEntry", "Policy", "EVAL_SEED_BASE", "derived_seed"]

#: Evaluation episode i of every run uses env seed ``EVAL_SEED_BASE + i``: every algo and training
#: seed is scored on the same episodes, so comparisons are paired, and no training seed collides.
EVAL_SEED_BASE = 1_000_000

#: ``policy(observations, rng, env) -> actions`` over a batch: observations are the vector env's
#: dict of ``(N, ...)`` arrays, actions ``(N, ...)``; ``env`` is that vector env (continuous
#: envs' admissible sets come from ``env.core``). With several agents, ``env`` is
#: ``envs.make_multi_agent_vector``'s and both are ``(N, agents, ...)`` (see
#: :func:`baselines.evaluation.joint_policy`).
Policy = Callable[[dict[str, np.ndarray], np.random.Generator, Any], np.ndarray]

COUNTERS_FILE = "counters.json"


def derived_seed(seed: int, stream: str) -> int:
    """An independent 32-bit seed for one purpose (``"env"``, ``"policy"``, ...) of a run seed."""
    words = [seed] + [ord(c) for c in stream]
    return int(np.random.SeedSequence(words).generate_state(1)[0])


class AlgoEntry(Protocol):
    """What an algo name resolves to (see the module docstring)."""

    Config: type
    default_steps: int

    def make_config(self, env_name: str, overrides: Mapping[str, Any], *, owner: str) -> Any:
        """The validated config for ``env_name`` (defaults < per-env defaults < ``overrides``)."""

    def implementation(self, config: Any) -> Callable[..., Algorithm]:
        """What runs ``config``: called as ``(env_name, env_config, config, seed, address=, budget=)``."""

    def incompatibility(self, env_name: str, env_config: Mapping[str, Any]) -> str | None:
        """Why this algo cannot run on ``env_name`` with ``env_config`` (one line), or None. Cheap: no
        Ray, no training; sweeps use it to leave pairs out."""


class Algorithm(ABC):
    """One algorithm on one env with one seed.

    Class attributes (an :class:`Algorithm` subclass is its own registry entry):
        Config: the algorithm's typed config dataclass (fields declared with ``envs.config.setting``).
        default_steps: the default budget in env steps for ``suite.run --steps``.
        env_defaults: config defaults per env, applied over ``Config``'s own and under the user's.

    Every algorithm counts the ``env_steps`` and ``episodes`` it has trained on; :meth:`save_counters`
    and :meth:`restore_counters` keep them in a checkpoint.
    """

    Config: ClassVar[type]
    default_steps: ClassVar[int]
    env_defaults: ClassVar[dict[str, dict[str, Any]]] = {}

    def __init__(self, env_name: str, env_config: dict[str, Any], config: Any, seed: int, *,
                 address: str | None = None, budget: int | None = None):
        """``address``: a Ray cluster to run on (algorithms that do not use Ray ignore it).
        ``budget``: the run's training budget in env steps, for schedules that end with it.
        """
        self.budget = budget
        self.env_name = env_name
        self.env_config = dict(env_config)
        self.config = config
        self.seed = seed
        self.env_steps = 0
        self.episodes = 0

    # ------------------------------------------------------------------ the registry entry

    @classmethod
    def make_config(cls, env_name: str, overrides: Mapping[str, Any], *, owner: str) -> Any:
        """The validated config for ``env_name``: ``Config`` defaults < :attr:`env_defaults` < ``overrides``.

        ``owner`` names the algorithm in error messages.
        """
        return build_config(cls.Config, {**cls.env_defaults.get(env_name, {}), **overrides}, owner=owner)

    @classmethod
    def implementation(cls, config: Any) -> Callable[..., Algorithm]:
        """The class that runs ``config``: this one."""
        return cls

    @classmethod
    def incompatibility(cls, env_name: str, env_config: Mapping[str, Any]) -> str | None:
        """Why this algorithm cannot run on ``env_name`` with ``env_config`` (one line), or None."""
        return None

    # ------------------------------------------------------------------ what the runner calls

    @abstractmethod
    def train_iteration(self) -> dict[str, float]:
        """Run one training iteration and return its progress row.

        The row has at least ``env_steps`` and ``episodes`` (cumulative), ``episode_return_mean``,
        ``episode_return_min``, ``episode_return_max`` (episodes finished in this iteration) and
        ``invalid_action_rate`` (fraction of this iteration's env steps with any inadmissible
        sub-action); :func:`baselines.episodes.progress_row` builds it.
        """

    @abstractmethod
    def eval_policies(self) -> dict[tuple[str, str], Policy]:
        """Policies to evaluate, keyed by ``(policy, mask)`` e.g. ``("greedy", "off")``.

        The first is the algorithm's headline policy, the one also evaluated during training.
        """

    @abstractmethod
    def save(self, directory: Path) -> None:
        """Write everything needed to continue training into ``directory`` (which exists)."""

    @abstractmethod
    def restore(self, directory: Path) -> None:
        """Continue from what :meth:`save` wrote."""

    def close(self) -> None:
        """Release resources (Ray, envs)."""

    # ------------------------------------------------------------------ helpers

    def save_counters(self, directory: Path) -> None:
        """Write :attr:`env_steps` and :attr:`episodes` into a checkpoint folder."""
        (directory / COUNTERS_FILE).write_text(json.dumps({"env_steps": self.env_steps, "episodes": self.episodes}))

    def restore_counters(self, directory: Path) -> None:
        """Read back what :meth:`save_counters` wrote."""
        counters = json.loads((directory / COUNTERS_FILE).read_text())
        self.env_steps, self.episodes = counters["env_steps"], counters["episodes"]
