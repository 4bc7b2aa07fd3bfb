"""``masked_ppo``: PPO whose policy samples only admissible actions.

**Discrete actions.** The agent observes the suite's full Dict observation, features and mask. The
logits of inadmissible values are set to the most negative float in every forward pass (sampling,
evaluation and the PPO loss: :func:`baselines.masked_logits.apply_mask`), so the agent never takes an
inadmissible action and the loss is computed on the masked distribution, the one the actions were
sampled from.

**Box actions.** The agent is a Gaussian policy on the features, and every action it takes is
**projected** onto the state's admissible set on the env-facing side (the training env's
``project`` action mode), so the env only ever receives admissible actions; PPO's loss sees the
Gaussian sample, the projection being part of the environment from the agent's point of view.

Evaluation: greedy and stochastic, with the mask applied (the headline: greedy, mask on) and with it
removed (the unmasked logits, or the unprojected Gaussian action; the env's fallback then handles
inadmissible actions and reports them), which measures how much of the constraint the network has
learned by itself.
"""

from __future__ import annotations

from dataclasses import dataclass

from baselines.method import Method
from baselines.settings import PPOSettings, RLlibSettings, backend_setting

__all__ = ["MaskedPPOConfig", "METHOD"]


@dataclass(frozen=True)
class MaskedPPOConfig(RLlibSettings, PPOSettings):
    """Masked PPO's training config: the PPO settings and the backend."""

    backend: str = backend_setting("rllib", "torch")


METHOD = Method(
    name="masked_ppo", Config=MaskedPPOConfig,
    summary="sees the mask; inadmissible logits get zero probability in sampling and in the loss (Box: actions "
            "projected onto the admissible set)",
    observes_mask=True, action_mode="project")
