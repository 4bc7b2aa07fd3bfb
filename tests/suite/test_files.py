"""suite.files: atomic writes with the user's umask, checkpoint swaps a kill interrupted, one writer per
run folder, leftovers cleaned, strict JSON."""

import json
import os
import socket
import stat
import subprocess
import sys

import pytest

from suite import files


def mode(path):
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.parametrize("umask", [0o022, 0o002, 0o077])
def test_files_and_folders_get_the_permissions_of_the_users_umask(tmp_path, umask):
    previous = os.umask(umask)
    try:
        files.atomic_write_text(tmp_path / "a.csv", "x\n")
        files.atomic_write_json(tmp_path / "b.json", {"x": 1})
        files.atomic_replace_dir(tmp_path / "checkpoint", lambda tmp: (tmp / "w.bin").write_bytes(b"w"))
    finally:
        os.umask(previous)
    assert mode(tmp_path / "a.csv") == mode(tmp_path / "b.json") == 0o666 & ~umask  # not tempfile's 0600
    assert mode(tmp_path / "checkpoint") == 0o777 & ~umask  # not mkdtemp's 0700


def test_json_is_strict_and_non_finite_numbers_become_strings(tmp_path):
    data = {"vf_clip_param": float("inf"), "x": [float("-inf"), float("nan"), 1.5]}
    files.atomic_write_json(tmp_path / "c.json", data)
    text = (tmp_path / "c.json").read_text()
    assert "Infinity" not in text and "NaN" not in text
    assert json.loads(text) == {"vf_clip_param": "inf", "x": ["-inf", "nan", 1.5]}


def fill_with(marker):
    def fill(tmp):
        (tmp / "weights").write_text(marker)
    return fill


def test_a_swap_interrupted_between_its_two_renames_is_finished_with_the_newer_copy(tmp_path):
    checkpoint = tmp_path / "checkpoint"
    files.atomic_replace_dir(checkpoint, fill_with("old"))
    files.atomic_replace_dir(checkpoint, fill_with("new"))
    assert (checkpoint / "weights").read_text() == "new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint"]
    # a kill after "checkpoint -> .checkpoint.old" and before ".checkpoint.XXXX -> checkpoint"
    aside = tmp_path / ".checkpoint.abc123"
    os.replace(checkpoint, tmp_path / ".checkpoint.old")
    aside.mkdir()
    (aside / "weights").write_text("newest")
    (aside / files.COMPLETE_MARKER).write_text("done")
    assert "complete copy" in files.recover_dir(checkpoint)
    assert (checkpoint / "weights").read_text() == "newest"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint"]  # the old copy is gone too


def test_a_half_built_copy_is_not_taken_and_the_previous_checkpoint_comes_back(tmp_path):
    checkpoint = tmp_path / "checkpoint"
    files.atomic_replace_dir(checkpoint, fill_with("previous"))
    os.replace(checkpoint, tmp_path / ".checkpoint.old")
    (tmp_path / ".checkpoint.half").mkdir()  # killed while it was being filled: no completion marker
    (tmp_path / ".checkpoint.half" / "weights").write_text("partial")
    assert "previous version" in files.recover_dir(checkpoint)
    assert (checkpoint / "weights").read_text() == "previous" and not (tmp_path / ".checkpoint.half").exists()
    assert files.recover_dir(checkpoint) is None  # nothing left to do


def test_leftover_temporary_files_are_removed(tmp_path):
    (tmp_path / ".progress.csv.x1y2z3w4.tmp").write_text("half")
    (tmp_path / "progress.csv").write_text("whole")
    assert files.clean_leftovers(tmp_path) == [".progress.csv.x1y2z3w4.tmp"]
    assert [p.name for p in tmp_path.iterdir()] == ["progress.csv"]


def test_a_second_writer_is_refused_with_the_holder_named(tmp_path):
    with files.RunLock(tmp_path, "first") as lock:
        assert lock.held and (tmp_path / files.LOCK_FILE).is_file()
        with pytest.raises(files.FolderLocked, match=rf"being written by another run \(pid {os.getpid()} on "):
            files.RunLock(tmp_path, "second").acquire()
    assert not (tmp_path / files.LOCK_FILE).exists()  # released


def test_a_lock_left_by_a_killed_writer_is_taken_over(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    (tmp_path / files.LOCK_FILE).write_text(json.dumps({"host": socket.gethostname(), "pid": int(dead.stdout),
                                                        "started": "earlier", "command": "killed"}))
    with files.RunLock(tmp_path, "me"):
        assert json.loads((tmp_path / files.LOCK_FILE).read_text())["pid"] == os.getpid()


def test_a_lock_of_another_host_is_stale_only_when_it_has_not_been_refreshed(tmp_path):
    lock_file = tmp_path / files.LOCK_FILE
    lock_file.write_text(json.dumps({"host": "another-node", "pid": 1, "started": "earlier", "command": "x"}))
    with pytest.raises(files.FolderLocked, match="on another-node"):
        files.RunLock(tmp_path).acquire()
    old = lock_file.stat().st_mtime - files.FOREIGN_LOCK_STALE_SECONDS - 10
    os.utime(lock_file, (old, old))  # its node died an hour ago
    with files.RunLock(tmp_path):
        pass


def test_lock_state_tells_a_live_writer_from_one_that_is_gone(tmp_path):
    """What suite.results reports of an unfinished run: "held" is being written now, "stale" was interrupted."""
    lock_file = tmp_path / files.LOCK_FILE
    assert files.lock_state(tmp_path) is None
    with files.RunLock(tmp_path, "me"):
        assert files.lock_state(tmp_path) == "held"
    assert files.lock_state(tmp_path) is None
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    lock_file.write_text(json.dumps({"host": socket.gethostname(), "pid": int(dead.stdout), "started": "earlier",
                                     "command": "killed"}))
    assert files.lock_state(tmp_path) == "stale"
    lock_file.write_text(json.dumps({"host": "another-node", "pid": int(dead.stdout), "started": "earlier"}))
    assert files.lock_state(tmp_path) == "held"  # no process of another host can be checked ...
    old = lock_file.stat().st_mtime - files.FOREIGN_LOCK_STALE_SECONDS - 10
    os.utime(lock_file, (old, old))
    assert files.lock_state(tmp_path) == "stale"  # ... but one not refreshed for an hour is taken over
    lock_file.write_text('{"host": "')  # damaged: the next writer takes it over
    assert files.lock_state(tmp_path) == "stale"


def test_a_stale_lock_taken_over_leaves_no_file_behind_but_the_new_lock(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    (tmp_path / files.LOCK_FILE).write_text(json.dumps({"host": socket.gethostname(), "pid": int(dead.stdout)}))
    lock = files.RunLock(tmp_path, "me")
    lock.acquire()
    assert sorted(p.name for p in tmp_path.iterdir()) == [files.LOCK_FILE]
    assert json.loads((tmp_path / files.LOCK_FILE).read_text())["command"] == "me"
    lock.release()
    assert not any(tmp_path.iterdir())
