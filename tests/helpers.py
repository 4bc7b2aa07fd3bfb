"""What several test modules share: the tiny training settings, running the CLIs in-process, Ray's
clean-up check and synthetic run folders. Tests import this module, never each other."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import psutil
import ray

from suite import results, run
from suite.cli import run_cli

#: The smallest PPO that still trains: two iterations of 512 env steps fit in ``--steps 1024``.
TINY_SETTINGS = {"train_batch_size": "512", "minibatch_size": "128", "num_epochs": "2",
                 "num_envs_per_env_runner": "16", "hidden": "16"}
#: :data:`TINY_SETTINGS` as ``suite.run`` arguments.
TINY = [item for key, value in TINY_SETTINGS.items() for item in ("--algo-config", f"{key}={value}")]
#: progress.csv columns that measure time, not behaviour.
TIMING = ["wall_seconds", "env_steps_per_second", "agent_steps_per_second", "enforcement_share"]


def run_main(*argv) -> int:
    """``python -m suite.run ARGV`` in this process; returns the exit status."""
    return run_cli(run.main, "python -m suite.run", [str(a) for a in argv])


def assert_ray_is_gone() -> None:
    """Ray is shut down and no child process (raylet, workers) outlives the run."""
    assert not ray.is_initialized()
    children = psutil.Process().children(recursive=True)
    _, alive = psutil.wait_procs(children, timeout=15)
    assert not alive, f"processes left behind: {[p.name() for p in alive]}"


def run_folder(out, env: str, algo: str, seed: int = 0):
    """The one run folder of ``algo`` on ``env`` with ``seed`` under ``out``, whatever its config variant."""
    from pathlib import Path

    found = sorted(p for p in (Path(out) / env / algo).glob(f"**/seed{seed}") if p.is_dir())
    assert len(found) == 1, f"expected one run folder of {algo} on {env}, seed {seed} under {out}; found {found}"
    return found[0]


def read_run(out, env: str, algo: str, seed: int = 0) -> tuple[dict, pd.DataFrame, pd.DataFrame]:
    """A run's ``config.json``, ``progress.csv`` and ``eval.csv``."""
    directory = run_folder(out, env, algo, seed)
    return (json.loads((directory / "config.json").read_text()), pd.read_csv(directory / "progress.csv"),
            pd.read_csv(directory / "eval.csv"))


def write_synthetic_run(root, env="portfolio", algo="masked_ppo", seed=0, *, steps=200, iterations=2,
                        evaluated=True, algo_config=None, returns=None, evals=None, progress=None, env_config=None,
                        metrics=None):
    """A run folder as ``suite.run`` writes it, with chosen numbers.

    ``returns``: the headline policy's (greedy, mask on) episode returns (default 10, 11, 12 + seed);
    ``evals``: extra policies' rows (dicts), each repeated for every episode as a real run has them;
    ``progress``: progress columns to set or add (lists of ``iterations`` values);
    ``metrics``: episode metrics of the headline policy's rows (lists of one value per episode, e.g. ``makespan``).
    """
    directory = results.run_dir(root, env, algo, seed)
    directory.mkdir(parents=True)
    record = {"env": env, "env_config": env_config or {"periods": 20}, "algo": algo,
              "algo_config": algo_config or {"lr": 0.001, "hidden": [16, 16]}, "seed": seed, "steps": steps,
              "episodes": len(returns) if returns is not None else 3, "env_version": 0,
              "started": "2026-11-23T00:00:00"}
    (directory / "config.json").write_text(json.dumps(record))
    table = {"iteration": list(range(1, iterations + 1)), "env_steps": [100 * (i + 1) for i in range(iterations)],
             "episodes": list(range(iterations)), "wall_seconds": [1.5 * (i + 1) for i in range(iterations)],
             "episode_return_mean": [float(seed + i) for i in range(iterations)],
             "episode_return_min": [0.0] * iterations, "episode_return_max": [9.0] * iterations,
             "invalid_action_rate": [0.0] * iterations}
    table.update(progress or {})
    pd.DataFrame(table).to_csv(directory / "progress.csv", index=False)
    if evaluated:
        returns = returns if returns is not None else [10.0 + seed, 11.0 + seed, 12.0 + seed]
        rows = [{"episode": i, "env_seed": 1_000_000 + i, "policy": "greedy", "mask": "on", "return": r, "length": 20,
                 "invalid_steps": 0, "invalid_actions": 0, **{k: v[i] for k, v in (metrics or {}).items()}}
                for i, r in enumerate(returns)]
        rows += [{"length": 20, "invalid_steps": 0, "invalid_actions": 0, **row, "episode": i,
                  "env_seed": 1_000_000 + i} for row in evals or [] for i in range(len(returns))]  # every episode
        pd.DataFrame(rows).to_csv(directory / "eval.csv", index=False)
    return directory


def build_algo(algo: str, env: str, env_config: dict | None = None, *, seed: int = 0, budget: int | None = None,
               **settings):
    """The algorithm ``algo`` on ``env`` as ``suite.run`` builds it (registry, per-env defaults, backend)."""
    from baselines import load_algo

    entry = load_algo(algo)
    config = entry.make_config(env, {key: str(value) for key, value in settings.items()}, owner=f"algo {algo!r}")
    return entry.implementation(config)(env, dict(env_config or {}), config, seed, budget=budget)


