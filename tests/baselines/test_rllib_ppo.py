"""Masked and penalty PPO on RLlib through ``suite.run``: files, masks, Ray's lifecycle, resume,
bad input and a short learning test.

Every run here starts its own local Ray instance (``RLlibPPO`` passes ``num_cpus``) and must shut
it down again, leaving no Ray process behind."""

import pandas as pd
import pytest
import ray

from suite import results
from tests.helpers import TIMING, TINY, assert_ray_is_gone, build_algo, read_run, run_folder, run_main


def tiny_run(out, algo, *extra, steps=1024):
    return run_main("--env", "portfolio", "--algo", algo, "--steps", str(steps), "--episodes", "8",
                    "--out", str(out), "--quiet", *TINY, *extra)


def test_masked_ppo_smoke_run_never_takes_an_inadmissible_action(tmp_path):
    assert tiny_run(tmp_path, "masked_ppo", "--eval-every", "1") == 0
    assert_ray_is_gone()
    config, progress, evaluation = read_run(tmp_path, "portfolio", "masked_ppo")
    assert config["algo_config"]["gamma"] == 1.0  # portfolio's own defaults
    assert config["algo_config"]["train_env_config"] == ["reward=value_change"]
    assert list(progress.columns[:len(results.PROGRESS_COLUMNS)]) == results.PROGRESS_COLUMNS
    assert {"entropy", "policy_loss", "vf_loss", "env_steps_per_second", "portfolio_value_mean"} <= set(progress)
    assert progress["env_steps"].tolist() == [512, 1024] and progress["episodes"].iloc[-1] > 0
    assert (progress["invalid_action_rate"] == 0).all()
    assert progress["entropy"].notna().all() and (progress["entropy"] > 0).all()
    groups = evaluation.groupby(["policy", "mask"]).size().to_dict()
    assert groups == {("greedy", "off"): 8, ("greedy", "on"): 8, ("stochastic", "off"): 8, ("stochastic", "on"): 8}
    assert (evaluation.loc[evaluation["mask"] == "on", "invalid_actions"] == 0).all()
    # An untrained network without its mask tries inadmissible sales and buys: the fallback counts them.
    assert evaluation.loc[evaluation["mask"] == "off", "invalid_actions"].sum() > 0
    # The periodic evaluation plays the headline policy (greedy, masked) on the same seeds as the final one.
    headline = evaluation.query("policy == 'greedy' and mask == 'on'")
    assert progress["eval_return_mean"].iloc[-1] == pytest.approx(headline["return"].mean())
    assert progress["eval_portfolio_value_mean"].notna().all() and progress["eval_invalid_actions_mean"].eq(0).all()


def test_penalty_ppo_smoke_run_sees_no_mask_and_is_counted(tmp_path):
    assert tiny_run(tmp_path, "penalty_ppo", "--algo-config", "penalty=5") == 0
    assert_ray_is_gone()
    config, progress, evaluation = read_run(tmp_path, "portfolio", "penalty_ppo")
    assert config["algo_config"]["penalty"] == 5.0
    assert progress["invalid_action_rate"].iloc[0] > 0.5  # a fresh policy sells what it does not hold
    assert progress["entropy"].notna().all()
    assert set(zip(evaluation["policy"], evaluation["mask"])) == {("stochastic", "off"), ("greedy", "off")}
    assert (evaluation["return"] == evaluation["portfolio_value"]).all()  # evaluated on the env's own reward


def test_remote_env_runners_sample_and_report_the_same_columns(tmp_path):
    assert tiny_run(tmp_path, "masked_ppo", "--num-env-runners", "1") == 0
    assert_ray_is_gone()
    config, progress, _ = read_run(tmp_path, "portfolio", "masked_ppo")
    assert config["algo_config"]["num_env_runners"] == 1
    assert progress["env_steps"].tolist() == [512, 1024]  # counted on the remote runner
    assert (progress["invalid_action_rate"] == 0).all() and progress["episodes"].iloc[-1] > 0


def test_an_interrupted_run_resumes_from_its_checkpoint(tmp_path):
    assert tiny_run(tmp_path, "masked_ppo", "--checkpoint-every", "1") == 0
    directory = run_folder(tmp_path, "portfolio", "masked_ppo", 0)
    (directory / "eval.csv").unlink()  # as if killed during evaluation
    assert tiny_run(tmp_path, "masked_ppo", "--checkpoint-every", "1", "--resume", steps=2048) == 0
    assert_ray_is_gone()
    config, progress, _ = read_run(tmp_path, "portfolio", "masked_ppo")
    assert progress["iteration"].tolist() == [1, 2, 3, 4]
    assert progress["env_steps"].tolist() == [512, 1024, 1536, 2048]
    assert progress["wall_seconds"].is_monotonic_increasing
    assert config["steps"] == 2048 and len(config["resumed"]) == 1
    (directory / "eval.csv").unlink()
    # another config is another run, in a folder of its own: nothing to resume there, it starts
    assert tiny_run(tmp_path, "masked_ppo", "--resume", "--lr", "0.1", steps=512) == 0
    runs = results.load(tmp_path).runs
    assert len(runs) == 2 and runs["config_id"].nunique() == 2 and "lr=0.1" in " ".join(runs["run"])


