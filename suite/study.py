"""``python -m suite.study STUDY``: run a study, a sweep written down as data (bsuite style).

A study file (TOML; the suite's own are in ``suite/studies/``, and ``STUDY`` may name one of them) lists
groups of runs; each group is the cross product of its ``envs``, its ``algos``, the study's ``seeds``
and, when it has one, its ``grid`` (one run per combination of the listed config values)::

    description = "..."
    seeds = 3                # seeds 0, 1, 2 of every run (a group's own ``seeds`` overrides it)
    episodes = 50            # evaluation episodes per policy
    eval_every = 5           # periodic evaluations (the report's learning curves and times to a score)

    [[group]]
    envs = ["portfolio", "portfolio-m"]
    algos = ["masked_ppo", "naive_masked_ppo"]
    steps = 200000
    seeds = 5                # optional: this group's seed count
    algo_config = { backend = "torch", hidden = [64, 64] }
    env_config = {}
    grid = { penalty = [0.001, 0.01] }   # optional

Seeds start at ``first_seed`` (default 0; study-wide or per group): a study on fresh seeds says so. A tuning
study (:mod:`suite.tuning`) draws its groups' configs instead of listing them, ``search = { trials = 8,
seed = 0 }``: ``trials`` configs per (env, algo) from the method's search space
(:mod:`baselines.search_spaces`), and evaluates on episodes of its own, ``eval_seed_base = 2000000`` (the
evaluation episodes' first env seed; default 1,000,000, every other run's).

It runs like any sweep (:mod:`suite.sweep`): through Ray Tune, locally or on ``--address``, leaving out
pairs that cannot run, skipping complete runs and resuming unfinished ones, so rerunning the same
study continues it. ``--dry-run`` lists the runs it would start.
"""

from __future__ import annotations

import itertools
import sys
import types
from collections.abc import Sequence
from pathlib import Path
from typing import Any

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

import envs
from baselines import EVAL_SEED_BASE, algo_names
from envs.config import ConfigError
from suite import runner, sweep, tuning
from suite.cli import MAX_INT64, Parser, UsageError, add_import_flag, folder, import_user_modules, positive_int, run_cli

__all__ = ["STUDIES", "load_study", "study_problems", "study_entries", "main"]

#: The suite's own studies.
STUDIES = Path(__file__).parent / "studies"
_STUDY_KEYS = {"description", "seeds", "first_seed", "episodes", "eval_every", "eval_seed_base", "group"}
_GROUP_KEYS = {"envs", "algos", "steps", "seeds", "first_seed", "algo_config", "env_config", "grid", "search"}
_SEARCH_KEYS = {"trials", "seed"}


def study_path(name: str) -> Path:
    """A study file: a path, or the name of one in ``suite/studies/``."""
    path = Path(name)
    if path.is_file():
        return path
    own = STUDIES / f"{name}.toml"
    if own.is_file():
        return own
    known = ", ".join(sorted(p.stem for p in STUDIES.glob("*.toml")))
    raise UsageError(f"no study {name!r}: give a study file's path or one of the suite's studies ({known})")


def load_study(path: Path) -> dict[str, Any]:
    """The study file, checked whole against the schema before anything runs: every problem found is one line
    naming the key (and its group), all of them in one ``UsageError``."""
    try:
        study = tomllib.loads(path.read_text())
    except UnicodeDecodeError:
        raise UsageError(f"cannot read study {str(path)!r}: it is not a text file (a study is TOML)") from None
    except (OSError, tomllib.TOMLDecodeError) as error:
        raise UsageError(f"cannot read study {str(path)!r}: {error}") from None
    problems = study_problems(study, path.name)
    if problems:
        raise UsageError("\n".join(problems))
    return study


