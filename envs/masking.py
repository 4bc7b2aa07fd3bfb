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
    "BoundedSumSet",
    "project_bounded_sum",
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
    "empty_blocks",
    "admit_all_unless",
    "nearest_admitted",
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

    def contains(self, actions: np.ndarray, atol: float | None = None) -> np.ndarray:
        """Boolean array over the batch axes: is each action admissible (within ``atol``; None: the
        set's own tolerance, the one its env enforces)?"""

    def project(self, actions: np.ndarray) -> np.ndarray:
        """The Euclidean projection of each action onto its state's admissible set."""

    def sample(self, rng: np.random.Generator) -> np.ndarray:
        """One admissible action per state, drawn from a documented distribution."""

    def __getitem__(self, index) -> AdmissibleSet:
        """The sets of some batch entries (numpy indexing of the batch axes), e.g. ``[0, 0]``."""


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


def empty_blocks(flat_mask: np.ndarray, nvec: Sequence[int] | np.ndarray) -> np.ndarray:
    """Which sub-actions admit no value: ``(..., n_sub)`` bool for flat masks ``(..., sum(nvec))``."""
    nvec = np.asarray(nvec, dtype=np.int64)
    admitted = np.asarray(flat_mask).astype(bool)
    if np.all(nvec == nvec[0]):  # equal blocks: one reshape
        return ~admitted.reshape(*admitted.shape[:-1], len(nvec), int(nvec[0])).any(axis=-1)
    return ~np.stack([part.any(axis=-1) for part in np.split(admitted, np.cumsum(nvec)[:-1], axis=-1)], axis=-1)


def admit_all_unless(acting: np.ndarray, flat_mask: np.ndarray) -> np.ndarray:
    """``flat_mask`` with every value admitted for entries that are not ``acting`` (``acting`` has the mask's
    batch shape): the mask of an entry whose episode is over may admit nothing, and its action is never
    executed, so samplers and masked logits can treat it as unconstrained instead of failing."""
    acting = np.asarray(acting, dtype=bool)
    if acting.all():
        return flat_mask
    return np.where(acting[..., None], flat_mask, np.ones((), dtype=np.asarray(flat_mask).dtype))


def nearest_admitted(block: np.ndarray, wanted: np.ndarray | int) -> np.ndarray:
    """Per mask row of one sub-action (``block``: ``(..., n)`` bool, 1 = admissible), the admitted value nearest
    ``wanted`` in index, the lower one on a tie; ``wanted`` itself where the row admits nothing. ``wanted`` is a
    scalar or an array of the rows' shape."""
    values = np.arange(block.shape[-1])
    wanted = np.asarray(wanted)
    key = np.where(block, np.abs(values - wanted[..., None]) * 2 + (values > wanted[..., None]),
                   np.iinfo(np.int64).max)
    return np.where(block.any(axis=-1), key.argmin(axis=-1), wanted)


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


# --------------------------------------------------------------------------------------------
# Continuous actions: a box cut by one linear equality


