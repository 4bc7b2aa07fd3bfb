"""The RLlib backend's default learner (``rllib_learner=fast``): RLlib's PPO on the steps it learns from.

Its batches are RLlib's learner connector's without the artificial steps (built in bulk, tensor for tensor
the pipeline's), its loss terms RLlib's to rounding, and a seeded run repeats itself. Whether it learns as
well as the exact learner is a measurement (docs/benchmarks.md), not a test."""

import copy

import numpy as np
import pandas as pd
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from ray.rllib.core.columns import Columns

from baselines.backends import rllib_fast_learner
from baselines.backends.rllib_fast_learner import FastPPOTorchLearner, LearnFromRealSteps
from baselines.backends.rllib_lean_learner import categorical_log_prob_and_entropy
from tests.helpers import TIMING, TINY, assert_ray_is_gone, build_algo, read_run, run_main


def _assert_same(mine, theirs, where=""):
    if isinstance(mine, dict):
        assert mine.keys() == theirs.keys(), where
        for key in mine:
            _assert_same(mine[key], theirs[key], f"{where}.{key}")
        return
    assert mine.dtype == theirs.dtype and torch.equal(mine, theirs), where


@pytest.mark.parametrize("env, algo, env_config", [
    ("portfolio", "masked_ppo", {"n_agents": 3}),
    pytest.param("sum_to_zero", "masked_ppo", {}, marks=pytest.mark.slow)])
def test_the_bulk_batch_is_rllibs_pipeline_without_the_artificial_steps(env, algo, env_config):
    """Dict observations with a mask, several agents' episodes (chunks cut mid-episode too); Box actions (a slow
    test: the default run's budget)."""
    import ray

    from baselines.ray_session import connect_ray

    connect_ray(None, num_cpus=1)
    try:
        trainer = build_algo(algo, env, env_config, budget=10**6, train_batch_size="512", minibatch_size="128",
                             num_envs_per_env_runner="8", hidden="16")
        try:
            learner = trainer.algo.learner_group._learner
            assert isinstance(learner, FastPPOTorchLearner) and learner._bulk_batches
            episodes = trainer.algo.env_runner.sample(num_timesteps=512)
            assert any(not e.is_done for e in episodes) and any(e.is_done for e in episodes)
            (module_id,) = learner.module.keys()
            pipeline = learner._learner_connector(rl_module=learner.module, batch={},
                                                  episodes=copy.deepcopy(episodes), shared_data={},
                                                  metrics=learner.metrics)[module_id]
            config = learner.config.get_config_for_module(module_id)
            bulk = rllib_fast_learner.real_steps_batch(learner.module[module_id], episodes, gamma=config.gamma,
                                                       lambda_=config.lambda_)
            assert Columns.LOSS_MASK not in pipeline
            assert len(bulk[Columns.ACTIONS]) == sum(len(e) for e in episodes)
            _assert_same(bulk, pipeline)
        finally:
            trainer.close()
    finally:
        ray.shutdown()
    assert_ray_is_gone()


def test_learn_from_real_steps_keeps_the_rows_the_loss_reads():
    class Module:
        def is_stateful(self):
            return False

    batch = {"default_policy": {Columns.LOSS_MASK: torch.tensor([True, False, True, True]),
                                Columns.OBS: {"observation": torch.arange(8.0).reshape(4, 2)},
                                Columns.ACTIONS: torch.tensor([5, 6, 7, 8])}}
    out = LearnFromRealSteps()(rl_module={"default_policy": Module()}, batch=batch, episodes=[])
    assert set(out["default_policy"]) == {Columns.OBS, Columns.ACTIONS}
    assert torch.equal(out["default_policy"][Columns.ACTIONS], torch.tensor([5, 7, 8]))
    assert torch.equal(out["default_policy"][Columns.OBS]["observation"], torch.tensor([[0.0, 1], [4, 5], [6, 7]]))


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**31), nvec=st.lists(st.integers(2, 12), min_size=1, max_size=4))
def test_the_loss_terms_are_rllibs_to_rounding(seed, nvec):
    """Masked logits as the masking module makes them (a masked value's logit the most negative float)."""
    generator = np.random.default_rng(seed)
    logits = torch.tensor(generator.normal(scale=3.0, size=(64, sum(nvec))).astype(np.float32))
    actions = torch.tensor(np.stack([generator.integers(0, n, 64) for n in nvec], axis=-1))
    masked = torch.tensor(generator.random(logits.shape) < 0.3)
    for k, start in enumerate(np.cumsum([0, *nvec[:-1]])):  # never the action taken
        masked[torch.arange(64), int(start) + actions[:, k]] = False
    logits = torch.where(masked, torch.finfo(torch.float32).min, logits)
    one = len(nvec) == 1
    mine = FastPPOTorchLearner.log_prob_and_entropy(logits, actions[:, 0] if one else actions, None if one else nvec)
    rllib = categorical_log_prob_and_entropy(logits, actions[:, 0] if one else actions, None if one else nvec)
    for a, b in zip(mine, rllib):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)


def _run(out, env, algo, monkeypatch, bulk):
    if not bulk:
        monkeypatch.setattr(rllib_fast_learner, "real_steps_batch", lambda *args, **kwargs: None)
    assert run_main("--env", env, "--algo", algo, "--steps", "1024", "--episodes", "4", "--seed", "3",
                    "--out", str(out), "--quiet", *TINY) == 0
    assert_ray_is_gone()
    _, progress, evaluation = read_run(out, env, algo, seed=3)
    return progress.drop(columns=TIMING, errors="ignore"), evaluation


@pytest.mark.slow
def test_a_seeded_run_is_the_same_with_rllibs_pipeline(tmp_path, monkeypatch):
    """The bulk batch changes nothing a run computes: progress.csv (losses included) and eval.csv (slow: the
    batch comparison above is the default run's check of the same thing)."""
    bulk = _run(tmp_path / "bulk", "portfolio", "masked_ppo", monkeypatch, bulk=True)
    pipeline = _run(tmp_path / "pipeline", "portfolio", "masked_ppo", monkeypatch, bulk=False)
    assert bulk[0]["policy_loss"].notna().all()
    pd.testing.assert_frame_equal(bulk[0], pipeline[0])
    pd.testing.assert_frame_equal(bulk[1], pipeline[1])
