"""Statistics across tasks, after Agarwal et al. (2021), "Deep RL at the Edge of the Statistical Precipice".

A *task* is an env at one env config (a level, an agent count); a *method* an algo at one config (a
penalty size is a method of its own). Every run has a normalised score, 0 = ``random_valid``'s mean
return on its task and 100 = the task's **anchor**, the best non-clairvoyant reference run on it
(:func:`suite.report.references`; :func:`raw_scores`, also the machine-readable export). Over the runs of
several tasks, for each method:

- **median** (of the task means), **IQM** (the interquartile mean of the runs), **mean** (of the task
  means) and the **gap to the anchor** (``mean(max(100 - x, 0))``, rliable's optimality gap; "optimality"
  only where the 100 is a proven optimum, which no built-in task's is);
- two 95% intervals, each saying what it resamples: **runs** (the stratified bootstrap, rliable's
  default: each task's runs resampled with replacement within the task, the tasks fixed; what a claim
  about *these* tasks needs) and **tasks** (the tasks resampled with replacement, then each drawn task's
  runs, rliable's ``task_bootstrap=True``; what a claim about *tasks like these* needs);
- the **probability of improvement** of method X over Y: the mean over the tasks both ran of
  P(a run of X scores above a run of Y) (the Mann-Whitney U statistic over n·m, ties counting half),
  with its stratified interval;
- **performance profiles**: the fraction of runs scoring above τ, τ = 0..100, with bands;
- the **IQM difference** of every pair of methods on the tasks both ran, with both intervals, the tasks
  interval **paired** (one draw of tasks for both methods): which differences survive which resampling.

With as many runs on every task (rliable's runs × tasks matrix) each metric is rliable's, to the last
bit (``tests/suite/test_aggregate.py`` pins them to rliable's own numbers): the IQM is
``scipy.stats.trim_mean`` of the pooled scores, trimming whole scores. With unequal runs (rliable cannot
take them) every task carries the same total weight, split evenly over its runs, and the IQM is the mean
of the middle 50% of that weighted distribution's mass (fractional runs at the edges), so a task with 10
seeds does not outweigh one with 3; the median and mean, over task means, need no weighting.
"""

from __future__ import annotations

import itertools
import math
import re
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence

import numpy as np
import pandas as pd
from scipy import stats

__all__ = ["METRICS", "config_items", "method_label", "raw_scores", "weighted_mean", "median_of_task_means", "iqm",
           "weighted_iqm", "gap_to_anchor", "task_labels", "aggregate_table", "comparable_task_sets",
           "probability_of_improvement", "performance_profiles", "iqm_differences", "stratified_interval",
           "task_interval", "holm", "is_reference", "normalised", "RESAMPLES"]

#: The score of the anchor, for the gap.
GAMMA = 100.0
#: Bootstrap resamples per interval (a lone 95% interval: 50 beyond each end).
RESAMPLES = 2000


def is_reference(algo: str) -> bool:
    """Whether ``algo`` is a reference (random_valid, a simple policy, a heuristic, a clairvoyant bound): left
    out of the methods' aggregates."""
    from baselines.references import roles

    return algo in roles()


# --------------------------------------------------------------------------------------------
# Scores


