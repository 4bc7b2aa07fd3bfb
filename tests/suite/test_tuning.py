"""Tuning studies (issue 36): configs drawn per method from its search space, evaluated on episodes of their
own, and the best per (method, task) written as a tuned settings file the registry reads."""

import dataclasses
import json
import textwrap

import pandas as pd
import pytest

from baselines import load_algo, tuned_settings
from baselines.search_spaces import sample_trials, search_space
from envs.config import ConfigError
from suite import results, runner, study, tuning
from suite.cli import UsageError, run_cli
from tests.helpers import TINY_SETTINGS, write_synthetic_run

SEARCH_STUDY = textwrap.dedent('''
    description = "a tuning study"
    seeds = 2
    first_seed = 100
    episodes = 3
    eval_seed_base = 2000000

    [[group]]
    envs = ["portfolio", "sum_to_zero"]
    algos = ["masked_ppo", "penalty_ppo"]
    steps = 1000
    search = { trials = 3, seed = 7 }
    algo_config = { backend = "torch" }
''')


def _entries(tmp_path, text=SEARCH_STUDY):
    path = tmp_path / "tune.toml"
    path.write_text(text)
    return study.study_entries(study.load_study(path))


def test_every_method_and_task_gets_the_same_trials_on_the_tuning_seeds_drawn_reproducibly(tmp_path):
    entries = _entries(tmp_path)
    assert len(entries) == 2 * 2 * 3 * 2  # envs x algos x trials x seeds
    assert {e.seed for e in entries} == {100, 101}  # first_seed: disjoint from the reporting seeds
    assert entries == _entries(tmp_path)  # the same draws every time the study is read (resume, a cluster)
    per_pair = pd.Series([(e.env, e.algo) for e in entries]).value_counts()
    assert set(per_pair) == {6}
    configs = {(e.env, e.algo): [] for e in entries}
    for e in entries:
        if dict(e.algo_config) not in configs[(e.env, e.algo)]:
            configs[(e.env, e.algo)].append(dict(e.algo_config))
    for (env, algo), drawn in configs.items():
        assert len(drawn) == 3 and all(c["backend"] == "torch" for c in drawn)
        assert ("penalty" in drawn[0]) == (algo == "penalty_ppo")
        assert ("log_std_init" in drawn[0]) == (env == "sum_to_zero")  # a Gaussian over a Box env
        base = load_algo(algo).make_config(env, {}, owner="t")
        for config in drawn:
            assert base.lr / 3 <= config["lr"] <= base.lr * 3 * 1.001  # around the env's default, 3 digits
            assert config["hidden"] in ((64, 64), (256, 256))
            if algo == "penalty_ppo":
                assert base.penalty / 10 * 0.999 <= config["penalty"] <= base.penalty * 10 * 1.001
    # a method draws the same relative positions on every env: portfolio's lr 1e-3 and sum_to_zero's 5e-4
    ratio = [c["lr"] / load_algo("masked_ppo").make_config(env, {}, owner="t").lr
             for env in ("portfolio", "sum_to_zero") for c in configs[(env, "masked_ppo")][:1]]
    assert ratio[0] == pytest.approx(ratio[1], rel=0.01)


def test_another_search_seed_draws_other_configs_and_a_space_too_small_is_refused():
    space = search_space("masked_ppo", {"lr": 1e-3, "hidden": (64, 64)}, discrete=True, gaussian=False)
    assert sample_trials("masked_ppo", space, 4, 0) != sample_trials("masked_ppo", space, 4, 1)
    from ray import tune

    with pytest.raises(ValueError, match="fewer than 3 distinct configs"):
        sample_trials("masked_ppo", {"hidden": tune.choice([(64, 64), (32, 32)])}, 3, 0)


@pytest.mark.parametrize("group, message", [
    ("search = { trials = 2 }\ngrid = { lr = [0.1] }", "either lists its configs (grid) or draws them (search)"),
    ("search = { trails = 2 }", "search must be a table search = { trials = N, seed = S }"),
    ("search = { trials = 0 }", "search.trials must be a positive integer"),
])
def test_a_bad_search_group_is_one_line(tmp_path, capsys, group, message):
    path = tmp_path / "bad.toml"
    path.write_text(f"[[group]]\nenvs = ['portfolio']\nalgos = ['masked_ppo']\n{group}\n")
    assert run_cli(study.main, "python -m suite.study", [str(path), "--dry-run"]) == 2
    assert message in capsys.readouterr().err


