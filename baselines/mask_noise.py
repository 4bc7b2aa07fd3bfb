"""Masks that are wrong at deployment: the evaluation of a masked policy under a corrupted mask.

A policy that samples from masked logits trusts its mask. In deployment the mask is code too (a
rule engine, a stale cache, a risk system), and it can be wrong. :class:`MaskCorruption` changes
what the *policy* sees, per step and entry, while the env still enforces its true constraints
(inadmissible actions meet its fallback and are counted):

- ``hidden``: each admissible value is hidden with probability ``p`` (an over-restrictive mask);
  a sub-action whose admissible values would all be hidden keeps one of them, drawn at random, so
  the policy can still act;
- ``leaky``: each inadmissible value is revealed with probability ``p`` (a permissive mask);
- ``stale``: with probability ``p`` the policy sees the previous step's mask of its episode instead
  of the current one (at an episode's first step, the current one).

``p = 0`` is the clean mask. Randomness comes from the corruption's own generator, so the episodes,
the policy's sampling and the corruption are each repeatable. Evaluation plays every entry for one
episode (:func:`baselines.evaluation.evaluate`), so "the previous step's mask" is always the same
episode's.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

__all__ = ["KINDS", "MaskCorruption"]

KINDS = ("hidden", "leaky", "stale")


@dataclass
class MaskCorruption:
    """``corruption(mask) -> mask``: one call per step, on the ``(N, ..., mask_size)`` flat masks."""

    kind: str
    p: float
    nvec: Sequence[int]
    rng: np.random.Generator
    _previous: np.ndarray | None = field(init=False, default=None)

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"unknown mask corruption {self.kind!r}; accepted: {', '.join(KINDS)}")
        if not 0.0 <= self.p <= 1.0:
            raise ValueError(f"a mask corruption's probability is in [0, 1], got {self.p}")

    def start(self) -> None:
        """New episodes in every entry (a new batch of evaluation episodes): no previous mask yet."""
        self._previous = None

    def __call__(self, mask: np.ndarray) -> np.ndarray:
        mask = np.asarray(mask)
        if self.kind == "stale":
            previous = mask if self._previous is None else self._previous
            self._previous = mask.copy()
            stale = self.rng.random(mask.shape[:-1]) < self.p
            return np.where(stale[..., None], previous, mask)
        flip = self.rng.random(mask.shape) < self.p
        if self.kind == "leaky":
            return (mask.astype(bool) | flip).astype(mask.dtype)
        shown = mask.astype(bool) & ~flip
        # Keep one admissible value of each sub-action whose admissible values were all hidden.
        scores = self.rng.random(mask.shape)
        bounds = np.cumsum(self.nvec)[:-1]
        blocks = []
        for admitted, kept, score in zip(np.split(mask.astype(bool), bounds, axis=-1), np.split(shown, bounds, axis=-1),
                                         np.split(scores, bounds, axis=-1)):
            emptied = admitted.any(axis=-1) & ~kept.any(axis=-1)
            choice = np.where(admitted, score, -1.0).argmax(axis=-1)
            restored = kept | (emptied[..., None] & (np.arange(admitted.shape[-1]) == choice[..., None]))
            blocks.append(restored)
        return np.concatenate(blocks, axis=-1).astype(mask.dtype)
