"""Learning curves: what each method's return did over training, in the units its references are in.

A run's curve is the best data it has, named in the figure:

1. its periodic evaluations (``eval_return_mean`` in ``progress.csv``, ``--eval-every``): the headline
   policy on the evaluation episodes, the units of every reference;
2. else its training episodes' return, when the training env pays the evaluation env's reward (no
   ``train_env_config``);
3. else a training-episode metric that *is* the evaluation return (the eval rows' metric equals their
   return, e.g. portfolio's ``portfolio_value`` where training pays ``value_change``), so the curve is in
   the references' units again;
4. else the training env's own return, on an axis of its own, without the references (their units differ).

Seeds of one config rarely stop at the same env steps, so each seed's curve is interpolated onto one grid
of the steps all of them reached (40 points, ``numpy.interp``), and mean and Student-t 95% band are taken
there. References (their evaluation return, mean over seeds) are level lines in the same units, never a
curve. A figure with no method curve of two or more points is not drawn.

Pure functions of :func:`suite.results.load`'s frames (bsuite's style): :func:`learning_curves` computes,
:func:`plot_learning_curves` draws.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
import pandas as pd

from suite import results
from suite.aggregate import method_label
from suite.stats import mean_ci

__all__ = ["CURVE_LABELS", "learning_curves", "plot_learning_curves"]

#: Points on each config's common step grid.
GRID_POINTS = 40
EVAL_CURVE, TRAIN_CURVE = "eval_return_mean", "episode_return_mean"
CURVE_LABELS = {EVAL_CURVE: "periodic evaluation of the headline policy",
                TRAIN_CURVE: "training episodes' return"}
_KEYS = ["env", "algo", "config_id"]


def _metric_equal_to_return(evals: pd.DataFrame) -> str | None:
    """An evaluation metric column whose every value is the episode's return (None: none is)."""
    for column in evals.columns:
        if column in results.EVAL_COLUMNS or column in ("return", "agent"):
            continue
        values = pd.to_numeric(evals[column], errors="coerce")
        if values.notna().all() and np.allclose(values, evals["return"], rtol=1e-6, atol=1e-9):
            return column
    return None


def curve_column(progress: pd.DataFrame, run: pd.Series, evals: pd.DataFrame) -> tuple[str, bool]:
    """The ``progress.csv`` column that is this run's curve, and whether it is in the evaluation's units."""
    if EVAL_CURVE in progress and progress[EVAL_CURVE].notna().any():
        return EVAL_CURVE, True
    train_config = run.get("algo.train_env_config")
    if train_config is None or (isinstance(train_config, float) and math.isnan(train_config)) or train_config == "":
        return TRAIN_CURVE, True
    metric = _metric_equal_to_return(evals)
    if metric is not None and f"{metric}_mean" in progress and progress[f"{metric}_mean"].notna().any():
        return f"{metric}_mean", True
    return TRAIN_CURVE, False


def learning_curves(loaded: results.Results) -> pd.DataFrame:
    """Per (env, algo, config) and grid point: ``env_steps``, ``mean``, ``ci_low``, ``ci_high``, ``seeds``,
    ``curve`` (the column) and ``same_units`` (whether it is in the evaluation's units)."""
    done = loaded.complete()
    if done.progress.empty:
        return pd.DataFrame(columns=[*_KEYS, "env_steps", "mean", "ci_low", "ci_high", "seeds", "curve", "same_units"])
    runs = done.runs.set_index("run")
    evals_of = dict(tuple(results.clean_evals(done.evals).groupby("run", sort=False)))
    per_run = {}
    for run, progress in done.progress.groupby("run", sort=False):
        column, same = curve_column(progress, runs.loc[run], evals_of.get(run, pd.DataFrame(columns=["return"])))
        points = progress[["env_steps", column]].dropna()
        per_run[run] = (column, same, points["env_steps"].to_numpy(np.float64), points[column].to_numpy(np.float64))
    rows = []
    for (env, algo, cid), group in done.runs.groupby(_KEYS, sort=False):
        curves = [per_run[run] for run in group["run"] if run in per_run and len(per_run[run][2])]
        if not curves:
            continue
        column, same = curves[0][0], all(c[1] for c in curves)
        curves = [c for c in curves if c[0] == column]
        start, stop = max(c[2][0] for c in curves), min(c[2][-1] for c in curves)
        grid = np.unique(np.linspace(start, stop, GRID_POINTS)) if stop > start else np.array([stop])
        values = np.stack([np.interp(grid, steps, returns) for _, _, steps, returns in curves])
        for i, steps in enumerate(grid):
            mean, low, high = mean_ci(values[:, i])
            rows.append({"env": env, "algo": algo, "config_id": cid, "env_steps": float(steps), "mean": mean,
                         "ci_low": low, "ci_high": high, "seeds": len(curves), "curve": column, "same_units": same})
    return pd.DataFrame(rows)


_REFERENCE_STYLE = {"lower": ("grey", ":"), "simple": ("tab:brown", "--"), "heuristic": ("black", "-"),
                    "clairvoyant": ("black", "-.")}


def plot_learning_curves(curves: pd.DataFrame, summary: pd.DataFrame, env: str,
                         labels: Mapping[str, str] | None = None):
    """One line per method on ``env`` (mean and 95% band over seeds), its references as level lines where
    the curves are in their units; None when no method has a curve to show."""
    labels = dict(labels or {})
    mine = curves[(curves["env"] == env)] if not curves.empty else curves
    rows = summary[summary["env"] == env]
    methods = rows[rows["role"] == "method"]
    shown = [(r["algo"], r["config_id"]) for _, r in methods.iterrows()
             if ((mine["algo"] == r["algo"]) & (mine["config_id"] == r["config_id"])).sum() >= 2]
    if not shown:
        return None
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=110)
    kinds = set()
    same_units = True
    for algo, cid in shown:
        c = mine[(mine["algo"] == algo) & (mine["config_id"] == cid)]
        kinds.add(c["curve"].iloc[0])
        same_units &= bool(c["same_units"].all())
        label = method_label(algo, labels.get(cid, ""))
        line, = ax.plot(c["env_steps"], c["mean"], label=label)
        ax.fill_between(c["env_steps"], c["ci_low"], c["ci_high"], alpha=0.2, color=line.get_color())
    if same_units:
        refs = rows[rows["role"] != "method"]
        keep = {rows["anchor"].iloc[0], rows["best_simple"].iloc[0], rows["bound"].iloc[0], "random_valid"}
        for _, r in refs[refs["algo"].isin(keep)].iterrows():
            color, style = _REFERENCE_STYLE.get(r["role"], ("black", "-"))
            ax.axhline(r["return_mean"], color=color, linestyle=style, linewidth=1,
                       label=f"{r['algo']} ({r['role']})")
    kind = " / ".join(sorted(CURVE_LABELS.get(k, f"training episodes' {k.removesuffix('_mean')}") for k in kinds))
    ax.set_xlabel("env steps")
    ax.set_ylabel("return" if same_units else "return of the training env's reward (other units than evaluation)")
    ax.set_title(f"{env}: {kind}; mean and 95% band over seeds", fontsize=9)
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig
