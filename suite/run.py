"""``python -m suite.run``: train and evaluate one algorithm on one env with one seed.

Writes ``config.json``, ``progress.csv`` and ``eval.csv`` under ``<out>/<env>/<algo>/seed<k>/``
(see :mod:`suite.results`) and ends with a one-paragraph summary.
"""

from __future__ import annotations

import importlib.metadata
import json
import platform
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from tqdm import tqdm

import envs
from baselines import EVAL_SEED_BASE, algo_names, load_algo
from baselines.base import Algorithm, Policy, derived_seed
from baselines.rollout import evaluate
from envs.config import build_config, config_to_dict, describe_config, parse_assignments
from suite import results, sweep
from suite.cli import (Parser, UsageError, add_import_flag, import_user_modules, non_negative_int, positive_float,
                       positive_int, run_cli)
from suite.stats import mean_ci

__all__ = ["main", "RunRequest", "execute"]

#: Keys of config.json that must match for ``--resume`` to continue a run.
_IDENTITY_KEYS = ("env", "env_config", "algo", "algo_config", "seed")
_LIBRARIES = ("maskbench", "numpy", "gymnasium", "pettingzoo", "pandas", "scipy", "ray", "torch")


def build_parser() -> Parser:
    parser = Parser(
        prog="python -m suite.run",
        description="Train and evaluate one algorithm on one maskbench env with one seed.",
        epilog=f"envs: {', '.join(envs.names())}. algos: {', '.join(algo_names())}. "
               "Env config keys: python -m suite.check --env NAME --describe.",
    )
    parser.add_argument("--env", required=True,
                        help="registered env name; a comma list or 'all' makes a sweep (see --seeds)")
    parser.add_argument("--algo", required=True, help="algorithm name; a comma list or 'all' makes a sweep")
    parser.add_argument("--seed", type=non_negative_int, default=0,
                        help="run seed (training env and policy); with --seeds, the first seed")
    parser.add_argument("--seeds", type=positive_int, default=None, metavar="N",
                        help="sweep N seeds (--seed, --seed + 1, ...) of every env and algo, as Ray Tune trials")
    parser.add_argument("--max-concurrent", type=positive_int, default=1, metavar="K",
                        help="sweeps: at most K trials at once (raise it on a cluster)")
    parser.add_argument("--steps", type=positive_int, default=None,
                        help="training budget in env steps (default: the algo's own, e.g. 20000 for random_valid)")
    parser.add_argument("--episodes", type=positive_int, default=100,
                        help="evaluation episodes per evaluated policy, on fixed env seeds")
    parser.add_argument("--env-config", action="append", default=[], metavar="KEY=VALUE",
                        help="env config override, repeatable (e.g. --env-config start_cash=500)")
    parser.add_argument("--algo-config", action="append", default=[], metavar="KEY=VALUE",
                        help="algo config override, repeatable (e.g. --algo-config num_envs=128); "
                             "keys: python -m suite.run --env NAME --algo NAME --describe")
    parser.add_argument("--lr", type=positive_float, default=None,
                        help="learning rate (same as --algo-config lr=VALUE)")
    parser.add_argument("--num-env-runners", type=non_negative_int, default=None, metavar="K",
                        help="RLlib EnvRunner actors sampling in parallel (same as --algo-config num_env_runners=K)")
    parser.add_argument("--backend", default=None, metavar="NAME",
                        help="masked_ppo / penalty_ppo: rllib (default; scales to a Ray cluster) or torch (one "
                             "process, the fastest on one machine; same as --algo-config backend=NAME)")
    parser.add_argument("--address", default=None, metavar="ADDR",
                        help="run RLlib algos on the Ray cluster at ADDR (HOST:PORT or 'auto') instead of a "
                             "local Ray instance")
    parser.add_argument("--describe", action="store_true",
                        help="print the algo's config keys with their defaults for --env, and exit")
    parser.add_argument("--out", default="results", help="results folder")
    parser.add_argument("--checkpoint-every", type=positive_int, default=10,
                        help="save a checkpoint every N training iterations (and always at the end)")
    parser.add_argument("--eval-every", type=non_negative_int, default=5,
                        help="every N training iterations, evaluate the algo's headline policy on the "
                             "evaluation seeds into progress.csv (eval_* columns; 0: only at the end)")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--overwrite", action="store_true", help="replace an existing run of the same env/algo/seed")
    mode.add_argument("--resume", action="store_true", help="continue an interrupted run from its last checkpoint")
    parser.add_argument("--quiet", action="store_true", help="no progress bar and no summary")
    add_import_flag(parser)
    return parser


