"""Does a task tell methods apart? The rule of issue 35 (item 3), applied to a report's runs.

A benchmark task earns its place in a headline when, at its budget,

1. **it is learned**: its best method beats the task's best simple policy beyond seed noise (the report's
   ``beats_best_simple``: a one-sided Welch test of the method's seeds against the policy's, Holm-corrected
   over every method row of the report), and
2. **two methods differ**: at least one pair of methods run on it differs beyond seed noise: a two-sided
   Welch t-test between their seeds' returns (:func:`suite.stats.p_differ`), Holm-corrected over every pair of
   every task in the report (one family: every "these two differ" the report can claim).

A task **separates** when both hold. A method is any row whose algo is not a reference (random-valid, a simple
policy, an anchor or a bound); two configs of one algo are two methods. What the intervals resample: the
seeds (one number per run, the mean over its evaluation episodes); with fewer than two seeds a method is in
no test. Pure functions of the report's frames (:func:`suite.report.run_scores`, :func:`suite.report.summarize`).

**At a budget** (:func:`returns_at`, :func:`summary_at`; ``suite.report --separation-at ENV=STEPS``): the same
rule with each learning run's return read off its learning curve at the budget (its periodic evaluations,
``--eval-every``, on the same evaluation episodes as its final one, interpolated between the two around the
budget); the references' returns do not depend on a budget.
This reads a budget off the curves of longer runs: exact for a constant learning rate, while a run
with ``lr_schedule=linear`` made for that budget would have decayed its rate sooner.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping

import numpy as np
import pandas as pd

import envs
from envs.config import ConfigError
from suite import aggregate
from suite.cli import markdown_table, markdown_text
from suite.stats import mean_ci, p_differ, p_greater

__all__ = ["ALPHA", "method_pairs", "separation_table", "separation_markdown", "returns_at", "summary_at", "task_score",
           "judged_against_best_simple"]

#: The level of both tests, after Holm's correction.
ALPHA = 0.05
_TASK = ["env", "env_config"]
_SUMMARY_COLUMNS = ["env", "env_config", "algo", "role", "config", "config_id", "seeds", "return_mean", "score",
                    "score_ci_low", "score_ci_high", "bound_share", "anchor", "best_simple", "env_steps",
                    "p_beats_best_simple"]
_METHOD = ["algo", "config_id"]


def _label(row: Mapping[str, object]) -> str:
    return aggregate.method_label(str(row["algo"]), str(row.get("config") or ""))


def method_pairs(scores: pd.DataFrame, summary: pd.DataFrame) -> pd.DataFrame:
    """Every pair of methods on a task with two or more seeds each: ``env``, ``env_config``, ``method_a``,
    ``method_b`` (a the one with the higher mean return), ``return_a``, ``return_b``, ``p`` (two-sided Welch),
    ``p_holm`` (Holm over all rows) and ``differ`` (``p_holm`` below :data:`ALPHA`). ``scores``: one row per run
    (:func:`suite.report.run_scores`); ``summary``: which (algo, config) rows are methods, and their labels."""
    methods = summary[summary["role"] == "method"] if "role" in summary else summary
    labels = {(r["env"], r["env_config"], r["algo"], r["config_id"]): _label(r) for _, r in methods.iterrows()}
    rows = []
    for (env, env_config), task in scores.groupby(_TASK, sort=False):
        # keyed by config id (two configs may share a label), named by label
        seeds = {(env, env_config, algo, cid): group["return"].to_numpy(dtype=float)
                 for (algo, cid), group in task.groupby(_METHOD, sort=False)
                 if (env, env_config, algo, cid) in labels and group["return"].notna().sum() >= 2}
        for (a, x), (b, y) in itertools.combinations(((labels[key], x) for key, x in seeds.items()), 2):
            if np.nanmean(y) > np.nanmean(x):
                (a, x), (b, y) = (b, y), (a, x)
            rows.append({"env": env, "env_config": env_config, "method_a": a, "method_b": b,
                         "return_a": float(np.nanmean(x)), "return_b": float(np.nanmean(y)), "p": p_differ(x, y)})
    columns = [*_TASK, "method_a", "method_b", "return_a", "return_b", "p", "p_holm", "differ"]
    if not rows:
        return pd.DataFrame(columns=columns)
    pairs = pd.DataFrame(rows)
    pairs["p_holm"] = aggregate.holm(pairs["p"])
    pairs["differ"] = pairs["p_holm"] < ALPHA
    return pairs[columns]


def separation_table(summary: pd.DataFrame, pairs: pd.DataFrame,
                     task_names: Mapping[tuple[str, str], str]) -> pd.DataFrame:
    """One row per task with a method: ``task``, ``budget`` (the methods' mean env steps; the smallest and the
    largest when they differ), the best simple policy and its score, the best method and its score with its
    interval, ``learned`` (rule 1; None where it cannot be judged: no simple policy, or methods with one
    seed), ``differing_pairs`` of ``pairs_tested`` (rule 2) and ``separates`` (both; False where rule 1 fails,
    None where it cannot be judged or, rule 1 holding, no pair could be tested).

    ``headroom``: what the best simple policy leaves to learn, ``100 -`` its share of the bound (0 =
    random_valid, 100 = the task's upper bound: a clairvoyant optimum, an env's proven bound, or, where the
    anchor is a proven ``optimum`` and there is no bound, the anchor): no policy with the agent's information
    can beat the best simple one by more. An upper limit, as loose as the bound (portfolio's relaxed value is
    far above any policy); NaN where the task has none. A task with a few points of headroom can separate
    methods only if their seeds agree to within a fraction of those points."""
    rows = []
    for (env, env_config), group in summary.groupby(_TASK, sort=False):
        methods = group[group["role"] == "method"]
        if methods.empty:
            continue
        simple = group["best_simple"].iloc[0]
        simple_rows = group[group["algo"] == simple]
        ranked = methods.sort_values("score" if methods["score"].notna().any() else "return_mean", ascending=False)
        best = ranked.iloc[0]
        mine = pairs[(pairs["env"] == env) & (pairs["env_config"] == env_config)]
        judged = bool(simple) and methods["p_beats_best_simple_holm"].notna().any()
        learned = bool(methods["beats_best_simple"].any()) if judged else None
        differ = int(mine["differ"].sum())
        separates = False if learned is False else None if learned is None or mine.empty else differ > 0
        steps = methods["env_steps"]
        rows.append({"task": task_names.get((env, env_config), env), "env": env, "env_config": env_config,
                     "budget_low": float(steps.min()), "budget_high": float(steps.max()),
                     "best_simple": simple or "",
                     "best_simple_score": float(simple_rows["score"].iloc[0]) if len(simple_rows) else math.nan,
                     "headroom": _headroom(group, simple_rows),
                     "best_method": _label(best), "best_method_score": float(best["score"]),
                     "best_method_score_ci_low": float(best["score_ci_low"]),
                     "best_method_score_ci_high": float(best["score_ci_high"]),
                     "methods": len(methods), "learned": learned, "pairs_tested": len(mine),
                     "differing_pairs": differ, "separates": separates})
    return pd.DataFrame(rows)


def _headroom(task: pd.DataFrame, simple_rows: pd.DataFrame) -> float:
    """100 minus the best simple policy's share of the task's bound; against the anchor where the anchor is a
    proven optimum and the task has no other bound (its 100 is then the bound)."""
    if simple_rows.empty:
        return math.nan
    share = float(simple_rows["bound_share"].iloc[0])
    if math.isnan(share) and "anchor" in task:
        anchor = task[task["algo"] == task["anchor"].iloc[0]]
        if len(anchor) and anchor["role"].iloc[0] == "optimum":
            share = float(simple_rows["score"].iloc[0])
    return 100 - share


def _family(env: str) -> str:
    """The env a level belongs to (portfolio-m: portfolio); a user's env not imported here is its own."""
    try:
        return envs.spec(env).family
    except ConfigError:
        return env


