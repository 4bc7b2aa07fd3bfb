"""The scaling analysis: how each way of handling the constraint copes as an env's levels grow.

After Huang & Ontañón (2020), who grew µRTS maps and watched masking keep working while penalties
failed: here each env family's named levels (``envs.levels``) are the x axis, placed at their
**inadmissible share** (:func:`suite.levels.inadmissible_share`: the fraction of the action space
masked where random-valid play acts; for a Box family, where every uniform draw misses the
allocation hyperplane, the mean distance of such a draw to the admissible set instead), and each
method (an algo with its config, e.g. ``penalty_ppo [penalty=0.1]``) is one line of its normalised
score (0 = random_valid, 100 = the level's anchor, its best non-clairvoyant reference) with its 95%
confidence band over seeds, beside the level's best simple policy.

Huang & Ontañón's question, whether masking's edge over a penalty grows with the inadmissible share, is
answered by :func:`edge_table`: at every level, masked PPO's score minus that of the best config of each
method that handles the constraint by a cost (penalty PPO's best penalty size there; the Lagrangian), with
Welch's 95% interval over seeds, and :func:`edge_change`: the edge at the largest level minus the edge at
the smallest, with its interval, so "it grows" is said only beyond seed noise. Scores are in points of each
level's own range (0 = random_valid, 100 = the level's anchor).

Pure functions of :func:`suite.report.summarize`'s summary (bsuite's style): :func:`scaling_table`
selects and places the rows, :func:`describe` writes the paragraph, :func:`plot_scaling` draws one
family. :mod:`suite.report` calls them when a results folder holds at least two levels of a family. The
intervals of differences use each row's standard error, recovered from its Student-t interval over seeds
(the same numbers a Welch test of the seeds' scores would use).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd
from scipy import stats

import envs
from envs.config import ConfigError
from suite.aggregate import is_reference
from suite.levels import inadmissible_share
from suite.stats import welch_interval

__all__ = ["scaling_table", "families", "describe", "plot_scaling", "is_method", "edge_table", "edge_change",
           "COSTED"]
MASKED, NAIVE, PENALTY = "masked_ppo", "naive_masked_ppo", "penalty_ppo"
#: The methods that handle the constraint by a cost: masking's edge is measured over the best config of each.
COSTED = (PENALTY, "lagrangian_ppo")
_CONFIDENCE = 0.95


def is_method(rows: pd.DataFrame, method: str) -> bool:
    """Whether ``method`` (a scaling table's method) is a learned method, not a reference."""
    return not is_reference(rows.loc[rows["method"] == method, "algo"].iloc[0])


def _family(env: str) -> tuple[str, int] | None:
    try:
        spec = envs.spec(env)
    except ConfigError:  # a user's env not imported here
        return None
    return spec.family, spec.level


def scaling_table(summary: pd.DataFrame, share_steps: int = 4096) -> pd.DataFrame:
    """The summary rows of families with at least two levels present, one row per (level, method).

    Adds ``family``, ``level``, ``method`` (algo, with its config where it has several),
    ``x`` (the inadmissible share, or the mean distance for Box families), ``x_label`` and the
    level's ``actions``. Shares are measured on each level's default config.
    """
    if summary.empty:
        return pd.DataFrame()
    placed = summary.assign(**pd.DataFrame([_family(env) or (None, None) for env in summary["env"]],
                                           columns=["family", "level"], index=summary.index))
    placed = placed.dropna(subset=["family"])
    counts = placed.groupby("family")["env"].nunique()
    placed = placed[placed["family"].isin(counts[counts >= 2].index)].copy()
    if placed.empty:
        return pd.DataFrame()
    shares = {env: inadmissible_share(env, share_steps) for env in placed["env"].unique()}
    box = {env: "mean_distance" in share and not pd.isna(share.get("mean_distance")) for env, share in shares.items()}
    placed["x"] = [shares[env]["mean_distance"] if box[env] else shares[env]["inadmissible_share"]
                   for env in placed["env"]]
    placed["x_label"] = ["mean distance of a uniform action to the admissible set" if box[env]
                         else "inadmissible share (fraction of actions masked where random-valid acts)"
                         for env in placed["env"]]
    placed["actions"] = [shares[env]["actions"] for env in placed["env"]]
    configs = placed.groupby(["family", "algo"])["config"].transform("nunique")
    placed["method"] = [f"{algo} [{config}]" if n > 1 and config else algo
                        for algo, config, n in zip(placed["algo"], placed["config"], configs)]
    placed["level"] = placed["level"].astype(int)
    columns = ["family", "level", "env", "actions", "x", "x_label", "method", "algo", "config", "seeds", "score",
               "score_ci_low", "score_ci_high", "return_mean", "train_invalid_rate", "eval_invalid_rate",
               "anchor", "best_simple"]
    return placed[[c for c in columns if c in placed]].sort_values(["family", "method", "level"]).reset_index(drop=True)


def _score(table: pd.DataFrame, method: str, level: int) -> float:
    row = table[(table["method"] == method) & (table["level"] == level)]
    return float(row["score"].iloc[0]) if len(row) else math.nan


def _best_of(table: pd.DataFrame, algo: str, level: int) -> pd.Series | None:
    """The row of ``algo``'s best-scoring config at ``level`` (None where it did not run there)."""
    rows = table[(table["algo"] == algo) & (table["level"] == level)].dropna(subset=["score"])
    return None if rows.empty else rows.loc[rows["score"].idxmax()]


def _best_penalty(table: pd.DataFrame, level: int) -> tuple[str | None, float]:
    best = _best_of(table, PENALTY, level)
    return (None, math.nan) if best is None else (str(best["method"]), float(best["score"]))


def _variance_of_mean(row: pd.Series) -> tuple[float, int]:
    """The squared standard error of a row's mean score and its seeds, from its Student-t interval (NaN where
    there is none: one seed, or no interval columns)."""
    seeds = int(row.get("seeds", 1) or 1)
    low, high = row.get("score_ci_low", math.nan), row.get("score_ci_high", math.nan)
    if seeds < 2 or pd.isna(low) or pd.isna(high):
        return math.nan, seeds
    half = (high - low) / 2
    return (half / stats.t.ppf(0.5 + _CONFIDENCE / 2, seeds - 1)) ** 2, seeds


#: ``*_var``: the squared standard error of each side's mean score; ``*_seeds``: its seeds.
_EDGE_COLUMNS = ["family", "level", "env", "x", "x_label", "algo", "versus", "masked", "other", "edge", "ci_low",
                 "ci_high", "beyond_noise", "masked_var", "masked_seeds", "other_var", "other_seeds"]


def edge_table(table: pd.DataFrame) -> pd.DataFrame:
    """Per family, level and method that handles the constraint by a cost (:data:`COSTED`): masked PPO's score
    minus the best-scoring config of that method at the level (``versus``: which), with Welch's 95% interval
    over seeds (``ci_low``, ``ci_high``; NaN with one seed) and whether it excludes 0 (``beyond_noise``). The
    best config is picked on the scores it is compared with: with several penalty sizes the edge is, if
    anything, understated."""
    rows = []
    for family in families(table):
        family_rows = table[table["family"] == family]
        for level in sorted(family_rows["level"].unique()):
            masked = family_rows[(family_rows["method"] == MASKED) & (family_rows["level"] == level)]
            for algo in COSTED:
                other = _best_of(family_rows, algo, level)
                if masked.empty or other is None or pd.isna(masked["score"].iloc[0]):
                    continue
                mine = masked.iloc[0]
                edge = float(mine["score"] - other["score"])
                (masked_var, masked_seeds), (other_var, other_seeds) = _variance_of_mean(mine), _variance_of_mean(other)
                low, high = welch_interval(edge, [(masked_var, masked_seeds), (other_var, other_seeds)], _CONFIDENCE)
                rows.append({"family": family, "level": int(level), "env": mine["env"], "x": float(mine["x"]),
                             "x_label": mine.get("x_label", "inadmissible share"),
                             "algo": algo, "versus": str(other["method"]), "masked": float(mine["score"]),
                             "other": float(other["score"]), "edge": edge, "ci_low": low, "ci_high": high,
                             "beyond_noise": None if math.isnan(low) else bool(low > 0 or high < 0),
                             "masked_var": masked_var, "masked_seeds": masked_seeds, "other_var": other_var,
                             "other_seeds": other_seeds})
    return pd.DataFrame(rows, columns=_EDGE_COLUMNS)


def edge_change(edges: pd.DataFrame, family: str, algo: str = PENALTY) -> dict[str, object] | None:
    """Masking's edge over ``algo`` at the largest level it has in ``family`` minus the edge at the smallest,
    with Welch's interval (all four seeds' groups independent) and a verdict: ``grows`` / ``shrinks`` where
    the interval excludes 0, ``no change beyond seed noise`` where it does not, ``no interval`` with one seed.
    None with fewer than two levels."""
    rows = edges[(edges["family"] == family) & (edges["algo"] == algo)].sort_values("x")
    if len(rows) < 2:
        return None
    first, last = rows.iloc[0], rows.iloc[-1]
    change = float(last["edge"] - first["edge"])
    low, high = welch_interval(change, [(row[f"{side}_var"], int(row[f"{side}_seeds"])) for row in (first, last)
                                        for side in ("masked", "other")], _CONFIDENCE)
    verdict = ("no interval" if math.isnan(low) else "grows" if low > 0 else "shrinks" if high < 0
               else "no change beyond seed noise")
    return {"first": first, "last": last, "change": change, "ci_low": low, "ci_high": high, "verdict": verdict}


def _interval(value: float, low: float, high: float) -> str:
    return f"{value:+.1f}" + ("" if math.isnan(low) else f" ({low:+.1f} to {high:+.1f})")


def _edge_sentence(change: Mapping[str, Any], name: str, which: bool) -> str:
    """Masking's edge over ``name`` at the two ends, and whether it changed beyond seed noise."""
    first, last = change["first"], change["last"]
    versus = f" ({first['versus']} at {first['env']}, {last['versus']} at {last['env']})" if which else ""
    def place(row: Mapping[str, Any]) -> str:
        return f"mean distance {row['x']:.3g}" if "distance" in str(row["x_label"]) else f"{row['x']:.1%} inadmissible"

    ends = (f"{_interval(first['edge'], first['ci_low'], first['ci_high'])} points at {first['env']} "
            f"({place(first)}), {_interval(last['edge'], last['ci_low'], last['ci_high'])} at "
            f"{last['env']} ({place(last)})")
    if change["verdict"] == "no interval":
        return (f"Masking's edge over {name}{versus}: {ends}; it changes by {change['change']:+.1f} points, with no "
                "interval (one seed).")
    verdict = {"grows": "it grows", "shrinks": "it shrinks",
               "no change beyond seed noise": "no change beyond seed noise"}[change["verdict"]]
    return (f"Masking's edge over {name}{versus}: {ends}; {verdict}: "
            f"{_interval(change['change'], change['ci_low'], change['ci_high'])} points (95%, Welch).")


def describe(table: pd.DataFrame, family: str) -> str:
    """One paragraph on ``family``: each method's score at the smallest and largest level, masking's edge over
    the best penalty (at each level, the penalty size that scored best there) at both ends, and where naive
    masking falls; says plainly when the edge does not grow."""
    rows = table[table["family"] == family]
    methods = [m for m in rows["method"].unique() if is_method(rows, m)]
    if rows.empty or not methods:
        return f"{family}: no trained method on two levels."
    levels = sorted(rows["level"].unique())
    first, last = levels[0], levels[-1]
    place = rows.drop_duplicates("level").set_index("level")
    unit = "mean distance" if "distance" in place["x_label"].iloc[0] else "inadmissible"
    ends = {level: (f"{place.loc[level, 'x']:.1%} inadmissible" if unit == "inadmissible"
                    else f"mean distance {place.loc[level, 'x']:.3g}") for level in (first, last)}
    parts = [f"On {family}, from {place.loc[first, 'env']} ({place.loc[first, 'actions']:,} actions, {ends[first]}) to "
             f"{place.loc[last, 'env']} ({place.loc[last, 'actions']:,} actions, {ends[last]}), at a fixed budget:"]
    moves = []
    for method in methods:
        run = [level for level in levels if not math.isnan(_score(rows, method, level))]
        if not run:
            continue
        if run == [first, last] or (run[0] == first and run[-1] == last):
            moves.append(f"{method} {_score(rows, method, first):.0f} → {_score(rows, method, last):.0f}")
        elif len(run) > 1:  # run at some levels only so far: say which it reached
            moves.append(f"{method} {_score(rows, method, run[0]):.0f} → {_score(rows, method, run[-1]):.0f} "
                         f"(at {place.loc[run[0], 'env']} → {place.loc[run[-1], 'env']} only)")
        else:
            moves.append(f"{method} {_score(rows, method, run[0]):.0f} (at {place.loc[run[0], 'env']} only)")
    parts.append("; ".join(moves) + " (normalised score, 0 = random_valid, 100 = the level's anchor).")
    simple = [_score(rows, rows.loc[rows["level"] == level, "best_simple"].iloc[0], level)
              if "best_simple" in rows and rows.loc[rows["level"] == level, "best_simple"].iloc[0] else math.nan
              for level in (first, last)]
    if not any(math.isnan(v) for v in simple):
        parts.append(f"The best simple policy scores {simple[0]:.0f} → {simple[1]:.0f}.")
    masked_ends = [_score(rows, MASKED, level) for level in (first, last)]
    penalty_ends = [_best_penalty(rows, level) for level in (first, last)]
    edges = edge_table(rows)
    for algo, name in ((PENALTY, "the best penalty"), ("lagrangian_ppo", "the Lagrangian")):
        change = edge_change(edges, family, algo)
        if change is not None:
            parts.append(_edge_sentence(change, name, algo == PENALTY))
    naive_ends = [_score(rows, NAIVE, level) for level in (first, last)]
    if not any(math.isnan(v) for v in naive_ends + masked_ends):
        best_penalty_last = penalty_ends[1][1]
        position = ("between the best penalty and masking" if best_penalty_last <= naive_ends[1] <= masked_ends[1]
                    else "above masking" if naive_ends[1] > masked_ends[1]
                    else "below the best penalty" if not math.isnan(best_penalty_last) else "below masking")
        parts.append(f"Naive masking ends {position} at the largest level ({naive_ends[1]:.0f}).")
    return " ".join(parts)


def plot_scaling(table: pd.DataFrame, family: str):
    """Normalised score against the level's inadmissible share (or distance), one line per method with its
    95% band over seeds, the references as dashed levels at 0 and 100; None without two levels."""
    rows = table[table["family"] == family]
    if rows["level"].nunique() < 2:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import NullLocator

    fig, ax = plt.subplots(figsize=(7.5, 4.8), dpi=110)
    for value, label in ((0, "random_valid (0)"), (100, "anchor (100)")):
        ax.axhline(value, linestyle="--", linewidth=1, color="grey" if value == 0 else "black", label=label)
    if "best_simple" in rows:
        simple = rows[rows["algo"] == rows["best_simple"]].sort_values("x")
        if len(simple) >= 2:
            ax.plot(simple["x"], simple["score"], linestyle=":", marker="s", color="tab:brown",
                    label="best simple policy")
    for method, line in rows.groupby("method", sort=True):
        if is_reference(line["algo"].iloc[0]):
            continue
        line = line.sort_values("x")
        drawn, = ax.plot(line["x"], line["score"], marker="o", label=method)
        band = line.dropna(subset=["score_ci_low", "score_ci_high"])
        if len(band) >= 2:
            ax.fill_between(band["x"], band["score_ci_low"], band["score_ci_high"], alpha=0.15,
                            color=drawn.get_color())
    ax.set_xlabel(rows["x_label"].iloc[0])
    if "distance" in rows["x_label"].iloc[0]:
        ax.set_xscale("log")
    levels = rows.drop_duplicates("level").sort_values("x")
    top = ax.secondary_xaxis("top")  # the level names, slanted: larger levels sit close together (96%, 98%)
    top.set_xticks(levels["x"].tolist(), levels["env"].tolist(), fontsize=7, rotation=30, ha="left",
                   color="dimgrey")
    top.xaxis.set_minor_locator(NullLocator())
    top.tick_params(length=3, pad=1)
    ax.set_ylabel("normalised score (mean, 95% CI over seeds)")
    ax.set_title(f"{family}: score against the share of inadmissible actions, per level", pad=28)
    ax.legend(fontsize=7, loc="best")
    fig.tight_layout()
    return fig


def families(table: pd.DataFrame) -> Sequence[str]:
    """The families of ``table`` (those with two or more levels)."""
    return list(dict.fromkeys(table["family"])) if not table.empty else []
