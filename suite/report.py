"""``python -m suite.report [RESULTS]``: one comparison of every complete run, as files and a table.

Writes ``summary.csv`` (one row per env, algo and config), ``agents.csv`` (multi-agent runs: one row
per agent too), ``violations.csv`` (per constraint, :mod:`suite.violations`), ``mask_noise.csv``
(runs evaluated under corrupted masks, :mod:`suite.mask_noise_report`), ``scaling.csv`` (runs on two
or more levels of an env: score by level and method, :mod:`suite.scaling`), ``scaling_edges.csv`` (masked
PPO's edge over the best penalty and the Lagrangian per level, with Welch's interval), ``job_shop_gaps.csv`` (job-shop
tasks with the solver's optimum run: the mean optimality gap on the held-out instances per method and rule,
beside Zhang et al.'s, :mod:`suite.job_shop_gaps`), ``budgets.csv`` (configs evaluated during training:
where their learning stopped, or that it had not, :mod:`suite.budgets`), ``separation.csv`` and
``method_pairs.csv`` (per task: whether it separates methods, and the pairwise tests, :mod:`suite.separation`),
``report.md`` (the same as markdown
tables, the scaling paragraphs, the job-shop gaps, the problems found, and the plots) and ``plots/*.png``
(learning curves per env; the penalty-size sweep where there is one; the corrupted-mask curves; the
scaling figure per env family), and prints the tables.

The analysis is pure functions of the frames :func:`suite.results.load` returns (bsuite's style):
:func:`run_scores` reduces each run to its numbers, :func:`summarize` aggregates runs of one
config over seeds, :func:`learning_curves` averages progress over seeds; loading, plotting and
writing stay outside them. Only complete runs are scored; every other run is listed as a problem.

Scores:

- **return**: the mean over evaluation episodes of the algo's headline policy (the first in its
  ``eval.csv``: greedy with the mask on for masked PPO), then mean and 95% Student-t confidence
  interval over seeds.
- **score**: normalised return, 0 = ``random_valid``, 100 = the task's **anchor**, its best
  non-clairvoyant reference (each the mean over its seeds on the same env config; :func:`references`);
  NaN where neither was run. **share of the bound**: the same with the bound (a clairvoyant reference,
  else the env's ``return_bound``) as the 100.
- **beats the best simple policy**: a one-sided test of a method's seeds against the task's best simple
  policy's (:func:`suite.stats.p_greater`), Holm-corrected over every method row; a task where no method
  does is "not learned at this budget" and stays out of the across-task aggregates (best simple policy
  shown beside the methods there as the pseudo-method "best simple policy").
- **threshold**: ``--threshold ENV=VALUE``, else the env's own target return under the run's env
  config (``EnvCore.target_return``; portfolio: $3,000, the post's headline), else the return at
  score 80; env steps and wall seconds to the first periodic
  evaluation (``eval_return_mean`` in ``progress.csv``) at or above it, median over the seeds
  that reach it; ``seeds_reaching`` of ``seeds_evaluated`` (a run made with ``--eval-every 0`` has
  no periodic evaluations and is left out of both, not counted as failing to reach it).
"""

from __future__ import annotations

import math
import sys
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

import envs
from baselines.references import roles
from envs.config import ConfigError, parse_assignments
from suite import aggregate, aggregate_plots, files, results, scaling, separation
from suite.budgets import budget_markdown, budget_table, chosen_budgets
from suite.cli import Parser, UsageError, folder, markdown_table, run_cli
from suite.cli import markdown_text as _md
from suite.job_shop_gaps import gap_markdown, gap_table
from suite.learning_curves import learning_curves, plot_learning_curves
from suite.mask_noise_report import mask_noise_table, plot_mask_noise
from suite.stats import mean_ci
from suite.violations import violation_markdown, violation_table

__all__ = ["env_target", "env_bound", "headline_evals", "run_scores", "env_config_key", "references", "summarize",
           "config_notes", "agent_summary", "markdown", "markdown_table", "scaling_markdown", "plot_penalty_sweep",
           "write_report", "main"]

#: Envs without a target return of their own are timed to the return at this score.
THRESHOLD_SCORE = 80.0
#: The level of the one-sided test "beats the best simple policy", after Holm's correction over every
#: method row of the report (one family: every such claim the report makes).
ALPHA = 0.05
_KEYS = ["env", "algo", "config_id"]


# --------------------------------------------------------------------------------------------
# Per run


def headline_evals(evals: pd.DataFrame) -> pd.DataFrame:
    """The evaluation rows of each run's headline policy (the first ``(policy, mask)`` in its eval.csv)."""
    first = evals.groupby("run", sort=False)[["policy", "mask"]].first()
    head_policy = evals["run"].map(first["policy"])
    head_mask = evals["run"].map(first["mask"])
    return evals[(evals["policy"] == head_policy) & (evals["mask"] == head_mask)]


def _weighted_invalid_rate(progress: pd.DataFrame) -> float:
    steps = progress["env_steps"].diff().fillna(progress["env_steps"])
    return float((progress["invalid_action_rate"] * steps).sum() / steps.sum()) if steps.sum() else math.nan


def _reaching(row: Mapping[str, Any]) -> str:
    """``reached/evaluated`` seeds, and how many could not be judged (run without periodic evaluations)."""
    unjudged = row["seeds"] - row["seeds_evaluated"]
    return f"{row['seeds_reaching']}/{row['seeds_evaluated']}" + \
        (f" ({unjudged} without periodic evaluation)" if unjudged else "")


def _evaluated_during_training(progress: pd.DataFrame) -> bool:
    """Whether a run has periodic evaluations (``--eval-every``), without which no threshold can be seen."""
    return "eval_return_mean" in progress and bool(progress["eval_return_mean"].notna().any())


def first_crossing(progress: pd.DataFrame, threshold: float) -> tuple[float, float]:
    """Env steps and wall seconds at the first periodic evaluation whose mean return reached ``threshold``
    (NaN, NaN: never, or the run was not evaluated during training)."""
    if not _evaluated_during_training(progress) or math.isnan(threshold):
        return math.nan, math.nan
    hit = progress[progress["eval_return_mean"] >= threshold]
    if hit.empty:
        return math.nan, math.nan
    return float(hit["env_steps"].iloc[0]), float(hit["wall_seconds"].iloc[0])


