"""Nothing a crashed run or sweep leaves behind survives the next run in that folder (issue 32, item 6: the survey's
leftovers area): Tune's folders and the markers of a sweep driver killed with SIGKILL, the lock and temporary files
of a trial a Ctrl-C stopped, what ``--overwrite`` finds beside a linked checkpoint; and never a file of the user's."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from suite import files, results, runner
from suite import sweep as sweep_module
from tests.helpers import default_sigint, glob_while_running, run_main

ROOT = Path(__file__).resolve().parents[2]
DEAD_PID = 2**22 + 12345  # above the default pid_max: no process has it


def _marker(out: Path, sweep_id: str, **record) -> Path:
    path = out / f"{sweep_module.NODE_CHECK}{sweep_id}"
    path.write_text(json.dumps({"sweep_id": sweep_id, "host": socket.gethostname(), "pid": DEAD_PID, **record}))
    return path


def _tune_folder(out: Path, sweep_id: str) -> Path:
    folder = out / f"{sweep_module.TUNE_FOLDER}{sweep_id}"
    (folder / "sweep").mkdir(parents=True)
    (folder / "sweep" / "experiment_state.json").write_text("{}")
    return folder


ID = "0123456789abcdef0123456789abcdef"


def test_a_killed_drivers_marker_and_tune_folder_are_removed(tmp_path):
    marker, folder = _marker(tmp_path, ID), _tune_folder(tmp_path, ID)
    assert sorted(sweep_module.remove_dead_sweeps_leftovers(tmp_path)) == sorted([marker.name, folder.name])
    assert list(tmp_path.iterdir()) == []


def test_a_live_drivers_marker_and_tune_folder_stay(tmp_path):
    marker, folder = _marker(tmp_path, ID, pid=os.getpid()), _tune_folder(tmp_path, ID)
    assert sweep_module.remove_dead_sweeps_leftovers(tmp_path) == []
    assert marker.exists() and folder.exists()


def test_another_hosts_sweep_is_not_judged(tmp_path):
    marker, folder = _marker(tmp_path, ID, host="another-host"), _tune_folder(tmp_path, ID)
    assert sweep_module.remove_dead_sweeps_leftovers(tmp_path) == []
    assert marker.exists() and folder.exists()


def test_a_damaged_marker_of_the_suites_name_is_removed_with_its_tune_folder(tmp_path):
    marker = tmp_path / f"{sweep_module.NODE_CHECK}{ID}"
    marker.write_text("{")  # a write the kill cut short
    folder = _tune_folder(tmp_path, ID)
    sweep_module.remove_dead_sweeps_leftovers(tmp_path)
    assert not marker.exists() and not folder.exists()


@pytest.mark.parametrize("name", [".tune-mine", ".tune", f"{sweep_module.NODE_CHECK}notes.txt", ".maskbench-sweep-"])
def test_a_users_files_of_similar_names_stay(tmp_path, name):
    (tmp_path / name).write_text("mine")
    assert sweep_module.remove_dead_sweeps_leftovers(tmp_path) == []
    assert (tmp_path / name).read_text() == "mine"


def test_a_link_named_like_a_tune_folder_is_never_followed(tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "keep.txt").write_text("mine")
    out = tmp_path / "out"
    out.mkdir()
    _marker(out, ID)
    (out / f"{sweep_module.TUNE_FOLDER}{ID}").symlink_to(elsewhere, target_is_directory=True)
    sweep_module.remove_dead_sweeps_leftovers(out)
    assert (elsewhere / "keep.txt").read_text() == "mine"


@pytest.mark.parametrize("name", [*files.RUN_FILES, files.LOCK_FILE])
def test_a_writes_temporary_file_is_removed_by_the_next_run_and_a_users_is_not(tmp_path, name):
    temporary = f"{name}.1a2b3c4d.tmp" if name == files.LOCK_FILE else f".{name}.1a2b3c4d.tmp"
    leftover, users = tmp_path / temporary, tmp_path / f"{name}.my-notes.tmp"
    leftover.write_text("half a write")
    users.write_text("mine")
    assert files.clean_leftovers(tmp_path) == [leftover.name]
    assert not leftover.exists() and users.read_text() == "mine"


SHORT = ["--env", "portfolio", "--algo", "random_valid", "--algo-config", "steps_per_iteration=500", "--steps",
         "2000", "--episodes", "2", "--quiet"]


def test_overwrite_beside_a_linked_checkpoint_leaves_no_link_and_deletes_nothing_through_it(tmp_path):
    assert run_main(*SHORT, "--out", tmp_path / "out") == 0
    folder = runner.RunRequest.build("portfolio", "random_valid", 0, out=tmp_path / "out",
                                     algo_config={"steps_per_iteration": 500}, steps=2000, episodes=2).directory
    elsewhere = tmp_path / "elsewhere"
    (folder / "checkpoint").rename(elsewhere)
    (folder / "checkpoint").symlink_to(elsewhere, target_is_directory=True)
    kept = {p.name: p.read_bytes() for p in elsewhere.iterdir() if p.is_file()}
    assert run_main(*SHORT, "--out", tmp_path / "out", "--overwrite") == 0
    assert {p.name: p.read_bytes() for p in elsewhere.iterdir() if p.is_file()} == kept
    assert sorted(p.name for p in folder.iterdir()) == ["checkpoint", "config.json", "eval.csv", "progress.csv"]
    assert not (folder / "checkpoint").is_symlink()


def _all_names(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*"))


@pytest.mark.slow
@pytest.mark.parametrize("how", [signal.SIGINT, signal.SIGKILL], ids=["ctrl-c", "sigkill"])
def test_a_stopped_sweeps_leftovers_do_not_survive_its_rerun(tmp_path, how):
    """A sweep's driver stopped mid-trial (Ctrl-C, or killed with SIGKILL: no clean-up ran at all), then the same
    command again: the rerun finishes every run, and what is left in --out is the runs' own files."""
    argv = ["--env", "portfolio", "--algo", "random_valid", "--seeds", "2", "--steps", "3000000", "--episodes", "3",
            "--algo-config", "steps_per_iteration=500", "--checkpoint-every", "1", "--out", str(tmp_path)]
    proc = subprocess.Popen([sys.executable, "-m", "suite.run", *argv], cwd=ROOT, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, preexec_fn=default_sigint)
    deadline = time.time() + 120
    while time.time() < deadline and not glob_while_running(tmp_path, "**/checkpoint/meta.json"):
        time.sleep(0.1)
    children = psutil.Process(proc.pid).children(recursive=True)
    os.kill(proc.pid, how)
    proc.wait(timeout=120)
    # Ray's processes share the driver's fate; its agents notice their raylet is gone within a minute or two
    _, alive = psutil.wait_procs(children, timeout=180)
    assert not alive, [p.name() for p in alive]
    if how == signal.SIGKILL:  # what a killed driver leaves: the rerun must clear it
        assert list(tmp_path.glob(f"{sweep_module.TUNE_FOLDER}*"))
        assert list(tmp_path.glob(f"{sweep_module.NODE_CHECK}*"))
    rerun = subprocess.run([sys.executable, "-m", "suite.run",
                            *[("2000" if a == "3000000" else a) for a in argv], "--quiet"],
                           cwd=ROOT, capture_output=True, text=True, timeout=600, preexec_fn=default_sigint)
    assert rerun.returncode == 0, rerun.stderr
    assert set(results.load(tmp_path).runs["status"]) == {"complete"}
    left = [name for name in _all_names(tmp_path)  # hidden names, but the checkpoints' own completion marks
            if Path(name).name.startswith(".") and Path(name).name != files.COMPLETE_MARKER]
    assert left == [], left