@pytest.mark.parametrize("extra, message", [
    (["--algo-config", "learning_rate=0.1"],
     "unknown config key 'learning_rate'; accepted keys: lr, lr_schedule, gamma"),
    (["--lr", "0"], "--lr: expected a positive number, got '0'"),
    (["--algo-config", "minibatch_size=4096"], "minibatch_size (4096) must not exceed train_batch_size (512)"),
    (["--address", "127.0.0.1:9"], "cannot reach a Ray cluster at --address '127.0.0.1:9'"),
    (["--address", "nonsense"], "--address expects HOST:PORT"),
    (["--num-env-runners", "-1"], "--num-env-runners: expected a non-negative integer"),
])
def test_bad_input_is_one_line_with_status_2_and_writes_nothing(tmp_path, capsys, extra, message):
    assert tiny_run(tmp_path, "masked_ppo", *extra) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert not any(tmp_path.iterdir())
    assert_ray_is_gone()


def test_masked_ppo_learns_to_beat_random_valid(tmp_path):
    """100k env steps (about 30 seconds here) lift the greedy policy far above random-valid."""
    common = ["--env", "portfolio", "--episodes", "200", "--out", str(tmp_path), "--quiet", "--seed", "1"]
    assert run_main(*common, "--algo", "random_valid") == 0
    assert run_main(*common, "--algo", "masked_ppo", "--steps", "100000") == 0
    assert_ray_is_gone()
    _, progress, evaluation = read_run(tmp_path, "portfolio", "masked_ppo", seed=1)
    baseline = pd.read_csv(run_folder(tmp_path, "portfolio", "random_valid", 1) / "eval.csv")["return"].mean()
    greedy = evaluation.query("policy == 'greedy' and mask == 'on'")["return"].mean()
    assert (progress["invalid_action_rate"] == 0).all()
    assert (evaluation.loc[evaluation["mask"] == "on", "invalid_actions"] == 0).all()
    assert greedy > 1.5 * baseline, (greedy, baseline)  # about $2,600 against $1,240 on these seeds
    assert progress["portfolio_value_mean"].iloc[-3:].mean() > progress["portfolio_value_mean"].iloc[:3].mean() + 200


@pytest.mark.slow
def test_projected_ppo_learns_the_continuous_allocation(tmp_path):
    """120k env steps (about 30 seconds here) of masked PPO on sum_to_zero: every action projected, and
    the greedy policy well above random-valid (19.2) and above holding the start allocation (28.8).

    Slow (CI's survey runs it): the default run checks projected PPO learning on the torch backend
    (``test_torch_box_methods_never_send_an_inadmissible_action_and_learn``) and RLlib's projection on every
    step (``test_the_ppos_handle_the_continuous_sum_to_zero_constraint_their_own_way``)."""
    common = ["--env", "sum_to_zero", "--episodes", "100", "--out", str(tmp_path), "--quiet"]
    # A constant rate: the default decays linearly to 0 at the budget, which on a short run halves the learning.
    assert run_main(*common, "--algo", "masked_ppo", "--steps", "120000", "--algo-config", "lr_schedule=constant") == 0
    assert_ray_is_gone()
    directory = run_folder(tmp_path, "sum_to_zero", "masked_ppo", 0)
    progress, evaluation = pd.read_csv(directory / "progress.csv"), pd.read_csv(directory / "eval.csv")
    greedy = evaluation.query("policy == 'greedy' and mask == 'on'")
    assert (progress["invalid_action_rate"] == 0).all() and (greedy["invalid_actions"] == 0).all()
    assert greedy["return"].mean() > 28.8, greedy["return"].mean()
    assert progress["episode_return_mean"].iloc[-3:].mean() > progress["episode_return_mean"].iloc[:3].mean() + 8


def test_a_seed_repeats_a_run_exactly(tmp_path):
    timing = TIMING
    frames = []
    for out in ("a", "b"):
        assert tiny_run(tmp_path / out, "penalty_ppo", "--seed", "3") == 0
        _, progress, evaluation = read_run(tmp_path / out, "portfolio", "penalty_ppo", seed=3)
        frames.append((progress.drop(columns=timing, errors="ignore"), evaluation))
    pd.testing.assert_frame_equal(frames[0][0], frames[1][0])
    pd.testing.assert_frame_equal(frames[0][1], frames[1][1])


