"""Violations per constraint: which rule an agent's attempted actions broke, in training and evaluation.

µRTS counts invalid actions by cause; constrained-RL papers report violation counts and magnitudes.
Every run records, per constraint name of its env (C1..C6, S1..S4, Z1/Z2, a user env's names), the
share of steps whose attempted action violated it before the env's fallback: ``progress.csv``'s
``violation_rate_<name>`` (training) and ``eval.csv``'s ``violations_<name>`` (per episode); Box envs
also the distance of the attempted actions to the admissible set (``violation_distance``); and
training's ``enforcement_share``, the share of its wall time spent computing masks, admissibility
checks and projections. :func:`violation_table` reduces them to one row per (env, method) over
seeds; :func:`violation_markdown` writes the table per env.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
import pandas as pd

from suite import results

__all__ = ["violation_table", "violation_markdown"]

_RATE, _COUNT = "violation_rate_", "violations_"


def _weighted(progress: pd.DataFrame, column: str) -> float:
    """The mean of a per-iteration rate over a run's iterations, weighted by their env steps."""
    if column not in progress or progress[column].isna().all():
        return math.nan
    steps = progress["env_steps"].diff().fillna(progress["env_steps"])
    valid = progress[column].notna()
    return float((progress.loc[valid, column] * steps[valid]).sum() / steps[valid].sum())


def violation_table(loaded: results.Results, labels: Mapping[str, str] | None = None) -> pd.DataFrame:
    """One row per (env, algo, config) of complete runs: per constraint the training rate and the headline
    policy's evaluation rate (shares of steps), the Box distance per inadmissible step, the enforcement
    share, each the mean over seeds. ``labels``: config_id -> a short config label (the summary's)."""
    done = loaded.complete()
    if done.runs.empty:
        return pd.DataFrame()
    labels = dict(labels or {})
    evals = results.clean_evals(done.evals)
    first = evals.groupby("run", sort=False)[["policy", "mask"]].first()
    rows = []
    for (env, algo, cid), runs in done.runs.groupby(["env", "algo", "config_id"], sort=False):
        per_seed = []
        for run in runs["run"]:
            progress = done.progress[done.progress["run"] == run]
            mine = evals[evals["run"] == run]
            if run in first.index:
                mine = mine[(mine["policy"] == first.loc[run, "policy"]) & (mine["mask"] == first.loc[run, "mask"])]
            row: dict[str, float] = {}
            names = [c[len(_RATE):] for c in progress.columns if c.startswith(_RATE)] or \
                [c[len(_COUNT):] for c in mine.columns if c.startswith(_COUNT)]
            steps = float(mine["length"].sum()) if len(mine) else math.nan
            for name in names:
                row[f"train {name}"] = _weighted(progress, f"{_RATE}{name}")
                counts = mine.get(f"{_COUNT}{name}")
                row[f"eval {name}"] = float(counts.sum()) / steps if counts is not None and steps else math.nan
            if "violation_distance_mean" in progress:
                row["train distance"] = float(progress["violation_distance_mean"].mean())
            if "violation_distance" in mine and len(mine):
                invalid = float(mine["invalid_steps"].sum())
                row["eval distance"] = float(mine["violation_distance"].sum()) / invalid if invalid else math.nan
            row["enforcement share"] = _weighted(progress, "enforcement_share")
            per_seed.append(row)
        frame = pd.DataFrame(per_seed)
        rows.append({"env": env, "algo": algo, "config": labels.get(cid, ""), "config_id": cid, "seeds": len(runs),
                     **{column: float(np.nanmean(frame[column])) if frame[column].notna().any() else math.nan
                        for column in frame.columns}})
    return pd.DataFrame(rows)


def _cell(value: float, percent: bool) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return f"{100 * value:.1f}%" if percent else f"{value:.3g}"


def violation_markdown(table: pd.DataFrame, env: str) -> list[str]:
    """The per-constraint table of ``env``: a row per method, per constraint ``training / evaluation`` shares of
    steps whose attempted action violated it (before the fallback), then distance and enforcement share."""
    rows = table[table["env"] == env].dropna(axis=1, how="all")
    if rows.empty:
        return []
    names = [c[len("train "):] for c in rows.columns if c.startswith("train ") and c != "train distance"]
    distance = "train distance" in rows or "eval distance" in rows
    header = ["method", *[f"{name} (train / eval)" for name in names]]
    header += ["distance to the set (train / eval)"] if distance else []
    header += ["enforcement share of training time"]
    body = []
    for _, r in rows.iterrows():
        method = f"{r['algo']} [{r['config']}]" if r.get("config") else r["algo"]
        cells = [f"{_cell(r.get(f'train {n}'), True)} / {_cell(r.get(f'eval {n}'), True)}" for n in names]
        if distance:
            cells.append(f"{_cell(r.get('train distance'), False)} / {_cell(r.get('eval distance'), False)}")
        cells.append(_cell(r.get("enforcement share"), True))
        body.append([method, *cells])
    table = pd.DataFrame(body, columns=header, dtype=object).to_markdown(index=False, disable_numparse=True)
    return ["Steps whose attempted action violated each constraint, before the env's fallback "
            "(training; the headline policy's evaluation):", "", *table.splitlines(), ""]
