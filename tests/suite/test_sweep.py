"""Sweeps of suite.run through Ray Tune: the grid, pairs left out, complete runs skipped, a failed
trial reported while the others finish, bad input, and Ray shut down afterwards."""

import json
import textwrap

import pytest
import ray

import envs
from suite import results, runner
from suite import sweep as sweeps
from tests.helpers import assert_ray_is_gone, run_main

SMALL = ["--steps", "2000", "--episodes", "5", "--quiet"]


def sweep(*argv):
    return run_main(*argv)


NO_ORACLE_ENV = textwrap.dedent('''
    import envs
    from envs.portfolio import PortfolioCore

    class NoOracleCore(PortfolioCore):
        oracle_actions = None  # opts out of the oracle

    envs.register("portfolio_no_oracle", NoOracleCore, overwrite=True)
''')


@pytest.fixture
def no_oracle_env(tmp_path, monkeypatch):
    """``--import no_oracle_env`` registers ``portfolio_no_oracle``, an env without an oracle."""
    (tmp_path / "no_oracle_env.py").write_text(NO_ORACLE_ENV)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("PYTHONPATH", str(tmp_path))  # Ray's workers import it too
    yield ["--import", "no_oracle_env"]
    import envs

    if "portfolio_no_oracle" in envs.names():
        envs.unregister("portfolio_no_oracle")


@pytest.mark.slow
def test_a_sweep_runs_the_grid_leaves_out_what_cannot_run_and_skips_what_is_done(tmp_path, capsys, no_oracle_env):
    """A slow test (about a minute: 21 trials): the default run's other sweep tests run sweeps end to end."""
    out_dir = tmp_path / "out"
    # every env and level (11 with the user's) x 2 algos, one seed: 21 trials, two at a time
    argv = ["--env", "all", "--algo", "random_valid,oracle", "--out", str(out_dir), "--max-concurrent", "2",
            *no_oracle_env, *SMALL]
    assert sweep(*argv) == 0
    assert_ray_is_gone()
    err = capsys.readouterr().err
    assert "left out: oracle on portfolio_no_oracle: env 'portfolio_no_oracle' has no oracle" in err
    loaded = results.load(out_dir)
    from baselines.oracle import envs_with_oracle

    expected = {(env, "random_valid", 0) for env in envs.names()} | {(env, "oracle", 0) for env in envs_with_oracle()}
    assert "portfolio_no_oracle" in envs.names() and "portfolio_no_oracle" not in envs_with_oracle()
    assert set(zip(loaded.runs["env"], loaded.runs["algo"], loaded.runs["seed"])) == expected
    assert len(loaded.runs) == len(expected) and set(loaded.runs["status"]) == {"complete"}
    import json

    records = [json.loads((out_dir / r / "config.json").read_text()) for r in loaded.runs["run"]]
    commands = {record["command"] for record in records}
    assert len(commands) == 1 and "--env all" in commands.pop()  # each trial records the sweep's command
    # A trial has Ray's 1 CPU, so torch's one thread (a direct run has one per core): results depend on it.
    assert {record["torch_threads"] for record in records} == {1}
    assert sweep(*argv) == 0  # again: nothing left to do
    out = capsys.readouterr().out
    assert "nothing to run: every run of the sweep is complete or left out" in out
    assert not (out_dir / ".tune").exists()


def test_a_failed_trial_is_reported_the_others_finish_and_other_files_in_out_are_left_alone(tmp_path, monkeypatch,
                                                                                              capsys):
    (tmp_path / "failing_algo.py").write_text(textwrap.dedent('''
        from baselines import register_algo
        from baselines.random_valid import RandomValid

        class Failing(RandomValid):
            def train_iteration(self):
                raise RuntimeError("simulated failure in a trial")

        register_algo("failing_sweep_algo", Failing, overwrite=True)
    '''))
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("PYTHONPATH", str(tmp_path))  # Ray's workers import it too
    out = tmp_path / "out"
    (out / ".tune").mkdir(parents=True)  # a user's file where Tune keeps its bookkeeping: left alone
    (out / ".tune" / "notes.txt").write_text("mine")
    assert sweep("--env", "portfolio", "--algo", "random_valid,failing_sweep_algo", "--import", "failing_algo",
                 "--out", str(out), *SMALL) == 1
    assert_ray_is_gone()
    err = capsys.readouterr().err
    assert "failed: failing_sweep_algo on portfolio, seed 0: RuntimeError: simulated failure in a trial" in err
    status = dict(zip(*[results.load(out).runs[c] for c in ("algo", "status")]))
    assert status == {"random_valid": "complete", "failing_sweep_algo": "failed"}
    assert (out / ".tune" / "notes.txt").read_text() == "mine"
    assert sorted(p.name for p in out.iterdir()) == [".tune", "portfolio"]  # Tune's own bookkeeping is gone
    import baselines.registry

    baselines.registry._ALGOS.pop("failing_sweep_algo", None)


