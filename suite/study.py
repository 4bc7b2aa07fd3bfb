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

from suite import runner, sweep
from suite.cli import Parser, UsageError, add_import_flag, import_user_modules, positive_int, run_cli

__all__ = ["STUDIES", "load_study", "study_entries", "main"]

#: The suite's own studies.
STUDIES = Path(__file__).parent / "studies"
_STUDY_KEYS = {"description", "seeds", "episodes", "eval_every", "group"}
_GROUP_KEYS = {"envs", "algos", "steps", "seeds", "algo_config", "env_config", "grid"}


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
    """The study file, its keys checked (one line naming what is wrong)."""
    try:
        study = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as error:
        raise UsageError(f"cannot read study {str(path)!r}: {error}") from None
    unknown = set(study) - _STUDY_KEYS
    if unknown:
        keys = ", ".join(sorted(_STUDY_KEYS))
        raise UsageError(f"study {path.name}: unknown key {sorted(unknown)[0]!r}; keys: {keys}")
    if not study.get("group"):
        raise UsageError(f"study {path.name}: no [[group]] of runs")
    _check_count(study, "seeds", f"study {path.name}")
    for number, group in enumerate(study["group"], 1):
        unknown = set(group) - _GROUP_KEYS
        if unknown or not group.get("envs") or not group.get("algos"):
            extra = f" (unknown: {sorted(unknown)[0]!r})" if unknown else ""
            raise UsageError(f"study {path.name}, group {number}: needs envs and algos; keys: "
                             f"{', '.join(sorted(_GROUP_KEYS))}{extra}")
        _check_count(group, "seeds", f"study {path.name}, group {number}")
    return study


def _check_count(table: dict[str, Any], key: str, where: str) -> None:
    """``table[key]``, when present, is a positive integer (TOML's bool is not one)."""
    value = table.get(key, 1)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise UsageError(f"{where}: {key} must be a positive integer, got {value!r}")


def study_entries(study: dict[str, Any]) -> list[sweep.SweepEntry]:
    """Every run of the study, in the order the file lists them (seeds innermost)."""
    entries = []
    for group in study["group"]:
        grid = group.get("grid", {})
        combinations = [dict(zip(grid, values)) for values in itertools.product(*grid.values())] or [{}]
        for env in group["envs"]:
            for algo in sweep.with_references(group["algos"]):
                for combination in combinations:
                    algo_config = {**group.get("algo_config", {}), **combination}
                    for seed in range(int(group.get("seeds", study.get("seeds", 1)))):
                        entries.append(sweep.SweepEntry(env, algo, seed, _frozen(group.get("env_config", {})),
                                                        _frozen(algo_config), group.get("steps")))
    return entries


def _frozen(config: dict[str, Any]) -> tuple[tuple[str, Any], ...]:
    """A config as the hashable pairs a sweep entry holds (TOML lists, e.g. ``hidden = [64, 64]``, as tuples)."""
    return tuple((key, tuple(value) if isinstance(value, list) else value) for key, value in config.items())


def build_parser() -> Parser:
    parser = Parser(prog="python -m suite.study", description=__doc__.split("\n\n")[0])
    parser.add_argument("study", help="a study file, or the name of one of the suite's (e.g. scaling)")
    parser.add_argument("--out", default=None, help="results folder (default: results/<study name>)")
    parser.add_argument("--address", default=None, metavar="ADDR", help="run on the Ray cluster at ADDR")
    parser.add_argument("--max-concurrent", type=positive_int, default=1, metavar="K", help="at most K runs at once")
    parser.add_argument("--checkpoint-every", type=positive_int, default=10, help="checkpoint every N iterations")
    parser.add_argument("--overwrite", action="store_true", help="run complete runs again")
    parser.add_argument("--trust", action="store_true",
                        help="resume checkpoints this user did not write on this machine (they hold pickled state)")
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
                                       command=command)

    plan = sweep.plan_entries(study_entries(study), build, overwrite=args.overwrite, trust=args.trust)
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
