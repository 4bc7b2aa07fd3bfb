"""suite.run: files, summary, overwrite/resume semantics, determinism and bad input."""

import importlib
import json
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

import envs
from baselines import algo_names
from baselines.random_valid import RandomValid
from suite import results
from suite.cli import run_cli
from tests.helpers import TIMING, run_main

ROOT = Path(__file__).resolve().parents[2]


def seed_dir(out, seed=0):
    return Path(out) / "portfolio" / "random_valid" / f"seed{seed}"


def small(out, *extra):
    return ["--env", "portfolio", "--algo", "random_valid", "--steps", "6000", "--episodes", "20",
            "--out", str(out), *extra]


def test_run_writes_the_three_files_and_a_summary(tmp_path, capsys):
    assert run_main(*small(tmp_path)) == 0
    directory = seed_dir(tmp_path)
    config = json.loads((directory / "config.json").read_text())
    assert config["env"] == "portfolio" and config["algo"] == "random_valid" and config["seed"] == 0
    assert config["env_config"]["start_cash"] == 1000.0 and config["env_config"]["strict"] is False
    assert config["libraries"]["gymnasium"] and config["steps"] == 6000
    import torch

    assert config["torch_threads"] == torch.get_num_threads()  # a seeded run repeats at the same thread count
    progress = pd.read_csv(directory / "progress.csv")
    assert list(progress.columns[:len(results.PROGRESS_COLUMNS)]) == results.PROGRESS_COLUMNS
    assert progress["env_steps"].is_monotonic_increasing and progress["env_steps"].iloc[-1] >= 6000
    assert (progress["invalid_action_rate"] == 0).all()
    evaluation = pd.read_csv(directory / "eval.csv")
    single_agent_columns = [c for c in results.EVAL_COLUMNS if c != "agent"]  # "agent": several agents only
    assert list(evaluation.columns[:len(single_agent_columns)]) == single_agent_columns
    assert len(evaluation) == 20 and (evaluation["length"] == 20).all()
    assert evaluation["env_seed"].tolist() == list(range(1_000_000, 1_000_020))
    assert (evaluation["invalid_actions"] == 0).all()
    assert evaluation["return"].equals(evaluation["portfolio_value"])  # the default reward is dollars
    out = capsys.readouterr().out
    assert "95% CI" in out and "final portfolio value" in out and str(directory) in out


def test_same_seed_same_results_other_seed_other_training(tmp_path):
    assert run_main(*small(tmp_path / "a")) == 0
    assert run_main(*small(tmp_path / "b")) == 0
    assert run_main(*small(tmp_path / "c", "--seed", "1")) == 0
    a, b, c = (pd.read_csv(seed_dir(tmp_path / x, s) / "progress.csv").drop(columns=TIMING, errors="ignore")
               for x, s in (("a", 0), ("b", 0), ("c", 1)))
    pd.testing.assert_frame_equal(a, b)
    assert not a["episode_return_mean"].equals(c["episode_return_mean"])
    pd.testing.assert_frame_equal(pd.read_csv(seed_dir(tmp_path / "a") / "eval.csv"),
                                  pd.read_csv(seed_dir(tmp_path / "b") / "eval.csv"))


def test_existing_run_is_not_clobbered_without_overwrite(tmp_path, capsys):
    assert run_main(*small(tmp_path)) == 0
    before = {p.name: p.read_bytes() for p in seed_dir(tmp_path).glob("*.*")}
    capsys.readouterr()
    assert run_main(*small(tmp_path, "--seed", "0")) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "already holds a complete run (config.json, progress.csv, eval.csv" in err
    assert "pass --overwrite" in err
    assert {p.name: p.read_bytes() for p in seed_dir(tmp_path).glob("*.*")} == before
    assert run_main(*small(tmp_path, "--overwrite", "--episodes", "5")) == 0
    assert len(pd.read_csv(seed_dir(tmp_path) / "eval.csv")) == 5
    assert run_main(*small(tmp_path, "--resume")) == 0
    assert "already complete" in capsys.readouterr().out