@dataclass
class RunRequest:
    """A validated run: what ``config.json`` records."""

    env: str
    env_config: dict[str, Any]
    algo: str
    algo_config: dict[str, Any]
    seed: int
    steps: int
    episodes: int
    directory: Path
    address: str | None = None
    command: str | None = None  # the command line that asked for the run (a sweep's, for its trials)

    @classmethod
    def from_args(cls, args, command: str | None = None) -> RunRequest:
        env_config = envs.config_dict(args.env, parse_assignments(args.env_config))
        algo_cls = load_algo(args.algo)
        algo_config = config_to_dict(algo_cls.make_config(args.env, algo_overrides(args), owner=f"algo {args.algo!r}"))
        return cls(args.env, env_config, args.algo, algo_config, args.seed,
                   args.steps or algo_cls.default_steps, args.episodes,
                   results.run_dir(args.out, args.env, args.algo, args.seed), args.address, command)

    def record(self) -> dict[str, Any]:
        return {"env": self.env, "env_config": self.env_config, "algo": self.algo, "algo_config": self.algo_config,
                "seed": self.seed, "steps": self.steps, "episodes": self.episodes,
                "eval_seeds": [EVAL_SEED_BASE, EVAL_SEED_BASE + self.episodes - 1],
                "env_version": envs.spec(self.env).load().version, "ray_address": self.address,
                "command": self.command or " ".join([Path(sys.executable).name, "-m", "suite.run", *sys.argv[1:]]),
                "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                "python": platform.python_version(), "platform": platform.platform(),
                "libraries": _library_versions(), "git_commit": _git_commit()}


def algo_overrides(args) -> dict[str, str]:
    """``--algo-config`` pairs plus the shortcut flags (``--lr``, ``--num-env-runners``, ``--backend``)."""
    overrides = parse_assignments(args.algo_config, what="--algo-config")
    for flag, key in (("lr", "lr"), ("num_env_runners", "num_env_runners"), ("backend", "backend")):
        value = getattr(args, flag)
        if value is not None:
            overrides[key] = str(value)
    return overrides


def _library_versions() -> dict[str, str | None]:
    versions = {}
    for name in _LIBRARIES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def _git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(__file__).parent, capture_output=True,
                             text=True, timeout=5)
        return out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def _check_writable(directory: Path, out: Path) -> None:
    """Probe the nearest existing folder of ``directory`` without creating anything."""
    probe = directory
    while not probe.exists():
        probe = probe.parent
    if not probe.is_dir():
        raise UsageError(f"cannot write results under --out {str(out)!r}: {probe} is not a folder")
    try:
        with tempfile.TemporaryFile(dir=probe):
            pass
    except OSError as error:
        raise UsageError(f"cannot write results under --out {str(out)!r}: {error.strerror or error}") from None


def _prepare_directory(request: RunRequest, *, overwrite: bool, resume: bool, out: Path) -> bool:
    """Check what is already there; return True when an existing run is to be resumed."""
    directory = request.directory
    config_path = directory / results.CONFIG_FILE
    if config_path.exists() and not (overwrite or resume):
        state = "complete" if results.is_complete(directory) else "incomplete"
        raise UsageError(f"{directory} already holds a {state} run; pass --overwrite to replace it"
                         f"{' or --resume to continue it' if state == 'incomplete' else ''}")
    _check_writable(directory, out)
    if resume and config_path.exists():
        try:
            previous = json.loads(config_path.read_text())
        except (OSError, ValueError) as error:
            raise UsageError(f"cannot --resume {directory}: its config.json is unreadable ({error})") from None
        current = request.record()
        differing = [k for k in _IDENTITY_KEYS if previous.get(k) != current[k]]
        if differing:
            raise UsageError(f"cannot --resume {directory}: it was run with a different {', '.join(differing)} "
                             f"(pass --overwrite to start over)")
        return (directory / results.CHECKPOINT_DIR).is_dir()
    return False


def _clear_previous_run(directory: Path) -> None:
    """--overwrite: remove what would make the old run look complete or resumable."""
    (directory / results.EVAL_FILE).unlink(missing_ok=True)
    (directory / results.PROGRESS_FILE).unlink(missing_ok=True)
    shutil.rmtree(directory / results.CHECKPOINT_DIR, ignore_errors=True)


