"""Tuned settings files (:mod:`baselines.tuned_settings`): a named layer per method and env, opt-in."""

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from baselines import load_algo, tuned_settings
from envs.config import ConfigError
from suite import results
from suite.runner import RunRequest

PROVENANCE = {"name": "t1", "study": "tuning", "made": "2026-12-05T07:00:00+0000", "commit": "abc1234",
              "protocol": "random search, 4 trials"}
ENTRIES = [{"algo": "penalty_ppo", "env": "portfolio", "settings": {"lr": 0.002, "hidden": [64, 64], "penalty": 0.5},
            "env_config": {}, "env_version": 0, "trials": 4, "steps_per_trial": 20000, "tuning_seeds": [100, 101],
            "score": 12.5},
           {"algo": "masked_ppo", "env": "portfolio-m", "settings": {"entropy_coeff": 0.0}, "env_config": {},
            "env_version": 0, "trials": 4}]


@pytest.fixture
def tuned(tmp_path, monkeypatch):
    monkeypatch.setattr(tuned_settings, "TUNED_FOLDER", tmp_path)
    (tmp_path / "t1.toml").write_text(tuned_settings.tuned_toml(PROVENANCE, ENTRIES))
    return tmp_path


def test_a_named_file_goes_over_the_env_defaults_and_under_the_users_keys(tuned, tmp_path):
    entry = load_algo("penalty_ppo")
    defaults = entry.make_config("portfolio", {}, owner="t")
    config = entry.make_config("portfolio", {"settings": "t1", "penalty": 0.25}, owner="t")
    assert config.settings == "t1" and config.lr == 0.002 and config.hidden == (64, 64)
    assert config.penalty == 0.25  # the user's key wins
    assert config.gamma == defaults.gamma == 1.0  # portfolio's per-env default, not in the file, stays
    assert defaults.settings == "" and defaults.lr == 1e-3 and defaults.hidden == (256, 256)  # defaults unchanged


def test_the_runs_folder_names_the_file_and_config_json_the_values_it_resolved_to(tuned, tmp_path):
    plain = RunRequest.build("portfolio", "penalty_ppo", 0, out=tmp_path / "r")
    named = RunRequest.build("portfolio", "penalty_ppo", 0, out=tmp_path / "r", algo_config={"settings": "t1"})
    assert plain.directory == tmp_path / "r" / "portfolio" / "penalty_ppo" / "seed0"
    assert named.directory == tmp_path / "r" / "portfolio" / "penalty_ppo" / "settings=t1" / "seed0"
    both = RunRequest.build("portfolio", "penalty_ppo", 0, out=tmp_path / "r",
                            algo_config={"settings": "t1", "num_epochs": 5})
    assert both.directory.parent.name == "num_epochs=5,settings=t1"
    record = json.loads(json.dumps(named.record(), default=list))
    assert record["algo_config"]["settings"] == "t1" and record["algo_config"]["lr"] == 0.002
    assert results.config_id(record) != results.config_id(json.loads(json.dumps(plain.record(), default=list)))


@pytest.mark.parametrize("overrides, message", [
    ({"settings": "nope"}, "settings=nope names no tuned settings file (baselines/tuned/nope.toml); known: t1"),
    ({"settings": "../t1"},
     "config key 'settings' must be a settings name (letters, digits, '.', '_', '-') or empty; got '../t1'"),
])
def test_an_unknown_or_path_like_name_is_one_line(tuned, overrides, message):
    with pytest.raises(ConfigError, match="settings") as error:
        load_algo("penalty_ppo").make_config("portfolio", overrides, owner="t")
    assert message in str(error.value) and "\n" not in str(error.value)


def test_a_file_without_an_entry_for_the_algo_and_env_is_refused_not_a_silent_fallback(tuned):
    with pytest.raises(ConfigError) as error:
        load_algo("penalty_ppo").make_config("portfolio-m", {"settings": "t1"}, owner="t")
    assert str(error.value) == ("algo config: settings=t1 has no entry for penalty_ppo on portfolio-m (a run would "
                                "not be tuned); it has: masked_ppo on portfolio-m, penalty_ppo on portfolio")


@pytest.mark.parametrize("text, problem", [
    ('name = "t2"\nstudy = "s"\nmade = "m"\n', "lacks 'commit'"),
    ('name = "t2"\nstudy = "s"\nmade = "m"\ncommit = "c"\n[[entry]]\nalgo = "a"\n', "entry 1 needs algo, env"),
    ('name = "t2"\nstudy = "s"\nmade = "m"\ncommit = "c"\n[[entry]]\nalgo = "a"\nenv = "e"\nsettings = {}\nx = 1\n',
     "entry 1 has unknown key 'x'"),
    ("name = ", "unreadable"),
])
def test_a_damaged_file_is_one_line(tuned, text, problem):
    (tuned / "t2.toml").write_text(text)
    with pytest.raises(ConfigError, match=problem):
        tuned_settings.load_tuned("t2")


def test_an_old_config_json_without_the_key_reads_as_no_file():
    old = {"algo": "penalty_ppo", "algo_config": {"lr": 0.001, "backend": "rllib"}, "env": "portfolio"}
    assert results.with_added_settings(old)["algo_config"]["settings"] == ""