def raw_scores(scores: pd.DataFrame, references: pd.DataFrame, config_labels: dict[str, str],
               named: Mapping[str, Mapping[str, str]] | None = None) -> pd.DataFrame:
    """One row per complete run: task, method, seed, return, normalised score and share of the bound
    (``raw_scores.csv``).

    ``scores`` is :func:`suite.report.run_scores`' frame, ``references`` :func:`suite.report.references`'
    (``lower``, ``anchor`` and ``bound`` returns per task), ``config_labels`` the label of each algo config
    that differs from its siblings (``penalty=0.1``). ``score`` is 0 at ``lower`` and 100 at ``anchor``;
    ``bound_share`` is 0 at ``lower`` and 100 at ``bound`` (NaN without one). Runs of a task without both
    references get a NaN score. ``named``: as in :func:`task_labels`.
    """
    rows = []
    tasks = task_labels(scores, named)
    for _, run in scores.iterrows():
        ref = references.loc[(run["env"], run["env_config"])]
        label = config_labels.get(run["config_id"], "")
        rows.append({"task": tasks[(run["env"], run["env_config"])],
                     "env": run["env"], "env_config": run["env_config"],
                     "method": method_label(run["algo"], label), "algo": run["algo"],
                     "seed": int(run["seed"]), "return": float(run["return"]),
                     "score": normalised(run["return"], ref["lower"], ref["anchor"]),
                     "bound_share": normalised(run["return"], ref["lower"], ref["bound"])})
    return pd.DataFrame(rows, columns=["task", "env", "env_config", "method", "algo", "seed", "return", "score",
                                       "bound_share"])


def normalised(value, lower: float, upper: float):
    """``100 (value - lower) / (upper - lower)``; NaN where the two references coincide or one is missing."""
    if pd.isna(lower) or pd.isna(upper) or upper == lower:
        return value * math.nan
    return 100 * (value - lower) / (upper - lower)


def config_items(env_config: str) -> dict[str, str]:
    """``"a=1,b=2,3"`` as ``{"a": "1", "b": "2,3"}``: a comma starts a new key only before ``key=``."""
    parts = re.split(r",(?=[A-Za-z_][A-Za-z0-9_]*=)", env_config) if env_config else []
    return dict(part.split("=", 1) for part in parts)


def method_label(algo: str, config: str) -> str:
    """How a report names a method: the algo, and its config label where the runs hold several configs of it
    (``penalty_ppo (penalty=0.1 (10x default))``)."""
    return algo + (f" ({config})" if config else "")


def task_labels(scores: pd.DataFrame, named: Mapping[str, Mapping[str, str]] | None = None
                ) -> dict[tuple[str, str], str]:
    """A short name per task (env, env config string): the env's name (a level is a name of its own) where
    the runs hold one config of that env, else the name and the keys in which its configs differ
    (``portfolio [n_assets=5]``).

    ``named``: per env, settings shown in the name wherever a task's value differs from the one given (the
    env's default), even where the runs hold one config of that env: settings that change what a method's
    number means (``speed_limit [invalid_action=noop]``; :func:`suite.report.named_settings`)."""
    labels = {}
    for env, group in scores.drop_duplicates(["env", "env_config"]).groupby("env", sort=False):
        items = {config: config_items(config) for config in group["env_config"]}
        keys = sorted({key for parsed in items.values() for key in parsed})
        differing = [key for key in keys if len({parsed.get(key) for parsed in items.values()}) > 1]
        defaults = (named or {}).get(env, {})
        for config, parsed in items.items():
            shown = [key for key in keys if key in parsed and (key in differing or (
                key in defaults and parsed[key] != str(defaults[key])))]
            labels[(env, config)] = f"{env} [{','.join(f'{key}={parsed[key]}' for key in shown)}]" if shown else env
    return labels


def _by_task(raw: pd.DataFrame, method: str) -> list[np.ndarray]:
    """The method's scores, one array per task it ran (NaN scores dropped)."""
    rows = raw[(raw["method"] == method) & raw["score"].notna()]
    return [group["score"].to_numpy(dtype=np.float64) for _, group in rows.groupby("task", sort=True)]


# --------------------------------------------------------------------------------------------
# Task-weighted statistics: each task weighs 1, split evenly over its runs.
#
# Each takes one array of scores per task and is a statistic of the arrays' last axis: leading axes are
# resamples (a bootstrap hands every statistic all its resamples at once, ``batched=True`` below), and one
# task's array has the same shape but for its last axis in every resample.


def _floats(samples: Sequence[np.ndarray]) -> list[np.ndarray]:
    return [np.asarray(s, dtype=np.float64) for s in samples]


