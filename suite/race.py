"""``python -m suite.race --env portfolio``: masked PPO against sb3-contrib's MaskablePPO, same settings.

Each contender trains on the same env for the same budget with the **same PPO hyperparameters**
(the suite's ``PPOSettings`` and per-env defaults: rollout size, minibatch, epochs, network,
learning rate, discount, clipping, entropy), ``--seeds`` seeds each, one run at a time (so none
slows another down), evaluating its greedy masked policy on the fixed evaluation episodes every
``--eval-every`` iterations. It then prints, per contender: env steps per second, and the env
steps and wall seconds until the evaluated mean return first reaches ``--target`` (default: the
env's own target return, e.g. portfolio's $3,000, the post's headline), each the median over the
seeds (a seed that never reaches it counts as infinitely slow, so a median is finite only when most
seeds got there), and each contender's wall time to the target over the baseline's with a 95%
bootstrap interval (:func:`suite.stats.ratio_of_medians_ci`; five seeds or more make it informative).

Contenders: ``masked_ppo`` on RLlib (the default backend), ``masked_ppo`` on the single-process
torch backend, and ``sb3_maskable_ppo`` (needs ``pip install -e ".[compare]"``; left out with a
note otherwise) in its usual set-up (a ``DummyVecEnv`` of single envs), the baseline of the
ratios, and with the suite's batched env (``_batched``), which isolates the learners' own speed.
Runs go to ``<out>/<contender>/`` as ordinary results (``suite.report`` and ``suite.results.load``
read them), and a rerun skips the runs already complete.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

import envs
from baselines import load_algo
from envs.config import parse_assignments
from suite import files, report, results, runner, sweep
from suite.cli import (
    Parser,
    UsageError,
    bounded_int,
    finite_float,
    folder,
    non_negative_int,
    positive_float,
    positive_int,
    printed_table,
    run_cli,
)
from suite.stats import median_with_failures, ratio_of_medians_ci

__all__ = ["CONTENDERS", "main", "race_table", "shown_table"]

#: name -> (algo, its config overrides). The sb3-contrib baseline is its usual set-up (a DummyVecEnv
#: of single envs); "_batched" gives it the suite's batched env instead.
CONTENDERS = {"masked_ppo_rllib": ("masked_ppo", {"backend": "rllib"}),
              "masked_ppo_torch": ("masked_ppo", {"backend": "torch"}),
              "sb3_maskable_ppo": ("sb3_maskable_ppo", {"vec_env": "dummy"}),
              "sb3_maskable_ppo_batched": ("sb3_maskable_ppo", {"vec_env": "batched"})}
BASELINE = "sb3_maskable_ppo"


def build_parser() -> Parser:
    parser = Parser(prog="python -m suite.race", description=__doc__.split("\n\n")[0])
    parser.add_argument("--env", required=True, help="a discrete env (the race is on masked categorical actions)")
    parser.add_argument("--contenders", default=",".join(CONTENDERS),
                        help=f"comma list of: {', '.join(CONTENDERS)}")
    parser.add_argument("--seeds", type=bounded_int(1, sweep.MAX_SEEDS, sweep.MAX_SEEDS_WHY), default=5,
                        help="seeds per contender (0, 1, ...)")
    parser.add_argument("--steps", type=positive_int, default=None,
                        help="training budget per run (default: the algo's)")
    parser.add_argument("--target", type=finite_float, default=None,
                        help="evaluated mean return to reach (default: the env's target return, e.g. portfolio "
                             "3000; required for envs without one)")
    parser.add_argument("--eval-every", type=non_negative_int, default=1, metavar="K",
                        help="evaluate every K iterations (the resolution of the time to target)")
    parser.add_argument("--episodes", type=positive_int, default=100, help="evaluation episodes")
    parser.add_argument("--out", type=folder, default="results/race", help="results folder of the race")
    parser.add_argument("--algo-config", action="append", default=[], metavar="KEY=VALUE",
                        help="PPO setting for every contender, repeatable (keeps them matched)")
    parser.add_argument("--lr", type=positive_float, default=None, help="learning rate of every contender")
    return parser


def race_table(summary: pd.DataFrame, loaded: results.Results, target: float) -> pd.DataFrame:
    """One row per contender: ``suite.report.summarize``'s figures over the race folder, the medians over
    all seeds of env steps and wall seconds to ``target`` (failures infinitely slow) and the ratio of
    wall time to target to the baseline's with its bootstrap interval."""
    done = loaded.complete()
    contender_of = {cid: Path(run).parts[0] for cid, run in zip(done.runs["config_id"], done.runs["run"])}
    progress_of = dict(tuple(done.progress.groupby("run", sort=False)))
    crossings = {}  # contender -> per-seed (env steps, seconds) to target
    for cid, run in zip(done.runs["config_id"], done.runs["run"]):
        crossings.setdefault(contender_of[cid], []).append(report.first_crossing(progress_of[run], target))
    table = pd.DataFrame({
        "contender": summary["config_id"].map(contender_of),
        "seeds": summary["seeds"], "env_steps_per_second": summary["env_steps_per_second"],
        "seeds_reaching": summary["seeds_reaching"], "final_return": summary["return_mean"],
        "final_return_ci_low": summary["return_ci_low"], "final_return_ci_high": summary["return_ci_high"],
        "train_invalid_rate": summary["train_invalid_rate"]})
    table["steps_to_target"] = [median_with_failures([c[0] for c in crossings[name]]) for name in table["contender"]]
    table["seconds_to_target"] = [median_with_failures([c[1] for c in crossings[name]])
                                  for name in table["contender"]]
    baseline = table[table["contender"] == BASELINE]
    if len(baseline):
        base = baseline.iloc[0]
        table["speed_vs_sb3"] = table["env_steps_per_second"] / base["env_steps_per_second"]
        ratios = [ratio_of_medians_ci([c[1] for c in crossings[name]], [c[1] for c in crossings[BASELINE]])
                  for name in table["contender"]]
        table["time_to_target_vs_sb3"] = [r[0] for r in ratios]
        table["time_to_target_vs_sb3_ci_low"] = [r[1] for r in ratios]
        table["time_to_target_vs_sb3_ci_high"] = [r[2] for r in ratios]
    return table.sort_values("contender").reset_index(drop=True)


