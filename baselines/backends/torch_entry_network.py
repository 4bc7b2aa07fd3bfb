"""The torch backend's per-entry actor-critic (``network=per_entry``): one small network shared by every action entry.

Why: on an allocation over ``n`` exchangeable targets (``sum_to_zero`` at 100 and 1,000 targets) the default
MLP maps all ``2n`` features to all ``n`` action entries, so each entry has output weights of its own that
learn from one scalar advantage per step, whose noise grows with the other entries' exploration: the
signal-to-noise ratio of each entry's gradient falls as ``1 / sqrt(n)``. At ``n = 1,000`` the two 256-wide
layers cannot even represent "follow each target's own demand" (a rank-1,000 map through 256 units). A network
shared by the entries (Jiang, Xu & Liang 2017's "Ensemble of Identical Independent Evaluators" for portfolios;
Zaheer et al. 2017's Deep Sets for the pooled context) learns from all ``n`` entries at every step, with a
number of weights that does not depend on ``n``. The same holds for a ``Discrete(n)`` action whose choices are
exchangeable (job_shop's jobs: one network scores every job, as L2D scores every operation with one graph
network): one output per entry, the choice's logit.

The network (``hidden = (h1, h2, ...)``):

- the env says which features describe entry ``i`` (:meth:`envs.core.EnvCore.entry_features`: ``k`` indices
  per entry); ``x_i`` are those ``k`` features;
- policy: ``e_i = act(W x_i)`` (``h1`` units), the context ``c = mean_i e_i``, and each entry's outputs from
  ``[e_i, c]`` through an MLP of the remaining ``hidden`` sizes (``m`` outputs per entry: mean and log-std of
  a Gaussian, a Dirichlet's concentration, or a categorical's logit), laid out as the policy head reads them
  (block by block: every entry's first output, then every entry's second);
- value: its own ``e'_i``, mean-pooled, through an MLP of the remaining sizes to one number (the value of an
  allocation does not depend on the order of its targets). The critic of each of an objective's signals
  (:class:`baselines.objective.Objective`, e.g. Lagrangian PPO's cost) is another such.

Initialisation as the MLP's (orthogonal, gain ``sqrt(2)`` in hidden layers, 0.01 on the policy's output, 1 on
the values'). Torch backend only.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

__all__ = ["ACTIVATIONS", "mlp", "EntryActorCritic"]

ACTIVATIONS = {"tanh": nn.Tanh, "relu": nn.ReLU, "silu": nn.SiLU}


def _embedding(n_in: int, size: int, activation: str) -> nn.Sequential:
    """One hidden layer: linear (orthogonal, gain ``sqrt(2)``, zero bias), then ``activation``."""
    linear = nn.Linear(n_in, size)
    nn.init.orthogonal_(linear.weight, math.sqrt(2))
    nn.init.zeros_(linear.bias)
    return nn.Sequential(linear, ACTIVATIONS[activation]())


def mlp(n_in: int, hidden: tuple[int, ...], n_out: int, activation: str, out_gain: float) -> nn.Sequential:
    """Linear layers of ``hidden`` sizes with ``activation``, then a linear output of ``n_out`` (orthogonal
    initialisation, as CleanRL and Stable-Baselines3)."""
    layers: list[nn.Module] = []
    for size in hidden:
        layers += _embedding(n_in, size, activation)
        n_in = size
    head = nn.Linear(n_in, n_out)
    nn.init.orthogonal_(head.weight, out_gain)
    nn.init.zeros_(head.bias)
    return nn.Sequential(*layers, head)


class _PooledValue(nn.Module):
    """A value of the whole allocation: per-entry embeddings, mean-pooled, through an MLP to one number."""

    def __init__(self, index: torch.Tensor, hidden: tuple[int, ...], activation: str):
        super().__init__()
        self.register_buffer("index", index, persistent=False)
        self.embed = _embedding(index.shape[1], hidden[0], activation)
        self.head = mlp(hidden[0], hidden[1:], 1, activation, out_gain=1.0)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """``(..., n_features)`` -> ``(..., 1)``, as the MLP value network."""
        return self.head(self.embed(features[..., self.index]).mean(dim=-2))


class EntryActorCritic(nn.Module):
    """Policy and value networks shared by the action's entries (see the module docstring); the interface of
    the backend's MLP actor-critic: ``forward(features) -> (policy outputs, values)``."""

    def __init__(self, entry_features: np.ndarray, n_outputs: int, hidden: tuple[int, ...], activation: str,
                 signals: tuple[str, ...] = ()):
        super().__init__()
        index = torch.as_tensor(np.asarray(entry_features), dtype=torch.long)
        n_entries, k = index.shape
        if n_outputs % n_entries:
            raise ValueError(f"network=per_entry: {n_outputs} policy outputs are not a whole number per entry "
                             f"of the {n_entries} entries")
        self.register_buffer("index", index, persistent=False)
        self.outputs_per_entry = n_outputs // n_entries
        self.embed = _embedding(k, hidden[0], activation)
        self.policy_head = mlp(2 * hidden[0], hidden[1:], self.outputs_per_entry, activation, out_gain=0.01)
        self.value = _PooledValue(index, hidden, activation)
        for signal in signals:  # named as the MLP actor-critic's critics
            self.add_module(f"{signal}_value", _PooledValue(index, hidden, activation))

    def critic(self, signal: str) -> nn.Module:
        """The value network of ``signal``."""
        return self.get_submodule(f"{signal}_value")

    def policy(self, features: torch.Tensor) -> torch.Tensor:
        """The policy head's inputs, block by block: ``(..., outputs_per_entry * n_entries)``."""
        embedded = self.embed(features[..., self.index])  # (..., n_entries, hidden[0]): each entry's own features
        context = embedded.mean(dim=-2, keepdim=True).expand_as(embedded)
        out = self.policy_head(torch.cat([embedded, context], dim=-1))  # (..., n_entries, outputs_per_entry)
        return out.transpose(-1, -2).flatten(-2)

    def forward(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.policy(features), self.value(features)[..., 0]
