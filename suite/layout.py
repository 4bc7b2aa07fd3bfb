"""``python -m suite.layout --env portfolio``: which RLlib sampling layout trains fastest on this machine.

Trains masked PPO (or ``--algo``) on RLlib for a few iterations under each layout of
``--runners`` (``num_env_runners``: 0 samples in the driver, K > 0 in K remote EnvRunner actors)
times ``--envs`` (``num_envs_per_env_runner``: vector env entries per runner), one layout at a
time, and prints the training throughput of each: the median env steps/s of its iterations after
the first (which pays for warm-up), sampling and learning together, as ``progress.csv`` reports it.
Every other setting is the algo's default for the env, so ``train_batch_size`` stays the same and
only how its env steps are sampled changes. Use the best layout with ``--algo-config
num_env_runners=K --algo-config num_envs_per_env_runner=N``.
"""

from __future__ import annotations

import statistics
import sys
import time
from collections.abc import Sequence

import pandas as pd

import envs
from baselines import load_algo
from baselines.method import Method
from envs.config import parse_assignments
from suite.cli import Parser, UsageError, positive_int, printed_table, run_cli

__all__ = ["MEASURED", "main", "measure_layout", "shown_layouts"]

#: The columns of a :func:`measure_layout` row.
MEASURED = ["num_env_runners", "num_envs_per_env_runner", "env_steps_per_second", "first_iteration", "build_seconds"]


def _int_list(text: str) -> list[int]:
    try:
        values = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        values = []
    if not values or any(v < 0 for v in values):
        raise ValueError
    return values


def build_parser() -> Parser:
    parser = Parser(prog="python -m suite.layout", description=__doc__.split("\n\n")[0])
    parser.add_argument("--env", required=True, help="registered env name")
    parser.add_argument("--algo", default="masked_ppo", help="an RLlib PPO algo (masked_ppo, penalty_ppo)")
    parser.add_argument("--runners", default="0,1", help="comma list of num_env_runners to try")
    parser.add_argument("--envs", default="32,64,128,256", help="comma list of num_envs_per_env_runner to try")
    parser.add_argument("--iterations", type=positive_int, default=4,
                        help="training iterations per layout (the first is left out of the median)")
    parser.add_argument("--algo-config", action="append", default=[], metavar="KEY=VALUE",
                        help="other algo settings, the same for every layout (repeatable)")
    return parser


def shown_layouts(measured: pd.DataFrame) -> pd.DataFrame:
    """:func:`measure_layout` rows as ``python -m suite.layout`` prints them: rates in whole env steps/s with
    thousands separators, build time in seconds to one decimal."""
    return pd.DataFrame({"num_env_runners": measured["num_env_runners"].map(str),
                         "num_envs_per_env_runner": measured["num_envs_per_env_runner"].map(str),
                         "env steps/s": measured["env_steps_per_second"].map("{:,.0f}".format),
                         "first iteration": measured["first_iteration"].map("{:,.0f}".format),
                         "build s": measured["build_seconds"].map("{:.1f}".format)})


def measure_layout(env: str, algo: str, runners: int, envs_per_runner: int, iterations: int,
                   overrides: dict[str, str]) -> dict[str, float]:
    """Train ``iterations`` iterations with one layout; its throughput and build time."""
    entry = load_algo(algo)
    config = entry.make_config(env, {**overrides, "num_env_runners": str(runners),
                                     "num_envs_per_env_runner": str(envs_per_runner)}, owner=f"algo {algo!r}")
    started = time.perf_counter()
    trainer = entry.implementation(config)(env, {}, config, 0, budget=config.train_batch_size * iterations)
    built = time.perf_counter() - started
    try:
        rates = [trainer.train_iteration()["env_steps_per_second"] for _ in range(iterations)]
    finally:
        trainer.close()
    steady = rates[1:] or rates
    return {"num_env_runners": runners, "num_envs_per_env_runner": envs_per_runner,
            "env_steps_per_second": statistics.median(steady), "first_iteration": rates[0], "build_seconds": built}


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        runner_counts, env_counts = _int_list(args.runners), _int_list(args.envs)
    except ValueError:
        raise UsageError(f"--runners and --envs take comma lists of non-negative integers, got {args.runners!r} "
                         f"and {args.envs!r}") from None
    if 0 in env_counts:
        raise UsageError("--envs: every runner needs at least one env entry")
    entry = load_algo(args.algo)
    if not isinstance(entry, Method) or "rllib" not in entry.backends:
        raise UsageError(f"--algo {args.algo!r} does not sample with RLlib EnvRunners; try masked_ppo or penalty_ppo")
    overrides = parse_assignments(args.algo_config, what="--algo-config")
    if overrides.get("backend", "rllib") != "rllib":
        raise UsageError("suite.layout measures RLlib's sampling layouts; leave backend at rllib")
    envs.spec(args.env)  # an unknown env or bad settings fail here, before the table starts
    entry.make_config(args.env, overrides, owner=f"algo {args.algo!r}")
    # Each row is printed as it is measured (a layout takes a while): a printed table's lines do not depend on
    # each other (suite.cli.printed_table), so the header goes first and each row's line when it comes.
    print("\n".join(printed_table(shown_layouts(pd.DataFrame(columns=MEASURED)))), flush=True)
    rows = []
    for runners in runner_counts:
        for count in env_counts:
            rows.append(measure_layout(args.env, args.algo, runners, count, args.iterations, overrides))
            print(printed_table(shown_layouts(pd.DataFrame(rows[-1:], columns=MEASURED)))[-1], flush=True)
    measured = pd.DataFrame(rows, columns=MEASURED)
    best = measured["env_steps_per_second"].idxmax()
    print(f"fastest: num_env_runners={measured.at[best, 'num_env_runners']} num_envs_per_env_runner="
          f"{measured.at[best, 'num_envs_per_env_runner']} ({measured.at[best, 'env_steps_per_second']:,.0f} "
          "env steps/s)")
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main, "python -m suite.layout"))