def test_a_search_over_a_reference_is_refused(tmp_path, capsys):
    path = tmp_path / "bad.toml"
    path.write_text("[[group]]\nenvs = ['portfolio']\nalgos = ['random_valid']\nsearch = { trials = 2 }\n")
    assert run_cli(study.main, "python -m suite.study", [str(path), "--dry-run"]) == 2
    assert "random_valid is a reference policy, not a learning method" in capsys.readouterr().err


def test_a_tuning_run_evaluates_on_its_own_episodes_and_is_another_config(tmp_path):
    settings = {**TINY_SETTINGS, "hidden": (16,), "backend": "torch"}
    tuned = runner.RunRequest.build("portfolio", "masked_ppo", 100, out=tmp_path, algo_config=settings, steps=512,
                                    episodes=2, eval_seed_base=2_000_000)
    runner.execute(tuned, quiet=True)
    record = json.loads((tuned.directory / "config.json").read_text())
    assert record["eval_seeds"] == [2_000_000, 2_000_001]
    evals = pd.read_csv(tuned.directory / "eval.csv")
    assert set(evals["env_seed"]) == {2_000_000, 2_000_001}
    plain = {**record, "eval_seeds": [1_000_000, 1_000_001]}
    assert results.config_id(record) != results.config_id(plain)
    assert results.config_id({k: v for k, v in plain.items() if k != "eval_seeds"}) == results.config_id(plain)
    again = runner.RunRequest.build("portfolio", "masked_ppo", 100, out=tmp_path, algo_config=settings, steps=512,
                                    episodes=2)
    with pytest.raises(UsageError, match="it was run with a different eval_seeds"):
        runner.prepare_directory(again, overwrite=False, resume=True)


def _trial(root, name, algo, seed, lr, returns, env="portfolio", steps=200, eval_seed_base=2_000_000):
    directory = write_synthetic_run(root / name, env, algo, seed, steps=steps, returns=returns,
                                    algo_config={"lr": lr, "hidden": [64, 64], "backend": "torch",
                                                 "entropy_coeff": 0.0, "network": "mlp"})
    record = json.loads((directory / "config.json").read_text())
    record["eval_seeds"] = [eval_seed_base, eval_seed_base + len(returns) - 1]
    (directory / "config.json").write_text(json.dumps(record))
    return directory


def test_the_best_trial_per_method_and_task_becomes_the_settings_file(tmp_path, monkeypatch, capsys):
    folder = tmp_path / "tuning"
    for seed in (100, 101):  # masked PPO: lr 0.002 is best (mean 20.5); penalty PPO: lr 0.0005 (mean 8.5)
        _trial(folder, "a", "masked_ppo", seed, 0.001, [10.0 + seed - 100])
        _trial(folder, "b", "masked_ppo", seed, 0.002, [20.0 + seed - 100])
        _trial(folder, "c", "penalty_ppo", seed, 0.0005, [8.0 + seed - 100])
        _trial(folder, "d", "penalty_ppo", seed, 0.003, [1.0])
        write_synthetic_run(folder / "refs", "portfolio", "random_valid", seed, returns=[0.0])  # not a method
    monkeypatch.setattr(tuned_settings, "TUNED_FOLDER", tmp_path)
    assert tuning.main([str(folder), "--name", "t9", "--protocol", "two trials"]) == 0
    data = tuned_settings.load_tuned("t9")
    assert data["study"] == "tuning" and data["protocol"] == "two trials" and "partial" not in data
    by_algo = {entry["algo"]: entry for entry in data["entry"]}
    assert by_algo["masked_ppo"]["settings"] == {"entropy_coeff": 0.0, "hidden": [64, 64], "lr": 0.002}
    assert by_algo["masked_ppo"]["score"] == 20.5 and by_algo["masked_ppo"]["trials"] == 2
    assert by_algo["masked_ppo"]["tuning_seeds"] == [100, 101] and by_algo["masked_ppo"]["steps_per_trial"] == 200
    assert by_algo["penalty_ppo"]["settings"]["lr"] == 0.0005
    assert by_algo["masked_ppo"]["tuned_with"] == {"backend": "torch", "network": "mlp"}
    assert by_algo["masked_ppo"]["env_config"] == {}  # the trials ran on portfolio's defaults
    assert by_algo["masked_ppo"]["env_version"] == 0  # ... of the version their config.json record
    trials = pd.read_csv(folder / "trials.csv")
    assert len(trials) == 4 and "random_valid" not in set(trials["algo"])
    text = (folder / "tuning.md").read_text()
    assert "## masked_ppo on portfolio" in text
    chosen = text.split("## Chosen settings")[1].split("## masked_ppo")[0]
    masked_row, = [line for line in chosen.splitlines() if "masked_ppo" in line]
    assert [cell.strip() for cell in masked_row.strip("|").split("|")][3:5] == ["20.5", "10.5"]  # chosen, runner-up
    config = load_algo("masked_ppo").make_config("portfolio", {"settings": "t9", "backend": "torch"}, owner="t")
    assert config.lr == 0.002 and config.hidden == (64, 64)