def run_scores(loaded: results.Results, metrics: Sequence[str] = ()) -> pd.DataFrame:
    """One row per complete run: its headline return and metrics, invalid-action rates, mask-off return,
    throughput and budget used (no thresholds: see :func:`summarize`)."""
    done = loaded.complete()
    if done.runs.empty:
        return pd.DataFrame(columns=[*results.RUN_COLUMNS, "return"])
    clean = results.clean_evals(done.evals)
    head = headline_evals(clean)
    runs = done.runs.set_index("run")
    progress_of = dict(tuple(done.progress.groupby("run", sort=False)))
    evals_of = dict(tuple(clean.groupby("run", sort=False)))
    env_columns = sorted(c for c in runs.columns if c.startswith("env."))
    rows = []
    for run, group in head.groupby("run", sort=False):
        info, progress, evals = runs.loc[run], progress_of[run], evals_of[run]
        off = evals[(evals["policy"] == group["policy"].iloc[0]) & (evals["mask"] == "off")]
        row = {"env": info["env"], "algo": info["algo"], "seed": int(info["seed"]), "config_id": info["config_id"],
               "env_config": env_config_key(info, env_columns),
               "run": run, "policy": f"{group['policy'].iloc[0]}, mask {group['mask'].iloc[0]}",
               "return": float(group["return"].mean()),
               "eval_invalid_rate": float(group["invalid_steps"].sum() / group["length"].sum()),
               "mask_off_return": float(off["return"].mean()) if group["mask"].iloc[0] == "on" and len(off)
               else math.nan,
               "train_invalid_rate": _weighted_invalid_rate(progress),
               "env_steps_per_second": float(progress["env_steps_per_second"].median())
               if "env_steps_per_second" in progress else math.nan,
               "env_steps": int(info["env_steps"]), "wall_seconds": float(info["wall_seconds"]),
               "target": env_target(info["env"], _env_config(info, env_columns)),
               **dict(zip(("env_bound", "env_bound_source"), env_bound(info["env"], _env_config(info, env_columns))))}
        for metric in metrics:
            if metric in group:
                row[f"{metric}_mean"] = float(group[metric].mean())
        if PROVEN in group:  # an optimum reference's episodes: the share its solver proved optimal
            row[PROVEN] = float(group[PROVEN].mean())
        rows.append(row)
    return pd.DataFrame(rows)


def diverged_runs(loaded: results.Results) -> pd.DataFrame:
    """The runs stopped because their training diverged (:data:`suite.results.DIVERGED`), as :func:`run_scores`
    rows with a NaN return: the keys that place each beside its method's finished seeds, nothing measured."""
    runs = loaded.runs
    if runs.empty:
        return pd.DataFrame(columns=["env", "algo", "seed", "config_id", "env_config", "run", "return"])
    env_columns = sorted(c for c in runs.columns if c.startswith("env."))
    return pd.DataFrame([{"env": info["env"], "algo": info["algo"], "seed": int(info["seed"]),
                          "config_id": info["config_id"], "env_config": env_config_key(info, env_columns),
                          "run": info["run"], "return": math.nan}
                         for _, info in runs[results.diverged(runs)].iterrows()],
                        columns=["env", "algo", "seed", "config_id", "env_config", "run", "return"])


#: The eval.csv column of an ``optimum`` reference: 1 where the schedule it replayed is proven optimal.
PROVEN = "proven_optimal"


def _env_config(info: pd.Series, env_columns: Sequence[str]) -> dict[str, Any]:
    """The run's env config from its ``env.<key>`` columns (Python scalars; lists as comma strings)."""
    return {c[4:]: info[c].item() if hasattr(info[c], "item") else info[c] for c in env_columns if not pd.isna(info[c])}


def env_target(env: str, env_config: Mapping[str, Any]) -> float:
    """The env's own target return under ``env_config`` (``EnvCore.target_return``); NaN when it has none,
    is not registered here (a user env: ``--import`` it) or the config is not its own."""
    try:
        core_cls = envs.spec(env).load()
        target = core_cls.target_return(envs.resolve_config(env, dict(env_config))[0])
    except (ConfigError, ImportError, TypeError, ValueError):
        return math.nan
    return math.nan if target is None else float(target)


def env_bound(env: str, env_config: Mapping[str, Any]) -> tuple[float, str]:
    """The env's proven upper bound on any policy's mean return under ``env_config`` and what it is
    (``EnvCore.return_bound``); NaN and "" when it has none."""
    try:
        core_cls = envs.spec(env).load()
        bound = core_cls.return_bound(envs.resolve_config(env, dict(env_config))[0])
    except (ConfigError, ImportError, TypeError, ValueError):
        return math.nan, ""
    return (math.nan, "") if bound is None else (float(bound[0]), bound[1])


#: Env settings every task name shows where they differ from the env's default (issue 35): the fallback of an
#: inadmissible action changes what the numbers of the methods trained without a mask mean; job_shop's
#: ``placement`` (issue 34) changes what every dispatch does, its ``job_features`` what a learner sees.
NAMED_SETTINGS = ("invalid_action", "placement", "job_features")


def named_settings(env_names: Sequence[str]) -> dict[str, dict[str, str]]:
    """Per env, the defaults of :data:`NAMED_SETTINGS` (for :func:`suite.aggregate.task_labels`); an env not
    registered here (a user env not imported) names none."""
    named = {}
    for env in env_names:
        try:
            defaults = envs.config_dict(env, {})
        except (ConfigError, ImportError, TypeError, ValueError):
            continue
        named[env] = {key: str(defaults[key]) for key in NAMED_SETTINGS if key in defaults}
    return named


def env_config_key(info: pd.Series, env_columns: Sequence[str]) -> str:
    """The run's env config as one comparable string (runs on different env configs play different games)."""
    return ",".join(f"{c[4:]}={info[c]}" for c in env_columns if not pd.isna(info[c]))


#: The roles a task's anchor (its 100) is chosen from: every non-clairvoyant reference.
ANCHOR_ROLES = ("simple", "heuristic", "optimum")


def references(scores: pd.DataFrame) -> pd.DataFrame:
    """Per task (env, env config): the returns that give a score its meaning, indexed by ``(env, env_config)``
    (a reference scores only runs of its own env config: three traders are not scored against one's).

    - ``lower``: ``random_valid``'s mean return, the score's 0;
    - ``anchor`` / ``anchor_algo``: the best non-clairvoyant reference run on the task (a simple policy, a
      heuristic or a solver's optimum, :mod:`baselines.references`), the score's 100;
    - ``best_simple`` / ``best_simple_algo``: the best simple policy (what a practitioner tries first);
    - ``bound`` / ``bound_source``: an upper bound on any policy with the agent's information: the best
      clairvoyant reference run on the task, else the env's own proven bound (``EnvCore.return_bound``).

    Each is the mean over the reference's seeds; NaN (and "") where none was run.
    """
    role_of = roles()
    if "env_config" not in scores:
        scores = scores.assign(env_config="")
    out = {}
    for key, group in scores.groupby(["env", "env_config"]):
        means = group.groupby("algo")["return"].mean()
        by_role = {role: means[[algo for algo in means.index if role_of.get(algo) in role]]
                   for role in (("lower",), ("simple",), ANCHOR_ROLES, ("clairvoyant",))}
        row = {"lower": float(by_role[("lower",)].max()) if len(by_role[("lower",)]) else math.nan}
        for column, role in (("anchor", ANCHOR_ROLES), ("best_simple", ("simple",)),
                             ("bound", ("clairvoyant",))):
            best = by_role[role]
            row[column] = float(best.max()) if len(best) else math.nan
            row[f"{column}_algo"] = str(best.idxmax()) if len(best) else ""
        row["bound_source"] = row.pop("bound_algo")
        if math.isnan(row["bound"]) and "env_bound" in group and group["env_bound"].notna().any():
            row["bound"] = float(group["env_bound"].iloc[0])
            row["bound_source"] = str(group["env_bound_source"].iloc[0])
        out[key] = row
    columns = ["lower", "anchor", "anchor_algo", "best_simple", "best_simple_algo", "bound", "bound_source"]
    frame = pd.DataFrame.from_dict(out, orient="index", columns=columns)
    frame.index = pd.MultiIndex.from_tuples(frame.index, names=["env", "env_config"])
    return frame


