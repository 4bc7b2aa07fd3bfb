"""The one-pass path of :mod:`baselines.masked_logits` for sub-actions of one size is the loop over blocks
to the bit: draws (and the generator after them), log-probabilities, entropies and their gradients.

The loops below are the functions as they were before the one-pass path, the torch backend's (and the
fast RLlib learner's) numbers that seeded runs and the reference results were made with."""

import numpy as np
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from baselines import masked_logits
from baselines.masked_logits import apply_mask, log_prob_and_entropy, sample_with_log_prob


def _loop_sample(logits, nvec, generator):
    actions, log_prob = [], torch.zeros(logits.shape[:-1], dtype=logits.dtype)
    for block in torch.split(logits, list(nvec), dim=-1):
        uniform = torch.rand(block.shape, generator=generator).clamp_(min=torch.finfo(block.dtype).tiny)
        choice = (block - torch.log(-torch.log(uniform))).argmax(dim=-1)
        actions.append(choice)
        log_prob = log_prob + torch.log_softmax(block, dim=-1).gather(-1, choice[..., None])[..., 0]
    return torch.stack(actions, dim=-1), log_prob


def _loop_log_prob_and_entropy(logits, actions, nvec):
    log_prob = torch.zeros(logits.shape[:-1], dtype=logits.dtype)
    entropy = torch.zeros_like(log_prob)
    for k, block in enumerate(torch.split(logits, list(nvec), dim=-1)):
        log_p = torch.log_softmax(block, dim=-1)
        log_prob = log_prob + log_p.gather(-1, actions[..., k:k + 1])[..., 0]
        entropy = entropy - (log_p.exp() * log_p).sum(dim=-1)
    return log_prob, entropy


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
