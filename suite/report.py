"""``python -m suite.report [RESULTS]``: one comparison of every complete run, as files and a table.

Writes ``summary.csv`` (one row per env, algo and config), ``agents.csv`` (multi-agent runs: one row
per agent too), ``violations.csv`` (per constraint, :mod:`suite.violations`), ``mask_noise.csv``
(runs evaluated under corrupted masks, :mod:`suite.mask_noise_report`), ``scaling.csv`` (runs on two
or more levels of an env: score by level and method, :mod:`suite.scaling`), ``report.md`` (the same
as markdown tables, the scaling paragraphs, the problems found, and the plots) and ``plots/*.png``
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
- **score**: normalised return, 0 = ``random_valid``, 100 = ``oracle`` (each the mean over its
  seeds on the same env config); NaN where a reference was not run.
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
from envs.config import ConfigError, parse_assignments
from suite import aggregate, aggregate_plots, files, results, scaling
from suite.cli import Parser, UsageError, run_cli
from suite.mask_noise_report import mask_noise_table, plot_mask_noise
from suite.stats import mean_ci
from suite.violations import violation_markdown, violation_table

__all__ = ["env_target", "headline_evals", "run_scores", "references", "summarize", "config_notes", "agent_summary",
           "learning_curves",
           "markdown", "scaling_markdown", "plot_learning_curves", "plot_penalty_sweep", "write_report", "main"]

#: Envs without a target return of their own are timed to the return at this score.
THRESHOLD_SCORE = 80.0
LOWER, UPPER = "random_valid", "oracle"
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
               "env_config": _env_config_key(info, env_columns),
               "run": run, "policy": f"{group['policy'].iloc[0]}, mask {group['mask'].iloc[0]}",
               "return": float(group["return"].mean()),
               "eval_invalid_rate": float(group["invalid_steps"].sum() / group["length"].sum()),
               "mask_off_return": float(off["return"].mean()) if group["mask"].iloc[0] == "on" and len(off)
               else math.nan,
               "train_invalid_rate": _weighted_invalid_rate(progress),
               "env_steps_per_second": float(progress["env_steps_per_second"].median())
               if "env_steps_per_second" in progress else math.nan,
               "env_steps": int(info["env_steps"]), "wall_seconds": float(info["wall_seconds"]),
               "target": env_target(info["env"], _env_config(info, env_columns))}
        for metric in metrics:
            if metric in group:
                row[f"{metric}_mean"] = float(group[metric].mean())
        rows.append(row)
    return pd.DataFrame(rows)


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


def _env_config_key(info: pd.Series, env_columns: Sequence[str]) -> str:
    """The run's env config as one comparable string (runs on different env configs play different games)."""
    return ",".join(f"{c[4:]}={info[c]}" for c in env_columns if not pd.isna(info[c]))