def test_interrupted_run_resumes_to_the_same_results(tmp_path, monkeypatch, capsys):
    assert run_main(*small(tmp_path / "straight", "--checkpoint-every", "1")) == 0

    original = RandomValid.train_iteration
    calls = {"n": 0}

    def interrupted(self):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return original(self)

    monkeypatch.setattr(RandomValid, "train_iteration", interrupted)
    assert run_main(*small(tmp_path / "cut", "--checkpoint-every", "1")) == 130
    assert "continue with --resume" in capsys.readouterr().err
    cut = seed_dir(tmp_path / "cut")
    assert not results.is_complete(cut) and len(pd.read_csv(cut / "progress.csv")) == 2
    assert run_main(*small(tmp_path / "cut")) == 2  # incomplete: refuses, suggests --resume
    assert "--resume to continue it" in capsys.readouterr().err
    monkeypatch.setattr(RandomValid, "train_iteration", original)
    assert run_main(*small(tmp_path / "cut", "--resume", "--checkpoint-every", "1")) == 0

    drop = TIMING
    straight = pd.read_csv(seed_dir(tmp_path / "straight") / "progress.csv")
    pd.testing.assert_frame_equal(pd.read_csv(cut / "progress.csv").drop(columns=drop, errors="ignore"),
                                  straight.drop(columns=drop, errors="ignore"))
    pd.testing.assert_frame_equal(pd.read_csv(cut / "eval.csv"),
                                  pd.read_csv(seed_dir(tmp_path / "straight") / "eval.csv"))


def test_runs_that_differ_in_config_or_backend_get_folders_of_their_own(tmp_path):
    assert run_main(*small(tmp_path)) == 0
    assert run_main(*small(tmp_path, "--env-config", "start_cash=50")) == 0  # no "already holds a run"
    assert run_main(*small(tmp_path, "--env-config", "start_cash=50", "--algo-config", "num_envs=8")) == 0
    runs = results.load(tmp_path).runs.sort_values("run")
    assert runs["run"].tolist() == ["portfolio/random_valid/num_envs=8,start_cash=50.0/seed0",
                                    "portfolio/random_valid/seed0", "portfolio/random_valid/start_cash=50.0/seed0"]
    assert runs["config_id"].nunique() == 3 and set(runs["status"]) == {"complete"}


def test_resume_of_a_run_with_another_identity_is_refused(tmp_path, capsys):
    assert run_main(*small(tmp_path)) == 0
    (seed_dir(tmp_path) / "eval.csv").unlink()  # make it look interrupted
    record = json.loads((seed_dir(tmp_path) / "config.json").read_text())
    (seed_dir(tmp_path) / "config.json").write_text(json.dumps({**record, "env_version": -1}))  # another env version
    capsys.readouterr()
    assert run_main(*small(tmp_path, "--resume")) == 2
    assert "it was run with a different env_version" in capsys.readouterr().err


