"""What a method may add to PPO's objective: the torch backend's one extension point.

Most methods change what the agent observes or what happens to its actions, and PPO's objective stays
PPO's (:class:`baselines.method.Method`'s flags say how). A method whose objective is not PPO's, such as
:mod:`baselines.methods.lagrangian_ppo` (a cost held to a budget by a learned multiplier), declares an
:class:`Objective` factory as ``Method.objective``; the torch backend (:mod:`baselines.backends.torch_ppo`)
calls its hooks and otherwise runs plain PPO, so the method's code lives in its own module and the backend
has no branch for it. Backends that do not call these hooks (RLlib, sb3-contrib) refuse such a method.

What the backend does for every named **signal** (``Objective.signals``), so an objective need not:

- every network gets a critic of the signal, a value network of the value network's sizes (named
  ``<signal>_value``, built right after the value network);
- each step's signal comes from :meth:`Objective.step_signals`, 0 on steps that only reset an entry;
  GAE (the reward's ``gamma`` and ``gae_lambda``) gives the signal's advantages and returns, and the
  backend sums the signal over each episode (the sums of episodes in flight go in the checkpoint);
- the critic learns the returns beside the value network, with the value loss's clipping and weight
  (``progress.csv``: ``<signal>_vf_loss``).

Once per iteration, before the update, :meth:`Objective.policy_advantages` turns the reward's advantages,
the signals' advantages and the episodes' sums into the advantages the policy learns from.
"""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np
import torch

__all__ = ["Objective"]


class Objective(Protocol):
    """A method's addition to PPO's objective (see the module docstring); one per run, built from the run's
    config by ``Method.objective(config)``."""

    #: The key of its state in a checkpoint.
    name: str
    #: The per-step signals it learns a critic of, beside the reward.
    signals: tuple[str, ...]

    def step_signals(self, info: dict[str, Any]) -> dict[str, np.ndarray]:
        """Each signal's value in one step of the training env
        (:class:`baselines.training_env.MultiAgentTrainingVector`), from the step's ``info``: ``(num_envs,
        n_agents)`` arrays."""

    def policy_advantages(self, advantages: torch.Tensor, signal_advantages: dict[str, torch.Tensor],
                          episode_sums: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, float]]:
        """The advantages the policy update uses, and the objective's own ``progress.csv`` columns.

        ``advantages`` and ``signal_advantages`` are the reward's and each signal's GAE over the batch's
        rows; ``episode_sums`` each signal's sum over every episode that ended in the rollout (float64, in
        the order they ended; empty if none did)."""

    def state_dict(self) -> dict[str, Any]:
        """Its state, to resume a run where it stood (tensors, numbers and dicts of them: ``torch.load``
        reads it with ``weights_only``)."""

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict`'s state."""
