"""``penalty_ppo``: PPO that never sees the mask and is penalised for inadmissible actions.

The agent observes only the ``"observation"`` features. An inadmissible sub-action is executed as
the env's documented fallback, chosen by its setting ``invalid_action`` (``noop``: not executed, e.g.
hold in portfolio, the literature's penalty; ``repair``: the nearest admissible action, which makes
this "penalty plus projection"; docs/methods.md) and costs ``penalty`` per inadmissible
sub-action, in the units of the reward the agent trains on (the training env's, before
``reward_scale``). Box actions: the Gaussian's action goes to the env as it is; an inadmissible one
is not executed (the env's fallback) and costs ``penalty`` times its Euclidean distance to the
admissible set. Huang & Ontañón (2020) compare this "invalid action penalty" with masking; a sweep
of ``--algo-config penalty=...`` shows how its size trades invalid actions against return.

Evaluation: greedy and stochastic, as trained (mask ``off``: the agent has no mask to apply).
"""

from __future__ import annotations

from dataclasses import dataclass

from baselines.method import MASK_OFF, Method
from baselines.settings import PPOSettings, RLlibSettings, backend_setting
from envs.config import setting

__all__ = ["PenaltyPPOConfig", "METHOD"]


@dataclass(frozen=True)
class PenaltyPPOConfig(RLlibSettings, PPOSettings):
    """Penalty PPO's training config: the PPO settings plus the penalty."""

    penalty: float = setting(0.1, "reward subtracted per inadmissible sub-action (continuous: per unit of distance "
                             "to the admissible set), in training-reward units",
                             check=lambda v: v >= 0, accepts="a non-negative number")
    backend: str = backend_setting("rllib", "torch")


METHOD = Method(
    name="penalty_ppo", Config=PenaltyPPOConfig,
    summary="never sees the mask; an inadmissible action meets the env's fallback and costs `penalty` of reward",
    observes_mask=False, penalised=True, eval_masks=(MASK_OFF,))