def test_methods_tuned_unequally_are_refused_unless_partial_which_the_file_says(tmp_path, monkeypatch, capsys):
    folder = tmp_path / "tuning"
    for seed in (100, 101):
        _trial(folder, "a", "masked_ppo", seed, 0.001, [10.0])
        _trial(folder, "b", "masked_ppo", seed, 0.002, [20.0])
        _trial(folder, "c", "penalty_ppo", seed, 0.0005, [8.0])
    monkeypatch.setattr(tuned_settings, "TUNED_FOLDER", tmp_path)
    assert run_cli(tuning.main, "python -m suite.tuning", [str(folder), "--name", "t8"]) == 2
    assert "trials per (method, task) differ: 1 for penalty_ppo on portfolio, 2 for masked_ppo" in \
        capsys.readouterr().err
    assert not (tmp_path / "t8.toml").exists()
    assert tuning.main([str(folder), "--name", "t8", "--partial"]) == 0
    assert tuned_settings.load_tuned("t8")["partial"].startswith("trials per (method, task) differ")
    written = (tmp_path / "t8.toml").read_text()
    capsys.readouterr()
    assert run_cli(tuning.main, "python -m suite.tuning", [str(folder), "--name", "t8", "--partial"]) == 2
    err = capsys.readouterr().err
    assert "t8.toml' exists: runs that name settings=t8 use it" in err and len(err.strip().splitlines()) == 1
    assert (tmp_path / "t8.toml").read_text() == written
    assert tuning.main([str(folder), "--name", "t8", "--partial", "--overwrite"]) == 0


def _failed(directory, last_line):
    """Turn a trial's run into one stopped by an error: error.txt (the traceback's last line), no eval.csv."""
    (directory / "eval.csv").unlink()
    (directory / "error.txt").write_text(f"Traceback (most recent call last):\n  ...\n{last_line}\n")


DIVERGED_LINE = ("suite.runner.RunFailed: training diverged at iteration 25: policy_loss, vf_loss, entropy are nan; "
                 "lower the learning rate (lr) or the reward scale")


def test_a_diverged_trial_counts_ranks_last_and_is_named_but_a_run_failed_otherwise_is_missing(
        tmp_path, monkeypatch, capsys):
    folder = tmp_path / "tuning"
    for seed in (100, 101):
        _trial(folder, "a", "masked_ppo", seed, 0.001, [10.0])
        unstable = _trial(folder, "b", "masked_ppo", seed, 0.002, [50.0])  # the best seed, then a divergence
        _trial(folder, "c", "penalty_ppo", seed, 0.0005, [8.0])
        _trial(folder, "d", "penalty_ppo", seed, 0.003, [1.0])
    _failed(unstable, DIVERGED_LINE)  # seed 101 of lr 0.002
    monkeypatch.setattr(tuned_settings, "TUNED_FOLDER", tmp_path)
    assert tuning.main([str(folder), "--name", "t7"]) == 0  # not partial: every pair had 2 trials of 2 seeds
    data = tuned_settings.load_tuned("t7")
    masked, = [entry for entry in data["entry"] if entry["algo"] == "masked_ppo"]
    assert "partial" not in data and masked["trials"] == 2
    assert masked["settings"]["lr"] == 0.001 and masked["score"] == 10.0  # not the trial that scored 50 once
    trials = pd.read_csv(folder / "trials.csv").set_index(["algo", "rank"])
    assert trials.loc[("masked_ppo", 2), "returns"] == "50,diverged" and trials.loc[("masked_ppo", 2), "diverged"] == 1
    assert pd.isna(trials.loc[("masked_ppo", 2), "return_mean"])
    text = (folder / "tuning.md").read_text()
    assert "**Diverged**" in text and "1 of 4 trials: masked_ppo on portfolio" in text
    assert "50,diverged | diverged" in text

    # a run that failed otherwise (here: out of memory) says nothing about its setting: the trial is short a seed
    _failed(folder / "c" / "portfolio" / "penalty_ppo" / "seed101", "MemoryError")
    capsys.readouterr()
    assert run_cli(tuning.main, "python -m suite.tuning", [str(folder), "--name", "t6"]) == 2
    assert "seeds per (method, task) differ: 1 for penalty_ppo on portfolio" in capsys.readouterr().err

    # every trial of a method diverged: nothing to choose
    _failed(folder / "a" / "portfolio" / "masked_ppo" / "seed100", DIVERGED_LINE)
    assert run_cli(tuning.main, "python -m suite.tuning", [str(folder), "--name", "t5", "--partial"]) == 2
    assert "every trial of masked_ppo on portfolio diverged" in capsys.readouterr().err


