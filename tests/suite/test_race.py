"""suite.race: contenders trained with the same settings, times to a target that separates them, bad input."""

import math

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("sb3_contrib", reason='the compare extra: pip install -e ".[compare]"')

from suite import race, results
from suite.cli import run_cli
from tests.helpers import TINY_SETTINGS

SETTINGS = [item for key in ("train_batch_size", "minibatch_size", "num_epochs", "num_envs_per_env_runner", "hidden")
            for item in ("--algo-config", f"{key}={TINY_SETTINGS[key]}")]


def race_main(*argv) -> int:
    return run_cli(race.main, "python -m suite.race", [str(a) for a in argv])


def test_the_race_trains_each_contender_with_the_same_settings_and_times_a_separating_target(tmp_path, capsys):
    argv = ["--env", "portfolio", "--contenders", "masked_ppo_torch,sb3_maskable_ppo", "--seeds", "2",
            "--steps", "1536", "--episodes", "8", "--out", tmp_path, *SETTINGS]
    assert race_main(*argv, "--target", "1e9") == 0  # a target nobody reaches
    out = capsys.readouterr().out
    assert "| masked_ppo_torch | 2 |" in out and "| sb3_maskable_ppo | 2 |" in out
    table = pd.read_csv(tmp_path / "race_portfolio.csv")
    assert table["contender"].tolist() == ["masked_ppo_torch", "sb3_maskable_ppo"]
    assert (table["seeds_reaching"] == 0).all() and np.isinf(table["steps_to_target"]).all()  # never: infinitely slow
    assert table.loc[1, "speed_vs_sb3"] == 1.0 and table.loc[0, "speed_vs_sb3"] > 0
    loaded = results.load(tmp_path)
    backend_only = ("algo.backend", "algo.vec_env", "algo.num_env_runners", "algo.rllib_learner")  # each backend's own
    shared = [c for c in loaded.runs if c.startswith("algo.") and c not in backend_only]
    assert (loaded.runs[shared].nunique(dropna=False) == 1).all()  # matched hyperparameters

    # The best periodic evaluation of all runs as the target: reached where (and only where) it was, by hand.
    progress = loaded.progress.assign(contender=loaded.progress["run"].str.split("/").str[0])
    target = float(progress["eval_return_mean"].max())
    assert progress["eval_return_mean"].nunique() > 1  # the evaluations do differ
    # a received folder whose race table is a link elsewhere: the table replaces the link, the target is untouched
    elsewhere = tmp_path.parent / f"{tmp_path.name}-elsewhere.csv"
    elsewhere.write_text("mine")
    (tmp_path / "race_portfolio.csv").unlink()
    (tmp_path / "race_portfolio.csv").symlink_to(elsewhere)
    assert race_main(*argv, "--target", repr(target)) == 0  # no training: every run is complete
    assert capsys.readouterr().out.count("already complete") == 4
    assert elsewhere.read_text() == "mine" and not (tmp_path / "race_portfolio.csv").is_symlink()
    table = pd.read_csv(tmp_path / "race_portfolio.csv").set_index("contender")
    seconds = {}
    for contender, runs in progress.groupby("contender"):
        per_seed = []  # (env steps, seconds) at the first evaluation reaching the target; inf: never
        for _, run in runs.groupby("run"):
            hit = run[run["eval_return_mean"] >= target]
            per_seed.append((hit["env_steps"].iloc[0], hit["wall_seconds"].iloc[0]) if len(hit) else (math.inf,) * 2)
        assert table.loc[contender, "seeds_reaching"] == sum(math.isfinite(s) for s, _ in per_seed)
        assert table.loc[contender, "steps_to_target"] == np.median([s for s, _ in per_seed])
        assert table.loc[contender, "seconds_to_target"] == pytest.approx(np.median([w for _, w in per_seed]))
        seconds[contender] = np.median([w for _, w in per_seed])
    with np.errstate(invalid="ignore"):
        ratio = seconds["masked_ppo_torch"] / seconds["sb3_maskable_ppo"]
    expected = ratio if not math.isnan(ratio) else math.inf  # inf / inf: no ratio, as slow as can be
    assert table.loc["masked_ppo_torch", "time_to_target_vs_sb3"] == pytest.approx(expected)
    assert table.loc["masked_ppo_torch", "time_to_target_vs_sb3_ci_low"] <= \
        table.loc["masked_ppo_torch", "time_to_target_vs_sb3_ci_high"]
    assert table["seeds_reaching"].sum() >= 1 and table["seeds_reaching"].nunique() == 2  # it separates them


def test_the_race_refuses_unknown_contenders_and_a_missing_target(tmp_path, capsys):
    assert race_main("--env", "portfolio", "--contenders", "x") == 2
    assert "unknown contender 'x'" in capsys.readouterr().err
    assert race_main("--env", "speed_limit", "--out", tmp_path) == 2
    assert "--target is required for env 'speed_limit'" in capsys.readouterr().err
