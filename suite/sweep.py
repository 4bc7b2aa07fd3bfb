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
down far more than they gain). ``--out`` is made absolute, and every trial first checks that its node
sees the folder the driver made (on a cluster it must be storage every node shares; a trial on a node
that does not see it fails with that message instead of writing elsewhere). A failed trial is
reported (its ``error.txt`` holds the traceback) and the sweep goes on. A trial refused before its run
started (its folder is being written by another run, e.g. by another sweep into the same ``--out``) is
reported with the reason, naming the writer, and counted as refused, whatever that writer leaves in the
folder. The closing line counts what the run folders say (complete, failed, unfinished) and the refused
trials, so an interrupted sweep (Ctrl-C, a node lost) says what is left and exits non-zero: 1 when a run
failed or a trial was refused, 130 when runs were left unfinished; rerunning the same command continues.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import socket
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import envs
from baselines import algo_names, load_algo
from baselines.method import Method
from baselines.ray_session import connect_ray
from envs.config import ConfigError, parse_assignments
from suite import files, results, runner
from suite.cli import UsageError, import_user_modules, one_line

__all__ = ["SweepPlan", "SweepEntry", "expand_names", "plan_entries", "plan_sweep", "run_sweep", "is_sweep",
           "MAX_SEEDS", "MAX_SEEDS_WHY"]


#: The most seeds a sweep or study runs of each env, algo and config: every seed is a run of its own (a folder, a
#: Ray Tune trial, minutes to hours of training), and statistics over seeds are tight at a few dozen.
MAX_SEEDS = 1_000
#: Why (a phrase for one-line errors).
MAX_SEEDS_WHY = "each seed is a run of its own of every env and algo; intervals over seeds are tight at a few dozen"


def is_sweep(args) -> bool:
    """A sweep: several envs, algos or seeds (``all``, comma lists, ``references``, ``--seeds``)."""
    return args.seeds is not None or "," in args.env or "," in args.algo or "all" in (args.env, args.algo) \
        or REFERENCES_ALIAS in args.algo.split(",")


#: The algo name that stands for every reference (random_valid, the simple policies, the heuristics and the
#: clairvoyant bounds); a sweep leaves out the ones that do not play an env.
REFERENCES_ALIAS = "references"


def with_references(algos: list[str]) -> list[str]:
    """``algos`` with :data:`REFERENCES_ALIAS` replaced by every reference's name."""
    from baselines.references import REFERENCES

    expanded = [name for algo in algos for name in (REFERENCES if algo == REFERENCES_ALIAS else [algo])]
    return list(dict.fromkeys(expanded))


def expand_names(value: str, known: list[str], what: str) -> list[str]:
    """``all`` or ``a,b`` -> the names, each validated (an unknown one is a one-line ConfigError); for algos,
    ``references`` stands for every reference."""
    if value == "all":
        return list(known)
    parts = [v.strip() for v in value.split(",")]
    if len(parts) > 1 and not all(parts):
        raise ConfigError(f"{what} list {value!r} has an empty name (a comma too many?); give names separated by "
                          "single commas, e.g. a,b")
    names = [v for v in parts if v]
    if what == "algo":
        names = with_references(names)
    unknown = [n for n in names if n not in known]
    if unknown or not names:
        raise ConfigError(f"unknown {what} {unknown[0] if unknown else value!r}; known {what}s: {', '.join(known)} "
                          f"(or all" + (f", or {REFERENCES_ALIAS}" if what == "algo" else "") + ")")
    return list(dict.fromkeys(names))


@dataclass
class SweepPlan:
    """What a sweep will do: runs to start and runs left out (with why)."""

    runs: list[Any]
    left_out: list[str]
    overwrite: bool = False
    trust: bool = False


@dataclass(frozen=True)
class SweepEntry:
    """One run of a sweep, before it is validated: env, algo, seed and their config overrides."""

    env: str
    algo: str
    seed: int
    env_config: tuple[tuple[str, Any], ...] = ()
    algo_config: tuple[tuple[str, Any], ...] = ()
    steps: int | None = None