def test_a_folder_without_a_finished_trial_is_one_line(tmp_path, capsys):
    folder = tmp_path / "tuning"
    write_synthetic_run(folder / "refs", "portfolio", "random_valid", 100, returns=[0.0], evaluated=False)
    write_synthetic_run(folder / "a", "portfolio", "masked_ppo", 100, evaluated=False)  # unfinished runs only
    assert run_cli(tuning.main, "python -m suite.tuning", [str(folder), "--name", "t4"]) == 2
    assert "no complete run of a learning method" in capsys.readouterr().err
    _failed(_trial(folder, "b", "masked_ppo", 100, 0.001, [10.0]), DIVERGED_LINE)  # and a diverged trial
    assert run_cli(tuning.main, "python -m suite.tuning", [str(folder), "--name", "t4"]) == 2
    assert "every trial of masked_ppo on portfolio diverged" in capsys.readouterr().err


def test_trials_on_the_reported_episodes_or_two_env_configs_of_one_env_are_refused(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(tuned_settings, "TUNED_FOLDER", tmp_path)
    folder = tmp_path / "default-episodes"
    for seed in (100, 101):
        _trial(folder, "a", "masked_ppo", seed, 0.001, [10.0], eval_seed_base=1_000_000)
    assert run_cli(tuning.main, "python -m suite.tuning", [str(folder), "--name", "t7", "--partial"]) == 2
    assert "evaluated on the default evaluation episodes (env seeds from 1,000,000)" in capsys.readouterr().err
    folder = tmp_path / "two-configs"
    for seed in (100, 101):
        _trial(folder, "a", "masked_ppo", seed, 0.001, [10.0])
        directory = _trial(folder, "b", "masked_ppo", seed, 0.002, [12.0])
        record = json.loads((directory / "config.json").read_text())
        record["env_config"] = {"periods": 10}
        (directory / "config.json").write_text(json.dumps(record))
    assert run_cli(tuning.main, "python -m suite.tuning", [str(folder), "--name", "t7"]) == 2
    assert "masked_ppo was tuned on portfolio under 2 env configs" in capsys.readouterr().err
    assert not (tmp_path / "t7.toml").exists()
    # an entry holds for one version of its env: trials of two versions, or of none recorded, are refused
    for case, version, message in (("two-versions", 10, "masked_ppo was tuned on portfolio at env versions 9, 10"),
                                   ("no-version", None, "some trials of masked_ppo on portfolio do not record their "
                                                        "env's version")):
        folder = tmp_path / case
        for seed in (100, 101):
            for name, trial_version in (("a", 9), ("b", version)):
                directory = _trial(folder, name, "masked_ppo", seed, 0.001 if name == "a" else 0.002, [10.0])
                record = json.loads((directory / "config.json").read_text())
                record["env_version"] = trial_version
                if trial_version is None:
                    del record["env_version"]
                (directory / "config.json").write_text(json.dumps(record))
        assert run_cli(tuning.main, "python -m suite.tuning", [str(folder), "--name", "t7", "--partial"]) == 2
        err = capsys.readouterr().err
        assert message in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "t7.toml").exists()


