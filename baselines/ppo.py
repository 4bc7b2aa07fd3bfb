"""PPO on Ray RLlib's new API stack, shared by masked PPO and penalty PPO.

:class:`PPOSettings` is the typed training config (CleanRL style: every field documented);
:class:`RLlibPPO` turns it into an RLlib ``PPOConfig`` (EnvRunners fed by the suite's natively
batched vector envs, a local Learner), runs one RLlib iteration per ``train_iteration`` and
reports the suite's progress row. Subclasses say what the agent sees (the module, the env
wrappers) and which policies are evaluated.

Several agents (an env config with ``n_agents > 1``): the same settings train through RLlib's
multi-agent API on :class:`baselines.rllib_multi_agent.MultiAgentTrainingEnv`, with one module all
agents share (``policies=shared``) or one per agent (``policies=per_agent``), each built from the
algo's module spec (masked PPO: the masking module). ``train_batch_size`` counts env steps, so a
shared module learns from ``n_agents`` times as many agent steps per iteration.

Ray: a local instance is started with as many CPUs as the machine has (at least the env runners
asked for), or the algorithm connects to ``address`` (an existing cluster). Either way it is shut
down again by :meth:`RLlibPPO.close` if this algorithm started or connected it.
"""

from __future__ import annotations

import json
import logging
import os
import re
import socket
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from baselines.base import Algorithm, Policy
from baselines.rollout import joint_policy, progress_row
from baselines.rllib_env import (OBS_TRANSFORMS, TrainingStats, agent_action_space, env_actions, find_wrapper,
                                 make_training_env, transform_features)
from envs.config import ConfigError, parse_assignments, setting
from envs.masking import OBSERVATION_KEY, is_discrete

__all__ = ["PPOSettings", "RLlibPPO", "BACKENDS", "backend_setting", "connect_ray", "logit_policy", "gaussian_policy"]

_ACTIVATIONS = ("tanh", "relu", "silu")
#: The names the training env creators are registered under in Ray's registry.
TRAINING_ENV_ID = "maskbench-training-env"
MULTI_AGENT_TRAINING_ENV_ID = "maskbench-multi-agent-training-env"


def _map_to_shared(agent_id, episode, **kwargs) -> str:
    """RLlib's policy mapping with parameter sharing: every agent acts with the shared module."""
    from baselines.rllib_multi_agent import SHARED_MODULE

    return SHARED_MODULE


def _map_to_own(agent_id, episode, **kwargs) -> str:
    """RLlib's policy mapping with one policy per agent: the module named after the agent."""
    return agent_id


#: Where masked and penalty PPO train: Ray RLlib (the default; scales to a cluster) or the single-process
#: batched torch loop of :mod:`baselines.torch_ppo` (the fastest on one machine; discrete envs).
BACKENDS = ("rllib", "torch")


def backend_setting():
    """The ``backend`` field of the algos that have a torch backend (masked and penalty PPO)."""
    return setting("rllib", "where PPO trains: rllib (Ray RLlib, from a laptop to a cluster) or torch (one "
                   "process, batched, the fastest on one machine; discrete envs)", choices=BACKENDS)


def _positive(value) -> bool:
    return value > 0


def _unit(value) -> bool:
    return 0 <= value <= 1


def _positive_ints(values) -> bool:
    return len(values) > 0 and all(v > 0 for v in values)


