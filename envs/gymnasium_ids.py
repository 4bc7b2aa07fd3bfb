"""Every registered env and level under a Gymnasium id: ``gymnasium.make("maskbench/Portfolio-v0")``.

Gymnasium's registry is how most RL code names an env (``gymnasium.make``, ``gymnasium.make_vec``,
``env.spec`` in logs and checkers), so each name of the suite's registry (:mod:`envs.registry`, the
built-in envs, their levels and every user env registered with ``envs.register``) is also registered
there, under the namespace ``maskbench`` and the env's version (``EnvCore.version``, bumped whenever
results would change):

==================  ===============================
suite name          Gymnasium id
==================  ===============================
``portfolio``       ``maskbench/Portfolio-v0``
``portfolio-xl``    ``maskbench/Portfolio-XL-v0``
``speed_limit-m``   ``maskbench/SpeedLimit-M-v0``
``my_env``          ``maskbench/MyEnv-v0``
==================  ===============================

``import maskbench`` registers them too, and is the name for Gymnasium's module prefix
(``gymnasium.make("maskbench:maskbench/Portfolio-v0")`` in a fresh interpreter): it works from any folder,
a folder with an ``envs`` package of its own included (see :mod:`maskbench`).

The entry point is :func:`envs.make` (the single-agent view), the ``vector_entry_point``
:func:`envs.make_vector` (the natively batched one: ``gymnasium.make_vec(id, n,
vectorization_mode="vector_entry_point")``), with the suite's name as the ``name`` keyword and the id as
``gymnasium_id`` (a ``name`` keyword of the caller's that names another env is refused); other keyword
arguments are the env's config (``gymnasium.make(id, n_assets=10)``). No ``max_episode_steps``:
every env ends its own episodes (a horizon that is part of its config), and a second, fixed limit
from the spec would disagree with a configured one. Entry points are strings, so specs pickle (async
vector envs, Ray workers).
"""

from __future__ import annotations

import gymnasium

__all__ = ["NAMESPACE", "ID_KEY", "gymnasium_id", "register_id", "unregister_id"]

#: The Gymnasium namespace of every maskbench env.
NAMESPACE = "maskbench"

#: The keyword that carries the id to the entry point beside ``name``: Gymnasium lets a caller's keywords override
#: the spec's, so ``gymnasium.make("maskbench/Portfolio-v0", name="speed_limit")`` would otherwise make speed_limit
#: under the Portfolio id; with both, ``envs.make`` sees the conflict and refuses it.
ID_KEY = "gymnasium_id"

#: The registry module as this package is imported: ``envs.registry``, or ``maskbench.envs.registry`` where
#: the ``maskbench`` package loaded it under its own name (a user's ``envs`` package hides the suite's).
_REGISTRY = f"{__package__}.registry"


def gymnasium_id(name: str, version: int) -> str:
    """The Gymnasium id of the suite's env ``name``: its words capitalised and joined, a level's suffix
    upper-cased after a hyphen, the namespace and the version (``speed_limit-m`` -> ``maskbench/SpeedLimit-M-v0``)."""
    base, _, suffix = name.partition("-")
    camel = "".join(word[:1].upper() + word[1:] for word in base.split("_"))
    return f"{NAMESPACE}/{camel}{'-' + suffix.upper() if suffix else ''}-v{version}"


def register_id(name: str, version: int) -> str:
    """Register (or re-register) ``name`` in Gymnasium's registry; returns its id."""
    env_id = gymnasium_id(name, version)
    gymnasium.registry.pop(env_id, None)
    gymnasium.register(env_id, entry_point=f"{_REGISTRY}:make", vector_entry_point=f"{_REGISTRY}:make_vector",
                       kwargs={"name": name, ID_KEY: env_id})
    return env_id


def unregister_id(name: str) -> None:
    """Remove every Gymnasium id of ``name`` (any version)."""
    for env_id in [env_id for env_id, env_spec in gymnasium.registry.items()
                   if env_spec.namespace == NAMESPACE and env_spec.kwargs.get("name") == name]:
        del gymnasium.registry[env_id]