def test_a_run_using_an_entry_must_have_the_network_it_was_tuned_with(tmp_path, monkeypatch):
    monkeypatch.setattr(tuned_settings, "TUNED_FOLDER", tmp_path)
    entry = {"algo": "masked_ppo", "env": "sum_to_zero-m", "settings": {"hidden": [32, 32]},
             "tuned_with": {"backend": "torch", "network": "per_entry"}, "env_config": {}, "env_version": 0}
    (tmp_path / "t6.toml").write_text(tuned_settings.tuned_toml(
        {"name": "t6", "study": "s", "made": "m", "commit": "c"}, [entry]))
    method = load_algo("masked_ppo")
    config = method.make_config("sum_to_zero-m", {"settings": "t6", "backend": "torch", "network": "per_entry"},
                                owner="t")
    assert config.hidden == (32, 32)
    with pytest.raises(ConfigError, match="settings=t6 was tuned for masked_ppo on sum_to_zero-m with "
                                          "backend=torch, network=per_entry; this run has backend=rllib, network=mlp"):
        method.make_config("sum_to_zero-m", {"settings": "t6"}, owner="t")


def test_the_writer_takes_numpy_scalars():
    import numpy as np

    text = tuned_settings.tuned_toml({"name": "n", "study": "s", "made": "m", "commit": "c", "x": np.float64(1.5)},
                                     [{"algo": "a", "env": "e", "settings": {"lr": np.float32(0.5),
                                                                             "hidden": [np.int64(64)]}}])
    assert "x = 1.5" in text and "settings = { lr = 0.5, hidden = [64] }" in text


def test_a_setting_at_an_edge_of_its_range_is_named_and_zero_or_a_pair_of_widths_is_not():
    from ray import tune

    from baselines.search_spaces import at_edge

    space = {"lr": tune.loguniform(1e-4, 1e-2), "entropy_coeff": tune.choice([0.0, 1e-3, 1e-2, 3e-2]),
             "hidden": tune.choice([(64, 64), (256, 256)]), "cost_limit": tune.choice([0.0, 1.0, 5.0]),
             "log_std_init": tune.uniform(-4.0, -1.0)}
    inside = {"lr": 1e-3, "entropy_coeff": 1e-3, "hidden": (256, 256), "cost_limit": 0.0, "log_std_init": -2.5}
    assert at_edge(inside, space) == []
    # log position of 9e-3 in 1e-4..1e-2: log(90) / log(100) = 0.977; of 1.5e-4: log(1.5) / log(100) = 0.088
    assert at_edge({**inside, "lr": 9e-3}, space) == ["lr 0.009 near the top of 0.0001..0.01"]
    assert at_edge({**inside, "lr": 1.5e-4}, space) == ["lr 0.00015 near the bottom of 0.0001..0.01"]
    assert at_edge({**inside, "entropy_coeff": 3e-2, "cost_limit": 5.0, "log_std_init": -1.2}, space) == [
        "entropy_coeff 0.03 the largest of 0, 0.001, 0.01, 0.03", "cost_limit 5 the largest of 0, 1, 5",
        "log_std_init -1.2 near the top of -4..-1"]  # (-1.2 + 4) / 3 = 0.933


def test_the_report_names_a_chosen_setting_at_an_edge(tmp_path, monkeypatch, capsys):
    folder = tmp_path / "tuning"
    for seed in (100, 101):  # masked PPO's best lr, 0.0029, is in the top tenth of log(0.00033..0.003)
        _trial(folder, "a", "masked_ppo", seed, 0.001, [10.0])
        _trial(folder, "b", "masked_ppo", seed, 0.0029, [20.0])
    monkeypatch.setattr(tuned_settings, "TUNED_FOLDER", tmp_path)
    assert tuning.main([str(folder), "--name", "t7"]) == 0
    assert "1 chosen setting(s) at an edge of the search space (e.g. masked_ppo on portfolio: lr 0.0029 near the " \
           "top of 0.000333..0.003)" in capsys.readouterr().out
    trials = pd.read_csv(folder / "trials.csv", keep_default_na=False).set_index("rank")
    assert trials.loc[1, "at_edge"] == "lr 0.0029 near the top of 0.000333..0.003" and trials.loc[2, "at_edge"] == ""
    assert "**At an edge of the search space** (the best may lie outside it): 1 of 1 chosen settings: masked_ppo " \
           "on portfolio: lr 0.0029" in (folder / "tuning.md").read_text()