@dataclass(frozen=True)
class PPOSettings:
    """PPO hyperparameters and how sampling is laid out; ``--algo-config KEY=VALUE`` sets any field."""

    # --- optimisation
    lr: float = setting(3e-4, "Adam learning rate", check=_positive, accepts="a positive number")
    lr_schedule: str = setting("constant", "learning rate over the run: constant, or linear from lr down to 0 "
                               "at the run's budget (CleanRL's anneal_lr)", choices=("constant", "linear"))
    gamma: float = setting(0.99, "discount factor", check=_unit, accepts="a number in [0, 1]")
    gae_lambda: float = setting(0.95, "GAE lambda", check=_unit, accepts="a number in [0, 1]")
    clip_param: float = setting(0.2, "PPO ratio clip", check=_positive, accepts="a positive number")
    vf_clip_param: float = setting(float("inf"), "clip of the value loss (inf: none)", check=_positive,
                                   accepts="a positive number or inf")
    entropy_coeff: float = setting(0.01, "entropy bonus coefficient", check=lambda v: v >= 0,
                                   accepts="a non-negative number")
    vf_loss_coeff: float = setting(0.5, "value loss coefficient", check=lambda v: v >= 0,
                                   accepts="a non-negative number")
    grad_clip: float = setting(0.5, "global gradient-norm clip", check=_positive, accepts="a positive number")
    train_batch_size: int = setting(8192, "env steps per training iteration", check=_positive,
                                    accepts="a positive integer")
    minibatch_size: int = setting(1024, "SGD minibatch size", check=_positive, accepts="a positive integer")
    num_epochs: int = setting(10, "SGD passes over each training batch", check=_positive,
                              accepts="a positive integer")
    # --- network
    hidden: tuple[int, ...] = setting((256, 256), "hidden layer sizes of the policy and value networks",
                                      check=_positive_ints, accepts="positive integers")
    activation: str = setting("tanh", "hidden layer activation", choices=_ACTIVATIONS)
    log_std_init: float = setting(0.0, "continuous actions: initial log standard deviation of the Gaussian policy",
                                  check=lambda v: abs(v) <= 20, accepts="a number in [-20, 20]")
    obs_transform: str = setting("symlog", "elementwise transform of the observation features "
                                 "(symlog: sign(x) log(1 + |x|))", choices=OBS_TRANSFORMS)
    reward_scale: float = setting(1.0, "factor on the reward the agent learns from", check=_positive,
                                  accepts="a positive number")
    train_env_config: tuple[str, ...] = setting(
        (), "env config overrides for the training env only, KEY=VALUE,... (e.g. a denser reward); "
        "evaluation always uses the run's env config", check=lambda items: all("=" in i for i in items),
        accepts="comma-separated KEY=VALUE pairs")
    # --- sampling layout
    num_env_runners: int = setting(0, "remote EnvRunner actors (0: sample in the driver process)",
                                   check=lambda v: v >= 0, accepts="a non-negative integer")
    num_envs_per_env_runner: int = setting(64, "vector env entries per EnvRunner", check=_positive,
                                           accepts="a positive integer")
    # --- several agents (an env with n_agents > 1)
    policies: str = setting("shared", "several agents: one policy all agents share (parameter sharing) or "
                            "one per agent", choices=("shared", "per_agent"))


