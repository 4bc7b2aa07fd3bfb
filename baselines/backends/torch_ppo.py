"""The single-process torch backend: PPO with a method in one process (``--backend torch``).

Why it exists: it is PPO as one plain loop a reader can follow top to bottom (one forward pass per
step of all ``num_envs_per_env_runner`` entries and their agents, PPO epochs over the flat batch), with
nothing between the arithmetic and the machine: the learner-alone ceiling of the speed benchmarks is
its update (tests/benchmarks/test_train_speed.py, docs/benchmarks.md has both backends' shares of it).
RLlib stays the default, and the way to use more than one machine.

What is shared with the RLlib backend, so the two are one algorithm (and neither inherits from the
other):

- the method (:mod:`baselines.method`) and the settings (:mod:`baselines.settings`, per-env defaults
  included) and their checks;
- the training env: :class:`baselines.training_env.MultiAgentTrainingVector`, the per-agent steps of
  RLlib's training envs (statistics in the env's own reward, observation transform, mask, learning
  reward) over the suite's natively batched env, with next-step autoreset; one agent is the case
  k = 1, and several agents share one network or have one each (``policies``), as on RLlib's
  multi-agent API, but all ``num_envs x n_agents`` of them are sampled in one forward pass;
- the masking: :func:`baselines.masked_logits.apply_mask` on the policy's logits, in sampling
  and in the loss (naive masking: in sampling only), exactly as in the RLlib masking module; Box
  actions: RLlib's default diagonal Gaussian with its ``log_std_init`` shift and unsquashing
  (:mod:`baselines.backends.torch_policy_heads`);
- evaluation (:func:`baselines.evaluation.network_policies`) and the results files.

The algorithm is PPO with the clipped surrogate, GAE, a separate policy and value network of
``hidden`` sizes (orthogonal initialisation as in CleanRL and Stable-Baselines3), advantages
normalised per minibatch, the value loss clipped at ``vf_clip_param`` (RLlib's meaning), Adam
(eps 1e-5, the fused implementation) with global gradient-norm clipping. Steps that only reset an
entry (next-step autoreset) are left out of the loss; truncated episodes bootstrap from the value
of their last observation, and so are the steps of an agent that has left its episode while the
others play on.

A method whose objective is not PPO's plugs in through one extension point,
:class:`baselines.objective.Objective`: critics of the signals it names, their GAE and value losses here,
and its hooks for each step's signals, the advantages the policy learns from, and its state.
"""

from __future__ import annotations

import math
import pickle
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from baselines.algorithm import Algorithm, Policy, derived_seed
from baselines.backends.torch_entry_network import EntryActorCritic, mlp
from baselines.backends.torch_policy_heads import make_head
from baselines.episodes import progress_row
from baselines.evaluation import joint_policy, network_policies
from baselines.objective import Objective
from baselines.settings import PPOSettings, check_network_fits, check_settings, learning_rate
from baselines.training_env import (
    MultiAgentTrainingVector,
    TrainingContext,
    transform_features,
)
from envs.config import ConfigError
from envs.masking import MASK_KEY, OBSERVATION_KEY

__all__ = ["ActorCritic", "TorchPPO", "advantages"]

#: The training env in a checkpoint (pickled: numpy state and generators).
TRAINING_ENV_FILE = "training_env.pkl"
#: The ``network`` settings this backend builds.
NETWORKS = ("mlp", "per_entry")