#: What a study's counts accept: (lowest, highest, words for the error). Seeds are a sweep's
#: (:data:`suite.sweep.MAX_SEEDS`); a budget and episodes must fit 64 bits (and the runs check episodes against
#: the memory there is, before any starts).
_COUNTS = {"seeds": (1, sweep.MAX_SEEDS, "a positive integer"),
           "first_seed": (0, MAX_INT64 - sweep.MAX_SEEDS, "a non-negative integer"),
           "eval_seed_base": (0, runner.MAX_EVAL_SEED_BASE, "a non-negative integer (the first evaluation env seed)"),
           "trials": (1, 1_000, "a positive integer (configs drawn per env and algo)"),
           "seed": (0, 2**31 - 1, "a non-negative integer (the search's random seed)"),
           "episodes": (1, MAX_INT64, "a positive integer"),
           "eval_every": (0, MAX_INT64, "a non-negative integer (0: evaluate only at the end)"),
           "steps": (1, MAX_INT64, "a positive integer (env steps)")}


def _count_problem(key: str, value: Any) -> str | None:
    low, high, words = _COUNTS[key]
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        return f"{key} must be {words}, got {value!r}"
    if value > high:
        why = sweep.MAX_SEEDS_WHY if key == "seeds" else "it must fit a 64-bit integer"
        return f"{key} must be at most {high:,} ({why}), got {value:,}"
    return None


def _is_scalar(value: Any) -> bool:
    return isinstance(value, (str, int, float, bool))


def _value_problem(value: Any) -> str | None:
    """A config value: a TOML string, number or boolean, or a list of them (e.g. ``hidden = [64, 64]``)."""
    if _is_scalar(value) or (isinstance(value, list) and all(_is_scalar(v) for v in value)):
        return None
    return f"must be a value or a list of values (e.g. hidden = [64, 64]), got {value!r}"


def _names_problem(names: Any, key: str) -> str | None:
    """``envs`` / ``algos``: a non-empty list of registered names (algos: or ``references``)."""
    if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
        example = "portfolio" if key == "envs" else "masked_ppo"
        return f'{key} must be a non-empty list of names, e.g. {key} = ["{example}"], got {names!r}'
    known = envs.names() if key == "envs" else [*algo_names(), sweep.REFERENCES_ALIAS]
    unknown = [n for n in names if n not in known]
    if unknown:
        what = key[:-1]
        return f"unknown {what} {unknown[0]!r}; known {what}s: {', '.join(known)}"
    return None


def study_problems(study: dict[str, Any], name: str) -> list[str]:
    """Every way ``study`` (a parsed study file called ``name``) breaks the schema, one line each naming the key
    and its group: the keys known, the counts integers in range, ``envs`` and ``algos`` lists of known names,
    ``algo_config`` and ``env_config`` tables of values, ``grid`` a table of non-empty lists of values. (The
    values themselves are each algo's and env's to accept: the runs are built, all of them, before any starts.)"""
    where = f"study {name}"
    problems = []
    unknown = sorted(set(study) - _STUDY_KEYS)
    if unknown:
        problems.append(f"{where}: unknown key {unknown[0]!r}; keys: {', '.join(sorted(_STUDY_KEYS))}")
    if "description" in study and not isinstance(study["description"], str):
        problems.append(f"{where}: description must be a string, got {study['description']!r}")
    problems += [f"{where}: {problem}" for key in ("seeds", "first_seed", "episodes", "eval_every", "eval_seed_base")
                 if key in study
                 for problem in [_count_problem(key, study[key])] if problem]
    groups = study.get("group")
    if not groups:
        return [*problems, f"{where}: no [[group]] of runs"]
    if not isinstance(groups, list) or not all(isinstance(group, dict) for group in groups):
        return [*problems, f"{where}: group must be tables of runs, each a [[group]] with envs and algos; got "
                           f"group = {groups!r}"]
    for number, group in enumerate(groups, 1):
        problems += _group_problems(group, f"{where}, group {number}")
    return problems


