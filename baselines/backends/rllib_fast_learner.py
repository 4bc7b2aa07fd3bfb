"""The RLlib backend's default learner (``rllib_learner=fast``): RLlib's PPO learner through its documented hooks.

:class:`FastPPOTorchLearner` is RLlib's ``PPOTorchLearner`` (its ``update``: the epochs of minibatches,
the metrics) with only the methods RLlib documents for overriding replaced:

- ``compute_loss_for_module``: RLlib's PPO loss, in RLlib's order of operations, with the log-probabilities
  and entropies of categorical actions from the suite's one masked categorical
  (:func:`baselines.masked_logits.log_prob_and_entropy`: ``log_softmax``, a gather and ``-(p log p)``, in
  fewer kernels than a ``torch.distributions.Categorical`` per sub-action, validated twice per minibatch);
  Box actions take RLlib's own loss. The loss statistics RLlib logs with ``window=1`` (so an update reports
  its last minibatch's) are worked out once per update, from the last minibatch's tensors, in
  ``after_gradient_based_update``.
- ``configure_optimizers_for_module``: Adam as RLlib configures it, as torch's fused kernel (one kernel
  per step instead of about 12 per parameter tensor; it takes a learning-rate schedule's tensor rate).
- ``postprocess_gradients_for_module``: clipping by the global norm in RLlib's formula, in three fused
  calls (``torch._foreach_norm``/``_foreach_mul_``) instead of one per tensor: the same bits (tested).
- ``apply_gradients``: the gradients set and the optimisers stepped; RLlib's own method (finiteness
  checks per tensor, warnings, ``nan_to_num``) runs only when one fused norm finds a non-finite gradient.

The batch comes from the learner connector :class:`PPOBatchFromEpisodes`, which the backend's config
installs in place of RLlib's default pipeline (``training(learner_connector=...,
add_default_connectors_to_learner_pipeline=False)``) whenever the batched runner samples: it builds in a
few array operations per column what RLlib's PPO pipeline (one artificial step appended to every
episode chunk, the value network on all rows, GAE with advantages standardised over all rows) builds
per step and per episode in Python, and drops the artificial steps, which the loss masks out anyway
(``loss_mask``): about 450 of 8,640 rows per 8,192 env steps on portfolio, carried through every
minibatch of every epoch. The advantages, value targets and every row learned from are RLlib's
(tested tensor for tensor); each minibatch holds ``minibatch_size`` real steps instead of about 95% of
that, so there are 80 minibatches per 8,192 steps, not 85.

``rllib_learner=exact`` is RLlib's own ``PPOTorchLearner`` with its own pipeline and draws.
``docs/benchmarks.md`` has the speed and the same-score check against ``exact`` on the three envs.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
import torch
from ray.rllib.algorithms.ppo.ppo import (
    LEARNER_RESULTS_KL_KEY,
    LEARNER_RESULTS_VF_EXPLAINED_VAR_KEY,
    LEARNER_RESULTS_VF_LOSS_UNCLIPPED_KEY,
)
from ray.rllib.algorithms.ppo.torch.ppo_torch_learner import PPOTorchLearner
from ray.rllib.connectors.connector_v2 import ConnectorV2
from ray.rllib.core.columns import Columns
from ray.rllib.core.learner.learner import ENTROPY_KEY, POLICY_LOSS_KEY, VF_LOSS_KEY
from ray.rllib.env.single_agent_episode import SingleAgentEpisode
from ray.rllib.evaluation.postprocessing import Postprocessing
from ray.rllib.utils.postprocessing.value_predictions import compute_value_targets
from ray.rllib.utils.torch_utils import explained_variance

from baselines.masked_logits import log_prob_and_entropy
from envs.masking import action_nvec

__all__ = ["FastPPOTorchLearner", "PPOBatchFromEpisodes", "clip_by_global_norm", "real_steps_batch"]


def clip_by_global_norm(grads: list[torch.Tensor], grad_clip: float) -> torch.Tensor:
    """RLlib's ``clip_gradients(..., grad_clip_by="global_norm")`` (``ray.rllib.utils.torch_utils``) in three
    fused calls, in place; the global norm, as RLlib's returns it."""
    if not grads:
        return torch.tensor(0.0)
    # RLlib: the norm of the stacked per-tensor norms, each and the total with infinities made finite.
    norms = torch.stack(torch._foreach_norm(grads, 2.0)).nan_to_num(neginf=-10e8, posinf=10e8)
    total_norm = torch.norm(norms, 2.0).nan_to_num(neginf=-10e8, posinf=10e8)
    clip_coeff = torch.clamp(grad_clip / torch.clamp(total_norm + 1e-6, min=grad_clip), max=1.0)
    torch._foreach_mul_(grads, clip_coeff)
    return total_norm


