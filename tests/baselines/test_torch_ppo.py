"""The single-process torch backend (``--backend torch``): the shared masked
distribution, GAE with next-step autoreset, masks never broken, determinism, resume, learning, bad input."""

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from baselines.backends.torch_ppo import advantages
from baselines.masked_logits import MASKED_LOGIT, apply_mask, log_prob_and_entropy, sample_with_log_prob
from suite import results
from tests.helpers import TIMING, TINY, run_folder, run_main

TORCH = [*TINY, "--backend", "torch"]


def tiny_run(out, algo="masked_ppo", *extra, env="portfolio", steps=1024):
    return run_main("--env", env, "--algo", algo, "--steps", str(steps), "--episodes", "8", "--out", str(out),
                    "--quiet", *TORCH, *extra)


def read_run(out, algo="masked_ppo", env="portfolio", seed=0):
    directory = run_folder(out, env, algo, seed)
    return pd.read_csv(directory / "progress.csv"), pd.read_csv(directory / "eval.csv")


@settings(max_examples=50, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), nvec=st.sampled_from([[11, 11, 11], [10], [2, 5, 3]]))
def test_masked_log_prob_and_entropy_are_those_of_the_renormalised_admissible_distribution(seed, nvec):
    gen = torch.Generator().manual_seed(seed)
    logits = torch.randn(32, sum(nvec), generator=gen) * 3
    mask = (torch.rand(32, sum(nvec), generator=gen) < 0.5).to(torch.int8)
    for lo in np.cumsum([0, *nvec[:-1]]):  # keep every block non-empty
        mask[:, lo] = 1
    masked = apply_mask(logits, mask, nvec, "test")
    actions, log_prob = sample_with_log_prob(masked, nvec, gen)
    expected_lp, expected_entropy = torch.zeros(32), torch.zeros(32)
    for k, (lo, n) in enumerate(zip(np.cumsum([0, *nvec[:-1]]), nvec)):
        block_logits = logits[:, lo:lo + n].masked_fill(mask[:, lo:lo + n] == 0, -math.inf)
        dist = torch.distributions.Categorical(logits=block_logits)
        assert bool(mask[:, lo:lo + n].gather(1, actions[:, k:k + 1]).all()), "sampled a masked value"
        expected_lp += dist.log_prob(actions[:, k])
        p = dist.probs
        expected_entropy += -(p * torch.where(p > 0, p.log(), torch.zeros_like(p))).sum(-1)
    lp, entropy = log_prob_and_entropy(masked, actions, nvec)
    torch.testing.assert_close(log_prob, expected_lp, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(lp, expected_lp, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(entropy, expected_entropy, atol=1e-4, rtol=1e-4)
    assert torch.isfinite(entropy).all() and (masked[mask == 0] == MASKED_LOGIT).all()


def test_gumbel_max_sampling_follows_the_categorical_probabilities():
    logits = torch.tensor([[0.0, 1.0, 2.0, -1.0]]).repeat(200_000, 1)
    actions, _ = sample_with_log_prob(logits, [4], torch.Generator().manual_seed(0))
    frequencies = torch.bincount(actions[:, 0], minlength=4).double() / len(actions)
    torch.testing.assert_close(frequencies, torch.softmax(logits[0].double(), -1), atol=4e-3, rtol=0)


def test_advantages_by_hand_with_termination_truncation_and_reset_steps():
    gamma, lam = 0.9, 0.5
    # One entry: steps 0, 1 (terminated), 2 (reset step), 3, 4 (truncated), 5 (reset step), 6.
    rewards = np.array([[1.0], [2.0], [0.0], [1.0], [3.0], [0.0], [4.0]])
    values = np.array([[0.5], [0.6], [9.0], [0.2], [0.3], [0.7], [0.1], [0.4]])  # values[t] = V(obs_t); T + 1 rows
    terminated = np.array([[False], [True], [False], [False], [False], [False], [False]])
    truncated = np.array([[False], [False], [False], [False], [True], [False], [False]])
    real = np.array([[True], [True], [False], [True], [True], [False], [True]])
    adv = advantages(rewards, values, terminated, truncated, real, gamma, lam)[:, 0]
    d6 = 4.0 + gamma * 0.4 - 0.1                    # bootstraps from the value after the rollout
    d4 = 3.0 + gamma * 0.7 - 0.3                    # truncated: bootstraps from its last observation
    d3 = 1.0 + gamma * 0.3 - 0.2
    d1 = 2.0 - 0.6                                  # terminated: no bootstrap (the 9.0 after is ignored)
    d0 = 1.0 + gamma * 0.6 - 0.5
    expected = [d0 + gamma * lam * d1, d1, 0.0, d3 + gamma * lam * d4, d4, 0.0, d6]
    np.testing.assert_allclose(adv, expected)


def test_torch_masked_ppo_never_takes_an_inadmissible_action_and_reports_like_rllib(tmp_path):
    assert tiny_run(tmp_path, "masked_ppo", "--eval-every", "1") == 0
    progress, evaluation = read_run(tmp_path)
    assert list(progress.columns[:len(results.PROGRESS_COLUMNS)]) == results.PROGRESS_COLUMNS
    assert {"entropy", "policy_loss", "vf_loss", "vf_explained_var", "lr", "env_steps_per_second",
            "portfolio_value_mean", "eval_return_mean"} <= set(progress)
    assert (progress["invalid_action_rate"] == 0).all() and progress["episodes"].iloc[-1] > 0
    # 512 transitions per iteration, of which the steps that only reset an entry are not env steps.
    assert 0 < progress["env_steps"].diff().fillna(progress["env_steps"]).max() <= 512
    groups = evaluation.groupby(["policy", "mask"]).size().to_dict()
    assert groups == {("greedy", "off"): 8, ("greedy", "on"): 8, ("stochastic", "off"): 8, ("stochastic", "on"): 8}
    assert (evaluation.loc[evaluation["mask"] == "on", "invalid_actions"] == 0).all()
    assert evaluation.loc[evaluation["mask"] == "off", "invalid_actions"].sum() > 0
    config = results.load(tmp_path).runs
    assert config["algo.backend"].tolist() == ["torch"]
    import ray

    assert not ray.is_initialized()  # the torch backend never starts Ray


def test_torch_penalty_ppo_sees_no_mask_and_is_penalised(tmp_path):
    assert tiny_run(tmp_path, "penalty_ppo") == 0
    progress, evaluation = read_run(tmp_path, "penalty_ppo")
    assert progress["invalid_action_rate"].iloc[0] > 0.5  # an untrained policy that cannot see the mask
    assert set(evaluation["mask"]) == {"off"}


def test_torch_backend_on_the_single_discrete_speed_limit_env(tmp_path):
    assert tiny_run(tmp_path, "masked_ppo", env="speed_limit") == 0
    progress, evaluation = read_run(tmp_path, env="speed_limit")
    assert (progress["invalid_action_rate"] == 0).all()
    assert (evaluation.loc[evaluation["mask"] == "on", "invalid_actions"] == 0).all()


def test_a_seed_repeats_a_torch_run_exactly_and_another_seed_differs(tmp_path):
    frames = []
    for out, seed in (("a", "3"), ("b", "3"), ("c", "4")):
        assert tiny_run(tmp_path / out, "masked_ppo", "--seed", seed) == 0
        progress, evaluation = read_run(tmp_path / out, seed=int(seed))
        frames.append((progress.drop(columns=TIMING, errors="ignore"),
                       evaluation.drop(columns=["env_seed", "episode"])))
    pd.testing.assert_frame_equal(frames[0][0], frames[1][0])
    pd.testing.assert_frame_equal(frames[0][1], frames[1][1])
    assert not frames[0][0]["policy_loss"].equals(frames[2][0]["policy_loss"])


def test_an_interrupted_torch_run_resumes_where_it_stopped(tmp_path):
    assert tiny_run(tmp_path / "whole", "masked_ppo", steps=2048) == 0
    assert tiny_run(tmp_path / "split", "masked_ppo", "--checkpoint-every", "1", steps=1024) == 0
    (run_folder(tmp_path / "split", "portfolio", "masked_ppo", 0) / "eval.csv").unlink()  # killed in evaluation
    assert tiny_run(tmp_path / "split", "masked_ppo", "--resume", steps=2048) == 0
    whole, _ = read_run(tmp_path / "whole")
    split, _ = read_run(tmp_path / "split")
    assert split["iteration"].tolist() == whole["iteration"].tolist()
    # The weights, optimiser and sampling generator come back; the envs restart their episodes.
    assert split["env_steps"].iloc[-1] > 1536 and split["lr"].equals(whole["lr"])


def test_torch_masked_ppo_learns_to_beat_random_valid(tmp_path):
    """80k env steps (about 15 seconds) lift the greedy policy far above random-valid's $1,240."""
    common = ["--env", "portfolio", "--episodes", "200", "--out", str(tmp_path), "--quiet", "--seed", "1"]
    assert run_main(*common, "--algo", "random_valid") == 0
    assert run_main(*common, "--algo", "masked_ppo", "--backend", "torch", "--steps", "80000") == 0
    progress, evaluation = read_run(tmp_path, seed=1)
    baseline = pd.read_csv(run_folder(tmp_path, "portfolio", "random_valid", 1) / "eval.csv")["return"].mean()
    greedy = evaluation.query("policy == 'greedy' and mask == 'on'")["return"].mean()
    assert (progress["invalid_action_rate"] == 0).all()
    assert greedy > 1.4 * baseline, (greedy, baseline)
    assert progress["portfolio_value_mean"].iloc[-3:].mean() > progress["portfolio_value_mean"].iloc[:3].mean() + 200


@pytest.mark.parametrize("argv, message", [
    (["--env", "portfolio", "--algo", "normalize_ppo"], "normalize_ppo handles continuous actions; env 'portfolio'"),
    (["--env", "portfolio", "--algo", "sb3_maskable_ppo"], "config key 'backend' must be one of sb3; got 'torch'"),
    (["--env", "portfolio", "--algo", "masked_ppo", "--num-env-runners", "2"],
     "backend=torch samples in one process; num_env_runners must be 0"),
    (["--env", "portfolio", "--algo", "masked_ppo", "--algo-config", "train_batch_size=1000",
      "--algo-config", "minibatch_size=100"],
     "needs train_batch_size (1000) to be a multiple of num_envs_per_env_runner (64)"),
])
def test_bad_backend_input_is_one_line_with_status_2(tmp_path, capsys, argv, message):
    assert run_main(*argv, "--backend", "torch", "--out", str(tmp_path), "--steps", "512", "--quiet") == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1, err
    assert not any(tmp_path.iterdir())


def test_an_unknown_backend_is_refused(tmp_path, capsys):
    assert run_main("--env", "portfolio", "--algo", "masked_ppo", "--backend", "jax", "--out", str(tmp_path)) == 2
    assert "config key 'backend' must be one of" in capsys.readouterr().err


def test_naive_masking_on_the_torch_backend_stores_and_learns_from_the_unmasked_log_probability():
    from tests.helpers import TINY_SETTINGS, build_algo

    algo = build_algo("naive_masked_ppo", "portfolio", budget=10_000, backend="torch", **TINY_SETTINGS)
    try:
        batch, _ = algo._rollout()
        with torch.no_grad():
            logits, _ = algo.models[0](batch["features"])
        nvec = algo.head.nvec
        unmasked, _ = log_prob_and_entropy(logits, batch["actions"], nvec)
        masked, _ = log_prob_and_entropy(apply_mask(logits, batch["masks"], nvec, "x"), batch["actions"], nvec)
        assert torch.allclose(batch["log_probs"], unmasked, atol=1e-5)
        assert (batch["masks"] == 0).any(dim=-1).all()  # portfolio always masks something (sales of nothing)
        assert torch.all(unmasked < masked)
        admitted = torch.gather(batch["masks"], 1, batch["actions"] + torch.tensor([0, 11, 22]))
        assert torch.all(admitted == 1)  # sampled from the masked distribution
        learner = algo._learn(batch)
        assert learner["entropy"] > 0.99 * 3 * math.log(11)  # the unmasked entropy: near uniform over 11 values
    finally:
        algo.close()


# ---------------------------------------------------------------------- a method's own objective


class CountingObjective:
    """A toy :class:`baselines.objective.Objective`: the signal ``ones`` (1 per step), zero advantages for the
    policy, and a record of its hooks' calls."""

    name = "counting"
    signals = ("ones",)

    def __init__(self, config):
        self.steps, self.updates = 0, 0

    def step_signals(self, info):
        self.steps += 1
        return {"ones": np.ones(info["invalid_actions"].shape)}

    def policy_advantages(self, advantages, signal_advantages, episode_sums):
        assert signal_advantages["ones"].shape == advantages.shape and episode_sums["ones"].dtype == torch.float64
        self.updates += 1
        return torch.zeros_like(advantages), {"counting_updates": float(self.updates)}

    def state_dict(self):
        return {"updates": torch.tensor(self.updates)}

    def load_state_dict(self, state):
        self.updates = int(state["updates"])


def test_a_methods_own_objective_runs_through_the_torch_backends_hooks(tmp_path):
    """The torch loop's one extension point (:mod:`baselines.objective`) with a toy objective: a critic of its
    signal that learns, the step signals summed over each episode, the objective's advantages the ones the
    policy learns from, its columns in progress.csv, its state and the sums in flight in a checkpoint."""
    from dataclasses import replace

    from baselines import load_algo
    from baselines.backends.torch_ppo import TorchPPO
    from tests.helpers import TINY_SETTINGS

    method = replace(load_algo("penalty_ppo"), name="counting_ppo", objective=CountingObjective)
    config = method.make_config("portfolio", {**TINY_SETTINGS, "backend": "torch"}, owner="test")
    algo = TorchPPO("portfolio", {}, config, 0, method=method, budget=10_000)
    resumed = TorchPPO("portfolio", {}, config, 1, method=method, budget=10_000)
    try:
        row = algo.train_iteration()
        steps = config.train_batch_size // config.num_envs_per_env_runner
        assert algo.objective.steps == steps and row["counting_updates"] == 1 and row["ones_vf_loss"] > 0
        assert row["policy_loss"] == 0  # zero advantages: no policy gradient
        batch, episode_sums = algo._rollout()
        assert "ones_returns" in batch and "ones_advantages" in batch
        lengths = [episode["length"] for episode in algo.env.drain()["episodes"]]
        assert lengths and sorted(episode_sums["ones"].tolist()) == sorted(lengths)  # 1 per step: the lengths
        algo.save(tmp_path)
        assert "counting" in torch.load(tmp_path / "torch_ppo.pt", weights_only=True)
        resumed.restore(tmp_path)
        assert resumed.objective.updates == 1
        np.testing.assert_array_equal(resumed._episode_sums["ones"], algo._episode_sums["ones"])
        assert algo._episode_sums["ones"].any()  # episodes in flight
        torch.testing.assert_close(resumed.models[0].critic("ones").state_dict(),
                                   algo.models[0].critic("ones").state_dict())
    finally:
        algo.close()
        resumed.close()


def test_the_torch_backend_names_no_method():
    """Methods reach the torch loop through their declaration and their objective, never by name: the
    Lagrangian's cost and multiplier live in baselines/lagrange.py (issue 33)."""
    import baselines.backends.torch_ppo as torch_ppo

    source = Path(torch_ppo.__file__).read_text().lower()
    assert "lagrang" not in source and "cost" not in source


# ---------------------------------------------------------------------- Box actions (sum_to_zero)


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), dims=st.integers(1, 40), log_std_init=st.floats(-3.0, 1.0))
def test_the_gaussian_head_is_a_diagonal_normal_shifted_by_log_std_init(seed, dims, log_std_init):
    from gymnasium import spaces

    from baselines.backends.torch_policy_heads import GaussianHead

    gen = torch.Generator().manual_seed(seed)
    head = GaussianHead(spaces.Box(-1.0, 1.0, (dims,)), log_std_init)
    out = torch.randn(16, 2 * dims, generator=gen, dtype=torch.float64)
    actions, log_prob = head.sample(out, None, gen)
    normal = torch.distributions.Normal(out[:, :dims], (out[:, dims:] + log_std_init).exp())
    torch.testing.assert_close(log_prob, normal.log_prob(actions).sum(-1))
    lp, entropy = head.log_prob_and_entropy(out, None, actions)
    torch.testing.assert_close(entropy, normal.entropy().sum(-1))
    torch.testing.assert_close(lp, log_prob)
    env_actions = head.env_actions(actions)
    assert env_actions.shape == (16, dims) and np.all(np.abs(env_actions) <= 1.0)
    np.testing.assert_allclose(head.dist_inputs(out, None)[:, dims:], out[:, dims:].numpy() + log_std_init)


@pytest.mark.parametrize("algo", ["masked_ppo", "normalize_ppo"])
def test_torch_box_methods_never_send_an_inadmissible_action_and_learn(tmp_path, algo):
    """40k env steps (about 7 seconds): projection and normalisation keep every action admissible, and the
    greedy policy beats random-valid's 19.2 by far (RLlib reaches 42.4 in 1M steps)."""
    assert run_main("--env", "sum_to_zero", "--algo", algo, "--backend", "torch", "--steps", "40960",
                    "--episodes", "50", "--out", str(tmp_path), "--quiet") == 0
    progress, evaluation = read_run(tmp_path, algo, env="sum_to_zero")
    assert (progress["invalid_action_rate"] == 0).all()
    on = evaluation.query("mask == 'on'")
    assert (on["invalid_steps"] == 0).all()
    assert on.query("policy == 'greedy'")["return"].mean() > 30.0