def _threshold(env: str, target: float, lower: float, upper: float, thresholds: Mapping[str, float]) -> float:
    """``--threshold`` for ``env``, else its own target return, else the return at :data:`THRESHOLD_SCORE`."""
    if env in thresholds:
        return float(thresholds[env])
    if not math.isnan(target):
        return target
    return float(lower + THRESHOLD_SCORE / 100 * (upper - lower))


# --------------------------------------------------------------------------------------------
# Over seeds


def _config_differences(runs: pd.DataFrame, pooled: bool = False) -> tuple[dict[str, str], list[str]]:
    """A short label per config_id of groups (env, algo) with several configs, and one note line each (a grid
    of configs is what a sweep asks for, not a problem: the report lists them under "Configs compared").

    A setting the suite tunes per env (:data:`baselines.settings.ENV_DEFAULTS`, e.g. the penalty) is also
    given relative to the env's default, ``penalty=0.1 (10x default)``: its absolute size means different
    things on different envs. With ``pooled`` (methods pooled across envs, the aggregates) such a setting
    is named by that ratio alone (``penalty=10x default``), so a method is the same method on every env, and env
    settings are left out: they make another task (``job_shop [job_features=True]``), not another method."""
    labels: dict[str, str] = {}
    notes = []
    config_columns = [c for c in runs.columns if c.startswith(("algo.", *(() if pooled else ("env.",))))
                      or c in ("env_version", "steps", "episodes", "eval_seed_base")]
    for (env, algo), group in runs.groupby(["env", "algo"]):
        per_config = group.drop_duplicates("config_id").set_index("config_id")[config_columns]
        if len(per_config) < 2:
            continue
        differing = [c for c in config_columns if per_config[c].astype(str).nunique() > 1]
        for cid, row in per_config.iterrows():
            labels[cid] = ", ".join(_setting_label(env, c, row[c], pooled) for c in differing)
        notes.append(f"{env}/{algo}: {len(per_config)} configs differ in {', '.join(differing)}; each is "
                     "summarised on its own row (config column), never averaged together")
    return labels, notes


def config_notes(loaded: results.Results) -> list[str]:
    """One line per (env, algo) whose complete runs hold several configs (the report's "Configs compared")."""
    return _config_differences(loaded.complete().runs)[1]


def _setting_label(env: str, column: str, value: Any, pooled: bool) -> str:
    """``key=value``, with a per-env tuned setting also relative to the env's default (see above)."""
    from baselines.settings import env_defaults

    key = column.split(".", 1)[-1]
    default = env_defaults(env).get(key) if column.startswith("algo.") else None
    if isinstance(default, (int, float)) and not isinstance(default, bool) and default != 0:
        try:
            ratio = f"{float(value) / default:g}x default"
        except (TypeError, ValueError):
            return f"{key}={value}"
        return f"{key}={ratio}" if pooled else f"{key}={value} ({ratio})"
    return f"{key}={value}"


def summarize(loaded: results.Results, thresholds: Mapping[str, float] | None = None,
              metrics: Sequence[str] = ()) -> tuple[pd.DataFrame, list[str]]:
    """``summary.csv``: one row per (env, algo, config) over its complete seeds, and the problems found."""
    thresholds = dict(thresholds or {})
    problems = list(loaded.problems)
    scores = run_scores(loaded, metrics)
    if scores.empty:
        return pd.DataFrame(), problems + ["no complete run to summarise"]
    refs = references(scores)
    labels, _ = _config_differences(loaded.complete().runs)
    progress_of = dict(tuple(loaded.complete().progress.groupby("run", sort=False)))
    role_of = roles()
    seeds_of = {key: group["return"].to_numpy() for key, group in scores.groupby(["env", "env_config", "algo"])}
    diverged_of = diverged_runs(loaded).groupby(_KEYS).size().to_dict()
    rows = []
    for (env, algo, cid), group in scores.groupby(_KEYS, sort=False):
        ref = refs.loc[(env, group["env_config"].iloc[0])]
        lower, anchor = ref["lower"], ref["anchor"]
        threshold = _threshold(env, group["target"].iloc[0], lower, anchor, thresholds)
        crossings = [first_crossing(progress_of[run], threshold) for run in group["run"]]
        reached = [c for c in crossings if not math.isnan(c[0])]
        simple = seeds_of.get((env, group["env_config"].iloc[0], ref["best_simple_algo"]), np.array([]))
        score = separation.task_score(group["return"], ref, simple, algo not in role_of)
        row = {"env": env, "env_config": group["env_config"].iloc[0], "algo": algo,
               "role": role_of.get(algo, "method"), "config": labels.get(cid, ""),
               "config_id": cid, "seeds": len(group), "diverged": int(diverged_of.get((env, algo, cid), 0)),
               "policy": group["policy"].iloc[0],
               **{key: score[key] for key in ("return_mean", "return_ci_low", "return_ci_high", "score",
                                              "score_ci_low", "score_ci_high", "anchor", "bound_share")},
               "bound": ref["bound_source"], "bound_return": ref["bound"], "best_simple": score["best_simple"],
               "p_beats_best_simple": score["p_beats_best_simple"]}
        for column in group.columns:
            if column.endswith("_mean") and column != "return":
                row[column] = float(group[column].mean())
        row.update({"train_invalid_rate": float(group["train_invalid_rate"].mean()),
                    "eval_invalid_rate": float(group["eval_invalid_rate"].mean()),
                    "mask_off_return": float(group["mask_off_return"].mean()),
                    "mask_off_score": float(aggregate.normalised(group["mask_off_return"].mean(), lower, anchor)),
                    "threshold": threshold, "seeds_reaching": len(reached),
                    "seeds_evaluated": sum(_evaluated_during_training(progress_of[run]) for run in group["run"]),
                    "steps_to_threshold": float(np.median([c[0] for c in reached])) if reached else math.nan,
                    "seconds_to_threshold": float(np.median([c[1] for c in reached])) if reached else math.nan,
                    "env_steps": float(group["env_steps"].mean()), "wall_seconds": float(group["wall_seconds"].mean()),
                    "env_steps_per_second": float(group["env_steps_per_second"].mean()),
                    PROVEN: float(group[PROVEN].mean()) if PROVEN in group else math.nan})
        rows.append(row)
    return separation.judged_against_best_simple(pd.DataFrame(rows)), problems


