"""``normalize_ppo``: the sum-to-zero question's own answer, as a baseline to compare with projection.

Instead of a reallocation ``a`` that must sum to zero, the agent outputs **target weights** in
``[0, 1]^n`` (RLlib's Gaussian, mapped onto the box and clipped); the env side rescales them to sum
to 1 and applies the reallocation that reaches them (``core.reallocation_to``). Every action is
admissible by construction, as with masked PPO's projection, but the map from the agent's output to
the allocation is a normalisation (many outputs, one allocation; small targets amplified) rather
than the nearest admissible point. The question's code divided by ``c * sum`` instead of
multiplying by ``c / sum`` and divided by zero for an all-zero output; this follows the corrected
form and keeps the allocation for an all-zero output.

Evaluation: greedy (the Gaussian's mean) and stochastic, with the normalisation (mask ``on``: it is
how this agent handles the constraint; there is no meaningful "off").
"""

from __future__ import annotations

from dataclasses import dataclass

from baselines.base import Policy
from baselines.ppo import PPOSettings, RLlibPPO

__all__ = ["NormalizePPOConfig", "NormalizePPO"]


@dataclass(frozen=True)
class NormalizePPOConfig(PPOSettings):
    """Normalize PPO's training config: the PPO settings (see :class:`baselines.ppo.PPOSettings`)."""


class NormalizePPO(RLlibPPO):
    Config = NormalizePPOConfig
    masked = False
    action_mode = "normalize"
    continuous_only = True

    def module_eval_policies(self, module) -> dict[tuple[str, str], Policy]:
        gaussian = self.features_dist_inputs(module)
        return {(policy, "on"): self.module_policy(gaussian, stochastic=policy == "stochastic")
                for policy in ("greedy", "stochastic")}
