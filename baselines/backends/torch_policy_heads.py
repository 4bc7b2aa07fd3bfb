"""The torch backend's action distributions: how a policy network's outputs become actions and log-probabilities.

A head reads the flat output row of :class:`baselines.backends.torch_ppo.ActorCritic`'s policy network
and gives what PPO needs from a distribution: a sample and its log-probability in the rollout, the
log-probability and entropy of stored actions in the loss, the actions the env receives, and the
distribution inputs evaluation reads (:data:`baselines.evaluation.DistInputs`). The torch backend
holds one head and never branches on the action space itself.

- :class:`CategoricalHead`: discrete envs; flat logits, one block per sub-action, masked with
  :func:`baselines.masked_logits.apply_mask` where the method observes the mask; naive masking
  (``mask_in_loss=False``) samples from the masked logits but stores and learns the unmasked
  log-probabilities (Huang & Ontañón 2020), exactly as the RLlib masking module does.
- :class:`GaussianHead`: Box envs; a diagonal Gaussian's mean and log standard deviation, both
  outputs of the network, the log-std shifted by ``log_std_init`` (the layout and the shift of
  :class:`baselines.backends.rllib_gaussian_module.GaussianPPOTorchRLModule`, RLlib's default PPO
  module for Box actions). Samples are read as [-1, 1] per dimension and unsquashed onto the agent's
  action space (:func:`baselines.training_env.unsquash`, RLlib's ``normalize_actions``); the
  log-probability is of the sample before unsquashing, as in RLlib.
- :class:`DirichletHead`: allocation envs (``dirichlet_ppo``); target weights on the simplex from
  a Dirichlet with concentrations ``1 + softplus(output)``, sampled in float64 from a numpy generator
  of the run (torch's Gamma sampler takes no generator) and kept :data:`EDGE` inside the boundary,
  where the log-density of a sample that underflowed to 0 would be NaN.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from gymnasium import spaces

from baselines.algorithm import derived_seed
from baselines.masked_logits import apply_mask, log_prob_and_entropy, sample_with_log_prob
from baselines.training_env import agent_action_space, unsquash
from envs.masking import action_nvec

__all__ = ["CategoricalHead", "GaussianHead", "DirichletHead", "EDGE", "make_head"]

#: How far inside the simplex's boundary a Dirichlet sample is kept (each weight at least this).
EDGE = 1e-6


class CategoricalHead:
    """Masked (or unmasked) categoricals over ``nvec`` sub-actions (see the module docstring)."""

    def __init__(self, nvec: Sequence[int], env_name: str, *, mask_in_loss: bool = True):
        self.nvec = [int(n) for n in nvec]
        self.n_outputs = sum(self.nvec)
        self.env_name = env_name
        self.mask_in_loss = mask_in_loss

    def _logits(self, out: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        return out if mask is None else apply_mask(out, mask, self.nvec, self.env_name)

    def sample(self, out: torch.Tensor, mask: torch.Tensor | None,
               generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """Actions ``(N, n_sub)`` sampled from the masked logits and the log-probabilities the loss compares
        against: the masked policy's, or the unmasked one's for naive masking."""
        action, log_prob = sample_with_log_prob(self._logits(out, mask), self.nvec, generator)
        if mask is not None and not self.mask_in_loss:
            log_prob = log_prob_and_entropy(out, action, self.nvec)[0]
        return action, log_prob

    def log_prob_and_entropy(self, out: torch.Tensor, mask: torch.Tensor | None,
                             actions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The loss's log-probabilities and entropies of ``actions``: masked, or unmasked (naive masking)."""
        return log_prob_and_entropy(self._logits(out, mask if self.mask_in_loss else None), actions, self.nvec)

    def env_actions(self, actions: torch.Tensor) -> np.ndarray:
        return actions.numpy()

    def dist_inputs(self, out: torch.Tensor, mask: torch.Tensor | None) -> np.ndarray:
        """Evaluation's logits: masked where ``mask`` is given."""
        return self._logits(out, mask).numpy()


