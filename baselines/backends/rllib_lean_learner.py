"""RLlib's PPO learner without the work whose result the suite's PPO never uses; updates are bit-identical.

:class:`LeanPPOTorchLearner` is RLlib 2.60's ``PPOTorchLearner`` with per-minibatch costs
removed (cProfile of the RLlib backend on portfolio: about 85 minibatches per iteration, 25 ms each):

- **The loss of categorical actions** is RLlib's formula computed on the logits directly. RLlib builds a
  ``torch.distributions.Categorical`` per sub-action twice per minibatch (the current policy's, and the
  sampling policy's, which is only read for the KL loss the suite turns off), each validating its
  arguments, and validates every action again in ``log_prob``. Here each sub-action's log-probability and
  entropy are torch's own expressions (``logits - logsumexp``, a gather, ``-(clamp(logits) * softmax).sum``)
  summed in RLlib's order, so the loss, its gradient and the logged statistics are the same bits.
- **The finiteness checks of the gradients**: RLlib tests ``isfinite`` on every gradient tensor twice
  (before setting it, and before stepping the optimiser). Here one fused norm of all gradients (a single
  ``torch._foreach_norm``) tells whether they are all finite; only when they are not does RLlib's own
  path run, with its warnings and its ``nan_to_num``.
- **Clipping by the global norm and the Adam step, one tensor at a time**: RLlib's ``clip_gradients``
  takes each gradient's norm and scales each gradient in its own call, and its ``torch.optim.Adam(params)``
  runs torch's single-tensor Adam (torch picks ``foreach`` by default only for CUDA tensors): about 12
  small kernels per parameter tensor per minibatch. Here the norms and the scaling are ``torch._foreach_*``
  calls in RLlib's formula, and Adam is torch's ``foreach`` implementation at a constant learning rate
  (under a schedule RLlib's own, see :meth:`LeanPPOTorchLearner.configure_optimizers_for_module`). Both are
  the same bits as RLlib's on CPU (tested: the clipped gradients and global norm on random gradients of
  many scales, and whole seeded runs); torch's ``fused`` Adam is faster still but differs in the last bit,
  so it is not used.
- **The loss statistics of every minibatch**: RLlib logs the policy and value losses, explained variance,
  entropy and KL of each minibatch with ``window=1``, so only the last minibatch's reach the results. Here
  they are computed once per update, from the last minibatch's tensors, after the epochs.

- **The minibatches**: RLlib's ``Learner.update`` slices and concatenates ``SampleBatch`` objects per
  minibatch and shuffles the whole batch, column by column, at each pass. Here the same rows in the
  same order are picked as index arrays (:mod:`baselines.backends.rllib_minibatches`, RLlib's schedule and
  its draws from numpy's generator) and gathered once per tensor, only the columns a minibatch's update
  reads (not the rewards and episode ends GAE has used up, nor, under this class's loss, the sampling
  policy's logits); each minibatch still goes through RLlib's ``_update`` (forward pass, losses,
  gradients, clipping, optimiser step). RLlib's step metrics of the minibatches (counts of rows and env
  steps) are logged once per update with the same sums. Data iterators, stateful modules and compiled
  updates take RLlib's own loop.

Everything else (GAE in the learner connector, the KL loss when enabled, Box actions, the metrics) is
RLlib's. ``tests/baselines/test_rllib_lean_learner.py`` checks the bit-identity against RLlib's learner.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import torch
from ray.rllib.algorithms.ppo.ppo import (
    LEARNER_RESULTS_KL_KEY,
    LEARNER_RESULTS_VF_EXPLAINED_VAR_KEY,
    LEARNER_RESULTS_VF_LOSS_UNCLIPPED_KEY,
)
from ray.rllib.algorithms.ppo.torch.ppo_torch_learner import PPOTorchLearner
from ray.rllib.core.columns import Columns
from ray.rllib.core.learner.learner import ENTROPY_KEY, POLICY_LOSS_KEY, VF_LOSS_KEY
from ray.rllib.core.learner.training_data import TrainingData
from ray.rllib.evaluation.postprocessing import Postprocessing
from ray.rllib.utils.metrics import (
    ALL_MODULES,
    MODULE_TRAIN_BATCH_SIZE_MEAN,
    NUM_ENV_STEPS_TRAINED,
    NUM_ENV_STEPS_TRAINED_LIFETIME,
    NUM_MODULE_STEPS_TRAINED,
    NUM_MODULE_STEPS_TRAINED_LIFETIME,
    WEIGHTS_SEQ_NO,
)
from ray.rllib.utils.metrics.ray_metrics import TimerAndPrometheusLogger
from ray.rllib.utils.torch_utils import clip_gradients, explained_variance

from baselines.backends.rllib_minibatches import cyclic_minibatch_indices, take_rows
from envs.masking import action_nvec

__all__ = ["LeanPPOTorchLearner", "categorical_log_prob_and_entropy", "clip_gradients_foreach"]


def categorical_log_prob_and_entropy(logits: torch.Tensor, actions: torch.Tensor,
                                     nvec: list[int] | None) -> tuple[torch.Tensor, torch.Tensor]:
    """Log-probability of ``actions`` and entropy under the categorical(s) of ``logits``, as RLlib's
    ``TorchCategorical`` (``nvec`` None: ``Discrete``) or ``TorchMultiCategorical`` compute them.

    Not :func:`baselines.masked_logits.log_prob_and_entropy` (the torch backend's): that one takes
    ``log_softmax`` and sums the sub-actions in another order, equal to rounding only, and this learner's
    updates must be RLlib's to the bit."""
    if nvec is None:
        return _categorical(logits, actions)
    parts = [_categorical(block, action)
             for block, action in zip(torch.split(logits, nvec, dim=-1), torch.unbind(actions, dim=-1))]
    log_prob = torch.sum(torch.stack([p[0] for p in parts]), dim=0)
    entropy = torch.sum(torch.stack([p[1] for p in parts], dim=-1), dim=-1)
    return log_prob, entropy


def _categorical(logits: torch.Tensor, actions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """torch's ``Categorical(logits=...)``: ``log_prob(actions)`` and ``entropy()``, without validation."""
    normalized = logits - logits.logsumexp(dim=-1, keepdim=True)
    log_prob = normalized.gather(-1, actions.long().unsqueeze(-1)).squeeze(-1)
    probs = torch.softmax(normalized, dim=-1)
    entropy = -(torch.clamp(normalized, min=torch.finfo(normalized.dtype).min) * probs).sum(-1)
    return log_prob, entropy


def clip_gradients_foreach(gradients_dict: dict[Any, torch.Tensor | None], *, grad_clip: float | None = None,
                           grad_clip_by: str = "value") -> torch.Tensor | None:
    """RLlib's ``clip_gradients`` (``ray.rllib.utils.torch_utils``), by the global norm in three fused calls;
    the other modes are RLlib's own. In place, and returns the global norm, as RLlib's does."""
    if grad_clip is None or grad_clip_by != "global_norm":
        return clip_gradients(gradients_dict, grad_clip=grad_clip, grad_clip_by=grad_clip_by)
    if not gradients_dict:
        return torch.tensor(0.0)
    grads = [g.detach() for g in gradients_dict.values() if g is not None]
    # RLlib: the norm of the stacked per-tensor norms, each and the total with infinities made finite.
    norms = torch.stack(torch._foreach_norm(grads, 2.0)).nan_to_num(neginf=-10e8, posinf=10e8)
    total_norm = torch.norm(norms, 2.0).nan_to_num(neginf=-10e8, posinf=10e8)
    clip_coeff = torch.clamp(grad_clip / torch.clamp(total_norm + 1e-6, min=grad_clip), max=1.0)
    torch._foreach_mul_(grads, clip_coeff)
    return total_norm


class LeanPPOTorchLearner(PPOTorchLearner):
    """RLlib's PPO torch learner, leaner per minibatch (see the module docstring)."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self._nvec_of_module: dict[str, list[int] | None | bool] = {}
        #: Per module, what the loss statistics of the latest minibatch are made of (see compute_loss_for_module).
        self._last_minibatch: dict[str, tuple] = {}

    def update(self, batch=None, batches=None, batch_refs=None, episodes=None, episodes_refs=None,
               data_iterators=None, training_data=None, *, timesteps=None, num_total_minibatches: int = 0,
               num_epochs: int = 1, minibatch_size: int | None = None, shuffle_batch_per_epoch: bool = False,
               _no_metrics_reduce: bool = False, **kwargs):
        """RLlib's ``Learner.update`` with the minibatches of :mod:`baselines.backends.rllib_minibatches`:
        the same updates and metrics. What that loop does not cover goes to RLlib's own."""
        plain = (minibatch_size and not num_total_minibatches and not data_iterators and not kwargs
                 and (training_data is None or not training_data.data_iterators)
                 and not self._torch_compile_complete_update
                 and not any(self.module[module_id].is_stateful() for module_id in self.module.keys()))
        if not plain:
            return super().update(batch=batch, batches=batches, batch_refs=batch_refs, episodes=episodes,
                                  episodes_refs=episodes_refs, data_iterators=data_iterators,
                                  training_data=training_data, timesteps=timesteps,
                                  num_total_minibatches=num_total_minibatches, num_epochs=num_epochs,
                                  minibatch_size=minibatch_size, shuffle_batch_per_epoch=shuffle_batch_per_epoch,
                                  _no_metrics_reduce=_no_metrics_reduce, **kwargs)
        # Learner.update and Learner._create_iterator_if_necessary (RLlib 2.60), the iterator aside.
        self._check_is_built()
        self.before_gradient_based_update(timesteps=timesteps or {})
        if training_data is None:
            training_data = TrainingData(batch=batch, batches=batches, batch_refs=batch_refs, episodes=episodes,
                                         episodes_refs=episodes_refs)
        training_data.validate()
        training_data.solve_refs()
        assert training_data.batches is None, "`training_data.batches` must be None!"
        self._weights_seq_no += 1
        batch = self._make_batch_if_necessary(training_data=training_data)
        for module_id in list(batch.policy_batches.keys()):
            if not self.should_module_be_updated(module_id, batch):
                del batch.policy_batches[module_id]
        if not batch.policy_batches:
            return {}
        unknown = set(batch.policy_batches) - set(self.module.keys())
        if unknown:
            raise ValueError(f"Batch contains one or more ModuleIDs ({unknown}) that are not in this Learner!")
        columns = {module_id: self._columns_to_minibatch(module_id, module_batch)
                   for module_id, module_batch in batch.policy_batches.items()}
        env_steps = batch.env_steps()
        loss_per_module = {}
        rows = {module_id: len(module_batch) for module_id, module_batch in batch.policy_batches.items()}
        minibatch_rows = []
        for indices in cyclic_minibatch_indices(rows, num_epochs=num_epochs, minibatch_size=minibatch_size,
                                                shuffle=shuffle_batch_per_epoch and num_epochs > 1):
            minibatch = {module_id: take_rows(columns[module_id], index) for module_id, index in indices.items()}
            with TimerAndPrometheusLogger(self._metrics_learner_inner_update):
                _, loss_per_module, _ = self._update(minibatch)
            minibatch_rows.append({module_id: len(index) for module_id, index in indices.items()})
        self._log_trained_steps(minibatch_rows, env_steps)
        for module_id, loss in loss_per_module.items():
            self.metrics.log_value(key=(module_id, self.TOTAL_LOSS_KEY), value=loss, window=1)
        self.after_gradient_based_update(timesteps=timesteps or {})
        if not _no_metrics_reduce:
            return self.metrics.reduce()

    def _log_trained_steps(self, minibatch_rows: list[dict[str, int]], env_steps: int) -> None:
        """The step metrics RLlib logs after each minibatch (``Learner._log_metrics`` and
        ``_log_steps_trained_metrics``: weights' sequence number, each module's rows as a mean and as sums, the
        batch's env steps again per minibatch), logged once for all the minibatches of an update when they all
        have the same rows, as :func:`cyclic_minibatch_indices` makes them: the same sums, lifetime sums and
        means, in one call per metric instead of one per minibatch (about 2% of an update)."""
        if not minibatch_rows:
            return
        if any(rows != minibatch_rows[0] for rows in minibatch_rows):
            for rows in minibatch_rows:
                counts = _MinibatchCounts(rows, env_steps)
                self._log_metrics(batch=counts)
                self._log_steps_trained_metrics(counts)
            return
        count, rows = len(minibatch_rows), minibatch_rows[0]
        self._log_metrics(batch=_MinibatchCounts({module_id: n * count for module_id, n in rows.items()},
                                                 env_steps * count))
        log = self.metrics.log_value
        for module_id, n in rows.items():
            log((module_id, WEIGHTS_SEQ_NO), self._weights_seq_no, window=1)
            log(key=(module_id, MODULE_TRAIN_BATCH_SIZE_MEAN), value=n, reduce="mean")
            log(key=(module_id, NUM_MODULE_STEPS_TRAINED), value=n * count, reduce="sum")
            log(key=(module_id, NUM_MODULE_STEPS_TRAINED_LIFETIME), value=n * count, reduce="lifetime_sum",
                with_throughput=True)
            log(key=(ALL_MODULES, NUM_MODULE_STEPS_TRAINED), value=n * count, reduce="sum", with_throughput=True)
            log(key=(ALL_MODULES, NUM_MODULE_STEPS_TRAINED_LIFETIME), value=n * count, reduce="lifetime_sum",
                with_throughput=True)
        log((ALL_MODULES, NUM_ENV_STEPS_TRAINED), env_steps * count, reduce="sum", with_throughput=True)
        log((ALL_MODULES, NUM_ENV_STEPS_TRAINED_LIFETIME), env_steps * count, reduce="lifetime_sum",
            with_throughput=True)

    def _columns_to_minibatch(self, module_id, module_batch) -> dict[str, Any]:
        """The columns of ``module_id``'s batch that a minibatch's update reads: not the rewards and episode
        ends (GAE's inputs, used up in the learner connector), nor the sampling policy's logits when this
        class's loss runs (RLlib's reads them, for the KL loss). The other columns are RLlib's minibatch's."""
        unread = {Columns.REWARDS, Columns.TERMINATEDS, Columns.TRUNCATEDS}
        if not self._falls_back_to_rllib_loss(module_id, self.config.get_config_for_module(module_id)):
            unread.add(Columns.ACTION_DIST_INPUTS)
        return {key: value for key, value in module_batch.items() if key not in unread}

    def _falls_back_to_rllib_loss(self, module_id, config) -> bool:
        """Whether :meth:`compute_loss_for_module` hands ``module_id``'s loss to RLlib's: with the KL loss,
        without a critic, or for actions that are not categorical."""
        nvec = self._categorical_nvec(module_id, self.module[module_id].unwrapped())
        return config.use_kl_loss or nvec is False or not config.use_critic

    def configure_optimizers_for_module(self, module_id, config=None) -> None:
        """RLlib's optimiser (Adam at the config's learning rate), stepping all tensors at once. Under a
        learning-rate schedule RLlib's scheduler sets the rate as a tensor, which torch's ``foreach`` Adam
        refuses and its single-tensor Adam divides in float32: RLlib's own optimiser then."""
        if not isinstance(config.lr, (int, float)):
            return super().configure_optimizers_for_module(module_id, config)
        params = self.get_parameters(self._module[module_id])
        self.register_optimizer(module_id=module_id, optimizer=torch.optim.Adam(params, foreach=True), params=params,
                                lr_or_lr_schedule=config.lr)

    @staticmethod
    def _get_clip_function():
        return clip_gradients_foreach

    def compute_loss_for_module(self, *, module_id, config, batch: dict[str, Any], fwd_out: dict[str, Any]):
        module = self.module[module_id].unwrapped()
        nvec = self._categorical_nvec(module_id, module)
        if self._falls_back_to_rllib_loss(module_id, config):
            return super().compute_loss_for_module(module_id=module_id, config=config, batch=batch, fwd_out=fwd_out)
        if Columns.LOSS_MASK in batch:
            mask = batch[Columns.LOSS_MASK]
            num_valid = torch.sum(mask)

            def possibly_masked_mean(data_):
                return torch.sum(data_[mask]) / num_valid
        else:
            possibly_masked_mean = torch.mean
        # The order of operations is PPOTorchLearner.compute_loss_for_module's, so with this class's
        # log_prob_and_entropy every float is the same (the fast learner swaps in the torch backend's).
        log_prob, curr_entropy = self.log_prob_and_entropy(fwd_out[Columns.ACTION_DIST_INPUTS],
                                                           batch[Columns.ACTIONS], nvec)
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

    @staticmethod
    def log_prob_and_entropy(logits: torch.Tensor, actions: torch.Tensor,
                             nvec: list[int] | None) -> tuple[torch.Tensor, torch.Tensor]:
        """The loss's log-probabilities and entropies of categorical actions: RLlib's, to the bit."""
        return categorical_log_prob_and_entropy(logits, actions, nvec)

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

    def _categorical_nvec(self, module_id, module) -> list[int] | None | bool:
        """The sub-action sizes of ``module``'s categorical actions: None for ``Discrete``, a list for
        ``MultiDiscrete``, False for any other action space (RLlib's own loss then). Worked out once per
        module, not per minibatch."""
        cache = self._nvec_of_module
        if module_id not in cache:
            space = module.action_space
            if isinstance(space, gym.spaces.Discrete):
                cache[module_id] = None
            elif isinstance(space, gym.spaces.MultiDiscrete) and space.nvec.ndim == 1:
                cache[module_id] = [int(n) for n in action_nvec(space)]
            else:
                cache[module_id] = False
        return cache[module_id]

    def apply_gradients(self, gradients_dict) -> None:
        grads = [g for g in gradients_dict.values() if g is not None]
        if self._grad_scalers is not None or self._lr_scheduler_classes is not None or not grads or not bool(
                torch.isfinite(torch.stack(torch._foreach_norm(grads))).all()):
            return super().apply_gradients(gradients_dict)  # RLlib's checks, warnings and repairs
        for pid, grad in gradients_dict.items():
            self._params[pid].grad = grad
        for module_id, optimizer_names in self._module_optimizers.items():
            for optimizer_name in optimizer_names:
                self.get_optimizer(module_id, optimizer_name).step()


class _MinibatchCounts:
    """What RLlib's per-minibatch step metrics read of a minibatch: each module's rows and the env steps of
    the whole batch (RLlib's minibatches carry the batch's, so each one counts them again)."""

    def __init__(self, rows: dict[str, int], env_steps: int):
        self.policy_batches = {module_id: range(n) for module_id, n in rows.items()}
        self._env_steps = env_steps

    def env_steps(self) -> int:
        return self._env_steps