def _save_checkpoint(algo: Algorithm, directory: Path, iteration: int, wall_seconds: float) -> None:
    def fill(tmp: Path) -> None:
        algo.save(tmp)
        results.atomic_write_json(tmp / "meta.json", {"iteration": iteration, "wall_seconds": wall_seconds})
    results.atomic_replace_dir(directory / results.CHECKPOINT_DIR, fill)


def _play(request: RunRequest, policy: Policy) -> list[dict[str, Any]]:
    """One record per evaluation episode of ``policy`` (episode i on env seed EVAL_SEED_BASE + i)."""
    rng = np.random.default_rng(derived_seed(request.seed, "eval"))
    return evaluate(request.env, request.env_config, policy, episodes=request.episodes,
                    seed_base=EVAL_SEED_BASE, rng=rng)


def _progress_evaluation(request: RunRequest, algo: Algorithm) -> dict[str, float]:
    """``eval_*`` columns of a progress row: the headline policy's means on the evaluation seeds."""
    policy = next(iter(algo.eval_policies().values()))
    frame = pd.DataFrame(_play(request, policy))
    metrics = [c for c in frame.columns if c not in ("episode", "env_seed", "agent", "length", "invalid_steps")]
    return {f"eval_{c}_mean": float(frame[c].mean()) for c in metrics}


def execute(request: RunRequest, *, resume: bool, checkpoint_every: int, quiet: bool,
            eval_every: int = 0) -> pd.DataFrame:
    """Train, checkpoint and evaluate; write the files; return the evaluation frame."""
    directory = request.directory
    algo_cls = load_algo(request.algo)
    algo_config = build_config(algo_cls.Config, request.algo_config, owner=f"algo {request.algo!r}")
    algo = algo_cls.implementation(algo_config)(request.env, request.env_config, algo_config, request.seed,
                                                address=request.address, budget=request.steps)  # fails before writing
    if not resume:
        _clear_previous_run(directory)  # only --overwrite gets here with an old run in place
    record = request.record()
    if resume:  # keep the original record; a resumed run may only extend its budgets
        previous = json.loads((directory / results.CONFIG_FILE).read_text())
        record = {**previous, "steps": request.steps, "episodes": request.episodes,
                  "eval_seeds": record["eval_seeds"], "resumed": [*previous.get("resumed", []), record["started"]]}
    try:
        results.atomic_write_json(directory / results.CONFIG_FILE, record)
        (directory / results.ERROR_FILE).unlink(missing_ok=True)  # a failed run started again is not failed
        rows: list[dict[str, Any]] = []
        wall_before = 0.0
        if resume:
            meta = json.loads((directory / results.CHECKPOINT_DIR / "meta.json").read_text())
            algo.restore(directory / results.CHECKPOINT_DIR)
            wall_before = meta["wall_seconds"]
            if meta["iteration"] > 0:
                rows = pd.read_csv(directory / results.PROGRESS_FILE).head(meta["iteration"]).to_dict("records")
        env_steps = int(rows[-1]["env_steps"]) if rows else 0
        started = time.perf_counter() - wall_before
        last_saved = len(rows)
        with tqdm(total=request.steps, initial=min(env_steps, request.steps), unit="step", unit_scale=True,
                  desc=f"{request.algo} on {request.env}", disable=True if quiet else None, leave=False) as bar:
            while env_steps < request.steps:
                row = algo.train_iteration()
                row = {"iteration": len(rows) + 1, "wall_seconds": time.perf_counter() - started, **row}
                if eval_every and row["iteration"] % eval_every == 0:
                    paused = time.perf_counter()
                    row.update(_progress_evaluation(request, algo))
                    started += time.perf_counter() - paused  # wall_seconds counts training, not evaluation
                rows.append(row)
                results.atomic_write_csv(directory / results.PROGRESS_FILE, results.ordered(rows, results.PROGRESS_COLUMNS))
                bar.update(min(int(row["env_steps"]), request.steps) - min(env_steps, request.steps))
                bar.set_postfix(ret=f"{row['episode_return_mean']:.4g}")
                env_steps = int(row["env_steps"])
                if len(rows) - last_saved >= checkpoint_every or env_steps >= request.steps:
                    _save_checkpoint(algo, directory, len(rows), row["wall_seconds"])
                    last_saved = len(rows)
        if not rows:  # resumed a run whose training was already done: keep its progress file
            rows = pd.read_csv(directory / results.PROGRESS_FILE).to_dict("records")

        eval_rows = [{"policy": policy_name, "mask": mask, **record}
                     for (policy_name, mask), policy in algo.eval_policies().items()
                     for record in _play(request, policy)]
        frame = results.ordered(eval_rows, results.EVAL_COLUMNS)
        results.atomic_write_csv(directory / results.EVAL_FILE, frame)
    except Exception:
        # The run stays resumable from its last checkpoint; results.load reports it as failed.
        results.atomic_write_text(directory / results.ERROR_FILE, traceback.format_exc())
        raise
    finally:
        algo.close()
    if not quiet:
        print(summary(request, pd.DataFrame(rows), frame))
    return frame