@pytest.mark.parametrize("argv, message", [
    (["--env", "nope", "--algo", "random_valid"], "unknown env 'nope'; known envs: job_shop, job_shop-l"),
    (["--env", "portfolio", "--algo", "nope"], f"unknown algo 'nope'; known algos: {', '.join(algo_names())}"),
    (["--env", "portfolio", "--algo", "random_valid", "--steps", "0"], "expected a positive integer, got '0'"),
    (["--env", "portfolio", "--algo", "random_valid", "--steps", "-5"], "expected a positive integer, got '-5'"),
    (["--env", "portfolio", "--algo", "random_valid", "--episodes", "0"], "expected a positive integer, got '0'"),
    (["--env", "portfolio", "--algo", "random_valid", "--seed", "x"], "expected a non-negative integer"),
    (["--env", "portfolio", "--algo", "random_valid", "--env-config", "cash=5"], "unknown config key 'cash'"),
    (["--env", "portfolio", "--algo", "random_valid", "--env-config", "periods=abc"], "expects an integer, got 'abc'"),
    (["--env", "portfolio", "--algo", "random_valid", "--env-config", "periods"], "expects KEY=VALUE"),
    (["--env", "portfolio", "--algo", "random_valid", "--algo-config", "lr=0.1"],
     "algo 'random_valid': unknown config key 'lr'"),
    (["--env", "portfolio", "--algo", "random_valid", "--overwrite", "--resume"], "not allowed with argument"),
    (["--algo", "random_valid"], "the following arguments are required: --env"),
    # non-finite numbers are refused, not trained into NaN weights or written as non-JSON "Infinity"
    (["--env", "portfolio", "--algo", "masked_ppo", "--algo-config", "lr=inf"], "config key 'lr' must be finite"),
    (["--env", "portfolio", "--algo", "masked_ppo", "--algo-config", "entropy_coeff=inf"],
     "config key 'entropy_coeff' must be finite"),
    (["--env", "portfolio", "--algo", "penalty_ppo", "--algo-config", "reward_scale=inf"],
     "config key 'reward_scale' must be finite"),
    (["--env", "portfolio", "--algo", "random_valid", "--env-config", "price_impact=inf"],
     "config key 'price_impact' must be finite"),
    (["--env", "portfolio", "--algo", "random_valid", "--env-config", "start_cash=inf"],
     "config key 'start_cash' must be finite"),
    (["--env", "speed_limit", "--algo", "random_valid", "--env-config", "time_cost=inf"],
     "config key 'time_cost' must be finite"),
    (["--env", "portfolio", "--algo", "random_valid", "--lr", "inf"], "--lr: expected a positive number"),
    # sizes that cannot fit are refused up front, with the estimate
    (["--env", "portfolio", "--algo", "random_valid", "--env-config", "periods=100000000"],
     "GiB of memory needed (estimate)"),
    (["--env", "speed_limit", "--algo", "random_valid", "--env-config", "road_length=10000000"],
     "GiB of memory needed (estimate)"),
    (["--env", "portfolio", "--algo", "masked_ppo", "--algo-config", "hidden=100000,100000"],
     "networks of hidden sizes 100000,100000: about"),
    # the training env may change the reward, not the agents
    (["--env", "portfolio", "--algo", "masked_ppo", "--algo-config", "train_env_config=n_agents=3"],
     "train_env_config may change how the training env rewards or runs, not its agents"),
    (["--env", "portfolio", "--algo", "masked_ppo", "--address", "ray://127.0.0.1:1"], "ray[client]"),
    (["--env", "portfolio", "--algo", "masked_ppo", "--address", "localhost:99999"], "expects HOST:PORT"),
])
def test_bad_input_is_one_line_status_2_and_writes_nothing(tmp_path, capsys, argv, message):
    assert run_main(*argv, "--out", str(tmp_path / "out")) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
    assert not (tmp_path / "out").exists()


def test_an_out_folder_name_too_long_for_the_file_system_is_one_line(tmp_path, capsys):
    assert run_main(*small(tmp_path / ("x" * 300))) == 2
    err = capsys.readouterr().err
    assert "cannot write results under" in err and "too long" in err and err.count("\n") == 1