def agent_summary(loaded: results.Results) -> pd.DataFrame:
    """``agents.csv``: one row per (env, algo, config, agent) of the multi-agent runs (``agent`` in eval.csv):
    the headline policy's return of that agent, mean and 95% CI over seeds, and its evaluation invalid rate
    (steps with an inadmissible sub-action). Empty without multi-agent runs."""
    evals = loaded.complete().evals
    if "agent" not in evals or evals["agent"].isna().all():
        return pd.DataFrame()
    head = headline_evals(evals).dropna(subset=["agent"])
    per_run = (head.groupby([*_KEYS, "agent", "run"], sort=False)
               .agg(ret=("return", "mean"), invalid=("invalid_steps", "sum"), length=("length", "sum")).reset_index())
    rows = []
    for (env, algo, cid, agent), group in per_run.groupby([*_KEYS, "agent"], sort=False):
        mean, low, high = mean_ci(group["ret"])
        rows.append({"env": env, "algo": algo, "config_id": cid, "agent": agent, "seeds": len(group),
                     "return_mean": mean, "return_ci_low": low, "return_ci_high": high,
                     "eval_invalid_rate": float(group["invalid"].sum() / group["length"].sum())})
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------------------------
# Presentation


def _fmt(value: float, digits: int = 4) -> str:
    """Significant digits, thousands separators for large values, "–" for missing."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if abs(value) >= 10 ** digits:
        return f"{value:,.0f}"
    return f"{value:,.{digits}g}"


def _fixed(value: float, decimals: int = 1) -> str:
    if value is None or math.isnan(value):
        return "–"
    return f"{0.0 if round(value, decimals) == 0 else value:,.{decimals}f}"  # never "-0.0"


def scaling_markdown(table: pd.DataFrame, plots: Mapping[str, str]) -> list[str]:
    """The scaling section of ``report.md``: per family, the paragraph (:func:`suite.scaling.describe`), the
    figure and a table of score by level and method."""
    lines = ["## Scaling with the level", "",
             "Normalised score (0 = random_valid, 100 = each level's anchor), mean and 95% CI over seeds, "
             "by level; levels are placed at their inadmissible share (`python -m suite.levels`).", ""]
    for family in scaling.families(table):
        rows = table[table["family"] == family]
        keep = ~rows["algo"].map(aggregate.is_reference).astype(bool)
        rows = rows[keep | (rows["algo"] == rows["best_simple"])] if "best_simple" in rows else rows[keep]
        levels = rows.drop_duplicates("level").sort_values("level")
        lines += [f"### {family}", "", scaling.describe(table, family), ""]
        if family in plots:
            lines += [f"![scaling {family}]({plots[family]})", ""]
        header = [f"{r['env']} ({r['x']:.1%})" if "distance" not in r["x_label"]
                  else f"{r['env']} (distance {r['x']:.3g})" for _, r in levels.iterrows()]
        body = []
        for method, line in rows.groupby("method", sort=True):
            cells = []
            for level in levels["level"]:
                row = line[line["level"] == level]
                cells.append("–" if row.empty else
                             f"{_fixed(row['score'].iloc[0])} ({_fixed(row['score_ci_low'].iloc[0])} to "
                             f"{_fixed(row['score_ci_high'].iloc[0])})")
            body.append([method, *cells])
        lines += [*markdown_table(["method", *header], body), ""]
        edges = scaling.edge_table(rows)
        if not edges.empty:
            lines += ["Masking's edge: masked_ppo's score minus the best config of each method that handles the "
                      "constraint by a cost, level by level (Welch's 95% interval over seeds; scaling_edges.csv):", "",
                      *markdown_table(["level", "versus", "masked_ppo", "versus scores", "edge (95% CI)",
                                       "beyond seed noise"],
                                      [[f"{r['env']} ({r['x']:.1%})" if "distance" not in str(r["x_label"])
                                        else f"{r['env']} (distance {r['x']:.3g})", r["versus"],
                                        _fixed(r["masked"]), _fixed(r["other"]),
                                        f"{_fixed(r['edge'])} ({_fixed(r['ci_low'])} to {_fixed(r['ci_high'])})",
                                        "–" if r["beyond_noise"] is None else ("yes" if r["beyond_noise"] else "no")]
                                       for _, r in edges.sort_values(["algo", "x"]).iterrows()]), ""]
    return lines


def _task_lines(group: pd.DataFrame) -> list[str]:
    """One env's section: what its 0, 100 and bound are, the references, then the methods beside the best
    simple policy, and whether any method learned the task at this budget."""
    refs = group[group["role"] != "method"]
    methods = group[group["role"] == "method"]
    lines = []
    by_algo = {r["algo"]: r for _, r in group.iterrows()}
    lower, anchor = by_algo.get("random_valid"), by_algo.get(group["anchor"].iloc[0])
    if lower is not None and anchor is not None:
        meaning = (f"Score: 0 = random_valid ({_fmt(lower['return_mean'])}), 100 = **{_md(anchor['algo'])}** "
                   f"({_fmt(anchor['return_mean'])}), the best non-clairvoyant reference run here "
                   f"({_ROLE_WORDS[anchor['role']]}; {_optimum_words(anchor)}).")
    else:
        meaning = "Score: no score (random_valid and a non-clairvoyant reference must both be run on the task)."
    bound = group["bound"].iloc[0]
    if bound and anchor is not None:
        meaning += (f" Upper bound: {_md(bound)} ({_fmt(group['bound_return'].iloc[0])}); the anchor reaches "
                    f"{_share(anchor['bound_share'])}% of the way from random_valid to it (\"share of the bound\").")
    simple = group["best_simple"].iloc[0]
    if simple:
        meaning += f" Best simple policy: **{_md(simple)}** (score {_fixed(by_algo[simple]['score'])})."
    lines += [meaning, "",
              "Return and score: mean over seeds with Student-t's 95% interval over seeds (runs resampled: the "
              "training seeds on the shared evaluation episodes). \"Beats simple\": one-sided Welch test against "
              f"the best simple policy's seeds, Holm-corrected over every method row of this report, at {ALPHA:g}.",
              ""]
    if len(refs):
        lines += markdown_table(["reference", "role", "return", "score", "share of the bound"],
                                [[_md(r["algo"]), r["role"], _fmt(r["return_mean"]), _fixed(r["score"]),
                                  _share(r["bound_share"])]
                                 for _, r in refs.sort_values("return_mean", ascending=False).iterrows()])
        lines.append("")
    if len(methods):
        threshold = group["threshold"].iloc[0]
        lines += [f"Threshold for steps/seconds: return ≥ {_fmt(threshold)}.", ""]
        body = []
        for _, r in methods.iterrows():
            ci = f" ({_fmt(r['return_ci_low'])} to {_fmt(r['return_ci_high'])})" \
                if not math.isnan(r["return_ci_low"]) else ""
            score_ci = f" ({_fixed(r['score_ci_low'])} to {_fixed(r['score_ci_high'])})" \
                if not math.isnan(r["score_ci_low"]) else ""
            beats = "–" if math.isnan(r["p_beats_best_simple_holm"]) else \
                f"{'**yes**' if r['beats_best_simple'] else 'no'} ({r['p_beats_best_simple_holm']:.2g})"
            body.append([
                _md(r["algo"]), _md(r["config"]) or "–", _seeds(r), _md(r["policy"]),
                f"{_fmt(r['return_mean'])}{ci}", f"{_fixed(r['score'])}{score_ci}", beats, _share(r["bound_share"]),
                f"{100 * r['train_invalid_rate']:.2f}% / {100 * r['eval_invalid_rate']:.2f}%",
                _fixed(r["mask_off_score"]), _reaching(r),
                f"{_fixed(r['steps_to_threshold'], 0)} / {_fixed(r['seconds_to_threshold'])}",
                _fixed(r["env_steps_per_second"], 0)])
        lines += markdown_table(["method", "config", "seeds", "headline policy", "return (95% CI)", "score (95% CI)",
                                 "beats simple (p, Holm)", "share of the bound", "invalid: train / eval",
                                 "score, mask off", "seeds reaching", "env steps / seconds to threshold",
                                 "env steps/s"], body)
        if methods["diverged"].fillna(0).any():
            lines += ["", "\"+k diverged\": k more seeds whose training diverged (non-finite losses; the run stopped, "
                          "its weights gone): they have no policy to evaluate, so the return, score and tests are over "
                          "the finished seeds alone, a mean conditional on not diverging."]
        winners = methods[methods["beats_best_simple"]]
        lines += ["", f"**Learned at this budget**: {', '.join(_method_names(winners))} beat "
                      f"{_md(simple)} beyond seed noise." if len(winners) else
                  f"**Not learned at this budget**: no method beats the best simple policy ({_md(simple)}) "
                  "beyond seed noise; the task is left out of the headline aggregate."
                  if simple else "No simple policy was run here: whether a method learned the task is not judged."]
    return lines


def _seeds(row: Mapping[str, Any]) -> str:
    """A method's seeds as the task table shows them: the finished ones, and those that diverged."""
    diverged = row.get("diverged", 0)
    return f"{row['seeds']} (+{int(diverged)} diverged)" if diverged and not pd.isna(diverged) else str(row["seeds"])