def default_sigint() -> None:
    """``preexec_fn`` of a subprocess a test interrupts with SIGINT: Ctrl-C's default disposition, which a
    test run started in the background (``cmd &``: SIGINT ignored, inherited) would otherwise pass on, so
    that Python would never raise KeyboardInterrupt in the child."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_DFL)


def glob_while_running(root: Path, pattern: str) -> list[Path]:
    """``root.glob(pattern)`` while a run writes under ``root``. The run renames checkpoint folders as it
    goes, so a folder the walk lists can be gone when it is entered: that look finds nothing (the caller
    polls again) instead of failing."""
    try:
        return list(root.glob(pattern))
    except FileNotFoundError:
        return []


def random_masks(rng: np.random.Generator, n: int, nvec) -> np.ndarray:
    """``n`` flat masks over ``nvec`` with at least one admissible value per block."""
    blocks = []
    for size in nvec:
        block = (rng.random((n, size)) < 0.4).astype(np.int8)
        block[np.arange(n), rng.integers(0, size, n)] = 1
        blocks.append(block)
    return np.concatenate(blocks, axis=1)


def one_step_lookahead(core):
    """Portfolio, the seed's size, written by hand: buy 50 of what the mean curve says rises next period, sell
    the rest (a weaker model-aware policy than the env's reference; ``baselines.references.one_step_lookahead``
    is checked against it)."""
    from envs.portfolio import HOLD, mean_prices

    buy_50 = 10
    s = core.state
    rising = mean_prices(core.config.periods)[s.t + 1] > s.prices                          # (B, 3)
    mask = core.action_mask().reshape(*s.holdings.shape, 11).astype(bool)
    sell = ~rising[:, None, :] & (s.holdings > 0)
    sell_lots = (np.minimum(s.holdings, 50) // 10).astype(np.int64)
    return np.where(sell, HOLD - sell_lots, np.where(rising[:, None, :] & mask[..., buy_50], buy_50, HOLD))


def unpadded(markdown: str) -> str:
    """Markdown with its tables' cell padding removed (``|  a   | b |`` -> ``| a | b |``): what a report says,
    whatever widths its table writer pads cells to."""
    return "\n".join(re.sub(r" *\| *", " | ", line).strip() if line.startswith("|") else line
                     for line in markdown.splitlines())


def training_vector_env(config):
    """The one-agent training env (:class:`baselines.training_env.MultiAgentTrainingVector`) as a Gymnasium
    vector env with next-step autoreset: what RLlib's own ``SingleAgentEnvRunner`` steps, for the tests and
    benchmarks that compare the batched runner with it. ``config`` is RLlib's env config (the run's
    ``TrainingContext.as_dict()`` plus ``num_envs``); register this function with
    ``ray.tune.registry.register_env`` and use ``gym_env_vectorize_mode="vector_entry_point"``."""
    import gymnasium as gym
    from gymnasium.vector.utils import batch_space

    from baselines.training_env import MultiAgentTrainingVector, TrainingContext

    def squeeze(obs):
        return {key: value[:, 0] for key, value in obs.items()} if isinstance(obs, dict) else obs[:, 0]

    class TrainingVectorEnv(gym.vector.VectorEnv):
        metadata = {"autoreset_mode": gym.vector.AutoresetMode.NEXT_STEP}

        def __init__(self):
            self.vector = MultiAgentTrainingVector(TrainingContext.of(config), int(config["num_envs"]))
            self.num_envs = self.vector.num_envs
            self.single_observation_space = self.vector.single_observation_space
            self.single_action_space = self.vector.single_action_space
            self.observation_space = batch_space(self.single_observation_space, self.num_envs)
            self.action_space = batch_space(self.single_action_space, self.num_envs)

        def reset(self, *, seed=None, options=None):
            obs, _ = self.vector.reset(seed=seed)
            return squeeze(obs), {}

        def step(self, actions):
            obs, reward, terminated, truncated, _ = self.vector.step(np.asarray(actions)[:, None])
            return squeeze(obs), reward[:, 0], terminated[:, 0], truncated[:, 0], {}

        def close(self, **kwargs):
            self.vector.close()

    return TrainingVectorEnv()


# The job-shop tests' hand-computed 3x3 instance: job j's operations as (machine, duration).
#   J0: (M0, 3) (M1, 2) (M2, 2)
#   J1: (M0, 2) (M2, 1) (M1, 4)
#   J2: (M1, 4) (M2, 3) (M0, 1)
HAND = """hand 3x3 instance
3 3
0 3 1 2 2 2
0 2 2 1 1 4
1 4 2 3 0 1
"""
MACHINES = np.array([[0, 1, 2], [0, 2, 1], [1, 2, 0]])
DURATIONS = np.array([[3, 2, 2], [2, 1, 4], [4, 3, 1]])


def assert_recorded_before_reads_as_default(env: str, key: str, algo: str) -> None:
    """A run of ``env`` recorded before the env setting ``key`` existed (its config.json without the key) reads
    as today's default config: completed by ``results.with_added_settings``, with the same config id."""
    import envs

    today = envs.config_dict(env, {})
    record = {"env": env, "env_config": {k: v for k, v in today.items() if k != key},
              "algo": algo, "algo_config": {"num_envs": 64}}
    completed = results.with_added_settings(json.loads(json.dumps(record)))
    assert completed["env_config"] == today
    assert results.config_id(completed) == results.config_id({**record, "env_config": today})
