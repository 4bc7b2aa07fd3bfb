"""``lagrangian_ppo``: constrained RL's answer: inadmissible actions are a cost held to a budget by a
learned Lagrange multiplier (PPO-Lagrangian, as OmniSafe's ``PPOLag``).

The agent sees no mask. An inadmissible action meets the env's fallback (its ``invalid_action``
setting, ``noop`` or ``repair``), as for penalty PPO, and
costs what penalty PPO's penalty is counted in: the number of inadmissible sub-actions, or for Box
actions the Euclidean distance to the admissible set. Instead of a fixed penalty the objective
weighs the cost by a multiplier ``lambda`` learned from the measured cost:

- a **cost critic** (a value network of its own, same sizes) estimates the discounted cost, and GAE
  gives cost advantages ``A_c`` beside the reward advantages ``A_r``;
- each iteration, before the policy update, ``lambda`` takes one Adam step (learning rate
  ``lambda_lr``) on ``-lambda * (J_c - cost_limit)``, ``J_c`` being the mean cost of the episodes
  that ended in the rollout, and is clipped to ``[0, lambda_max]``: it grows while episodes cost
  more than the budget and shrinks while they cost less (OmniSafe's ``Lagrange`` update);
- the policy's advantage is ``(A_r - lambda * A_c) / (1 + lambda)`` with ``A_r`` and ``A_c`` each
  standardised over the rollout first (OmniSafe's ``standardized_adv_r/c``), so ``lambda`` weighs the
  two in the same units whatever the env's reward scale, and one default serves every env;
- the cost critic's loss is the value loss's, added with ``vf_loss_coeff``.

Defaults are OmniSafe's (``lambda_lr`` 0.035, ``lambda_init`` 0.001) with a budget of **zero**
inadmissible actions per episode (``cost_limit``): a hard constraint, approached from the soft side.
``progress.csv`` reports ``lagrange_multiplier`` (after the update), ``episode_cost_mean`` (``J_c``)
and ``cost_vf_loss``.

Evaluation: greedy and stochastic, as trained (mask ``off``: the agent has no mask to apply).

The cost, its critic, the multiplier and the combined advantage are the method's objective,
:class:`baselines.lagrange.LagrangianObjective`, which the torch backend calls through its extension
point (:mod:`baselines.objective`); only that backend runs it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from baselines.lagrange import LagrangianObjective
from baselines.method import MASK_OFF, Method
from baselines.settings import PPOSettings, backend_setting
from envs.config import setting

__all__ = ["LagrangianPPOConfig", "METHOD"]


@dataclass(frozen=True)
class LagrangianPPOConfig(PPOSettings):
    """Lagrangian PPO's training config: the PPO settings, the cost budget and the multiplier's learning."""

    cost_limit: float = setting(0.0, "budget of the cost per episode (inadmissible sub-actions; Box: summed "
                                "distance to the admissible set)", check=lambda v: v >= 0,
                                accepts="a non-negative number")
    lambda_lr: float = setting(0.035, "learning rate of the Lagrange multiplier's Adam step per iteration",
                               check=lambda v: v > 0, accepts="a positive number")
    lambda_init: float = setting(0.001, "initial Lagrange multiplier", check=lambda v: v >= 0,
                                 accepts="a non-negative number")
    lambda_max: float = setting(math.inf, "upper bound of the Lagrange multiplier", check=lambda v: v > 0,
                                accepts="a positive number (inf: none)", finite=False)
    backend: str = backend_setting("torch")


METHOD = Method(
    name="lagrangian_ppo", Config=LagrangianPPOConfig,
    summary="never sees the mask; inadmissible actions are a cost held to `cost_limit` per episode by a learned "
            "Lagrange multiplier",
    observes_mask=False, objective=LagrangianObjective, eval_masks=(MASK_OFF,))