def _share(value: float) -> str:
    """A share of the bound: one decimal, or two significant digits where a huge bound makes it tiny."""
    if math.isnan(value) or abs(value) >= 1 or abs(value) < 1e-6:
        return _fixed(value)
    return f"{value:.2g}"


def _mask_off_lines(summary: pd.DataFrame) -> list[str]:
    """The mask removed at evaluation (Huang & Ontañón 2020's test): each masked method's score with and
    without the mask, beside the methods trained without one, per task."""
    masked = summary[(summary["role"] == "method") & summary["mask_off_score"].notna()]
    if masked.empty:
        return []
    unmasked = summary[(summary["role"] == "method") & summary["mask_off_score"].isna()]
    lines = ["## The mask removed at evaluation", "",
             "A masked method's headline policy evaluated again without its mask (the env then executes an "
             "inadmissible choice by its fallback), beside the methods trained without a mask on the same task. "
             "Huang & Ontañón (2020) found masked agents kept most of their return without the mask.", ""]
    body = []
    for _, r in masked.iterrows():
        others = unmasked[(unmasked["env"] == r["env"]) & (unmasked["env_config"] == r["env_config"])]
        best = others.loc[others["score"].idxmax()] if others["score"].notna().any() else None
        name = aggregate.method_label(r["algo"], r["config"])
        trained_without = "–" if best is None else f"{_md(best['algo'])} {_fixed(best['score'])}"
        body.append([_md(r["env"]), _md(name), _fixed(r["score"]), _fixed(r["mask_off_score"]), trained_without])
    return [*lines, *markdown_table(["task", "method", "score, mask on", "score, mask off",
                                     "best method trained without the mask"], body), ""]


def _method_names(rows: pd.DataFrame) -> list[str]:
    return [_md(aggregate.method_label(r["algo"], r["config"])) for _, r in rows.iterrows()]


def _optimum_words(anchor: pd.Series) -> str:
    """Whether the anchor is a proven optimum: only an ``optimum`` reference whose every evaluation episode was
    proven optimal is one; with some unproven, it is the best known."""
    proven = anchor.get(PROVEN, math.nan)
    if anchor["role"] != "optimum" or pd.isna(proven):
        return "not a proven optimum"
    if proven >= 1:
        return "a proven optimum on every evaluation episode"
    return (f"best known, not a proven optimum: the solver proved {100 * proven:.0f}% of the evaluation episodes "
            "optimal within its time limit")


_ROLE_WORDS = {"simple": "a simple policy", "heuristic": "a heuristic using only what the agent observes",
               "optimum": "a solver's optimal schedule, replayed",
               "lower": "random", "clairvoyant": "clairvoyant", "method": "a learned policy"}


def markdown(summary: pd.DataFrame, problems: Sequence[str], plots: Sequence[str] = (),
             agents: pd.DataFrame | None = None, scaling_lines: Sequence[str] = (),
             violations: pd.DataFrame | None = None, notes: Sequence[str] = ()) -> str:
    """``report.md``: a table per env (and per agent for multi-agent runs), the scaling section where the
    runs cover levels, then the configs compared (``notes``), the problems and the plots."""
    lines = ["# maskbench report", ""]
    configs_per_env = summary.groupby("env")["env_config"].nunique()
    names = aggregate.task_labels(summary, named_settings(summary["env"].unique())) if not summary.empty else {}
    for (env, env_config), group in summary.groupby(["env", "env_config"], sort=False):
        title = names.get((env, env_config), env)
        full = [f"Env config: `{env_config}`.", ""] if configs_per_env[env] > 1 else []
        lines += [f"## {_md(title)}", "", *full, *_task_lines(group), ""]
        lines.append("")
        if violations is not None and not violations.empty:
            lines += violation_markdown(violations, env)
        mine = agents[agents["env"] == env] if agents is not None and not agents.empty else ()
        if len(mine):
            labels = dict(zip(group["config_id"], group["config"]))
            lines += ["Several agents: the return above is per agent (the mean over agents); each agent's:", ""]
            body = []
            for _, r in mine.iterrows():
                ci = f" ({_fmt(r['return_ci_low'])} to {_fmt(r['return_ci_high'])})" \
                    if not math.isnan(r["return_ci_low"]) else ""
                body.append([r["algo"], labels.get(r["config_id"]) or "–", r["agent"], f"{_fmt(r['return_mean'])}{ci}",
                             f"{100 * r['eval_invalid_rate']:.2f}%"])
            lines += [*markdown_table(["algo", "config", "agent", "return (95% CI)", "invalid: eval"], body), ""]
    lines += _mask_off_lines(summary)
    lines += list(scaling_lines)
    if notes:
        lines += ["## Configs compared", "", *[f"- {n}" for n in notes], ""]
    if problems:
        lines += ["## Problems", "", *[f"- {p}" for p in problems], ""]
    if plots:
        lines += ["## Plots", "", *[f"![{Path(p).stem}]({p})" for p in plots], ""]
    return "\n".join(lines)