class ActorCritic(nn.Module):
    """Separate policy (distribution inputs) and value networks over the observation features, and a critic
    of each of the objective's ``signals`` (:class:`baselines.objective.Objective`), ``<signal>_value``."""

    def __init__(self, n_features: int, n_outputs: int, hidden: tuple[int, ...], activation: str,
                 signals: tuple[str, ...] = ()):
        super().__init__()
        self.policy = mlp(n_features, hidden, n_outputs, activation, out_gain=0.01)
        self.value = mlp(n_features, hidden, 1, activation, out_gain=1.0)
        for signal in signals:  # an attribute each (not a ModuleDict), the parameter names of older checkpoints
            self.add_module(f"{signal}_value", mlp(n_features, hidden, 1, activation, out_gain=1.0))

    def critic(self, signal: str) -> nn.Module:
        """The value network of ``signal``."""
        return self.get_submodule(f"{signal}_value")

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
    """PPO with ``method`` in one process (see the module docstring).

    Every env is sampled as ``envs.make_multi_agent_vector`` (through
    :class:`baselines.training_env.MultiAgentTrainingVector`), one agent being the case k = 1, and a
    rollout is ``(steps, num_envs * n_agents)`` rows, agent ``j`` of entry ``i`` in column
    ``i * n_agents + j``. Steps in which an agent does not act (it has left the episode, or its
    entry is resetting) are left out of the loss. With ``policies=shared`` (the default) one network
    acts for every agent and learns from all their steps; with ``policies=per_agent`` agent ``j``
    has network ``j``, learning from its own steps only, as RLlib's multi-agent API does.
    """

    config: PPOSettings

    def __init__(self, env_name: str, env_config: dict[str, Any], config: PPOSettings, seed: int, *, method,
                 address: str | None = None, budget: int | None = None):
        super().__init__(env_name, env_config, config, seed, budget=budget)
        import envs

        self.method = method
        self.context = TrainingContext.of_run(env_name, env_config, method, config)
        core = envs.make_core(env_name, 1, **self.context.env_config)
        self.action_space = core.action_space
        self.agent_ids = list(core.agent_ids)
        check_settings(config, budget)
        check_network_fits(config, core, networks=NETWORKS)
        method.check(env_name, env_config, "torch", core=core)  # the training env's core: same agents and spaces
        c = config
        if getattr(c, "num_env_runners", 0):  # a method that may run on RLlib has the setting
            raise ConfigError(f"algo config: backend=torch samples in one process; num_env_runners must be 0, "
                              f"got {c.num_env_runners}")
        if c.train_batch_size % c.num_envs_per_env_runner:
            raise ConfigError(f"algo config: backend=torch needs train_batch_size ({c.train_batch_size}) to be a "
                              f"multiple of num_envs_per_env_runner ({c.num_envs_per_env_runner})")
        #: How the policy's outputs become actions: masked categoricals, a Gaussian or a Dirichlet (Box actions).
        self.head = make_head(method, core, env_name, c, seed)
        #: The method's addition to PPO's objective, if any, and the signals it learns critics of.
        self.objective: Objective | None = method.objective(c) if method.objective else None
        self.signals = self.objective.signals if self.objective else ()
        self.n_agents = len(self.agent_ids)
        self.env = MultiAgentTrainingVector(self.context, c.num_envs_per_env_runner)
        #: The network that acts for agent j: ``self.models[self.model_of[j]]``.
        self.model_of = [j if c.policies == "per_agent" else 0 for j in range(self.n_agents)]
        n_features = int(np.prod(core.feature_space.shape))
        with torch.random.fork_rng():
            torch.manual_seed(derived_seed(seed, "policy"))
            self.models = nn.ModuleList([self._network(core, n_features) for _ in range(max(self.model_of) + 1)])
        self.optimizers = [torch.optim.Adam(model.parameters(), lr=c.lr, eps=1e-5, fused=True)  # fused: 15% faster
                           for model in self.models]
        self.generator = torch.Generator().manual_seed(derived_seed(seed, "sampling"))
        self._obs, _ = self.env.reset(seed=derived_seed(seed, "env"))
        #: Each signal's sum so far in the episode of each column.
        self._episode_sums = {signal: np.zeros(c.num_envs_per_env_runner * self.n_agents) for signal in self.signals}

    def _network(self, core, n_features: int) -> nn.Module:
        """One actor-critic of the config's ``network``: the MLP over all features, or the per-entry network."""
        c = self.config
        if c.network == "per_entry":
            return EntryActorCritic(core.entry_features(), self.head.n_outputs, c.hidden, c.activation, self.signals)
        return ActorCritic(n_features, self.head.n_outputs, c.hidden, c.activation, self.signals)

    @classmethod
    def incompatibility_with(cls, method, env_name: str, core) -> str | None:
        """Nothing: every action space and method the suite has (discrete and Box) runs here."""
        return None

    # ------------------------------------------------------------------ acting

    def _split(self, obs) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The ``(num_envs * n_agents, ...)`` features (already transformed by the training env) and the
        mask, if the agent sees it (the training env admits everything for agents that will not act)."""
        if not isinstance(obs, dict):
            return torch.from_numpy(obs).flatten(0, 1), None
        return torch.from_numpy(obs[OBSERVATION_KEY]).flatten(0, 1), torch.from_numpy(obs[MASK_KEY]).flatten(0, 1)

    def _forward(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Logits and values of ``(num_envs * n_agents, ...)`` rows, each agent's through its network."""
        if len(self.models) == 1:
            return self.models[0](features)
        per_agent = features.unflatten(0, (-1, self.n_agents))
        outputs = [self.models[self.model_of[j]](per_agent[:, j]) for j in range(self.n_agents)]
        return (torch.stack([logits for logits, _ in outputs], dim=1).flatten(0, 1),
                torch.stack([value for _, value in outputs], dim=1).flatten(0, 1))

    def _critic_values(self, signal: str, features: torch.Tensor) -> torch.Tensor:
        """``signal``'s critics' values of ``(num_envs * n_agents, ...)`` rows, each agent's through its network."""
        per_agent = features.unflatten(0, (-1, self.n_agents))
        return torch.stack([self.models[self.model_of[j]].critic(signal)(per_agent[:, j])[..., 0]
                            for j in range(self.n_agents)], dim=1).flatten(0, 1)

    def _rollout(self) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
        """One rollout as flat rows (steps that only reset an entry left out), with each signal's GAE in
        ``<signal>_advantages`` and ``<signal>_returns``; and each signal's sums over the episodes that ended."""
        c = self.config
        n, k = c.num_envs_per_env_runner, self.n_agents
        steps = c.train_batch_size // n
        features, masks, actions, log_probs = [], [], [], []
        values = np.zeros((steps + 1, n * k), dtype=np.float32)
        rewards = np.zeros((steps, n * k), dtype=np.float32)
        terminated = np.zeros((steps, n * k), dtype=bool)
        truncated = np.zeros((steps, n * k), dtype=bool)
        real = np.zeros((steps, n * k), dtype=bool)
        signals = {signal: np.zeros((steps, n * k), dtype=np.float32) for signal in self.signals}
        signal_values = {signal: np.zeros((steps + 1, n * k), dtype=np.float32) for signal in self.signals}
        episode_sums: dict[str, list[float]] = {signal: [] for signal in self.signals}
        with torch.no_grad():
            for t in range(steps):
                feats, mask = self._split(self._obs)
                out, value = self._forward(feats)
                action, log_prob = self.head.sample(out, mask, self.generator)
                features.append(feats)
                masks.append(mask)
                actions.append(action)
                log_probs.append(log_prob)
                values[t] = value.numpy()
                for signal in self.signals:
                    signal_values[signal][t] = self._critic_values(signal, feats).numpy()
                env_action = self.head.env_actions(action)
                self._obs, reward, done, cut, info = self.env.step(env_action.reshape(n, k, *env_action.shape[1:]))
                rewards[t], terminated[t], truncated[t] = reward.reshape(-1), done.reshape(-1), cut.reshape(-1)
                real[t] = self.env.acted.reshape(-1)
                if self.signals:  # each signal of this step, and its sum over each episode that ended
                    step_signals = self.objective.step_signals(info)
                    ended = (terminated[t] | truncated[t]) & real[t]
                    for signal in self.signals:
                        signals[signal][t] = step_signals[signal].reshape(-1) * real[t]
                        self._episode_sums[signal] += signals[signal][t]
                        episode_sums[signal] += self._episode_sums[signal][ended].tolist()
                        self._episode_sums[signal][ended] = 0.0
            last = self._split(self._obs)[0]
            values[steps] = self._forward(last)[1].numpy()
            for signal in self.signals:
                signal_values[signal][steps] = self._critic_values(signal, last).numpy()
        adv = advantages(rewards, values, terminated, truncated, real, c.gamma, c.gae_lambda)
        keep = torch.from_numpy(real.reshape(-1))
        flat = {"features": torch.stack(features).flatten(0, 1)[keep],
                "actions": torch.stack(actions).flatten(0, 1)[keep],
                "log_probs": torch.stack(log_probs).flatten(0, 1)[keep],
                "advantages": torch.from_numpy(adv.reshape(-1))[keep],
                "returns": torch.from_numpy((adv + values[:steps]).reshape(-1))[keep],
                "values": torch.from_numpy(values[:steps].reshape(-1))[keep],
                "agents": torch.arange(k).repeat(steps * n)[keep]}
        if masks[0] is not None:
            flat["masks"] = torch.stack(masks).flatten(0, 1)[keep]
        for signal in self.signals:
            signal_adv = advantages(signals[signal], signal_values[signal], terminated, truncated, real, c.gamma,
                                    c.gae_lambda)
            flat[f"{signal}_advantages"] = torch.from_numpy(signal_adv.reshape(-1))[keep]
            flat[f"{signal}_returns"] = torch.from_numpy((signal_adv + signal_values[signal][:steps]).reshape(-1))[keep]
        return flat, {signal: torch.tensor(sums, dtype=torch.float64) for signal, sums in episode_sums.items()}

    # ------------------------------------------------------------------ learning

    def _learn(self, batch: dict[str, torch.Tensor]) -> dict[str, float]:
        """PPO epochs for each network over the rows of the agents it acts for."""
        if len(self.models) == 1:
            parts = [(self.models[0], self.optimizers[0], batch)]
        else:
            owner = torch.tensor(self.model_of)[batch["agents"]]
            parts = [(model, optimizer, {key: value[owner == m] for key, value in batch.items()})
                     for m, (model, optimizer) in enumerate(zip(self.models, self.optimizers))]
        c = self.config
        lr = learning_rate(c, self.env_steps, self.budget)
        totals = {"policy_loss": 0.0, "vf_loss": 0.0, "entropy": 0.0,
                  **{f"{signal}_vf_loss": 0.0 for signal in self.signals}}
        updates = 0
        for model, optimizer, rows in parts:
            for group in optimizer.param_groups:
                group["lr"] = lr
            size = len(rows["actions"])
            for _ in range(c.num_epochs):
                order = torch.randperm(size, generator=self.generator)
                for start in range(0, size, c.minibatch_size):
                    index = order[start:start + c.minibatch_size]
                    out, value = model(rows["features"][index])
                    mask = rows["masks"][index] if "masks" in rows else None
                    log_prob, entropy = self.head.log_prob_and_entropy(out, mask, rows["actions"][index])
                    adv = rows["advantages"][index]
                    adv = (adv - adv.mean()) / (adv.std() + 1e-8) if len(index) > 1 else adv
                    ratio = torch.exp(log_prob - rows["log_probs"][index])
                    policy_loss = -torch.min(ratio * adv,
                                             ratio.clamp(1 - c.clip_param, 1 + c.clip_param) * adv).mean()
                    vf_loss = (value - rows["returns"][index]).pow(2).clamp(max=c.vf_clip_param).mean()
                    loss = policy_loss + c.vf_loss_coeff * vf_loss - c.entropy_coeff * entropy.mean()
                    for signal in self.signals:  # each critic learns beside the value network, with the same weight
                        signal_value = model.critic(signal)(rows["features"][index])[..., 0]
                        signal_vf_loss = (signal_value - rows[f"{signal}_returns"][index]).pow(2) \
                            .clamp(max=c.vf_clip_param)
                        loss = loss + c.vf_loss_coeff * signal_vf_loss.mean()
                        totals[f"{signal}_vf_loss"] += signal_vf_loss.mean().item()
                    optimizer.zero_grad(set_to_none=True)
                    loss.backward()
                    nn.utils.clip_grad_norm_(model.parameters(), c.grad_clip)
                    optimizer.step()
                    totals["policy_loss"] += policy_loss.item()
                    totals["vf_loss"] += vf_loss.item()
                    totals["entropy"] += entropy.mean().item()
                    updates += 1
        returns, values = batch["returns"], batch["values"]
        explained = 1 - float((returns - values).var() / returns.var()) if returns.var() > 0 else math.nan
        return {**{k: v / max(updates, 1) for k, v in totals.items()}, "vf_explained_var": explained, "lr": lr}

    def train_iteration(self) -> dict[str, float]:
        started = time.perf_counter()
        batch, episode_sums = self._rollout()
        objective_columns = {}
        if self.objective is not None:  # the method's advantages, before the update
            signal_advantages = {signal: batch.pop(f"{signal}_advantages") for signal in self.signals}
            batch["advantages"], objective_columns = self.objective.policy_advantages(
                batch["advantages"], signal_advantages, episode_sums)
        learner = {**self._learn(batch), **objective_columns}
        stats = self.env.drain()
        self.env_steps += stats["env_steps"]
        self.episodes += len(stats["episodes"])
        several = self.n_agents > 1
        return progress_row(env_steps=self.env_steps, episodes=self.episodes, steps=stats["env_steps"],
                            invalid_steps=stats["invalid_steps"], finished=stats["episodes"],
                            seconds=time.perf_counter() - started, learner=learner,
                            agent_steps=stats["steps"] if several else None,
                            agent_ids=self.agent_ids if several else None, violations=stats["violations"],
                            violation_distance=stats["violation_distance"],
                            enforcement_seconds=stats["enforcement_seconds"])

    # ------------------------------------------------------------------ evaluation

    def dist_inputs(self, model: ActorCritic):
        """``(observations, masked) -> (N, k)`` numpy distribution inputs of ``model``'s policy: logits,
        masked or not, or a Gaussian's mean and log std (see :data:`baselines.evaluation.DistInputs`)."""
        transform = self.context.obs_transform

        @torch.no_grad()
        def inputs(observations: dict[str, np.ndarray], masked: bool) -> np.ndarray:
            out = model.policy(torch.from_numpy(transform_features(observations[OBSERVATION_KEY], transform)))
            mask = torch.from_numpy(observations[MASK_KEY]) if masked and MASK_KEY in observations else None
            return self.head.dist_inputs(out, mask)

        return inputs

    def eval_policies(self) -> dict[tuple[str, str], Policy]:
        """The method's policies (:func:`baselines.evaluation.network_policies`); with several agents, each
        agent plays its network's (:func:`baselines.evaluation.joint_policy`)."""
        per_model = [network_policies(self.method, self.action_space, self.dist_inputs(model)) for model in self.models]
        if self.n_agents == 1:
            return per_model[0]
        return {key: joint_policy([per_model[m][key] for m in self.model_of]) for key in per_model[0]}

    # ------------------------------------------------------------------ checkpoints

    def save(self, directory: Path) -> None:
        """Networks, optimisers, the sampling generator, the objective's state and the training env as it is (its
        entries' states and generators, the observation it last gave, the episodes in flight and their statistics
        and signal sums), so a resumed run continues exactly where this one stood."""
        torch.save({"models": [model.state_dict() for model in self.models],
                    "optimizers": [optimizer.state_dict() for optimizer in self.optimizers],
                    "generator": self.generator.get_state(),
                    **({self.objective.name: self.objective.state_dict()} if self.objective else {})},
                   directory / "torch_ppo.pt")
        (directory / TRAINING_ENV_FILE).write_bytes(pickle.dumps({
            "env": self.env, "obs": self._obs, "head": self.head,
            **{f"episode_{signal}": sums for signal, sums in self._episode_sums.items()}}))
        self.save_counters(directory)

    def restore(self, directory: Path) -> None:
        state = torch.load(directory / "torch_ppo.pt", weights_only=True)
        if "model" in state:  # a checkpoint of one network, before networks per agent
            state = {**state, "models": [state["model"]], "optimizers": [state["optimizer"]]}
        for model, optimizer, weights, moments in zip(self.models, self.optimizers, state["models"],
                                                      state["optimizers"], strict=True):
            model.load_state_dict(weights)
            optimizer.load_state_dict(moments)
        self.generator.set_state(state["generator"])
        if self.objective is not None:
            self.objective.load_state_dict(state[self.objective.name])
        if (directory / TRAINING_ENV_FILE).is_file():  # older checkpoints restart the env from its seed
            saved = pickle.loads((directory / TRAINING_ENV_FILE).read_bytes())
            self.env.close()
            self.env, self._obs = saved["env"], saved["obs"]
            self.head = saved.get("head", self.head)  # a Dirichlet's sampling generator
            self._episode_sums = {signal: saved.get(f"episode_{signal}", sums)
                                  for signal, sums in self._episode_sums.items()}
        self.restore_counters(directory)

    def close(self) -> None:
        self.env.close()
