"""The RLlib backend's default learner (``rllib_learner=fast``): RLlib's PPO through its documented hooks.

The default run fails here if the fast path is off or RLlib changes under it: the run's learner, learner
connector, optimiser, module and runner are the suite's; the bulk batch is RLlib's own PPO pipeline's without
the artificial steps, tensor for tensor; the loss terms are RLlib's distributions' to rounding and the
gradient clipping RLlib's to the bit; and a seeded run on the fast learner repeats the exact learner's
scores within the seed noise only through its documented differences (a measurement, docs/benchmarks.md)."""

import copy

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from ray.rllib.algorithms.ppo.torch.ppo_torch_learner import PPOTorchLearner
from ray.rllib.core.columns import Columns
from ray.rllib.core.distribution.torch.torch_distribution import TorchCategorical, TorchMultiCategorical
from ray.rllib.utils.torch_utils import clip_gradients

from baselines.backends import rllib_ppo
from baselines.backends.rllib_batched_runner import BatchedEnvRunner
from baselines.backends.rllib_fast_learner import FastPPOTorchLearner, PPOBatchFromEpisodes, clip_by_global_norm
from baselines.backends.rllib_masking_module import MaskedPPOTorchRLModule
from baselines.masked_logits import MASKED_LOGIT, log_prob_and_entropy
from tests.helpers import TINY_SETTINGS, assert_ray_is_gone, build_algo


def _assert_same(mine, theirs, where=""):
    if isinstance(mine, dict):
        assert mine.keys() == theirs.keys(), where
        for key in mine:
            _assert_same(mine[key], theirs[key], f"{where}.{key}")
        return
    assert mine.dtype == theirs.dtype and torch.equal(mine, theirs), where


def _learner(algo):
    """The run's (local) learner."""
    (result,) = algo.algo.learner_group.foreach_learner(lambda learner: learner)
    return result.get()


def test_the_fast_path_is_on_by_default():
    """The default run's pieces: a plain ``pytest`` fails here if any of them falls back to RLlib's own."""
    import ray

    from baselines.ray_session import connect_ray
    from baselines.settings import RLlibSettings

    assert RLlibSettings().rllib_learner == "fast"
    connect_ray(None, num_cpus=1)
    try:
        algo = build_algo("masked_ppo", "portfolio", budget=10**6, lr_schedule="linear", **TINY_SETTINGS)
        try:
            config = algo.algo.config
            assert config.learner_class is FastPPOTorchLearner and config.env_runner_cls is BatchedEnvRunner
            assert not config.add_default_connectors_to_learner_pipeline
            learner = _learner(algo)
            assert type(learner) is FastPPOTorchLearner
            pieces = learner.config.build_learner_connector(input_observation_space=None, input_action_space=None)
            assert [type(piece) for piece in pieces.connectors] == [PPOBatchFromEpisodes]
            (module_id,) = learner.module.keys()
            (optimizer,) = [optimizer for _, optimizer in learner.get_optimizers_for_module(module_id)]
            assert type(optimizer) is torch.optim.Adam and optimizer.defaults["fused"]
            for module in (learner.module[module_id], algo.algo.env_runner.module):
                assert type(module) is MaskedPPOTorchRLModule and module.draw_actions
            assert type(algo.algo.env_runner) is BatchedEnvRunner
            row = algo.train_iteration()
            # the runner's metrics reach RLlib's algorithm: its lifetime env steps drive the learning-rate schedule
            assert row["env_steps"] >= 512 and row["lr"] < algo.config.lr
        finally:
            algo.close()
    finally:
        ray.shutdown()
    assert_ray_is_gone()


