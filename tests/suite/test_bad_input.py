"""Every input checked at the door (issue 32, item 4): each bad input below is one line saying what was wrong
and what is accepted (status 2, no traceback), refused before anything runs or is written, and never at the
cost of results already written."""

import shutil
import textwrap
from pathlib import Path

import pytest

from envs.config import ConfigError
from suite import check, race, runner, study
from suite.cli import run_cli
from tests.helpers import run_main

INT64 = "9,223,372,036,854,775,807"


def one_line(capsys) -> str:
    """What the command printed on stderr, asserted to be one line without a traceback."""
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    return err


def files_under(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


# ---------------------------------------------------------------------------------------------- suite.run sizes

RUN = ["--env", "portfolio", "--algo", "random_valid", "--quiet"]


@pytest.mark.parametrize("argv, message", [
    # a budget can be large but must fit a 64-bit integer
    ([*RUN, "--steps", "99999999999999999999999999"],
     f"argument --steps: expected a positive integer of at most {INT64}"),
    ([*RUN, "--seed", "99999999999999999999"], f"argument --seed: expected a non-negative integer of at most {INT64}"),
    # evaluation keeps every episode's record: what fits this machine's memory, with the estimate
    ([*RUN, "--episodes", "1000000000000"], "episodes=1,000,000,000,000: evaluation keeps a record of every episode"),
    ([*RUN, "--seeds", "2", "--episodes", "1000000000000"], "episodes=1,000,000,000,000: evaluation keeps a record"),
    # seeds: a sane bound, and why
    ([*RUN, "--seeds", "1000000000"],
     "argument --seeds: expected a positive integer of at most 1,000 (each seed is a run"),
    # RLlib's EnvRunners are processes of their own: what fits this machine
    (["--env", "portfolio", "--algo", "masked_ppo", "--num-env-runners", "100000"],
     "num_env_runners=100,000: each EnvRunner is a Ray worker process of its own"),
    (["--env", "portfolio", "--algo", "masked_ppo", "--backend", "torch", "--algo-config",
      "train_batch_size=1000000000000000"], "train_batch_size=1,000,000,000,000,000: a training iteration holds"),
    # an env config the env cannot compute with (no overflow warnings, no run failing at iteration 1)
    ([*RUN, "--env-config", "start_cash=1e308"],
     "env 'portfolio' cannot compute with env config start_cash=1e+308: its observation is not finite"),
], ids=["steps", "seed", "episodes", "episodes-sweep", "seeds", "num-env-runners", "train-batch-size", "start-cash"])
def test_sizes_beyond_the_machine_are_refused_in_one_line(tmp_path, capsys, argv, message):
    assert run_main(*argv, "--out", tmp_path / "out") == 2
    err = one_line(capsys)
    assert message in err, err
    if "memory" in err:
        assert "(estimate)" in err and "available on this machine; at most about" in err
    assert not (tmp_path / "out").exists()


def test_an_empty_out_is_refused_not_the_current_folder(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for out in ("", " "):
        assert run_main(*RUN, "--steps", "2000", "--out", out) == 2
        assert "argument --out: expected a folder name, got" in one_line(capsys)
    assert list(tmp_path.iterdir()) == []


# -------------------------------------------------------------------------------------------- --import M failing

@pytest.mark.parametrize("command", ["run", "check"])
@pytest.mark.parametrize("module, source, message", [
    ("user_mod_raises", "x = 1 / 0\n",
     "cannot --import 'user_mod_raises': your module failed while it was imported: ZeroDivisionError: division by "
     "zero (at "),
    ("user_mod_syntax", "def broken(:\n", "cannot --import 'user_mod_syntax': your module failed while it was "
                                          "imported: SyntaxError"),
    ("user_mod_needs_dep", "import no_such_dependency_xyz\n",
     "your module failed while it was imported: ModuleNotFoundError: No module named 'no_such_dependency_xyz'"),
    ("no_such_user_module", None, "cannot --import 'no_such_user_module': No module named 'no_such_user_module' "
                                  "(is its folder on the Python path?"),
    ("", None, "--import takes a module's dotted name as Python imports it"),
    (".relative", None, "--import takes a module's dotted name as Python imports it"),
], ids=["raises", "syntax-error", "missing-dependency", "not-found", "empty", "relative"])
def test_a_failing_import_is_the_users_module_in_one_line(tmp_path, capsys, monkeypatch, command, module, source,
                                                         message):
    if source is not None:
        name = f"{module}_{command}"  # a module of its own per command: nothing cached between them
        (tmp_path / f"{name}.py").write_text(source)
        message = message.replace(module, name)
        module = name
    monkeypatch.syspath_prepend(str(tmp_path))
    if command == "run":
        status = run_main(*RUN, "--import", module, "--out", tmp_path / "out")
    else:
        status = run_cli(check.main, "python -m suite.check", ["--env", "portfolio", "--import", module])
    assert status == 2
    assert message in one_line(capsys)
    assert not (tmp_path / "out").exists()


# ------------------------------------------------------------------------------------- --describe fails as a run

@pytest.mark.parametrize("argv, message", [
    (["--env", "nope", "--algo", "random_valid"], "unknown env 'nope'; known envs:"),
    (["--env", "portfolio", "--algo", "normalize_ppo"], "normalize_ppo handles continuous actions"),
    (["--env", "speed_limit", "--env-config", "n_agents=2", "--algo", "clairvoyant_dp"],
     "clairvoyant_dp plays one agent; got n_agents=2"),
    (["--env", "portfolio", "--algo", "random_valid", "--env-config", "periods=-1"], "config key 'periods'"),
    (["--env", "portfolio", "--algo", "random_valid", "--env-config", "cash=5"],
     "env 'portfolio': unknown config key 'cash'; accepted keys: start_cash"),
], ids=["unknown-env", "algo-cannot-run-env", "algo-cannot-run-config", "bad-env-config", "unknown-env-config-key"])
def test_describe_fails_like_the_run_would(tmp_path, capsys, argv, message):
    assert run_main(*argv, "--describe", "--out", tmp_path / "out") == 2
    assert message in one_line(capsys)
    assert run_main("--env", "portfolio", "--algo", "random_valid", "--describe", "--out", tmp_path / "out") == 0
    assert "random_valid on portfolio" in capsys.readouterr().out
    assert not (tmp_path / "out").exists()


# ------------------------------------------------------------------------------ --resume of a damaged checkpoint

SHORT = ["--env", "portfolio", "--algo", "random_valid", "--steps", "4000", "--episodes", "2", "--quiet"]


@pytest.fixture(scope="module")
def interrupted(tmp_path_factory):
    """A real short run with a checkpoint at every iteration, made to look interrupted (no eval.csv)."""
    out = tmp_path_factory.mktemp("interrupted")
    assert run_main(*SHORT, "--checkpoint-every", "1", "--out", out) == 0
    (out / "portfolio" / "random_valid" / "seed0" / "eval.csv").unlink()
    return out


def damage(folder: Path, how: str) -> None:
    checkpoint = folder / "checkpoint"
    if how == "meta.json {":
        (checkpoint / "meta.json").write_text("{")
    elif how == "meta.json missing":
        (checkpoint / "meta.json").unlink()
    elif how == "meta.json wall_seconds x":
        (checkpoint / "meta.json").write_text('{"iteration": 2, "wall_seconds": "x"}')
    elif how == "pickle truncated":
        data = (checkpoint / "random_valid.pkl").read_bytes()
        (checkpoint / "random_valid.pkl").write_bytes(data[: len(data) // 2])
    elif how == "pickle missing":
        (checkpoint / "random_valid.pkl").unlink()
    elif how == "progress.csv missing":
        (folder / "progress.csv").unlink()
    elif how == "progress.csv garbage":
        (folder / "progress.csv").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\xff\xfe garbage")
    elif how == "progress.csv short":
        (folder / "progress.csv").write_text("iteration,env_steps,episodes\n")
    else:
        raise AssertionError(how)


@pytest.mark.parametrize("trust", [False, True], ids=["untrusted", "trusted"])
@pytest.mark.parametrize("how, named", [
    ("meta.json {", "checkpoint/meta.json is damaged"),
    ("meta.json missing", "checkpoint/meta.json is missing"),
    ("meta.json wall_seconds x", "checkpoint/meta.json is damaged (expected an iteration"),
    ("pickle truncated", "checkpoint/random_valid.pkl is cut short"),
    ("pickle missing", "its random_valid.pkl is missing"),
    ("progress.csv missing", "progress.csv is missing"),
    ("progress.csv garbage", "progress.csv"),
    ("progress.csv short", "progress.csv is damaged (0 row(s); the checkpoint is at iteration 2)"),
])
def test_resuming_a_damaged_run_names_the_file_in_one_line(interrupted, tmp_path, capsys, trust, how, named):
    out = tmp_path / "out"
    shutil.copytree(interrupted, out)
    folder = out / "portfolio" / "random_valid" / "seed0"
    damage(folder, how)
    before = files_under(folder)
    assert run_main(*SHORT, "--out", out, "--resume", *(["--trust"] if trust else [])) == 2
    err = one_line(capsys)
    if not trust and how.startswith(("meta", "pickle")):  # inside the signed checkpoint: the signature says so first
        assert "its signature does not match its files" in err and "pass --trust" in err, err
    else:
        assert named in err and "pass --overwrite" in err, err
    after = files_under(folder)
    if trust and how == "pickle missing":  # found when the algo restores: the run's files are kept
        assert {k: v for k, v in after.items() if k.startswith(("checkpoint/", "progress.csv"))} == \
               {k: v for k, v in before.items() if k.startswith(("checkpoint/", "progress.csv"))}
        assert "eval.csv" not in after
    else:  # nothing is written, nothing is lost
        assert after == before
    assert run_main(*SHORT, "--out", out, "--overwrite") == 0  # what the message says to do works
    assert (folder / "eval.csv").is_file()


# ------------------------------------------------------------------------------------------------------ suite.check

@pytest.mark.parametrize("steps, message", [
    ("99999999999999999999", f"argument --steps: expected a positive integer of at most {INT64}"),
    ("10000000000000", "--steps 10,000,000,000,000: the check audits steps / 4 = 2,500,000,000,000 sampled states"),
], ids=["beyond-int64", "beyond-memory"])
def test_check_steps_beyond_the_machine_are_refused(capsys, steps, message):
    assert run_cli(check.main, "python -m suite.check", ["--env", "portfolio", "--steps", steps]) == 2
    err = one_line(capsys)
    assert message in err, err


# ------------------------------------------------------------------------------------------------------ suite.race

@pytest.mark.parametrize("argv, message", [
    (["--target", "nan"], "argument --target: expected a finite number, got 'nan'"),
    (["--target", "inf"], "argument --target: expected a finite number, got 'inf'"),
    (["--target=-inf"], "argument --target: expected a finite number, got '-inf'"),
    (["--contenders", "masked_ppo_torch", "--algo-config", "backend=rllib"],
     "--algo-config backend: the contenders set it themselves (masked_ppo_torch: backend=torch)"),
    (["--seeds", "1000000000"], "argument --seeds: expected a positive integer of at most 1,000"),
], ids=["nan", "inf", "-inf", "backend", "seeds"])
def test_race_bad_input(tmp_path, capsys, argv, message):
    status = run_cli(race.main, "python -m suite.race", ["--env", "portfolio", *argv, "--out", str(tmp_path / "out")])
    assert status == 2
    assert message in one_line(capsys)
    assert not (tmp_path / "out").exists()


# ------------------------------------------------------------------------------------------------------ study files

GROUP = '[[group]]\nenvs = ["portfolio"]\nalgos = ["random_valid"]\n'


@pytest.mark.parametrize("text, message", [
    (f'episodes = "abc"\n{GROUP}', "study bad.toml: episodes must be a positive integer, got 'abc'"),
    (f'eval_every = "often"\n{GROUP}', "study bad.toml: eval_every must be a non-negative integer"),
    (f"episodes = 1e400\n{GROUP}", "study bad.toml: episodes must be a positive integer, got inf"),
    (f"episodes = 0\n{GROUP}", "study bad.toml: episodes must be a positive integer, got 0"),
    (f"episodes = -4\n{GROUP}", "study bad.toml: episodes must be a positive integer, got -4"),
    (f"eval_every = -1\n{GROUP}", "study bad.toml: eval_every must be a non-negative integer"),
    (f"seeds = 1000000000\n{GROUP}", "study bad.toml: seeds must be at most 1,000 (each seed is a run of its own"),
    ("group = 5\n", "study bad.toml: group must be tables of runs"),
    (f"{GROUP}env_config = 5\n", "study bad.toml, group 1: env_config must be a table of KEY = value"),
    (f"{GROUP}algo_config = 5\n", "study bad.toml, group 1: algo_config must be a table of KEY = value"),
    (f"{GROUP}grid = {{ penalty = 0.1 }}\n", "study bad.toml, group 1: grid.penalty must be a list of the values"),
    (f"{GROUP}grid = 3\n", "study bad.toml, group 1: grid must be a table of KEY = [values]"),
    (f"{GROUP}grid = {{ num_envs = [] }}\n", "study bad.toml, group 1: grid.num_envs lists no value"),
    (f"{GROUP}algo_config = {{ hidden = [[64, 64]] }}\n",
     "study bad.toml, group 1: algo_config.hidden must be a value or a list of values"),
    (f"{GROUP}grid = {{ hidden = [[[64]], [32]] }}\n",
     "study bad.toml, group 1: grid.hidden value 1 must be a value or a list of values"),
    (f"{GROUP}env_config = {{ start_cash = {{ a = 1 }} }}\n",
     "study bad.toml, group 1: env_config.start_cash must be a value or a list of values"),
    (f"{GROUP}steps = 0\n", "study bad.toml, group 1: steps must be a positive integer (env steps), got 0"),
    (f"{GROUP}steps = 2000.5\n", "study bad.toml, group 1: steps must be a positive integer (env steps), got 2000.5"),
    (f"{GROUP}steps = -2000\n", "study bad.toml, group 1: steps must be a positive integer (env steps), got -2000"),
    (f'{GROUP}steps = "many"\n', "study bad.toml, group 1: steps must be a positive integer (env steps), got 'many'"),
    (f"{GROUP}steps = 99999999999999999999\n", f"study bad.toml, group 1: steps must be at most {INT64} (it must "
                                                 "fit a 64-bit integer)"),
    (f"{GROUP}seeds = 5000\n", "study bad.toml, group 1: seeds must be at most 1,000"),
    ('[[group]]\nenvs = "portfolio"\nalgos = ["random_valid"]\n', "group 1: envs must be a non-empty list of names"),
    ('[[group]]\nenvs = ["portfolio"]\nalgos = []\n', "group 1: algos must be a non-empty list of names"),
    ('[[group]]\nenvs = ["portfolio"]\nalgos = ["nope"]\n', "group 1: unknown algo 'nope'; known algos:"),
    ("description = 5\n" + GROUP, "study bad.toml: description must be a string, got 5"),
])
def test_a_bad_study_file_is_refused_before_anything_runs(tmp_path, capsys, text, message):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    assert run_cli(study.main, "python -m suite.study", [str(path), "--out", str(tmp_path / "out")]) == 2
    assert message in one_line(capsys)
    assert not (tmp_path / "out").exists()


def test_a_huge_study_is_refused_on_a_dry_run_too(tmp_path, capsys):
    path = tmp_path / "bad.toml"
    path.write_text(f"seeds = 1000000000\n{GROUP}")
    assert run_cli(study.main, "python -m suite.study", [str(path), "--out", str(tmp_path / "out"), "--dry-run"]) == 2
    assert "seeds must be at most 1,000" in one_line(capsys)


def test_every_problem_of_a_study_file_is_a_line_naming_the_key_and_group(tmp_path, capsys):
    path = tmp_path / "bad.toml"
    path.write_text(textwrap.dedent('''
        episodes = "abc"
        [[group]]
        envs = ["portfolio"]
        algos = ["random_valid"]
        steps = 0
        [[group]]
        envs = ["portfolio"]
        algos = ["masked_ppo"]
        grid = { penalty = 0.1, lr = [] }
    '''))
    assert run_cli(study.main, "python -m suite.study", [str(path), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert "Traceback" not in err
    assert all(line.startswith("python -m suite.study: error: study bad.toml") for line in lines)
    assert [line.split("error: ", 1)[1].split(":")[0] for line in lines] == [
        "study bad.toml", "study bad.toml, group 1", "study bad.toml, group 2", "study bad.toml, group 2"]
    assert "episodes" in lines[0] and "steps" in lines[1] and "grid.penalty" in lines[2] and "grid.lr" in lines[3]


def test_a_binary_study_file_is_one_line(tmp_path, capsys):
    path = tmp_path / "bad.toml"
    path.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\xff\xfe\x00")
    assert run_cli(study.main, "python -m suite.study", [str(path), "--out", str(tmp_path / "out")]) == 2
    assert "cannot read study" in one_line(capsys) and not (tmp_path / "out").exists()


def test_a_study_with_an_empty_out_is_refused(tmp_path, capsys, monkeypatch):
    path = tmp_path / "ok.toml"
    path.write_text(GROUP)
    monkeypatch.chdir(tmp_path)
    assert run_cli(study.main, "python -m suite.study", [str(path), "--out", ""]) == 2
    assert "argument --out: expected a folder name" in one_line(capsys)
    assert [p.name for p in tmp_path.iterdir()] == ["ok.toml"]


# ----------------------------------------------------------------------------------------- RunRequest.build itself

@pytest.mark.parametrize("changes, message", [
    ({"steps": -5}, "steps (the training budget in env steps) must be a positive integer"),
    ({"steps": 0}, "steps (the training budget in env steps) must be a positive integer"),
    ({"steps": "abc"}, "steps (the training budget in env steps) must be a positive integer"),
    ({"steps": 2000.5}, "steps (the training budget in env steps) must be a positive integer"),
    ({"steps": True}, "steps (the training budget in env steps) must be a positive integer"),
    ({"steps": 2**63}, f"of at most {INT64}"),
    ({"episodes": 0}, "episodes (evaluation episodes per policy) must be a positive integer, got 0"),
    ({"episodes": -3}, "episodes (evaluation episodes per policy) must be a positive integer, got -3"),
    ({"episodes": "5"}, "episodes (evaluation episodes per policy) must be a positive integer, got '5'"),
    ({"seed": -1}, "seed must be a non-negative integer"),
    ({"seed": "a"}, "seed must be a non-negative integer"),
    ({"seed": 1.5}, "seed must be a non-negative integer"),
    ({"out": ""}, "out (the results folder) is '', which would write into the current folder"),
])
def test_build_refuses_bad_counts_in_one_line(tmp_path, changes, message):
    arguments = {"env": "portfolio", "algo": "random_valid", "seed": 0, "out": tmp_path / "out", **changes}
    with pytest.raises(ConfigError) as refused:
        runner.RunRequest.build(arguments.pop("env"), arguments.pop("algo"), arguments.pop("seed"), **arguments)
    assert message in str(refused.value) and "\n" not in str(refused.value)
    assert not (tmp_path / "out").exists()


def test_build_still_takes_good_counts(tmp_path):
    request = runner.RunRequest.build("portfolio", "random_valid", 3, out=tmp_path, steps=4000, episodes=7,
                                      env_config={"start_cash": 5000.0})
    assert (request.steps, request.episodes, request.seed) == (4000, 7, 3)
    assert runner.RunRequest.build("portfolio", "random_valid", 0, out=tmp_path).steps == 20_000  # the algo's own
