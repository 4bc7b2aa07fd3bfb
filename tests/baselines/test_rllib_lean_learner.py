"""The lean PPO learner of the RLlib backend computes RLlib's updates bit for bit.

Its categorical loss terms are compared with RLlib's own distributions (values and gradients, with
masked logits as the masking module makes them), and whole seeded runs through ``suite.run`` with the
lean learner against RLlib's ``PPOTorchLearner``: the same progress.csv (timing aside) and eval.csv."""

import numpy as np
import pandas as pd
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from ray.rllib.algorithms.ppo.torch.ppo_torch_learner import PPOTorchLearner
from ray.rllib.core.distribution.torch.torch_distribution import TorchCategorical, TorchMultiCategorical
from ray.rllib.utils.torch_utils import clip_gradients

from baselines.backends import rllib_ppo
from baselines.backends.rllib_lean_learner import (
    LeanPPOTorchLearner,
    categorical_log_prob_and_entropy,
    clip_gradients_foreach,
)
from baselines.masked_logits import MASKED_LOGIT
from tests.helpers import TIMING, TINY, TINY_SETTINGS, assert_ray_is_gone, build_algo, read_run, run_main


def _logits_and_actions(seed: int, nvec: list[int], rows: int = 64):
    generator = np.random.default_rng(seed)
    logits = generator.normal(scale=3.0, size=(rows, sum(nvec))).astype(np.float32)
    blocks = np.split(np.arange(sum(nvec)), np.cumsum(nvec)[:-1])
    actions = np.stack([generator.integers(0, n, rows) for n in nvec], axis=-1)
    for k, block in enumerate(blocks):  # mask some values, never the one taken, as the masking module does
        masked = generator.random((rows, len(block))) < 0.4
        masked[np.arange(rows), actions[:, k]] = False
        logits[:, block] = np.where(masked, MASKED_LOGIT, logits[:, block])
    return torch.tensor(logits, requires_grad=True), torch.tensor(actions)


def _rllib_terms(logits, actions, nvec):
    if len(nvec) == 1:
        dist = TorchCategorical.from_logits(logits)
        return dist.logp(actions[:, 0]), dist.entropy()
    dist = TorchMultiCategorical.from_logits(logits, input_lens=nvec)
    return dist.logp(actions), dist.entropy()


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**31), nvec=st.lists(st.integers(1, 12), min_size=1, max_size=5))
def test_log_prob_and_entropy_are_rllibs_to_the_bit_with_their_gradients(seed, nvec):
    logits, actions = _logits_and_actions(seed, nvec)
    expected = _rllib_terms(logits, actions, nvec)
    got = categorical_log_prob_and_entropy(logits, actions[:, 0] if len(nvec) == 1 else actions,
                                           None if len(nvec) == 1 else nvec)
    for mine, theirs in zip(got, expected):
        assert torch.equal(mine, theirs)
    weights = torch.linspace(-1, 1, len(logits))
    (grad_mine,) = torch.autograd.grad((got[0] * weights).sum() - 0.01 * got[1].sum(), logits)
    (grad_theirs,) = torch.autograd.grad((expected[0] * weights).sum() - 0.01 * expected[1].sum(), logits)
    assert torch.equal(grad_mine, grad_theirs)


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**31), n=st.integers(1, 12), grad_clip=st.sampled_from([0.05, 0.5, 10.0, 1e6]),
       holes=st.booleans())