def test_the_exact_setting_is_rllibs_own_learner_and_draw():
    import ray

    from baselines.ray_session import connect_ray

    assert rllib_ppo.learner_class("exact") is PPOTorchLearner
    connect_ray(None, num_cpus=1)
    try:
        algo = build_algo("penalty_ppo", "portfolio", budget=10**6, rllib_learner="exact", **TINY_SETTINGS)
        try:
            assert type(_learner(algo)) is PPOTorchLearner
            assert algo.algo.config.add_default_connectors_to_learner_pipeline
            assert not algo.algo.env_runner.module.draw_actions
        finally:
            algo.close()
    finally:
        ray.shutdown()
    assert_ray_is_gone()


@pytest.mark.parametrize("env, algo, env_config", [
    ("portfolio", "masked_ppo", {"n_agents": 3}),
    pytest.param("sum_to_zero", "masked_ppo", {}, marks=pytest.mark.slow)])
def test_the_bulk_batch_is_rllibs_pipeline_without_the_artificial_steps(env, algo, env_config):
    """Dict observations with a mask, several agents' episodes (chunks cut mid-episode too); Box actions (a slow
    test: the default run's budget). RLlib's pipeline is the one its PPO learner builds (``rllib_learner=exact``),
    read through the learner's private ``_learner_connector`` (a test's access: it fails loudly if RLlib renames
    it), followed by dropping the rows whose ``loss_mask`` is False."""
    import ray

    from baselines.ray_session import connect_ray

    connect_ray(None, num_cpus=1)
    try:
        settings = {"budget": 10**6, "train_batch_size": "512", "minibatch_size": "128",
                    "num_envs_per_env_runner": "8", "hidden": "16"}
        trainer = build_algo(algo, env, env_config, rllib_learner="exact", **settings)
        try:
            learner = _learner(trainer)
            episodes = trainer.algo.env_runner.sample(num_timesteps=512)
            assert any(not e.is_done for e in episodes) and any(e.is_done for e in episodes)
            (module_id,) = learner.module.keys()
            pipeline = learner._learner_connector(rl_module=learner.module, batch={},
                                                  episodes=copy.deepcopy(episodes), shared_data={},
                                                  metrics=learner.metrics)[module_id]
            keep = pipeline.pop(Columns.LOSS_MASK).bool()
            pipeline = {key: ({k: v[keep] for k, v in value.items()} if isinstance(value, dict) else value[keep])
                        for key, value in pipeline.items()}
            config = learner.config.get_config_for_module(module_id)
            bulk = PPOBatchFromEpisodes(gamma=config.gamma, lambda_=config.lambda_)(
                rl_module=learner.module, batch={}, episodes=episodes)[module_id]
            assert len(bulk[Columns.ACTIONS]) == sum(len(e) for e in episodes)
            _assert_same(bulk, pipeline)
        finally:
            trainer.close()
    finally:
        ray.shutdown()
    assert_ray_is_gone()


def test_the_bulk_connector_refuses_other_episodes():
    class Module:
        def keys(self):
            return ["default_policy"]

        def __getitem__(self, key):
            return None

    with pytest.raises(ValueError, match="batched runner's episode chunks"):
        PPOBatchFromEpisodes(gamma=0.9, lambda_=0.9)(rl_module=Module(), batch={}, episodes=[object()])


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**31), nvec=st.lists(st.integers(1, 12), min_size=1, max_size=4))
def test_the_loss_terms_are_rllibs_to_rounding(seed, nvec):
    """The suite's masked categorical against RLlib's distributions, on logits masked as the module masks them."""
    generator = np.random.default_rng(seed)
    logits = torch.tensor(generator.normal(scale=3.0, size=(64, sum(nvec))).astype(np.float32))
    actions = torch.tensor(np.stack([generator.integers(0, n, 64) for n in nvec], axis=-1))
    masked = torch.tensor(generator.random(logits.shape) < 0.3)
    for k, start in enumerate(np.cumsum([0, *nvec[:-1]])):  # never the action taken
        masked[torch.arange(64), int(start) + actions[:, k]] = False
    logits = torch.where(masked, MASKED_LOGIT, logits)
    if len(nvec) == 1:
        dist, taken = TorchCategorical.from_logits(logits), actions[:, 0]
    else:
        dist, taken = TorchMultiCategorical.from_logits(logits, input_lens=nvec), actions
    mine = log_prob_and_entropy(logits, taken, nvec)
    for a, b in zip(mine, (dist.logp(taken), dist.entropy())):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**31), n=st.integers(1, 12), grad_clip=st.sampled_from([0.05, 0.5, 10.0, 1e6]))
