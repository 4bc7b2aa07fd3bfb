"""``python -m suite.levels``: every env's levels with the size of their action space and how much of it
is inadmissible where agents act.

The **inadmissible share** of a discrete level is the mean fraction of flat-mask entries that are
masked, over the states ``random_valid`` visits (``--steps`` agent steps from fixed seeds, terminal
states left out); for ``MultiDiscrete`` actions also per sub-action (the mean over sub-actions of
the fraction of its values masked, and the largest sub-action's). For a Box level it is the fraction
of actions drawn uniformly from the action box that are inadmissible, with their mean Euclidean
distance to the admissible set (for an allocation every such draw misses the sum-to-zero hyperplane,
so the distance is what grows with the size). Deterministic under ``--seed``; the report's scaling
figure uses the same function.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from functools import lru_cache
from typing import Any

import numpy as np
import pandas as pd

import envs
from envs.masking import MASK_KEY, admit_all_unless, sample_masked, split_mask
from suite.cli import Parser, positive_int, printed_table, run_cli

__all__ = ["inadmissible_share", "level_table", "main", "shown_table"]


@lru_cache(maxsize=64)
def inadmissible_share(env: str, steps: int = 4096, seed: int = 0) -> dict[str, Any]:
    """How much of ``env``'s action space is inadmissible where agents act (see the module docstring)."""
    vec = envs.make_vector(env, 64)
    core = vec.core
    rng = np.random.default_rng(seed)
    obs, _ = vec.reset(seed=seed)
    row: dict[str, Any] = {"env": env, "family": envs.spec(env).family, "level": envs.spec(env).level}
    if core.discrete:
        nvec = core.nvec
        masked, per_block, visited = 0.0, np.zeros(len(nvec)), 0
        for _ in range(max(1, steps // vec.num_envs)):
            acting = vec.acting
            mask = obs[MASK_KEY][acting].astype(bool)
            masked += float((~mask).mean(axis=-1).sum())
            per_block += np.stack([(part == 0).mean(axis=-1) for part in split_mask(mask, nvec)], axis=-1).sum(axis=0)
            visited += int(acting.sum())
            actions = sample_masked(rng, admit_all_unless(acting, obs[MASK_KEY]), nvec)
            obs, *_ = vec.step(actions[:, 0] if len(nvec) == 1 else actions)
        block_shares = per_block / visited
        row.update({"actions": int(nvec.sum()), "action_space": str(core.action_space) if len(nvec) < 4
                    else f"MultiDiscrete({len(nvec)} x {int(nvec[0])})", "inadmissible_share": masked / visited,
                    "sub_action_share_mean": float(block_shares.mean()),
                    "sub_action_share_max": float(block_shares.max()), "states": visited})
    else:
        low, high = core.action_space.low.astype(np.float64), core.action_space.high.astype(np.float64)
        outside, distance, visited = 0, 0.0, 0
        for _ in range(max(1, steps // vec.num_envs)):
            admissible = core.admissible_set()
            draws = rng.uniform(low, high, size=(vec.num_envs, 1, *low.shape))
            inside = np.asarray(admissible.contains(draws), dtype=bool)
            outside += int((~inside).sum())
            distance += float(admissible.distance(draws).sum())
            visited += vec.num_envs
            obs, *_ = vec.step(admissible.sample(rng)[:, 0])
        row.update({"actions": int(np.prod(low.shape)), "action_space": f"Box({int(np.prod(low.shape))})",
                    "inadmissible_share": outside / visited, "mean_distance": distance / visited, "states": visited})
    return row


def level_table(names: Sequence[str], steps: int = 4096, seed: int = 0) -> pd.DataFrame:
    """One :func:`inadmissible_share` row per env name."""
    return pd.DataFrame([inadmissible_share(name, steps, seed) for name in names])


def _detail(row: pd.Series) -> str:
    if pd.notna(row.get("sub_action_share_mean")):
        return f"{row['sub_action_share_mean']:.1%} / {row['sub_action_share_max']:.1%}"
    return f"mean distance to the set {row['mean_distance']:.3g}"


def shown_table(table: pd.DataFrame) -> pd.DataFrame:
    """:func:`level_table` as ``python -m suite.levels`` prints it: counts with thousands separators, shares in
    percent; a discrete level's sub-action shares (mean / max), a Box level's mean distance to the set."""
    return pd.DataFrame({"env": table["env"], "level": table["level"].map(str),
                         "action space": table["action_space"], "actions": table["actions"].map("{:,}".format),
                         "inadmissible share": table["inadmissible_share"].map("{:.1%}".format),
                         "per sub-action (mean / max)": table.apply(_detail, axis=1)})


def build_parser() -> Parser:
    parser = Parser(prog="python -m suite.levels", description=__doc__.split("\n\n")[0])
    parser.add_argument("--env", default="all", help="comma list of env names or levels, or all")
    parser.add_argument("--steps", type=positive_int, default=4096, help="agent steps of random_valid per level")
    parser.add_argument("--seed", type=int, default=0, help="seed of the rollouts")
    parser.add_argument("--csv", default=None, metavar="FILE", help="also write the table as CSV")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    from suite.sweep import expand_names

    args = build_parser().parse_args(argv)
    names = expand_names(args.env, envs.names(), "env")
    names = sorted(names, key=lambda name: (envs.spec(name).family, envs.spec(name).level))
    table = level_table(names, args.steps, args.seed)
    print("\n".join(printed_table(shown_table(table))))
    if args.csv:
        table.to_csv(args.csv, index=False)
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main, "python -m suite.levels"))
