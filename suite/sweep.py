"""Sweeps: ``python -m suite.run --env all --algo all --seeds 3`` runs every (env, algo, seed) as a
Ray Tune trial.

A sweep is data: the cross product of the env names, algo names and seeds asked for, each one an
ordinary run of :func:`suite.runner.execute` writing the usual files under
``<out>/<env>/<algo>/seed<k>/``, so ``suite.report`` reads a sweep like single runs. Before anything
starts:

- pairs an algo cannot run (``oracle`` on an env without one, ``normalize_ppo`` on discrete envs)
  are left out of a cross product with a note, and refused when they are the only pair asked for;
- complete runs with the same config are skipped; interrupted or failed runs resume from their
  last checkpoint; a run folder holding another config is an error unless ``--overwrite``.

Trials run through Ray Tune on the local machine or on the cluster at ``--address``, at most
``--max-concurrent`` at a time (1 by default: on a small machine two PPO trainings slow each other
down far more than they gain). A failed trial is reported (its ``error.txt`` holds the traceback)
and the sweep goes on; the exit status is 1 when any trial failed.
"""

from __future__ import annotations

import logging
import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import envs
from baselines import algo_names, load_algo
from baselines.ray_session import connect_ray
from envs.config import ConfigError, parse_assignments
from suite import results, runner
from suite.cli import UsageError, import_user_modules

__all__ = ["SweepPlan", "expand_names", "plan_sweep", "run_sweep", "is_sweep"]


def is_sweep(args) -> bool:
    """A sweep: several envs, algos or seeds (``all``, comma lists, ``--seeds``)."""
    return args.seeds is not None or "," in args.env or "," in args.algo or "all" in (args.env, args.algo)


def expand_names(value: str, known: list[str], what: str) -> list[str]:
    """``all`` or ``a,b`` -> the names, each validated (an unknown one is a one-line ConfigError)."""
    if value == "all":
        return list(known)
    names = [v.strip() for v in value.split(",") if v.strip()]
    unknown = [n for n in names if n not in known]
    if unknown or not names:
        raise ConfigError(f"unknown {what} {unknown[0] if unknown else value!r}; known {what}s: {', '.join(known)} "
                          f"(or all)")
    return list(dict.fromkeys(names))


@dataclass
class SweepPlan:
    """What a sweep will do: runs to start (with whether each resumes) and runs left out (with why)."""

    runs: list[tuple[Any, bool]]
    left_out: list[str]


def plan_sweep(args, request_for) -> SweepPlan:
    """Expand the args into runs; ``request_for(env, algo, seed)`` builds and validates one RunRequest."""
    env_names = expand_names(args.env, envs.names(), "env")
    algos = expand_names(args.algo, algo_names(), "algo")
    first = args.seed or 0
    seeds = list(range(first, first + (args.seeds or 1)))
    runs, left_out = [], []
    for env in env_names:
        env_config = envs.config_dict(env, parse_assignments(args.env_config))
        for algo in algos:
            reason = load_algo(algo).incompatibility(env, env_config)
            if reason:
                if len(env_names) == 1 and len(algos) == 1:  # the one pair asked for
                    raise ConfigError(reason)
                left_out.append(f"{algo} on {env}: {reason}")
                continue
            for seed in seeds:
                request = request_for(env, algo, seed)
                try:  # a folder holding another config is refused here, before any trial starts
                    resume = runner.prepare_directory(request, overwrite=args.overwrite, resume=not args.overwrite)
                except UsageError as error:
                    raise UsageError(f"sweep: {error}") from None
                if results.is_complete(request.directory) and not args.overwrite:
                    left_out.append(f"{algo} on {env}, seed {seed}: already complete")
                    continue
                runs.append((request, resume))
    return SweepPlan(runs, left_out)