def test_clipping_by_the_global_norm_is_rllibs_to_the_bit(seed, n, grad_clip):
    """Gradients of mixed scales (1e-8 to 1e8, so that some norms overflow float32 and RLlib's nan_to_num
    matters), clipped or not."""
    generator = torch.Generator().manual_seed(seed)
    shapes = [tuple(int(d) for d in torch.randint(1, 40, (int(torch.randint(1, 3, (1,), generator=generator)),),
                                                  generator=generator)) for _ in range(n)]
    scales = [10.0 ** float(torch.randint(-8, 9, (1,), generator=generator)) for _ in range(n)]
    grads = {f"p{k}": torch.randn(shape, generator=generator) * scale for k, (shape, scale) in
             enumerate(zip(shapes, scales))}
    theirs = {key: g.clone() for key, g in grads.items()}
    mine = {key: g.clone() for key, g in grads.items()}
    norm_theirs = clip_gradients(theirs, grad_clip=grad_clip, grad_clip_by="global_norm")
    norm_mine = clip_by_global_norm(list(mine.values()), grad_clip)
    assert torch.equal(norm_mine, norm_theirs)
    for key in grads:
        assert torch.equal(mine[key], theirs[key])


def test_non_finite_gradients_take_rllibs_path(monkeypatch):
    """A NaN gradient is repaired by RLlib's own apply_gradients (set to zero, the step skipped), not stepped."""
    calls = []
    monkeypatch.setattr(PPOTorchLearner, "apply_gradients", lambda self, grads: calls.append(grads))
    learner = object.__new__(FastPPOTorchLearner)
    grads = {"w": torch.tensor([1.0, float("nan")]), "b": torch.ones(2)}
    learner.apply_gradients(grads)
    assert calls == [grads]



def test_the_rllib_backend_uses_no_private_rllib_name():
    """No ``._name`` in the RLlib backend's modules is one of RLlib's own (defined as ``def _name`` or
    ``self._name`` in the RLlib classes the backend builds on), read, set or overridden, but the RLModule hooks
    RLlib documents for overriding (``_forward*``); the other ``._name``\\ s are the backend's own or torch's
    fused ``_foreach_*`` kernels. A private RLlib name added to the backend fails the default run (issue 33:
    26 before, now none)."""
    import re
    from pathlib import Path

    import ray.rllib

    rllib = Path(ray.rllib.__file__).parent
    bases = [rllib / part for part in ("env/env_runner.py", "env/single_agent_env_runner.py",
                                       "core/learner/learner.py", "core/learner/torch/torch_learner.py",
                                       "algorithms/ppo/ppo_learner.py", "algorithms/ppo/torch/ppo_torch_learner.py",
                                       "core/rl_module/rl_module.py", "core/rl_module/torch/torch_rl_module.py",
                                       "connectors/connector_v2.py", "core/distribution/torch/torch_distribution.py",
                                       "core/distribution/distribution.py")]
    theirs = set()
    for path in bases:
        source = path.read_text()
        theirs |= set(re.findall(r"def (_[A-Za-z]\w*)", source)) | set(re.findall(r"self\.(_[A-Za-z]\w*)", source))
    hooks = {"_forward", "_forward_train", "_forward_exploration", "_forward_inference"}
    ours = "\n".join(path.read_text() for path in Path(rllib_ppo.__file__).parent.glob("rllib_*.py"))
    used = set(re.findall(r"\.(_[A-Za-z]\w*)", ours)) | set(re.findall(r"def (_[A-Za-z]\w*)", ours))
    assert {name for name in used if not name.startswith("__")} & theirs - hooks == set()
