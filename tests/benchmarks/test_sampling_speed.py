"""Masked action sampling (``group="sampling"``): what the mask adds to a policy's forward work.

Run with ``pytest --benchmark`` (skipped otherwise); ``extra_info["states_per_second"]`` is the
rate. One round draws one action per state of a batch from ``MultiDiscrete([11, 11, 11])``
logits and computes its log-probability, as a PPO rollout does, with RLlib's
``TorchMultiCategorical`` (the distribution masked PPO's module feeds):

- ``unmasked``: the distribution of the raw logits, the cost a policy pays anyway;
- ``masked``: the suite's ``apply_mask`` first (masked logits at the most negative float, an
  empty-mask check per sub-action), the only extra work of masked PPO's module;
- ``sb3_contrib_masked`` / ``sb3_contrib_unmasked``: sb3-contrib's ``MaskableMultiCategorical
  Distribution`` with and without its masks, for reference (sb3-contrib issue #283 reports its
  masked path several times slower; skipped without ``pip install -e .[compare]``).
"""

import numpy as np
import pytest
import torch

import envs
from envs.masking import action_nvec

NVEC = [11, 11, 11]


def portfolio_batch(batch):
    """Logits of the right shape and real portfolio masks (with their holes) for ``batch`` states."""
    core = envs.make_core("portfolio", num_envs=batch)
    core.state = core.sample_states(np.random.default_rng(0), batch)
    masks = torch.from_numpy(core.action_mask()[:, 0].astype(np.float32))
    logits = torch.from_numpy(np.random.default_rng(1).normal(size=(batch, sum(NVEC))).astype(np.float32))
    assert list(action_nvec(core.action_space)) == NVEC
    return logits, masks


def rllib_sampler(masked):
    from ray.rllib.core.distribution.torch.torch_distribution import TorchMultiCategorical

    from baselines.masked_logits import apply_mask

    def sample(logits, masks):
        if masked:
            logits = apply_mask(logits, masks, NVEC, "portfolio")
        dist = TorchMultiCategorical.from_logits(logits, input_lens=NVEC)
        actions = dist.sample()
        return actions, dist.logp(actions)

    return sample


def sb3_sampler(masked):
    distributions = pytest.importorskip("sb3_contrib.common.maskable.distributions",
                                        reason="sb3-contrib is in the compare extra: pip install -e .[compare]")
    dist = distributions.MaskableMultiCategoricalDistribution(NVEC)

    def sample(logits, masks):
        dist.proba_distribution(logits)
        if masked:
            dist.apply_masking(masks.bool())
        actions = dist.sample()
        return actions, dist.log_prob(actions)

    return sample


SAMPLERS = {"unmasked": lambda: rllib_sampler(False), "masked": lambda: rllib_sampler(True),
            "sb3_contrib_unmasked": lambda: sb3_sampler(False), "sb3_contrib_masked": lambda: sb3_sampler(True)}


@pytest.mark.parametrize("batch", [64, 4096])
@pytest.mark.parametrize("impl", list(SAMPLERS))
@pytest.mark.benchmark(group="sampling")
def test_masked_sampling(benchmark, impl, batch):
    torch.manual_seed(0)
    torch.set_num_threads(1)  # one core, like an EnvRunner
    logits, masks = portfolio_batch(batch)
    sample = SAMPLERS[impl]()
    with torch.no_grad():
        actions, logp = benchmark(sample, logits, masks)
    assert torch.isfinite(logp).all()
    if impl.endswith("_masked") or impl == "masked":
        chosen = torch.gather(masks.view(batch, 3, 11), 2, actions.long().view(batch, 3, 1))
        assert bool(chosen.all()), "a masked sampler drew an inadmissible action"
    benchmark.extra_info["states_per_second"] = batch / benchmark.stats["mean"]
