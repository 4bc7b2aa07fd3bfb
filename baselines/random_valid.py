"""``random_valid``: uniform over admissible actions, the lower reference of every env.

Discrete envs: each sub-action uniformly among the values its mask block admits.
Continuous envs: the env's admissible set's own ``sample`` (its documented distribution).

:class:`RandomValidPolicy` is a plain callable for other code (``policy(obs) -> action`` for one
observation or a batch); :class:`RandomValid` is the algorithm ``suite.run`` drives: its "training"
only plays episodes, so its learning curve is the flat line learners must rise above.
"""

from __future__ import annotations

import pickle
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from gymnasium import spaces

import envs
from baselines.algorithm import Algorithm, Policy, derived_seed
from baselines.episodes import EpisodeTracker, progress_row
from envs.config import ConfigError, setting
from envs.masking import MASK_KEY, AdmissibleSet, action_nvec, admit_all_unless, is_discrete, sample_masked

__all__ = ["RandomValidPolicy", "RandomValidConfig", "RandomValid"]


class RandomValidPolicy:
    """Uniform over admissible actions, for one observation or a batch.

    Args:
        action_space: the env's (single) action space.
        seed: seed of the policy's own generator (or pass ``rng`` per call).
    """

    def __init__(self, action_space: spaces.Space, seed: int | None = None):
        self.action_space = action_space
        self.discrete = is_discrete(action_space)
        self.nvec = action_nvec(action_space) if self.discrete else None
        self.rng = np.random.default_rng(seed)

    def __call__(self, observation: dict[str, np.ndarray], rng: np.random.Generator | None = None,
                 admissible_set: AdmissibleSet | None = None) -> np.ndarray:
        rng = rng if rng is not None else self.rng
        if not self.discrete:
            if admissible_set is None:
                raise ValueError("a continuous env needs its admissible set: pass admissible_set=")
            return admissible_set.sample(rng)
        actions = sample_masked(rng, observation[MASK_KEY], self.nvec)
        if isinstance(self.action_space, spaces.Discrete):
            return actions[..., 0]
        return actions


@dataclass(frozen=True)
class RandomValidConfig:
    num_envs: int = setting(64, "vector env entries played at once", check=lambda v: v > 0,
                            accepts="a positive integer")
    steps_per_iteration: int = setting(2000, "env steps per progress row", check=lambda v: v > 0,
                                       accepts="a positive integer")


class RandomValid(Algorithm):
    """Plays random admissible actions; each "iteration" is ``steps_per_iteration`` env steps."""

    Config = RandomValidConfig
    default_steps = 20_000
    masked = True
    #: Plays every env (see :mod:`baselines.references`).
    families: tuple[str, ...] = ()

    def __init__(self, env_name: str, env_config: dict[str, Any], config: RandomValidConfig, seed: int, *,
                 address: str | None = None, budget: int | None = None):
        super().__init__(env_name, env_config, config, seed, budget=budget)  # plays in this process: no Ray
        self.n_agents = int(envs.config_dict(env_name, env_config).get("n_agents", 1))
        if self.n_agents == 1:
            self.env = envs.make_vector(env_name, config.num_envs, **env_config)
        else:  # (num_envs, agents, ...) arrays; the policy is the same over any batch axes
            self.env = envs.make_multi_agent_vector(env_name, config.num_envs, **env_config)
        self.policy = RandomValidPolicy(self.env.single_action_space)
        self.rng = np.random.default_rng(derived_seed(seed, "policy"))
        self.tracker = EpisodeTracker.of(self.env.core, config.num_envs * self.n_agents,
                                         next_step_autoreset=self.n_agents == 1)
        self.obs, _ = self.env.reset(seed=derived_seed(seed, "env"))
        self._enforcement_drained = self.env.core.enforcement_seconds

    def _act(self, obs: dict[str, np.ndarray], rng: np.random.Generator, env: envs.views.VectorView) -> np.ndarray:
        if not self.policy.discrete:
            return self.policy(obs, rng, admissible_set=env.core.admissible_set())
        # an entry whose episode is over acts no more, and its mask may admit nothing
        return self.policy({MASK_KEY: admit_all_unless(env.acting, obs[MASK_KEY])}, rng)

    def train_iteration(self) -> dict[str, float]:
        started = time.perf_counter()
        finished: list[dict[str, Any]] = []
        env_steps = 0
        steps_before, invalid_before = self.tracker.steps, self.tracker.steps_with_invalid
        while env_steps < self.config.steps_per_iteration:
            self.obs, reward, terminated, truncated, info = self.env.step(self._act(self.obs, self.rng, self.env))
            if self.n_agents == 1:
                finished += self.tracker.update(reward, terminated, truncated, info)
                env_steps = self.tracker.steps - steps_before
            else:  # an env step is a step of an entry in which some agent acted
                finished += self.tracker.update(reward, terminated, truncated, info, active=self.env.acted)
                env_steps += int(self.env.acted.any(axis=1).sum())
        self.env_steps += env_steps
        self.episodes += len(finished)
        multi = self.n_agents > 1
        drained = self.tracker.drain()  # this iteration's violations (its episodes are ``finished``)
        enforcement = self.env.core.enforcement_seconds - self._enforcement_drained
        self._enforcement_drained = self.env.core.enforcement_seconds
        return progress_row(env_steps=self.env_steps, episodes=self.episodes, steps=env_steps,
                            invalid_steps=self.tracker.steps_with_invalid - invalid_before, finished=finished,
                            seconds=time.perf_counter() - started,
                            agent_steps=self.tracker.steps - steps_before if multi else None,
                            agent_ids=self.env.agent_ids if multi else None, violations=drained["violations"],
                            violation_distance=drained["violation_distance"], enforcement_seconds=enforcement)

    def eval_policies(self) -> dict[tuple[str, str], Policy]:
        return {("stochastic", "on"): self._act}

    def save(self, directory: Path) -> None:
        state = {"env": self.env, "obs": self.obs, "rng": self.rng, "tracker": self.tracker,
                 "env_steps": self.env_steps, "episodes": self.episodes}
        (directory / "random_valid.pkl").write_bytes(pickle.dumps(state))

    def restore(self, directory: Path) -> None:
        path = directory / "random_valid.pkl"
        try:
            state = pickle.loads(path.read_bytes())
        except FileNotFoundError:
            raise ConfigError(f"cannot resume from {directory}: its random_valid.pkl is missing; pass --overwrite "
                              "to start the run over") from None
        except (OSError, EOFError, ValueError, pickle.UnpicklingError, AttributeError, ImportError) as error:
            raise ConfigError(f"cannot resume from {directory}: its random_valid.pkl is damaged "
                              f"({type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}); "
                              "pass --overwrite to start the run over") from None
        if not isinstance(state, dict):
            raise ConfigError(f"cannot resume from {directory}: its random_valid.pkl holds {type(state).__name__}, "
                              "not a random_valid checkpoint; pass --overwrite to start the run over")
        self.env.close()
        for key, value in state.items():
            setattr(self, key, value)

    def close(self) -> None:
        self.env.close()