def test_an_entry_holds_only_under_the_env_settings_its_trials_ran_under(tmp_path, monkeypatch, capsys):
    folder = tmp_path / "tuning"
    for seed in (100, 101):  # job_shop's trials under noop and the job features, not its defaults (repair)
        for name, lr, score in (("a", 0.001, -150.0), ("b", 0.002, -140.0)):
            directory = _trial(folder, name, "masked_ppo", seed, lr, [score], env="job_shop")
            record = json.loads((directory / "config.json").read_text())
            record["env_config"] = {"invalid_action": "noop", "job_features": True}
            (directory / "config.json").write_text(json.dumps(record))
    monkeypatch.setattr(tuned_settings, "TUNED_FOLDER", tmp_path)
    assert tuning.main([str(folder), "--name", "t5"]) == 0
    entry, = tuned_settings.load_tuned("t5")["entry"]
    assert entry["env_config"] == {"invalid_action": "noop", "job_features": True} and entry["settings"]["lr"] == 0.002
    assert "## masked_ppo on job_shop [invalid_action=noop, job_features=True]" in (folder / "tuning.md").read_text()
    tuned = {"settings": "t5", "backend": "torch"}
    same = runner.RunRequest.build("job_shop", "masked_ppo", 10, out=tmp_path / "r", algo_config=tuned,
                                   env_config={"invalid_action": "noop", "job_features": True})
    assert same.algo_config["lr"] == 0.002
    debugging = runner.RunRequest.build("job_shop", "masked_ppo", 10, out=tmp_path / "r", algo_config=tuned,
                                        env_config={"invalid_action": "noop", "job_features": True, "strict": True})
    assert debugging.algo_config["lr"] == 0.002  # strict (raise on an inadmissible action) is no other task
    # the folder names the file, the env settings and what the entry required (backend), not the tuned values
    assert same.directory.parent.name == "backend=torch,invalid_action=noop,job_features=True,settings=t5"
    for env_config, shown in (({}, "the env's default settings"), ({"invalid_action": "noop"},
                                                                    "env settings invalid_action=noop"),
                              ({"invalid_action": "noop", "job_features": True, "n_jobs": 5},
                               "env settings invalid_action=noop, job_features=true, n_jobs=5")):
        with pytest.raises(ConfigError) as error:
            runner.RunRequest.build("job_shop", "masked_ppo", 10, out=tmp_path / "r", algo_config=tuned,
                                    env_config=env_config)
        assert str(error.value) == ("algo config: settings=t5 was tuned for masked_ppo on job_shop under env settings "
                                    "invalid_action=noop, job_features=true; this run has " + shown
                                    + " (set the same env settings, or tune under these)")


def _entry_blocks(text):
    return [block.strip() for block in text.split("[[entry]]")[1:]]