def plan_entries(entries: list[SweepEntry], build, *, overwrite: bool, strict_pairs: bool = False,
                 trust: bool = False) -> SweepPlan:
    """Validate ``entries`` into runs; ``build(entry)`` makes its RunRequest.

    Pairs an algo cannot run are left out with the reason (refused when ``strict_pairs``: the one pair
    asked for); complete runs are left out, and so are runs whose training diverged (a result of their settings,
    counted as such by :mod:`suite.report` and :mod:`suite.tuning`; a rerun would only repeat it) unless
    ``overwrite``; a run that failed any other way runs again. A folder holding a run of another identity is
    refused before any trial starts.
    """
    runs, left_out, reasons = [], [], {}
    for entry in entries:
        key = (entry.env, entry.algo, entry.env_config, entry.algo_config)
        if key not in reasons:
            env_config = envs.config_dict(entry.env, dict(entry.env_config))
            backend = dict(entry.algo_config).get("backend")
            entry_point = load_algo(entry.algo)
            reasons[key] = entry_point.incompatibility(entry.env, env_config, backend) \
                if backend and isinstance(entry_point, Method) else entry_point.incompatibility(entry.env, env_config)
            if reasons[key]:
                if strict_pairs:
                    raise ConfigError(reasons[key])
                left_out.append(f"{entry.algo} on {entry.env}: {reasons[key]}")
        if reasons[key]:
            continue
        request = build(entry)
        try:
            state = runner.prepare_directory(request, overwrite=overwrite, resume=not overwrite, trust=trust)
        except UsageError as error:
            raise UsageError(f"sweep: {error}") from None
        if state == runner.COMPLETE:
            left_out.append(f"{request.label}: already complete")
            continue
        diverged = None if overwrite else _diverged_before(request)
        if diverged:
            left_out.append(f"{request.label}: its training diverged when it ran ({diverged}), an outcome of its "
                            "settings that running it again repeats; kept as it is (remove its folder to run it "
                            "again)")
            continue
        runs.append(request)
    return SweepPlan(runs, left_out, overwrite, trust)


def plan_sweep(args, request_for, algo_config: dict[str, Any] | None = None) -> SweepPlan:
    """Expand the command line's envs, algos and seeds into runs; ``request_for(env, algo, seed)`` builds one
    (``algo_config``: the command line's algo overrides, for the pairs' checks)."""
    env_names = expand_names(args.env, envs.names(), "env")
    algos = expand_names(args.algo, algo_names(), "algo")
    first = args.seed or 0
    env_config = tuple(parse_assignments(args.env_config).items())
    overrides = tuple((algo_config or {}).items())
    entries = [SweepEntry(env, algo, seed, env_config, overrides) for env in env_names for algo in algos
               for seed in range(first, first + (args.seeds or 1))]
    return plan_entries(entries, lambda entry: request_for(entry.env, entry.algo, entry.seed),
                        overwrite=args.overwrite, strict_pairs=len(env_names) == 1 and len(algos) == 1,
                        trust=getattr(args, "trust", False))


#: The file a sweep's driver writes into ``--out`` and every trial looks for before it starts, one per sweep
#: (``NODE_CHECK + sweep_id``) so that two sweeps into one folder at once do not take each other's for missing.
NODE_CHECK = ".maskbench-sweep-"


#: Tune's bookkeeping folder of a sweep, in ``--out`` (removed at the end; a killed driver's by the next sweep).
TUNE_FOLDER = ".tune-"


def _read_marker(marker: Path) -> dict[str, Any] | None:
    """A sweep marker's record (its driver's ``sweep_id``, ``host`` and ``pid``), or None where the file cannot
    be read or is not a JSON object."""
    try:
        record = json.loads(marker.read_text())
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) else None


def _marker_ids(out: Path) -> set[str]:
    """The ids of the sweeps whose marker (:data:`NODE_CHECK`) is in ``out`` and names its own id."""
    found = set()
    for marker in out.glob(f"{NODE_CHECK}*"):
        record = _read_marker(marker)
        if record is not None and marker.name == f"{NODE_CHECK}{record.get('sweep_id')}":
            found.add(record["sweep_id"])
    return found


def remove_dead_sweeps_leftovers(out: Path) -> list[str]:
    """Remove what a sweep driver killed on this host left in ``out``: its marker and its Tune folder (both
    named by its id). A sweep whose driver runs (here, or on another host, which cannot be checked) keeps
    both. Returns the names removed."""
    host, removed = socket.gethostname(), []
    for marker in sorted(out.glob(f"{NODE_CHECK}*")):
        sweep_id = marker.name[len(NODE_CHECK):]
        if not re.fullmatch(r"[0-9a-f]{32}", sweep_id) or marker.is_symlink() or not marker.is_file():
            continue
        record = _read_marker(marker) or {}  # unreadable or empty: no driver to ask, removed
        if record and (record.get("host") != host or not isinstance(record.get("pid"), int)
                       or files.process_alive(record["pid"])):
            continue  # a live sweep, or another host's: not ours to judge
        tune_folder = out / f"{TUNE_FOLDER}{sweep_id}"
        if tune_folder.is_dir() and not tune_folder.is_symlink():
            shutil.rmtree(tune_folder, ignore_errors=True)
            removed.append(tune_folder.name)
        marker.unlink(missing_ok=True)
        removed.append(marker.name)
    return removed


