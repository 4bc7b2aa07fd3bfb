"""The sb3-contrib backend: masked PPO trained by sb3-contrib's ``MaskablePPO`` (``sb3_maskable_ppo``).

Optional: ``pip install -e ".[compare]"`` installs sb3-contrib. It is here to be raced against the
suite's own backends (``python -m suite.race``), so it takes **the same settings**: its config is
:class:`baselines.settings.PPOSettings` with the same per-env defaults, mapped onto MaskablePPO's
arguments (``train_batch_size`` = ``n_steps`` x ``n_envs``, ``minibatch_size`` = ``batch_size``,
``num_epochs`` = ``n_epochs``, ``hidden`` / ``activation`` = separate policy and value networks of
those sizes, ``clip_param``, ``entropy_coeff``, ``vf_loss_coeff``, ``grad_clip``, ``gamma``,
``gae_lambda``, the learning rate and its schedule; ``vf_clip_param`` must stay ``inf``, since
MaskablePPO clips value predictions, not the value loss). It sees what masked PPO's network sees:
the observation features (through the same ``obs_transform``), with the mask passed to
MaskablePPO as its action mask, not as an input; it learns from the same reward
(``train_env_config``, ``reward_scale``).

Two ways to batch the envs (``vec_env``):

- ``dummy`` (default): the usual Stable-Baselines3 set-up, a ``DummyVecEnv`` of
  ``num_envs_per_env_runner`` single Gymnasium envs (:func:`make_dummy_vec_env`): what a user of
  sb3-contrib runs today;
- ``batched``: the suite's natively batched env through :func:`make_sb3_vec_env`, an adapter to
  Stable-Baselines3's ``VecEnv`` (same-step autoreset, ``terminal_observation`` and
  ``TimeLimit.truncated`` in the infos, masks through ``env_method("action_masks")``), which
  separates what the learner costs from what stepping the envs costs.

Sampling runs in this process (``num_env_runners`` must be 0); evaluation plays the same four
policies as masked PPO (greedy and stochastic, mask on and off).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.utils import seeding

import envs
from baselines.algorithm import Algorithm, Policy, derived_seed
from baselines.episodes import EpisodeTracker, merge_drains, progress_row
from baselines.evaluation import network_policies
from baselines.settings import PPOSettings, check_network_fits, check_settings
from baselines.training_env import learning_reward, training_env_config, transform_features, transformed_box
from envs.config import ConfigError
from envs.masking import MASK_KEY, OBSERVATION_KEY

__all__ = ["SB3PPO", "LearningRate", "make_sb3_vec_env", "make_dummy_vec_env", "maskable_ppo_arguments"]

INSTALL_HINT = 'sb3_maskable_ppo needs sb3-contrib: pip install -e ".[compare]"'


def _import_sb3():
    try:
        import sb3_contrib
        from stable_baselines3.common import vec_env
    except ImportError:
        raise ConfigError(INSTALL_HINT) from None
    return sb3_contrib, vec_env


def make_sb3_vec_env(env_name: str, env_config: dict[str, Any], num_envs: int, *, obs_transform: str = "none",
              reward_scale: float = 1.0):
    """The suite's env core ``env_name`` as a Stable-Baselines3 ``VecEnv`` (see the module docstring).

    A factory, so that importing this module does not need Stable-Baselines3. The returned env
    has a ``tracker`` (:class:`baselines.episodes.EpisodeTracker`) counting steps, steps with an
    inadmissible sub-action and finished episodes in the env's own reward.
    """
    _, vec_env = _import_sb3()

    class _SB3VecEnv(vec_env.VecEnv):
        def __init__(self):
            self.core = envs.make_core(env_name, num_envs, **env_config)
            if self.core.n_agents != 1 or not self.core.discrete:
                raise ConfigError(f"SB3VecEnv: env {env_name!r} must be single-agent with discrete actions")
            self.obs_transform, self.reward_scale = obs_transform, reward_scale
            self.tracker = EpisodeTracker.of(self.core, num_envs, next_step_autoreset=False)
            self._rngs: list[np.random.Generator] = []
            self._actions: np.ndarray | None = None
            super().__init__(num_envs, transformed_box(self.core.feature_space, obs_transform), self.core.action_space)

        def _features(self) -> np.ndarray:
            return transform_features(self.core.features()[:, 0], self.obs_transform)

        def reset(self) -> np.ndarray:
            seeds = self._seeds if any(s is not None for s in self._seeds) or not self._rngs else None
            if seeds is not None:
                self._rngs = [seeding.np_random(s)[0] for s in seeds]
            self._reset_seeds()
            self.core.reset(np.arange(self.num_envs), self._rngs)
            # A new tracker: episodes in flight are abandoned (learn() resets once, before any step).
            self.tracker = EpisodeTracker.of(self.core, self.num_envs, next_step_autoreset=False)
            return self._features()

        def step_async(self, actions: np.ndarray) -> None:
            self._actions = actions

        def step_wait(self):
            result = self.core.step(self._actions)
            reward, terminated, truncated = (result.reward[:, 0], result.terminated[:, 0], result.truncated[:, 0])
            self.tracker.update(reward, terminated, truncated, {k: v[:, 0] for k, v in result.info.items()})
            features = self._features()
            done = terminated | truncated
            infos: list[dict[str, Any]] = [{} for _ in range(self.num_envs)]
            ended = np.flatnonzero(done)
            if len(ended):  # same-step autoreset, as Stable-Baselines3 expects
                for i in ended:
                    infos[i]["terminal_observation"] = features[i]
                    infos[i]["TimeLimit.truncated"] = bool(truncated[i] and not terminated[i])
                self.core.reset(ended, [self._rngs[i] for i in ended])
                features = self._features()
            return features, learning_reward(reward, None, None, self.reward_scale).astype(np.float32), done, infos

        def action_masks(self) -> np.ndarray:
            return self.core.action_mask()[:, 0].astype(bool)

        def env_method(self, method_name: str, *args, indices=None, **kwargs) -> list[Any]:
            if method_name != "action_masks":
                raise AttributeError(f"SB3VecEnv has no per-env method {method_name!r}")
            return list(self.action_masks()[self._get_indices(indices)])

        def has_attr(self, attr_name: str) -> bool:
            return attr_name in ("action_masks", "render_mode")

        def get_attr(self, attr_name: str, indices=None) -> list[Any]:
            if attr_name == "render_mode":
                return [None for _ in self._get_indices(indices)]
            raise AttributeError(f"SB3VecEnv has no per-env attribute {attr_name!r}")

        def set_attr(self, attr_name: str, value: Any, indices=None) -> None:
            raise AttributeError(f"SB3VecEnv cannot set per-env attribute {attr_name!r}")

        def env_is_wrapped(self, wrapper_class, indices=None) -> list[bool]:
            return [False for _ in self._get_indices(indices)]

        def close(self) -> None:
            pass

        def _get_indices(self, indices) -> Sequence[int]:
            if indices is None:
                return range(self.num_envs)
            return [indices] if isinstance(indices, int) else indices

    return _SB3VecEnv()


class _EpisodeStats(gym.Wrapper):
    """Steps, steps with an inadmissible action and finished episodes of one single env, in its own reward.

    The ``dummy`` set-up's counterpart of :class:`baselines.training_env.MultiAgentTrainingVector`'s
    statistics: plain Python counters, so that it adds as little as possible to the per-env cost being measured.
    """

    def __init__(self, env: gym.Env, metrics: Sequence[str]):
        super().__init__(env)
        self.metrics = tuple(metrics)
        self.steps = self.invalid_steps = 0
        self.finished: list[dict[str, Any]] = []
        self._episode = [0.0, 0, 0, 0]  # return, length, invalid steps, invalid actions
        #: Steps whose attempted action violated each constraint (the core's names), since the last drain.
        self.violations = dict.fromkeys((c.name for c in env.unwrapped.core.constraints), 0)

    def reset(self, **kwargs):
        self._episode = [0.0, 0, 0, 0]
        return super().reset(**kwargs)

    def step(self, action):
        obs, reward, terminated, truncated, info = super().step(action)
        invalid = int(info["invalid_actions"])
        self.steps += 1
        self.invalid_steps += invalid > 0
        for name in info["violated"] if invalid else ():
            self.violations[name] += 1
        episode = self._episode
        episode[0] += float(reward)
        episode[1] += 1
        episode[2] += invalid > 0
        episode[3] += invalid
        if terminated or truncated:
            record = {"return": episode[0], "length": episode[1], "invalid_steps": episode[2],
                      "invalid_actions": episode[3]}
            record.update({key: float(info[key]) for key in self.metrics})
            self.finished.append(record)
            self._episode = [0.0, 0, 0, 0]
        return obs, reward, terminated, truncated, info


class _Features(gym.ObservationWrapper):
    """The observation features only, through :func:`transform_features`; masks stay reachable by
    ``action_masks()`` on the env below (what sb3-contrib looks for)."""

    def __init__(self, env: gym.Env, kind: str):
        super().__init__(env)
        self.kind = kind
        self.observation_space = transformed_box(env.observation_space[OBSERVATION_KEY], kind)

    def observation(self, observation):
        return transform_features(observation[OBSERVATION_KEY], self.kind)


def make_dummy_vec_env(env_name: str, env_config: dict[str, Any], num_envs: int, *, obs_transform: str = "none",
                       reward_scale: float = 1.0):
    """The usual Stable-Baselines3 set-up: a ``DummyVecEnv`` of ``num_envs`` single Gymnasium envs.

    Each is ``envs.make(env_name)`` (which has ``action_masks()``, so no ``ActionMasker`` is needed)
    with per-env statistics, the features-only observation and the reward scale. The returned
    env's ``stats`` lists the statistics wrappers.
    """
    _, vec_env = _import_sb3()
    stats: list[_EpisodeStats] = []

    def make_one():
        env = envs.make(env_name, **env_config)
        env = _EpisodeStats(env, env.unwrapped.core.episode_metrics)
        stats.append(env)
        env = _Features(env, obs_transform)
        if reward_scale != 1.0:
            env = gym.wrappers.TransformReward(env, lambda reward: reward * reward_scale)
        return env

    venv = vec_env.DummyVecEnv([make_one for _ in range(num_envs)])
    venv.stats = stats
    return venv


def drain_dummy_stats(venv) -> dict[str, Any]:
    """Steps, steps with an inadmissible action and finished episodes of all envs since the last drain."""
    parts = []
    for env in venv.stats:
        parts.append({"steps": env.steps, "invalid_steps": env.invalid_steps, "episodes": env.finished,
                      "violations": env.violations})
        env.steps = env.invalid_steps = 0
        env.finished = []
        env.violations = dict.fromkeys(env.violations, 0)
    return merge_drains(parts)


_ACTIVATION_FNS = {"tanh": "Tanh", "relu": "ReLU", "silu": "SiLU"}


def maskable_ppo_arguments(config: PPOSettings) -> dict[str, Any]:
    """MaskablePPO's keyword arguments for ``config`` (the learning rate excepted: see the algo)."""
    import torch.nn as nn

    return {"n_steps": config.train_batch_size // config.num_envs_per_env_runner,
            "batch_size": config.minibatch_size, "n_epochs": config.num_epochs, "gamma": config.gamma,
            "gae_lambda": config.gae_lambda, "clip_range": config.clip_param,
            "clip_range_vf": None,
            "ent_coef": config.entropy_coeff, "vf_coef": config.vf_loss_coeff, "max_grad_norm": config.grad_clip,
            "policy_kwargs": {"net_arch": {"pi": list(config.hidden), "vf": list(config.hidden)},
                              "activation_fn": getattr(nn, _ACTIVATION_FNS[config.activation])}}


