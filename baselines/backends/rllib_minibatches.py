"""RLlib's minibatches of a learner batch as index arrays: the same rows in the same order, gathered once.

RLlib's ``Learner.update`` walks a ``MiniBatchCyclicIterator`` over the connector's batch: per minibatch
it slices each module's ``SampleBatch`` (a ``SampleBatch`` per slice, every column through
``tree.map_structure``), concatenates the slices, and at each pass over the end shuffles the whole batch
in place (``SampleBatch.shuffle``: a ``np.random.permutation`` of the rows, every column gathered). The
rows of every minibatch follow from a few integers, so :func:`cyclic_minibatch_indices` yields them as
index arrays into the unshuffled batch (the composition of the permutations drawn so far, drawn from
numpy's global generator in RLlib's order), and :func:`take_rows` gathers each minibatch's columns
with one index per tensor: the same tensors as RLlib's minibatches, element for element.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np
import torch

__all__ = ["cyclic_minibatch_indices", "take_rows"]


def cyclic_minibatch_indices(rows: Mapping[Any, int], *, num_epochs: int, minibatch_size: int,
                             shuffle: bool) -> Iterator[dict[Any, np.ndarray]]:
    """Per minibatch, each module's row indices into its batch of ``rows[module]`` rows, as
    ``ray.rllib.utils.minibatch_utils.MiniBatchCyclicIterator`` (RLlib 2.60) picks them with
    ``num_total_minibatches=0`` and no time rank: minibatches of ``minibatch_size`` rows per module,
    cycling over each module's batch (a minibatch may span the end of one pass and the start of the
    next) until every module has been passed over ``num_epochs`` times; with ``shuffle``, the batch is
    permuted (``np.random.permutation``) each time a pass ends, so the first pass is in the batch's order."""
    if any(n <= 0 for n in rows.values()):
        empty = [module_id for module_id, n in rows.items() if n <= 0]
        raise ValueError(f"the batch of module(s) {empty} is empty: no minibatch can be drawn from it")
    order = {module_id: np.arange(n) for module_id, n in rows.items()}
    start = dict.fromkeys(rows, 0)
    passes = dict.fromkeys(rows, 0)
    while min(passes.values()) < num_epochs:
        minibatch = {}
        for module_id, n in rows.items():
            s, needed, parts = start[module_id], minibatch_size, []
            while s + needed >= n:  # RLlib's condition: a minibatch that ends the pass exactly ends it here
                parts.append(order[module_id][s:])
                needed -= n - s
                s = 0
                passes[module_id] += 1
                if shuffle:
                    order[module_id] = order[module_id][np.random.permutation(n)]
            if needed > 0:
                parts.append(order[module_id][s:s + needed])
            minibatch[module_id] = parts[0] if len(parts) == 1 else np.concatenate(parts)
            start[module_id] = s + needed
        yield minibatch


def take_rows(columns: Mapping[str, Any], index: np.ndarray) -> dict[str, Any]:
    """``columns`` (tensors or arrays, or dicts of them, with rows first) at the rows ``index``."""
    at = torch.from_numpy(index)
    return {key: take_rows(value, index) if isinstance(value, Mapping)
            else value.index_select(0, at) if isinstance(value, torch.Tensor) else value[index]
            for key, value in columns.items()}