def trial_cause(error: BaseException | str | None) -> str:
    """One line saying why a trial failed: the original exception of a task that raised (Ray wraps it with
    the remote traceback), else the first line of Ray's message (a node or worker that died: Ray goes on with
    lines of its own state, the raylet's, which say nothing to the user)."""
    if error is None:
        return "the trial failed"
    cause = getattr(error, "cause", None)
    if isinstance(cause, BaseException):
        return f"{type(cause).__name__}: {one_line(cause)}"
    text = str(error)
    if "Traceback" in text:  # a task's error as text: its last line is the exception
        lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
        return lines[-1] if lines else "the trial failed"
    return one_line(text) if text.strip() else type(error).__name__


#: The key of a trial's result that says its run was refused before it started (the one-line reason).
REFUSED = "refused"


def _trial(config: dict[str, Any], runs: list[Any], options: dict[str, Any]) -> None:
    """One Tune trial: one suite run (its files are the result; Tune only keeps the status). A run refused
    before it started (:class:`UsageError`: its folder is being written by another run) is reported as
    ``{REFUSED: reason}``, not raised: the driver prints the reason, which Tune's error would not carry."""
    from ray import tune

    if options["sweep_id"] not in _marker_ids(Path(options["out"])):
        raise runner.RunFailed(f"this node does not see {options['out']}, the sweep's --out on the driver: on a "
                               "cluster --out must be on storage every node shares (the same path on each)")
    import_user_modules(options["imports"])  # the user's envs and algos, in this worker too
    request = runs[config["index"]]
    try:
        frame = runner.execute(request, overwrite=options["overwrite"], resume=not options["overwrite"],
                               checkpoint_every=options["checkpoint_every"], quiet=True,
                               eval_every=options["eval_every"], trust=options["trust"])
    except UsageError as error:  # nothing was written: e.g. another run holds the folder's lock
        tune.report({REFUSED: str(error)})
        return
    headline = frame[(frame["policy"] == frame["policy"].iloc[0]) & (frame["mask"] == frame["mask"].iloc[0])]
    tune.report({"return_mean": float(headline["return"].mean()),
                 "policy": f"{headline['policy'].iloc[0]}, mask {headline['mask'].iloc[0]}"})


def run_status(request, trial_error: str | None = None) -> str:
    """``complete``, ``failed`` or ``unfinished``: what the run's folder says, and ``trial_error``, the error
    Tune reported for its trial. A run that wrote its error file failed; so did a trial that errored before its
    run started (no config.json: e.g. its node cannot see ``--out``), which a rerun would not cure. A trial
    that errored after its run started (its node died) left an unfinished run that a rerun resumes."""
    if results.is_complete(request.directory):
        return "complete"
    if (request.directory / results.ERROR_FILE).is_file():
        return "failed"
    if trial_error is not None and not (request.directory / results.CONFIG_FILE).is_file():
        return "failed"
    return "unfinished"


def _diverged_before(request) -> str | None:
    """The error line of the run's folder if its training diverged (:data:`suite.results.DIVERGED`), else None.
    Not read through a symbolic link (a received folder's error.txt must not print a file of the user's)."""
    error_file = request.directory / results.ERROR_FILE
    if error_file.is_symlink() or not error_file.is_file():
        return None
    line = last_error_line(request)
    return line if results.DIVERGED in line else None


def last_error_line(request, trial_error: str | None = None) -> str:
    """The last line of the run's error file, else of its trial's error."""
    error_file = request.directory / results.ERROR_FILE
    lines = error_file.read_text(errors="replace").strip().splitlines() if error_file.is_file() else []
    lines = lines or [line for line in str(trial_error or "").strip().splitlines() if line.strip()]
    return lines[-1].strip() if lines else "see Ray's logs"


