"""Masks that are wrong at deployment, as results: return and inadmissible rate against the corruption.

Runs made with ``suite.run --eval-mask-noise P,...`` hold, besides their usual evaluation, the policies
that read the mask played under corrupted masks (:mod:`baselines.mask_noise`: admissible values
``hidden``, inadmissible ones ``leaky``, a ``stale`` mask) at each probability ``p``; the env enforces
the true constraints throughout. :func:`mask_noise_table` gives, per env, method, policy, corruption
and ``p`` (0: the clean mask), the mean return and the share of steps with an inadmissible action,
mean and 95% CI over seeds; :func:`plot_mask_noise` draws both against ``p``.
"""

from __future__ import annotations

from collections.abc import Mapping

import pandas as pd

from baselines.mask_noise import KINDS
from suite import results
from suite.stats import mean_ci

__all__ = ["mask_noise_table", "plot_mask_noise"]


def mask_noise_table(loaded: results.Results, labels: Mapping[str, str] | None = None) -> pd.DataFrame:
    """One row per (env, algo, config, policy, corruption, p) of the runs with corrupted-mask evaluations."""
    evals = loaded.complete().evals
    if results.MASK_NOISE not in evals or evals[results.MASK_NOISE].isna().all():
        return pd.DataFrame()
    evals = evals[evals[results.MASK_NOISE].notna() & (evals["mask"] == "on")]
    labels = dict(labels or {})
    per_run = (evals.groupby(["env", "algo", "config_id", "policy", results.MASK_NOISE, results.MASK_NOISE_P, "run"],
                             sort=False)
               .apply(lambda g: pd.Series({"return": g["return"].mean(),
                                           "invalid_rate": g["invalid_steps"].sum() / g["length"].sum()}),
                      include_groups=False)
               .reset_index())
    clean = per_run[per_run[results.MASK_NOISE] == "none"]
    corrupted = per_run[per_run[results.MASK_NOISE] != "none"]
    # p = 0 is the clean evaluation, the start of every corruption's curve.
    starts = pd.concat([clean.assign(**{results.MASK_NOISE: kind}) for kind in KINDS], ignore_index=True)
    rows = []
    for key, group in pd.concat([starts, corrupted], ignore_index=True).groupby(
            ["env", "algo", "config_id", "policy", results.MASK_NOISE, results.MASK_NOISE_P], sort=False):
        mean, low, high = mean_ci(group["return"])
        invalid, invalid_low, invalid_high = mean_ci(group["invalid_rate"])
        env, algo, cid, policy, kind, p = key
        rows.append({"env": env, "algo": algo, "config": labels.get(cid, ""), "config_id": cid, "policy": policy,
                     "corruption": kind, "p": float(p), "seeds": len(group), "return_mean": mean,
                     "return_ci_low": low, "return_ci_high": high, "invalid_rate": invalid,
                     "invalid_rate_ci_low": invalid_low, "invalid_rate_ci_high": invalid_high})
    return pd.DataFrame(rows).sort_values(["env", "algo", "config_id", "policy", "corruption", "p"],
                                          ignore_index=True)


def plot_mask_noise(table: pd.DataFrame, env: str):
    """Return and inadmissible rate of each method's first policy (greedy) against ``p``, a line per method and
    corruption (solid: hidden, dashed: leaky, dotted: stale); None without corrupted-mask evaluations."""
    rows = table[table["env"] == env]
    if rows.empty:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.5), dpi=110)
    styles = dict(zip(KINDS, ("-", "--", ":")))
    colours: dict[str, str] = {}
    for (algo, config), method in rows.groupby(["algo", "config"], sort=False):
        policy = method["policy"].iloc[0]
        label = f"{algo} [{config}]" if config else algo
        for kind, line in method[method["policy"] == policy].groupby("corruption", sort=False):
            line = line.sort_values("p")
            drawn, = left.plot(line["p"], line["return_mean"], styles[kind], marker="o", markersize=3,
                               color=colours.get(label), label=f"{label}, {kind}")
            colours[label] = drawn.get_color()
            left.fill_between(line["p"], line["return_ci_low"], line["return_ci_high"], alpha=0.12,
                              color=drawn.get_color())
            right.plot(line["p"], 100 * line["invalid_rate"], styles[kind], marker="o", markersize=3,
                       color=drawn.get_color())
    left.set_xlabel("corruption probability p")
    left.set_ylabel(f"return ({policy} policy; mean, 95% CI over seeds)")
    right.set_xlabel("corruption probability p")
    right.set_ylabel("steps with an inadmissible action (%)")
    fig.suptitle(f"{env}: masked policies under corrupted masks (solid hidden, dashed leaky, dotted stale)")
    left.legend(fontsize=7)
    fig.tight_layout()
    return fig
