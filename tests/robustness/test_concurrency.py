"""Writers that overlap in one results folder, as users start them (issue 32: the second of two overlapping sweeps
printed "the trial failed", counted the other's run and exited 0; a sweep and a single run into one --out did the
same). Each refusal names the writer holding the folder, the counts and exit status tell the truth, and every
run ends complete and unharmed."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from suite import results
from tests.helpers import default_sigint, glob_while_running

ROOT = Path(__file__).resolve().parents[2]
#: Runs far longer than the test: the late writer surely overlaps the first, which is then stopped (Ctrl-C) and
#: finished by a rerun with a budget already reached.
LONG_RUNS = ["--env", "portfolio", "--algo", "random_valid", "--algo-config", "steps_per_iteration=500",
             "--steps", "3000000", "--episodes", "3", "--checkpoint-every", "1", "--quiet"]


def _start(argv: list[str]) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "suite.run", *argv], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, preexec_fn=default_sigint)


def _wait_for_progress(out: Path, pattern: str) -> None:
    deadline = time.time() + 120
    while time.time() < deadline and not glob_while_running(out, pattern):
        time.sleep(0.05)


@pytest.mark.slow
@pytest.mark.parametrize("second", ["sweep", "single-run"])
def test_a_second_writer_into_a_sweeps_folder_is_refused_by_name_and_says_so_in_its_count(tmp_path, second):
    first = _start([*LONG_RUNS, "--seeds", "2", "--out", str(tmp_path)])
    _wait_for_progress(tmp_path, "portfolio/random_valid/*/seed0/progress.csv")
    argv = [*LONG_RUNS, "--out", str(tmp_path)] + (["--seeds", "1"] if second == "sweep" else ["--resume"])
    late = subprocess.run([sys.executable, "-m", "suite.run", *argv], cwd=ROOT, capture_output=True, text=True,
                          timeout=600, preexec_fn=default_sigint)
    assert first.poll() is None, "the first writer ended before the second one asked"
    first.send_signal(signal.SIGINT)
    out, err = first.communicate(timeout=300)
    assert first.returncode == 130, (out, err)
    assert late.returncode in (1, 2), (late.stdout, late.stderr)  # a refusal: never "complete" and 0
    said = late.stdout + late.stderr
    assert "is being written by another run (pid " in said, said
    assert "the trial failed" not in said
    if second == "sweep":
        assert "refused" in late.stdout and " 0 failed" in late.stdout
    # nothing was harmed: the same sweep, with a budget already reached, completes both runs
    rerun = subprocess.run([sys.executable, "-m", "suite.run", *[("2000" if a == "3000000" else a) for a in LONG_RUNS],
                            "--seeds", "2", "--out", str(tmp_path)], cwd=ROOT, capture_output=True, text=True,
                           timeout=600, preexec_fn=default_sigint)
    assert rerun.returncode == 0, rerun.stderr
    loaded = results.load(tmp_path)
    assert len(loaded.runs) == 2 and set(loaded.runs["status"]) == {"complete"}, loaded.problems
