"""The suite's one masked categorical: masking, sampling, log-probability and entropy of flat logits.

Actions are ``Discrete`` or ``MultiDiscrete``; logits are flat, ``(..., sum(nvec))``, one block per
sub-action (the layout of the suite's flat mask and of RLlib's multi-categorical distribution). Every
backend and evaluation use these functions: the torch backend's policy head, the RLlib backend's
module (its draws and its learner's loss) and :func:`baselines.evaluation.choose_actions` (greedy and
stochastic evaluation). The one exception is the RLlib backend's exact-reproduction setting
(``rllib_learner=exact``), which leaves the draw and the loss to RLlib's own distribution classes, as
RLlib's stock PPO does. Ray-free: torch and numpy only.

Draws are Gumbel-max: ``argmax(logits - log(-log(u)))`` per sub-action, ``u`` uniform on (0, 1], from
a torch generator (:func:`sample_with_log_prob`) or given by the caller (:func:`choose`, evaluation's
numpy generator).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from envs.masking import EmptyMaskError

__all__ = ["MASKED_LOGIT", "apply_mask", "sample_with_log_prob", "log_prob_and_entropy", "choose"]

#: Logit of a masked value: probability exactly 0, entropy and KL terms finite.
MASKED_LOGIT = torch.finfo(torch.float32).min
_MASKED = torch.tensor(MASKED_LOGIT)  # a 0-d tensor: torch.where broadcasts it, no full-size copy


def apply_mask(logits: torch.Tensor, mask: torch.Tensor, nvec: Sequence[int], env_name: str) -> torch.Tensor:
    """``logits`` with masked-out values at :data:`MASKED_LOGIT`.

    Raises :class:`envs.masking.EmptyMaskError` naming ``env_name`` when a row admits no value of
    some sub-action: sampling there would silently pick an inadmissible action.
    """
    admitted = mask if mask.dtype == torch.bool else mask.bool()
    if len(set(nvec)) == 1:  # one pass over all sub-actions (30 strided ones cost 3 times as much)
        empty = ~admitted.unflatten(-1, (len(nvec), int(nvec[0]))).any(dim=-1)
    else:
        empty = torch.stack([~block.any(dim=-1) for block in torch.split(admitted, list(nvec), dim=-1)], dim=-1)
    if bool(empty.any()):
        k = int(empty.reshape(-1, len(nvec)).any(dim=0).nonzero()[0])
        count = int(empty[..., k].sum())
        raise EmptyMaskError(f"env {env_name!r} produced {count} observation(s) whose action mask admits no "
                             f"value of sub-action {k}; every env must keep at least one action admissible")
    return torch.where(admitted, logits, _MASKED)


def _blocks(logits: torch.Tensor, nvec: Sequence[int]) -> list[torch.Tensor]:
    return list(torch.split(logits, list(nvec), dim=-1))


def _equal_blocks(logits: torch.Tensor, nvec: Sequence[int]) -> torch.Tensor | None:
    """``logits`` as ``(..., len(nvec), n)`` when every sub-action has the same ``n`` values (a view), else None.

    One kernel over all sub-actions instead of one per sub-action; the per-value results are the same bits
    (each row of the last dimension is reduced as it is in its own block)."""
    if len(nvec) < 2 or len(set(nvec)) != 1:
        return None
    return logits.unflatten(-1, (len(nvec), int(nvec[0])))


def _sum_in_order(per_block: torch.Tensor) -> torch.Tensor:
    """``per_block`` ``(..., k)`` summed over the sub-actions one after the other, from 0: the same bits as a
    loop over the blocks (``torch.sum`` may group them otherwise)."""
    total = per_block[..., 0]
    for k in range(1, per_block.shape[-1]):
        total = total + per_block[..., k]
    return total


def _argmax_per_block(scores: torch.Tensor, nvec: Sequence[int]) -> torch.Tensor:
    """The index of each block's largest score (the first on ties): ``(..., len(nvec))``."""
    blocks = _equal_blocks(scores, nvec)
    if blocks is not None or len(nvec) == 1:
        return (blocks if blocks is not None else scores[..., None, :]).argmax(dim=-1)
    return torch.stack([block.argmax(dim=-1) for block in _blocks(scores, nvec)], dim=-1)


def _gumbel_scores(logits: torch.Tensor, uniform: torch.Tensor) -> torch.Tensor:
    """Gumbel-max's perturbed logits: the argmax of each block is a sample of its categorical."""
    return logits - torch.log(-torch.log(uniform))


