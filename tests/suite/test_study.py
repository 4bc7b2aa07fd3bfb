"""Studies (python -m suite.study): a sweep written as data runs from its file, resumes, and refuses bad files
in one line."""

import math
import shutil
import subprocess
import textwrap
from pathlib import Path

import pytest

from suite import results, study, sweep
from suite.cli import run_cli
from tests.helpers import assert_ray_is_gone

TINY_STUDY = textwrap.dedent('''
    description = "two levels, the references and a grid"
    seeds = 2
    episodes = 4
    eval_every = 0

    [[group]]
    envs = ["portfolio", "portfolio-m"]
    algos = ["random_valid", "relaxed_heuristic"]
    steps = 1000
    seeds = 1  # a group's own number of seeds

    [[group]]
    envs = ["sum_to_zero"]
    algos = ["penalty_ppo", "naive_masked_ppo"]
    steps = 1000
    env_config = { max_steps = 10 }
    grid = { penalty = [0.1, 1.0] }
    [group.algo_config]  # a table of its own: TOML's inline tables take one line
    backend = "torch"
    train_batch_size = 512
    minibatch_size = 128
    num_epochs = 2
    num_envs_per_env_runner = 16
    hidden = "16"
''')


def write(tmp_path, text, name="tiny.toml"):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_entries_are_the_cross_product_in_file_order_seeds_innermost(tmp_path):
    entries = study.study_entries(study.load_study(write(tmp_path, TINY_STUDY)))
    assert len(entries) == 2 * 2 * 1 + 1 * 2 * 2 * 2
    assert [(e.env, e.algo, e.seed) for e in entries[:3]] == [("portfolio", "random_valid", 0),
                                                               ("portfolio", "relaxed_heuristic", 0),
                                                               ("portfolio-m", "random_valid", 0)]
    last = entries[-1]
    assert (last.env, last.algo, last.seed, dict(last.algo_config)["penalty"], dict(last.env_config), last.steps) == \
        ("sum_to_zero", "naive_masked_ppo", 1, 1.0, {"max_steps": 10}, 1000)