class GaussianHead:
    """A diagonal Gaussian over a Box agent action space (see the module docstring)."""

    def __init__(self, agent_space: spaces.Box, log_std_init: float):
        self.agent_space = agent_space
        self.n_dims = int(np.prod(agent_space.shape))
        self.n_outputs = 2 * self.n_dims
        self.log_std_init = float(log_std_init)

    def _mean_log_std(self, out: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mean, log_std = out.chunk(2, dim=-1)
        return mean, log_std + self.log_std_init

    def sample(self, out: torch.Tensor, mask: torch.Tensor | None,
               generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        mean, log_std = self._mean_log_std(out)
        action = mean + log_std.exp() * torch.randn(mean.shape, generator=generator, dtype=mean.dtype)
        return action, self.log_prob_and_entropy(out, mask, action)[0]

    def log_prob_and_entropy(self, out: torch.Tensor, mask: torch.Tensor | None,
                             actions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Joint (summed over dimensions) log-density of ``actions`` and entropy, as
        ``torch.distributions.Normal`` computes them, without its per-call overhead."""
        mean, log_std = self._mean_log_std(out)
        z = (actions - mean) * torch.exp(-log_std)
        log_prob = (-0.5 * z.pow(2) - log_std - 0.5 * math.log(2 * math.pi)).sum(dim=-1)
        entropy = (0.5 + 0.5 * math.log(2 * math.pi) + log_std).sum(dim=-1)
        return log_prob, entropy

    def env_actions(self, actions: torch.Tensor) -> np.ndarray:
        """The sampled actions unsquashed onto the agent's action space: what the training env receives."""
        flat = actions.numpy().astype(np.float64)
        return unsquash(flat.reshape(len(flat), *self.agent_space.shape), self.agent_space)

    def dist_inputs(self, out: torch.Tensor, mask: torch.Tensor | None) -> np.ndarray:
        """Evaluation's mean and log standard deviation (:func:`baselines.evaluation.gaussian_policy`)."""
        return torch.cat(self._mean_log_std(out), dim=-1).numpy()


class DirichletHead:
    """A Dirichlet over ``n`` target weights (see the module docstring); ``rng`` draws the samples."""

    def __init__(self, n: int, rng: np.random.Generator):
        self.n_outputs = int(n)
        self.rng = rng

    @staticmethod
    def concentrations(out: torch.Tensor) -> torch.Tensor:
        """``alpha = 1 + softplus(out)``: at least 1, a bounded density on the closed simplex."""
        return 1.0 + F.softplus(out)

    @staticmethod
    def inside(targets: np.ndarray | torch.Tensor):
        """Targets moved at least :data:`EDGE` inside the simplex's boundary, renormalised to sum to 1."""
        clipped = targets.clip(EDGE, 1.0)
        return clipped / clipped.sum(-1, keepdims=True) if isinstance(clipped, np.ndarray) \
            else clipped / clipped.sum(-1, keepdim=True)

    def sample(self, out: torch.Tensor, mask: torch.Tensor | None,
               generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        gamma = self.rng.standard_gamma(self.concentrations(out).double().numpy())
        targets = torch.from_numpy(self.inside(gamma / gamma.sum(-1, keepdims=True))).to(out.dtype)
        return targets, self.log_prob_and_entropy(out, mask, targets)[0]

    def log_prob_and_entropy(self, out: torch.Tensor, mask: torch.Tensor | None,
                             actions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        dist = torch.distributions.Dirichlet(self.concentrations(out), validate_args=False)
        return dist.log_prob(self.inside(actions)), dist.entropy()

    def env_actions(self, actions: torch.Tensor) -> np.ndarray:
        """The target weights (the training env's ``normalize`` mode turns them into the reallocation)."""
        return actions.numpy().astype(np.float64)

    def dist_inputs(self, out: torch.Tensor, mask: torch.Tensor | None) -> np.ndarray:
        """Evaluation's concentrations (:func:`baselines.evaluation.dirichlet_policy`)."""
        return self.concentrations(out).numpy()


def make_head(method, core, env_name: str, config, seed: int):
    """The head of ``method`` on ``core``'s action space, the one place its flags become a distribution:
    masked (or naive-masked, or unmasked) categoricals for discrete actions; for Box actions the method's
    ``distribution``, a Dirichlet (sampled from a generator of the run's ``seed``) or a Gaussian in the
    agent's action space of its ``action_mode``, starting at ``config.log_std_init``."""
    if core.discrete:
        return CategoricalHead(action_nvec(core.action_space), env_name, mask_in_loss=method.mask_in_loss)
    if method.distribution == "dirichlet":
        rng = np.random.default_rng(derived_seed(seed, "dirichlet"))
        return DirichletHead(int(np.prod(core.action_space.shape)), rng)
    return GaussianHead(agent_action_space(core.action_space, method.action_mode), config.log_std_init)