@pytest.mark.parametrize("argv, message", [
    (["--env", "portfolio,nope", "--algo", "random_valid"], "unknown env 'nope'; known envs: job_shop, job_shop-l"),
    (["--env", "all", "--algo", "random_valid,bogus"], "unknown algo 'bogus'; known algos:"),
    (["--env", "speed_limit", "--algo", "clairvoyant_dp", "--seeds", "2", "--env-config", "max_steps=50"],
     "(clairvoyant_dp) is exact only with max_steps >= 2 * road_length"),
    (["--env", "all", "--algo", "all", "--describe"], "--describe takes one env and one algo, not a sweep"),
    (["--env", "all", "--algo", "random_valid", "--seeds", "0"], "--seeds: expected a positive integer"),
])
def test_sweep_bad_input_is_one_line_with_status_2(tmp_path, capsys, argv, message):
    assert sweep(*argv, "--out", str(tmp_path)) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
    assert not any(tmp_path.iterdir())
    assert not ray.is_initialized()


def test_a_sweep_refuses_a_run_folder_holding_another_run(tmp_path, capsys):
    assert sweep("--env", "portfolio", "--algo", "random_valid", "--out", str(tmp_path), *SMALL) == 0
    config = tmp_path / "portfolio" / "random_valid" / "seed0" / "config.json"
    config.write_text(config.read_text().replace('"env_version": 0', '"env_version": -1'))  # another env version
    (config.parent / "eval.csv").unlink()
    capsys.readouterr()
    assert sweep("--env", "portfolio", "--algo", "random_valid", "--seeds", "2", "--out", str(tmp_path), *SMALL) == 2
    err = capsys.readouterr().err
    assert "sweep: cannot --resume" in err and "different env_version" in err