def choose(logits: torch.Tensor, nvec: Sequence[int], uniform: torch.Tensor | None = None) -> torch.Tensor:
    """One value per sub-action, ``(N, len(nvec))``: the most likely (``uniform`` None, greedy), or a sample
    drawn with the caller's uniforms on (0, 1] (one per logit, ``logits``' shape)."""
    return _argmax_per_block(logits if uniform is None else _gumbel_scores(logits, uniform), nvec)


def sample_with_log_prob(logits: torch.Tensor, nvec: Sequence[int],
                         generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """A sample of each sub-action's categorical and the joint log-probability: ``(N, len(nvec))``, ``(N,)``.

    Gumbel-max on the (masked) logits: a masked value's logit is so low that it can never win.
    Equivalent to ``torch.distributions.Categorical`` per block, without its per-call overhead. Sub-actions
    of one size are drawn in one pass with the same uniforms, block after block, as the loop over blocks
    (same actions, log-probabilities and generator state).
    """
    blocks = _equal_blocks(logits, nvec)
    if blocks is not None:
        tiny = torch.finfo(blocks.dtype).tiny
        uniform = torch.rand((blocks.shape[-2], *blocks.shape[:-2], blocks.shape[-1]), generator=generator)
        uniform = uniform.clamp_(min=tiny).movedim(0, -2)  # block k's uniforms are drawn k-th, as in the loop
        choice = _gumbel_scores(blocks, uniform).argmax(dim=-1)
        log_p = torch.log_softmax(blocks, dim=-1).gather(-1, choice[..., None])[..., 0]
        return choice, _sum_in_order(log_p)
    return _sample_block_by_block(logits, nvec, generator)


def _sample_block_by_block(logits: torch.Tensor, nvec: Sequence[int],
                           generator: torch.Generator | None) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`sample_with_log_prob` one sub-action at a time (any sizes)."""
    actions, log_prob = [], torch.zeros(logits.shape[:-1], dtype=logits.dtype)
    for block in _blocks(logits, nvec):
        uniform = torch.rand(block.shape, generator=generator).clamp_(min=torch.finfo(block.dtype).tiny)
        choice = _gumbel_scores(block, uniform).argmax(dim=-1)
        actions.append(choice)
        log_prob = log_prob + torch.log_softmax(block, dim=-1).gather(-1, choice[..., None])[..., 0]
    return torch.stack(actions, dim=-1), log_prob


def log_prob_and_entropy(logits: torch.Tensor, actions: torch.Tensor,
                         nvec: Sequence[int]) -> tuple[torch.Tensor, torch.Tensor]:
    """Joint log-probability of ``actions`` ``(N, len(nvec))`` and joint entropy, both ``(N,)``. A single
    sub-action's actions may also come as ``(N,)`` (RLlib's layout of ``Discrete`` actions).

    Masked values have probability exactly 0 and contribute 0 to the entropy (``0 * log 0`` is
    computed as ``0 * MASKED_LOGIT``-sized finite numbers, never NaN). Sub-actions of one size go through
    one ``log_softmax``; values and gradients are the bits of the loop over blocks (tested).
    """
    actions = actions.long()
    if actions.dim() == logits.dim() - 1:
        actions = actions[..., None]
    blocks = _equal_blocks(logits, nvec)
    if blocks is not None:
        log_p = torch.log_softmax(blocks, dim=-1)
        log_prob = _sum_in_order(log_p.gather(-1, actions[..., None])[..., 0])
        return log_prob, -_sum_in_order((log_p.exp() * log_p).sum(dim=-1))
    return _log_prob_and_entropy_block_by_block(logits, actions, nvec)


def _log_prob_and_entropy_block_by_block(logits: torch.Tensor, actions: torch.Tensor,
                                         nvec: Sequence[int]) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`log_prob_and_entropy` one sub-action at a time (any sizes)."""
    log_prob = torch.zeros(logits.shape[:-1], dtype=logits.dtype)
    entropy = torch.zeros_like(log_prob)
    for k, block in enumerate(_blocks(logits, nvec)):
        log_p = torch.log_softmax(block, dim=-1)
        log_prob = log_prob + log_p.gather(-1, actions[..., k:k + 1])[..., 0]
        entropy = entropy - (log_p.exp() * log_p).sum(dim=-1)
    return log_prob, entropy