def _steps(low: float, high: float) -> str:
    def short(n: float) -> str:
        return f"{n / 1e6:.2g}M" if n >= 1e6 else f"{n / 1e3:.0f}k" if n >= 1e4 else f"{n:,.0f}"
    return short(low) if math.isclose(low, high, rel_tol=0.02) else f"{short(low)}–{short(high)}"


def _verdict(value: object) -> str:
    return "–" if value is None or (isinstance(value, float) and math.isnan(value)) else \
        ("**yes**" if value else "no")


def separation_markdown(table: pd.DataFrame, summary: pd.DataFrame,
                        title: str = "Does each task separate methods?", note: str = "") -> list[str]:
    """The report's section: per task, the budget, the best simple policy's score, every method's score with
    its interval, and whether the task separates methods (``note``: a sentence after the rule's)."""
    if table.empty:
        return []
    body = []
    for _, t in table.iterrows():
        methods = summary[(summary["env"] == t["env"]) & (summary["env_config"] == t["env_config"])
                          & (summary["role"] == "method")].sort_values("score", ascending=False)
        scores = "; ".join(
            f"{markdown_text(_label(m))} {m['score']:.1f}" + ("" if math.isnan(m["score_ci_low"]) else
                                              f" ({m['score_ci_low']:.1f}–{m['score_ci_high']:.1f})")
            + f" ×{m['seeds']}" for _, m in methods.iterrows())
        simple = f"{markdown_text(t['best_simple'])} {t['best_simple_score']:.1f}" if t["best_simple"] else "–"
        headroom = "–" if math.isnan(t["headroom"]) else f"{t['headroom']:.1f}"
        body.append([markdown_text(t["task"]), _steps(t["budget_low"], t["budget_high"]), simple, headroom, scores,
                     _verdict(t["learned"]), f"{t['differing_pairs']} of {t['pairs_tested']}",
                     _verdict(t["separates"])])
    header = ["task", "budget (env steps)", "best simple policy", "headroom (at most)",
              "methods: score (95% CI over seeds) ×seeds", "beats best simple", "pairs that differ", "separates"]
    separating = table[table["separates"].eq(True)]
    families = separating["env"].map(_family).nunique()
    return [f"## {title}", "",
            "A task separates methods when its best method beats its best simple policy beyond seed noise (one-"
            "sided Welch test of the seeds, Holm over every method row) and at least two methods differ beyond "
            f"seed noise (two-sided Welch test of their seeds, Holm over every pair of every task), both at "
            f"{ALPHA:g}. Scores: 0 = random_valid, 100 = the task's anchor; intervals resample seeds. Headroom: the "
            "most any policy with the agent's information could gain over the best simple one, in points of the "
            f"range from random_valid (0) to the task's upper bound (100); – where there is none. {note}"
            f"**{len(separating)} of {len(table)} tasks separate, on {families} env{'s' * (families != 1)}.**", "",
            *markdown_table(header, body), ""]


