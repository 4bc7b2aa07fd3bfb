"""What suite.run does to a run folder it shares with other writers, with leftovers of killed writers,
and with training that diverges: one writer at a time, nothing deleted without --overwrite, resume never
silently restarts, a diverged run fails."""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from suite import files, results, runner
from tests.helpers import TIMING, TINY, assert_ray_is_gone, default_sigint, run_folder, run_main

ROOT = Path(__file__).resolve().parents[2]


def folder(out, seed=0):
    return Path(out) / "portfolio" / "random_valid" / f"seed{seed}"


def small(out, *extra, steps=6000):
    return ["--env", "portfolio", "--algo", "random_valid", "--steps", str(steps), "--episodes", "5",
            "--out", str(out), "--quiet", *extra]


def snapshot(directory):
    return {p.relative_to(directory).as_posix(): p.read_bytes() for p in directory.rglob("*") if p.is_file()}


def test_a_folder_being_written_is_refused_to_a_second_writer_even_with_overwrite(tmp_path, capsys, monkeypatch):
    assert run_main(*small(tmp_path, "--checkpoint-every", "1")) == 0
    (folder(tmp_path) / "eval.csv").unlink()  # an unfinished run ...
    with files.RunLock(folder(tmp_path), "another suite.run"), monkeypatch.context() as patched:  # ... being written
        # ... refused before the second writer spends seconds building its algo
        patched.setattr(runner, "build_config", lambda *a, **k: pytest.fail("built an algo for a held folder"))
        before = snapshot(folder(tmp_path))
        for extra in (["--resume"], ["--overwrite"]):
            capsys.readouterr()
            assert run_main(*small(tmp_path, *extra)) == 2
            err = capsys.readouterr().err
            assert "is being written by another run" in err and err.count("\n") == 1
            assert snapshot(folder(tmp_path)) == before  # nothing touched, no error.txt
    assert run_main(*small(tmp_path, "--resume")) == 0  # free again


