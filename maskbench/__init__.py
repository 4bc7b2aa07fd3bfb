"""maskbench's environments under a name of their own, for Gymnasium's module prefix.

``import maskbench`` registers every env's Gymnasium id (``maskbench/Portfolio-v0`` ...), so a fresh
interpreter reaches them without importing anything first:

>>> import gymnasium
>>> env = gymnasium.make("maskbench:maskbench/Portfolio-v0")

``maskbench`` is the suite's ``envs`` package under another name: ``maskbench.make`` is ``envs.make``, and so
on for every name of ``envs.__all__`` (``maskbench.envs`` is the package itself). Where ``import envs`` gives
the suite's package (the usual case) it is that very package: one registry, one set of classes. Where another
``envs`` comes first on ``sys.path`` (a folder of yours named ``envs``, a common name, in the folder you run
from), ``maskbench`` loads the suite's from its own location as ``maskbench.envs`` and leaves ``import envs``
to yours; the Gymnasium ids then point at ``maskbench.envs`` (the suite's ``envs`` imports itself only by
relative imports, so it works under either name).

The limit: the suite's commands and baselines (``python -m suite.run``, ``baselines``) import ``envs`` by that
name, so they need the suite's; run them from a folder without an ``envs`` package of its own.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from pathlib import Path
from types import ModuleType

#: The suite's ``envs`` package: installed beside this one (site-packages, or the project's folder).
SUITE_ENVS = Path(__file__).resolve().parent.parent / "envs"


def _is_the_suites(origin: str | None) -> bool:
    return origin is not None and Path(origin).resolve() == SUITE_ENVS / "__init__.py"


def _origin_of_envs() -> str | None:
    """Where ``import envs`` finds (or found) its package, without importing one."""
    loaded = sys.modules.get("envs")
    if loaded is not None:
        return getattr(loaded, "__file__", None)
    try:
        found = importlib.util.find_spec("envs")
    except (ImportError, ValueError):
        return None
    return found.origin if found is not None else None


def _suite_envs() -> ModuleType:
    """The suite's ``envs``: ``import envs`` when that is it, else the package loaded from :data:`SUITE_ENVS`
    as ``maskbench.envs``."""
    if _is_the_suites(_origin_of_envs()):
        return importlib.import_module("envs")
    name = f"{__name__}.envs"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, SUITE_ENVS / "__init__.py",
                                                  submodule_search_locations=[str(SUITE_ENVS)])
    if spec is None or spec.loader is None:
        raise ImportError(f"maskbench: the suite's envs package is missing at {SUITE_ENVS}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        for loaded in [key for key in sys.modules if key == name or key.startswith(f"{name}.")]:
            del sys.modules[loaded]
        raise
    return module


envs = _suite_envs()
globals().update({attribute: getattr(envs, attribute) for attribute in envs.__all__})
__all__ = ["envs", *envs.__all__]