def test_a_trial_on_a_node_that_does_not_see_out_fails_instead_of_writing_elsewhere(tmp_path):
    from suite import runner
    from suite import sweep as sweep_module

    request = runner.RunRequest.build("portfolio", "random_valid", 0, out=tmp_path / "out", steps=100)
    options = {"out": str(tmp_path / "out"), "sweep_id": "abc", "imports": [], "overwrite": False,
               "checkpoint_every": 1, "eval_every": 0, "trust": False}
    with pytest.raises(runner.RunFailed, match="must be on storage every node shares"):
        sweep_module._trial({"index": 0}, [request], options)
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_ctrl_c_on_a_sweep_says_what_is_unfinished_and_exits_non_zero_and_the_rerun_finishes(tmp_path):
    import os
    import signal
    import subprocess
    import sys
    import time
    from pathlib import Path

    from tests.helpers import default_sigint, glob_while_running

    argv = [sys.executable, "-m", "suite.run", "--env", "portfolio", "--algo", "random_valid", "--seeds", "2",
            "--steps", "3000000", "--episodes", "5", "--out", str(tmp_path)]
    root = Path(__file__).resolve().parents[2]
    proc = subprocess.Popen(argv, cwd=root, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=default_sigint)
    deadline = time.time() + 120
    while time.time() < deadline and not glob_while_running(tmp_path, "**/progress.csv"):
        time.sleep(0.2)
    os.kill(proc.pid, signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, (out, err)
    assert "0 of 2 run(s) complete, 0 failed, 2 unfinished" in out  # the run it stopped, and the one never started
    assert "unfinished: random_valid on portfolio, seed 0" in err and "seed 1" in err
    assert "run the same command again to continue them" in err
    # the rerun resumes what is left (with a budget that is already reached, to keep the test short)
    assert sweep(*[("2000" if a == "3000000" else a) for a in argv[3:]]) == 0
    assert set(results.load(tmp_path).runs["status"]) == {"complete"}
    assert_ray_is_gone()


def test_two_sweeps_into_one_folder_each_find_their_own_node_check(tmp_path, monkeypatch):
    """Each sweep marks --out with a file of its own: a second sweep started into the same folder must not make
    the first one's trials believe their node cannot see --out (it did, failing every trial after it)."""
    from ray import tune

    from suite import runner
    from suite import sweep as sweep_module

    out = tmp_path / "out"
    out.mkdir()
    for sweep_id in ("first", "second"):
        (out / f"{sweep_module.NODE_CHECK}{sweep_id}").write_text(json.dumps({"sweep_id": sweep_id, "pid": 1}))
    reported = []
    monkeypatch.setattr(tune, "report", reported.append)  # outside a Tune session
    request = runner.RunRequest.build("portfolio", "random_valid", 0, out=out, steps=100, episodes=2)
    options = {"out": str(out), "sweep_id": "first", "imports": [], "overwrite": False,
               "checkpoint_every": 1, "eval_every": 0, "trust": False}
    sweep_module._trial({"index": 0}, [request], options)
    assert reported and (request.directory / "eval.csv").is_file()


def test_a_trial_that_errored_before_its_run_started_is_failed_and_one_after_is_unfinished(tmp_path):
    """The sweep's closing count: a trial whose node could not see --out never started its run, and a rerun
    would fail the same way (failed, with Tune's error); a trial whose node died mid-run left a run that a
    rerun resumes (unfinished)."""
    from suite import runner
    from suite import sweep as sweep_module

    request = runner.RunRequest.build("portfolio", "random_valid", 0, out=tmp_path, steps=100)
    node_error = "ray.exceptions.RayTaskError(RunFailed): ...\nRunFailed: this node does not see /x, the sweep's --out"
    assert sweep_module.run_status(request) == "unfinished"  # not started, no error: never scheduled
    assert sweep_module.run_status(request, node_error) == "failed"
    assert sweep_module.last_error_line(request, node_error) == \
        "RunFailed: this node does not see /x, the sweep's --out"
    request.directory.mkdir(parents=True)
    (request.directory / results.CONFIG_FILE).write_text("{}")  # the run had started when its node died
    assert sweep_module.run_status(request, "ray.exceptions.ActorDiedError: ...") == "unfinished"
    (request.directory / results.ERROR_FILE).write_text("Traceback ...\nValueError: the env failed\n")
    assert sweep_module.run_status(request) == "failed"
    assert sweep_module.last_error_line(request, node_error) == "ValueError: the env failed"
    assert sweep_module.last_error_line(runner.RunRequest.build("portfolio", "oracle", 0, out=tmp_path)) == \
        "see Ray's logs"


@pytest.mark.slow
def test_a_run_of_a_sweep_repeats_on_its_own_with_one_torch_thread(tmp_path):
    """The recipe of docs/repeatability.md: a sweep's trial has one torch thread, and a direct run started with
    ``OMP_NUM_THREADS=1`` is the same run, bit for bit (masked PPO at its default sizes, where torch splits
    reductions by thread)."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    import pandas as pd

    from tests.helpers import TIMING, default_sigint, read_run

    one_iteration = ["--steps", "8192", "--episodes", "5", "--quiet"]
    assert sweep("--env", "portfolio", "--algo", "masked_ppo,random_valid", "--out", str(tmp_path / "sweep"),
                 *one_iteration) == 0
    assert_ray_is_gone()
    environ = {**os.environ, "OMP_NUM_THREADS": "1"}
    subprocess.run([sys.executable, "-m", "suite.run", "--env", "portfolio", "--algo", "masked_ppo",
                    "--out", str(tmp_path / "direct"), *one_iteration], env=environ, check=True, timeout=300,
                   cwd=Path(__file__).resolve().parents[2], preexec_fn=default_sigint)
    swept = read_run(tmp_path / "sweep", "portfolio", "masked_ppo")
    direct = read_run(tmp_path / "direct", "portfolio", "masked_ppo")
    assert swept[0]["torch_threads"] == direct[0]["torch_threads"] == 1
    pd.testing.assert_frame_equal(swept[1].drop(columns=TIMING, errors="ignore"),
                                  direct[1].drop(columns=TIMING, errors="ignore"))
    pd.testing.assert_frame_equal(swept[2], direct[2])


@pytest.mark.slow  # a Ray Tune sweep of two trials: 20-30 s
def test_a_trial_refused_by_the_folders_lock_says_so_counts_as_refused_and_fails_the_sweep(tmp_path, capsys):
    """Issue 32: a sweep overlapping another writer of a run folder printed "the trial failed", counted what the
    other writer left there (a complete run: "1 of 1 complete") and exited 0."""
    import os

    from suite import files

    assert run_main("--env", "portfolio", "--algo", "random_valid", "--out", str(tmp_path), *SMALL) == 0
    folder = tmp_path / "portfolio" / "random_valid" / "seed0"
    before = {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()}
    with files.RunLock(folder, "another sweep"):  # a live writer: this process
        capsys.readouterr()
        assert sweep("--env", "portfolio", "--algo", "random_valid", "--seeds", "2", "--overwrite",
                     "--out", str(tmp_path), *SMALL) == 1
        assert files.lock_state(folder) == "held"  # the writer's lock is left alone
    assert_ray_is_gone()
    printed = capsys.readouterr()
    writer = f"is being written by another run (pid {os.getpid()} on "
    assert "sweep: 1 of 2 run(s) complete, 0 failed, 0 unfinished, 1 refused, 0 left out" in printed.out
    assert f"REFUSED: random_valid on portfolio, seed 0: {folder} {writer}" in printed.out
    assert f"refused: random_valid on portfolio, seed 0: {folder} {writer}" in printed.err
    assert "the trial failed" not in printed.out + printed.err
    assert {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()} == before  # nothing touched
    assert results.is_complete(tmp_path / "portfolio" / "random_valid" / "seed1")


class _TaskError(Exception):
    """What Ray raises for a task whose code raised: the remote traceback as text, the exception as ``cause``."""

    def __init__(self, text, cause):
        super().__init__(text)
        self.cause = cause


RAYLET_DUMP = ("The actor died unexpectedly before finishing this task.\n\tclass_name: ImplicitFunc\n"
               "\tactor_id: 5f2c\n\tpid: 4242\n\tnamespace: 1b2c\n\tip: 127.0.0.1\n"
               "The actor is dead because its node has died. Node Id: 9a8b\n" + "\traylet state: ...\n" * 40)


@pytest.mark.parametrize("error, line", [
    (_TaskError("ray::ImplicitFunc.train()\n  File x, line 1\nValueError: boom", ValueError("the env failed\nmore")),
     "ValueError: the env failed"),
    (RuntimeError(RAYLET_DUMP), "The actor died unexpectedly before finishing this task."),
    ("Traceback (most recent call last):\n  File x\nRunFailed: this node does not see /x",
     "RunFailed: this node does not see /x"),
    (None, "the trial failed"),
    (RuntimeError(""), "RuntimeError"),
], ids=["task-raised", "node-died", "traceback-text", "no-error", "empty-message"])
def test_a_failed_trial_is_one_line_whatever_ray_wraps_it_in(error, line):
    from suite import sweep as sweep_module

    assert sweep_module.trial_cause(error) == line


def test_a_rerun_leaves_a_diverged_run_as_it_is_but_runs_one_that_failed_otherwise_again(tmp_path):
    """A diverged run is a result of its settings (the report and the tuning count it): a study's rerun does not
    repeat it, with a line saying so; a run that failed any other way (here: out of memory) is run again, and
    ``overwrite`` runs everything again."""
    out = tmp_path / "out"
    for seed in (0, 1, 3):
        assert run_main("--env", "portfolio", "--algo", "random_valid", "--seed", seed, "--out", out, *SMALL) == 0
        (results.run_dir(out, "portfolio", "random_valid", seed) / results.EVAL_FILE).unlink()  # as a failed run
    last_lines = {0: f"suite.runner.RunFailed: {results.DIVERGED} at iteration 3: policy_loss is nan",
                  1: "MemoryError"}
    for seed, line in last_lines.items():
        (results.run_dir(out, "portfolio", "random_valid", seed) / results.ERROR_FILE).write_text(
            f"Traceback (most recent call last):\n  ...\n{line}\n")
    outside = tmp_path / "private.txt"  # seed 3: a received folder's error.txt leading out of it is never read
    outside.write_text(f"{results.DIVERGED} (a line of the user's own file)\n")
    (results.run_dir(out, "portfolio", "random_valid", 3) / results.ERROR_FILE).symlink_to(outside)

    def plan(overwrite):
        entries = [sweeps.SweepEntry("portfolio", "random_valid", seed) for seed in (0, 1, 2, 3)]
        return sweeps.plan_entries(entries, lambda e: runner.RunRequest.build(
            e.env, e.algo, e.seed, out=out, steps=2000, episodes=5), overwrite=overwrite)

    kept = plan(overwrite=False)
    assert [request.seed for request in kept.runs] == [1, 2, 3]
    assert len(kept.left_out) == 1 and "seed 0" in kept.left_out[0]
    assert f"its training diverged when it ran ({last_lines[0]})" in kept.left_out[0]
    assert [request.seed for request in plan(overwrite=True).runs] == [0, 1, 2, 3]