def _trial(config: dict[str, Any], runs: list[tuple[Any, bool]], options: dict[str, Any]) -> None:
    """One Tune trial: one suite run (its files are the result; Tune only keeps the status)."""
    from ray import tune

    import_user_modules(options["imports"])  # the user's envs and algos, in this worker too
    request, resume = runs[config["index"]]
    frame = runner.execute(request, resume=resume, checkpoint_every=options["checkpoint_every"], quiet=True,
                    eval_every=options["eval_every"])
    headline = frame[(frame["policy"] == frame["policy"].iloc[0]) & (frame["mask"] == frame["mask"].iloc[0])]
    tune.report({"return_mean": float(headline["return"].mean()),
                 "policy": f"{headline['policy'].iloc[0]}, mask {headline['mask'].iloc[0]}"})


def run_sweep(args, plan: SweepPlan) -> int:
    """Run the plan's trials through Ray Tune; print one line per finished trial and a closing count."""
    from tqdm import tqdm

    for line in plan.left_out:
        print(f"left out: {line}", file=sys.stderr)
    if not plan.runs:
        print("nothing to run: every run of the sweep is complete or left out")
        return 0
    os.environ.setdefault("RAY_CHDIR_TO_TRIAL_DIR", "0")  # trials write to the suite's own folders
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")  # no TensorBoard/CSV copies of our CSVs
    from ray import tune
    from ray.tune import Callback, FailureConfig, RunConfig, TuneConfig

    logging.getLogger("ray.tune").setLevel(logging.CRITICAL)  # failures are reported below, one line each
    labels = [f"{r.algo} on {r.env}, seed {r.seed}" for r, _ in plan.runs]
    failed: list[str] = []

    class Progress(Callback):
        def __init__(self):
            self.bar = tqdm(total=len(plan.runs), unit="run", desc="sweep", disable=args.quiet or None)

        def on_trial_complete(self, iteration, trials, trial, **info):
            self.bar.update()
            result = trial.last_result
            self.bar.write(f"done: {labels[trial.config['index']]} (mean return "
                           f"{result.get('return_mean', float('nan')):,.4g}, {result.get('policy', '?')} policy)")

        def on_trial_error(self, iteration, trials, trial, **info):
            self.bar.update()
            request = plan.runs[trial.config["index"]][0]
            error_file = request.directory / results.ERROR_FILE
            last = error_file.read_text().strip().splitlines()[-1] if error_file.is_file() else "see Ray's logs"
            failed.append(f"{labels[trial.config['index']]}: {last}")
            self.bar.write(f"FAILED: {failed[-1]}")

    owns_ray = connect_ray(args.address, num_cpus=os.cpu_count() or 1)
    storage = Path(args.out).resolve() / ".tune"
    try:
        progress = Progress()
        tuner = tune.Tuner(
            tune.with_resources(tune.with_parameters(_trial, runs=plan.runs,
                                                     options={"checkpoint_every": args.checkpoint_every,
                                                              "eval_every": args.eval_every,
                                                              "imports": list(args.imports)}), {"cpu": 1}),
            param_space={"index": tune.grid_search(list(range(len(plan.runs))))},
            tune_config=TuneConfig(max_concurrent_trials=args.max_concurrent),
            run_config=RunConfig(name="sweep", storage_path=str(storage), verbose=0, callbacks=[progress],
                                 failure_config=FailureConfig(max_failures=0, fail_fast=False)))
        tuner.fit()
        progress.bar.close()
    finally:
        shutil.rmtree(storage, ignore_errors=True)  # Tune's own bookkeeping; the results are the run folders
        if owns_ray:
            import ray

            ray.shutdown()
    done = len(plan.runs) - len(failed)
    print(f"sweep: {done} run(s) complete, {len(failed)} failed, {len(plan.left_out)} left out; "
          f"results under {args.out} (python -m suite.report {args.out})")
    for line in failed:
        print(f"failed: {line}", file=sys.stderr)
    return 1 if failed else 0
