"""The RLlib backend: PPO with any method on Ray RLlib's new API stack (the default backend).

:class:`RLlibPPO` turns a method (:mod:`baselines.method`) and its settings into an RLlib
``PPOConfig``, extending RLlib only where its config and classes document it:
``env_runners(env_runner_cls=...)``: EnvRunners that step the suite's training env as whole arrays
(:class:`baselines.backends.rllib_batched_runner.BatchedEnvRunner`, over the training vector of
:mod:`baselines.training_env` that the torch backend uses too); ``training(learner_class=...,
learner_connector=...)``: a local Learner (RLlib's PPO learner with the suite's kernels,
:mod:`baselines.backends.rllib_fast_learner`, or RLlib's own with ``rllib_learner=exact``) and the batch
built in bulk from the runner's episodes; ``rl_module(...)``: the RLModule of the action space (the
categorical module of :mod:`baselines.backends.rllib_masking_module`, masking when the agent observes the
mask, or the Gaussian module of :mod:`baselines.backends.rllib_gaussian_module` for Box actions). One
RLlib iteration per ``train_iteration``, reported as the suite's progress row.

Several agents (an env config with ``n_agents > 1``): with ``policies=shared`` (the default) the
batched runner samples every agent of every entry with the one module (parameter sharing; each
agent's steps are an episode of its own); with ``policies=per_agent`` (one module per agent) the run
goes through RLlib's multi-agent API and its own runner on
:class:`baselines.backends.rllib_multi_agent.MultiAgentTrainingEnv`, which RLlib 2.60 steps one
episode at a time. ``train_batch_size`` counts env steps, so a shared module learns from
``n_agents`` times as many agent steps per iteration.

Ray: a local instance is started with as many CPUs as the machine has (at least the env runners
asked for), or the algorithm connects to ``address`` (an existing cluster), through
:func:`baselines.ray_session.connect_ray`; :meth:`RLlibPPO.close` ends what it started.
"""

from __future__ import annotations

import os
import pickle
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

from baselines.algorithm import Algorithm, Policy
from baselines.episodes import merge_drains, progress_row
from baselines.evaluation import joint_policy, network_policies
from baselines.ray_session import connect_ray
from baselines.settings import PPOSettings, check_network_fits, check_settings
from baselines.training_env import TrainingContext, training_spaces, transform_features
from envs.masking import MASK_KEY, OBSERVATION_KEY

__all__ = ["RLlibPPO", "MULTI_AGENT_TRAINING_ENV_ID"]

#: The batched runners' state in a checkpoint (pickled: numpy state and generators).
RUNNERS_FILE = "rllib_runners.pkl"
#: The name the multi-agent training env creator (one module per agent) is registered under in Ray's registry.
MULTI_AGENT_TRAINING_ENV_ID = "maskbench-multi-agent-training-env"


def learner_class(name: str = "fast"):
    """The Learner of an RLlib run (the ``rllib_learner`` setting): ``fast``, RLlib's PPO learner with the
    suite's kernels through its documented hooks (:mod:`baselines.backends.rllib_fast_learner`), or ``exact``,
    RLlib's own ``PPOTorchLearner``. With ``fast`` the discrete module also draws its actions itself
    (``draw_actions``, :mod:`baselines.backends.rllib_masking_module`); with ``exact`` RLlib's distribution
    classes draw them."""
    if name == "exact":
        from ray.rllib.algorithms.ppo.torch.ppo_torch_learner import PPOTorchLearner

        return PPOTorchLearner
    from baselines.backends.rllib_fast_learner import FastPPOTorchLearner

    return FastPPOTorchLearner


def _map_to_own(agent_id, episode, **kwargs) -> str:
    """RLlib's policy mapping with one policy per agent: the module named after the agent."""
    return agent_id