def returns_at(scores: pd.DataFrame, progress: pd.DataFrame, steps: Mapping[str, int]) -> pd.DataFrame:
    """``scores`` (one row per complete run) with each learning run on an env named in ``steps`` given its return at
    ``steps[env]`` env steps: its learning curve (the periodic evaluations, then its final evaluation at the env
    steps it ran) read there, linearly between the two evaluations around it (``numpy.interp``; runs evaluate at
    slightly different steps, so the last evaluation before the budget would put some methods a whole evaluation
    period earlier than others), its final return at or after its end (``env_steps`` set to the budget, or to
    the run's end if that is earlier). Learning runs first evaluated after the budget are left out, references
    keep their return, and runs on other envs are left out."""
    from baselines.references import roles

    role_of = roles()
    curve = "eval_return_mean"
    evaluated = progress[progress[curve].notna()] if curve in progress else progress.iloc[:0]
    curves = {run: group[["env_steps", curve]].sort_values("env_steps") for run, group in
              evaluated.groupby("run", sort=False)}
    rows = []
    for _, row in scores[scores["env"].isin(list(steps))].iterrows():
        if row["algo"] in role_of:
            rows.append(row)
            continue
        budget, points = steps[row["env"]], curves.get(row["run"])
        x = [*(points["env_steps"] if points is not None else []), row["env_steps"]]
        y = [*(points[curve] if points is not None else []), row["return"]]
        if budget < x[0]:
            continue
        at = row.copy()
        at["return"] = float(np.interp(budget, x, y))
        at["env_steps"] = min(budget, int(row["env_steps"]))
        rows.append(at)
    return pd.DataFrame(rows).reset_index(drop=True) if rows else scores.iloc[:0]


