"""The RLlib backend's default learner: RLlib's PPO on the rows it learns from, with the torch backend's kernels.

:class:`FastPPOTorchLearner` is :class:`baselines.backends.rllib_lean_learner.LeanPPOTorchLearner` (RLlib's
PPO updates bit for bit, ``rllib_learner=exact``) with three changes that keep the algorithm and change
the bits (``rllib_learner=fast``, the default):

- **Only the steps the loss learns from are minibatched.** RLlib's PPO appends one artificial step to
  every episode chunk so that the value network can bootstrap (``AddOneTsToEpisodesAndTruncate``), computes
  GAE, and keeps those steps in the batch with ``loss_mask`` False: about 450 of 8,640 rows per 8,192 env
  steps on portfolio, carried through every minibatch of every epoch and dropped by the masked means.
  :class:`LearnFromRealSteps`, the last piece of the learner connector, removes them once GAE is done:
  the advantages, value targets and every row learned from are RLlib's; each minibatch holds
  ``minibatch_size`` real steps instead of about 95% of that, so there are 80 minibatches per 8,192
  steps, not 85, and the minibatches are made of other rows.
- **Log-probabilities and entropies** of categorical actions are the torch backend's expressions
  (:func:`baselines.masked_logits.log_prob_and_entropy`: ``log_softmax``, a gather and ``-(p log p)``),
  mathematically RLlib's, in fewer kernels forward and backward; equal to rounding.
- **Adam is torch's fused implementation** (the torch backend's): the same algorithm and settings as
  RLlib's Adam, in one kernel per step; it also takes a learning-rate schedule's tensor rate.

``docs/benchmarks.md`` has the speed and the same-score check against ``exact`` on the three envs.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from ray.rllib.connectors.connector_v2 import ConnectorV2
from ray.rllib.core.columns import Columns

from baselines.backends.rllib_lean_learner import LeanPPOTorchLearner
from baselines.backends.rllib_minibatches import take_rows
from baselines.masked_logits import log_prob_and_entropy

__all__ = ["FastPPOTorchLearner", "LearnFromRealSteps"]


class LearnFromRealSteps(ConnectorV2):
    """A learner connector piece that removes the rows the loss masks out (``loss_mask`` False) and the mask,
    from every module's batch without a time rank. Placed after GAE, which needs the artificial steps."""

    def __call__(self, *, rl_module, batch: dict[str, Any], episodes, **kwargs) -> dict[str, Any]:
        for module_id, columns in list(batch.items()):
            mask = columns.get(Columns.LOSS_MASK) if isinstance(columns, dict) else None
            if mask is None or rl_module[module_id].is_stateful():
                continue
            rows = {key: value for key, value in columns.items() if key != Columns.LOSS_MASK}
            keep = torch.as_tensor(mask, dtype=torch.bool)
            batch[module_id] = rows if bool(keep.all()) else take_rows(rows, np.flatnonzero(keep.cpu().numpy()))
        return batch


class FastPPOTorchLearner(LeanPPOTorchLearner):
    """RLlib's PPO learner on the real steps, with the torch backend's kernels (see the module docstring)."""

    def build(self) -> None:
        super().build()
        if self._learner_connector is not None and self.config.add_default_connectors_to_learner_pipeline:
            self._learner_connector.append(LearnFromRealSteps())

    def configure_optimizers_for_module(self, module_id, config=None) -> None:
        """RLlib's optimiser, Adam at the config's learning rate (or schedule), as torch's fused kernel."""
        params = self.get_parameters(self._module[module_id])
        self.register_optimizer(module_id=module_id, optimizer=torch.optim.Adam(params, fused=True), params=params,
                                lr_or_lr_schedule=config.lr)

    @staticmethod
    def log_prob_and_entropy(logits: torch.Tensor, actions: torch.Tensor,
                             nvec: list[int] | None) -> tuple[torch.Tensor, torch.Tensor]:
        """The torch backend's log-probabilities and entropies (``nvec`` None: one ``Discrete`` action)."""
        if nvec is None:
            return log_prob_and_entropy(logits, actions.long()[..., None], [logits.shape[-1]])
        return log_prob_and_entropy(logits, actions.long(), nvec)
