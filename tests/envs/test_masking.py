"""The masking interface: layout conversions, masked sampling, predicate masks."""

import numpy as np
import pytest
from gymnasium import spaces
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from envs import masking
from envs.masking import Constraint, EmptyMaskError, FlatMaskMultiDiscrete


@st.composite
def nvec_and_mask(draw, batch_dims=0):
    nvec = np.array(draw(st.lists(st.integers(1, 6), min_size=1, max_size=4)))
    batch = tuple(draw(st.lists(st.integers(1, 3), min_size=batch_dims, max_size=batch_dims)))
    mask = draw(hnp.arrays(np.int8, (*batch, int(nvec.sum())), elements=st.integers(0, 1)))
    # never-empty blocks: force one admissible value per block where the draw left none
    for part, offset in zip(np.split(np.arange(nvec.sum()), np.cumsum(nvec)[:-1]), np.cumsum(nvec) - nvec):
        empty = mask[..., part].sum(axis=-1) == 0
        mask[..., offset][empty] = 1
    return nvec, mask


@given(nvec_and_mask(batch_dims=1))
def test_split_join_round_trip(data):
    nvec, mask = data
    parts = masking.split_mask(mask, nvec)
    assert [p.shape[-1] for p in parts] == nvec.tolist()
    assert all(p.dtype == np.int8 for p in parts)
    np.testing.assert_array_equal(masking.join_mask(parts), mask)


def test_split_mask_rejects_wrong_length():
    with pytest.raises(ValueError, match="needs 5"):
        masking.split_mask(np.ones(4), [2, 3])


@settings(max_examples=60)
@given(nvec_and_mask(batch_dims=2), st.integers(0, 2**32 - 1))
def test_sample_masked_only_admissible(data, seed):
    nvec, mask = data
    actions = masking.sample_masked(np.random.default_rng(seed), mask, nvec)
    assert actions.shape == (*mask.shape[:-1], len(nvec))
    assert np.all(masking.mask_admits(mask, actions, nvec))


def test_sample_masked_is_uniform_over_admissible_values():
    nvec = np.array([4, 3])
    mask = np.array([1, 0, 1, 1, 0, 1, 0], dtype=np.int8)
    draws = masking.sample_masked(np.random.default_rng(0), np.broadcast_to(mask, (30_000, 7)), nvec)
    counts0 = np.bincount(draws[:, 0], minlength=4) / len(draws)
    counts1 = np.bincount(draws[:, 1], minlength=3) / len(draws)
    np.testing.assert_allclose(counts0, [1 / 3, 0, 1 / 3, 1 / 3], atol=0.015)
    np.testing.assert_allclose(counts1, [0, 1, 0], atol=0)


def test_sample_masked_ragged_blocks_and_empty_block():
    nvec = np.array([2, 5])
    mask = np.array([[0, 1, 0, 0, 0, 1, 0]], dtype=np.int8)
    np.testing.assert_array_equal(masking.sample_masked(np.random.default_rng(1), mask, nvec), [[1, 3]])
    with pytest.raises(EmptyMaskError, match="sub-action 1"):
        masking.sample_masked(np.random.default_rng(1), np.array([[1, 1, 0, 0, 0, 0, 0]]), nvec)


def test_flat_mask_multidiscrete_samples_with_the_observation_mask():
    space = FlatMaskMultiDiscrete([3, 3])
    space.seed(0)
    flat = np.array([0, 0, 1, 1, 0, 0], dtype=np.int8)
    assert all(space.sample(mask=flat).tolist() == [2, 0] for _ in range(20))
    assert space == spaces.MultiDiscrete([3, 3])  # still a MultiDiscrete for RLlib and friends
    assert space.sample(mask=masking.split_mask(flat, [3, 3])).tolist() == [2, 0]


def test_masked_observation_space_layout():
    features = spaces.Box(0, 1, (4,), np.float32)
    discrete = masking.masked_observation_space(features, spaces.MultiDiscrete([11, 11, 11]))
    assert discrete[masking.MASK_KEY] == spaces.Box(0, 1, (33,), np.int8)
    assert masking.mask_size(spaces.Discrete(7)) == 7
    continuous = masking.masked_observation_space(features, spaces.Box(-1, 1, (3,)))
    assert list(continuous.spaces) == [masking.OBSERVATION_KEY]


def test_constraint_masks_and_violations_follow_the_predicates():
    # state: an upper bound per sub-action; constraint "at most bound"
    state = np.array([[1, 3], [0, 2]])
    at_most = Constraint("B", "at most the bound", lambda s, a: a <= s)
    odd_forbidden = Constraint("O", "no odd values", lambda s, a: a % 2 == 0)
    implied = masking.constraint_masks([at_most, odd_forbidden], state, np.array([3, 4]), (2,))
    np.testing.assert_array_equal(implied[0, 0], [1, 1, 0, 1, 1, 1, 1])
    np.testing.assert_array_equal(implied[1, 1], [1, 0, 1, 1, 0, 1, 0])
    violated = masking.violated_constraints([at_most, odd_forbidden], state, np.array([[2, 1], [0, 2]]))
    np.testing.assert_array_equal(violated, [[True, True], [False, False]])
