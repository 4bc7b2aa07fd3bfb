"""Masked action sampling (``group="sampling"``): what the mask adds to a policy's forward work.

Run with ``pytest --benchmark`` (skipped otherwise); ``extra_info["states_per_second"]`` is the
rate. One round draws one action per state of a batch and computes its log-probability, as a PPO
rollout does, on ``portfolio`` (``MultiDiscrete([11, 11, 11])``, 33 logits) and on its largest
level ``portfolio-xl`` (30 sub-actions of 101 values, 3,030 logits), with real masks of the env's
states:

- ``unmasked``: RLlib's ``TorchMultiCategorical`` (the distribution masked PPO's module feeds) of
  the raw logits, the cost a policy pays anyway;
- ``masked``: the suite's ``apply_mask`` first (masked logits at the most negative float, an
  empty-mask check per sub-action), the only extra work of masked PPO's module;
- ``suite_unmasked`` / ``suite_masked``: the torch backend's sampler
  (``baselines.masked_logits.sample_with_log_prob``, Gumbel-max over all sub-actions at once), without
  and with the mask;
- ``sb3_contrib_masked`` / ``sb3_contrib_unmasked``: sb3-contrib's ``MaskableMultiCategorical
  Distribution`` with and without its masks, for reference (sb3-contrib issue #283 reports its
  masked path several times slower; skipped without ``pip install -e .[compare]``).
"""

import numpy as np
import pytest
import torch

import envs
from envs.masking import action_nvec


def portfolio_batch(env, batch):
    """Logits of the right shape, real masks of ``env``'s states (with their holes) and the sub-action sizes."""
    core = envs.make_core(env, num_envs=batch)
    core.state = core.sample_states(np.random.default_rng(0), batch)
    masks = torch.from_numpy(core.action_mask()[:, 0].astype(np.float32))
    nvec = [int(n) for n in action_nvec(core.action_space)]
    logits = torch.from_numpy(np.random.default_rng(1).normal(size=(batch, sum(nvec))).astype(np.float32))
    return logits, masks, nvec


def rllib_sampler(masked, nvec):
    from ray.rllib.core.distribution.torch.torch_distribution import TorchMultiCategorical

    from baselines.masked_logits import apply_mask

    def sample(logits, masks):
        if masked:
            logits = apply_mask(logits, masks, nvec, "portfolio")
        dist = TorchMultiCategorical.from_logits(logits, input_lens=nvec)
        actions = dist.sample()
        return actions, dist.logp(actions)

    return sample


def suite_sampler(masked, nvec):
    from baselines.masked_logits import apply_mask, sample_with_log_prob

    generator = torch.Generator().manual_seed(0)

    def sample(logits, masks):
        if masked:
            logits = apply_mask(logits, masks, nvec, "portfolio")
        return sample_with_log_prob(logits, nvec, generator)

    return sample


def sb3_sampler(masked, nvec):
    distributions = pytest.importorskip("sb3_contrib.common.maskable.distributions",
                                        reason="sb3-contrib is in the compare extra: pip install -e .[compare]")
    dist = distributions.MaskableMultiCategoricalDistribution(nvec)

    def sample(logits, masks):
        dist.proba_distribution(logits)
        if masked:
            dist.apply_masking(masks.bool())
        actions = dist.sample()
        return actions, dist.log_prob(actions)

    return sample


SAMPLERS = {"unmasked": lambda nvec: rllib_sampler(False, nvec), "masked": lambda nvec: rllib_sampler(True, nvec),
            "suite_unmasked": lambda nvec: suite_sampler(False, nvec),
            "suite_masked": lambda nvec: suite_sampler(True, nvec),
            "sb3_contrib_unmasked": lambda nvec: sb3_sampler(False, nvec),
            "sb3_contrib_masked": lambda nvec: sb3_sampler(True, nvec)}


@pytest.mark.parametrize("env", ["portfolio", "portfolio-xl"])
@pytest.mark.parametrize("batch", [64, 4096])
@pytest.mark.parametrize("impl", list(SAMPLERS))
@pytest.mark.benchmark(group="sampling")
def test_masked_sampling(benchmark, impl, batch, env):
    torch.manual_seed(0)
    torch.set_num_threads(1)  # one core, like an EnvRunner
    logits, masks, nvec = portfolio_batch(env, batch)
    sample = SAMPLERS[impl](nvec)
    with torch.no_grad():
        actions, logp = benchmark(sample, logits, masks)
    assert torch.isfinite(logp).all()
    if impl.endswith("masked") and not impl.endswith("unmasked"):
        offsets = torch.tensor(np.cumsum([0, *nvec[:-1]]))
        chosen = torch.gather(masks, 1, actions.long().view(batch, len(nvec)) + offsets)
        assert bool(chosen.all()), "a masked sampler drew an inadmissible action"
    benchmark.extra_info["states_per_second"] = batch / benchmark.stats["mean"]
