"""The one masking interface every maskbench env shares.

Discrete actions (``Discrete``, ``MultiDiscrete``)
    Observations follow the PettingZoo convention::

        Dict({"observation": Box(float32), "action_mask": Box(0, 1, (n,), int8)})

    ``n`` is ``Discrete.n`` or ``sum(nvec)``: one flat vector, sub-action by sub-action (the layout
    of RLlib's and sb3-contrib's multi-categorical logits). 1 = admissible. A mask *factorises*: a
    ``MultiDiscrete`` action is admissible when every sub-action is admitted by its block.
    :func:`split_mask` / :func:`join_mask` convert to and from the tuple form that
    ``MultiDiscrete.sample(mask=...)`` takes; :func:`sample_masked` samples uniformly among
    admissible actions over any leading batch axes.

Continuous actions (``Box``)
    The admissible set is a state-dependent convex set exposed as an :class:`AdmissibleSet`
    (``contains`` / ``project`` / ``sample``); its parameters are part of the observation.

Constraints
    Every env also states its constraints by name as :class:`Constraint` predicates, written
    independently of the mask code, so a checker can prove the mask *sound* (nothing admitted is
    inadmissible) and *complete* (nothing admissible is masked). A predicate answers, for a batch
    of states and actions, which sub-actions it admits; that is the granularity a factorised mask
    can express.

Inadmissible actions never crash a run by default: the env executes its documented fallback and
reports ``info["invalid_actions"]`` (number of inadmissible sub-actions, 0 when admissible) and
``info["violated"]`` (names of the violated constraints). In strict mode the env raises
:class:`InadmissibleActionError` (a ``ValueError``) naming the constraint instead.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import numpy as np
from gymnasium import spaces

__all__ = [
    "OBSERVATION_KEY",
    "MASK_KEY",
    "MASK_DTYPE",
    "Constraint",
    "AdmissibleSet",
    "FlatMaskMultiDiscrete",
    "EmptyMaskError",
    "InadmissibleActionError",
    "action_nvec",
    "is_discrete",
    "mask_size",
    "masked_observation_space",
    "split_mask",
    "join_mask",
    "sample_masked",
    "mask_admits",
    "constraint_masks",
    "violated_constraints",
]

OBSERVATION_KEY = "observation"
MASK_KEY = "action_mask"
MASK_DTYPE = np.int8


class EmptyMaskError(ValueError):
    """A mask block with no admissible value: the env broke its never-empty guarantee."""


class InadmissibleActionError(ValueError):
    """Raised in strict mode when an action violates a named constraint."""


@dataclass(frozen=True)
class Constraint:
    """A named constraint on actions, written independently of the mask code.

    Attributes:
        name: short identifier used in ``info["violated"]`` and reports (e.g. ``"C1"``).
        description: one line in words ("no selling more units than held").
        admits: ``admits(state, actions) -> bool array``. ``actions`` has shape
            ``(*batch, n_sub)`` (one entry per sub-action; ``n_sub = 1`` for ``Discrete``); the
            result has the same shape and says which sub-actions this constraint admits in the
            corresponding state. ``state`` is the env core's state object with the same batch axes.
    """

    name: str
    description: str
    admits: Callable[[Any, np.ndarray], np.ndarray]


@runtime_checkable
class AdmissibleSet(Protocol):
    """The admissible set of a continuous action: convex, state-dependent, batched.

    All methods work over the leading batch axes the set was built with (one set per state).
    """

    def contains(self, actions: np.ndarray, atol: float = 1e-6) -> np.ndarray:
        """Boolean array over the batch axes: is each action admissible (within ``atol``)?"""

    def project(self, actions: np.ndarray) -> np.ndarray:
        """The Euclidean projection of each action onto its state's admissible set."""

    def sample(self, rng: np.random.Generator) -> np.ndarray:
        """One admissible action per state, drawn from a documented distribution."""