def test_describe_lists_the_config_with_the_env_defaults(capsys):
    assert run_main("--env", "portfolio", "--algo", "penalty_ppo", "--describe") == 0
    out = capsys.readouterr().out
    assert out.startswith("penalty_ppo on portfolio (default budget 1,000,000 env steps)")
    lines = {line.split()[0]: line.split()[1] for line in out.splitlines()[1:]}
    assert lines["lr"] == "0.001" and lines["gamma"] == "1.0" and lines["penalty"] == "0.01"
    assert lines["train_env_config"] == "reward=value_change" and lines["num_env_runners"] == "0"
    assert not ray.is_initialized()


def test_restore_brings_back_the_trained_weights_on_learner_and_env_runner(tmp_path):
    import torch

    def weights(algo):
        learner = {k: v.clone() for k, v in algo.module().state_dict().items()}
        runner = algo.algo.env_runner.module.state_dict()
        return learner, runner

    settings = {"train_batch_size": 512, "minibatch_size": 128, "num_envs_per_env_runner": 16, "hidden": 16}
    ray.init(address="local", num_cpus=2, include_dashboard=False)  # never another Ray on the machine
    try:
        trained = build_algo("masked_ppo", "portfolio", **settings)
        trained.train_iteration()
        trained.save(tmp_path)
        saved, _ = weights(trained)
        trained.close()
        fresh = build_algo("masked_ppo", "portfolio", seed=5, **settings)
        before, _ = weights(fresh)
        assert any(not torch.equal(before[k], saved[k]) for k in saved)
        fresh.restore(tmp_path)
        learner, runner = weights(fresh)
        assert all(torch.equal(learner[k], saved[k]) for k in saved)
        assert all(torch.equal(runner[k], saved[k]) for k in runner)  # inference-only copy: the actor part
        assert fresh.env_steps == 512
        fresh.close()
    finally:
        ray.shutdown()
    assert_ray_is_gone()


def smoke_run(out, env, algo):
    """A tiny run of ``algo`` on ``env`` that must succeed and leave no Ray behind: config, progress, eval."""
    argv = ["--env", env, "--algo", algo, "--steps", "1024", "--episodes", "8", "--out", str(out), "--quiet", *TINY]
    assert run_main(*argv) == 0
    assert_ray_is_gone()
    return read_run(out, env, algo)


@pytest.mark.parametrize("algo", ["masked_ppo", "penalty_ppo"])
def test_both_ppos_run_on_the_discrete_speed_limit_env(tmp_path, algo):
    config, progress, evaluation = smoke_run(tmp_path, "speed_limit", algo)
    assert config["algo_config"]["reward_scale"] == 0.1 and config["steps"] == 1024
    assert config["algo_config"]["lr_schedule"] == "linear"  # decays to 0 at the run's budget
    assert progress["lr"].is_monotonic_decreasing and progress["lr"].iloc[-1] < 0.6 * progress["lr"].iloc[0]
    if algo == "masked_ppo":
        assert (progress["invalid_action_rate"] == 0).all()
        assert (evaluation.loc[evaluation["mask"] == "on", "invalid_actions"] == 0).all()
    else:
        assert config["algo_config"]["penalty"] == 1.0 and progress["invalid_action_rate"].iloc[0] > 0
    assert (evaluation["position"] > 0).all()


@pytest.mark.parametrize("algo", ["masked_ppo", "penalty_ppo", "normalize_ppo"])
def test_the_ppos_handle_the_continuous_sum_to_zero_constraint_their_own_way(tmp_path, algo):
    config, progress, evaluation = smoke_run(tmp_path, "sum_to_zero", algo)
    assert config["algo_config"]["log_std_init"] < 0 and progress["entropy"].notna().all()
    assert (evaluation["demand_served"] > 0).all()
    on = evaluation["mask"] == "on"
    if algo == "masked_ppo":  # projected: never inadmissible; unprojected Gaussian actions never sum to zero
        assert (progress["invalid_action_rate"] == 0).all() and (evaluation.loc[on, "invalid_actions"] == 0).all()
        assert (evaluation.loc[~on, "invalid_steps"] == evaluation.loc[~on, "length"]).all()
    elif algo == "normalize_ppo":  # target weights rescaled to sum to 1: admissible by construction
        assert set(zip(evaluation["policy"], evaluation["mask"])) == {("greedy", "on"), ("stochastic", "on")}
        assert (progress["invalid_action_rate"] == 0).all() and (evaluation["invalid_actions"] == 0).all()
    else:  # the raw Gaussian misses the sum-zero hyperplane: held and penalised
        assert progress["invalid_action_rate"].iloc[0] > 0.9


def test_normalize_ppo_refuses_envs_without_target_weights(tmp_path, capsys):
    assert tiny_run(tmp_path, "normalize_ppo") == 2
    err = capsys.readouterr().err
    assert "normalize_ppo handles continuous actions; env 'portfolio' has MultiDiscrete" in err
    assert not any(tmp_path.iterdir())
    assert_ray_is_gone()