def test_the_suites_scaling_study_lists_every_level_and_leaves_out_what_cannot_run(tmp_path, capsys):
    assert study.main(["scaling", "--dry-run", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    text = study.load_study(study.study_path("scaling"))
    pairs = sum(len(group["envs"]) * len(sweep.with_references(group["algos"]))
                * math.prod(len(v) for v in group.get("grid", {}).values()) for group in text["group"])
    # left out: naive masking on the 3 Box levels, normalize and Dirichlet on the 7 discrete ones of the first
    # three families, and of the 19 references on the 13 levels all but random_valid everywhere and each family's
    # own: portfolio's 4 on its 4 levels, speed_limit's 4 on its 3, sum_to_zero's 5 on its 3, job_shop's 5 on its 3
    left_out = 3 + 7 + 7 + 19 * 13 - (13 + 4 * 4 + 4 * 3 + 5 * 3 + 5 * 3)
    assert f"{text['seeds'] * (pairs - left_out)} run(s) to start, {left_out} left out" in out
    assert "left out: naive_masked_ppo on sum_to_zero-l: naive_masked_ppo handles discrete actions" in out
    assert "penalty_ppo on portfolio-xl, seed 2, 100,000 steps" in out
    assert all(len(line) < 400 for line in out.splitlines())
    assert not any(tmp_path.iterdir())  # a dry run writes nothing


def test_a_study_runs_from_its_file_and_a_rerun_starts_nothing(tmp_path, capsys):
    path = write(tmp_path, TINY_STUDY)
    out = tmp_path / "out"
    assert study.main([str(path), "--out", str(out), "--quiet", "--max-concurrent", "2"]) == 0
    assert_ray_is_gone()
    printed = capsys.readouterr()
    # runs that differ only in config are counted apart (they were once counted by env, algo and seed)
    assert "sweep: 8 of 8 run(s) complete, 0 failed, 0 unfinished" in printed.out, printed.out
    loaded = results.load(out)
    assert len(loaded.runs) == 4 + 4 and set(loaded.runs["status"]) == {"complete"}
    assert set(loaded.runs["env"]) == {"portfolio", "portfolio-m", "sum_to_zero"}
    penalties = loaded.runs.loc[loaded.runs["algo"] == "penalty_ppo", "algo.penalty"]
    assert sorted(penalties) == [0.1, 0.1, 1.0, 1.0]  # a folder per penalty (config variants)
    assert "left out: naive_masked_ppo on sum_to_zero" in printed.err
    assert study.main([str(path), "--out", str(out), "--dry-run"]) == 0
    assert "0 run(s) to start" in capsys.readouterr().out

    # A study's folder as a clone of the repository holds it (the reference sets commit their run folders,
    # .gitignore leaves the checkpoints out): complete runs are still complete; a run committed unfinished
    # (no checkpoint) is the one left to run, from iteration 0.
    clone = tmp_path / "clone"
    shutil.copytree(out, clone, ignore=shutil.ignore_patterns(results.CHECKPOINT_DIR))
    assert not list(clone.rglob(results.CHECKPOINT_DIR))
    unfinished = next(clone.rglob(results.EVAL_FILE))
    unfinished.unlink()
    assert study.main([str(path), "--out", str(clone), "--dry-run"]) == 0
    printed = capsys.readouterr().out
    assert "1 run(s) to start" in printed and str(unfinished.parent) in printed, printed


def test_the_repository_commits_a_reference_studys_run_folders_but_not_their_checkpoints():
    """The rule the previous test relies on: a reference study's run folders under results/reference/ are
    tracked, their checkpoints (pickled state, which a clone could not resume without --trust anyway) are not."""
    root = Path(__file__).resolve().parents[2]
    if not (root / ".git").exists():
        pytest.skip("not a git checkout: .gitignore cannot be asked")
    run = "results/reference/v3-runs/portfolio/masked_ppo/settings=v3/seed10"

    def ignored(path):
        return subprocess.run(["git", "check-ignore", "-q", path], cwd=root).returncode == 0

    assert not any(ignored(f"{run}/{name}") for name in ("eval.csv", "config.json", "progress.csv"))
    assert ignored(f"{run}/checkpoint/meta.json") and ignored(f"{run}/checkpoint/random_valid.pkl")
    assert ignored("results/portfolio/masked_ppo/seed0/eval.csv")  # ordinary runs stay untracked


@pytest.mark.parametrize("text, message", [
    ("seeds = 2\n", "study bad.toml: no [[group]] of runs"),
    ("sedes = 2\n[[group]]\nenvs=['portfolio']\nalgos=['oracle']\n", "study bad.toml: unknown key 'sedes'"),
    ("[[group]]\nenvs=['portfolio']\n", "study bad.toml, group 1: needs envs and algos"),
    ("[[group]]\nenvs=['portfolio']\nalgos=['oracle']\nstep=5\n", "(unknown: 'step')"),
    ("seeds = 'ten'\n[[group]]\nenvs=['portfolio']\nalgos=['oracle']\n", "seeds must be a positive integer, got 'ten'"),
    ("[[group]]\nenvs=['portfolio']\nalgos=['oracle']\nseeds=0\n", "group 1: seeds must be a positive integer, got 0"),
    ("[[group\n", "cannot read study"),
    ("[[group]]\nenvs=['portfolio-xxl']\nalgos=['oracle']\n", "unknown env 'portfolio-xxl'"),
    ("[[group]]\nenvs=['portfolio']\nalgos=['masked_ppo']\nalgo_config={lr=-1}\n", "config key 'lr'"),
])
def test_a_bad_study_file_is_one_line_with_status_2(tmp_path, capsys, text, message):
    from suite.cli import run_cli

    path = write(tmp_path, text, "bad.toml")
    assert run_cli(study.main, "python -m suite.study", [str(path), "--out", str(tmp_path / "out"),
                                                         "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1, err


def test_an_unknown_study_name_lists_the_suites_studies(capsys):
    from suite.cli import run_cli

    assert run_cli(study.main, "python -m suite.study", ["no_such_study"]) == 2
    assert ("no study 'no_such_study': give a study file's path or one of the suite's studies "
            "(budgets, defaults, penalty, reference, reference_v3, scaling, tuning)") in capsys.readouterr().err


def test_a_run_two_groups_list_is_one_run_where_the_file_first_lists_it(tmp_path):
    """``references`` stands for random_valid too: a group running random_valid at more seeds lists its first
    seeds again (the reference study did, 26 runs twice); a run is started once."""
    text = textwrap.dedent('''
        [[group]]
        envs = ["portfolio"]
        algos = ["random_valid"]
        seeds = 3
        [[group]]
        envs = ["portfolio"]
        algos = ["references"]
        seeds = 2
        [[group]]
        envs = ["portfolio"]
        algos = ["random_valid"]
        seeds = 2
        steps = 1000
    ''')
    entries = study.study_entries(study.load_study(write(tmp_path, text)))
    assert len(entries) == len(set(entries))
    assert [(e.algo, e.seed, e.steps) for e in entries if e.algo == "random_valid"] == \
        [("random_valid", 0, None), ("random_valid", 1, None), ("random_valid", 2, None),
         ("random_valid", 0, 1000), ("random_valid", 1, 1000)]  # another budget: other runs
    others = [e for e in entries if e.algo != "random_valid"]
    assert len(others) == 2 * (len(sweep.with_references(["references"])) - 1)


def test_a_groups_own_seeds_override_the_studys_and_toml_lists_are_accepted(tmp_path):
    text = textwrap.dedent('''
        seeds = 10
        [[group]]
        envs = ["portfolio"]
        algos = ["masked_ppo"]
        algo_config = { hidden = [64, 64] }
        [[group]]
        envs = ["portfolio-m"]
        algos = ["masked_ppo"]
        seeds = 5
        algo_config = { hidden = "64,64" }
    ''')
    entries = study.study_entries(study.load_study(write(tmp_path, text)))
    assert [(e.env, e.seed) for e in entries] == [("portfolio", s) for s in range(10)] + \
        [("portfolio-m", s) for s in range(5)]
    assert dict(entries[0].algo_config) == {"hidden": (64, 64)}
    hash(entries[0])  # a sweep keys its checks on entries: TOML lists arrive as tuples
    as_list, as_text = (study.runner.RunRequest.build(e.env, e.algo, 0, out=tmp_path, algo_config=dict(e.algo_config))
                        for e in (entries[0], entries[-1]))
    assert as_list.directory.parent.name == as_text.directory.parent.name == "hidden=64-64"


def test_a_study_filtered_to_some_envs_plans_the_same_runs_in_the_same_folders(tmp_path, capsys):
    # the suite's tuning study: a level tuned later (or a share for another machine) runs with --env, and its
    # trials are the ones the whole study would draw for that env, in the same folders
    out = tmp_path / "out"

    def planned(*extra):
        assert study.main(["tuning", "--out", str(out), "--dry-run", *extra]) == 0
        return [line for line in capsys.readouterr().out.splitlines() if line.endswith("seed100")
                or line.endswith("seed101")]

    whole, only = planned(), planned("--env", "sum_to_zero,job_shop")
    assert only and set(only) < set(whole)
    assert only == [line for line in whole if " on sum_to_zero," in line or " on job_shop," in line]
    for names, message in (("portfolio-xxl", "study tuning.toml runs no env 'portfolio-xxl'; its envs: portfolio,"),
                           (",", "--env ',': an empty env name"), ("job_shop,,", "--env 'job_shop,,': an empty")):
        assert run_cli(study.main, "python -m suite.study", ["tuning", "--out", str(out), "--env", names]) == 2
        assert message in capsys.readouterr().err


def test_every_suite_study_reads_and_expands():
    for path in sorted(study.STUDIES.glob("*.toml")):
        entries = study.study_entries(study.load_study(path))
        assert entries, path.name


def test_reference_v3_runs_exactly_the_methods_and_tasks_the_tuning_study_tunes():
    """Every learning run of reference set v3 names settings=v3, and the tuning study tunes each of its (method,
    env) pairs under the same env config and network: a v3 run can never meet a missing or mismatched entry."""
    from baselines import load_algo, tuned_settings
    from baselines.method import Method

    def pairs(name):
        found = {}
        for entry in study.study_entries(study.load_study(study.study_path(name))):
            if isinstance(load_algo(entry.algo), Method):
                config = dict(entry.algo_config)
                found[(entry.env, entry.algo)] = (dict(entry.env_config), config.get("network"), config.get("backend"))
        return found

    tuned, v3 = pairs("tuning"), pairs("reference_v3")
    assert v3 == {pair: tuned[pair] for pair in v3}  # every v3 pair is tuned, under the same env config and network
    # a pair the tuning study has and v3 lacks is a level tuned later: the settings file has no entry for it yet
    # (it joins with suite.tuning --extend, then v3), never one v3 left out by mistake
    in_file = {(e["env"], e["algo"]) for e in tuned_settings.load_tuned("v3")["entry"]}
    assert set(tuned) - set(v3) == set(tuned) - in_file
    built = set()
    for entry in study.study_entries(study.load_study(study.study_path("reference_v3"))):
        if isinstance(load_algo(entry.algo), Method):
            assert dict(entry.algo_config)["settings"] == "v3"
            assert entry.seed >= 10  # fresh seeds: v1, v2 and the budgets study used 0-9, tuning 100-101
            if (entry.env, entry.algo) not in built:  # the committed file has its entry, under its env settings
                study.runner.RunRequest.build(entry.env, entry.algo, entry.seed, out="unused",
                                              env_config=dict(entry.env_config), algo_config=dict(entry.algo_config))
                built.add((entry.env, entry.algo))
    assert built == set(v3)