class FastPPOTorchLearner(PPOTorchLearner):
    """RLlib's PPO torch learner with the suite's kernels, through RLlib's documented hooks (see the module
    docstring)."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        #: Per module, what the loss statistics of the latest minibatch are made of (see compute_loss_for_module).
        self._last_minibatch: dict[str, tuple] = {}

    def configure_optimizers_for_module(self, module_id, config=None) -> None:
        """RLlib's optimiser, Adam at the config's learning rate (or schedule), as torch's fused kernel."""
        params = self.get_parameters(self.module[module_id])
        self.register_optimizer(module_id=module_id, optimizer=torch.optim.Adam(params, fused=True), params=params,
                                lr_or_lr_schedule=config.lr)

    def postprocess_gradients_for_module(self, *, module_id, config=None, module_gradients_dict):
        """Clipping by the global norm as RLlib's (:func:`clip_by_global_norm`); other settings are RLlib's own."""
        if not config.grad_clip or config.grad_clip_by != "global_norm" or config.log_gradients:
            return super().postprocess_gradients_for_module(module_id=module_id, config=config,
                                                            module_gradients_dict=module_gradients_dict)
        for optimizer_name, optimizer in self.get_optimizers_for_module(module_id):
            grads = self.filter_param_dict_for_optimizer(param_dict=module_gradients_dict, optimizer=optimizer)
            norm = clip_by_global_norm([g.detach() for g in grads.values() if g is not None], config.grad_clip)
            self.metrics.log_value(key=(module_id, f"gradients_{optimizer_name}_global_norm"), value=norm, window=1)
        return module_gradients_dict

    def apply_gradients(self, gradients_dict) -> None:
        """Set the gradients and step every optimiser; RLlib's own method where a gradient is not finite."""
        grads = [g for g in gradients_dict.values() if g is not None]
        if not grads or not bool(torch.isfinite(torch.stack(torch._foreach_norm(grads))).all()):
            return super().apply_gradients(gradients_dict)  # RLlib's checks, warnings and repairs
        for module_id in self.module.keys():
            for _, optimizer in self.get_optimizers_for_module(module_id):
                for group in optimizer.param_groups:
                    for param in group["params"]:
                        param.grad = gradients_dict.get(self.get_param_ref(param))
                optimizer.step()

    def compute_loss_for_module(self, *, module_id, config, batch: dict[str, Any], fwd_out: dict[str, Any]):
        module = self.module[module_id].unwrapped()
        space = module.action_space
        if config.use_kl_loss or not config.use_critic or not isinstance(space, (gym.spaces.Discrete,
                                                                                 gym.spaces.MultiDiscrete)):
            return super().compute_loss_for_module(module_id=module_id, config=config, batch=batch, fwd_out=fwd_out)
        if Columns.LOSS_MASK in batch:
            mask = batch[Columns.LOSS_MASK]
            num_valid = torch.sum(mask)

            def possibly_masked_mean(data_):
                return torch.sum(data_[mask]) / num_valid
        else:
            possibly_masked_mean = torch.mean
        # The order of operations is PPOTorchLearner.compute_loss_for_module's.
        log_prob, curr_entropy = log_prob_and_entropy(fwd_out[Columns.ACTION_DIST_INPUTS], batch[Columns.ACTIONS],
                                                      action_nvec(space))
        logp_ratio = torch.exp(log_prob - batch[Columns.ACTION_LOGP])
        advantages = batch[Postprocessing.ADVANTAGES]
        surrogate_loss = torch.min(advantages * logp_ratio,
                                   advantages * torch.clamp(logp_ratio, 1 - config.clip_param, 1 + config.clip_param))
        value_fn_out = module.compute_values(batch, embeddings=fwd_out.get(Columns.EMBEDDINGS))
        vf_loss = torch.pow(value_fn_out - batch[Postprocessing.VALUE_TARGETS], 2.0)
        vf_loss_clipped = torch.clamp(vf_loss, 0, config.vf_clip_param)
        entropy_coeff = self.entropy_coeff_schedulers_per_module[module_id].get_current_value()
        total_loss = possibly_masked_mean(-surrogate_loss + config.vf_loss_coeff * vf_loss_clipped
                                          - (entropy_coeff * curr_entropy))
        # RLlib logs these statistics with window=1, so an update reports its last minibatch's: they are worked
        # out from that minibatch's tensors once the epochs are done (after_gradient_based_update).
        self._last_minibatch[module_id] = (possibly_masked_mean, surrogate_loss.detach(), vf_loss_clipped.detach(),
                                           vf_loss.detach(), curr_entropy.detach(),
                                           batch[Postprocessing.VALUE_TARGETS], value_fn_out.detach())
        return total_loss

    def after_gradient_based_update(self, *, timesteps: dict[str, Any]) -> None:
        for module_id, (mean, surrogate, vf_clipped, vf, entropy, targets, values) in self._last_minibatch.items():
            self.metrics.log_dict({
                POLICY_LOSS_KEY: -mean(surrogate),
                VF_LOSS_KEY: mean(vf_clipped),
                LEARNER_RESULTS_VF_LOSS_UNCLIPPED_KEY: mean(vf),
                LEARNER_RESULTS_VF_EXPLAINED_VAR_KEY: explained_variance(targets, values),
                ENTROPY_KEY: mean(entropy),
                LEARNER_RESULTS_KL_KEY: torch.tensor(0.0, device=values.device),
            }, key=module_id, window=1)
        self._last_minibatch.clear()
        super().after_gradient_based_update(timesteps=timesteps)


