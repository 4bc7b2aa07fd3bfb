"""The single-process torch backend of masked and penalty PPO (``--backend torch``).

Why it exists: on one small machine RLlib's per-iteration machinery (EnvRunner, connectors,
episode objects, the Learner's batch pipeline) costs more than the PPO arithmetic itself. On
portfolio with the default settings RLlib samples and learns about 3,000 env steps/s on 2 cores,
below sb3-contrib's MaskablePPO at the same settings; this backend runs the same algorithm as a
plain batched loop (one forward pass per step of all ``num_envs_per_env_runner`` entries, PPO
epochs over the flat batch) and is several times faster. RLlib stays the default, and the way to
use more than one machine.

What is shared, so the two backends are one algorithm:

- the settings (:class:`baselines.ppo.PPOSettings`, per-env defaults included) and their checks;
- the training env: :func:`baselines.rllib_env.make_training_env`, the same wrapper chain
  (statistics in the env's own reward, observation transform, penalty, reward scale) over the
  suite's natively batched env, with next-step autoreset;
- the masking: :func:`baselines.masked_logits.apply_mask` on the policy's logits, in sampling
  and in the loss, exactly as in masked PPO's RLlib module;
- evaluation (the same policies) and the results files.

The algorithm is PPO with the clipped surrogate, GAE, a separate policy and value network of
``hidden`` sizes (orthogonal initialisation as in CleanRL and Stable-Baselines3), advantages
normalised per minibatch, the value loss clipped at ``vf_clip_param`` (RLlib's meaning), Adam
(eps 1e-5, the fused implementation) with global gradient-norm clipping. Steps that only reset an
entry (next-step autoreset) are left out of the loss; truncated episodes bootstrap from the value
of their last observation. Discrete envs only (continuous ones: ``backend=rllib``).
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from baselines.base import Algorithm, Policy, derived_seed
from baselines.masked_logits import apply_mask, log_prob_and_entropy, sample_with_log_prob
from baselines.masked_ppo import MaskedPPO
from baselines.penalty_ppo import PenaltyPPO
from baselines.ppo import PPOSettings, RLlibPPO
from baselines.rllib_env import TrainingStats, find_wrapper, make_training_env
from envs.config import ConfigError
from envs.masking import MASK_KEY, OBSERVATION_KEY, action_nvec

__all__ = ["ActorCritic", "TorchPPO", "TorchMaskedPPO", "TorchPenaltyPPO", "torch_backend_of"]

_ACTIVATIONS = {"tanh": nn.Tanh, "relu": nn.ReLU, "silu": nn.SiLU}


def _mlp(n_in: int, hidden: tuple[int, ...], n_out: int, activation: str, out_gain: float) -> nn.Sequential:
    layers: list[nn.Module] = []
    for size in hidden:
        linear = nn.Linear(n_in, size)
        nn.init.orthogonal_(linear.weight, math.sqrt(2))
        nn.init.zeros_(linear.bias)
        layers += [linear, _ACTIVATIONS[activation]()]
        n_in = size
    head = nn.Linear(n_in, n_out)
    nn.init.orthogonal_(head.weight, out_gain)
    nn.init.zeros_(head.bias)
    return nn.Sequential(*layers, head)


class ActorCritic(nn.Module):
    """Separate policy (logits) and value networks over the observation features."""

    def __init__(self, n_features: int, n_logits: int, hidden: tuple[int, ...], activation: str):
        super().__init__()
        self.policy = _mlp(n_features, hidden, n_logits, activation, out_gain=0.01)
        self.value = _mlp(n_features, hidden, 1, activation, out_gain=1.0)

    def forward(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.policy(features), self.value(features)[..., 0]


def advantages(rewards: np.ndarray, values: np.ndarray, terminated: np.ndarray, truncated: np.ndarray,
               real: np.ndarray, gamma: float, lam: float) -> np.ndarray:
    """GAE over a ``(T, N)`` rollout of a next-step-autoreset env; ``values`` is ``(T + 1, N)``.

    ``real[t]`` is False for steps that only reset an entry: they get advantage 0 and cut the
    recursion. A step that ends an episode bootstraps from ``values[t + 1]``, the value of its
    last observation, unless terminated (then 0); the recursion does not cross it.
    """
    T = len(rewards)
    out = np.zeros_like(rewards)
    running = np.zeros(rewards.shape[1])
    for t in range(T - 1, -1, -1):
        delta = rewards[t] + gamma * values[t + 1] * ~terminated[t] - values[t]
        running = np.where(real[t], delta + gamma * lam * ~(terminated[t] | truncated[t]) * running, 0.0)
        out[t] = running
    return out


class TorchPPO(Algorithm):
    """Masked or penalty PPO in one process (mixed into :class:`TorchMaskedPPO`, :class:`TorchPenaltyPPO`).

    Reuses the RLlib class's non-RLlib parts through the MRO: config checks, the env context,
    feature transform and evaluation policies built from logits.
    """

    config: PPOSettings

    def __init__(self, env_name: str, env_config: dict[str, Any], config: PPOSettings, seed: int, *,
                 address: str | None = None, budget: int | None = None):
        Algorithm.__init__(self, env_name, env_config, config, seed, budget=budget)
        import envs
        from envs.config import parse_assignments

        self.train_env_config = envs.config_dict(
            env_name, {**env_config, **parse_assignments(config.train_env_config, what="train_env_config")})
        core = envs.make_core(env_name, 1, **self.train_env_config)
        self.action_space = core.action_space
        self.agent_ids = list(core.agent_ids)
        self._validate()
        name = "masked_ppo" if self.masked else "penalty_ppo"
        if not core.discrete:
            raise ConfigError(f"{name} backend=torch is for discrete actions; env {env_name!r} has "
                              f"{core.action_space}: use backend=rllib")
        if core.n_agents != 1:
            raise ConfigError(f"{name} backend=torch trains one agent; n_agents={core.n_agents} trains on "
                              f"backend=rllib (RLlib's multi-agent API)")
        c = config
        if c.num_env_runners:
            raise ConfigError(f"algo config: backend=torch samples in one process; num_env_runners must be 0, "
                              f"got {c.num_env_runners}")
        if c.train_batch_size % c.num_envs_per_env_runner:
            raise ConfigError(f"algo config: backend=torch needs train_batch_size ({c.train_batch_size}) to be a "
                              f"multiple of num_envs_per_env_runner ({c.num_envs_per_env_runner})")
        self.nvec = [int(n) for n in action_nvec(self.action_space)]
        self.env = make_training_env({**self.env_context(), "num_envs": c.num_envs_per_env_runner})
        self.stats = find_wrapper(self.env, TrainingStats)
        n_features = int(np.prod(core.feature_space.shape))
        with torch.random.fork_rng():
            torch.manual_seed(derived_seed(seed, "policy"))
            self.model = ActorCritic(n_features, sum(self.nvec), c.hidden, c.activation)
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=c.lr, eps=1e-5, fused=True)  # fused: 15% faster here
        self.generator = torch.Generator().manual_seed(derived_seed(seed, "sampling"))
        self._obs, _ = self.env.reset(seed=derived_seed(seed, "env"))
        self._resetting = np.zeros(c.num_envs_per_env_runner, dtype=bool)
        self.env_steps = 0
        self.episodes = 0

    # ------------------------------------------------------------------ acting

    def _split(self, obs) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The features (already transformed by the training env) and the mask, if the agent sees it."""
        if isinstance(obs, dict):
            return torch.from_numpy(obs[OBSERVATION_KEY]), torch.from_numpy(obs[MASK_KEY])
        return torch.from_numpy(obs), None

    def _logits(self, logits: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        return logits if mask is None else apply_mask(logits, mask, self.nvec, self.env_name)

    def _rollout(self) -> dict[str, np.ndarray | torch.Tensor]:
        c = self.config
        n, steps = c.num_envs_per_env_runner, c.train_batch_size // c.num_envs_per_env_runner
        features, masks, actions, log_probs = [], [], [], []
        values = np.zeros((steps + 1, n), dtype=np.float32)
        rewards = np.zeros((steps, n), dtype=np.float32)
        terminated = np.zeros((steps, n), dtype=bool)
        truncated = np.zeros((steps, n), dtype=bool)
        real = np.zeros((steps, n), dtype=bool)
        single = len(self.nvec) == 1 and not hasattr(self.action_space, "nvec")
        with torch.no_grad():
            for t in range(steps):
                feats, mask = self._split(self._obs)
                logits, value = self.model(feats)
                action, log_prob = sample_with_log_prob(self._logits(logits, mask), self.nvec, self.generator)
                features.append(feats)
                masks.append(mask)
                actions.append(action)
                log_probs.append(log_prob)
                values[t] = value.numpy()
                env_action = action.numpy()
                self._obs, reward, terminated[t], truncated[t], _ = self.env.step(
                    env_action[:, 0] if single else env_action)
                rewards[t] = reward
                real[t] = ~self._resetting
                self._resetting = terminated[t] | truncated[t]
            values[steps] = self.model(self._split(self._obs)[0])[1].numpy()
        adv = advantages(rewards, values, terminated, truncated, real, c.gamma, c.gae_lambda)
        keep = torch.from_numpy(real.reshape(-1))
        flat = {"features": torch.stack(features).flatten(0, 1)[keep],
                "actions": torch.stack(actions).flatten(0, 1)[keep],
                "log_probs": torch.stack(log_probs).flatten(0, 1)[keep],
                "advantages": torch.from_numpy(adv.reshape(-1))[keep],
                "returns": torch.from_numpy((adv + values[:steps]).reshape(-1))[keep],
                "values": torch.from_numpy(values[:steps].reshape(-1))[keep]}
        if masks[0] is not None:
            flat["masks"] = torch.stack(masks).flatten(0, 1)[keep]
        return flat

    # ------------------------------------------------------------------ learning

    def _learning_rate(self) -> float:
        c = self.config
        return c.lr if c.lr_schedule == "constant" else c.lr * max(0.0, 1.0 - self.env_steps / self.budget)

    def _learn(self, batch: dict[str, torch.Tensor]) -> dict[str, float]:
        c = self.config
        lr = self._learning_rate()
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        size = len(batch["actions"])
        totals = {"policy_loss": 0.0, "vf_loss": 0.0, "entropy": 0.0}
        updates = 0
        for _ in range(c.num_epochs):
            order = torch.randperm(size, generator=self.generator)
            for start in range(0, size, c.minibatch_size):
                index = order[start:start + c.minibatch_size]
                logits, value = self.model(batch["features"][index])
                logits = self._logits(logits, batch["masks"][index] if "masks" in batch else None)
                log_prob, entropy = log_prob_and_entropy(logits, batch["actions"][index], self.nvec)
                adv = batch["advantages"][index]
                adv = (adv - adv.mean()) / (adv.std() + 1e-8) if len(index) > 1 else adv
                ratio = torch.exp(log_prob - batch["log_probs"][index])
                policy_loss = -torch.min(ratio * adv, ratio.clamp(1 - c.clip_param, 1 + c.clip_param) * adv).mean()
                vf_loss = (value - batch["returns"][index]).pow(2).clamp(max=c.vf_clip_param).mean()
                loss = policy_loss + c.vf_loss_coeff * vf_loss - c.entropy_coeff * entropy.mean()
                self.optimizer.zero_grad(set_to_none=True)
                loss.backward()
                nn.utils.clip_grad_norm_(self.model.parameters(), c.grad_clip)
                self.optimizer.step()
                totals["policy_loss"] += policy_loss.item()
                totals["vf_loss"] += vf_loss.item()
                totals["entropy"] += entropy.mean().item()
                updates += 1
        returns, values = batch["returns"], batch["values"]
        explained = 1 - float((returns - values).var() / returns.var()) if returns.var() > 0 else math.nan
        return {**{k: v / max(updates, 1) for k, v in totals.items()}, "vf_explained_var": explained, "lr": lr}

    def train_iteration(self) -> dict[str, float]:
        from baselines.rollout import progress_row

        started = time.perf_counter()
        batch = self._rollout()
        learner = self._learn(batch)
        stats = self.stats.drain()
        self.env_steps += stats["steps"]
        self.episodes += len(stats["episodes"])
        return progress_row(env_steps=self.env_steps, episodes=self.episodes, steps=stats["steps"],
                            invalid_steps=stats["invalid_steps"], finished=stats["episodes"],
                            seconds=time.perf_counter() - started, learner=learner)

    # ------------------------------------------------------------------ evaluation

    def logits_of(self, masked: bool):
        """``observations -> (N, sum(nvec))`` numpy logits of the policy, masked or not."""

        @torch.no_grad()
        def logits(observations: dict[str, np.ndarray]) -> np.ndarray:
            out = self.model.policy(self.features(observations))
            mask = torch.from_numpy(observations[MASK_KEY]) if masked else None
            return self._logits(out, mask).numpy()

        return logits

    def eval_policies(self) -> dict[tuple[str, str], Policy]:
        masks = (True, False) if self.masked else (False,)
        return {(policy, "on" if masked else "off"): self.module_policy(self.logits_of(masked),
                                                                        stochastic=policy == "stochastic")
                for masked in masks for policy in ("greedy", "stochastic")}

    # ------------------------------------------------------------------ checkpoints

    def save(self, directory: Path) -> None:
        torch.save({"model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
                    "generator": self.generator.get_state()}, directory / "torch_ppo.pt")
        (directory / "counters.json").write_text(json.dumps({"env_steps": self.env_steps, "episodes": self.episodes}))

    def restore(self, directory: Path) -> None:
        state = torch.load(directory / "torch_ppo.pt", weights_only=True)
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.generator.set_state(state["generator"])
        counters = json.loads((directory / "counters.json").read_text())
        self.env_steps, self.episodes = counters["env_steps"], counters["episodes"]

    def close(self) -> None:
        self.env.close()


class TorchMaskedPPO(TorchPPO, MaskedPPO):
    """``masked_ppo`` with ``backend=torch``."""


class TorchPenaltyPPO(TorchPPO, PenaltyPPO):
    """``penalty_ppo`` with ``backend=torch``."""


_BACKENDS: dict[type, type] = {MaskedPPO: TorchMaskedPPO, PenaltyPPO: TorchPenaltyPPO}


def torch_backend_of(rllib_cls: type[RLlibPPO]) -> type[Algorithm]:
    """The torch implementation of an RLlib PPO algo; a one-line ConfigError for the others."""
    for base in rllib_cls.__mro__:
        if base in _BACKENDS:
            return _BACKENDS[base]
    raise ConfigError(f"backend=torch is available for masked_ppo and penalty_ppo, not for {rllib_cls.__name__}; "
                      f"use backend=rllib")