def _figure():
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt

    return plt.subplots(figsize=(7, 4.5), dpi=110)


def plot_penalty_sweep(summary: pd.DataFrame, env: str):
    """penalty_ppo's return and invalid-action rate against its penalty on ``env``; None without a sweep."""
    rows = summary[(summary["env"] == env) & (summary["algo"] == "penalty_ppo")
                   & summary["config"].str.contains("penalty=")]
    if len(rows) < 2:
        return None
    penalty = rows["config"].str.extract(r"penalty=([-+0-9.eE]+)")[0].astype(float)
    order = np.argsort(penalty.to_numpy())
    fig, ax = _figure()
    x = penalty.to_numpy()[order]
    mean = rows["return_mean"].to_numpy()[order]
    ax.errorbar(x, mean, yerr=np.abs(rows[["return_ci_low", "return_ci_high"]].to_numpy()[order].T - mean),
                marker="o", capsize=3, label="return (95% CI)")
    ax.set_xscale("symlog", linthresh=max(x[x > 0].min() if (x > 0).any() else 1e-3, 1e-6))
    ax.set_xlabel("penalty per inadmissible action")
    ax.set_ylabel("return")
    twin = ax.twinx()
    twin.plot(x, 100 * rows["train_invalid_rate"].to_numpy()[order], "s--", color="tab:red",
              label="inadmissible, training (%)")
    twin.set_ylabel("inadmissible actions in training (%)")
    ax.set_title(f"{env}: penalty PPO against its penalty")
    fig.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    return fig


def write_report(path: str | Path, out: str | Path | None = None, thresholds: Mapping[str, float] | None = None,
                 separation_at: Mapping[str, int] | None = None) -> tuple[pd.DataFrame, list[str], str]:
    """Load ``path``, write summary.csv, report.md and plots/ under ``out`` (default ``path``); return
    the summary, the problems and the markdown. ``separation_at``: env -> env steps at which to judge whether each
    task separates methods from the periodic evaluations (:func:`suite.separation.returns_at`)."""
    loaded = results.load(path)
    for flag, named in (("--threshold", thresholds), ("--separation-at", separation_at)):
        unknown = sorted(set(named or {}) - set(loaded.runs["env"]))
        if unknown:
            raise UsageError(f"{flag} names env {unknown[0]!r}, which no run under {str(path)!r} has; envs there: "
                             f"{', '.join(sorted(set(loaded.runs['env'])))}")
    not_metrics = (*results.RUN_COLUMNS, *results.EVAL_COLUMNS, results.MASK_NOISE, results.MASK_NOISE_P,
                   "violation_distance")
    metrics = [c for c in loaded.evals.columns if c not in not_metrics and not c.startswith("violations_")]
    summary, problems = summarize(loaded, thresholds, metrics)
    out = Path(out if out is not None else path)
    try:
        out.mkdir(parents=True, exist_ok=True)
        # The folder the user named (a link there is theirs); below it, every write stays inside and follows no
        # link (root=out: a results folder is shared, and a received one may hold links or hostile names).
        out = out.resolve()
        probe = tempfile.TemporaryFile(dir=out)
        probe.close()
        files.inside(out, "plots/figure.png")  # a linked plots/ is refused before anything is written
    except OSError as error:
        raise UsageError(f"cannot write the report to {str(out)!r}: {error.strerror or error}") from None
    plots: list[str] = []
    agents = agent_summary(loaded)
    scaling_lines: list[str] = []
    across_lines: list[str] = []
    gap_lines: list[str] = []
    violations = pd.DataFrame()
    if not summary.empty:
        labels = dict(zip(summary["config_id"], summary["config"]))
        violations = violation_table(loaded, labels)
        if not violations.empty:
            files.atomic_write_csv(out / "violations.csv", violations, root=out)
        noise = mask_noise_table(loaded, labels)
        if not noise.empty:
            files.atomic_write_csv(out / "mask_noise.csv", noise, root=out)
        files.atomic_write_csv(out / "summary.csv", summary, root=out)
        done = loaded.complete()
        gaps = gap_table(done.runs, results.clean_evals(done.evals), roles(), labels)
        if not gaps.empty:
            files.atomic_write_csv(out / "job_shop_gaps.csv", gaps, root=out)
            gap_lines = gap_markdown(gaps)
        budgets = budget_table(loaded, labels)
        if not budgets.empty:
            files.atomic_write_csv(out / "budgets.csv", budgets, root=out)
            gap_lines = [*gap_lines, *budget_markdown(budgets)]
        if not agents.empty:
            files.atomic_write_csv(out / "agents.csv", agents, root=out)
        curves = learning_curves(loaded)
        curve_labels, _ = _config_differences(loaded.complete().runs)
        import matplotlib.pyplot as plt

        def save(name: str, fig) -> str | None:
            """``fig`` as ``plots/<name>.png``; ``name`` holds names read from the results (an env's), made one
            safe file name first. Never written through a link (a linked ``plots/`` is refused in one line, a
            linked file replaced: :func:`suite.files.atomic_savefig`)."""
            if fig is None:
                return None
            relative = f"plots/{files.safe_name(name)}.png"
            try:
                files.atomic_savefig(fig, out / relative, root=out)
            except OSError as error:
                raise UsageError(f"cannot write plots under {str(out)!r}: {error.strerror or error}") from None
            finally:
                plt.close(fig)
            return relative

        for env in summary["env"].unique():
            for name, fig in ((f"learning_curves_{env}", plot_learning_curves(curves, summary, env, curve_labels)),
                              (f"penalty_sweep_{env}", plot_penalty_sweep(summary, env)),
                              (f"mask_noise_{env}", plot_mask_noise(noise, env) if not noise.empty else None)):
                saved = save(name, fig)
                if saved:
                    plots.append(saved)
        table = scaling.scaling_table(summary)
        if not table.empty:
            files.atomic_write_csv(out / "scaling.csv", table, root=out)
            files.atomic_write_csv(out / "scaling_edges.csv", scaling.edge_table(table), root=out)
            figures = {family: save(f"scaling_{family}", scaling.plot_scaling(table, family))
                       for family in scaling.families(table)}
            scaling_lines = scaling_markdown(table, {family: path for family, path in figures.items() if path})
        scores = run_scores(loaded)
        across_lines = _across_tasks(loaded, summary, out, save, scores)
        task_names = aggregate.task_labels(scores, named_settings(scores["env"].unique()))
        pairs = separation.method_pairs(scores, summary)
        verdicts = separation.separation_table(summary, pairs, task_names)
        if not verdicts.empty:
            files.atomic_write_csv(out / "separation.csv", verdicts, root=out)
            files.atomic_write_csv(out / "method_pairs.csv", pairs, root=out)
            across_lines = [*separation.separation_markdown(verdicts, summary), *across_lines]
        chosen = {**(chosen_budgets(budgets) if not budgets.empty else {}), **(separation_at or {})}
        if chosen:
            at_scores = separation.returns_at(scores, done.progress, chosen)
            at_summary = separation.summary_at(at_scores, references(scores), labels)
            at_pairs = separation.method_pairs(at_scores, at_summary)
            at_table = separation.separation_table(at_summary, at_pairs, task_names)
            if not at_table.empty:
                files.atomic_write_csv(out / "separation_at_budgets.csv", at_table, root=out)
                budgets_named = ", ".join(f"{env} {steps:,}" + ("" if env in (separation_at or {}) else " (where its "
                                          "best method made 95% of its gain, or its whole budget if still improving)")
                                          for env, steps in chosen.items())
                across_lines = [*separation.separation_markdown(
                    at_table, at_summary, "Does each task separate methods at its chosen budget?",
                    f"Budgets (env steps): {budgets_named}; each learning run's return is its learning curve read "
                    "at the budget, between the two evaluations around it (the references' do not depend on one). "),
                    *across_lines]
    text = markdown(summary, problems, plots, agents, [*gap_lines, *across_lines, *scaling_lines], violations,
                    config_notes(loaded)) \
        if not summary.empty else \
        "# maskbench report\n\nNo complete run.\n\n" + "\n".join(f"- {p}" for p in problems) + "\n"
    files.atomic_write_text(out / "report.md", text, root=out)
    return summary, problems, text