def test_two_identical_commands_at_once_leave_one_complete_run_and_one_clear_refusal(tmp_path):
    argv = [sys.executable, "-m", "suite.run", *small(tmp_path, steps=60_000)]
    procs = [subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    outcomes = sorted((p.wait(timeout=300), p.stderr.read()) for p in procs)
    assert [code for code, _ in outcomes] == [0, 2], outcomes
    assert "already holds" in outcomes[1][1] or "being written by another run" in outcomes[1][1]
    loaded = results.load(tmp_path)
    assert loaded.runs["status"].tolist() == ["complete"] and loaded.problems == ()
    assert not (folder(tmp_path) / "error.txt").exists() and not (folder(tmp_path) / files.LOCK_FILE).exists()


def test_files_of_a_run_are_never_deleted_without_overwrite(tmp_path, capsys):
    directory = folder(tmp_path)
    directory.mkdir(parents=True)
    (directory / "eval.csv").write_text("episode,policy,mask,return\n0,greedy,on,1.0\n")  # no config.json
    (directory / "progress.csv").write_text("iteration,env_steps\n1,100\n")
    before = snapshot(directory)
    assert run_main(*small(tmp_path)) == 2
    assert "already holds a complete run (progress.csv, eval.csv)" in capsys.readouterr().err
    assert snapshot(directory) == before


def test_a_file_named_checkpoint_is_refused_not_moved(tmp_path, capsys):
    assert run_main(*small(tmp_path)) == 0
    (folder(tmp_path) / "eval.csv").unlink()
    checkpoint = folder(tmp_path) / "checkpoint"
    import shutil
    shutil.rmtree(checkpoint)
    checkpoint.write_text("my notes")
    assert run_main(*small(tmp_path, "--resume")) == 2
    assert "is a file, not a checkpoint folder" in capsys.readouterr().err
    assert checkpoint.read_text() == "my notes"


def test_resume_finishes_an_interrupted_checkpoint_swap_and_cleans_leftovers(tmp_path, capsys):
    assert run_main(*small(tmp_path / "straight", "--checkpoint-every", "1")) == 0
    assert run_main(*small(tmp_path / "cut", "--checkpoint-every", "1")) == 0
    directory = folder(tmp_path / "cut")
    (directory / "eval.csv").unlink()
    os.replace(directory / "checkpoint", directory / ".checkpoint.old")  # killed between the two renames
    (directory / ".progress.csv.abcd1234.tmp").write_text("half a file")
    capsys.readouterr()
    assert run_main(*small(tmp_path / "cut", "--resume")) == 0
    assert "recovered checkpoint/" in capsys.readouterr().err
    assert sorted(p.name for p in directory.iterdir()) == ["checkpoint", "config.json", "eval.csv", "progress.csv"]
    same = [c for c in pd.read_csv(directory / "progress.csv").columns if c not in TIMING]
    pd.testing.assert_frame_equal(pd.read_csv(directory / "progress.csv")[same],
                                  pd.read_csv(folder(tmp_path / "straight") / "progress.csv")[same])


def test_resume_without_any_checkpoint_says_it_starts_again(tmp_path, capsys):
    assert run_main(*small(tmp_path, "--checkpoint-every", "100", steps=6000)) == 0
    directory = folder(tmp_path)
    (directory / "eval.csv").unlink()
    files.remove_dir(directory / "checkpoint")
    capsys.readouterr()
    assert run_main(*small(tmp_path, "--resume")) == 0
    assert "no checkpoint was written before the interruption; the run starts again" in capsys.readouterr().err


def test_a_run_whose_training_diverges_fails_in_one_line_and_is_not_complete(tmp_path, capsys):
    assert run_main("--env", "portfolio", "--algo", "masked_ppo", "--backend", "torch", "--lr", "1e308",
                    "--steps", "2048", "--episodes", "4", "--out", tmp_path, "--quiet", *TINY) == 1
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "training diverged at iteration 1" in err and "lower the learning rate" in err
    directory = run_folder(tmp_path, "portfolio", "masked_ppo")
    assert (directory / "error.txt").is_file() and not (directory / "eval.csv").exists()
    loaded = results.load(tmp_path)
    assert loaded.runs["status"].tolist() == ["failed"] and "training diverged" in loaded.runs["problem"].item()


def test_config_json_is_strict_json_even_with_an_infinite_setting(tmp_path):
    assert run_main("--env", "portfolio", "--algo", "masked_ppo", "--backend", "torch", "--steps", "512",
                    "--episodes", "2", "--out", tmp_path, "--quiet", *TINY) == 0
    text = (run_folder(tmp_path, "portfolio", "masked_ppo") / "config.json").read_text()
    assert "Infinity" not in text and json.loads(text)["algo_config"]["vf_clip_param"] == "inf"
    assert run_main("--env", "portfolio", "--algo", "masked_ppo", "--backend", "torch", "--steps", "512",
                    "--episodes", "2", "--out", tmp_path, "--quiet", "--resume", *TINY) == 0  # same identity


def test_a_non_ray_address_is_answered_in_seconds(tmp_path, capsys):
    server = subprocess.Popen([sys.executable, "-m", "http.server", "0", "--bind", "127.0.0.1"],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        port = int(server.stdout.readline().split("port ")[1].split()[0])
        started = time.perf_counter()
        assert run_main("--env", "portfolio", "--algo", "masked_ppo", "--address", f"127.0.0.1:{port}",
                        "--out", tmp_path, "--quiet", *TINY) == 2
        assert time.perf_counter() - started < 15
        assert "answers, but not as a Ray head" in capsys.readouterr().err
    finally:
        server.terminate()
        server.wait()
    assert_ray_is_gone()
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize("command", [["suite.check", "--env", "portfolio", "--steps", "2000000"]])
def test_ctrl_c_is_one_line_and_status_130(command):
    proc = subprocess.Popen([sys.executable, "-m", *command], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, preexec_fn=default_sigint)
    time.sleep(6)
    proc.send_signal(2)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130 and "interrupted" in err and "Traceback" not in err, err
