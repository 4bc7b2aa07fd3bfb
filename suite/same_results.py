"""``python -m suite.same_results OLD NEW``: do two results folders hold the same runs, timing aside?

The proof that a refactor preserves behaviour: run the same seeded runs before and after the change
(``--make OUT`` runs the standard set below: every env with random_valid, its upper reference, masked and
penalty PPO on both backends where they apply, normalize_ppo, sb3_maskable_ppo and several-agent
runs, seed 0, 16,384 env steps, 10 evaluation episodes, an evaluation every iteration), then compare
the folders. Runs are matched by env, algo and seed and the env and algo config keys both records
have (a key added by the change, with its default, does not hide a run); ``progress.csv`` must be
identical but for its timing columns, ``eval.csv`` identical, in every column the old files have
(columns added by the change are new results). Exits 1 on any difference or unmatched run.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from baselines.references import ORACLE_RENAMED
from suite import files, results, runner
from suite.cli import Parser, UsageError, run_cli

__all__ = ["REGRESSION_SET", "TIMING_COLUMNS", "compare", "make", "main"]

#: Columns that measure time, not behaviour.
TIMING_COLUMNS = ("wall_seconds", "env_steps_per_second", "agent_steps_per_second", "enforcement_share")

#: (env, algo, env config, algo config, sub-folder): the runs ``--make`` produces.
REGRESSION_SET: list[tuple[str, str, dict[str, str], dict[str, str], str]] = [
    *[(env, algo, {}, {}, "") for env in ("portfolio", "speed_limit", "sum_to_zero")
      for algo in ("random_valid", ORACLE_RENAMED[env], "masked_ppo", "penalty_ppo")],
    ("sum_to_zero", "normalize_ppo", {}, {}, ""),
    *[(env, algo, {}, {"backend": "torch"}, "torch") for env in ("portfolio", "speed_limit")
      for algo in ("masked_ppo", "penalty_ppo")],
    *[(env, "sb3_maskable_ppo", {}, {}, "") for env in ("portfolio", "speed_limit")],
    ("portfolio", "masked_ppo", {"n_agents": "3"}, {}, "ma"),
    ("portfolio", "masked_ppo", {"n_agents": "3"}, {"backend": "torch"}, "ma_torch"),
    ("speed_limit", "penalty_ppo", {"n_agents": "2"}, {"backend": "torch"}, "ma_torch"),
    ("portfolio", "random_valid", {"n_agents": "3"}, {}, "ma"),
]


def make(out: Path, steps: int = 16_384, episodes: int = 10) -> None:
    """Run :data:`REGRESSION_SET` (seed 0) into ``out``; complete runs are kept."""
    for env, algo, env_config, algo_config, folder in REGRESSION_SET:
        request = runner.RunRequest.build(env, algo, 0, out=out / folder if folder else out, env_config=env_config,
                                          algo_config=algo_config, steps=steps, episodes=episodes,
                                          command="python -m suite.same_results --make")
        if runner.prepare_directory(request, overwrite=False, resume=True) == runner.COMPLETE:
            continue
        print(f"{algo} on {env} {env_config or ''} {algo_config or ''}".rstrip(), flush=True)
        runner.execute(request, resume=True, checkpoint_every=10, quiet=True, eval_every=1)


def _runs(root: Path) -> list[tuple[Path, dict]]:
    folders = sorted({p.parent for p in root.rglob(results.CONFIG_FILE) if results.CHECKPOINT_DIR not in p.parts})
    return [(folder, json.loads((folder / results.CONFIG_FILE).read_text())) for folder in folders]


def _same_run(a: dict, b: dict) -> bool:
    a, b = files.json_safe(a), files.json_safe(b)  # "inf" and Infinity, as older config.json files wrote it
    if any(a.get(k) != b.get(k) for k in ("env", "algo", "seed")):
        return False
    return all(a[part][k] == b[part][k] for part in ("env_config", "algo_config")
               for k in a[part].keys() & b[part].keys())


def _frames_differ(old: Path, new: Path, name: str, ignore: Sequence[str]) -> str | None:
    a = pd.read_csv(old / name, dtype=str, keep_default_na=False)
    b = pd.read_csv(new / name, dtype=str, keep_default_na=False)
    a = a.drop(columns=[c for c in ignore if c in a])
    b = b.drop(columns=[c for c in ignore if c in b])
    missing = [c for c in a.columns if c not in b.columns]
    if missing:
        return f"{name} lost columns: {missing}"
    b = b[list(a.columns)]  # columns added since are new results, not a changed one
    if a.shape != b.shape:
        return f"{name} has {len(a)} rows before, {len(b)} after"
    diff = (a != b).to_numpy()
    if diff.any():
        row, col = (int(i[0]) for i in diff.nonzero())
        column = a.columns[col]
        return f"{name} row {row} column {column}: {a.iat[row, col]} before, {b.iat[row, col]} after"
    return None


def compare(old_root: Path, new_root: Path) -> list[str]:
    """One line per run of ``old_root``: ``same: ...`` or what differs."""
    new_runs = _runs(new_root)
    lines = []
    for old_dir, old in _runs(old_root):
        label = f"{old['algo']} on {old['env']} {old['env_config'].get('n_agents', 1)} agent(s) " \
                f"{old['algo_config'].get('backend', '')} ({old_dir.relative_to(old_root)})"
        matches = [d for d, record in new_runs if _same_run(old, record)]
        if len(matches) != 1:
            lines.append(f"DIFFERENT {label}: {len(matches)} matching runs in {new_root}")
            continue
        problem = _frames_differ(old_dir, matches[0], results.PROGRESS_FILE, TIMING_COLUMNS) or \
            _frames_differ(old_dir, matches[0], results.EVAL_FILE, ())
        lines.append(f"DIFFERENT {label}: {problem}" if problem else f"same: {label}")
    return lines


def build_parser() -> Parser:
    parser = Parser(prog="python -m suite.same_results", description=__doc__.split("\n\n")[0])
    parser.add_argument("old", help="results folder made before the change (or, with --make, the folder to fill)")
    parser.add_argument("new", nargs="?", help="results folder made after the change")
    parser.add_argument("--make", action="store_true", help="run the standard set into OLD instead of comparing")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.make:
        make(Path(args.old))
        return 0
    if args.new is None:
        raise UsageError("give two results folders, OLD and NEW (or --make OUT)")
    for root in (args.old, args.new):
        if not Path(root).is_dir():
            raise UsageError(f"no results folder {root!r}")
    lines = compare(Path(args.old), Path(args.new))
    print("\n".join(lines))
    different = sum(line.startswith("DIFFERENT") for line in lines)
    print(f"{len(lines) - different} of {len(lines)} runs the same (timing columns aside)")
    return 1 if different or not lines else 0


if __name__ == "__main__":
    sys.exit(run_cli(main, "python -m suite.same_results"))