def _across_tasks(loaded: results.Results, summary: pd.DataFrame, out: Path, save, scores: pd.DataFrame) -> list[str]:
    """raw_scores.csv (every run's task, method, seed, score and share of the bound, for other tools), and
    where at least one method has scored runs: aggregate.csv, probability_of_improvement.csv,
    performance_profiles.csv, their figures and the report's section; where methods ran different tasks,
    also the aggregates on each set of tasks several methods share (aggregate_by_task_set.csv).

    The aggregates are over the **learned** tasks only: those where some method beats the best simple
    policy beyond seed noise (and those where no simple policy was run, which cannot be judged). The others
    are listed by name with their best simple policy and best method, not averaged in. ``scores``: the runs'
    :func:`run_scores`, computed once by the caller."""
    labels, _ = _config_differences(loaded.complete().runs, pooled=True)
    named = named_settings(scores["env"].unique()) if "env" in scores else {}
    raw = aggregate.raw_scores(scores, references(scores), labels, named)
    files.atomic_write_csv(out / "raw_scores.csv", raw, root=out)
    verdicts = _task_verdicts(summary, aggregate.task_labels(scores, named))
    learned = [task for task, verdict in verdicts.items() if verdict["learned"] is not False and verdict["best"]]
    unjudged = [task for task in learned if verdicts[task]["learned"] is None]
    headline = raw[raw["task"].isin(learned)]
    headline = pd.concat([headline, _best_simple_rows(headline, verdicts)], ignore_index=True)
    table = aggregate.aggregate_table(headline)
    if table.empty:
        return ["## Across tasks", "", "No task is learned at this budget: every method's score is within seed "
                "noise of, or below, its task's best simple policy (see each env's table).", "",
                *_not_learned_lines(verdicts), ""]
    poi = aggregate.probability_of_improvement(headline)
    profiles = aggregate.performance_profiles(headline)
    differences = aggregate.iqm_differences(headline)
    files.atomic_write_csv(out / "aggregate.csv", table, root=out)
    files.atomic_write_csv(out / "probability_of_improvement.csv", poi, root=out)
    files.atomic_write_csv(out / "iqm_differences.csv", differences, root=out)
    files.atomic_write_csv(out / "performance_profiles.csv", profiles, root=out)
    figures = [save("aggregate", aggregate_plots.plot_aggregates(table)),
               save("performance_profiles", aggregate_plots.plot_performance_profiles(profiles)),
               save("probability_of_improvement", aggregate_plots.plot_probability_of_improvement(poi))]
    lines = ["## Across tasks", "",
             f"Normalised scores (0 = random_valid, 100 = the task's anchor, its best non-clairvoyant reference) "
             f"over the {len(learned)} task{'s' * (len(learned) != 1)} where some method beats the best simple "
             f"policy beyond seed noise{' or no simple policy was run to judge it' if unjudged else ''}: "
             f"{', '.join(_md(t) + (' (not judged)' if t in unjudged else '') for t in learned)}; each task weighs "
             "the same whatever its seeds. Median and mean are over task means, the IQM over runs (rliable's). "
             f"Two 95% intervals (percentile bootstrap, {aggregate.RESAMPLES:,} resamples): **runs** resamples the "
             "runs within each task with the tasks fixed (what a claim about these tasks needs); **tasks** "
             "resamples the tasks, then their runs (what a claim about tasks like these needs). The gap is to the "
             "anchor, not to an optimum. Methods that ran different tasks (the tasks column) are not comparable in "
             "this table (the tables after it compare them on the tasks they share); the probability of improvement "
             "compares each pair on the tasks both ran (runs resampled).", "",
             *_aggregate_lines(table), "", *[f"![{Path(p).stem}]({p})" for p in figures if p], "",
             *_difference_lines(differences), *_not_learned_lines(verdicts), ""]
    per_set = []
    for number, (tasks, methods) in enumerate(aggregate.comparable_task_sets(headline), 1):
        shared = aggregate.aggregate_table(headline[headline["task"].isin(tasks) & headline["method"].isin(methods)])
        per_set.append(shared.assign(task_set="; ".join(tasks)))
        title = f"On the {len(tasks)} task{'s' * (len(tasks) != 1)} {', '.join(methods)} all ran"
        figure = save(f"aggregate_tasks_{number}", aggregate_plots.plot_aggregates(shared, title=title))
        lines += [f"### {_md(title)}", "", f"Tasks: {', '.join(_md(t) for t in tasks)}.", "",
                  *_aggregate_lines(shared), "", *([f"![{Path(figure).stem}]({figure})", ""] if figure else [])]
    if per_set:
        files.atomic_write_csv(out / "aggregate_by_task_set.csv", pd.concat(per_set, ignore_index=True), root=out)
    return lines


#: The pseudo-method under which the across-task tables show each task's best simple policy, the bar.
BEST_SIMPLE = "best simple policy"


def _best_simple_rows(raw: pd.DataFrame, verdicts: Mapping[str, Mapping[str, Any]]) -> pd.DataFrame:
    """Each task's best simple policy's runs as one pseudo-method, :data:`BEST_SIMPLE`, so every aggregate
    table and figure shows the bar beside the methods."""
    parts = [raw[(raw["task"] == task) & (raw["algo"] == verdict["simple"])]
             for task, verdict in verdicts.items() if verdict["simple"]]
    if not parts:
        return raw.iloc[0:0]
    return pd.concat(parts).assign(method=BEST_SIMPLE, algo=BEST_SIMPLE)


