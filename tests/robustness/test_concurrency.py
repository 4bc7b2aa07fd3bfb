"""Writers that overlap in one results folder, as users start them (issue 32: the second of two overlapping sweeps
printed "the trial failed", counted the other's run and exited 0; a sweep and a single run into one --out did the
same). Each refusal names the writer holding the folder, the counts and exit status tell the truth, and every
run ends complete and unharmed."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from suite import results
from tests.helpers import default_sigint, glob_while_running

ROOT = Path(__file__).resolve().parents[2]
SLOW_RUNS = ["--env", "portfolio", "--algo", "random_valid", "--algo-config", "steps_per_iteration=500",
             "--steps", "60000", "--episodes", "3", "--checkpoint-every", "1", "--quiet"]


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
    first = _start([*SLOW_RUNS, "--seeds", "2", "--out", str(tmp_path)])
    _wait_for_progress(tmp_path, "portfolio/random_valid/*/seed0/progress.csv")
    argv = [*SLOW_RUNS, "--out", str(tmp_path)] + (["--seeds", "2"] if second == "sweep" else ["--resume"])
    late = subprocess.run([sys.executable, "-m", "suite.run", *argv], cwd=ROOT, capture_output=True, text=True,
                          timeout=600, preexec_fn=default_sigint)
    out, err = first.communicate(timeout=600)
    assert first.returncode == 0, (out, err)
    assert late.returncode in (1, 2), (late.stdout, late.stderr)  # a refusal: never "complete" and 0
    said = late.stdout + late.stderr
    assert "is being written by another run (pid " in said, said
    assert "the trial failed" not in said
    if second == "sweep":
        assert "refused" in late.stdout and " 0 failed" in late.stdout
    loaded = results.load(tmp_path)
    assert len(loaded.runs) == 2 and set(loaded.runs["status"]) == {"complete"}, loaded.problems