def test_clipping_by_the_global_norm_is_rllibs_to_the_bit(seed, n, grad_clip, holes):
    """Gradients of mixed scales (1e-8 to 1e8, so that some norms overflow float32 and RLlib's nan_to_num
    matters), with and without a parameter that has no gradient, clipped or not."""
    generator = torch.Generator().manual_seed(seed)
    shapes = [tuple(int(d) for d in torch.randint(1, 40, (int(torch.randint(1, 3, (1,), generator=generator)),),
                                                  generator=generator)) for _ in range(n)]
    scales = [10.0 ** float(torch.randint(-8, 9, (1,), generator=generator)) for _ in range(n)]
    grads = {f"p{k}": torch.randn(shape, generator=generator) * scale for k, (shape, scale) in
             enumerate(zip(shapes, scales))}
    if holes:
        grads["frozen"] = None
    theirs = {key: None if g is None else g.clone() for key, g in grads.items()}
    mine = {key: None if g is None else g.clone() for key, g in grads.items()}
    norm_theirs = clip_gradients(theirs, grad_clip=grad_clip, grad_clip_by="global_norm")
    norm_mine = clip_gradients_foreach(mine, grad_clip=grad_clip, grad_clip_by="global_norm")
    assert torch.equal(norm_mine, norm_theirs)
    for key in grads:
        assert (mine[key] is None and theirs[key] is None) or torch.equal(mine[key], theirs[key])


def test_other_clipping_modes_are_rllibs_own():
    grads = {"w": torch.tensor([3.0, -4.0])}
    assert clip_gradients_foreach(grads, grad_clip=1.0, grad_clip_by="value") is None
    assert torch.equal(grads["w"], torch.tensor([1.0, -1.0]))
    assert clip_gradients_foreach({"w": torch.ones(2)}, grad_clip=None, grad_clip_by="global_norm") is None


@pytest.mark.parametrize("rllib_learner, lr_schedule, kernel", [
    ("exact", "constant", "foreach"), ("exact", "linear", "single-tensor"), ("fast", "linear", "fused")])
def test_the_rllib_backend_uses_the_learner_of_its_setting(rllib_learner, lr_schedule, kernel):
    """Its learner, clipping and Adam, and who draws the actions; the exact learner under a learning-rate
    schedule (a tensor rate) steps RLlib's own Adam. ``fast`` is the default."""
    import ray

    from baselines.backends.rllib_fast_learner import FastPPOTorchLearner
    from baselines.ray_session import connect_ray
    from baselines.settings import PPOSettings

    assert PPOSettings().rllib_learner == "fast"
    expected = {"exact": LeanPPOTorchLearner, "fast": FastPPOTorchLearner}[rllib_learner]
    assert rllib_ppo.learner_class(rllib_learner) is expected
    assert issubclass(expected, PPOTorchLearner)
    connect_ray(None, num_cpus=2)
    try:
        algo = build_algo("masked_ppo", "portfolio", budget=10**6, lr_schedule=lr_schedule,
                          rllib_learner=rllib_learner, **TINY_SETTINGS)
        try:
            learner = algo.algo.learner_group._learner
            assert type(learner) is expected
            assert learner._get_clip_function() is clip_gradients_foreach
            (module_id,) = learner.module.keys()
            (optimizer,) = [optimizer for _, optimizer in learner.get_optimizers_for_module(module_id)]
            assert type(optimizer) is torch.optim.Adam
            used = "fused" if optimizer.defaults["fused"] else "foreach" if optimizer.defaults["foreach"] \
                else "single-tensor"
            assert used == kernel
            # the fast learner's runs draw masked PPO's actions in the module (the torch backend's draw)
            assert learner.module[module_id].draw_actions is (rllib_learner == "fast")
            assert algo.algo.env_runner.module.draw_actions is (rllib_learner == "fast")
        finally:
            algo.close()
    finally:
        ray.shutdown()
    assert_ray_is_gone()


def _run(out, env, algo, monkeypatch, learner):
    monkeypatch.setattr(rllib_ppo, "learner_class", lambda name: learner)
    assert run_main("--env", env, "--algo", algo, "--steps", "1024", "--episodes", "4", "--seed", "2",
                    "--out", str(out), "--quiet", *TINY) == 0
    assert_ray_is_gone()
    _, progress, evaluation = read_run(out, env, algo, seed=2)
    return progress.drop(columns=TIMING, errors="ignore"), evaluation