@given(st.dictionaries(st.sampled_from(["lr", "entropy_coeff", "penalty", "log_std_init"]),
                       st.floats(min_value=1e-9, max_value=1e3, allow_nan=False), min_size=1),
       st.lists(st.integers(1, 1024), min_size=1, max_size=3), st.text(min_size=0, max_size=30))
def test_a_written_file_reads_back_as_written(tmp_path_factory, settings, hidden, note):
    folder = tmp_path_factory.mktemp("tuned")
    entry = {"algo": "penalty_ppo", "env": "portfolio", "settings": {**settings, "hidden": hidden}, "env_config": {},
             "env_version": 0}
    text = tuned_settings.tuned_toml({**PROVENANCE, "name": "rt", "protocol": note}, [entry])
    (folder / "rt.toml").write_text(text)
    data = tuned_settings._load(folder / "rt.toml", 0)
    assert data["protocol"] == note and data["entry"] == [entry]


@pytest.mark.parametrize("env_config, problem", [("", "env_config is a label"), (None, "no env_config")])
def test_a_file_made_before_the_env_settings_were_recorded_says_so(tuned, env_config, problem):
    # without the env settings its trials ran under, an entry cannot tell a run on other settings from one on
    # its own: refused rather than read as "tuned under the defaults"
    entry = {key: value for key, value in ENTRIES[0].items() if key != "env_config"}
    text = tuned_settings.tuned_toml({**PROVENANCE, "name": "t3"},
                                     [entry if env_config is None else {**entry, "env_config": env_config}])
    (tuned / "t3.toml").write_text(text)
    with pytest.raises(ConfigError, match=f"entry 1: {problem}, as files made before the env settings its trials "
                                          r"ran under were recorded have it; make the file again") as error:
        load_algo("penalty_ppo").make_config("portfolio", {"settings": "t3"}, owner="t")
    assert "\n" not in str(error.value)


def test_an_entry_holds_only_on_the_env_version_its_trials_ran(tuned, tmp_path, monkeypatch):
    # the entry's env_config is relative to its env version's defaults: a run of another version is refused, and a
    # file without the version (made before entries recorded it) says to make it again
    from envs.portfolio import PortfolioCore

    with monkeypatch.context() as patch, pytest.raises(ConfigError) as error:
        patch.setattr(PortfolioCore, "version", 1)
        RunRequest.build("portfolio", "penalty_ppo", 0, out=tmp_path / "r", algo_config={"settings": "t1"})
    assert str(error.value) == ("algo config: settings=t1 was tuned for penalty_ppo on version 0 of portfolio; this "
                                "run's portfolio is version 1 (its dynamics, reward, mask or defaults changed since): "
                                "tune it again on this version")
    assert RunRequest.build("portfolio", "penalty_ppo", 0, out=tmp_path / "r",
                            algo_config={"settings": "t1"}).algo_config["penalty"] == 0.5  # its own version
    unversioned = {key: value for key, value in ENTRIES[0].items() if key != "env_version"}
    for name, entry, problem in (("t8", unversioned, "no env_version"),
                                 ("t9", {**ENTRIES[0], "env_version": -1}, "env_version must be a non-negative")):
        (tuned / f"{name}.toml").write_text(tuned_settings.tuned_toml({**PROVENANCE, "name": name}, [entry]))
        with pytest.raises(ConfigError, match=f"tuned settings {name}.toml: entry 1: {problem}"):
            load_algo("penalty_ppo").make_config("portfolio", {"settings": name}, owner="t")


def test_an_entry_holds_only_on_the_training_task_its_trials_trained_on(tuned, tmp_path):
    # portfolio's methods train on the value-change reward by default; the trials did, so a run that trains on
    # another reward (or on the env's own, train_env_config=()) is not the tuned method and is refused in one line
    entry = load_algo("penalty_ppo")
    assert entry.make_config("portfolio", {"settings": "t1"}, owner="t").train_env_config == ("reward=value_change",)
    for other, shown in ((("reward=final_value",), "reward=final_value"), ((), "()")):
        with pytest.raises(ConfigError) as error:
            RunRequest.build("portfolio", "penalty_ppo", 0, out=tmp_path / "r",
                             algo_config={"settings": "t1", "train_env_config": other})
        assert str(error.value) == (f"algo config: settings=t1 was tuned for penalty_ppo on portfolio with "
                                    f"train_env_config=reward=value_change; this run has train_env_config={shown} "
                                    "(set them, or tune for this setting)")
    # an entry whose trials trained on another reward records it, and holds for runs that train on it
    recorded = {**ENTRIES[0], "tuned_with": {"train_env_config": ["reward=final_value"]}}
    (tuned / "t4.toml").write_text(tuned_settings.tuned_toml({**PROVENANCE, "name": "t4"}, [recorded]))
    run = RunRequest.build("portfolio", "penalty_ppo", 0, out=tmp_path / "r",
                           algo_config={"settings": "t4", "train_env_config": ("reward=final_value",)})
    assert list(run.algo_config["train_env_config"]) == ["reward=final_value"] and run.algo_config["penalty"] == 0.5
    with pytest.raises(ConfigError, match="with train_env_config=reward=final_value; this run has "
                                          "train_env_config=reward=value_change"):
        entry.make_config("portfolio", {"settings": "t4"}, owner="t")