def test_extend_adds_a_task_tuned_later_and_keeps_every_entry_the_file_has(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(tuned_settings, "TUNED_FOLDER", tmp_path)
    folder = tmp_path / "tuning"
    for seed in (100, 101):
        _trial(folder, "a", "masked_ppo", seed, 0.001, [10.0])
        _trial(folder, "b", "masked_ppo", seed, 0.002, [20.0])
    assert tuning.main([str(folder), "--name", "t4", "--protocol", "two trials"]) == 0
    before = (tmp_path / "t4.toml").read_text()
    for seed in (100, 101):  # the same protocol on another task, later
        _trial(folder, "c", "masked_ppo", seed, 0.003, [5.0], env="portfolio-m")
        _trial(folder, "d", "masked_ppo", seed, 0.0005, [7.0], env="portfolio-m")
    assert run_cli(tuning.main, "python -m suite.tuning", [str(folder), "--name", "t4"]) == 2
    assert "pass --extend to add entries it lacks" in capsys.readouterr().err
    assert tuning.main([str(folder), "--name", "t4", "--extend"]) == 0
    after = (tmp_path / "t4.toml").read_text()
    assert _entry_blocks(after)[0] == _entry_blocks(before)[0]  # the old entry, byte for byte
    data = tuned_settings.read_tuned(tmp_path / "t4.toml")
    assert [(e["env"], e["settings"]["lr"]) for e in data["entry"]] == [("portfolio", 0.002), ("portfolio-m", 0.0005)]
    assert data["protocol"] == "two trials" and "added masked_ppo on portfolio-m" in data["extended"]
    assert data["made"] in before and data["name"] == "t4"  # the file's own provenance stays
    # a run made with the file before the extension resolves to the same config after it
    config = load_algo("masked_ppo").make_config("portfolio", {"settings": "t4", "backend": "torch"}, owner="t")
    assert config.lr == 0.002


@pytest.mark.parametrize("case, message", [
    ("changed", "--extend would change the entry for masked_ppo on portfolio"),
    ("version", "--extend would change the entry for masked_ppo on portfolio"),
    ("unlike", "masked_ppo on portfolio-m was not tuned like the file's entries"),
    ("protocol", "--extend keeps the file's protocol"),
    ("both", "--extend keeps the file's entries and --overwrite replaces them"),
    ("missing", "--extend: no settings file"),
])
def test_extend_refuses_what_would_change_the_files_meaning(tmp_path, monkeypatch, capsys, case, message):
    monkeypatch.setattr(tuned_settings, "TUNED_FOLDER", tmp_path)
    folder = tmp_path / "tuning"
    for seed in (100, 101):
        _trial(folder, "a", "masked_ppo", seed, 0.001, [10.0])
        _trial(folder, "b", "masked_ppo", seed, 0.002, [20.0])
    if case != "missing":
        assert tuning.main([str(folder), "--name", "t4"]) == 0
    written = (tmp_path / "t4.toml").read_text() if case != "missing" else None
    extra = []
    if case == "changed":  # trial a wins now: the study would choose another lr for an entry the file has
        for seed in (100, 101):
            _trial(folder, "a2", "masked_ppo", seed, 0.0011, [30.0])
    elif case == "version":  # the same choice on another version of the env: it holds there, not on the file's
        trials = list(folder.glob("*/portfolio/masked_ppo/seed*"))
        assert len(trials) == 4
        for directory in trials:
            record = json.loads((directory / "config.json").read_text())
            (directory / "config.json").write_text(json.dumps({**record, "env_version": 1}))
    elif case == "unlike":  # a new task with one trial, not the file's two
        other = tmp_path / "later"
        for seed in (100, 101):
            _trial(other, "c", "masked_ppo", seed, 0.003, [5.0], env="portfolio-m")
        folder = other
    elif case == "protocol":
        extra = ["--protocol", "another"]
    elif case == "both":
        extra = ["--overwrite"]
    assert run_cli(tuning.main, "python -m suite.tuning", [str(folder), "--name", "t4", "--extend", *extra]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
    if written is not None:
        assert (tmp_path / "t4.toml").read_text() == written


def test_an_entry_records_the_training_task_only_where_the_trials_changed_it():
    # files and folder names stay as they were for trials on the per-env default training env (the runs using
    # the entry are held to that default anyway); a study that trained on another reward says so in the entry
    method = load_algo("penalty_ppo")
    trial = json.loads(json.dumps(dataclasses.asdict(method.make_config("portfolio", {"backend": "torch"}, owner="t"))))
    assert trial["train_env_config"] == ["reward=value_change"]
    assert "train_env_config" not in tuning._tuned_with("portfolio", method, trial)
    other = {**trial, "train_env_config": ["reward=final_value"]}
    assert tuning._tuned_with("portfolio", method, other) == {**tuning._tuned_with("portfolio", method, trial),
                                                             "train_env_config": ["reward=final_value"]}


def test_extend_with_partial_says_in_the_file_which_entries_were_tuned_unlike_the_rest(tmp_path, monkeypatch):
    monkeypatch.setattr(tuned_settings, "TUNED_FOLDER", tmp_path)
    folder, later = tmp_path / "tuning", tmp_path / "later"
    for seed in (100, 101):
        _trial(folder, "a", "masked_ppo", seed, 0.001, [10.0])
        _trial(folder, "b", "masked_ppo", seed, 0.002, [20.0])
        _trial(later, "c", "masked_ppo", seed, 0.003, [5.0], env="portfolio-m")  # one trial, not two
    assert tuning.main([str(folder), "--name", "t4"]) == 0
    assert "partial" not in tuned_settings.read_tuned(tmp_path / "t4.toml")
    assert tuning.main([str(later), "--name", "t4", "--extend", "--partial"]) == 0
    data = tuned_settings.read_tuned(tmp_path / "t4.toml")
    assert data["partial"].startswith("masked_ppo on portfolio-m added unlike the file's entries (")
    assert '"trials": 1' in data["partial"] and data["extended"].endswith("added masked_ppo on portfolio-m from later")
    assert data["study"] == "tuning"  # the file's own study; the extension's is named in its note