def test_unwritable_out_is_refused(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    assert run_main(*small(blocker / "out")) == 2
    err = capsys.readouterr().err
    assert "cannot write results under" in err and "is not a folder" in err and err.count("\n") == 1


def test_command_line_errors_have_no_traceback_and_help_lists_defaults():
    bad = subprocess.run([sys.executable, "-m", "suite.run", "--env", "nope", "--algo", "random_valid"],
                         cwd=ROOT, capture_output=True, text=True)
    assert bad.returncode == 2 and "Traceback" not in bad.stderr and bad.stderr.count("\n") == 1
    helped = subprocess.run([sys.executable, "-m", "suite.run", "--help"], cwd=ROOT, capture_output=True, text=True)
    assert helped.returncode == 0
    for flag in ("--env", "--algo", "--seed", "--steps", "--episodes", "--env-config", "--algo-config", "--out",
                 "--overwrite", "--resume", "--checkpoint-every", "--import"):
        assert flag in helped.stdout
    assert "(default: 100)" in helped.stdout and "(default: results)" in helped.stdout


def test_resume_can_extend_the_budget_and_records_it(tmp_path):
    assert run_main(*small(tmp_path)) == 0
    directory = seed_dir(tmp_path)
    (directory / "eval.csv").unlink()  # interrupted during evaluation
    argv = small(tmp_path, "--resume")
    argv[argv.index("6000")] = "10000"
    assert run_main(*argv) == 0
    progress = pd.read_csv(directory / "progress.csv")
    assert progress["env_steps"].iloc[-1] >= 10_000
    assert progress["iteration"].tolist() == list(range(1, len(progress) + 1))
    config = json.loads((directory / "config.json").read_text())
    assert config["steps"] == 10_000 and len(config["resumed"]) == 1


def test_an_algo_that_cannot_run_the_env_config_writes_nothing(tmp_path, capsys):
    assert run_main("--env", "speed_limit", "--env-config", "n_agents=2", "--algo", "clairvoyant_dp",
                    "--out", str(tmp_path), "--quiet") == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "clairvoyant_dp plays one agent; got n_agents=2" in err
    assert not (tmp_path / "speed_limit").exists()


@pytest.mark.parametrize("algo", ["lagrangian_ppo", "sb3_maskable_ppo"])
def test_a_run_recorded_with_the_rllib_settings_its_method_no_longer_has_is_the_same_run(tmp_path, algo):
    """Issue 33 moved ``num_env_runners`` and ``rllib_learner`` into the configs of the methods that may train on
    RLlib: a config.json of a method that never did, written with them, is the same run as a rerun today (the
    same folder, resumable, the same ``config_id``)."""
    from suite import files, runner

    request = runner.RunRequest.build("portfolio", algo, 0, out=tmp_path)
    assert "num_env_runners" not in request.algo_config and "rllib_learner" not in request.algo_config
    record = files.json_safe(request.record())
    record["algo_config"].update(num_env_runners=0, rllib_learner="fast")  # as such runs recorded them
    request.directory.mkdir(parents=True)
    (request.directory / "config.json").write_text(json.dumps(record))
    (request.directory / "eval.csv").write_text("episode,env_seed,policy,mask,return,length,invalid_steps\n")
    assert runner.prepare_directory(request, overwrite=False, resume=True) == runner.COMPLETE
    assert results.config_id(results.with_added_settings(record)) == \
        results.config_id(files.json_safe(request.record()))


@pytest.mark.parametrize("backend", ["torch", "rllib"])
def test_a_run_recorded_before_a_setting_existed_keeps_what_it_ran(tmp_path, backend):
    """An RLlib run from before ``rllib_learner`` made RLlib's updates bit for bit: it is the ``exact`` learner's
    run, so a rerun at the new default (``fast``) refuses to take it for its own; on the torch backend the
    setting changes nothing, and the run is still complete. Loading reads the setting the run had."""
    from suite import files, runner
    from suite.cli import UsageError

    request = runner.RunRequest.build("portfolio", "masked_ppo", 0, out=tmp_path, algo_config={"backend": backend})
    record = files.json_safe(request.record())
    del record["algo_config"]["rllib_learner"]  # a config.json written before the setting existed
    request.directory.mkdir(parents=True)
    (request.directory / "config.json").write_text(json.dumps(record))
    (request.directory / "eval.csv").write_text("episode,env_seed,policy,mask,return,length,invalid_steps\n")
    if backend == "rllib":
        with pytest.raises(UsageError, match="it was run with a different algo_config"):
            runner.prepare_directory(request, overwrite=False, resume=True)
    else:
        assert runner.prepare_directory(request, overwrite=False, resume=True) == runner.COMPLETE
    runs = results.load(tmp_path).runs
    assert runs["algo.rllib_learner"].tolist() == ["exact" if backend == "rllib" else "fast"]


@pytest.mark.parametrize("command", ["run", "race", "study", "tuning", "report", "check", "levels", "layout",
                                     "same_results"])
def test_help_states_each_default_once_and_run_lists_every_env_and_algo(capsys, command):
    module = importlib.import_module(f"suite.{command}")
    assert run_cli(module.main, f"python -m suite.{command}", ["--help"]) == 0
    text = " ".join(capsys.readouterr().out.split())  # argparse wraps lines
    options = re.split(r" (?=--?[a-z])", text)
    assert not [option for option in options if option.count("(default") > 1]
    assert "(default: None)" not in text and "(default: False)" not in text and "(default: [])" not in text
    if command == "run":
        listed = text.split("envs: ", 1)[1]
        assert all(re.search(rf"\b{re.escape(name)}\b", listed) for name in [*envs.names(), *algo_names()])
        assert "--seed SEED run seed (training env and policy); with --seeds, the first seed (default: 0)" in text