def _fmt(value: float, pattern: str) -> str:
    return "–" if value is None or (isinstance(value, float) and math.isnan(value)) else format(value, pattern)


def shown_table(table: pd.DataFrame, target: float) -> pd.DataFrame:
    """:func:`race_table` as ``python -m suite.race`` prints it: returns and rates whole with thousands separators,
    ratios to two decimals, each interval after its figure, "–" where there is no figure (no baseline raced)."""
    def cells(column: str, pattern: str) -> pd.Series:
        values = table[column] if column in table else pd.Series(math.nan, index=table.index)
        return values.map(lambda value: _fmt(value, pattern))

    def with_ci(column: str, pattern: str) -> pd.Series:
        return (cells(column, pattern) + " (" + cells(f"{column}_ci_low", pattern) + "–"
                + cells(f"{column}_ci_high", pattern) + ")")

    return pd.DataFrame({"contender": table["contender"], "seeds": table["seeds"].map(str),
                         "env steps/s": cells("env_steps_per_second", ",.0f"),
                         f"seeds reaching {target:,.0f}": table["seeds_reaching"].map(str),
                         "median env steps to target": cells("steps_to_target", ",.0f"),
                         "median wall s to target": cells("seconds_to_target", ",.0f"),
                         "final return (95% CI)": with_ci("final_return", ",.0f"),
                         "× sb3 speed": cells("speed_vs_sb3", ".2f"),
                         "× sb3 time to target (95% CI)": with_ci("time_to_target_vs_sb3", ".2f")})


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    contenders = [c.strip() for c in args.contenders.split(",") if c.strip()]
    unknown = [c for c in contenders if c not in CONTENDERS]
    if unknown or not contenders:
        raise UsageError(f"--contenders: unknown contender {unknown[0] if unknown else args.contenders!r}; "
                         f"known: {', '.join(CONTENDERS)}")
    core_cls = envs.spec(args.env).load()
    target = args.target if args.target is not None else \
        core_cls.target_return(envs.resolve_config(args.env, {})[0])
    if target is None:
        raise UsageError(f"--target is required for env {args.env!r}, which has no target return of its own")
    out = Path(args.out)
    shared = parse_assignments(args.algo_config, what="--algo-config")
    if args.lr:
        shared["lr"] = str(args.lr)
    for key in shared:
        owners = [f"{name}: {key}={CONTENDERS[name][1][key]}" for name in contenders if key in CONTENDERS[name][1]]
        if owners:
            raise UsageError(f"--algo-config {key}: the contenders set it themselves ({', '.join(owners)}); "
                             "choose contenders with --contenders instead")
    for name in contenders:
        algo, own = CONTENDERS[name]
        reason = load_algo(algo).incompatibility(args.env, {})
        if reason:
            if algo == "sb3_maskable_ppo" and "sb3-contrib" in reason:
                print(f"left out: {name}: {reason}", file=sys.stderr)
                continue
            raise UsageError(f"{name}: {reason}")
        for seed in range(args.seeds):
            request = runner.RunRequest.build(args.env, algo, seed, out=out / name, algo_config={**shared, **own},
                                              steps=args.steps, episodes=args.episodes,
                                              command=f"python -m suite.race (contender {name})")
            if runner.prepare_directory(request, overwrite=False, resume=True) == runner.COMPLETE:
                print(f"{name}, seed {seed}: already complete")
                continue
            print(f"{name}, seed {seed}: training", flush=True)
            runner.execute(request, resume=True, checkpoint_every=10, quiet=True, eval_every=args.eval_every)
    loaded = results.load(out)
    summary, problems = report.summarize(loaded, {args.env: target})
    for problem in problems:
        print(f"problem: {problem}", file=sys.stderr)
    if summary.empty:
        raise UsageError(f"no complete run in {out}")
    summary = summary[summary["env"] == args.env]
    table = race_table(summary, loaded, target)
    print("\n".join(printed_table(shown_table(table, target))))
    files.atomic_write_csv(out / f"race_{args.env}.csv", table, root=out)  # never through a link of that name
    print(f"written: {out / f'race_{args.env}.csv'}")
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main, "python -m suite.race"))