def _group_problems(group: dict[str, Any], here: str) -> list[str]:
    problems = []
    unknown = sorted(set(group) - _GROUP_KEYS)
    if unknown or "envs" not in group or "algos" not in group:
        extra = f" (unknown: {unknown[0]!r})" if unknown else ""
        problems.append(f"{here}: needs envs and algos; keys: {', '.join(sorted(_GROUP_KEYS))}{extra}")
    problems += [f"{here}: {problem}" for key in ("envs", "algos") if key in group
                 for problem in [_names_problem(group[key], key)] if problem]
    problems += [f"{here}: {problem}" for key in ("steps", "seeds", "first_seed") if key in group
                 for problem in [_count_problem(key, group[key])] if problem]
    search = group.get("search")
    if search is not None:
        if not isinstance(search, dict) or "trials" not in search or set(search) - _SEARCH_KEYS:
            problems.append(f"{here}: search must be a table search = {{ trials = N, seed = S }} (seed optional), "
                            f"got {search!r}")
        else:
            problems += [f"{here}: search.{problem}" for key in _SEARCH_KEYS if key in search
                         for problem in [_count_problem(key, search[key])] if problem]
        if "grid" in group:
            problems.append(f"{here}: a group either lists its configs (grid) or draws them (search), not both")
        if sweep.REFERENCES_ALIAS in group.get("algos", []):
            problems.append(f"{here}: search tunes learning methods; references have nothing to tune")
    for key in ("algo_config", "env_config"):
        table = group.get(key, {})
        if not isinstance(table, dict):
            problems.append(f"{here}: {key} must be a table of KEY = value, e.g. {key} = {{ lr = 0.001 }}, got "
                            f"{table!r}")
            continue
        problems += [f"{here}: {key}.{k} {problem}" for k, v in table.items()
                     for problem in [_value_problem(v)] if problem]
    grid = group.get("grid", {})
    if not isinstance(grid, dict):
        return [*problems, f"{here}: grid must be a table of KEY = [values], e.g. grid = {{ penalty = [0.01, 0.1] }}, "
                           f"got {grid!r}"]
    for k, values in grid.items():
        if not isinstance(values, list):
            problems.append(f"{here}: grid.{k} must be a list of the values to run (e.g. {k} = [{values!r}]), got "
                            f"{values!r}")
        elif not values:
            problems.append(f"{here}: grid.{k} lists no value, so the group would run nothing; list one or more")
        else:
            problems += [f"{here}: grid.{k} value {i + 1} {problem}" for i, v in enumerate(values)
                         for problem in [_value_problem(v)] if problem]
    return problems


def study_entries(study: dict[str, Any]) -> list[sweep.SweepEntry]:
    """Every run of the study, in the order the file lists them (seeds innermost), each once: a run that two
    groups list (``references`` stands for ``random_valid`` too, which a group of its own may run at more
    seeds) is the same run, started once where the file first lists it. A ``search`` group's configs are drawn
    per (env, algo) (:func:`suite.tuning.trial_configs`; a one-line ``ConfigError`` where that cannot be)."""
    entries = []
    for group in study["group"]:
        grid = group.get("grid", {})
        combinations = [dict(zip(grid, values)) for values in itertools.product(*grid.values())] or [{}]
        first = int(group.get("first_seed", study.get("first_seed", 0)))
        seeds = range(first, first + int(group.get("seeds", study.get("seeds", 1))))
        for env in group["envs"]:
            for algo in sweep.with_references(group["algos"]):
                if "search" in group:
                    search = group["search"]
                    configs = tuning.trial_configs(env, algo, group.get("algo_config", {}),
                                                   group.get("env_config", {}), int(search["trials"]),
                                                   int(search.get("seed", 0)))
                else:
                    configs = [{**group.get("algo_config", {}), **combination} for combination in combinations]
                for algo_config in configs:
                    for seed in seeds:
                        entries.append(sweep.SweepEntry(env, algo, seed, _frozen(group.get("env_config", {})),
                                                        _frozen(algo_config), group.get("steps")))
    return list(dict.fromkeys(entries))


