"""The vector view's info is built as arrays: ``violated_flags`` is the core's bool array, ``violated`` each entry's
list of names equal to the per-entry answer (``core.violated_names`` of its row), whatever the actions."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import envs
from envs.masking import admit_all_unless, sample_masked
from envs.views import ViolatedNames


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), n=st.integers(1, 40), share=st.floats(0.0, 1.0),
       name=st.sampled_from(["portfolio", "speed_limit", "sum_to_zero"]))
def test_violated_equals_the_per_entry_answer_under_any_mix_of_actions(seed, n, share, name):
    """Random actions (mostly inadmissible) and admissible ones mixed in any share, across episode ends."""
    short = {"portfolio": {"periods": 5}, "speed_limit": {"max_steps": 5}, "sum_to_zero": {"max_steps": 5}}[name]
    vec = envs.make_vector(name, n, **short)  # episodes end and reset within the steps
    core = vec.core
    rng = np.random.default_rng(seed)
    vec.action_space.seed(seed)
    _, info = vec.reset(seed=seed)
    assert info["violated"].tolist() == [[]] * n and not info["violated_flags"].any()
    for _ in range(12):
        if core.discrete:
            admissible = sample_masked(rng, admit_all_unless(vec.acting, vec.action_masks()), core.nvec)
        else:
            admissible = vec.admissible_set().sample(rng)
        admissible = admissible.reshape(vec.action_space.shape)
        random = rng.random(n).reshape(-1, *[1] * (admissible.ndim - 1)) < share
        _, _, _, _, info = vec.step(np.where(random, vec.action_space.sample(), admissible))
        rows = info["violated_flags"]
        assert rows.dtype == bool and rows.shape == (n, len(core.constraints))
        assert info["violated"].dtype == object and info["violated"].shape == (n,)
        assert info["violated"].tolist() == [core.violated_names(row) for row in rows]
        assert all(type(names) is list for names in info["violated"])
        assert ((info["invalid_actions"] > 0) == rows.any(axis=1)).all()
        assert info["_violated"].all() and info["_violated_flags"].all()


def test_each_entry_that_violated_something_gets_a_list_of_its_own():
    names = ViolatedNames([c.name for c in envs.make_core("portfolio").constraints])
    out = names(np.array([[True, False, True, False]] * 3 + [[False] * 4]))
    assert out.tolist() == [["C1", "C3"]] * 3 + [[]]
    out[0].append("mine")
    assert out[1] == ["C1", "C3"] and names(np.array([[True, False, True, False]]))[0] == ["C1", "C3"]


@pytest.mark.parametrize("k", [0, 1, 70])
def test_any_number_of_constraints_is_named(k):
    """No constraint, one, and more than one 64-bit pattern holds (the rows themselves are the patterns)."""
    names = ViolatedNames([f"R{i}" for i in range(k)])
    rows = np.random.default_rng(k).random((50, k)) < 0.3
    assert names(rows).tolist() == [[f"R{i}" for i in np.flatnonzero(row)] for row in rows]
