"""``python -m suite.run``: train and evaluate one algorithm on one env with one seed (or a sweep).

Writes ``config.json``, ``progress.csv`` and ``eval.csv`` under ``<out>/<env>/<algo>/seed<k>/``
(see :mod:`suite.results`) and ends with a summary. The work is done by :mod:`suite.runner`;
several envs, algos or seeds make a sweep (:mod:`suite.sweep`).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

import envs
from baselines import algo_names, load_algo
from baselines.method import Method
from envs.config import ConfigError, config_to_dict, describe_config, parse_assignments
from suite import runner, sweep
from suite.cli import (
    Parser,
    UsageError,
    add_import_flag,
    bounded_int,
    folder,
    import_user_modules,
    non_negative_int,
    positive_float,
    positive_int,
    probabilities,
    run_cli,
)

__all__ = ["main", "build_parser", "algo_overrides", "describe_algo", "refuse_incompatible"]


def build_parser() -> Parser:
    parser = Parser(
        prog="python -m suite.run",
        description="Train and evaluate one algorithm on one maskbench env with one seed.",
        epilog=f"envs: {', '.join(envs.names())}. algos: {', '.join(algo_names())}. "
               "Env config keys: python -m suite.check --env NAME --describe.",
    )
    parser.add_argument("--env", required=True,
                        help="registered env name (the names are listed below); a comma list or 'all' makes a "
                             "sweep (see --seeds)")
    parser.add_argument("--algo", required=True,
                        help="algorithm name (listed below); a comma list or 'all' makes a sweep")
    parser.add_argument("--seed", type=non_negative_int, default=0,
                        help="run seed (training env and policy); with --seeds, the first seed")
    parser.add_argument("--seeds", type=bounded_int(1, sweep.MAX_SEEDS, sweep.MAX_SEEDS_WHY), default=None,
                        metavar="N",
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
    parser.add_argument("--out", type=folder, default="results", help="results folder")
    parser.add_argument("--checkpoint-every", type=positive_int, default=10,
                        help="save a checkpoint every N training iterations (and always at the end)")
    parser.add_argument("--eval-mask-noise", type=probabilities, default=(), metavar="P[,P...]",
                        help="also evaluate the policies that read the mask under corrupted masks (admissible "
                             "values hidden, inadmissible ones leaked, the previous step's mask) with each "
                             "probability P; eval.csv's mask_noise and mask_noise_p columns say which")
    parser.add_argument("--eval-every", type=non_negative_int, default=5,
                        help="every N training iterations, evaluate the algo's headline policy on the "
                             "evaluation seeds into progress.csv (eval_* columns; 0: only at the end)")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--overwrite", action="store_true", help="replace an existing run of the same env/algo/seed")
    mode.add_argument("--resume", action="store_true", help="continue an interrupted run from its last checkpoint")
    parser.add_argument("--trust", action="store_true",
                        help="resume checkpoints this user did not write on this machine (a received results folder): "
                             "they hold pickled state, which runs code when loaded")
    parser.add_argument("--quiet", action="store_true", help="no progress bar and no summary")
    add_import_flag(parser)
    return parser


def request_from(args, *, env: str | None = None, algo: str | None = None, seed: int | None = None,
                 command: str | None = None) -> runner.RunRequest:
    """The run the parsed arguments ask for (or one run of a sweep: ``env``, ``algo``, ``seed``)."""
    return runner.RunRequest.build(env or args.env, algo or args.algo, args.seed if seed is None else seed,
                                   out=args.out, env_config=parse_assignments(args.env_config),
                                   algo_config=algo_overrides(args), steps=args.steps, episodes=args.episodes,
                                   address=args.address, command=command, eval_mask_noise=args.eval_mask_noise)


def algo_overrides(args) -> dict[str, str]:
    """``--algo-config`` pairs plus the shortcut flags (``--lr``, ``--num-env-runners``, ``--backend``)."""
    overrides = parse_assignments(args.algo_config, what="--algo-config")
    for flag, key in (("lr", "lr"), ("num_env_runners", "num_env_runners"), ("backend", "backend")):
        value = getattr(args, flag)
        if value is not None:
            overrides[key] = str(value)
    return overrides


def refuse_incompatible(request: runner.RunRequest) -> None:
    """A one-line ``ConfigError`` when the request's algo cannot run its env (with its env config and the
    ``backend`` asked for), as the run itself would refuse it."""
    entry = load_algo(request.algo)
    reason = entry.incompatibility(request.env, request.env_config, request.algo_config.get("backend")) \
        if isinstance(entry, Method) else entry.incompatibility(request.env, request.env_config)
    if reason:
        raise ConfigError(reason)


def describe_algo(algo: str, env: str) -> str:
    """The algo's config keys with their defaults for ``env`` (per-env defaults applied)."""
    entry = load_algo(algo)
    config = config_to_dict(entry.make_config(env, {}, owner=f"algo {algo!r}"))
    rows = describe_config(entry.Config)
    lines = [f"{algo} on {env} (default budget {entry.default_steps:,} env steps); "
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
        plan = sweep.plan_sweep(args, lambda env, algo, seed: request_from(args, env=env, algo=algo, seed=seed,
                                                                           command=command), algo_overrides(args))
        return sweep.run_sweep(args, plan)
    request = request_from(args, command=command)  # names, configs and sizes: --describe fails as the run would
    if args.describe:
        refuse_incompatible(request)
        print(describe_algo(args.algo, args.env))
        return 0
    if runner.prepare_directory(request, overwrite=args.overwrite, resume=args.resume,
                                trust=args.trust) == runner.COMPLETE:
        print(f"{request.directory} is already complete; nothing to resume (pass --overwrite to run it again)")
        return 0
    try:
        runner.execute(request, overwrite=args.overwrite, resume=args.resume, checkpoint_every=args.checkpoint_every,
                       quiet=args.quiet, eval_every=args.eval_every, trust=args.trust)
    except KeyboardInterrupt:
        print(f"\ninterrupted: progress so far is in {request.directory}; continue with --resume", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main, "python -m suite.run"))