class RLlibPPO(Algorithm):
    """PPO with ``method`` on RLlib, on one suite env (see the module docstring)."""

    def __init__(self, env_name: str, env_config: dict[str, Any], config: PPOSettings, seed: int, *, method,
                 address: str | None = None, budget: int | None = None):
        super().__init__(env_name, env_config, config, seed, budget=budget)
        import envs

        self.method = method
        self.context = TrainingContext.of_run(env_name, env_config, method, config)
        probe = envs.make_core(env_name, 1, **self.context.env_config)  # fails early, before Ray, on a bad env
        #: One agent's spaces in the training env: what RLlib builds the module for (no probe env needed).
        self.spaces = training_spaces(probe, self.context)
        self.action_space = probe.action_space
        self.discrete = probe.discrete
        self.agent_ids = list(probe.agent_ids)
        check_settings(config, budget)
        check_network_fits(config, probe)
        method.check(env_name, env_config, "rllib", core=probe)  # the training env's core: same agents and spaces
        self._owns_ray = connect_ray(address, num_cpus=max(os.cpu_count() or 1, config.num_env_runners + 1))
        try:
            self.algo = self._rllib_config().build_algo()
        except BaseException:
            self.close()
            raise

    @classmethod
    def incompatibility_with(cls, method, env_name: str, core) -> str | None:
        """What this backend cannot do: a method's own objective (:mod:`baselines.objective`; its learner runs
        PPO's), several agents with Box actions."""
        if method.objective is not None:
            return f"{method.name} adds to PPO's objective, which only the torch backend does"
        if core.n_agents > 1 and not core.discrete:
            return f"several agents train with masked categorical actions; env {env_name!r} has {core.action_space}"
        return None

    # ------------------------------------------------------------------ building

    @property
    def multi_agent(self) -> bool:
        """Whether the env has several agents (trained through RLlib's multi-agent API)."""
        return len(self.agent_ids) > 1

    @property
    def batched(self) -> bool:
        """Whether the batched runner samples (all but one module per agent, which RLlib's own runner does)."""
        return not self.multi_agent or self.config.policies == "shared"

    @property
    def module_ids(self) -> list[str]:
        """The RLlib modules (policies): RLlib's default one, which every agent shares (``policies=shared``),
        or one per agent, named after it."""
        from ray.rllib.core import DEFAULT_MODULE_ID

        return [DEFAULT_MODULE_ID] if self.batched else list(self.agent_ids)

    def module_of(self, agent: str) -> str:
        """The module that acts for ``agent``."""
        return self.module_ids[0] if len(self.module_ids) == 1 else agent

    def module_spec(self):
        """The RLModuleSpec of one policy: the method's module, with the network of the settings."""
        from ray.rllib.core.rl_module.rl_module import RLModuleSpec

        c = self.config
        model_config = {"fcnet_hiddens": list(c.hidden), "fcnet_activation": c.activation, "vf_share_layers": False}
        if not self.discrete:
            from baselines.backends.rllib_gaussian_module import GaussianPPOTorchRLModule

            return RLModuleSpec(module_class=GaussianPPOTorchRLModule,
                                model_config={**model_config, "log_std_init": c.log_std_init})
        from baselines.backends.rllib_masking_module import MaskedPPOTorchRLModule

        return RLModuleSpec(module_class=MaskedPPOTorchRLModule, model_config={
            **model_config, "env_name": self.env_name, "mask_in_loss": self.method.mask_in_loss,
            "draw_actions": c.rllib_learner == "fast"})

    def _rllib_config(self):
        from ray.rllib.algorithms.ppo import PPOConfig
        from ray.rllib.core.rl_module.multi_rl_module import MultiRLModuleSpec
        from ray.rllib.core.rl_module.rl_module import RLModuleSpec
        from ray.tune.registry import register_env

        c = self.config
        spec = self.module_spec()
        runner: dict[str, Any] = {}
        if self.batched:
            from baselines.backends.rllib_batched_runner import BatchedEnvRunner

            observation_space, action_space = self.spaces
            environment = {"observation_space": observation_space, "action_space": action_space}
            runner = {"env_runner_cls": BatchedEnvRunner}
        else:  # RLlib 2.60 vectorises multi-agent envs only as a list of single envs ("sync")
            from baselines.backends.rllib_multi_agent import make_multi_agent_training_env

            register_env(MULTI_AGENT_TRAINING_ENV_ID, make_multi_agent_training_env)
            environment = {"env": MULTI_AGENT_TRAINING_ENV_ID}
            runner = {"gym_env_vectorize_mode": "sync"}
        lr = c.lr if c.lr_schedule == "constant" else [[0, c.lr], [self.budget, 0.0]]
        learner: dict[str, Any] = {}
        if self.batched and c.rllib_learner == "fast":  # the batch in bulk from the batched runner's episodes
            import functools

            from baselines.backends.rllib_fast_learner import PPOBatchFromEpisodes

            learner = {"learner_connector": functools.partial(PPOBatchFromEpisodes, gamma=c.gamma,
                                                              lambda_=c.gae_lambda),
                       "add_default_connectors_to_learner_pipeline": False}
        config = (
            PPOConfig()
            .api_stack(enable_rl_module_and_learner=True, enable_env_runner_and_connector_v2=True)
            .framework("torch")
            # Box actions: the Gaussian's samples, read as [-1, 1], are mapped to the space's bounds and
            # clipped there (RLlib's unsquash_action; the batched runner and evaluation use training_env.unsquash).
            .environment(**environment, env_config=self.context.as_dict(), normalize_actions=True,
                         clip_actions=False)
            .env_runners(num_env_runners=c.num_env_runners, num_envs_per_env_runner=c.num_envs_per_env_runner,
                         rollout_fragment_length="auto", num_cpus_per_env_runner=1, **runner)
            .learners(num_learners=0)
            .training(learner_class=learner_class(c.rllib_learner), lr=lr, gamma=c.gamma, lambda_=c.gae_lambda,
                      clip_param=c.clip_param,
                      vf_clip_param=c.vf_clip_param, entropy_coeff=c.entropy_coeff, vf_loss_coeff=c.vf_loss_coeff,
                      grad_clip=c.grad_clip, train_batch_size_per_learner=c.train_batch_size,
                      minibatch_size=c.minibatch_size, num_epochs=c.num_epochs, use_kl_loss=False, **learner)
            .debugging(seed=self.seed, log_level="ERROR")
            .reporting(metrics_num_episodes_for_smoothing=1)
        )
        if self.batched:
            return config.rl_module(rl_module_spec=spec)
        return (config.multi_agent(policies=set(self.module_ids), policy_mapping_fn=_map_to_own)
                .rl_module(rl_module_spec=MultiRLModuleSpec(rl_module_specs={
                    module_id: RLModuleSpec(module_class=spec.module_class, model_config=dict(spec.model_config))
                    for module_id in self.module_ids})))

    # ------------------------------------------------------------------ training

    def _drain_stats(self) -> list[dict[str, Any]]:
        """What every runner's training envs counted since the last drain (one dict per env)."""
        def drain(runner):
            if getattr(runner, "training_env", None) is not None:  # the batched runner
                return [runner.drain()]
            env = getattr(runner, "env", None)
            if env is not None and hasattr(env, "envs"):  # one module per agent: a list of MultiAgentTrainingEnv
                return [e.unwrapped.drain() for e in env.envs]
            return []

        return [part for parts in self.algo.env_runner_group.foreach_env_runner(drain, local_env_runner=True)
                for part in parts]

    def train_iteration(self) -> dict[str, float]:
        started = time.perf_counter()
        result = self.algo.train()
        parts = self._drain_stats()
        merged = merge_drains(parts)
        finished = merged["episodes"]
        agent_steps, invalid = merged["steps"], merged["invalid_steps"]
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
                            agent_ids=self.agent_ids if self.multi_agent else None,
                            violations=merged["violations"], violation_distance=merged["violation_distance"],
                            enforcement_seconds=sum(p["enforcement_seconds"] for p in parts))

    # ------------------------------------------------------------------ evaluation

    def module(self, module_id: str | None = None):
        """The trained torch module ``module_id`` (default: the only one; the local learner's copy), in eval mode."""
        module = self.algo.get_module(module_id or self.module_ids[0])
        module.eval()
        return module

    def dist_inputs(self, module):
        """``(observations, masked) -> (N, k)`` numpy distribution inputs of ``module`` (see
        :data:`baselines.evaluation.DistInputs`)."""
        transform = self.config.obs_transform
        masking = self.discrete and self.method.observes_mask

        @torch.no_grad()
        def dist_inputs(observations: dict[str, np.ndarray], masked: bool) -> np.ndarray:
            features = torch.from_numpy(transform_features(observations[OBSERVATION_KEY], transform))
            if masking and not masked:
                return module.unmasked_logits(features).numpy()
            obs = {OBSERVATION_KEY: features, MASK_KEY: torch.from_numpy(observations[MASK_KEY])} if masking \
                else features
            return module.forward_inference({"obs": obs})["action_dist_inputs"].numpy()

        return dist_inputs

    def eval_policies(self) -> dict[tuple[str, str], Policy]:
        """The method's policies (:func:`baselines.evaluation.network_policies`) of the module; with several
        agents, each agent plays its module's (:func:`baselines.evaluation.joint_policy`)."""
        per_module = {module_id: network_policies(self.method, self.action_space,
                                                  self.dist_inputs(self.module(module_id)))
                      for module_id in self.module_ids}
        if not self.multi_agent:
            return per_module[self.module_ids[0]]
        keys = per_module[self.module_ids[0]].keys()
        return {key: joint_policy([per_module[self.module_of(agent)][key] for agent in self.agent_ids])
                for key in keys}

    # ------------------------------------------------------------------ checkpoints

    def save(self, directory: Path) -> None:
        """RLlib's checkpoint (module, optimiser, connector and runner state, counters) and, with the batched
        runner, what it leaves out: every runner's training env and global generators and this process's
        (:meth:`BatchedEnvRunner.get_suite_state`), so a resumed run continues exactly where this one stood."""
        self.algo.save_to_path(str((directory / "rllib").resolve()))
        if self.batched:
            from baselines.backends.rllib_batched_runner import global_rng_state

            runners = self.algo.env_runner_group.foreach_env_runner(
                lambda runner: (runner.worker_index or 0, runner.get_suite_state()), local_env_runner=True)
            (directory / RUNNERS_FILE).write_bytes(pickle.dumps({"runners": dict(runners),
                                                                 "driver": global_rng_state()}))
        self.save_counters(directory)

    def restore(self, directory: Path) -> None:
        self.algo.restore_from_path(str((directory / "rllib").resolve()))
        if self.batched and (directory / RUNNERS_FILE).is_file():  # older checkpoints restart the envs afresh
            from baselines.backends.rllib_batched_runner import set_global_rng_state

            saved = pickle.loads((directory / RUNNERS_FILE).read_bytes())
            runners = saved["runners"]
            self.algo.env_runner_group.foreach_env_runner(
                lambda runner: runner.set_suite_state(runners.get(runner.worker_index or 0)), local_env_runner=True)
            set_global_rng_state(saved["driver"])
        self.restore_counters(directory)

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