def _only_envs(entries: list[sweep.SweepEntry], names: str, study_name: str) -> list[sweep.SweepEntry]:
    """The ``entries`` on the comma-separated env ``names``, each of which the study must run (refused in one
    line otherwise, naming the study's envs). A run's config, seeds and folder do not depend on which others
    run beside it (a search group draws its trials per env and algo), so a filtered study runs the same runs."""
    wanted = [name.strip() for name in names.split(",")]
    known = list(dict.fromkeys(entry.env for entry in entries))
    unknown = [name for name in wanted if name and name not in known]
    if "" in wanted or unknown:
        problem = f"study {study_name} runs no env {unknown[0]!r}" if unknown else "an empty env name"
        raise UsageError(f"--env {names!r}: {problem}; its envs: {', '.join(known)} (comma-separated)")
    return [entry for entry in entries if entry.env in wanted]


def _frozen(config: dict[str, Any]) -> tuple[tuple[str, Any], ...]:
    """A config as the hashable pairs a sweep entry holds (TOML lists, e.g. ``hidden = [64, 64]``, as tuples)."""
    return tuple((key, tuple(value) if isinstance(value, list) else value) for key, value in config.items())


def build_parser() -> Parser:
    parser = Parser(prog="python -m suite.study", description=__doc__.split("\n\n")[0])
    parser.add_argument("study", help="a study file, or the name of one of the suite's (e.g. scaling)")
    parser.add_argument("--out", type=folder, default=None, help="results folder (default: results/<study name>)")
    parser.add_argument("--address", default=None, metavar="ADDR", help="run on the Ray cluster at ADDR")
    parser.add_argument("--max-concurrent", type=positive_int, default=1, metavar="K", help="at most K runs at once")
    parser.add_argument("--checkpoint-every", type=positive_int, default=10, help="checkpoint every N iterations")
    parser.add_argument("--overwrite", action="store_true", help="run complete runs again")
    parser.add_argument("--trust", action="store_true",
                        help="resume checkpoints this user did not write on this machine (they hold pickled state)")
    parser.add_argument("--env", default=None, metavar="NAMES",
                        help="only the study's runs on these envs (comma-separated; e.g. a level tuned later, or "
                             "a share of the study for another machine): the same runs, in the same folders")
    parser.add_argument("--dry-run", action="store_true", help="list the runs it would start, and stop")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    add_import_flag(parser)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    import_user_modules(args.imports)
    path = study_path(args.study)
    study = load_study(path)
    out = Path(args.out or Path("results") / path.stem)
    command = " ".join(["python", "-m", "suite.study", *(sys.argv[1:] if argv is None else argv)])

    def build(entry: sweep.SweepEntry) -> runner.RunRequest:
        return runner.RunRequest.build(entry.env, entry.algo, entry.seed, out=out, env_config=dict(entry.env_config),
                                       algo_config=dict(entry.algo_config), steps=entry.steps,
                                       episodes=int(study.get("episodes", 100)), address=args.address,
                                       command=command,
                                       eval_seed_base=int(study.get("eval_seed_base", EVAL_SEED_BASE)))

    try:
        entries = study_entries(study)
    except ConfigError as error:
        raise UsageError(f"study {path.name}: {error}") from None
    if args.env is not None:
        entries = _only_envs(entries, args.env, path.name)
    plan = sweep.plan_entries(entries, build, overwrite=args.overwrite, trust=args.trust)
    if args.dry_run:
        for request in plan.runs:
            print(f"{request.algo} on {request.env}, seed {request.seed}, {request.steps:,} steps: {request.directory}")
        for line in plan.left_out:
            print(f"left out: {line}")
        print(f"{len(plan.runs)} run(s) to start, {len(plan.left_out)} left out")
        return 0
    options = types.SimpleNamespace(out=str(out), address=args.address, max_concurrent=args.max_concurrent,
                                    checkpoint_every=args.checkpoint_every, eval_every=int(study.get("eval_every", 5)),
                                    imports=list(args.imports), quiet=args.quiet)
    return sweep.run_sweep(options, plan)


if __name__ == "__main__":
    sys.exit(run_cli(main, "python -m suite.study"))