class PPOBatchFromEpisodes(ConnectorV2):
    """The learner connector of the batched runner's runs: :func:`real_steps_batch` for the one module.

    Installed through the config (``learner_connector=``) with RLlib's default pieces turned off; it takes
    only the episode chunks the batched runner makes and raises on anything else, so a run never silently
    learns from another pipeline's batch."""

    def __init__(self, input_observation_space=None, input_action_space=None, *, gamma: float, lambda_: float,
                 **kwargs):
        super().__init__(input_observation_space, input_action_space, **kwargs)
        self.gamma, self.lambda_ = gamma, lambda_

    def __call__(self, *, rl_module, batch: dict[str, Any], episodes, **kwargs) -> dict[str, Any]:
        module_ids = list(rl_module.keys())
        if len(module_ids) != 1:
            raise ValueError(f"PPOBatchFromEpisodes trains one module (the batched runner's), not {module_ids}")
        (module_id,) = module_ids
        columns = real_steps_batch(rl_module[module_id], episodes, gamma=self.gamma, lambda_=self.lambda_)
        if columns is None:
            raise ValueError("PPOBatchFromEpisodes takes the batched runner's episode chunks (numpy, no lookback, "
                             "the two model outputs PPO reads); got others")
        return {**batch, module_id: columns}


def real_steps_batch(module, episodes: list, *, gamma: float, lambda_: float) -> dict[str, Any] | None:
    """The batch RLlib's PPO learner connector makes of ``episodes`` without the rows the loss masks out
    (``loss_mask`` False), built with a few array operations per column instead of per-step, per-episode
    Python: ``None`` when the episodes are not what the batched runner makes (see :func:`_episode_arrays`).

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
        Columns.OBS: _rows(obs, real_rows),
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


def _rows(data: Any, rows: np.ndarray) -> Any:
    """A tensor (or a dict of them) at ``rows``."""
    index = torch.from_numpy(rows)
    if isinstance(data, dict):
        return {key: value.index_select(0, index) for key, value in data.items()}
    return data.index_select(0, index)
