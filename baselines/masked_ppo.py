"""``masked_ppo``: RLlib PPO whose policy samples only admissible actions.

The agent sees the suite's full Dict observation; :class:`baselines.masking_module.
MaskedPPOTorchRLModule` sets the logits of inadmissible values to the most negative float in every
forward pass (inference, exploration and training), so it never takes an inadmissible action and
the PPO loss is computed on the masked distribution.

Evaluation plays four policies on the fixed evaluation seeds: stochastic (sampled) and greedy
(most likely value per sub-action), each with the mask applied and with it removed (the unmasked
logits; the env's fallback then handles inadmissible actions and reports them), which measures
how much of the constraint the network has learned by itself.

Continuous envs (``Box`` actions with an admissible set): the agent is RLlib's default Gaussian PPO
module on the features, and every action it takes is **projected** onto the state's admissible set
on the env-facing side (``baselines.rllib_env.MapActions`` in training, the same
``env_actions`` in evaluation), so the env only ever receives admissible actions; PPO's loss sees
the Gaussian sample, the projection being part of the environment from the agent's point of view.
"Mask off" evaluation sends the Gaussian's action unprojected.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from baselines.base import Policy
from baselines.ppo import PPOSettings, RLlibPPO, backend_setting
from envs.masking import MASK_KEY, OBSERVATION_KEY

__all__ = ["MaskedPPOConfig", "MaskedPPO"]


@dataclass(frozen=True)
class MaskedPPOConfig(PPOSettings):
    """Masked PPO's training config: the PPO settings (see :class:`baselines.ppo.PPOSettings`) and the backend."""

    backend: str = backend_setting()


class MaskedPPO(RLlibPPO):
    Config = MaskedPPOConfig
    masked = True
    action_mode = "project"

    def module_spec(self):
        if not self.discrete:
            return super().module_spec()  # the Gaussian module; the env-facing projection keeps actions admissible
        from ray.rllib.core.rl_module.rl_module import RLModuleSpec

        from baselines.masking_module import MaskedPPOTorchRLModule

        return RLModuleSpec(module_class=MaskedPPOTorchRLModule, model_config={"env_name": self.env_name})

    def module_eval_policies(self, module) -> dict[tuple[str, str], Policy]:
        if not self.discrete:
            gaussian = self.features_dist_inputs(module)
            return {(policy, "on" if masked else "off"):
                    self.module_policy(gaussian, stochastic=policy == "stochastic", mode=None if masked else "raw")
                    for masked in (True, False) for policy in ("greedy", "stochastic")}


        def logits_of(masked: bool):
            @torch.no_grad()
            def logits(observations: dict[str, np.ndarray]) -> np.ndarray:
                features = self.features(observations)
                if not masked:
                    return module.unmasked_logits(features).numpy()
                obs = {OBSERVATION_KEY: features, MASK_KEY: torch.from_numpy(observations[MASK_KEY])}
                return module.forward_inference({"obs": obs})["action_dist_inputs"].numpy()
            return logits

        return {(policy, "on" if masked else "off"): self.module_policy(logits_of(masked),
                                                                        stochastic=policy == "stochastic")
                for masked in (True, False) for policy in ("greedy", "stochastic")}
