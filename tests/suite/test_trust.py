"""A received results folder runs no code: resuming a checkpoint needs this user's signature (suite.trust)."""

import pickle

import pytest

from suite import trust
from tests.helpers import run_main


class Payload:
    """Unpickling this creates ``path``: what a crafted checkpoint would do with a shell command."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


def interrupted_run(out, *extra):
    """A random_valid run with checkpoints, made to look interrupted (no eval.csv)."""
    assert run_main("--env", "portfolio", "--algo", "random_valid", "--steps", "4000", "--episodes", "2",
                    "--checkpoint-every", "1", "--out", str(out), "--quiet", *extra) == 0
    folder = out / "portfolio" / "random_valid" / "seed0"
    (folder / "eval.csv").unlink()
    assert (folder / "checkpoint" / trust.SIGNATURE_FILE).is_file()
    return folder


def test_the_users_own_checkpoint_resumes(tmp_path):
    interrupted_run(tmp_path)
    assert run_main("--env", "portfolio", "--algo", "random_valid", "--steps", "4000", "--episodes", "2",
                    "--out", str(tmp_path), "--quiet", "--resume") == 0


def test_a_crafted_pickle_is_never_loaded(tmp_path, capsys):
    folder = interrupted_run(tmp_path)
    pwned = tmp_path / "pwned"
    (folder / "checkpoint" / "random_valid.pkl").write_bytes(pickle.dumps(Payload(pwned)))
    argv = ["--env", "portfolio", "--algo", "random_valid", "--steps", "4000", "--episodes", "2",
            "--out", str(tmp_path), "--quiet"]
    assert run_main(*argv, "--resume") == 2
    err = capsys.readouterr().err
    assert "its signature does not match its files" in err and "--trust" in err and len(err.strip().splitlines()) == 1
    assert run_main(*argv[:-1], "--seeds", "1", "--quiet") == 2  # a sweep into the folder does not resume it either
    assert "cannot resume" in capsys.readouterr().err
    assert not pwned.exists() and not (folder / "eval.csv").exists()


def test_a_folder_from_someone_else_is_refused_unless_trusted(tmp_path, capsys, monkeypatch):
    folder = interrupted_run(tmp_path / "theirs")
    monkeypatch.setenv("MASKBENCH_KEY", str(tmp_path / "my.key"))  # another user: another key
    argv = ["--env", "portfolio", "--algo", "random_valid", "--steps", "4000", "--episodes", "2",
            "--out", str(tmp_path / "theirs"), "--quiet", "--resume"]
    assert run_main(*argv) == 2
    assert "this user has no checkpoint key yet" in capsys.readouterr().err
    assert run_main(*argv, "--trust") == 0  # the user says they trust it
    assert (folder / "eval.csv").is_file()


@pytest.mark.parametrize("damage", ["no signature", "signature of another key", "symlink", "garbage"])
def test_untrusted_reasons(tmp_path, monkeypatch, damage):
    checkpoint = tmp_path / "checkpoint"
    checkpoint.mkdir()
    (checkpoint / "state.pkl").write_bytes(b"data")
    trust.sign(checkpoint)
    assert trust.untrusted_reason(checkpoint) is None
    if damage == "no signature":
        (checkpoint / trust.SIGNATURE_FILE).unlink()
        expected = "no signature"
    elif damage == "signature of another key":
        monkeypatch.setenv("MASKBENCH_KEY", str(tmp_path / "other.key"))
        trust.sign(tmp_path.joinpath("checkpoint"))  # signed by the other user...
        monkeypatch.undo()
        expected = "does not match"                    # ...is not this user's
    elif damage == "symlink":
        (checkpoint / "link").symlink_to("/etc/passwd")
        expected = "symbolic link"
    else:
        (checkpoint / trust.SIGNATURE_FILE).write_text("[1, 2]")
        expected = "cannot be checked"
    assert expected in trust.untrusted_reason(checkpoint)


def test_the_key_is_the_users_alone(tmp_path, monkeypatch):
    monkeypatch.setenv("MASKBENCH_KEY", str(tmp_path / "k" / "checkpoint.key"))
    checkpoint = tmp_path / "c"
    checkpoint.mkdir()
    trust.sign(checkpoint)
    assert oct((tmp_path / "k" / "checkpoint.key").stat().st_mode & 0o777) == "0o600"


def test_first_runs_at_once_agree_on_one_key(tmp_path, monkeypatch):
    import multiprocessing

    monkeypatch.setenv("MASKBENCH_KEY", str(tmp_path / "k" / "checkpoint.key"))
    folders = [tmp_path / f"c{i}" for i in range(8)]
    for folder in folders:
        folder.mkdir()
        (folder / "state").write_bytes(b"x")
    with multiprocessing.get_context("fork").Pool(8) as pool:
        pool.map(trust.sign, folders)
    assert all(trust.untrusted_reason(folder) is None for folder in folders)  # every one signed with the same key
    assert [p.name for p in (tmp_path / "k").iterdir()] == ["checkpoint.key"]


def test_a_checkpoint_being_written_is_not_judged_the_lock_refuses_by_its_writers_name(tmp_path, capsys):
    """The race the concurrency survey met: the first writer's checkpoint is half written (its signature does not
    match yet) when a second writer looks. The second must be refused by the lock, not as untrusted, and must
    not unpickle it."""
    import json
    import socket
    import subprocess
    import sys

    folder = interrupted_run(tmp_path)
    pwned = tmp_path / "pwned"
    (folder / "checkpoint" / "random_valid.pkl").write_bytes(pickle.dumps(Payload(pwned)))  # a swap in progress
    argv = ["--env", "portfolio", "--algo", "random_valid", "--steps", "4000", "--episodes", "2",
            "--out", str(tmp_path), "--quiet", "--resume"]
    writer = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        (folder / ".lock").write_text(json.dumps({"host": socket.gethostname(), "pid": writer.pid,
                                                   "started": "now", "command": "the first writer"}))
        assert run_main(*argv) == 2
        err = capsys.readouterr().err
        assert "is being written by another run (pid " in err and "signature" not in err, err
    finally:
        writer.kill()
        writer.wait()
    assert run_main(*argv) == 2  # the writer is gone: now the checkpoint is judged, and refused as untrusted
    assert "its signature does not match its files" in capsys.readouterr().err
    assert not pwned.exists()
