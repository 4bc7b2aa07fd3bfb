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

Runs with this learner also let the masking module draw masked PPO's actions (``draw_actions``: the torch
backend's Gumbel-max draw instead of RLlib's ``multinomial``; see
:mod:`baselines.backends.rllib_masking_module`), which takes about a quarter of the sampling time off.

``docs/benchmarks.md`` has the speed and the same-score check against ``exact`` on the three envs.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from ray.rllib.connectors.connector_v2 import ConnectorV2
from ray.rllib.core.columns import Columns
from ray.rllib.env.single_agent_episode import SingleAgentEpisode
from ray.rllib.evaluation.postprocessing import Postprocessing
from ray.rllib.policy.sample_batch import MultiAgentBatch, SampleBatch
from ray.rllib.utils.postprocessing.value_predictions import compute_value_targets

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

    #: RLlib's PPO learner pipeline with :class:`LearnFromRealSteps`: what :func:`real_steps_batch` computes.
    DEFAULT_PIPELINE = ("AddOneTsToEpisodesAndTruncate", "AddObservationsFromEpisodesToBatch",
                        "AddColumnsFromEpisodesToTrainBatch", "AddTimeDimToBatchAndZeroPad",
                        "AddStatesFromEpisodesToBatch", "BatchIndividualItems", "NumpyToTensor",
                        "GeneralAdvantageEstimation", "LearnFromRealSteps")

    def build(self) -> None:
        super().build()
        pipeline = self._learner_connector
        if pipeline is not None and self.config.add_default_connectors_to_learner_pipeline:
            pipeline.append(LearnFromRealSteps())
        #: Whether :func:`real_steps_batch` may stand in for the pipeline: RLlib's own pieces and nothing else,
        #: one stateless module with a value function, on the CPU.
        self._bulk_batches = (pipeline is not None and tuple(type(piece).__name__ for piece in pipeline.connectors)
                              == self.DEFAULT_PIPELINE and len(self.module.keys()) == 1
                              and str(self._device) == "cpu"
                              and not any(self.module[m].is_stateful() for m in self.module.keys()))

    def _make_batch_if_necessary(self, training_data):
        """The learner connector's batch of the episodes, from :func:`real_steps_batch` when it applies."""
        if self._bulk_batches and training_data.episodes is not None and training_data.batch is None:
            (module_id,) = self.module.keys()
            config = self.config.get_config_for_module(module_id)
            columns = real_steps_batch(self.module[module_id], training_data.episodes, gamma=config.gamma,
                                       lambda_=config.lambda_)
            if columns is not None:
                return MultiAgentBatch({module_id: SampleBatch(columns)},
                                       env_steps=sum(len(episode) for episode in training_data.episodes))
        return super()._make_batch_if_necessary(training_data)

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


def real_steps_batch(module, episodes: list, *, gamma: float, lambda_: float) -> dict[str, Any] | None:
    """The batch RLlib's PPO learner connector makes of ``episodes`` followed by :class:`LearnFromRealSteps`,
    built with a few array operations per column instead of per-step, per-episode Python: ``None`` when
    the episodes are not what the batched runner makes (see :func:`_episode_arrays`), for RLlib's own
    pipeline then.

    RLlib's pipeline appends one artificial step to each episode chunk (the last observation, action and
    model outputs repeated, reward 0, ``loss_mask`` False; the chunk's last real step marked terminated,
    or truncated when the chunk goes on), batches every column, runs the value network on all rows, and
    computes GAE over them (``compute_value_targets``) with advantages standardised over all rows. Here
    the same rows are built as arrays, the value network runs once on the same tensor, GAE is RLlib's
    function on the same arrays, and the artificial rows are dropped at the end: every tensor equal to
    the pipeline's (tested). Actions and model outputs, which the artificial rows only repeat, are never
    built for them."""
    arrays = [_episode_arrays(episode) for episode in episodes]
    if not arrays or any(a is None for a in arrays):
        return None
    lengths = np.array([len(a["actions"]) for a in arrays])
    n = int(lengths.sum()) + len(arrays)
    real = np.ones(n, dtype=bool)
    real[np.cumsum(lengths + 1) - 1] = False  # each chunk's artificial step
    last_real = np.cumsum(lengths + 1) - 2

    obs_parts = [a["obs"] for a in arrays]  # len + 1 observations: the artificial row's is the last one
    if isinstance(obs_parts[0], dict):
        obs = {key: torch.from_numpy(np.concatenate([p[key] for p in obs_parts])) for key in obs_parts[0]}
    else:
        obs = torch.from_numpy(np.concatenate(obs_parts))
    rewards = np.zeros(n, dtype=np.float32)  # the episodes hold float64; RLlib's batch float32
    rewards[real] = np.concatenate([a["rewards"] for a in arrays])
    terminateds = np.zeros(n, dtype=bool)
    truncateds = np.zeros(n, dtype=bool)
    terminateds[last_real] = [a["terminated"] for a in arrays]
    truncateds[last_real] = [not a["terminated"] or a["truncated"] for a in arrays]
    with torch.no_grad():
        values = module.compute_values({Columns.OBS: obs}).numpy()
    targets = compute_value_targets(values=values, rewards=rewards, terminateds=terminateds, truncateds=truncateds,
                                    gamma=gamma, lambda_=lambda_)
    advantages = targets - values
    advantages = (advantages - advantages.mean()) / max(1e-4, advantages.std())
    # Only the real rows are kept: the columns the artificial rows do not feed (actions and model outputs,
    # which RLlib fills with copies of each chunk's last) are the episodes' own, concatenated.
    real_rows = np.flatnonzero(real)
    return {
        Columns.TERMINATEDS: torch.from_numpy(terminateds[real_rows]),
        Columns.TRUNCATEDS: torch.from_numpy(truncateds[real_rows]),
        **take_rows({Columns.OBS: obs}, real_rows),
        Columns.ACTIONS: torch.from_numpy(np.concatenate([a["actions"] for a in arrays])),
        Columns.REWARDS: torch.from_numpy(rewards[real_rows]),
        **{key: torch.from_numpy(np.concatenate([a[key] for a in arrays]))
           for key in (Columns.ACTION_LOGP, Columns.ACTION_DIST_INPUTS)},
        Postprocessing.ADVANTAGES: torch.from_numpy(advantages[real_rows]),
        Postprocessing.VALUE_TARGETS: torch.from_numpy(targets[real_rows])}


def _episode_arrays(episode) -> dict[str, Any] | None:
    """An episode chunk's arrays as the batched runner makes it (a ``SingleAgentEpisode`` in numpy, no
    lookback, infos empty, the two model outputs the PPO loss reads); None for any other episode."""
    if not isinstance(episode, SingleAgentEpisode) or not episode.is_numpy:
        return None
    buffers = (episode.observations, episode.actions, episode.rewards)
    outputs = episode.extra_model_outputs
    if any(b.lookback for b in buffers) or set(outputs) != {Columns.ACTION_LOGP, Columns.ACTION_DIST_INPUTS} or \
            any(b.lookback for b in outputs.values()) or len(episode) == 0:
        return None
    return {"obs": episode.observations.data, "actions": episode.actions.data, "rewards": episode.rewards.data,
            Columns.ACTION_LOGP: outputs[Columns.ACTION_LOGP].data,
            Columns.ACTION_DIST_INPUTS: outputs[Columns.ACTION_DIST_INPUTS].data,
            "terminated": bool(episode.is_terminated), "truncated": bool(episode.is_truncated)}
