"""The figures of the statistics across tasks (:mod:`suite.aggregate`), each readable on its own."""

from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = ["plot_aggregates", "plot_performance_profiles", "plot_probability_of_improvement"]

_TITLES = {"median": "Median of task means", "iqm": "IQM", "mean": "Mean", "gap_to_anchor": "Gap to the anchor"}


def _plt():
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt

    return plt


def plot_aggregates(table: pd.DataFrame, title: str = "Across tasks"):
    """Interval estimates: one panel per statistic, per method a thick bar for the 95% interval with runs
    resampled within tasks and a thin line for the one with tasks resampled, a tick at the point estimate.
    None without methods."""
    if table.empty:
        return None
    plt = _plt()
    methods = table["method"].tolist()
    fig, axes = plt.subplots(1, len(_TITLES), figsize=(3.2 * len(_TITLES), 0.6 * len(methods) + 1.6), dpi=110,
                             sharey=True)
    y = np.arange(len(methods))
    for ax, (name, panel_title) in zip(axes, _TITLES.items()):
        low, high, point = table[f"{name}_ci_low"], table[f"{name}_ci_high"], table[name]
        if f"{name}_task_ci_low" in table:
            ax.hlines(y, table[f"{name}_task_ci_low"], table[f"{name}_task_ci_high"], color="tab:orange",
                      linewidth=1.5, label="tasks resampled" if ax is axes[0] else None)
        ax.barh(y, high - low, left=low, height=0.6, alpha=0.5, color="tab:blue",
                label="runs resampled" if ax is axes[0] else None)
        ax.plot(point, y, "|", color="black", markersize=14)
        ax.set_title(panel_title)
        ax.set_xlabel("normalised score" + (" (lower is better)" if name == "gap_to_anchor" else ""))
        ax.grid(axis="x", alpha=0.3)
    labels = [f"{method}\n{tasks} task{'s' * (tasks != 1)}, {runs} run{'s' * (runs != 1)}" for method, tasks, runs in
              zip(methods, table["tasks"], table["runs"])] if {"tasks", "runs"} <= set(table) else methods
    axes[0].set_yticks(y, labels)  # methods that ran different tasks are not directly comparable: say which
    fig.suptitle(f"{title}: point estimate and 95% bootstrap intervals, runs resampled within tasks (bar) and "
                 "tasks resampled (line); 0 = random_valid, 100 = each task's anchor", fontsize=8)
    axes[0].legend(fontsize=7, loc="lower left")
    fig.tight_layout()
    return fig


def plot_performance_profiles(profiles: pd.DataFrame):
    """The fraction of runs (tasks weighted equally) scoring above τ, against τ, with 95% bands."""
    if profiles.empty:
        return None
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=110)
    for method, rows in profiles.groupby("method", sort=True):
        line, = ax.plot(rows["tau"], rows["fraction_above"], label=method)
        ax.fill_between(rows["tau"], rows["ci_low"], rows["ci_high"], alpha=0.2, color=line.get_color())
    ax.set_xlabel("normalised score τ (0 = random_valid, 100 = each task's anchor)")
    ax.set_ylabel("fraction of runs with score > τ")
    ax.set_ylim(-0.02, 1.02)
    ax.set_title("Performance profiles, 95% bands (runs resampled within tasks)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def plot_probability_of_improvement(poi: pd.DataFrame):
    """The matrix of P(row method > column method), averaged over shared tasks, the interval in each cell."""
    if poi.empty:
        return None
    plt = _plt()
    methods = sorted(set(poi["method"]) | set(poi["versus"]))
    grid = np.full((len(methods), len(methods)), np.nan)
    text = {}
    for r in poi.itertuples(index=False):
        i, j = methods.index(r.method), methods.index(r.versus)
        grid[i, j] = r.probability_of_improvement
        text[(i, j)] = f"{r.probability_of_improvement:.2f}\n[{r.ci_low:.2f}, {r.ci_high:.2f}]"
    size = 1.0 + 1.1 * len(methods)
    fig, ax = plt.subplots(figsize=(size + 2, size), dpi=110)
    image = ax.imshow(grid, vmin=0, vmax=1, cmap="RdBu")
    for (i, j), label in text.items():
        ax.text(j, i, label, ha="center", va="center", fontsize=7)
    ax.set_xticks(range(len(methods)), methods, rotation=30, ha="right")
    ax.set_yticks(range(len(methods)), methods)
    ax.set_xlabel("versus (Y)")
    ax.set_ylabel("method (X)")
    fig.colorbar(image, ax=ax, label="P(X > Y)")
    ax.set_title("Probability of improvement, 95% interval (runs resampled within tasks)")
    fig.tight_layout()
    return fig
