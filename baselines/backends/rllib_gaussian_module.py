"""The RLlib backend's Gaussian PPO module for Box actions: RLlib's default, with a set initial spread.

RLlib's default PPO module for ``Box`` actions outputs a diagonal Gaussian's mean and log standard
deviation, which start near 0: a standard deviation of about 1 per dimension. That suits actions
whose useful scale is 1; in ``sum_to_zero`` a useful reallocation moves each of 13 weights by a few
hundredths, and with a spread of 1 almost every sample projects onto a corner of the simplex, so the
return hardly depends on the spread and PPO barely learns to narrow it (measured: entropy flat over
200k steps). :class:`GaussianPPOTorchRLModule` adds ``log_std_init`` to the log-std outputs, in
every forward pass, so the policy starts at standard deviation ``exp(log_std_init)`` and still
learns it per state (CleanRL starts its own log-std parameter at 0 for MuJoCo-scaled actions).
"""

from __future__ import annotations

from typing import Any

import torch
from ray.rllib.algorithms.ppo.torch.default_ppo_torch_rl_module import DefaultPPOTorchRLModule
from ray.rllib.core.columns import Columns

from baselines.backends.rllib_masking_module import ModeSwitchOnce

__all__ = ["GaussianPPOTorchRLModule"]


class GaussianPPOTorchRLModule(ModeSwitchOnce, DefaultPPOTorchRLModule):
    """``model_config`` takes RLlib's ``DefaultModelConfig`` keys plus ``log_std_init`` (default 0)."""

    def __init__(self, *args, model_config: dict[str, Any] | None = None, **kwargs):
        model_config = dict(model_config or {})
        self.log_std_init = float(model_config.pop("log_std_init", 0.0))
        super().__init__(*args, model_config=model_config, **kwargs)

    def _shift(self, out: dict[str, Any]) -> dict[str, Any]:
        mean, log_std = out[Columns.ACTION_DIST_INPUTS].chunk(2, dim=-1)
        out[Columns.ACTION_DIST_INPUTS] = torch.cat([mean, log_std + self.log_std_init], dim=-1)
        return out

    def _forward(self, batch: dict[str, Any], **kwargs) -> dict[str, Any]:
        return self._shift(super()._forward(batch, **kwargs))

    def _forward_train(self, batch: dict[str, Any], **kwargs) -> dict[str, Any]:
        return self._shift(super()._forward_train(batch, **kwargs))
