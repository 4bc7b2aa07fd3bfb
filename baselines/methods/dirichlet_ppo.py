"""``dirichlet_ppo``: a policy whose support *is* the admissible set, for allocation envs.

In ``sum_to_zero`` the admissible reallocations are exactly the moves from the current weights to a
point of the simplex. A Dirichlet over target weights therefore never proposes an inadmissible
action: no projection (``masked_ppo``), no rescaling of arbitrary outputs (``normalize_ppo``), no
penalty. The network outputs one concentration per target, ``alpha = 1 + softplus(output)``: at
least 1, so the density is bounded and unimodal (as the Beta policy of Chou et al. 2017), and the
log-density stays finite at the simplex's boundary, where ``alpha < 1`` would put infinite density
and sampling underflow gives exact zeros (the known NaN failure). Samples are drawn in float64
(numpy's Gamma, seeded per run) and kept at least 1e-6 from the boundary before their
log-probability is taken. The env gets ``reallocation_to(targets)`` (the targets already sum to 1; the
env's division only corrects float rounding).

Evaluation: the Dirichlet's mean (greedy) and a sample (stochastic), mask ``on`` (the simplex is how
this agent handles the constraint; there is no "off").
"""

from __future__ import annotations

from dataclasses import dataclass

from baselines.method import MASK_ON, Method
from baselines.settings import PPOSettings, backend_setting

__all__ = ["DirichletPPOConfig", "METHOD"]


@dataclass(frozen=True)
class DirichletPPOConfig(PPOSettings):
    """Dirichlet PPO's training config: the PPO settings and the backend."""

    backend: str = backend_setting("torch")


METHOD = Method(
    name="dirichlet_ppo", Config=DirichletPPOConfig,
    summary="outputs target weights from a Dirichlet: every action admissible by construction (allocation envs)",
    observes_mask=False, action_mode="normalize", distribution="dirichlet", action_spaces=("continuous",),
    requires=("reallocation_to",), eval_masks=(MASK_ON,))
