"""The RLlib backend's minibatch schedule is RLlib's ``MiniBatchCyclicIterator``: the same rows, in the same
order, for one module or several, batches shorter or longer than a minibatch, with and without shuffling."""

import numpy as np
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from ray.rllib.policy.sample_batch import MultiAgentBatch, SampleBatch
from ray.rllib.utils.minibatch_utils import MiniBatchCyclicIterator

from baselines.backends.rllib_minibatches import cyclic_minibatch_indices, take_rows


def _rllib_minibatches(rows: dict[str, int], *, num_epochs, minibatch_size, shuffle):
    """The row ids of RLlib's minibatches: every batch's one column holds its row numbers."""
    batch = MultiAgentBatch({module_id: SampleBatch({"row": torch.arange(n)}) for module_id, n in rows.items()},
                            env_steps=max(rows.values()))
    iterator = MiniBatchCyclicIterator(batch, num_epochs=num_epochs, minibatch_size=minibatch_size,
                                       shuffle_batch_per_epoch=shuffle)
    return [{module_id: b["row"].numpy() for module_id, b in minibatch.policy_batches.items()}
            for minibatch in iterator]


@settings(max_examples=80, deadline=None)
@given(rows=st.dictionaries(st.sampled_from(["a", "b", "c"]), st.integers(1, 50), min_size=1, max_size=3),
       num_epochs=st.integers(1, 4), minibatch_size=st.integers(1, 60), shuffle=st.booleans(),
       seed=st.integers(0, 2**31))
def test_the_minibatches_are_rllibs_row_for_row(rows, num_epochs, minibatch_size, shuffle, seed):
    np.random.seed(seed)
    expected = _rllib_minibatches(rows, num_epochs=num_epochs, minibatch_size=minibatch_size, shuffle=shuffle)
    after_rllib = np.random.random()
    np.random.seed(seed)
    got = list(cyclic_minibatch_indices(rows, num_epochs=num_epochs, minibatch_size=minibatch_size,
                                        shuffle=shuffle))
    assert np.random.random() == after_rllib  # the same draws from numpy's generator, no more, no fewer
    assert len(got) == len(expected) > 0
    for mine, theirs in zip(got, expected):
        assert mine.keys() == theirs.keys()
        for module_id in mine:
            np.testing.assert_array_equal(mine[module_id], theirs[module_id])
    assert sum(len(m[next(iter(rows))]) for m in got) >= num_epochs * rows[next(iter(rows))]


def test_take_rows_gathers_nested_columns():
    columns = {"obs": {"observation": torch.arange(10.0).reshape(5, 2), "action_mask": torch.eye(5)},
               "actions": torch.arange(5)}
    out = take_rows(columns, np.array([4, 0, 4]))
    assert torch.equal(out["actions"], torch.tensor([4, 0, 4]))
    assert torch.equal(out["obs"]["observation"], torch.tensor([[8.0, 9.0], [0.0, 1.0], [8.0, 9.0]]))
    assert torch.equal(out["obs"]["action_mask"], torch.eye(5)[[4, 0, 4]])


def test_an_empty_batch_is_refused_with_its_module():
    import pytest

    with pytest.raises(ValueError, match=r"\['b'\] is empty"):
        next(cyclic_minibatch_indices({"a": 3, "b": 0}, num_epochs=1, minibatch_size=2, shuffle=False))