def references(scores: pd.DataFrame) -> pd.DataFrame:
    """Per env and env config: ``lower`` (random_valid) and ``upper`` (oracle) mean returns over seeds (NaN if
    not run), indexed by ``(env, env_config)``: a reference scores only runs of its own env config (e.g.
    three traders are not scored against one trader's references)."""
    if "env_config" not in scores:
        scores = scores.assign(env_config="")
    out = {}
    for key, group in scores.groupby(["env", "env_config"]):
        out[key] = {bound: float(group.loc[group["algo"] == algo, "return"].mean()) if (group["algo"] == algo).any()
                    else math.nan for bound, algo in (("lower", LOWER), ("upper", UPPER))}
    frame = pd.DataFrame.from_dict(out, orient="index", columns=["lower", "upper"])
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
    is named by that ratio alone (``penalty=10x default``), so a method is the same method on every env."""
    labels: dict[str, str] = {}
    notes = []
    config_columns = [c for c in runs.columns if c.startswith(("env.", "algo."))
                      or c in ("env_version", "steps", "episodes")]
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
    rows = []
    for (env, algo, cid), group in scores.groupby(_KEYS, sort=False):
        lower, upper = refs.loc[(env, group["env_config"].iloc[0])]
        normalised = 100 * (group["return"] - lower) / (upper - lower) if upper != lower else group["return"] * math.nan
        threshold = _threshold(env, group["target"].iloc[0], lower, upper, thresholds)
        crossings = [first_crossing(progress_of[run], threshold) for run in group["run"]]
        reached = [c for c in crossings if not math.isnan(c[0])]
        mean, low, high = mean_ci(group["return"])
        s_mean, s_low, s_high = mean_ci(normalised)
        row = {"env": env, "algo": algo, "config": labels.get(cid, ""), "config_id": cid, "seeds": len(group),
               "policy": group["policy"].iloc[0], "return_mean": mean, "return_ci_low": low, "return_ci_high": high,
               "score": s_mean, "score_ci_low": s_low, "score_ci_high": s_high}
        for column in group.columns:
            if column.endswith("_mean") and column != "return":
                row[column] = float(group[column].mean())
        row.update({"train_invalid_rate": float(group["train_invalid_rate"].mean()),
                    "eval_invalid_rate": float(group["eval_invalid_rate"].mean()),
                    "mask_off_return": float(group["mask_off_return"].mean()),
                    "threshold": threshold, "seeds_reaching": len(reached),
                    "seeds_evaluated": sum(_evaluated_during_training(progress_of[run]) for run in group["run"]),
                    "steps_to_threshold": float(np.median([c[0] for c in reached])) if reached else math.nan,
                    "seconds_to_threshold": float(np.median([c[1] for c in reached])) if reached else math.nan,
                    "env_steps": float(group["env_steps"].mean()), "wall_seconds": float(group["wall_seconds"].mean()),
                    "env_steps_per_second": float(group["env_steps_per_second"].mean())})
        rows.append(row)
    return pd.DataFrame(rows), problems


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


def learning_curves(progress: pd.DataFrame) -> pd.DataFrame:
    """Mean and 95% CI over seeds of each (env, algo, config) at every env-steps value.

    The curve is the periodic evaluation of the headline policy (``eval_return_mean``) where the runs
    have it, else the training episodes' mean return. Seeds share env-steps values when they share a
    config (same batch size), so no interpolation is needed.
    """
    rows = []
    for (env, algo, cid), group in progress.groupby(_KEYS, sort=False):
        column = "eval_return_mean" if "eval_return_mean" in group and group["eval_return_mean"].notna().any() \
            else "episode_return_mean"
        for steps, at in group.dropna(subset=[column]).groupby("env_steps"):
            mean, low, high = mean_ci(at[column])
            rows.append({"env": env, "algo": algo, "config_id": cid, "env_steps": steps, "curve": column,
                         "mean": mean, "ci_low": low, "ci_high": high, "seeds": len(at)})
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
    return "–" if value is None or math.isnan(value) else f"{value:,.{decimals}f}"


def scaling_markdown(table: pd.DataFrame, plots: Mapping[str, str]) -> list[str]:
    """The scaling section of ``report.md``: per family, the paragraph (:func:`suite.scaling.describe`), the
    figure and a table of score by level and method."""
    lines = ["## Scaling with the level", "",
             "Normalised score (0 = random_valid, 100 = oracle on each level), mean and 95% CI over seeds, "
             "by level; levels are placed at their inadmissible share (`python -m suite.levels`).", ""]
    for family in scaling.families(table):
        rows = table[table["family"] == family]
        rows = rows[~rows["algo"].isin(scaling.REFERENCES)]
        levels = rows.drop_duplicates("level").sort_values("level")
        lines += [f"### {family}", "", scaling.describe(table, family), ""]
        if family in plots:
            lines += [f"![scaling {family}]({plots[family]})", ""]
        header = " | ".join(f"{r['env']} ({r['x']:.1%})" if "distance" not in r["x_label"]
                            else f"{r['env']} (distance {r['x']:.3g})" for _, r in levels.iterrows())
        lines += [f"| method | {header} |", "| --- |" + " --- |" * len(levels)]
        for method, line in rows.groupby("method", sort=True):
            cells = []
            for level in levels["level"]:
                row = line[line["level"] == level]
                cells.append("–" if row.empty else
                             f"{_fixed(row['score'].iloc[0])} ({_fixed(row['score_ci_low'].iloc[0])} to "
                             f"{_fixed(row['score_ci_high'].iloc[0])})")
            lines.append(f"| {method} | {' | '.join(cells)} |")
        lines.append("")
    return lines


def markdown(summary: pd.DataFrame, problems: Sequence[str], plots: Sequence[str] = (),
             agents: pd.DataFrame | None = None, scaling_lines: Sequence[str] = (),
             violations: pd.DataFrame | None = None, notes: Sequence[str] = ()) -> str:
    """``report.md``: a table per env (and per agent for multi-agent runs), the scaling section where the
    runs cover levels, then the configs compared (``notes``), the problems and the plots."""
    lines = ["# maskbench report", ""]
    for env, group in summary.groupby("env", sort=False):
        threshold = group["threshold"].iloc[0]
        lines += [f"## {env}", "",
                  "Score: 0 = random_valid, 100 = oracle. Return and score: mean over seeds; the interval is "
                  "Student-t's 95% over seeds (the across-task statistics below use the stratified bootstrap). "
                  f"Threshold for steps/seconds: return ≥ {_fmt(threshold)}.", "",
                  "| algo | config | seeds | headline policy | return (95% CI) | score | invalid: train / eval | "
                  "return, mask off | seeds reaching | env steps / seconds to threshold | env steps/s |",
                  "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
        for _, r in group.iterrows():
            ci = f" ({_fmt(r['return_ci_low'])} to {_fmt(r['return_ci_high'])})" \
                if not math.isnan(r["return_ci_low"]) else ""
            lines.append(
                f"| {r['algo']} | {r['config'] or '–'} | {r['seeds']} | {r['policy']} | {_fmt(r['return_mean'])}{ci} | "
                f"{_fixed(r['score'])} | {100 * r['train_invalid_rate']:.2f}% / {100 * r['eval_invalid_rate']:.2f}% | "
                f"{_fmt(r['mask_off_return'])} | {_reaching(r)} | "
                f"{_fixed(r['steps_to_threshold'], 0)} / {_fixed(r['seconds_to_threshold'])} | "
                f"{_fixed(r['env_steps_per_second'], 0)} |")
        lines.append("")
        if violations is not None and not violations.empty:
            lines += violation_markdown(violations, env)
        mine = agents[agents["env"] == env] if agents is not None and not agents.empty else ()
        if len(mine):
            labels = dict(zip(group["config_id"], group["config"]))
            lines += ["Several agents: the return above is per agent (the mean over agents); each agent's:", "",
                      "| algo | config | agent | return (95% CI) | invalid: eval |", "| --- | --- | --- | --- | --- |"]
            for _, r in mine.iterrows():
                ci = f" ({_fmt(r['return_ci_low'])} to {_fmt(r['return_ci_high'])})" \
                    if not math.isnan(r["return_ci_low"]) else ""
                lines.append(f"| {r['algo']} | {labels.get(r['config_id']) or '–'} | {r['agent']} | "
                             f"{_fmt(r['return_mean'])}{ci} | {100 * r['eval_invalid_rate']:.2f}% |")
            lines.append("")
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


def plot_learning_curves(curves: pd.DataFrame, env: str):
    """Mean and 95% band over seeds against env steps, one line per algo (and config) on ``env``."""
    fig, ax = _figure()
    for (algo, cid), c in curves[curves["env"] == env].groupby(["algo", "config_id"], sort=False):
        if algo in (LOWER, UPPER) or len(c) == 1:  # references do not learn: a level across the plot
            ax.axhline(c["mean"].mean(), linestyle="--", linewidth=1, label=algo,
                       color="grey" if algo == LOWER else "black")
            continue
        one_config = curves[curves["algo"] == algo]["config_id"].nunique() == 1
        line, = ax.plot(c["env_steps"], c["mean"], label=algo if one_config else f"{algo} [{cid}]")
        ax.fill_between(c["env_steps"], c["ci_low"], c["ci_high"], alpha=0.2, color=line.get_color())
    ax.set_xlabel("env steps")
    ax.set_ylabel("return (headline policy on the evaluation seeds)")
    ax.set_title(f"{env}: learning curves, mean and 95% CI over seeds")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


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
                 ) -> tuple[pd.DataFrame, list[str], str]:
    """Load ``path``, write summary.csv, report.md and plots/ under ``out`` (default ``path``); return
    the summary, the problems and the markdown."""
    loaded = results.load(path)
    unknown = sorted(set(thresholds or {}) - set(loaded.runs["env"]))
    if unknown:
        raise UsageError(f"--threshold names env {unknown[0]!r}, which no run under {str(path)!r} has; envs there: "
                         f"{', '.join(sorted(set(loaded.runs['env'])))}")
    not_metrics = (*results.RUN_COLUMNS, *results.EVAL_COLUMNS, results.MASK_NOISE, results.MASK_NOISE_P,
                   "violation_distance")
    metrics = [c for c in loaded.evals.columns if c not in not_metrics and not c.startswith("violations_")]
    summary, problems = summarize(loaded, thresholds, metrics)
    out = Path(out if out is not None else path)
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = tempfile.TemporaryFile(dir=out)
        probe.close()
    except OSError as error:
        raise UsageError(f"cannot write the report to {str(out)!r}: {error.strerror or error}") from None
    plots: list[str] = []
    agents = agent_summary(loaded)
    scaling_lines: list[str] = []
    across_lines: list[str] = []
    violations = pd.DataFrame()
    if not summary.empty:
        labels = dict(zip(summary["config_id"], summary["config"]))
        violations = violation_table(loaded, labels)
        if not violations.empty:
            files.atomic_write_csv(out / "violations.csv", violations)
        noise = mask_noise_table(loaded, labels)
        if not noise.empty:
            files.atomic_write_csv(out / "mask_noise.csv", noise)
        files.atomic_write_csv(out / "summary.csv", summary)
        if not agents.empty:
            files.atomic_write_csv(out / "agents.csv", agents)
        curves = learning_curves(loaded.complete().progress)
        import matplotlib.pyplot as plt

        def save(name: str, fig) -> str | None:
            if fig is None:
                return None
            try:
                (out / "plots").mkdir(exist_ok=True)
                fig.savefig(out / "plots" / f"{name}.png")
            except OSError as error:
                raise UsageError(f"cannot write plots under {str(out)!r}: {error.strerror or error}") from None
            finally:
                plt.close(fig)
            return f"plots/{name}.png"

        for env in summary["env"].unique():
            for name, fig in ((f"learning_curves_{env}", plot_learning_curves(curves, env)),
                              (f"penalty_sweep_{env}", plot_penalty_sweep(summary, env)),
                              (f"mask_noise_{env}", plot_mask_noise(noise, env) if not noise.empty else None)):
                saved = save(name, fig)
                if saved:
                    plots.append(saved)
        table = scaling.scaling_table(summary)
        if not table.empty:
            files.atomic_write_csv(out / "scaling.csv", table)
            figures = {family: save(f"scaling_{family}", scaling.plot_scaling(table, family))
                       for family in scaling.families(table)}
            scaling_lines = scaling_markdown(table, {family: path for family, path in figures.items() if path})
        across_lines = _across_tasks(loaded, out, save)
    text = markdown(summary, problems, plots, agents, [*across_lines, *scaling_lines], violations,
                    config_notes(loaded)) \
        if not summary.empty else \
        "# maskbench report\n\nNo complete run.\n\n" + "\n".join(f"- {p}" for p in problems) + "\n"
    files.atomic_write_text(out / "report.md", text)
    return summary, problems, text


def _across_tasks(loaded: results.Results, out: Path, save) -> list[str]:
    """raw_scores.csv (every run's task, method, seed and score, for other tools), and where at least one
    method has scored runs: aggregate.csv, probability_of_improvement.csv, performance_profiles.csv, their
    figures and the report's section; where methods ran different tasks, also the aggregates on each set of
    tasks several methods share (aggregate_by_task_set.csv, a table and figure each)."""
    scores = run_scores(loaded)
    labels, _ = _config_differences(loaded.complete().runs, pooled=True)
    raw = aggregate.raw_scores(scores, references(scores), labels)
    files.atomic_write_csv(out / "raw_scores.csv", raw)
    table = aggregate.aggregate_table(raw)
    if table.empty:
        return []
    poi = aggregate.probability_of_improvement(raw)
    profiles = aggregate.performance_profiles(raw)
    files.atomic_write_csv(out / "aggregate.csv", table)
    files.atomic_write_csv(out / "probability_of_improvement.csv", poi)
    files.atomic_write_csv(out / "performance_profiles.csv", profiles)
    figures = [save("aggregate", aggregate_plots.plot_aggregates(table)),
               save("performance_profiles", aggregate_plots.plot_performance_profiles(profiles)),
               save("probability_of_improvement", aggregate_plots.plot_probability_of_improvement(poi))]
    lines = ["## Across tasks", "",
             "Normalised scores (0 = random_valid, 100 = oracle) over every task (env x env config) each method ran, "
             "each task weighing the same whatever its seeds; 95% intervals by the stratified bootstrap (runs "
             "resampled within each task, 2,000 resamples, percentile). The per-env tables above use Student-t "
             "intervals over seeds. Methods that ran different tasks (the tasks column) are not comparable in this "
             "table (the tables after it compare them on the tasks they share); the probability of improvement "
             "compares each pair on the tasks both ran.", "",
             *_aggregate_lines(table), "", *[f"![{Path(p).stem}]({p})" for p in figures if p], ""]
    per_set = []
    for number, (tasks, methods) in enumerate(aggregate.comparable_task_sets(raw), 1):
        shared = aggregate.aggregate_table(raw[raw["task"].isin(tasks) & raw["method"].isin(methods)])
        per_set.append(shared.assign(task_set="; ".join(tasks)))
        title = f"On the {len(tasks)} task{'s' * (len(tasks) != 1)} {', '.join(methods)} all ran"
        figure = save(f"aggregate_tasks_{number}", aggregate_plots.plot_aggregates(shared, title=title))
        lines += [f"### {title}", "", f"Tasks: {', '.join(tasks)}.", "", *_aggregate_lines(shared), "",
                  *([f"![{Path(figure).stem}]({figure})", ""] if figure else [])]
    if per_set:
        files.atomic_write_csv(out / "aggregate_by_task_set.csv", pd.concat(per_set, ignore_index=True))
    return lines


def _aggregate_lines(table: pd.DataFrame) -> list[str]:
    """The aggregate table as markdown: each statistic with its interval."""
    lines = ["| method | tasks | runs | median | IQM | mean | optimality gap |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    for _, r in table.iterrows():
        cells = [f"{r[m]:.1f} ({r[m + '_ci_low']:.1f}–{r[m + '_ci_high']:.1f})"
                 for m in ("median", "iqm", "mean", "optimality_gap")]
        lines.append(f"| {r['method']} | {r['tasks']} | {r['runs']} | " + " | ".join(cells) + " |")
    return lines


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


def build_parser() -> Parser:
    parser = Parser(prog="python -m suite.report",
                    description="Summarise every complete run of a results folder: summary.csv, report.md, plots.")
    parser.add_argument("results", nargs="?", default="results", help="results folder (any depth)")
    parser.add_argument("--out", default=None, help="where to write summary.csv, report.md and plots/ "
                                                    "(default: the results folder)")
    parser.add_argument("--threshold", action="append", default=[], metavar="ENV=RETURN",
                        help="return threshold for steps/seconds to threshold, repeatable "
                             "(default: the env's own target return, e.g. portfolio's 3000, else the return at "
                             f"score {THRESHOLD_SCORE:g})")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    thresholds = _thresholds(args.threshold)
    try:
        summary, problems, text = write_report(args.results, args.out, thresholds)
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
