"""The optimality gap on held-out job-shop instances, the number a scheduling reader looks for.

Every run of a task (an env at one env config) whose evaluation episodes record the schedule's
``makespan`` (``job_shop`` and its levels) is joined, episode by episode on the episode's env seed, with the
task's ``optimum`` reference (``job_shop_optimum``: the solver's schedule replayed, with ``proven_optimal`` and
``optimum_bound`` per episode). The evaluation episodes are held out: episode ``i`` of every run plays env seed
``1,000,000 + i`` (``baselines.algorithm.EVAL_SEED_BASE``), while training draws its instances from generators
seeded by a 32-bit hash of the run seed (``derived_seed(seed, "env") + entry``), so every method and rule is
scored on the same fixed instances, which training never plays (a chance collision of a training generator's
seed with one of the evaluation seeds is about one in a million per run; an instance drawn twice, far rarer).

Per instance, the **gap** is ``makespan / reference - 1``:

- where the solver proved its schedule optimal, the reference is that optimum ("gap to the optimum");
- elsewhere it is the **best known** makespan: the least of the solver's schedule and every run's schedule of
  that instance in the folder (a rule can beat a time-limited solver), and the table says "gap to best known"
  with the share of instances proven. ``gap_to_bound_mean`` (``makespan / solver's lower bound - 1``) is then the
  other side: the true mean gap lies between the two.

Per row (env, env config, algo, config), over its complete runs: ``gap_mean`` is the mean over seeds of each
run's mean gap over the instances; ``gap_ci_low`` / ``gap_ci_high`` the 95% Student-t interval over seeds
(runs resampled, the instances fixed: how much another training seed would change the number; NaN with one
seed, zero width for a deterministic rule run twice); ``instance_ci_low`` / ``instance_ci_high`` the 95%
Student-t interval over instances of the per-instance gap averaged over seeds (instances resampled: how much
another set of held-out instances of the same size would change it, which is what a comparison with a paper's
own instances has to live with). ``p_below_best_rule``: one-sided Welch test over seeds that a method's mean
gap is below the best simple rule's (:func:`suite.stats.p_greater` on negated gaps; not corrected for multiple
tests: the report's corrected verdict is the summary's ``beats_best_simple`` on returns).

Beside them, :data:`ZHANG_2020`: the gaps Zhang et al. (2020, L2D) report for the same sizes. Pure functions of
the frames :func:`suite.results.load` returns: :func:`gap_table` and :func:`gap_markdown`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
import pandas as pd

from suite.aggregate import config_items, method_label, task_labels
from suite.stats import mean_ci, p_greater

__all__ = ["OBJECTIVE", "PROVEN", "BOUND", "ZHANG_2020", "ZHANG_2020_SOURCE", "ZHANG_2020_NAMES", "gap_table",
           "gap_markdown"]

#: The eval.csv column of the schedule's length (the env's episode metric), and the optimum reference's columns.
OBJECTIVE, PROVEN, BOUND = "makespan", "proven_optimal", "optimum_bound"

#: Zhang et al. (2020), Table 1 ("Results on instances of small and medium sizes"): mean gap (%) to Google
#: OR-Tools' solutions (3600 s per instance) on 100 random Taillard-style instances per size, for their rules and
#: their learned dispatcher (L2D), and the share of those instances OR-Tools solved optimally.
ZHANG_2020: dict[tuple[int, int], dict[str, float]] = {
    (6, 6): {"SPT": 42.0, "MWKR": 34.6, "FDD/MWKR": 24.0, "MOPNR": 29.2, "L2D": 17.7, "opt_rate": 100.0},
    (10, 10): {"SPT": 50.0, "MWKR": 42.6, "FDD/MWKR": 36.6, "MOPNR": 36.5, "L2D": 22.3, "opt_rate": 100.0},
    (15, 15): {"SPT": 59.2, "MWKR": 52.6, "FDD/MWKR": 45.1, "MOPNR": 42.6, "L2D": 26.7, "opt_rate": 99.0},
}
ZHANG_2020_SOURCE = ("Zhang, Song, Cao, Zhang, Tan & Xu (2020), \"Learning to Dispatch for Job Shop Scheduling via "
                     "Deep Reinforcement Learning\", NeurIPS 2020, Table 1 (p. 7 of paper/paper.pdf in "
                     "github.com/zcaicaros/L2D)")
#: Our rules that are theirs.
ZHANG_2020_NAMES = {"shortest_processing_time": "SPT", "most_work_remaining": "MWKR",
                    "most_operations_remaining": "MOPNR"}

_COLUMNS = ["env", "env_config", "size", "algo", "role", "config", "config_id", "seeds", "episodes", "reference",
            "proven_share", "makespan_mean", "reference_mean", "gap_mean", "gap_ci_low", "gap_ci_high",
            "instance_ci_low", "instance_ci_high", "gap_to_bound_mean", "p_below_best_rule", "zhang2020_name",
            "zhang2020_gap"]


def _headline(evals: pd.DataFrame) -> pd.DataFrame:
    """Each run's headline policy's rows (its first ``(policy, mask)``, as :func:`suite.report.headline_evals`)."""
    first = evals.groupby("run", sort=False)[["policy", "mask"]].first()
    return evals[(evals["policy"] == evals["run"].map(first["policy"]))
                 & (evals["mask"] == evals["run"].map(first["mask"]))]


def _task_keys(runs: pd.DataFrame) -> pd.Series:
    """Each run's env config as one string (the summary's ``env_config``), indexed by run."""
    columns = sorted(c for c in runs.columns if c.startswith("env."))
    return pd.Series([",".join(f"{c[4:]}={row[c]}" for c in columns if not pd.isna(row[c]))
                      for _, row in runs.iterrows()], index=runs["run"].to_numpy(), dtype=object)


def _size(runs: pd.DataFrame) -> str:
    if {"env.n_jobs", "env.n_machines"} <= set(runs.columns):
        n, m = runs["env.n_jobs"].iloc[0], runs["env.n_machines"].iloc[0]
        if not (pd.isna(n) or pd.isna(m)):
            return f"{int(n)}x{int(m)}"
    return ""


def gap_table(runs: pd.DataFrame, evals: pd.DataFrame, roles: Mapping[str, str],
              labels: Mapping[str, str] | None = None) -> pd.DataFrame:
    """``job_shop_gaps.csv``: one row per (env, env config, algo, config) of the tasks that have an ``optimum``
    reference recording the makespan (empty without one).

    ``runs`` and ``evals``: the complete runs' frames (:func:`suite.results.load`, ``.complete()``); ``roles``:
    algo -> reference role (:func:`baselines.references.roles`; others are methods); ``labels``: config_id ->
    a short config label (the summary's). The module docstring says what each column is.
    """
    labels = dict(labels or {})
    if evals.empty or OBJECTIVE not in evals:
        return pd.DataFrame(columns=_COLUMNS)
    head = _headline(evals).dropna(subset=[OBJECTIVE])
    keys = _task_keys(runs)
    head = head.assign(env_config=head["run"].map(keys), role=head["algo"].map(lambda a: roles.get(a, "method")))
    rows = []
    for (env, env_config), task in head.groupby(["env", "env_config"], sort=False):
        optimum = task[task["role"] == "optimum"]
        if optimum.empty:
            continue
        optimum = optimum.assign(**{c: optimum[c] if c in optimum else np.nan for c in (PROVEN, BOUND)})
        per_seed = optimum.groupby("env_seed").agg(solver=(OBJECTIVE, "min"), proven=(PROVEN, "max"),
                                                    bound=(BOUND, "max"))
        proven = per_seed["proven"].fillna(0) >= 1
        best_any = task.groupby("env_seed")[OBJECTIVE].min().reindex(per_seed.index)
        reference = per_seed["solver"].where(proven, np.minimum(per_seed["solver"], best_any))
        bound = per_seed["bound"].where(~proven, per_seed["solver"])
        scored = task[task["env_seed"].isin(per_seed.index)]
        scored = scored.assign(gap=scored[OBJECTIVE] / scored["env_seed"].map(reference) - 1,
                               to_bound=scored[OBJECTIVE] / scored["env_seed"].map(bound) - 1)
        proven_share = float(proven.mean())
        words = "proven optimum" if proven_share >= 1 else "best known"
        size = _size(runs[runs["run"].isin(scored["run"].unique())])
        literature = ZHANG_2020.get(tuple(int(x) for x in size.split("x")) if size else (), {})
        per_run_gap = scored.groupby("run", sort=False)["gap"].mean()
        groups = list(scored.groupby(["algo", "config_id"], sort=False))
        rule_gaps = {algo: per_run_gap[group["run"].unique()] for (algo, _), group in groups
                     if roles.get(algo) == "simple"}
        best_rule = min(rule_gaps, key=lambda a: rule_gaps[a].mean()) if rule_gaps else ""
        for (algo, config_id), group in groups:
            gaps = per_run_gap[group["run"].unique()]
            mean, low, high = mean_ci(gaps.to_numpy())
            _, i_low, i_high = mean_ci(group.groupby("env_seed")["gap"].mean().to_numpy())
            role = roles.get(algo, "method")
            theirs = ZHANG_2020_NAMES.get(algo, "")
            rows.append({
                "env": env, "env_config": env_config, "size": size, "algo": algo, "role": role,
                "config": _without(labels.get(config_id, ""), env_config), "config_id": config_id,
                "seeds": len(gaps),
                "episodes": int(group["env_seed"].nunique()), "reference": words, "proven_share": proven_share,
                "makespan_mean": float(group[OBJECTIVE].mean()),
                "reference_mean": float(reference[group["env_seed"].unique()].mean()),
                "gap_mean": mean, "gap_ci_low": low, "gap_ci_high": high,
                "instance_ci_low": i_low, "instance_ci_high": i_high,
                "gap_to_bound_mean": float(group.groupby("run")["to_bound"].mean().mean()),
                "p_below_best_rule": p_greater(-gaps.to_numpy(), -rule_gaps[best_rule].to_numpy())
                if role == "method" and best_rule else math.nan,
                "zhang2020_name": theirs, "zhang2020_gap": literature.get(theirs, math.nan) / 100 if theirs
                else math.nan})
    table = pd.DataFrame(rows, columns=_COLUMNS)
    return table.sort_values(["env", "env_config", "gap_mean"], kind="stable").reset_index(drop=True)


def _percent(value: float) -> str:
    return "–" if value is None or pd.isna(value) else f"{100 * value:.1f}%"


def _interval(low: float, high: float) -> str:
    return "–" if pd.isna(low) or pd.isna(high) else f"{100 * low:.1f} to {100 * high:.1f}"


def gap_markdown(table: pd.DataFrame) -> list[str]:
    """The report's job-shop section: per task, the gap of every method and rule, and Zhang et al.'s beside."""
    if table.empty:
        return []
    lines = ["## Job shop: optimality gap on held-out instances", "",
             "Gap = makespan / optimum − 1 per evaluation instance (env seeds 1,000,000 + i, which training never "
             "plays), averaged over the instances, then over seeds. Intervals (95%, Student-t): **seeds** resamples "
             "the runs (training seeds) with the instances fixed; **instances** resamples the instances (per-instance "
             "gap averaged over seeds). Where the solver did not prove an instance optimal, the reference is the best "
             "known makespan (the least of the solver's schedule and every run's) and the column says \"gap to best "
             "known\"; the gap to the solver's lower bound is then the other side of the true gap. "
             "\"Below best rule\": one-sided Welch p over seeds that the method's mean gap is below the best simple "
             "rule's (uncorrected).",
             ""]
    titles = task_labels(table[["env", "env_config"]], {env: {"placement": "semi_active"}
                                                        for env in table["env"].unique()})
    for (env, env_config), task in table.groupby(["env", "env_config"], sort=False):
        title = titles[(env, env_config)]
        size = task["size"].iloc[0]
        proven = task["proven_share"].iloc[0]
        what = "gap to the optimum" if proven >= 1 else "gap to best known"
        lines += [f"### {_clean(title)}" + (f" ({size})" if size else ""), "",
                  f"{int(task['episodes'].max())} held-out instances; the solver proved {100 * proven:.0f}% of them "
                  f"optimal ({'every reference is a proven optimum' if proven >= 1 else 'the rest: best known'}).", "",
                  f"| method or rule | role | seeds | instances | makespan | {what} | 95% CI, seeds | "
                  "95% CI, instances | gap to solver's bound | below best rule (p) | Zhang et al. 2020, same rule |",
                  "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
        for _, r in task.iterrows():
            name = method_label(r["algo"], r["config"])
            theirs = f"{r['zhang2020_name']} {_percent(r['zhang2020_gap'])}" if r["zhang2020_name"] else "–"
            p = "–" if pd.isna(r["p_below_best_rule"]) else f"{r['p_below_best_rule']:.2g}"
            lines.append(f"| {_clean(name)} | {r['role']} | {r['seeds']} | {r['episodes']} | "
                         f"{r['makespan_mean']:.1f} | {_percent(r['gap_mean'])} | "
                         f"{_interval(r['gap_ci_low'], r['gap_ci_high'])} | "
                         f"{_interval(r['instance_ci_low'], r['instance_ci_high'])} | "
                         f"{_percent(r['gap_to_bound_mean'])} | {p} | {theirs} |")
        literature = ZHANG_2020.get(tuple(int(x) for x in size.split("x")) if size else (), None)
        if literature:
            numbers = ", ".join(f"{name} {value:.1f}%" for name, value in literature.items() if name != "opt_rate")
            n_jobs, n_machines = (int(x) for x in size.split("x"))
            placement = _placement(env_config)
            where = ("here every operation is left-shifted as L2D's env does it (placement=active: into the "
                     "earliest idle gap on its machine where it fits)" if placement == "active" else
                     "L2D's env left-shifts a dispatched operation into the earliest idle gap on its machine where "
                     f"it fits (active schedules); here it is appended (placement={placement or 'semi_active'}, "
                     "semi-active)")
            lines += ["", f"Zhang et al. (2020) at {size}: {numbers} (mean gap to OR-Tools, 3600 s per instance, "
                          f"optimal on {literature['opt_rate']:.0f}% of their 100 instances). Not the same set-up: "
                          "their own 100 random instances (numpy seed 200; durations 1..98 from numpy's randint, ours "
                          f"1..99); {where}; the paper does not say how its rules place operations; a graph network "
                          "on the disjunctive graph trained 10,000 iterations "
                          f"of 4 instances ({40_000 * n_jobs * n_machines:,} dispatches at this size), the saved model "
                          "the best on a validation file that is the test file (released code); no FIFO rule there, "
                          "no FDD/MWKR here."]
        lines.append("")
    lines += [f"Source of the literature numbers: {ZHANG_2020_SOURCE}.", ""]
    return lines


def _without(label: str, env_config: str) -> str:
    """A config label without the env settings it shares with the task (the section's title names them): a
    rule run under two placements has ``placement=...`` in its label, which its task already says."""
    shared = {f"{key}={value}" for key, value in config_items(str(env_config)).items()}
    return ", ".join(part for part in label.split(", ") if part and part not in shared)


def _placement(env_config: str) -> str:
    """The task's ``placement`` (job_shop's env setting) from its env config string; empty where it is not named
    (a run recorded before the setting, read without it: semi-active)."""
    return config_items(str(env_config)).get("placement", "")


def _clean(text: str) -> str:
    """Names from results made inert in a markdown table (as the report's other tables)."""
    return (str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("|", "\\|")
            .replace("\n", " "))
