"""The scaling analysis: how each way of handling the constraint copes as an env's levels grow.

After Huang & Ontañón (2020), who grew µRTS maps and watched masking keep working while penalties
failed: here each env family's named levels (``envs.levels``) are the x axis, placed at their
**inadmissible share** (:func:`suite.levels.inadmissible_share`: the fraction of the action space
masked where random-valid play acts; for a Box family, where every uniform draw misses the
allocation hyperplane, the mean distance of such a draw to the admissible set instead), and each
method (an algo with its config, e.g. ``penalty_ppo [penalty=0.1]``) is one line of its normalised
score (0 = random_valid, 100 = the level's anchor, its best non-clairvoyant reference) with its 95%
confidence band over seeds, beside the level's best simple policy.

Pure functions of :func:`suite.report.summarize`'s summary (bsuite's style): :func:`scaling_table`
selects and places the rows, :func:`describe` writes the paragraph, :func:`plot_scaling` draws one
family. :mod:`suite.report` calls them when a results folder holds at least two levels of a family.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import pandas as pd

import envs
from envs.config import ConfigError
from suite.aggregate import is_reference
from suite.levels import inadmissible_share

__all__ = ["scaling_table", "families", "describe", "plot_scaling", "is_method"]
MASKED, NAIVE, PENALTY = "masked_ppo", "naive_masked_ppo", "penalty_ppo"


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


def _best_penalty(table: pd.DataFrame, level: int) -> tuple[str | None, float]:
    rows = table[(table["algo"] == PENALTY) & (table["level"] == level)].dropna(subset=["score"])
    if rows.empty:
        return None, math.nan
    best = rows.loc[rows["score"].idxmax()]
    return str(best["method"]), float(best["score"])


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
        a, b = _score(rows, method, first), _score(rows, method, last)
        if not math.isnan(a) and not math.isnan(b):
            moves.append(f"{method} {a:.0f} → {b:.0f}")
        elif not (math.isnan(a) and math.isnan(b)):  # run at some levels only so far: say which it reached
            run = [level for level in levels if not math.isnan(_score(rows, method, level))]
            moves.append(f"{method} {_score(rows, method, run[0]):.0f} → {_score(rows, method, run[-1]):.0f} "
                         f"(at {place.loc[run[0], 'env']} → {place.loc[run[-1], 'env']} only)"
                         if len(run) > 1 else f"{method} {_score(rows, method, run[0]):.0f} "
                         f"(at {place.loc[run[0], 'env']} only)")
    parts.append("; ".join(moves) + " (normalised score, 0 = random_valid, 100 = the level's anchor).")
    simple = [_score(rows, rows.loc[rows["level"] == level, "best_simple"].iloc[0], level)
              if "best_simple" in rows and rows.loc[rows["level"] == level, "best_simple"].iloc[0] else math.nan
              for level in (first, last)]
    if not any(math.isnan(v) for v in simple):
        parts.append(f"The best simple policy scores {simple[0]:.0f} → {simple[1]:.0f}.")
    masked_ends = [_score(rows, MASKED, level) for level in (first, last)]
    penalty_ends = [_best_penalty(rows, level) for level in (first, last)]
    if not any(math.isnan(v) for v in masked_ends) and all(name for name, _ in penalty_ends):
        edges = [m - p for m, (_, p) in zip(masked_ends, penalty_ends)]
        trend = "grows" if edges[1] > edges[0] + 5 else "shrinks" if edges[1] < edges[0] - 5 else \
            "stays about the same (within 5 points)"
        parts.append(f"Masking's edge over the best penalty ({penalty_ends[0][0]} at the smallest level, "
                     f"{penalty_ends[1][0]} at the largest) {trend}: {edges[0]:+.0f} → {edges[1]:+.0f} points.")
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