class _NewStackNotice(logging.Filter):
    """Drops RLlib's notice, on every run, that PPO runs on the new API stack: we chose it."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "on the new API stack" not in record.getMessage()


logging.getLogger("ray.rllib.algorithms.algorithm_config").addFilter(_NewStackNotice())
# RLlib registers its env under one fixed gymnasium id each time an algorithm is built in a process.
warnings.filterwarnings("ignore", message=".*Overriding environment rllib-(single|multi)-agent-env-v0", category=UserWarning)


def connect_ray(address: str | None, num_cpus: int) -> bool:
    """Start or connect to Ray; return True when this call did (so it should shut it down).

    ``address`` None starts a local instance with ``num_cpus``; otherwise it is checked to be
    reachable first, so a wrong address fails in seconds with a one-line ``ConfigError``.
    """
    import ray

    if ray.is_initialized():
        return False
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    os.environ.setdefault("RAY_DEDUP_LOGS", "0")
    kwargs: dict[str, Any] = {"include_dashboard": False, "logging_level": logging.ERROR,
                              "log_to_driver": False, "configure_logging": True}
    if address is None:
        ray.init(num_cpus=num_cpus, **kwargs)
        return True
    if address not in ("auto", "local") and not address.startswith("ray://"):
        host, _, port = address.rpartition(":")
        if not host or not port.isdigit():
            raise ConfigError(f"--address expects HOST:PORT of a running Ray head (or 'auto'), got {address!r}")
        try:
            socket.create_connection((host, int(port)), timeout=5).close()
        except OSError as error:
            raise ConfigError(f"cannot reach a Ray cluster at --address {address!r}: "
                              f"{error.strerror or error}; start one with `ray start --head` or drop --address")
    try:
        ray.init(address=address, **kwargs)
    except (ConnectionError, RuntimeError) as error:
        raise ConfigError(f"cannot connect to a Ray cluster at --address {address!r}: "
                          f"{str(error).splitlines()[0]}") from None
    return True


class RLlibPPO(Algorithm):
    """RLlib PPO on one suite env; subclasses override :meth:`module_spec` and :meth:`env_context`."""

    Config: ClassVar[type] = PPOSettings
    default_steps = 1_000_000
    #: How the agent's action reaches a continuous env (see ``baselines.rllib_env.ACTION_MODES``).
    action_mode: ClassVar[str] = "raw"
    #: Whether the algo only makes sense for continuous envs (it refuses discrete ones).
    continuous_only: ClassVar[bool] = False
    #: portfolio: 20-step episodes, so no discount (gamma 1). The agent learns from the env's dense
    #: ``value_change`` reward (the per-step change in portfolio value / start cash): with gamma 1 it is
    #: potential-based shaping of the final value (same optimal policies, Ng et al. 1999) and it learns
    #: faster (training mean $2,850 vs $2,690 at 490k steps from the final value scaled by 1/1000);
    #: lr 1e-3 rather than 3e-4 reaches a training mean of $2,740 instead of $2,450 at 246k steps.
    #: speed_limit: per-step rewards of a few units, scaled by 0.1 so that the value loss does not swamp
    #: the policy gradient under the global gradient clip. With a constant lr, a nearly deterministic
    #: masked policy (entropy 0.02) collapsed from 60 to 50 at 800k steps; lr decays linearly instead.
    #: sum_to_zero: weights in [0, 1] need no transform; a Gaussian starting at standard deviation
    #: exp(-2.5) = 0.08, the scale of one of 13 weights (at 1, masked PPO's training return was still
    #: below random-valid's after 150k steps); no entropy bonus (CleanRL's continuous default); gamma 0.5,
    #: since an allocation's reward comes within a few steps and demand is noisy (greedy return 31.8 vs
    #: 26.5 with gamma 0.9 at 123k steps); lr 5e-4 decaying linearly (constant, greedy return peaked at
    #: 42.1 at 490k steps, fell to 35.3 at 570k and was back to 40.7 at 1M; linear: 42.4 at 1M).
    env_defaults = {"portfolio": {"gamma": 1.0, "lr": 1e-3, "train_env_config": ("reward=value_change",)},
                    "speed_limit": {"reward_scale": 0.1, "lr_schedule": "linear"},
                    "sum_to_zero": {"obs_transform": "none", "log_std_init": -2.5, "entropy_coeff": 0.0,
                                    "gamma": 0.5, "lr": 5e-4, "lr_schedule": "linear"}}

    def __init__(self, env_name: str, env_config: dict[str, Any], config: PPOSettings, seed: int, *,
                 address: str | None = None, budget: int | None = None):
        super().__init__(env_name, env_config, config, seed, budget=budget)
        import envs

        self.train_env_config = envs.config_dict(
            env_name, {**env_config, **parse_assignments(config.train_env_config, what="train_env_config")})
        probe = envs.make_core(env_name, 1, **self.train_env_config)  # fails early, before Ray, on a bad env
        self.action_space = probe.action_space
        self.agent_ids = list(probe.agent_ids)
        self._validate()
        self._owns_ray = connect_ray(address, num_cpus=max(os.cpu_count() or 1, config.num_env_runners + 1))
        try:
            self.algo = self._rllib_config().build_algo()
        except BaseException:
            self.close()
            raise
        self.env_steps = 0
        self.episodes = 0

    # ------------------------------------------------------------------ building

    def _validate(self) -> None:
        c = self.config
        if c.minibatch_size > c.train_batch_size:
            raise ConfigError(f"algo config: minibatch_size ({c.minibatch_size}) must not exceed "
                              f"train_batch_size ({c.train_batch_size})")
        if c.lr_schedule == "linear" and not self.budget:
            raise ConfigError("algo config: lr_schedule=linear needs the run's budget (suite.run --steps)")
        reason = self.incompatibility(self.env_name, self.env_config)
        if reason:
            raise ConfigError(reason)
        if self.multi_agent and not self.discrete:
            raise ConfigError(f"several agents train with masked categorical actions; env {self.env_name!r} has "
                              f"{self.action_space}")

    @classmethod
    def implementation(cls, config) -> type[Algorithm]:
        """This class, or its torch backend when ``config.backend`` is ``torch``."""
        if getattr(config, "backend", "rllib") == "torch":
            from baselines.torch_ppo import torch_backend_of

            return torch_backend_of(cls)
        return cls

    @classmethod
    def incompatibility(cls, env_name: str, env_config) -> str | None:
        import envs

        core = envs.make_core(env_name, 1, **dict(env_config))
        name = re.sub(r"(?<=[a-z])(?=[A-Z])", "_", cls.__name__).lower()  # NormalizePPO -> normalize_ppo
        if core.discrete and cls.continuous_only:
            return (f"{name} is for continuous envs (action mode {cls.action_mode!r}); env {env_name!r} has "
                    f"{core.action_space}")
        if cls.action_mode == "normalize" and not hasattr(core, "reallocation_to"):
            return (f"{name} needs an env whose actions reallocate weights that sum to 1 (an env core with "
                    f"reallocation_to()); env {env_name!r} has none")
        return None

    @property
    def discrete(self) -> bool:
        return is_discrete(self.action_space)

    @property
    def multi_agent(self) -> bool:
        """Whether the env has several agents (trained through RLlib's multi-agent API)."""
        return len(self.agent_ids) > 1

    @property
    def module_ids(self) -> list[str]:
        """The RLlib modules (policies): RLlib's default one for one agent; with several, one shared module
        (``policies=shared``) or one per agent, named after it."""
        from ray.rllib.core import DEFAULT_MODULE_ID

        from baselines.rllib_multi_agent import SHARED_MODULE

        if not self.multi_agent:
            return [DEFAULT_MODULE_ID]
        return [SHARED_MODULE] if self.config.policies == "shared" else list(self.agent_ids)

    def module_of(self, agent: str) -> str:
        """The module that acts for ``agent``."""
        return self.module_ids[0] if len(self.module_ids) == 1 else agent

    def env_context(self) -> dict[str, Any]:
        """The RLlib env config :func:`baselines.rllib_env.make_training_env` reads."""
        return {"env_name": self.env_name, "env_config": self.train_env_config,
                "obs_transform": self.config.obs_transform, "reward_scale": self.config.reward_scale,
                "action_mode": self.action_mode}

    def model_config(self) -> dict[str, Any]:
        return {"fcnet_hiddens": list(self.config.hidden), "fcnet_activation": self.config.activation,
                "vf_share_layers": False}

    def module_spec(self):
        """The RLModuleSpec of the policy: RLlib's default PPO module, with the initial spread of
        ``log_std_init`` for continuous actions (:mod:`baselines.gaussian_module`)."""
        if self.discrete:
            return None
        from ray.rllib.core.rl_module.rl_module import RLModuleSpec

        from baselines.gaussian_module import GaussianPPOTorchRLModule

        return RLModuleSpec(module_class=GaussianPPOTorchRLModule,
                            model_config={"log_std_init": self.config.log_std_init})

    def _rllib_config(self):
        from ray.rllib.algorithms.ppo import PPOConfig
        from ray.rllib.core.rl_module.rl_module import RLModuleSpec
        from ray.tune.registry import register_env

        c = self.config
        spec = self.module_spec() or RLModuleSpec()
        spec.model_config = {**self.model_config(), **(spec.model_config or {})}
        if self.multi_agent:  # RLlib 2.60 vectorises multi-agent envs only as a list of single envs ("sync")
            from baselines.rllib_multi_agent import make_multi_agent_training_env

            register_env(MULTI_AGENT_TRAINING_ENV_ID, make_multi_agent_training_env)
            env_id, vectorize_mode = MULTI_AGENT_TRAINING_ENV_ID, "sync"
        else:
            register_env(TRAINING_ENV_ID, make_training_env)
            env_id, vectorize_mode = TRAINING_ENV_ID, "vector_entry_point"
        config = (
            PPOConfig()
            .api_stack(enable_rl_module_and_learner=True, enable_env_runner_and_connector_v2=True)
            .framework("torch")
            # Box actions: the Gaussian's samples, read as [-1, 1], are mapped to the space's bounds and
            # clipped there (RLlib's unsquash_action; evaluation does the same in gaussian_policy).
            .environment(env=env_id, env_config=self.env_context(), normalize_actions=True, clip_actions=False)
            .env_runners(num_env_runners=c.num_env_runners, num_envs_per_env_runner=c.num_envs_per_env_runner,
                         gym_env_vectorize_mode=vectorize_mode, rollout_fragment_length="auto",
                         num_cpus_per_env_runner=1)
            .learners(num_learners=0)
            .training(lr=c.lr if c.lr_schedule == "constant" else [[0, c.lr], [self.budget, 0.0]], gamma=c.gamma, lambda_=c.gae_lambda, clip_param=c.clip_param,
                      vf_clip_param=c.vf_clip_param, entropy_coeff=c.entropy_coeff, vf_loss_coeff=c.vf_loss_coeff,
                      grad_clip=c.grad_clip, train_batch_size_per_learner=c.train_batch_size,
                      minibatch_size=c.minibatch_size, num_epochs=c.num_epochs, use_kl_loss=False)
            .debugging(seed=self.seed, log_level="ERROR")
            .reporting(metrics_num_episodes_for_smoothing=1)
        )
        if not self.multi_agent:
            return config.rl_module(rl_module_spec=spec)
        from ray.rllib.core.rl_module.multi_rl_module import MultiRLModuleSpec

        shared = len(self.module_ids) == 1
        mapping = _map_to_shared if shared else _map_to_own
        return (config.multi_agent(policies=set(self.module_ids), policy_mapping_fn=mapping)
                .rl_module(rl_module_spec=MultiRLModuleSpec(rl_module_specs={
                    module_id: RLModuleSpec(module_class=spec.module_class, model_config=dict(spec.model_config))
                    for module_id in self.module_ids})))

    # ------------------------------------------------------------------ training

    def _drain_stats(self) -> list[dict[str, Any]]:
        """What every runner's training envs counted since the last drain (one dict per env)."""
        def drain(runner):
            env = getattr(runner, "env", None)
            if env is not None and hasattr(env, "envs"):  # multi-agent: a list of MultiAgentTrainingEnv
                return [e.unwrapped.drain() for e in env.envs]
            stats = find_wrapper(env, TrainingStats)
            return [stats.drain()] if stats is not None else []

        return [part for parts in self.algo.env_runner_group.foreach_env_runner(drain, local_env_runner=True)
                for part in parts]

    def train_iteration(self) -> dict[str, float]:
        started = time.perf_counter()
        result = self.algo.train()
        parts = self._drain_stats()
        finished = [e for p in parts for e in p["episodes"]]
        agent_steps, invalid = sum(p["steps"] for p in parts), sum(p["invalid_steps"] for p in parts)
        steps = sum(p["env_steps"] for p in parts) if self.multi_agent else agent_steps
        self.env_steps += steps
        self.episodes += len(finished)
        learners = [result.get("learners", {}).get(module_id, {}) for module_id in self.module_ids]
        names = {"entropy": "entropy", "policy_loss": "policy_loss", "vf_loss": "vf_loss",
                 "vf_explained_var": "vf_explained_var", "lr": "default_optimizer_learning_rate"}
        stats = {key: float(np.mean([s[name] for s in learners])) for key, name in names.items()
                 if all(name in s for s in learners)}  # several policies: their mean
        return progress_row(env_steps=self.env_steps, episodes=self.episodes, steps=steps, invalid_steps=invalid,
                            finished=finished, seconds=time.perf_counter() - started, learner=stats,
                            agent_steps=agent_steps if self.multi_agent else None,
                            agent_ids=self.agent_ids if self.multi_agent else None)

    # ------------------------------------------------------------------ evaluation

    def module(self, module_id: str | None = None):
        """The trained torch module ``module_id`` (default: the only one; the local learner's copy), in eval mode."""
        module = self.algo.get_module(module_id or self.module_ids[0])
        module.eval()
        return module

    def features(self, observations: dict[str, np.ndarray]):
        """The evaluation env's observation features as the network sees them (a torch tensor)."""
        import torch

        return torch.from_numpy(transform_features(observations[OBSERVATION_KEY], self.config.obs_transform))

    def eval_policies(self) -> dict[tuple[str, str], Policy]:
        """:meth:`module_eval_policies` of the module; with several agents, each agent plays its module's
        (:func:`baselines.rollout.joint_policy`)."""
        if not self.multi_agent:
            return self.module_eval_policies(self.module())
        per_module = {module_id: self.module_eval_policies(self.module(module_id)) for module_id in self.module_ids}
        keys = per_module[self.module_ids[0]].keys()
        return {key: joint_policy([per_module[self.module_of(agent)][key] for agent in self.agent_ids])
                for key in keys}

    def module_eval_policies(self, module) -> dict[tuple[str, str], Policy]:
        """The evaluated policies of one trained module, on one agent's ``(N, ...)`` observations."""
        raise NotImplementedError

    def features_dist_inputs(self, module):
        """``observations -> (N, k)`` numpy distribution inputs of ``module``, fed the features alone
        (every module but masked PPO's discrete one, which also takes the mask)."""
        import torch

        @torch.no_grad()
        def dist_inputs(observations: dict[str, np.ndarray]) -> np.ndarray:
            return module.forward_inference({"obs": self.features(observations)})["action_dist_inputs"].numpy()

        return dist_inputs

    def module_policy(self, dist_inputs_of, *, stochastic: bool, mode: str | None = None) -> Policy:
        """An evaluation policy from ``dist_inputs_of(observations)``, the module's distribution inputs.

        Discrete envs: categorical logits (:func:`logit_policy`); continuous: Gaussian mean and log
        std mapped to env actions by ``mode`` (default: the algo's own, see :func:`gaussian_policy`).
        """
        if self.discrete:
            return logit_policy(dist_inputs_of, self.action_space, stochastic=stochastic)
        mode = self.action_mode if mode is None else mode
        return gaussian_policy(dist_inputs_of, agent_action_space(self.action_space, self.action_mode), mode,
                               stochastic=stochastic)

    # ------------------------------------------------------------------ checkpoints

    def save(self, directory: Path) -> None:
        self.algo.save_to_path(str((directory / "rllib").resolve()))
        (directory / "counters.json").write_text(json.dumps({"env_steps": self.env_steps, "episodes": self.episodes}))

    def restore(self, directory: Path) -> None:
        self.algo.restore_from_path(str((directory / "rllib").resolve()))
        counters = json.loads((directory / "counters.json").read_text())
        self.env_steps, self.episodes = counters["env_steps"], counters["episodes"]

    def close(self) -> None:
        algo = getattr(self, "algo", None)
        if algo is not None:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                algo.stop()
            self.algo = None
        if getattr(self, "_owns_ray", False):
            import ray

            ray.shutdown()
            self._owns_ray = False


def logit_policy(logits_of, action_space, *, stochastic: bool) -> Policy:
    """An evaluation :data:`Policy` from ``logits_of(observations) -> (N, sum(nvec))`` numpy logits."""
    from gymnasium import spaces

    from baselines.masked_logits import choose_actions
    from envs.masking import action_nvec

    nvec = action_nvec(action_space)
    single = isinstance(action_space, spaces.Discrete)

    def policy(observations, rng, env):
        actions = choose_actions(logits_of(observations), nvec, rng if stochastic else None)
        return actions[:, 0] if single else actions

    return policy


def gaussian_policy(dist_inputs_of, agent_space, mode: str, *, stochastic: bool) -> Policy:
    """An evaluation :data:`Policy` from a diagonal Gaussian: ``dist_inputs_of(observations) -> (N, 2n)``.

    The inputs are the mean and log standard deviation (RLlib's ``TorchDiagGaussian`` layout).
    ``stochastic``: a sample from ``rng``; else the mean. The result goes through RLlib's
    ``unsquash_action`` onto ``agent_space`` (as in training), then :func:`baselines.rllib_env.
    env_actions` with ``mode`` (``project``, ``normalize`` or ``raw``) in the env's current state.
    """
    from ray.rllib.utils.spaces.space_utils import unsquash_action

    def policy(observations, rng, env):
        mean, log_std = np.split(np.asarray(dist_inputs_of(observations), dtype=np.float64), 2, axis=-1)
        actions = mean + np.exp(log_std) * rng.standard_normal(mean.shape) if stochastic else mean
        return env_actions(env.core, unsquash_action(actions, agent_space), mode)

    return policy
