"""The one-pass path of :mod:`baselines.masked_logits` for sub-actions of one size is the loop over blocks
to the bit: draws (and the generator after them), log-probabilities, entropies and their gradients.

The loops (``_sample_block_by_block``, ``_log_prob_and_entropy_block_by_block``) are the functions as they
were before the one-pass path, the torch backend's (and the fast RLlib learner's) numbers that seeded runs
and the reference results were made with; they still serve sub-actions of different sizes."""

import numpy as np
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from baselines import masked_logits
from baselines.masked_logits import apply_mask, log_prob_and_entropy, sample_with_log_prob

_loop_sample = masked_logits._sample_block_by_block
_loop_log_prob_and_entropy = masked_logits._log_prob_and_entropy_block_by_block


def _masked_logits(seed, rows, nvec):
    generator = np.random.default_rng(seed)
    logits = torch.tensor(generator.normal(scale=3.0, size=(rows, sum(nvec))), dtype=torch.float32)
    admitted = torch.tensor(generator.random((rows, sum(nvec))) < 0.6)
    admitted[:, np.cumsum([0, *nvec[:-1]])] = True  # every sub-action keeps a value
    return logits, admitted


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**31), rows=st.integers(1, 200), k=st.integers(2, 33), n=st.integers(1, 20))
def test_one_pass_is_the_loop_over_blocks_to_the_bit(seed, rows, k, n):
    nvec = [n] * k
    logits, admitted = _masked_logits(seed, rows, nvec)
    masked = apply_mask(logits, admitted, nvec, "test")
    assert masked_logits._equal_blocks(masked, nvec) is not None  # the path under test
    generators = [torch.Generator().manual_seed(seed), torch.Generator().manual_seed(seed)]
    actions, log_prob = sample_with_log_prob(masked, nvec, generators[0])
    loop_actions, loop_log_prob = _loop_sample(masked, nvec, generators[1])
    assert torch.equal(actions, loop_actions) and torch.equal(log_prob, loop_log_prob)
    assert torch.equal(generators[0].get_state(), generators[1].get_state())
    assert bool(admitted.unflatten(-1, (k, n)).gather(-1, actions[..., None]).all())  # never a masked value

    weights = torch.linspace(-1.0, 1.0, rows) / rows  # a loss's upstream gradients, at the scale of a mean
    outputs = []
    for function in (log_prob_and_entropy, _loop_log_prob_and_entropy):
        leaf = logits.clone().requires_grad_()
        log_prob, entropy = function(apply_mask(leaf, admitted, nvec, "test"), actions, nvec)
        (log_prob * weights - 0.01 * entropy * weights.flip(0)).sum().backward()
        outputs.append((log_prob.detach(), entropy.detach(), leaf.grad))
    for mine, loop in zip(*outputs):
        assert torch.equal(mine, loop)


def test_other_shapes_take_the_loop():
    """Sizes that differ, and a single sub-action, are the loop itself."""
    logits = torch.zeros(4, 7)
    assert masked_logits._equal_blocks(logits, [3, 4]) is None
    assert masked_logits._equal_blocks(logits, [7]) is None
    assert masked_logits._equal_blocks(logits, [1] * 7) is not None