class LearningRate:
    """Masked PPO's learning rate as a Stable-Baselines3 schedule: constant, or linear from ``lr`` to 0
    at ``budget`` env steps, read from ``steps_done`` (set before each iteration; SB3's own
    ``progress_remaining`` only covers one ``learn()`` call). Small and picklable: it is saved with
    the model."""

    def __init__(self, lr: float, budget: int | None):
        self.lr, self.budget, self.steps_done = lr, budget, 0

    def __call__(self, progress_remaining: float) -> float:
        if self.budget is None:
            return self.lr
        return self.lr * max(0.0, 1.0 - self.steps_done / self.budget)


class SB3PPO(Algorithm):
    """Masked PPO by sb3-contrib's MaskablePPO with the suite's settings (see the module docstring)."""

    def __init__(self, env_name: str, env_config: dict[str, Any], config: PPOSettings, seed: int, *, method,
                 address: str | None = None, budget: int | None = None):
        super().__init__(env_name, env_config, config, seed, budget=budget)
        self.method = method
        method.check(env_name, env_config, "sb3")
        c = config
        runners = getattr(c, "num_env_runners", 0)  # RLlib's setting: in the config of methods that run there
        problems = [f"num_env_runners must be 0 (it samples in one process), got {runners}" if runners else "",
                    f"train_batch_size ({c.train_batch_size}) must be a multiple of num_envs_per_env_runner "
                    f"({c.num_envs_per_env_runner})" if c.train_batch_size % c.num_envs_per_env_runner else "",
                    f"vf_clip_param must be inf (MaskablePPO clips value predictions, not the value loss), "
                    f"got {c.vf_clip_param}" if not np.isinf(c.vf_clip_param) else ""]
        if any(problems):
            raise ConfigError(f"algo config: {next(p for p in problems if p)}")
        check_settings(c, budget)
        check_network_fits(c, envs.make_core(env_name, 1, **env_config))
        sb3_contrib, _ = _import_sb3()
        train_env_config = training_env_config(env_name, env_config, c.train_env_config)
        make = make_dummy_vec_env if c.vec_env == "dummy" else make_sb3_vec_env
        self.vec_env = make(env_name, train_env_config, c.num_envs_per_env_runner, obs_transform=c.obs_transform,
                            reward_scale=c.reward_scale)
        self.schedule = LearningRate(c.lr, budget if c.lr_schedule == "linear" else None)
        self.model = sb3_contrib.MaskablePPO("MlpPolicy", self.vec_env, learning_rate=self.schedule,
                                             seed=derived_seed(seed, "policy"), device="cpu", verbose=0,
                                             **maskable_ppo_arguments(c))
        self.vec_env.seed(derived_seed(seed, "env"))  # entry i of the training env gets seed + i

    @classmethod
    def incompatibility_with(cls, method, env_name: str, core) -> str | None:
        """What this backend cannot do: without sb3-contrib, nothing; else one agent, discrete actions, masked."""
        try:
            _import_sb3()
        except ConfigError as error:
            return str(error)
        if not core.discrete or core.n_agents != 1 or not method.observes_mask:
            return (f"{method.name} masks categorical actions of one agent; env {env_name!r} has "
                    f"{core.action_space} and {core.n_agents} agent(s)")
        return None

    def train_iteration(self) -> dict[str, float]:
        started = time.perf_counter()
        self.schedule.steps_done = self.env_steps
        # One rollout of train_batch_size env steps, then num_epochs of SGD over it.
        self.model.learn(total_timesteps=self.config.train_batch_size, reset_num_timesteps=False, progress_bar=False)
        stats = drain_dummy_stats(self.vec_env) if self.config.vec_env == "dummy" else self.vec_env.tracker.drain()
        steps, invalid, finished = stats["steps"], stats["invalid_steps"], stats["episodes"]
        self.env_steps += steps
        self.episodes += len(finished)
        logged = self.model.logger.name_to_value
        learner = {"entropy": -logged["train/entropy_loss"] if "train/entropy_loss" in logged else np.nan,
                   "policy_loss": logged.get("train/policy_gradient_loss", np.nan),
                   "vf_loss": logged.get("train/value_loss", np.nan),
                   "vf_explained_var": logged.get("train/explained_variance", np.nan),
                   "lr": logged.get("train/learning_rate", np.nan)}
        return progress_row(env_steps=self.env_steps, episodes=self.episodes, steps=steps, invalid_steps=invalid,
                            finished=finished, seconds=time.perf_counter() - started, learner=learner,
                            violations=stats.get("violations"))

    def dist_inputs(self):
        """``(observations, masked) -> (N, sum(nvec))`` numpy logits of the trained policy (see
        :data:`baselines.evaluation.DistInputs`)."""
        import torch

        policy = self.model.policy
        policy.set_training_mode(False)
        transform = self.config.obs_transform

        @torch.no_grad()
        def logits(observations: dict[str, np.ndarray], masked: bool) -> np.ndarray:
            features = torch.from_numpy(transform_features(observations[OBSERVATION_KEY], transform))
            masks = observations[MASK_KEY].astype(bool) if masked else None
            dist = policy.get_distribution(features, action_masks=masks)
            parts = getattr(dist, "distributions", None) or [dist.distribution]  # a Categorical per sub-action
            return torch.cat([part.logits for part in parts], dim=-1).numpy()

        return logits

    def eval_policies(self) -> dict[tuple[str, str], Policy]:
        return network_policies(self.method, self.vec_env.action_space, self.dist_inputs())

    def save(self, directory: Path) -> None:
        self.model.save(directory / "sb3_model.zip")
        self.save_counters(directory)

    def restore(self, directory: Path) -> None:
        sb3_contrib, _ = _import_sb3()
        self.model = sb3_contrib.MaskablePPO.load(directory / "sb3_model.zip", env=self.vec_env, device="cpu",
                                                  custom_objects={"learning_rate": self.schedule,
                                                                  "lr_schedule": self.schedule})
        self.restore_counters(directory)

    def close(self) -> None:
        self.vec_env.close()
