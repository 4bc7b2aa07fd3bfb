"""Where learning stops: from periodic evaluations, the budget after which a config no longer improves.

A benchmark's budget is honest when the methods it compares have stopped improving by then, or when the
report says they had not. For every config (env, env config, algo, algo config) whose complete runs were
evaluated during training (``--eval-every``, ``eval_return_mean`` in ``progress.csv``) at four or more points,
:func:`budget_table` gives:

- ``budget``: the env steps the runs took (the smallest over seeds), ``evaluations`` on the common grid;
- ``first_return`` / ``final_return``: the mean over seeds of the first and last periodic evaluation;
- ``steps_to_95pct`` / ``seconds_to_95pct``: the first evaluation at which the mean curve has made 95% of its
  gain from the first evaluation to the best later mean (NaN when there is no gain), and the mean wall seconds
  there: the budget beyond which a run buys at most 5% more;
- ``late_gain``: per seed, the mean of the last quarter of its evaluations minus the mean of the quarter before
  (at least one evaluation each), averaged over seeds, with its 95% Student-t interval over seeds
  (``late_gain_ci_low`` / ``late_gain_ci_high``: seeds resampled, one number per seed);
- ``p_still_improving``: one-sided one-sample t-test over seeds that ``late_gain`` is above 0
  (``scipy.stats.ttest_1samp``; NaN with one seed), and ``verdict``: ``still improving`` when that p is below
  0.05 and the gain is at least :data:`MIN_LATE_GAIN_SHARE` of the curve's gain (``creeping`` when it is
  smaller: the seeds agree the curve still rises, by too little to matter), ``declining`` when the opposite
  one-sided test is below 0.05 and the loss is at least that share (the seeds agree the last quarter lost what
  the one before had: a final-iterate score then understates what the method reached), else ``plateau``
  (``plateau?`` with two seeds: the test has little power there; ``one seed: not tested``). A ``plateau`` says
  the last quarter of the budget bought nothing the seeds agree on, not that more would not;
- ``p_declining``: the opposite one-sided test (the late gain is below 0);
- ``below_best``: per seed, the best mean of a quarter of its evaluations in a row (on the common grid) minus
  the mean of its last quarter, averaged over seeds: 0 for a curve whose last quarter is its best, and what a
  score taken at the end leaves out of what the seeds had reached. Optimistic: the best quarter is picked on
  the evaluations that score it, so a flat but noisy curve shows a little too.

Seeds are put on one grid: the evaluation steps of the seed with the fewest, each other seed's curve
interpolated onto them (``numpy.interp``; runs of one config evaluate at the same iterations, so this is
exact unless a run was resumed with another ``--eval-every``). Pure functions of :func:`suite.results.load`'s
frames.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
import pandas as pd
from scipy import stats

from suite import results
from suite.stats import mean_ci

__all__ = ["MIN_EVALUATIONS", "GAIN_SHARE", "MIN_LATE_GAIN_SHARE", "budget_table", "budget_markdown",
           "chosen_budgets"]

#: A curve needs this many periodic evaluations to say where it stops.
MIN_EVALUATIONS = 4
#: The share of the curve's gain that counts as "learned" (``steps_to_95pct``).
GAIN_SHARE = 0.95
#: A last-quarter gain the seeds agree on, but smaller than this share of the curve's whole gain, is "creeping":
#: more budget buys something, too little to change a comparison.
MIN_LATE_GAIN_SHARE = 0.01
_CURVE = "eval_return_mean"


def _seed_curves(progress: pd.DataFrame) -> list[pd.DataFrame]:
    """Each run's periodic evaluations (env steps, wall seconds, return), in step order."""
    rows = progress[progress[_CURVE].notna()] if _CURVE in progress else progress.iloc[:0]
    return [run[["env_steps", "wall_seconds", _CURVE]].sort_values("env_steps").reset_index(drop=True)
            for _, run in rows.groupby("run", sort=True)]


