"""Masked categorical logits, shared by the RLlib masking module and the torch backend.

Actions are ``Discrete`` or ``MultiDiscrete``; logits are flat, ``(..., sum(nvec))``, one block per
sub-action (the layout of the suite's flat mask and of RLlib's multi-categorical distribution).
Ray-free: torch and numpy only.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from envs.masking import EmptyMaskError

__all__ = ["MASKED_LOGIT", "apply_mask", "sample_with_log_prob", "log_prob_and_entropy"]

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


def sample_with_log_prob(logits: torch.Tensor, nvec: Sequence[int],
                         generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """A sample of each sub-action's categorical and the joint log-probability: ``(N, len(nvec))``, ``(N,)``.

    Gumbel-max on the (masked) logits: a masked value's logit is so low that it can never win.
    Equivalent to ``torch.distributions.Categorical`` per block, without its per-call overhead.
    """
    actions, log_prob = [], torch.zeros(logits.shape[:-1], dtype=logits.dtype)
    for block in _blocks(logits, nvec):
        uniform = torch.rand(block.shape, generator=generator).clamp_(min=torch.finfo(block.dtype).tiny)
        choice = (block - torch.log(-torch.log(uniform))).argmax(dim=-1)
        actions.append(choice)
        log_prob = log_prob + torch.log_softmax(block, dim=-1).gather(-1, choice[..., None])[..., 0]
    return torch.stack(actions, dim=-1), log_prob


def log_prob_and_entropy(logits: torch.Tensor, actions: torch.Tensor,
                         nvec: Sequence[int]) -> tuple[torch.Tensor, torch.Tensor]:
    """Joint log-probability of ``actions`` ``(N, len(nvec))`` and joint entropy, both ``(N,)``.

    Masked values have probability exactly 0 and contribute 0 to the entropy (``0 * log 0`` is
    computed as ``0 * MASKED_LOGIT``-sized finite numbers, never NaN).
    """
    log_prob = torch.zeros(logits.shape[:-1], dtype=logits.dtype)
    entropy = torch.zeros_like(log_prob)
    for k, block in enumerate(_blocks(logits, nvec)):
        log_p = torch.log_softmax(block, dim=-1)
        log_prob = log_prob + log_p.gather(-1, actions[..., k:k + 1])[..., 0]
        entropy = entropy - (log_p.exp() * log_p).sum(dim=-1)
    return log_prob, entropy