# --------------------------------------------------------------------------------------------
# Spaces and layout


class FlatMaskMultiDiscrete(spaces.MultiDiscrete):
    """A ``MultiDiscrete`` whose ``sample(mask=...)`` also takes the suite's flat mask.

    Gymnasium's ``MultiDiscrete.sample`` wants a tuple of per-sub-action masks, while the
    observation carries one flat vector; code that passes ``obs["action_mask"]`` straight through
    (PettingZoo's ``parallel_api_test``, user loops) would fail. This subclass converts a flat mask
    with :func:`split_mask` and is a ``MultiDiscrete`` in every other respect (RLlib, batching,
    equality).
    """

    def sample(self, mask=None, probability=None):
        if isinstance(mask, np.ndarray) and mask.ndim == 1 and self.nvec.ndim == 1 \
                and mask.shape[0] == int(self.nvec.sum()) and len(self.nvec) > 1:
            mask = split_mask(mask, self.nvec)
        return super().sample(mask=mask, probability=probability)



def is_discrete(action_space: spaces.Space) -> bool:
    """True for the action spaces a flat mask describes."""
    return isinstance(action_space, (spaces.Discrete, spaces.MultiDiscrete))


def action_nvec(action_space: spaces.Space) -> np.ndarray:
    """Number of values of each sub-action: ``[n]`` for ``Discrete(n)``, the flat ``nvec`` else."""
    if isinstance(action_space, spaces.Discrete):
        return np.array([int(action_space.n)], dtype=np.int64)
    if isinstance(action_space, spaces.MultiDiscrete):
        if np.any(action_space.start != 0):
            raise ValueError("maskbench masks need MultiDiscrete spaces that start at 0")
        return np.asarray(action_space.nvec, dtype=np.int64).reshape(-1)
    raise TypeError(f"no flat mask for action space {action_space}; use an AdmissibleSet for Box")


def mask_size(action_space: spaces.Space) -> int:
    """Length of the flat mask: ``Discrete.n`` or ``sum(nvec)``."""
    return int(action_nvec(action_space).sum())


def _offsets(nvec: np.ndarray) -> np.ndarray:
    return np.concatenate([[0], np.cumsum(nvec)[:-1]]).astype(np.int64)


def masked_observation_space(features: spaces.Box, action_space: spaces.Space) -> spaces.Dict:
    """The observation space of the convention: features, plus the flat mask for discrete actions.

    Continuous envs get the same Dict without a mask (their admissible set's parameters are part
    of the features), so every env's observation is read the same way.
    """
    entries: dict[str, spaces.Space] = {OBSERVATION_KEY: features}
    if is_discrete(action_space):
        entries[MASK_KEY] = spaces.Box(0, 1, (mask_size(action_space),), MASK_DTYPE)
    return spaces.Dict(entries)


# --------------------------------------------------------------------------------------------
# Conversions


def split_mask(flat_mask: np.ndarray, nvec: Sequence[int] | np.ndarray) -> tuple[np.ndarray, ...]:
    """Flat mask ``(..., sum(nvec))`` -> tuple of per-sub-action int8 masks ``(..., nvec[i])``.

    For a single state (1-D mask) the result is what ``MultiDiscrete(nvec).sample(mask=...)``
    takes.
    """
    nvec = np.asarray(nvec, dtype=np.int64)
    flat_mask = np.asarray(flat_mask)
    if flat_mask.shape[-1] != nvec.sum():
        raise ValueError(f"mask has {flat_mask.shape[-1]} entries, nvec {nvec.tolist()} needs {nvec.sum()}")
    bounds = np.cumsum(nvec)[:-1]
    return tuple(part.astype(MASK_DTYPE) for part in np.split(flat_mask, bounds, axis=-1))


def join_mask(parts: Sequence[np.ndarray]) -> np.ndarray:
    """Inverse of :func:`split_mask`: concatenate per-sub-action masks into one flat int8 mask."""
    return np.concatenate([np.asarray(p, dtype=MASK_DTYPE) for p in parts], axis=-1)


