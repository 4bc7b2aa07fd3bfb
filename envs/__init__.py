"""maskbench environments: one masking interface, one batched core per env, its four views.

Importing ``envs`` registers the built-in envs (each registers itself in its own module).

>>> import envs
>>> env = envs.make("portfolio")                  # gymnasium.Env
>>> par = envs.make_parallel("portfolio", n_agents=2)  # pettingzoo.ParallelEnv
>>> vec = envs.make_vector("portfolio", 64)       # gymnasium.vector.VectorEnv
>>> mav = envs.make_multi_agent_vector("portfolio", 64, n_agents=3)  # (64, 3, ...) arrays
"""

from . import job_shop, portfolio, speed_limit, sum_to_zero  # noqa: F401  (the built-in envs register themselves)
from .config import ConfigError, UnknownConfigKey
from .contract import EnvContractError
from .core import EnvCore, StepResult
from .masking import AdmissibleSet, Constraint
from .registry import (
                           EnvSpec,
                           config_dict,
                           config_overrides,
                           describe,
                           gymnasium_id,
                           levels,
                           make,
                           make_core,
                           make_multi_agent_vector,
                           make_parallel,
                           make_vector,
                           names,
                           register,
                           register_level,
                           resolve_config,
                           spec,
                           unregister,
)

__all__ = [
    "AdmissibleSet", "ConfigError", "Constraint", "EnvContractError", "EnvCore", "EnvSpec", "StepResult",
    "UnknownConfigKey", "config_dict", "config_overrides", "describe", "gymnasium_id", "levels", "make", "make_core",
    "resolve_config", "make_multi_agent_vector",
    "make_parallel", "make_vector", "names", "register", "register_level", "spec", "unregister",
]