def project_bounded_sum(values: np.ndarray, lower: np.ndarray, upper: np.ndarray,
                        total: np.ndarray | float = 0.0) -> np.ndarray:
    """Exact Euclidean projection of ``values`` onto ``{a : lower <= a <= upper, sum(a) = total}``.

    Batched over leading axes (``values``, ``lower`` and ``upper`` broadcast to ``(*batch, n)``,
    ``total`` to ``(*batch,)``); computed in float64 and returned as float64.

    The projection is ``clip(values - tau, lower, upper)`` for the scalar ``tau`` at which the sum
    equals ``total`` (the KKT conditions of the problem). ``g(tau) = sum(clip(values - tau, lower,
    upper))`` is piecewise linear and non-increasing, with kinks only at the ``2n`` breakpoints
    ``values - upper`` (a coordinate leaves its upper bound: the slope steepens by 1) and ``values
    - lower`` (it reaches its lower bound: the slope flattens by 1). Sorting the breakpoints and
    accumulating slope times width gives ``g`` at every breakpoint; ``total`` lies between two
    consecutive ones, where ``g`` is linear, so ``tau`` follows by one interpolation: exact, no
    iteration, no tolerance. ``O(n log n)`` per row, vectorised over the batch.

    Raises:
        ValueError: non-finite values, ``lower > upper`` somewhere, or an empty set
            (``total`` outside ``[sum(lower), sum(upper)]``).
    """
    y = np.asarray(values, dtype=np.float64)
    lower = np.asarray(lower, dtype=np.float64)
    upper = np.asarray(upper, dtype=np.float64)
    y, lower, upper = np.broadcast_arrays(y, lower, upper)
    total = np.broadcast_to(np.asarray(total, dtype=np.float64), y.shape[:-1])
    if not np.isfinite(y).all():
        raise ValueError("cannot project non-finite actions (NaN or inf): check the policy's outputs")
    if np.any(lower > upper):
        raise ValueError("empty admissible set: some lower bound exceeds its upper bound")
    slack = 1e-9 * (1.0 + np.abs(total))
    if np.any(total < lower.sum(axis=-1) - slack) or np.any(total > upper.sum(axis=-1) + slack):
        raise ValueError("empty admissible set: total is outside [sum(lower), sum(upper)]")
    n = y.shape[-1]
    rows = max(1, _PROJECTION_CHUNK // max(n, 1))
    if y.ndim > 1 and y[..., 0].size > rows:  # row blocks that stay in the cache: twice as fast at n = 1,000
        flat = [x.reshape(-1, n) for x in (y, lower, upper)] + [total.reshape(-1)]
        return np.concatenate([_project_rows(*(x[i:i + rows] for x in flat)) for i in range(0, len(flat[0]), rows)]
                              ).reshape(y.shape)
    return _project_rows(y, lower, upper, total)


#: Rows x coordinates per block of :func:`project_bounded_sum` (65,536: a block's few float64 arrays fit
#: in a core's L2 cache; all 4,096 rows of 1,000 coordinates at once took 650 ms, blocks of 65 rows 300 ms).
_PROJECTION_CHUNK = 65_536


def _project_rows(y: np.ndarray, lower: np.ndarray, upper: np.ndarray, total: np.ndarray) -> np.ndarray:
    """:func:`project_bounded_sum` on validated float64 arrays of one shape (``total``: the batch shape)."""
    n = y.shape[-1]
    breakpoints = np.concatenate([y - upper, y - lower], axis=-1)                      # (*b, 2n)
    order = np.argsort(breakpoints, axis=-1)
    taus = np.take_along_axis(breakpoints, order, axis=-1)
    slope_change = np.where(order < n, 1.0, -1.0)       # +1: a coordinate starts moving with tau
    moving = np.cumsum(slope_change, axis=-1)[..., :-1]  # coordinates strictly inside their bounds
    drops = moving * np.diff(taus, axis=-1)              # how much g falls over each interval
    g = upper.sum(axis=-1, keepdims=True) - np.concatenate(
        [np.zeros((*y.shape[:-1], 1)), np.cumsum(drops, axis=-1)], axis=-1)        # g at each breakpoint
    # g[0] = sum(upper) >= total >= g[-1] = sum(lower); k: the last breakpoint with g > total.
    k = np.clip((g > total[..., None]).sum(axis=-1) - 1, 0, 2 * n - 2)[..., None]
    tau_k = np.take_along_axis(taus, k, -1)[..., 0]
    g_k = np.take_along_axis(g, k, -1)[..., 0]
    slope = np.take_along_axis(moving, k, -1)[..., 0]
    tau = np.where(slope > 0, tau_k + (g_k - total) / np.where(slope > 0, slope, 1.0), tau_k)
    return np.clip(y - tau[..., None], lower, upper)


class BoundedSumSet:
    """The admissible set ``{a : lower <= a <= upper, sum(a) = total}``, one per batch entry.

    A convex polytope (a box cut by a hyperplane): allocations that move resource around without
    creating or destroying any. Implements :class:`AdmissibleSet`.

    Args:
        lower, upper: ``(*batch, n)`` bounds.
        total: ``(*batch,)`` or a scalar, the required sum.
        atol: the tolerance :meth:`contains` applies by default (on each bound and on the sum).
    """

    def __init__(self, lower: np.ndarray, upper: np.ndarray, total: np.ndarray | float = 0.0, atol: float = 1e-6):
        self.lower, self.upper = (np.asarray(x, dtype=np.float64) for x in np.broadcast_arrays(lower, upper))
        self.total = np.broadcast_to(np.asarray(total, dtype=np.float64), self.lower.shape[:-1])
        self.atol = float(atol)

    @property
    def batch_shape(self) -> tuple[int, ...]:
        return self.lower.shape[:-1]

    def __getitem__(self, index) -> BoundedSumSet:
        index = index if isinstance(index, tuple) else (index,)
        if len(index) > len(self.batch_shape):
            raise IndexError(f"a BoundedSumSet of batch shape {self.batch_shape} takes at most "
                             f"{len(self.batch_shape)} indices, got {len(index)}")
        return BoundedSumSet(self.lower[index], self.upper[index], self.total[index], atol=self.atol)

    def contains(self, actions: np.ndarray, atol: float | None = None) -> np.ndarray:
        atol = self.atol if atol is None else atol
        a = np.asarray(actions, dtype=np.float64)
        with np.errstate(invalid="ignore"):
            inside = (a >= self.lower - atol).all(axis=-1) & (a <= self.upper + atol).all(axis=-1)
            return inside & (np.abs(a.sum(axis=-1) - self.total) <= atol)  # NaN compares False

    def project(self, actions: np.ndarray) -> np.ndarray:
        """The exact Euclidean projection, float64 (see :func:`project_bounded_sum`)."""
        return project_bounded_sum(actions, self.lower, self.upper, self.total)

    def distance(self, actions: np.ndarray) -> np.ndarray:
        """Euclidean distance of each action to the set, ``(*batch,)``."""
        a = np.asarray(actions, dtype=np.float64)
        return np.linalg.norm(a - self.project(a), axis=-1)

    def sample(self, rng: np.random.Generator, max_rounds: int = 1000) -> np.ndarray:
        """One action per entry, **uniform over the polytope** (exact, by rejection).

        ``lower + x`` with ``x`` uniform on the scaled simplex ``{x >= 0, sum(x) = total -
        sum(lower)}`` (normalised exponentials, i.e. Dirichlet(1, ..., 1)) is uniform on the set
        without the upper bounds; keeping only draws below ``upper`` leaves it uniform on the set.
        Every draw is kept when the upper bounds are implied by the others, as in ``sum_to_zero``
        (weights that are non-negative and sum to 1 are at most 1).

        Raises:
            ValueError: some entry rejected ``max_rounds`` draws in a row (its upper bounds cut
                away almost all of the simplex).
        """
        n = self.lower.shape[-1]
        lower, upper = self.lower.reshape(-1, n), self.upper.reshape(-1, n)  # one row per state
        room = (self.total.reshape(-1) - lower.sum(axis=-1))[:, None]
        out = np.empty(lower.shape)
        pending = np.arange(len(lower))
        for _ in range(max_rounds):
            draws = rng.exponential(size=(len(pending), n))
            candidate = lower[pending] + room[pending] * draws / draws.sum(axis=-1, keepdims=True)
            accepted = (candidate <= upper[pending]).all(axis=-1)
            out[pending[accepted]] = candidate[accepted]
            pending = pending[~accepted]
            if not len(pending):
                return out.reshape(self.lower.shape)
        raise ValueError(f"BoundedSumSet.sample: {len(pending)} entries rejected {max_rounds} uniform draws in "
                         "a row; their upper bounds leave almost none of the simplex")