def _on_grid(curves: list[pd.DataFrame]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The grid (the steps of the seed with the fewest evaluations) and every seed's return and seconds there:
    ``(grid, returns (seeds, points), seconds (seeds, points))``."""
    shortest = min(curves, key=len)
    grid = shortest["env_steps"].to_numpy(dtype=float)
    grid = grid[grid <= min(float(c["env_steps"].iloc[-1]) for c in curves)]
    returns = np.stack([np.interp(grid, c["env_steps"], c[_CURVE]) for c in curves])
    seconds = np.stack([np.interp(grid, c["env_steps"], c["wall_seconds"]) for c in curves])
    return grid, returns, seconds


def _late_gains(returns: np.ndarray) -> np.ndarray:
    """Per seed: the mean of the last quarter of the evaluations minus the mean of the quarter before."""
    quarter = max(1, returns.shape[1] // 4)
    return returns[:, -quarter:].mean(axis=1) - returns[:, -2 * quarter:-quarter].mean(axis=1)


def _below_best_quarter(returns: np.ndarray) -> np.ndarray:
    """Per seed: the best mean of a quarter of the evaluations in a row minus the mean of the last quarter."""
    quarter = max(1, returns.shape[1] // 4)
    windows = np.lib.stride_tricks.sliding_window_view(returns, quarter, axis=1).mean(axis=-1)
    return windows.max(axis=1) - windows[:, -1]


def _one_sided_p(late: np.ndarray, alternative: str) -> float:
    """One-sided one-sample t-test over seeds that the late gain is above (``greater``) or below (``less``) 0;
    NaN with one seed."""
    if len(late) < 2:
        return math.nan
    if np.ptp(late) == 0:  # every seed gained exactly the same: no spread to test against
        return 0.0 if (late[0] > 0 if alternative == "greater" else late[0] < 0) else 1.0
    return float(stats.ttest_1samp(late, 0.0, alternative=alternative).pvalue)


def _curve_row(curves: list[pd.DataFrame]) -> dict[str, float | int | str]:
    grid, returns, seconds = _on_grid(curves)
    mean = returns.mean(axis=0)
    gain = mean[1:].max() - mean[0] if len(mean) > 1 else 0.0
    if gain > 0:
        reached = int(np.flatnonzero(mean - mean[0] >= GAIN_SHARE * gain)[0])
        steps_to, seconds_to = float(grid[reached]), float(seconds[:, reached].mean())
    else:
        steps_to = seconds_to = math.nan
    late = _late_gains(returns)
    _, low, high = mean_ci(late)
    p, p_decline = _one_sided_p(late, "greater"), _one_sided_p(late, "less")
    if len(late) < 2:
        verdict = "one seed: not tested"
    elif p < 0.05 and late.mean() >= MIN_LATE_GAIN_SHARE * gain:
        verdict = "still improving"
    elif p < 0.05:
        verdict = "creeping"  # the seeds agree it still rises, by less than MIN_LATE_GAIN_SHARE of its gain
    elif p_decline < 0.05 and -late.mean() >= MIN_LATE_GAIN_SHARE * gain:
        verdict = "declining"
    else:
        verdict = "plateau" if len(late) >= 3 else "plateau?"
    return {"seeds": len(curves), "budget": float(grid[-1]), "evaluations": len(grid),
            "first_return": float(mean[0]), "final_return": float(mean[-1]),
            "steps_to_95pct": steps_to, "seconds_to_95pct": seconds_to,
            "late_gain": float(late.mean()), "late_gain_ci_low": low, "late_gain_ci_high": high,
            "p_still_improving": p, "p_declining": p_decline, "verdict": verdict,
            "below_best": float(_below_best_quarter(returns).mean())}


def budget_table(loaded: results.Results, labels: Mapping[str, str] | None = None) -> pd.DataFrame:
    """One row per config with periodic evaluations at :data:`MIN_EVALUATIONS` or more points (module
    docstring); ``labels`` names a config id (the report's ``config`` column), else the id. Empty when none."""
    done = loaded.complete()
    progress = done.progress
    if progress.empty or _CURVE not in progress:
        return pd.DataFrame()
    rows = []
    for (env, algo, config_id), group in progress.groupby(["env", "algo", "config_id"], sort=True):
        curves = [c for c in _seed_curves(group) if len(c) >= MIN_EVALUATIONS]
        if not curves:
            continue
        rows.append({"env": env, "algo": algo, "config": (labels or {}).get(config_id, config_id),
                     "config_id": config_id, **_curve_row(curves)})
    return pd.DataFrame(rows)


def chosen_budgets(table: pd.DataFrame) -> dict[str, int]:
    """Per env, the budget at which its best learning config (the highest final return; references are left out)
    stopped improving: the steps at which it made :data:`GAIN_SHARE` of its gain, or, where it was ``still
    improving`` (or had no gain to measure), its ``budget``: the last evaluation every seed reached. The report
    judges there whether each task separates methods."""
    from baselines.references import roles

    methods = table[~table["algo"].isin(list(roles()))] if "algo" in table else table
    chosen = {}
    for env, group in methods.groupby("env", sort=True):
        best = group.loc[group["final_return"].idxmax()]
        stopped = best["verdict"] != "still improving" and not math.isnan(best["steps_to_95pct"])
        chosen[env] = int(best["steps_to_95pct"] if stopped else best["budget"])
    return chosen


def budget_markdown(table: pd.DataFrame) -> list[str]:
    """The report's section: where each config's learning stopped, or that it had not."""
    if table.empty:
        return []
    shown = table.assign(
        budget=table["budget"].map(lambda s: f"{s:,.0f}"),
        steps_to_95pct=table["steps_to_95pct"].map(lambda s: "–" if math.isnan(s) else f"{s:,.0f}"),
        seconds_to_95pct=table["seconds_to_95pct"].map(lambda s: "–" if math.isnan(s) else f"{s:,.0f}"),
        late_gain=[f"{g:+.2f} ({lo:+.2f} to {hi:+.2f})" if not math.isnan(lo) else f"{g:+.2f}"
                   for g, lo, hi in zip(table["late_gain"], table["late_gain_ci_low"], table["late_gain_ci_high"])],
        p_still_improving=table["p_still_improving"].map(lambda p: "–" if math.isnan(p) else f"{p:.3f}"),
        p_declining=table["p_declining"].map(lambda p: "–" if math.isnan(p) else f"{p:.3f}"),
        below_best=table["below_best"].map(lambda d: f"{d:,.2f}"))
    columns = {"env": "env", "algo": "algo", "config": "config", "seeds": "seeds", "budget": "budget (env steps)",
               "final_return": "final return", "steps_to_95pct": "steps to 95% of gain",
               "seconds_to_95pct": "seconds to 95%", "late_gain": "last-quarter gain (95% CI over seeds)",
               "p_still_improving": "p (still improving)", "p_declining": "p (declining)", "verdict": "verdict",
               "below_best": "last quarter below the best (mean over seeds)"}
    body = shown[list(columns)].rename(columns=columns).to_markdown(index=False, floatfmt=".2f")
    return ["## Where learning stops", "",
            "From the periodic evaluations (`--eval-every`): the first evaluation at which the mean curve made 95% "
            "of its gain, and the gain of each seed's last quarter of evaluations over the quarter before, with "
            "its interval over seeds and a one-sided t-test (\"still improving\" at p < 0.05 and a gain of at least "
            f"{MIN_LATE_GAIN_SHARE:.0%} of the curve's, \"creeping\" at p < 0.05 with less, \"declining\" when the "
            "opposite test finds a loss of that size; \"plateau?\" with two seeds; one seed is not tested). A plateau "
            "says the last quarter of the budget bought nothing the seeds agree on. The last column is how far each "
            "seed's last quarter of evaluations lies below its best quarter in a row, averaged over seeds: what a "
            "score taken at the end leaves out (optimistic: the best quarter is picked on the same evaluations).",
            "", body, ""]
