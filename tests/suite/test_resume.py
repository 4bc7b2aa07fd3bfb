"""A run killed with SIGKILL (or stopped with Ctrl-C) wherever it is (training, checkpointing, the final
evaluation) and resumed with --resume ends with the progress.csv (timing aside) and eval.csv of the run that was
never interrupted: on the torch backend, on RLlib (its batched runner, one agent and several) and for the
references. These 24 cases are the survey's kills area (tests/robustness)."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from suite import results
from tests.helpers import TIMING, TINY, default_sigint, glob_while_running, run_folder, run_main

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


#: When the run is stopped, and how: SIGKILL while it trains (a checkpoint is written every iteration, so a kill
#: can land inside a checkpoint's write or rename), Ctrl-C (SIGINT) later in training, and SIGKILL once every
#: training iteration is written: during the final checkpoint and the final evaluation.
MOMENTS = {"killed-training": (signal.SIGKILL, 2), "ctrl-c": (signal.SIGINT, 4), "killed-final": (signal.SIGKILL, None)}
FINAL_EPISODES = 60  # a final evaluation long enough to be stopped in


def command(out, which, episodes=6):
    env, argv = RUNS[which]
    return ["--env", env, *argv, "--episodes", str(episodes), "--eval-every", "2", "--checkpoint-every", "1",
            "--out", str(out), "--quiet"]


def rows(directory):
    try:
        return len(pd.read_csv(directory / "progress.csv"))
    except (OSError, pd.errors.EmptyDataError):
        return 0


def stop_after(out, which, algo, at_rows, how=signal.SIGKILL, episodes=6):
    """Start the run in a process of its own and send it ``how`` once progress.csv has ``at_rows`` rows."""
    proc = subprocess.Popen([sys.executable, "-m", "suite.run", *command(out, which, episodes)], cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, preexec_fn=default_sigint)
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        found = glob_while_running(Path(out), f"{RUNS[which][0]}/{algo}/**/seed0")
        if found and rows(found[0]) >= at_rows:
            os.kill(proc.pid, how)
            break
        time.sleep(0.005)
    proc.wait(timeout=60)
    return proc.returncode


ALGOS = {"torch": "masked_ppo", "random_valid": "random_valid", "lagrangian": "lagrangian_ppo",
         "dirichlet": "dirichlet_ppo", "rllib": "masked_ppo", "rllib_agents": "masked_ppo",
         "rllib_remote": "masked_ppo", "torch_late": "masked_ppo"}
RUNS["torch_late"] = RUNS["torch"]


@pytest.fixture(scope="module")
def straight_runs(tmp_path_factory):
    """The uninterrupted run of each kind (made once, on first use)."""
    made = {}

    def straight(which, episodes):
        if (which, episodes) not in made:
            out = tmp_path_factory.mktemp(f"straight-{which}-{episodes}")
            assert run_main(*command(out, which, episodes)) == 0
            made[which, episodes] = run_folder(out, RUNS[which][0], ALGOS[which])
        return made[which, episodes]

    return straight


@pytest.mark.slow
@pytest.mark.parametrize("moment", MOMENTS)
@pytest.mark.parametrize("which", ALGOS)
def test_a_run_stopped_anywhere_and_resumed_is_the_run_it_continues(tmp_path, straight_runs, which, moment):
    env, algo = RUNS[which][0], ALGOS[which]
    how, at_rows = MOMENTS[moment]
    episodes = FINAL_EPISODES if moment == "killed-final" else 6
    straight = straight_runs(which, episodes)
    if at_rows is None:
        at_rows = rows(straight)
    elif which == "torch_late":
        at_rows += 3
    code = stop_after(tmp_path / "cut", which, algo, at_rows, how, episodes)
    cut = run_folder(tmp_path / "cut", env, algo)
    if code == 0:
        pytest.skip("the run finished before it could be stopped")  # a slow machine; nothing to resume
    assert code == (-signal.SIGKILL if how == signal.SIGKILL else 130) and not results.is_complete(cut)
    assert run_main(*command(tmp_path / "cut", which, episodes), "--resume") == 0
    pd.testing.assert_frame_equal(pd.read_csv(cut / "progress.csv").drop(columns=TIMING, errors="ignore"),
                                  pd.read_csv(straight / "progress.csv").drop(columns=TIMING, errors="ignore"))
    pd.testing.assert_frame_equal(pd.read_csv(cut / "eval.csv"), pd.read_csv(straight / "eval.csv"))
    assert sorted(p.name for p in cut.iterdir()) == ["checkpoint", "config.json", "eval.csv", "progress.csv"]