def summary(request: RunRequest, progress: pd.DataFrame, evaluation: pd.DataFrame) -> str:
    """The closing paragraph: evaluation return with a 95% CI, invalid-action rates, where the files are."""
    core_cls = envs.spec(request.env).load()
    agents = int(request.env_config.get("n_agents", 1))
    per_agent = f" per agent ({agents} agents)" if agents > 1 else ""
    parts = []
    for (policy, mask), group in evaluation.groupby(["policy", "mask"], sort=False):
        mean, low, high = mean_ci(group["return"])
        text = f"{policy} policy, mask {mask}: mean return{per_agent} {mean:,.4g} (95% CI {low:,.4g} to {high:,.4g})"
        for metric in core_cls.episode_metrics:
            m_mean, m_low, m_high = mean_ci(group[metric])
            text += f", final {metric.replace('_', ' ')} {m_mean:,.2f} (95% CI {m_low:,.2f} to {m_high:,.2f})"
        text += f", invalid actions in {100 * (group['invalid_steps'] > 0).mean():.1f}% of episodes"
        parts.append(text)
    weights = progress["env_steps"].diff().fillna(progress["env_steps"])
    train_invalid = float((progress["invalid_action_rate"] * weights).sum() / weights.sum())
    files = ", ".join([results.CONFIG_FILE, results.PROGRESS_FILE, results.EVAL_FILE])
    return (f"{request.algo} on {request.env}, seed {request.seed}, {int(progress['env_steps'].iloc[-1]):,} "
            f"training env steps, {request.episodes} evaluation episodes: " + "; ".join(parts)
            + f". Invalid-action rate in training: {100 * train_invalid:.2f}% of {'agent' if agents > 1 else 'env'} "
            "steps. "
            f"Files: {request.directory}/{{{files}}}.")


def describe_algo(algo: str, env: str) -> str:
    """The algo's config keys with their defaults for ``env`` (per-env defaults applied)."""
    algo_cls = load_algo(algo)
    config = config_to_dict(algo_cls.make_config(env, {}, owner=f"algo {algo!r}"))
    rows = describe_config(algo_cls.Config)
    lines = [f"{algo} on {env} (default budget {algo_cls.default_steps:,} env steps); "
             "set with --algo-config KEY=VALUE:"]
    width = max(len(r["key"]) for r in rows)
    for r in rows:
        default = config[r["key"]]
        default = ",".join(map(str, default)) if isinstance(default, list) else default
        accepts = f" [{r['accepts']}]" if r["accepts"] else ""
        lines.append(f"  {r['key']:<{width}}  {default!s:<10} {r['doc']}{accepts}")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    import_user_modules(args.imports)
    command = " ".join([Path(sys.executable).name, "-m", "suite.run", *(sys.argv[1:] if argv is None else argv)])
    if sweep.is_sweep(args):
        if args.describe:
            raise UsageError("--describe takes one env and one algo, not a sweep")
        plan = sweep.plan_sweep(args, lambda env, algo, seed: RunRequest.from_args(
            sweep.replace_args(args, env=env, algo=algo, seed=seed), command))
        return sweep.run_sweep(args, plan)
    if args.describe:
        print(describe_algo(args.algo, args.env))
        return 0
    request = RunRequest.from_args(args, command)
    resume = _prepare_directory(request, overwrite=args.overwrite, resume=args.resume, out=Path(args.out))
    if resume and results.is_complete(request.directory):
        print(f"{request.directory} is already complete; nothing to resume (pass --overwrite to run it again)")
        return 0
    try:
        execute(request, resume=resume, checkpoint_every=args.checkpoint_every, quiet=args.quiet,
                eval_every=args.eval_every)
    except KeyboardInterrupt:
        print(f"\ninterrupted: progress so far is in {request.directory}; continue with --resume", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main, "python -m suite.run"))
