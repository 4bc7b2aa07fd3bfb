"""``normalize_ppo``: the sum-to-zero question's own answer, as a baseline to compare with projection.

Instead of a reallocation ``a`` that must sum to zero, the agent outputs **target weights** in
``[0, 1]^n`` (a Gaussian, mapped onto the box and clipped); the env side rescales them to sum to 1
and applies the reallocation that reaches them (the env core's ``reallocation_to`` hook). Every
action is admissible by construction, as with masked PPO's projection, but the map from the agent's
output to the allocation is a normalisation (many outputs, one allocation; small targets amplified)
rather than the nearest admissible point. The question's code divided by ``c * sum`` instead of
multiplying by ``c / sum`` and divided by zero for an all-zero output; this follows the corrected
form and keeps the allocation for an all-zero output.

Evaluation: greedy (the Gaussian's mean) and stochastic, with the normalisation (mask ``on``: it is
how this agent handles the constraint; there is no meaningful "off").
"""

from __future__ import annotations

from dataclasses import dataclass

from baselines.method import MASK_ON, Method
from baselines.settings import PPOSettings, RLlibSettings, backend_setting

__all__ = ["NormalizePPOConfig", "METHOD"]


@dataclass(frozen=True)
class NormalizePPOConfig(RLlibSettings, PPOSettings):
    """Normalize PPO's training config: the PPO settings and the backend."""

    backend: str = backend_setting("rllib", "torch")


METHOD = Method(
    name="normalize_ppo", Config=NormalizePPOConfig,
    summary="outputs target weights, rescaled to sum to 1: admissible by construction (allocation envs)",
    observes_mask=False, action_mode="normalize", action_spaces=("continuous",), requires=("reallocation_to",),
    eval_masks=(MASK_ON,))
