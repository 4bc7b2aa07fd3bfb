"""``naive_masked_ppo``: masked sampling, unmasked gradient (Huang & Ontañón 2020's "naive" masking).

The agent sees the mask and samples only admissible actions, as masked PPO does, but the PPO loss
treats the actions as if they came from the **unmasked** policy: the stored log-probability, the
ratio's new log-probability and the entropy are those of the unmasked logits (the authors' reference
code computes the log-probability of the masked sample with a plain ``Categorical``). The gradient
then keeps pushing probability onto inadmissible values it can never sample; Huang & Ontañón found
this falls between masking and penalties as the share of inadmissible actions grows.

Discrete actions only (for Box actions "masking" is masked PPO's projection). Evaluation: greedy and
stochastic, with the mask on (the headline) and off, as for masked PPO.
"""

from __future__ import annotations

from dataclasses import dataclass

from baselines.method import Method
from baselines.settings import PPOSettings, RLlibSettings, backend_setting

__all__ = ["NaiveMaskedPPOConfig", "METHOD"]


@dataclass(frozen=True)
class NaiveMaskedPPOConfig(RLlibSettings, PPOSettings):
    """Naive masked PPO's training config: the PPO settings and the backend."""

    backend: str = backend_setting("rllib", "torch")


METHOD = Method(
    name="naive_masked_ppo", Config=NaiveMaskedPPOConfig,
    summary="sees the mask and samples only admissible actions, but learns from the unmasked logits' "
            "log-probabilities and entropy (naive masking)",
    observes_mask=True, mask_in_loss=False, action_spaces=("discrete",))
