"""Evaluation: episodes on fixed seeds, and the evaluated policies built from a network's outputs.

:func:`evaluate` plays a :data:`~baselines.algorithm.Policy` on evaluation episodes, batched, one
record per episode (and agent). :func:`network_policies` turns a trained network, whatever its
backend, into the policies a method evaluates (greedy and stochastic, with its handling of the
constraint on and/or off): every backend evaluates through it, so "greedy, mask off" means the same
thing on RLlib, the torch loop and sb3-contrib. Torch is imported only when a network's categorical
policy acts (:func:`choose_actions`); the references evaluate without it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from gymnasium import spaces

import envs
from baselines.algorithm import Policy
from baselines.episodes import EpisodeTracker
from baselines.training_env import agent_action_space, env_actions, unsquash
from envs.masking import MASK_KEY, action_nvec, admit_all_unless, is_discrete

__all__ = ["evaluate", "joint_policy", "choose_actions", "logit_policy", "gaussian_policy", "dirichlet_policy",
           "network_policies",
           "POLICIES"]

#: The evaluated ways of acting from a network: its most likely action, and a sample.
POLICIES = ("greedy", "stochastic")

#: ``dist_inputs(observations, masked) -> (N, k)`` numpy: a network's distribution inputs on one agent's
#: ``(N, ...)`` observations (discrete: flat logits, masked or not; Box: Gaussian mean and log std, or
#: Dirichlet concentrations).
DistInputs = Callable[[dict[str, np.ndarray], bool], np.ndarray]


def choose_actions(logits: np.ndarray, nvec: Sequence[int], rng: np.random.Generator | None) -> np.ndarray:
    """One value per sub-action from flat ``(N, sum(nvec))`` logits: ``(N, len(nvec))``.

    ``rng`` given: a sample of each block's categorical (Gumbel-max on uniforms from ``rng``, so the draw
    depends only on ``rng``); ``rng=None``: the most likely value of each block (greedy). The choice is the
    suite's one masked categorical's (:func:`baselines.masked_logits.choose`; torch is imported here, when
    a network's policy first acts, so that evaluating the references needs none).
    """
    import torch

    from baselines.masked_logits import choose

    uniform = None if rng is None else torch.from_numpy(rng.uniform(np.finfo(np.float64).tiny, 1.0, size=logits.shape))
    return choose(torch.from_numpy(np.asarray(logits)), nvec, uniform).numpy()


def logit_policy(logits_of: Callable[[dict[str, np.ndarray]], np.ndarray], action_space: spaces.Space, *,
                 stochastic: bool) -> Policy:
    """An evaluation :data:`Policy` from ``logits_of(observations) -> (N, sum(nvec))`` numpy logits."""
    nvec = action_nvec(action_space)
    single = isinstance(action_space, spaces.Discrete)

    def policy(observations, rng, env):
        actions = choose_actions(logits_of(observations), nvec, rng if stochastic else None)
        return actions[:, 0] if single else actions

    return policy


def gaussian_policy(dist_inputs_of: Callable[[dict[str, np.ndarray]], np.ndarray], agent_space: spaces.Box,
                    mode: str, *, stochastic: bool) -> Policy:
    """An evaluation :data:`Policy` from a diagonal Gaussian: ``dist_inputs_of(observations) -> (N, 2n)``.

    The inputs are the mean and log standard deviation (RLlib's ``TorchDiagGaussian`` layout).
    ``stochastic``: a sample from ``rng``; else the mean. The result is unsquashed onto
    ``agent_space`` (:func:`baselines.training_env.unsquash`, as in training), then mapped to the
    env's actions with ``mode`` (``project``, ``normalize`` or ``raw``) in the env's current state.
    """
    def policy(observations, rng, env):
        mean, log_std = np.split(np.asarray(dist_inputs_of(observations), dtype=np.float64), 2, axis=-1)
        actions = mean + np.exp(log_std) * rng.standard_normal(mean.shape) if stochastic else mean
        return env_actions(env.core, unsquash(actions, agent_space), mode)

    return policy


def dirichlet_policy(alpha_of: Callable[[dict[str, np.ndarray]], np.ndarray], mode: str, *,
                     stochastic: bool) -> Policy:
    """An evaluation :data:`Policy` from a Dirichlet over target weights: ``alpha_of(observations) -> (N, n)``
    concentrations. ``stochastic``: a sample from ``rng`` (normalised Gammas); else the mean. The targets
    become the env's actions with ``mode`` (``normalize``: the reallocation that reaches them)."""
    def policy(observations, rng, env):
        alpha = np.asarray(alpha_of(observations), dtype=np.float64)
        targets = rng.standard_gamma(alpha) if stochastic else alpha
        return env_actions(env.core, targets / targets.sum(axis=-1, keepdims=True), mode)

    return policy


def network_policies(method: Any, action_space: spaces.Space, dist_inputs: DistInputs) -> dict[tuple[str, str], Policy]:
    """The policies ``method`` evaluates, from a network's :data:`DistInputs`, keyed ``(policy, mask)``.

    Per mask in ``method.eval_masks`` (the first is the headline's), greedy then stochastic. Discrete:
    the logits with the mask applied (``on``) or not (``off``). Box: the Gaussian's actions mapped by
    the method's action mode (``on``) or sent as they are (``off``).
    """
    discrete = is_discrete(action_space)
    policies = {}
    for mask in method.eval_masks:
        on = mask == "on"
        for name in POLICIES:
            def inputs(observations, on=on):
                return dist_inputs(observations, on)

            if discrete:
                policies[(name, mask)] = logit_policy(inputs, action_space, stochastic=name == "stochastic")
            elif method.distribution == "dirichlet":
                policies[(name, mask)] = dirichlet_policy(inputs, method.action_mode, stochastic=name == "stochastic")
            else:
                agent_space = agent_action_space(action_space, method.action_mode)
                policies[(name, mask)] = gaussian_policy(inputs, agent_space, method.action_mode if on else "raw",
                                                         stochastic=name == "stochastic")
    return policies


def joint_policy(policies: list[Policy]) -> Policy:
    """A policy over ``(N, agents, ...)`` observations from one single-agent policy per agent (in order).

    One object shared by every agent (parameter sharing) is called once on all ``N * agents``
    observations; otherwise agent ``j``'s policy is called on ``observations[:, j]``.
    """
    def policy(observations: dict[str, np.ndarray], rng: np.random.Generator, env: Any) -> np.ndarray:
        if all(p is policies[0] for p in policies):
            n, k = next(iter(observations.values())).shape[:2]
            actions = np.asarray(policies[0]({key: value.reshape(n * k, *value.shape[2:])
                                              for key, value in observations.items()}, rng, env))
            return actions.reshape(n, k, *actions.shape[1:])
        return np.stack([np.asarray(p({key: value[:, j] for key, value in observations.items()}, rng, env))
                         for j, p in enumerate(policies)], axis=1)

    return policy




def evaluate(env_name: str, env_config: dict[str, Any], policy: Policy, *, episodes: int,
             seed_base: int, rng: np.random.Generator, max_batch: int = 256,
             max_steps: int = 1_000_000, corruption: Any = None) -> list[dict[str, Any]]:
    """Play ``episodes`` episodes, episode i on env seed ``seed_base + i``, batched.

    ``corruption`` (a :class:`baselines.mask_noise.MaskCorruption`): the policy sees the mask through it;
    the env still enforces its true constraints.

    Returns one record per episode (see :class:`EpisodeTracker`) with ``episode`` and ``env_seed``.
    With several agents (``n_agents`` in ``env_config``), the env is ``envs.make_multi_agent_vector``,
    ``policy`` maps ``(N, agents, ...)`` observations to ``(N, agents, ...)`` actions, and there is one
    record per episode and agent, with ``agent`` (its id).

    A policy may carry ``policy.episode_metrics(env) -> {name: array}``: facts of its own about each entry's
    current episode (a solver's proof that the schedule it replays is optimal), one value per entry (and
    agent), read after every step and recorded at each episode's end beside the env's metrics.
    """
    n_agents = int(envs.config_dict(env_name, env_config).get("n_agents", 1))
    own_metrics = getattr(policy, "episode_metrics", None)
    records: list[dict[str, Any]] = []
    for start in range(0, episodes, max_batch):
        n = min(max_batch, episodes - start)
        if n_agents == 1:
            env = envs.make_vector(env_name, n, **env_config)
        else:
            env = envs.make_multi_agent_vector(env_name, n, **env_config)
        tracker = EpisodeTracker.of(env.core, n * n_agents, next_step_autoreset=n_agents == 1)
        obs, _ = env.reset(seed=[seed_base + start + i for i in range(n)])
        if own_metrics is not None:  # the policy's own per-episode facts, recorded beside the env's metrics
            tracker.metrics = (*tracker.metrics, *own_metrics(env))
        if corruption is not None:
            corruption.start()
        done = np.zeros(n * n_agents, dtype=bool)
        batch_records: dict[int, dict[str, Any]] = {}
        for _ in range(max_steps):
            if done.all():
                break
            if MASK_KEY in obs:  # entries whose episode is over act no more: their masks may admit nothing
                seen = obs[MASK_KEY] if corruption is None else corruption(obs[MASK_KEY])
                obs = {**obs, MASK_KEY: admit_all_unless(env.acting, seen)}
            obs, reward, terminated, truncated, info = env.step(policy(obs, rng, env))
            if own_metrics is not None:
                info = {**info, **own_metrics(env)}
            active = None if n_agents == 1 else env.acted
            for record in tracker.update(reward, terminated, truncated, info, active=active):
                index = record.pop("env_index")
                if not done[index]:
                    episode = start + index // n_agents
                    agent = {} if n_agents == 1 else {"agent": env.agent_ids[index % n_agents]}
                    batch_records[index] = {"episode": episode, "env_seed": seed_base + episode, **agent, **record}
                    done[index] = True
        if not done.all():
            raise RuntimeError(f"evaluation on {env_name!r}: {int((~done).sum())} episode(s) still running "
                               f"after {max_steps} steps; does the env ever end an episode?")
        env.close()
        records.extend(batch_records[i] for i in range(n * n_agents))
    return records