def run_sweep(args, plan: SweepPlan) -> int:
    """Run the plan's trials through Ray Tune; one line per finished trial and a closing count of what the
    run folders hold (see the module docstring for the exit status)."""
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
    labels = [request.label for request in plan.runs]
    out = Path(args.out).absolute()
    out.mkdir(parents=True, exist_ok=True)
    for name in remove_dead_sweeps_leftovers(out):
        print(f"removed {name}: left in {out} by a sweep whose driver was killed", file=sys.stderr)
    sweep_id = uuid.uuid4().hex
    files.atomic_write_json(out / f"{NODE_CHECK}{sweep_id}",
                            {"sweep_id": sweep_id, "pid": os.getpid(), "host": socket.gethostname()})

    class Progress(Callback):
        def __init__(self):
            self.bar = tqdm(total=len(plan.runs), unit="run", desc="sweep", disable=args.quiet or None)

        def on_trial_complete(self, iteration, trials, trial, **info):
            self.bar.update()
            result, index = trial.last_result, trial.config["index"]
            if result.get(REFUSED):
                refusals[index] = result[REFUSED]
                self.bar.write(f"REFUSED: {labels[index]}: {refusals[index]}")
                return
            self.bar.write(f"done: {labels[index]} (mean return "
                           f"{result.get('return_mean', float('nan')):,.4g}, {result.get('policy', '?')} policy)")

        def on_trial_error(self, iteration, trials, trial, **info):
            self.bar.update()
            index = trial.config["index"]
            trial_errors[index] = trial_cause(trial.get_error())
            self.bar.write(f"FAILED: {labels[index]}: {last_error_line(plan.runs[index], trial_errors[index])}")

    interrupted = False
    trial_errors: dict[int, str] = {}
    refusals: dict[int, str] = {}
    owns_ray = connect_ray(args.address, num_cpus=os.cpu_count() or 1)
    storage = out / f"{TUNE_FOLDER}{sweep_id}"  # Tune's own bookkeeping, removed at the end
    storage.mkdir(mode=0o700)
    try:
        progress = Progress()
        tuner = tune.Tuner(
            tune.with_resources(tune.with_parameters(_trial, runs=plan.runs,
                                                     options={"checkpoint_every": args.checkpoint_every,
                                                              "eval_every": args.eval_every,
                                                              "imports": list(args.imports), "out": str(out),
                                                              "sweep_id": sweep_id, "overwrite": plan.overwrite,
                                                              "trust": plan.trust}),
                                {"cpu": 1}),
            param_space={"index": tune.grid_search(list(range(len(plan.runs))))},
            tune_config=TuneConfig(max_concurrent_trials=args.max_concurrent),
            run_config=RunConfig(name="sweep", storage_path=str(storage), verbose=0, callbacks=[progress],
                                 failure_config=FailureConfig(max_failures=0, fail_fast=False)))
        try:
            grid = tuner.fit()
        except KeyboardInterrupt:
            interrupted = True
        else:  # Tune's errors as the trials ended (its callbacks run before it records them)
            trial_errors.update({result.config["index"]: trial_cause(result.error) for result in grid
                                 if result.error is not None and result.config})
        progress.bar.close()
    finally:
        shutil.rmtree(storage, ignore_errors=True)
        (out / f"{NODE_CHECK}{sweep_id}").unlink(missing_ok=True)
        if owns_ray:
            import ray

            ray.shutdown()
    status = [REFUSED if index in refusals else run_status(request, trial_errors.get(index))
              for index, request in enumerate(plan.runs)]
    counts = {kind: status.count(kind) for kind in ("complete", "failed", "unfinished", REFUSED)}
    print(f"sweep: {counts['complete']} of {len(plan.runs)} run(s) complete, {counts['failed']} failed, "
          f"{counts['unfinished']} unfinished, " + (f"{counts[REFUSED]} refused, " if counts[REFUSED] else "") +
          f"{len(plan.left_out)} left out; results under {out} (python -m suite.report {out})")
    for index, (label, request) in enumerate(zip(labels, plan.runs)):
        if status[index] == REFUSED:
            print(f"refused: {label}: {refusals[index]}", file=sys.stderr)
        elif status[index] == "failed":
            print(f"failed: {label}: {last_error_line(request, trial_errors.get(index))}", file=sys.stderr)
        elif status[index] == "unfinished":
            print(f"unfinished: {label} ({request.directory})", file=sys.stderr)
    if counts["unfinished"]:
        print(f"sweep {'interrupted' if interrupted else 'stopped'} with {counts['unfinished']} run(s) unfinished; "
              "run the same command again to continue them", file=sys.stderr)
    return 1 if counts["failed"] or counts[REFUSED] else 130 if counts["unfinished"] else 0