# --------------------------------------------------------------------------------------------
# Batched operations


def mask_admits(flat_mask: np.ndarray, actions: np.ndarray, nvec: np.ndarray) -> np.ndarray:
    """Which sub-actions the mask admits: ``(..., n_sub)`` bool for actions ``(..., n_sub)``."""
    index = _offsets(np.asarray(nvec)) + np.asarray(actions, dtype=np.int64)
    return np.take_along_axis(np.asarray(flat_mask), index, axis=-1).astype(bool)


def sample_masked(rng: np.random.Generator, flat_mask: np.ndarray, nvec: Sequence[int] | np.ndarray) -> np.ndarray:
    """Sample each sub-action uniformly among its admissible values, over any batch axes.

    Args:
        rng: the generator to draw from.
        flat_mask: ``(..., sum(nvec))`` with 1 = admissible.
        nvec: values per sub-action.

    Returns:
        int64 actions of shape ``(..., len(nvec))``.

    Raises:
        EmptyMaskError: a sub-action has no admissible value in some state.
    """
    nvec = np.asarray(nvec, dtype=np.int64)
    admissible = np.asarray(flat_mask).astype(bool)
    # Uniform among the admitted entries of each block: the argmax of i.i.d. uniforms restricted
    # to the block's admitted entries. Masked entries get -1 so they can never win.
    scores = np.where(admissible, rng.random(admissible.shape), -1.0)
    batch_shape = admissible.shape[:-1]
    if np.all(nvec == nvec[0]):  # equal blocks: one reshape, no loop over sub-actions
        blocks = scores.reshape(*batch_shape, len(nvec), int(nvec[0]))
        actions = blocks.argmax(axis=-1)
        best = np.take_along_axis(blocks, actions[..., None], axis=-1)[..., 0]
    else:
        parts = np.split(scores, np.cumsum(nvec)[:-1], axis=-1)
        actions = np.stack([p.argmax(axis=-1) for p in parts], axis=-1)
        best = np.stack([p.max(axis=-1) for p in parts], axis=-1)
    if np.any(best < 0):
        where = np.argwhere(best < 0)[0]
        raise EmptyMaskError(f"mask block for sub-action {int(where[-1])} is all zero at batch index "
                             f"{tuple(int(i) for i in where[:-1])}: no admissible action to sample")
    return actions.astype(np.int64)


def constraint_masks(constraints: Sequence[Constraint], state: Any, nvec: np.ndarray,
                     batch_shape: tuple[int, ...]) -> np.ndarray:
    """The flat mask each constraint alone implies: ``(n_constraints, *batch_shape, sum(nvec))`` bool.

    Built by asking each predicate about every value of every sub-action, so it depends only on
    the predicates, never on the env's mask code: this is what soundness and completeness are
    checked against.
    """
    nvec = np.asarray(nvec, dtype=np.int64)
    offsets = _offsets(nvec)
    out = np.zeros((len(constraints), *batch_shape, int(nvec.sum())), dtype=bool)
    for value in range(int(nvec.max())):
        has_value = value < nvec  # sub-actions that have this value
        actions = np.broadcast_to(np.minimum(value, nvec - 1), (*batch_shape, len(nvec)))
        columns = offsets[has_value] + value
        for c, constraint in enumerate(constraints):
            admitted = np.asarray(constraint.admits(state, actions), dtype=bool)
            out[c, ..., columns] = np.moveaxis(admitted[..., has_value], -1, 0)
    return out


def violated_constraints(constraints: Sequence[Constraint], state: Any, actions: np.ndarray) -> np.ndarray:
    """Which constraints each action violates: ``(*batch, n_constraints)`` bool."""
    return np.stack([~np.asarray(c.admits(state, actions), dtype=bool).all(axis=-1) for c in constraints],
                    axis=-1)