def _task_verdicts(summary: pd.DataFrame, task_names: Mapping[tuple[str, str], str]) -> dict[str, dict[str, Any]]:
    """Per task: whether some method beats its best simple policy beyond seed noise (None: no simple policy
    or no method ran there), the best simple policy and the best method with their scores."""
    verdicts = {}
    for (env, env_config), group in summary.groupby(["env", "env_config"], sort=False):
        methods = group[group["role"] == "method"]
        simple = group["best_simple"].iloc[0]
        simple_rows = group[group["algo"] == simple]
        best = methods.loc[methods["score"].idxmax()] if methods["score"].notna().any() else None
        judged = bool(simple) and len(methods) > 0 and methods["p_beats_best_simple_holm"].notna().any()
        verdicts[task_names.get((env, env_config), env)] = {
            "learned": bool(methods["beats_best_simple"].any()) if judged else None,
            "simple": simple, "simple_score": float(simple_rows["score"].iloc[0]) if len(simple_rows) else math.nan,
            "best": "" if best is None else aggregate.method_label(best["algo"], best["config"]),
            "best_score": math.nan if best is None else float(best["score"])}
    return verdicts


def _not_learned_lines(verdicts: Mapping[str, Mapping[str, Any]]) -> list[str]:
    rows = [[_md(task), _md(v["simple"]), _fixed(v["simple_score"]), _md(v["best"]), _fixed(v["best_score"])]
            for task, v in verdicts.items() if v["learned"] is False]
    if not rows:
        return []
    return ["**Not learned at this budget** (no method beats the best simple policy beyond seed noise; left out "
            "of the aggregates above):", "",
            *markdown_table(["task", "best simple policy", "its score", "best method", "its score"], rows)]


def _difference_lines(differences: pd.DataFrame) -> list[str]:
    """Every pair's IQM difference with both intervals, and which of them exclude 0."""
    if differences.empty:
        return []

    def verdict(excludes: Any) -> str:
        return "n/a" if excludes is None or pd.isna(excludes) else "yes" if excludes else "no"

    def interval(low: float, high: float, excludes: Any) -> str:  # one that cannot vary is no interval
        return "–" if excludes is None or pd.isna(excludes) else f"{low:.1f}–{high:.1f}"

    body = [[_md(r["method"]), _md(r["versus"]), r["tasks"], f"{r['iqm_difference']:.1f}",
             interval(r["ci_low"], r["ci_high"], r["beyond_runs"]),
             interval(r["task_ci_low"], r["task_ci_high"], r["beyond_tasks"]),
             f"runs: {verdict(r['beyond_runs'])}; tasks: {verdict(r['beyond_tasks'])}"]
            for _, r in differences.sort_values("iqm_difference", ascending=False).iterrows()]
    pairs, level = len(differences), differences["confidence"].iloc[0]
    return ["### Which differences survive which resampling", "",
            "Every pair's IQM difference on the tasks both ran (first minus second), with its intervals, "
            f"simultaneous over the table's {pairs} pair{'s' * (pairs != 1)}: each at {100 * level:.2f}% "
            f"(Bonferroni), so all hold together with at least 95%, each from {aggregate.RESAMPLES * pairs:,} "
            f"resamples (the tails hold as many draws as a lone 95% interval's at {aggregate.RESAMPLES:,}). "
            "**runs** resamples each task's runs of both methods (a claim about these tasks), **tasks** resamples "
            "the shared tasks, one draw for both methods, then their runs (a claim about tasks like these). A "
            "difference survives an interval that excludes 0; n/a (and no interval) where it cannot vary (one run "
            "of each method on every shared task, or a single shared task). iqm_differences.csv has them.", "",
            *markdown_table(["method", "versus", "tasks", "IQM difference", "runs interval", "tasks interval",
                             "excludes 0"],
                            body), ""]


def _aggregate_lines(table: pd.DataFrame) -> list[str]:
    """The aggregate table as markdown: each statistic with both intervals (runs; tasks)."""
    body = []
    for _, r in table.iterrows():
        cells = [f"{r[m]:.1f} (runs {r[m + '_ci_low']:.1f}–{r[m + '_ci_high']:.1f}; tasks "
                 f"{r[m + '_task_ci_low']:.1f}–{r[m + '_task_ci_high']:.1f})" for m in aggregate.METRICS]
        body.append([_md(r["method"]), r["tasks"], r["runs"], *cells])
    return markdown_table(["method", "tasks", "runs", "median", "IQM", "mean", "gap to anchor"], body)


def _thresholds(items: Sequence[str]) -> dict[str, float]:
    parsed = parse_assignments(items, what="--threshold")
    try:
        thresholds = {env: float(value) for env, value in parsed.items()}
    except ValueError:
        raise ConfigError(f"--threshold expects ENV=NUMBER, got {', '.join(items)}") from None
    bad = [f"{env}={value}" for env, value in thresholds.items() if not math.isfinite(value)]
    if bad:
        raise ConfigError(f"--threshold expects a finite return, got {bad[0]}")
    return thresholds


def _budgets(items: Sequence[str]) -> dict[str, int]:
    parsed = parse_assignments(items, what="--separation-at")
    budgets = {}
    for env, value in parsed.items():
        text = str(value).replace("_", "")
        if not text.isdigit() or int(text) <= 0:
            raise ConfigError(f"--separation-at expects ENV=ENV_STEPS (a positive integer), got {env}={value}")
        budgets[env] = int(text)
    return budgets


def build_parser() -> Parser:
    parser = Parser(prog="python -m suite.report",
                    description="Summarise every complete run of a results folder: summary.csv, report.md, plots.")
    parser.add_argument("results", nargs="?", default="results", help="results folder (any depth)")
    parser.add_argument("--out", type=folder, default=None, help="where to write summary.csv, report.md and plots/ "
                                                    "(default: the results folder)")
    parser.add_argument("--threshold", action="append", default=[], metavar="ENV=RETURN",
                        help="return threshold for steps/seconds to threshold, repeatable "
                             "(default: the env's own target return, e.g. portfolio's 3000, else the return at "
                             f"score {THRESHOLD_SCORE:g})")
    parser.add_argument("--separation-at", action="append", default=[], metavar="ENV=STEPS",
                        help="also judge whether ENV's tasks separate methods at STEPS env steps, from the learning "
                             "runs' periodic evaluations (repeatable; separation_at_budgets.csv)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    thresholds = _thresholds(args.threshold)
    budgets = _budgets(args.separation_at)
    try:
        summary, problems, text = write_report(args.results, args.out, thresholds, budgets)
    except FileNotFoundError as error:
        raise UsageError(str(error)) from None
    print(text)
    for problem in problems:
        print(f"warning: {problem}", file=sys.stderr)
    out = Path(args.out if args.out is not None else args.results)
    print(f"wrote {out / 'summary.csv'}, {out / 'report.md'} and {out / 'plots'}/", file=sys.stderr)
    return 0 if not summary.empty else 1


if __name__ == "__main__":
    sys.exit(run_cli(main, "python -m suite.report"))
