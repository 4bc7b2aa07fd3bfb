"""A run killed with SIGKILL wherever it is (training, checkpointing, writing results) and resumed with
--resume ends with the progress.csv (timing aside) and eval.csv of the run that was never interrupted: on the
torch backend, on RLlib (its batched runner, one agent and several) and for the references."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from suite import results
from tests.helpers import TIMING, TINY, glob_while_running, run_folder, run_main

ROOT = Path(__file__).resolve().parents[2]

#: Each run: its env and its arguments. The Lagrangian run's checkpoint holds the multiplier and its Adam
#: moments and each episode's cost so far; the Dirichlet run's, its sampling generator.
RUNS = {
    "torch": ("portfolio", ["--algo", "masked_ppo", "--backend", "torch", *TINY, "--steps", "5120"]),
    "random_valid": ("portfolio", ["--algo", "random_valid", "--algo-config", "steps_per_iteration=500",
                                   "--steps", "6000"]),
    "lagrangian": ("speed_limit", ["--algo", "lagrangian_ppo", *TINY, "--steps", "5120"]),
    # RLlib with the batched runner: its checkpoint adds the runners' envs and every global generator.
    "rllib": ("portfolio", ["--algo", "masked_ppo", *TINY, "--steps", "5120"]),
    "rllib_agents": ("speed_limit", ["--algo", "masked_ppo", *TINY, "--env-config", "n_agents=3", "--steps", "5120"]),
    "rllib_remote": ("portfolio", ["--algo", "masked_ppo", *TINY, "--num-env-runners", "1", "--steps", "5120"]),
    "dirichlet": ("sum_to_zero", ["--algo", "dirichlet_ppo", *TINY, "--steps", "5120"]),
}


def command(out, which):
    env, argv = RUNS[which]
    return ["--env", env, *argv, "--episodes", "6", "--eval-every", "2", "--checkpoint-every", "1",
            "--out", str(out), "--quiet"]


def rows(directory):
    try:
        return len(pd.read_csv(directory / "progress.csv"))
    except (OSError, pd.errors.EmptyDataError):
        return 0


def kill_after(out, which, algo, at_rows):
    """Start the run in a process of its own and SIGKILL it once progress.csv has ``at_rows`` rows."""
    proc = subprocess.Popen([sys.executable, "-m", "suite.run", *command(out, which)], cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        found = glob_while_running(Path(out), f"{RUNS[which][0]}/{algo}/**/seed0")
        if found and rows(found[0]) >= at_rows:
            os.kill(proc.pid, signal.SIGKILL)
            break
        time.sleep(0.01)
    proc.wait(timeout=30)
    return proc.returncode


@pytest.mark.slow
@pytest.mark.parametrize("which, algo, at_rows", [("torch", "masked_ppo", 2), ("torch", "masked_ppo", 7),
                                                   ("random_valid", "random_valid", 3),
                                                   ("lagrangian", "lagrangian_ppo", 4),
                                                   ("dirichlet", "dirichlet_ppo", 4), ("rllib", "masked_ppo", 3),
                                                   ("rllib_agents", "masked_ppo", 3),
                                                   ("rllib_remote", "masked_ppo", 3)])
def test_a_run_killed_anywhere_and_resumed_is_the_run_it_continues(tmp_path, which, algo, at_rows):
    env = RUNS[which][0]
    assert run_main(*command(tmp_path / "straight", which)) == 0
    code = kill_after(tmp_path / "cut", which, algo, at_rows)
    cut = run_folder(tmp_path / "cut", env, algo)
    if code == 0:
        pytest.skip("the run finished before it could be killed")  # a slow machine; nothing to resume
    assert code == -signal.SIGKILL and not results.is_complete(cut)
    assert run_main(*command(tmp_path / "cut", which), "--resume") == 0
    straight = run_folder(tmp_path / "straight", env, algo)
    pd.testing.assert_frame_equal(pd.read_csv(cut / "progress.csv").drop(columns=TIMING, errors="ignore"),
                                  pd.read_csv(straight / "progress.csv").drop(columns=TIMING, errors="ignore"))
    pd.testing.assert_frame_equal(pd.read_csv(cut / "eval.csv"), pd.read_csv(straight / "eval.csv"))
    assert sorted(p.name for p in cut.iterdir()) == ["checkpoint", "config.json", "eval.csv", "progress.csv"]
