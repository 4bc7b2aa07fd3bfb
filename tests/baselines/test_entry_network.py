"""``network=per_entry``: one actor-critic shared by an allocation's exchangeable entries (torch backend)."""

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import envs
from baselines.backends.torch_entry_network import EntryActorCritic
from baselines.backends.torch_policy_heads import GaussianHead
from envs.config import ConfigError
from suite import results
from tests.helpers import TINY, build_algo, run_main


def _targets(n: int) -> np.ndarray:
    return np.stack([np.arange(n), n + np.arange(n)], axis=1)  # sum_to_zero's: weight i, demand i


@settings(max_examples=25, deadline=None)
@given(n=st.integers(2, 12), seed=st.integers(0, 2**16))
def test_permuting_the_targets_permutes_the_policy_and_leaves_the_value(n, seed):
    torch.manual_seed(seed)
    net = EntryActorCritic(_targets(n), 2 * n, (8, 8), "tanh")
    features = torch.rand(5, 2 * n)
    order = torch.randperm(n)
    permuted = torch.cat([features[:, :n][:, order], features[:, n:][:, order]], dim=1)
    out, value = net(features)
    out_p, value_p = net(permuted)
    # Block by block (the Gaussian head's layout): every entry's mean, then every entry's log-std.
    torch.testing.assert_close(out_p[:, :n], out[:, :n][:, order])
    torch.testing.assert_close(out_p[:, n:], out[:, n:][:, order])
    torch.testing.assert_close(value_p, value)


def test_each_entry_sees_its_own_features_and_the_others_only_through_the_mean():
    """Changing target 0's features moves target 0's outputs directly and every other's only through the
    shared context: with the context's weights zeroed, the others do not move at all."""
    n = 6
    net = EntryActorCritic(_targets(n), 2 * n, (8, 8), "tanh")
    with torch.no_grad():
        net.policy_head[0].weight[:, 8:] = 0.0  # the context's half of the first layer after the embedding
    features = torch.rand(1, 2 * n)
    changed = features.clone()
    changed[0, 0] += 0.5
    changed[0, n] -= 0.3
    out, changed_out = net.policy(features), net.policy(changed)
    moved = (changed_out - out).abs().reshape(2, n).amax(0)
    assert moved[0] > 0 and torch.all(moved[1:] == 0)


def test_the_gaussian_head_reads_the_entry_network_as_means_then_log_stds():
    n = 4
    net = EntryActorCritic(_targets(n), 2 * n, (8,), "tanh")
    head = GaussianHead(envs.make_core("sum_to_zero", 1, n_targets=n).action_space, log_std_init=-2.0)
    out = net.policy(torch.rand(3, 2 * n))
    mean, log_std = head._mean_log_std(out)
    per_entry = net.policy_head(torch.cat([net.embed(torch.rand(3, n, 2))] * 2, dim=-1))
    assert mean.shape == log_std.shape == (3, n) and per_entry.shape == (3, n, 2)
    torch.testing.assert_close(log_std, out[:, n:] - 2.0)


def test_the_number_of_weights_does_not_grow_with_the_targets():
    small = EntryActorCritic(_targets(13), 26, (16, 16), "tanh")
    large = EntryActorCritic(_targets(1000), 2000, (16, 16), "tanh")
    assert sum(p.numel() for p in small.parameters()) == sum(p.numel() for p in large.parameters())


def test_a_run_trains_and_evaluates_with_the_per_entry_network_and_repeats_under_its_seed(tmp_path):
    argv = ["--env", "sum_to_zero-m", "--algo", "masked_ppo", "--backend", "torch", "--steps", "1024",
            "--episodes", "4", "--quiet", *TINY, "--algo-config", "network=per_entry", "--algo-config", "hidden=8,8"]
    frames = []
    for out in (tmp_path / "a", tmp_path / "b"):
        assert run_main(*argv, "--out", str(out)) == 0
        loaded = results.load(out)
        assert loaded.runs["status"].tolist() == ["complete"] and loaded.runs["algo.network"].tolist() == ["per_entry"]
        frames.append(loaded.evals)
    assert (frames[0].query("mask == 'on'")["invalid_steps"] == 0).all()
    assert frames[0]["return"].tolist() == frames[1]["return"].tolist()


def test_the_default_is_the_mlp_and_an_older_config_reads_as_one():
    algo = build_algo("masked_ppo", "sum_to_zero", budget=8192, backend="torch")
    assert algo.config.network == "mlp" and type(algo.models[0]).__name__ == "ActorCritic"
    old = {"env": "sum_to_zero", "algo": "masked_ppo", "algo_config": {"backend": "torch", "lr": 1e-3}}
    assert results.with_added_settings(old)["algo_config"]["network"] == "mlp"


@pytest.mark.parametrize("env, backend, message", [
    ("portfolio", "torch", "network=per_entry needs an env whose action entries are exchangeable"),
    ("sum_to_zero", "rllib", "network=per_entry is not built by this backend; it builds mlp (per_entry: "
                             "--backend torch)"),
])
def test_where_the_per_entry_network_cannot_run_is_one_line(tmp_path, capsys, env, backend, message):
    assert run_main("--env", env, "--algo", "masked_ppo", "--backend", backend, "--steps", "512", "--out",
                    str(tmp_path), "--quiet", "--algo-config", "network=per_entry") == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1, err
    assert not any(tmp_path.iterdir())


