"""Dirichlet PPO: a policy whose support is the simplex: finite log-probabilities at its boundary, every action
admissible, and learning on sum_to_zero."""

import numpy as np
import pandas as pd
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from baselines.backends.torch_policy_heads import EDGE, DirichletHead
from tests.helpers import run_folder, run_main


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), n=st.integers(2, 50), scale=st.sampled_from([-30.0, -5.0, 0.0, 5.0, 30.0]))
def test_log_probabilities_stay_finite_at_the_simplex_boundary(seed, n, scale):
    """Exact zeros and ones (what a sample that underflowed looks like), extreme network outputs: no NaN, no inf
    (the known Dirichlet failure), and the samples lie on the simplex."""
    gen = torch.Generator().manual_seed(seed)
    out = (torch.randn(16, n, generator=gen) * 3 + scale).requires_grad_()
    head = DirichletHead(n, np.random.default_rng(seed))
    corners = torch.zeros(16, n)
    corners[torch.arange(16), torch.randint(0, n, (16,), generator=gen)] = 1.0
    log_prob, entropy = head.log_prob_and_entropy(out, None, corners)
    (log_prob.sum() + entropy.sum()).backward()
    assert torch.isfinite(log_prob).all() and torch.isfinite(entropy).all() and torch.isfinite(out.grad).all()
    targets, sampled_log_prob = head.sample(out.detach(), None, gen)
    assert torch.isfinite(sampled_log_prob).all()
    assert torch.all(targets >= EDGE * 0.99) and torch.allclose(targets.sum(-1), torch.ones(16), atol=1e-5)


def test_the_log_probability_is_the_dirichlets():
    out = torch.tensor([[0.3, -1.0, 2.0]])
    x = torch.tensor([[0.2, 0.3, 0.5]])
    head = DirichletHead(3, np.random.default_rng(0))
    alpha = 1 + torch.nn.functional.softplus(out)
    expected = torch.distributions.Dirichlet(alpha).log_prob(x)
    torch.testing.assert_close(head.log_prob_and_entropy(out, None, x)[0], expected)


def test_dirichlet_ppo_never_sends_an_inadmissible_action_and_learns(tmp_path):
    """40k env steps (about 8 seconds): every allocation on the simplex, and the greedy policy (the Dirichlet's
    mean) far above random-valid's 19.2."""
    assert run_main("--env", "sum_to_zero", "--algo", "dirichlet_ppo", "--steps", "40960", "--episodes", "50",
                    "--out", str(tmp_path), "--quiet") == 0
    directory = run_folder(tmp_path, "sum_to_zero", "dirichlet_ppo")
    progress, evaluation = pd.read_csv(directory / "progress.csv"), pd.read_csv(directory / "eval.csv")
    assert (progress["invalid_action_rate"] == 0).all() and (evaluation["invalid_steps"] == 0).all()
    assert set(evaluation["mask"]) == {"on"}
    assert evaluation.query("policy == 'greedy'")["return"].mean() > 30.0


def test_dirichlet_ppo_is_for_allocation_envs(tmp_path, capsys):
    assert run_main("--env", "portfolio", "--algo", "dirichlet_ppo", "--out", str(tmp_path)) == 2
    assert "dirichlet_ppo handles continuous actions; env 'portfolio'" in capsys.readouterr().err