@pytest.mark.parametrize("env, algo", [("portfolio", "masked_ppo"),
                                       pytest.param("sum_to_zero", "masked_ppo", marks=pytest.mark.slow),
                                       pytest.param("speed_limit", "naive_masked_ppo", marks=pytest.mark.slow),
                                       pytest.param("portfolio", "penalty_ppo", marks=pytest.mark.slow)])
def test_a_seeded_run_is_the_same_with_rllibs_learner(tmp_path, monkeypatch, env, algo):
    """MultiDiscrete masked and unmasked, Discrete with naive masking, and Box actions (RLlib's own loss); all
    but the masked MultiDiscrete case are slow tests (the default run's budget)."""
    lean = _run(tmp_path / "lean", env, algo, monkeypatch, LeanPPOTorchLearner)
    rllib = _run(tmp_path / "rllib", env, algo, monkeypatch, PPOTorchLearner)
    assert lean[0]["policy_loss"].notna().all()
    pd.testing.assert_frame_equal(lean[0], rllib[0])
    pd.testing.assert_frame_equal(lean[1], rllib[1])


def test_non_finite_gradients_take_rllibs_path(monkeypatch):
    """A NaN gradient is repaired by RLlib's own apply_gradients (set to zero, the step skipped), not stepped."""
    calls = []
    monkeypatch.setattr(PPOTorchLearner, "apply_gradients", lambda self, grads: calls.append(grads))
    learner = object.__new__(LeanPPOTorchLearner)
    learner._grad_scalers = learner._lr_scheduler_classes = None
    grads = {"w": torch.tensor([1.0, float("nan")]), "b": torch.ones(2)}
    learner.apply_gradients(grads)
    assert calls == [grads]


def _flat_metrics(results, path=()):
    for key, value in results.items():
        if isinstance(value, dict):
            yield from _flat_metrics(value, (*path, key))
        elif not any("timer" in str(part) for part in (*path, key)):
            yield (*path, key), value.peek() if hasattr(value, "peek") else value


@pytest.mark.slow
def test_an_updates_metrics_are_rllibs(monkeypatch):
    """Two updates on the same episodes log the same metrics (the step counts once per update instead of once
    per minibatch; losses and statistics bit for bit), timers aside. A slow test: the seeded-run comparison
    above covers what the suite reads of them in the default run."""
    import copy

    import ray
    from ray.rllib.utils.metrics import NUM_ENV_STEPS_SAMPLED_LIFETIME

    from baselines.ray_session import connect_ray

    connect_ray(None, num_cpus=2)
    results = {}
    try:
        episodes = None
        for name, learner in (("lean", LeanPPOTorchLearner), ("rllib", PPOTorchLearner)):
            monkeypatch.setattr(rllib_ppo, "learner_class", lambda _name, learner=learner: learner)
            torch.manual_seed(0)
            np.random.seed(0)
            algo = build_algo("masked_ppo", "portfolio", budget=10**6, **TINY_SETTINGS)
            try:
                rllib, config = algo.algo, algo.algo.config
                episodes = episodes or rllib.env_runner.sample(num_timesteps=config.train_batch_size_per_learner)
                results[name] = [dict(_flat_metrics(rllib.learner_group.update(
                    episodes=copy.deepcopy(episodes), timesteps={NUM_ENV_STEPS_SAMPLED_LIFETIME: 1000},
                    num_epochs=config.num_epochs, minibatch_size=config.minibatch_size,
                    shuffle_batch_per_epoch=config.shuffle_batch_per_epoch)[0])) for _ in range(2)]
            finally:
                algo.close()
    finally:
        ray.shutdown()
    assert_ray_is_gone()
    for lean, rllib in zip(results["lean"], results["rllib"]):
        assert set(lean) == set(rllib)
        assert any("num_module_steps_trained" in key for key in lean)
        for key in lean:
            assert lean[key] == rllib[key] or (lean[key] != lean[key] and rllib[key] != rllib[key]), key