def test_the_contract_refuses_entry_features_out_of_range():
    from envs.contract import EnvContractError, check_core
    from envs.sum_to_zero import SumToZeroCore

    class Broken(SumToZeroCore):
        def entry_features(self):
            return super().entry_features() + 1  # the last target points past the features

    with pytest.raises(EnvContractError, match="entry_features\\(\\) has indices outside the 26 features"):
        check_core(Broken, "broken")


def test_config_error_names_the_env_without_entries():
    from baselines.settings import PPOSettings, check_network_fits

    core = envs.make_core("speed_limit", 1)
    with pytest.raises(ConfigError, match="'speed_limit' does not"):
        check_network_fits(PPOSettings(network="per_entry"), core, networks=("mlp", "per_entry"))


def test_an_objectives_critic_is_a_pooled_value_too_and_trains():
    """Lagrangian PPO's cost critic on the per-entry network: one value per allocation, learned beside the rest."""
    from tests.helpers import TINY_SETTINGS

    algo = build_algo("lagrangian_ppo", "sum_to_zero", budget=4096, backend="torch", network="per_entry",
                      **{**TINY_SETTINGS, "hidden": "8,8"})
    try:
        critic = algo.models[0].critic("cost")
        assert type(critic).__name__ == "_PooledValue" and critic(torch.rand(3, 26)).shape == (3, 1)
        row = algo.train_iteration()
        assert np.isfinite(row["cost_vf_loss"]) and "lagrange_multiplier" in row
    finally:
        algo.close()


def _job_shop_features(n_jobs: int, n_machines: int, seed: int, job_features: bool) -> tuple[np.ndarray, np.ndarray]:
    """A job_shop observation part-way through an episode, and its core's ``entry_features()``."""
    core = envs.make_core("job_shop", 1, n_jobs=n_jobs, n_machines=n_machines, job_features=job_features)
    core.reset(np.arange(1), [np.random.default_rng(seed)])
    rng = np.random.default_rng(seed)
    for _ in range(rng.integers(0, n_jobs * n_machines - 1)):
        open_jobs = np.flatnonzero(core.action_mask()[0, 0])
        core.step(np.array([[[rng.choice(open_jobs)]]]))
    return core.features()[:, 0], core.entry_features()


@settings(max_examples=20, deadline=None)
@given(n_jobs=st.integers(2, 6), n_machines=st.integers(2, 5), seed=st.integers(0, 2**16),
       job_features=st.booleans())
def test_renumbering_the_jobs_renumbers_the_job_shop_logits_and_leaves_the_value(n_jobs, n_machines, seed,
                                                                               job_features):
    """job_shop's jobs are the per-entry network's entries: job j is read from its own operations' rows, the
    machines' last ends (and its dispatching features), so the same state with its jobs in another order gets
    the same scores, reordered."""
    features, rows = _job_shop_features(n_jobs, n_machines, seed, job_features)
    width, k = n_machines * (3 + n_machines), 6 if job_features else 0
    assert rows.shape == (n_jobs, width + n_machines + k)
    order = np.random.default_rng(seed).permutation(n_jobs)
    per_job = features[:, :n_jobs * width].reshape(1, n_jobs, width)
    machines = features[:, n_jobs * width:n_jobs * width + n_machines]
    tail = features[:, n_jobs * width + n_machines:].reshape(1, n_jobs, k)
    permuted = np.concatenate([per_job[:, order].reshape(1, -1), machines, tail[:, order].reshape(1, -1)], axis=1)
    torch.manual_seed(seed)
    net = EntryActorCritic(rows, n_jobs, (8, 8), "tanh")
    logits, value = net(torch.from_numpy(features))
    logits_p, value_p = net(torch.from_numpy(permuted))
    torch.testing.assert_close(logits_p, logits[:, order])
    torch.testing.assert_close(value_p, value)


def test_the_studies_job_shop_task_trains_end_to_end_on_the_per_job_network(tmp_path):
    """What the studies run (per-job network, job features, noop), as a user would: trains, evaluates with and
    without the mask, records the settings, and its penalty sibling (no mask) runs too."""
    common = ["--env", "job_shop", "--backend", "torch", "--steps", "1024", "--episodes", "4", "--quiet", *TINY,
              "--out", str(tmp_path), "--algo-config", "network=per_entry", "--algo-config", "hidden=8,8",
              "--env-config", "job_features=true", "--env-config", "invalid_action=noop"]
    assert run_main("--algo", "masked_ppo", *common) == 0
    assert run_main("--algo", "penalty_ppo", *common) == 0
    loaded = results.load(tmp_path)
    assert loaded.runs["status"].tolist() == ["complete"] * 2
    assert set(loaded.runs["algo.network"]) == {"per_entry"} and set(loaded.runs["env.job_features"]) == {True}
    assert set(loaded.evals["makespan"].notna()) == {True}