def task_score(returns: pd.Series, ref: Mapping[str, object], simple_returns: np.ndarray,
               is_method: bool) -> dict[str, object]:
    """A config's seeds on one task: its return and normalised score, each a mean with its 95% interval over
    seeds, its share of the bound, the task's anchor and best simple policy, and (a method's, where that policy
    ran) the one-sided p-value of beating the best simple policy (``ref``: the task's row of
    :func:`suite.report.references`)."""
    mean, low, high = mean_ci(returns)
    score, score_low, score_high = mean_ci(aggregate.normalised(returns, ref["lower"], ref["anchor"]))
    return {"return_mean": mean, "return_ci_low": low, "return_ci_high": high, "score": score,
            "score_ci_low": score_low, "score_ci_high": score_high,
            "bound_share": float(aggregate.normalised(mean, ref["lower"], ref["bound"])),
            "anchor": ref["anchor_algo"], "best_simple": ref["best_simple_algo"],
            "p_beats_best_simple": p_greater(returns, simple_returns) if is_method and len(simple_returns)
            else math.nan}


def judged_against_best_simple(summary: pd.DataFrame) -> pd.DataFrame:
    """``summary`` with ``p_beats_best_simple_holm`` (Holm over every method row) and ``beats_best_simple``
    (that below :data:`ALPHA`)."""
    summary["p_beats_best_simple_holm"] = aggregate.holm(summary["p_beats_best_simple"])
    summary["beats_best_simple"] = summary["p_beats_best_simple_holm"] < ALPHA
    return summary


def summary_at(scores: pd.DataFrame, refs: pd.DataFrame, labels: Mapping[str, str]) -> pd.DataFrame:
    """The columns :func:`separation_table` reads, from per-run ``scores`` (e.g. :func:`returns_at`'s) and the
    tasks' references (:func:`suite.report.references`): one row per (task, algo, config) with its score and
    interval over seeds, and the one-sided test against the task's best simple policy, Holm-corrected over
    every method row. ``labels``: a config id's name (the report's ``config`` column)."""
    from baselines.references import roles

    role_of = roles()
    seeds_of = {key: group["return"].to_numpy() for key, group in scores.groupby(["env", "env_config", "algo"])}
    rows = []
    for (env, env_config, algo, cid), group in scores.groupby(["env", "env_config", "algo", "config_id"], sort=False):
        ref = refs.loc[(env, env_config)]
        simple = seeds_of.get((env, env_config, ref["best_simple_algo"]), np.array([]))
        rows.append({"env": env, "env_config": env_config, "algo": algo, "role": role_of.get(algo, "method"),
                     "config": labels.get(cid, ""), "config_id": cid, "seeds": len(group),
                     "env_steps": float(group["env_steps"].mean()),
                     **task_score(group["return"], ref, simple, algo not in role_of)})
    return judged_against_best_simple(pd.DataFrame(rows, columns=_SUMMARY_COLUMNS))