def _task_means(samples: Sequence[np.ndarray]) -> np.ndarray:
    return np.stack([np.mean(s, axis=-1) for s in _floats(samples)])


def _weighted(samples: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    samples = _floats(samples)
    values = np.concatenate(samples, axis=-1)
    weights = np.concatenate([np.full(s.shape[-1], 1.0 / s.shape[-1]) for s in samples])
    order = np.argsort(values, axis=-1, kind="stable")
    return np.take_along_axis(values, order, axis=-1), weights[order] / weights.sum()


def weighted_mean(samples: Sequence[np.ndarray]) -> float | np.ndarray:
    """The mean of the task means (rliable's ``aggregate_mean``)."""
    return np.mean(_task_means(samples), axis=0)[()]


def _trimmed_mass_mean(values: np.ndarray, weights: np.ndarray, low: float, high: float) -> float | np.ndarray:
    """The mean of the weighted distribution's mass between quantile levels ``low`` and ``high`` (values and
    weights sorted along the last axis)."""
    edges = np.concatenate([np.zeros((*weights.shape[:-1], 1)), np.cumsum(weights, axis=-1)], axis=-1)
    kept = np.clip(np.minimum(edges[..., 1:], high) - np.maximum(edges[..., :-1], low), 0.0, None)
    return (np.sum(kept * values, axis=-1) / np.sum(kept, axis=-1))[()]


def median_of_task_means(samples: Sequence[np.ndarray]) -> float | np.ndarray:
    """The median of the task means (rliable's ``aggregate_median``: a statistic of tasks, not of runs)."""
    return np.median(_task_means(samples), axis=0)[()]


def weighted_iqm(samples: Sequence[np.ndarray]) -> float | np.ndarray:
    """The mean of the middle 50% of the task-weighted distribution's mass (each task weighs 1, split evenly
    over its runs); equals rliable's IQM only where the quartiles fall between runs."""
    values, weights = _weighted(samples)
    return _trimmed_mass_mean(values, weights, 0.25, 0.75)


def iqm(samples: Sequence[np.ndarray]) -> float | np.ndarray:
    """The interquartile mean: rliable's (``scipy.stats.trim_mean`` of the pooled scores, whole scores trimmed)
    when every task has as many runs, else :func:`weighted_iqm`."""
    samples = _floats(samples)
    if len({s.shape[-1] for s in samples}) == 1:
        return stats.trim_mean(np.concatenate(samples, axis=-1), 0.25, axis=-1)[()]
    return weighted_iqm(samples)


def gap_to_anchor(samples: Sequence[np.ndarray], gamma: float = GAMMA) -> float | np.ndarray:
    """The task-weighted mean shortfall below ``gamma`` (scores above it count as 0): rliable's optimality
    gap, ``gamma - mean(min(x, gamma))``, with the anchor as the 100."""
    return weighted_mean([np.maximum(gamma - s, 0.0) for s in _floats(samples)])


METRICS: dict[str, Callable[[Sequence[np.ndarray]], float | np.ndarray]] = {
    "median": median_of_task_means, "iqm": iqm, "mean": weighted_mean, "gap_to_anchor": gap_to_anchor}


# --------------------------------------------------------------------------------------------
# Intervals


def stratified_interval(samples: Sequence[np.ndarray], statistic: Callable[[Sequence[np.ndarray]], object],
                        confidence: float = 0.95, n_resamples: int = RESAMPLES, seed: int = 0,
                        batched: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """The percentile interval of ``statistic(samples)`` under the stratified bootstrap: each task's runs
    resampled with replacement within the task (``scipy.stats.bootstrap``, one sample per task).

    A task with one run has nothing to resample and contributes its run every time. Returns (low, high),
    arrays shaped like the statistic. ``batched``: the statistic takes every resample at once (each task's
    array shaped (resamples, runs), the result (resamples, ...)), like this module's; the draws, and so the
    interval, are the same as without, in a fraction of the time. Resamples are drawn :data:`RESAMPLES` at a
    time (memory).
    """
    samples = _floats(samples)
    varying = [i for i, s in enumerate(samples) if len(s) > 1]
    if not varying:
        point = np.asarray(statistic(samples), dtype=np.float64)
        return point, point

    def resampled(*drawn, axis=-1):
        full = list(samples)
        for i, values in zip(varying, drawn):
            full[i] = values
        if not batched or drawn[0].ndim == 1:  # scipy also asks for the statistic of the samples themselves
            return np.asarray(statistic(full), dtype=np.float64)
        shape = drawn[0].shape[:-1]
        full = [values if values.ndim > 1 else np.broadcast_to(values, (*shape, len(values))) for values in full]
        return np.moveaxis(_per_resample(statistic(full), shape[0]), 0, -1)  # scipy's resamples come last

    with warnings.catch_warnings():  # a task whose runs all score alike makes scipy warn about degenerate data
        warnings.simplefilter("ignore")
        result = stats.bootstrap([samples[i] for i in varying], resampled, vectorized=batched, paired=False,
                                 confidence_level=confidence, n_resamples=n_resamples, method="percentile",
                                 batch=RESAMPLES, rng=np.random.default_rng(seed))
    return np.asarray(result.confidence_interval.low), np.asarray(result.confidence_interval.high)


def task_interval(samples: Sequence[np.ndarray], statistic: Callable[[Sequence[np.ndarray]], object],
                  confidence: float = 0.95, n_resamples: int = RESAMPLES, seed: int = 0,
                  per_task: int = 1, batched: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """The percentile interval of ``statistic(samples)`` when the tasks themselves are a sample: each
    resample draws as many tasks as there are with replacement, then each drawn task's runs with
    replacement within it (rliable's ``task_bootstrap=True``). Wide where tasks disagree, as they should be:
    it is the uncertainty of a claim about tasks like these, not about these tasks.

    ``per_task``: how many consecutive arrays of ``samples`` belong to one task (2 for two methods' runs on
    each task): a drawn task brings all of them, so a comparison stays paired by task.

    ``batched``: the statistic takes every resample at once, as in :func:`stratified_interval`, and does not
    depend on the order of the tasks (this module's do not). Its draws differ from the one-by-one loop's, so
    the interval differs from it by the bootstrap's own noise."""
    samples = _floats(samples)
    if per_task < 1 or len(samples) % per_task:
        raise ValueError(f"per_task={per_task} does not divide the {len(samples)} samples into tasks")
    n_tasks = len(samples) // per_task
    rng = np.random.default_rng(seed)
    tail = 100 * (1 - confidence) / 2
    draws = _task_draws(samples, statistic, n_tasks, per_task, n_resamples, rng) if batched else None
    if draws is not None:
        low, high = np.percentile(draws, [tail, 100 - tail], axis=0)
        return np.asarray(low), np.asarray(high)
    draws = []
    for _ in range(n_resamples):
        tasks = rng.integers(0, n_tasks, n_tasks)
        drawn = []
        for task in tasks:
            for values in samples[task * per_task:(task + 1) * per_task]:
                drawn.append(values[rng.integers(0, len(values), len(values))])
        draws.append(np.asarray(statistic(drawn), dtype=np.float64))
    low, high = np.percentile(np.stack(draws), [tail, 100 - tail], axis=0)
    return np.asarray(low), np.asarray(high)


def _per_resample(result: object, resamples: int) -> np.ndarray:
    """A batched statistic's result, checked to hold one value (or row) per resample."""
    result = np.asarray(result, dtype=np.float64)
    if result.ndim == 0 or result.shape[0] != resamples:
        raise ValueError(f"batched=True needs a statistic of the last axis that keeps the resamples' axis first; "
                         f"for {resamples} resamples it returned shape {result.shape}")
    return result


def _task_draws(samples: list[np.ndarray], statistic: Callable[[Sequence[np.ndarray]], object], n_tasks: int,
                per_task: int, n_resamples: int, rng: np.random.Generator) -> np.ndarray | None:
    """The task bootstrap's statistics, (resamples, ...), computed a batch at a time; None where batches would
    not pay (the caller loops). Tasks' runs differ in number, so a drawn task's arrays differ in length from
    resample to resample; sorting each resample's drawn tasks by their runs' counts (the statistic does not
    depend on task order) makes every resample with the same counts the same shape: one batch per such group,
    as many as the multisets of the tasks' kinds of counts (7 for 6 tasks of two kinds), in chunks of at most
    :data:`RESAMPLES` resamples (memory). Where the groups could be more than a tenth of the resamples (many
    tasks of many different counts), most batches would hold one resample: None."""
    lengths = np.array([[len(samples[task * per_task + j]) for j in range(per_task)] for task in range(n_tasks)])
    _, kind = np.unique(lengths, axis=0, return_inverse=True)  # tasks alike in their runs' counts
    kind = kind.ravel()
    if math.comb(int(kind.max()) + n_tasks, n_tasks) > n_resamples / 10:
        return None
    tasks = rng.integers(0, n_tasks, (n_resamples, n_tasks))
    tasks = np.take_along_axis(tasks, np.argsort(kind[tasks], axis=1, kind="stable"), axis=1)
    padded = np.full((len(samples), lengths.max()), np.nan)
    for i, values in enumerate(samples):
        padded[i, :len(values)] = values
    _, group_of, sizes = np.unique(kind[tasks], axis=0, return_inverse=True, return_counts=True)
    by_group = np.argsort(group_of.ravel(), kind="stable")
    out = None
    for group in np.split(by_group, np.cumsum(sizes)[:-1]):
        for rows in np.array_split(group, -(-len(group) // RESAMPLES)):
            drawn = []
            for slot in range(n_tasks):
                for j in range(per_task):
                    length = lengths[tasks[rows[0], slot], j]
                    runs = rng.integers(0, length, (len(rows), length))
                    drawn.append(np.take_along_axis(padded[tasks[rows, slot] * per_task + j, :length], runs, axis=1))
            values = _per_resample(statistic(drawn), len(rows))
            if out is None:
                out = np.empty((n_resamples, *values.shape[1:]))
            out[rows] = values
    return out


def holm(p_values: Sequence[float]) -> np.ndarray:
    """Holm's step-down adjustment of ``p_values`` (family-wise error over all of them; NaN stays NaN)."""
    p = np.asarray(p_values, dtype=np.float64)
    adjusted = np.full_like(p, np.nan)
    valid = np.flatnonzero(~np.isnan(p))
    order = valid[np.argsort(p[valid], kind="stable")]
    m = len(order)
    running = 0.0
    for rank, index in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p[index]))
        adjusted[index] = running
    return adjusted


def _methods(raw: pd.DataFrame) -> list[str]:
    return sorted(m for m, algo in raw.drop_duplicates("method")[["method", "algo"]].itertuples(index=False)
                  if not is_reference(algo) and raw.loc[raw["method"] == m, "score"].notna().any())


def aggregate_table(raw: pd.DataFrame, n_resamples: int = RESAMPLES, seed: int = 0) -> pd.DataFrame:
    """One row per method: the tasks and runs it has, each of :data:`METRICS` with both intervals
    (``<metric>_ci_low/high``: runs resampled within tasks; ``<metric>_task_ci_low/high``: tasks resampled)."""
    rows = []
    for method in _methods(raw):
        samples = _by_task(raw, method)
        row = {"method": method, "tasks": len(samples), "runs": int(sum(len(s) for s in samples))}
        for name, metric in METRICS.items():
            low, high = stratified_interval(samples, metric, n_resamples=n_resamples, seed=seed, batched=True)
            t_low, t_high = task_interval(samples, metric, n_resamples=n_resamples, seed=seed, batched=True)
            row.update({name: metric(samples), f"{name}_ci_low": float(low), f"{name}_ci_high": float(high),
                        f"{name}_task_ci_low": float(t_low), f"{name}_task_ci_high": float(t_high)})
        rows.append(row)
    return pd.DataFrame(rows)


def comparable_task_sets(raw: pd.DataFrame) -> list[tuple[tuple[str, ...], tuple[str, ...]]]:
    """Where methods ran different tasks (naive masking only discrete actions, the Dirichlet only
    allocations), the sets of tasks on which several methods can be compared run for run: for each distinct
    set of tasks some method ran, largest first, that set and every method that ran all of its tasks (two or
    more). Empty when every method ran the same tasks: the overall table compares them already."""
    scored = raw[raw["score"].notna() & ~raw["algo"].map(is_reference).astype(bool)]
    tasks_of = {method: frozenset(rows["task"]) for method, rows in scored.groupby("method", sort=True)}
    if len(set(tasks_of.values())) < 2:
        return []
    sets = []
    for task_set in sorted(set(tasks_of.values()), key=lambda tasks: (-len(tasks), sorted(tasks))):
        methods = tuple(method for method, tasks in tasks_of.items() if task_set <= tasks)
        if len(methods) >= 2:
            sets.append((tuple(sorted(task_set)), methods))
    return sets


def _p_greater(x: np.ndarray, y: np.ndarray) -> float | np.ndarray:
    """P(a draw of x > a draw of y), ties counting half: the Mann-Whitney U statistic over n m (of the last
    axis; leading axes are resamples)."""
    x, y = np.asarray(x)[..., :, None], np.asarray(y)[..., None, :]
    return ((x > y).mean(axis=(-2, -1)) + 0.5 * (x == y).mean(axis=(-2, -1)))[()]


def _shared_pairs(raw: pd.DataFrame) -> Iterator[tuple[str, str, list[str], list[np.ndarray]]]:
    """Every pair of methods (X, Y) that ran a task in common: the tasks both ran, and their scores as one
    list, X's then Y's on each shared task in turn."""
    for x_name, y_name in itertools.combinations(_methods(raw), 2):
        x_tasks = dict(tuple(raw[(raw["method"] == x_name) & raw["score"].notna()].groupby("task")))
        y_tasks = dict(tuple(raw[(raw["method"] == y_name) & raw["score"].notna()].groupby("task")))
        shared = sorted(set(x_tasks) & set(y_tasks))
        if shared:
            yield x_name, y_name, shared, [frame.loc[:, "score"].to_numpy(dtype=np.float64) for task in shared
                                           for frame in (x_tasks[task], y_tasks[task])]


def probability_of_improvement(raw: pd.DataFrame, n_resamples: int = RESAMPLES, seed: int = 0) -> pd.DataFrame:
    """For every ordered pair of methods sharing a task: P(X > Y) averaged over their shared tasks, with its
    stratified interval (the runs of X and of Y resampled within each task). P(Y > X) = 1 - P(X > Y), ties
    counting half, so each pair is bootstrapped once."""
    rows = []
    for x_name, y_name, shared, samples in _shared_pairs(raw):

        def statistic(drawn):
            return np.mean([_p_greater(drawn[i], drawn[i + 1]) for i in range(0, len(drawn), 2)], axis=0)

        low, high = stratified_interval(samples, statistic, n_resamples=n_resamples, seed=seed, batched=True)
        point = float(statistic(samples))
        rows.append({"method": x_name, "versus": y_name, "tasks": len(shared), "probability_of_improvement": point,
                     "ci_low": float(low), "ci_high": float(high)})
        rows.append({"method": y_name, "versus": x_name, "tasks": len(shared),
                     "probability_of_improvement": 1.0 - point, "ci_low": 1.0 - float(high),
                     "ci_high": 1.0 - float(low)})
    return pd.DataFrame(rows, columns=["method", "versus", "tasks", "probability_of_improvement", "ci_low", "ci_high"])


def iqm_differences(raw: pd.DataFrame, n_resamples: int = RESAMPLES, seed: int = 0,
                    family_confidence: float = 0.95) -> pd.DataFrame:
    """For every pair of methods sharing a task, once, oriented so the difference is not negative: the IQM of
    X's scores minus Y's on the tasks both ran, with the **runs** interval (every task's runs of X and of Y
    resampled within it) and the **tasks** interval (the shared tasks resampled, the same draw for both
    methods, then their runs), and whether each interval excludes 0 (``beyond_runs``, ``beyond_tasks``; None
    where it cannot vary: every shared task has one run of each method, or there is one shared task).

    The question a headline answers with it: which of its differences would a reader of other tasks like
    these also see (the tasks interval), and which hold for these tasks only (the runs interval).

    The intervals are **simultaneous** over the table's pairs (Bonferroni): with ``m`` pairs each is at
    ``1 - (1 - family_confidence) / m`` (``confidence`` column), so all of them hold together with at least
    ``family_confidence``, as the report's tests are corrected for how many it makes. Each interval draws
    ``n_resamples * m`` resamples, so that its tails hold as many draws as a lone interval's at
    ``n_resamples`` (at 0.95 and 2,000: 50 beyond each end)."""
    pairs = list(_shared_pairs(raw))
    confidence = 1 - (1 - family_confidence) / max(len(pairs), 1)
    n_resamples *= max(len(pairs), 1)
    rows = []
    for x_name, y_name, shared, samples in pairs:

        def difference(drawn):
            return iqm(drawn[0::2]) - iqm(drawn[1::2])

        point = difference(samples)
        if point < 0:
            x_name, y_name = y_name, x_name
            samples = [values for pair in zip(samples[1::2], samples[0::2]) for values in pair]  # Y's, then X's
            point = -point
        low, high = stratified_interval(samples, difference, confidence, n_resamples=n_resamples, seed=seed,
                                        batched=True)
        t_low, t_high = task_interval(samples, difference, confidence, n_resamples=n_resamples, seed=seed,
                                      per_task=2, batched=True)
        rows.append({"method": x_name, "versus": y_name, "tasks": len(shared), "iqm_difference": float(point),
                     "confidence": confidence,
                     "ci_low": float(low), "ci_high": float(high), "task_ci_low": float(t_low),
                     "task_ci_high": float(t_high),
                     # None where the interval cannot vary: no run to resample, or one task to draw
                     "beyond_runs": bool(low > 0 or high < 0) if any(len(x) > 1 for x in samples) else None,
                     "beyond_tasks": bool(t_low > 0 or t_high < 0) if len(shared) > 1 else None})
    return pd.DataFrame(rows, columns=["method", "versus", "tasks", "iqm_difference", "confidence", "ci_low",
                                       "ci_high", "task_ci_low", "task_ci_high", "beyond_runs", "beyond_tasks"])


def performance_profiles(raw: pd.DataFrame, taus: Sequence[float] | None = None, n_resamples: int = 1000,
                         seed: int = 0) -> pd.DataFrame:
    """Per method and τ: the task-weighted fraction of runs scoring above τ, with its stratified band."""
    taus = np.linspace(0.0, 100.0, 101) if taus is None else np.asarray(taus, dtype=np.float64)
    rows = []
    for method in _methods(raw):
        samples = _by_task(raw, method)

        def profile(drawn):
            return np.mean([(np.asarray(s)[..., :, None] > taus).mean(axis=-2) for s in drawn], axis=0)

        low, high = stratified_interval(samples, profile, n_resamples=n_resamples, seed=seed, batched=True)
        for tau, value, lo, hi in zip(taus, profile(samples), low, high):
            rows.append({"method": method, "tau": float(tau), "fraction_above": float(value),
                         "ci_low": float(lo), "ci_high": float(hi)})
    return pd.DataFrame(rows, columns=["method", "tau", "fraction_above", "ci_low", "ci_high"])
