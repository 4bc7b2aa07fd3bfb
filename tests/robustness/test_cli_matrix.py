"""Every command-line input checked at the door, as a matrix (issue 32, item 7: the survey's CLI area).

The cases are generated from the commands themselves, so a new option or config key is covered the day it is
added: every typed option of every ``suite`` command with values of the wrong kind or range, every env's config
keys and every algo's config keys with values of the wrong kind, unknown names and keys. Each case must be one
line on stderr saying what was wrong (no traceback), exit status 2, and nothing written. A case the command
accepts is a failure: the test stops it before it trains (it replaces the step that would start the run with
one that raises), so an accepted bad value costs milliseconds and is reported as accepted.

The hand-written cases of ``tests/suite/test_bad_input.py`` (sizes beyond the machine, failing imports, damaged
checkpoints, study files) are the other half of the area; the survey counts both.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import typing
from pathlib import Path

import pytest

import envs
from baselines.registry import algo_names, load_algo
from suite import runner, sweep
from suite.cli import run_cli

#: Commands whose typed options are checked: module -> arguments that make the rest of the line valid.
COMMANDS = {
    "run": ["--env", "portfolio", "--algo", "random_valid", "--quiet"],
    "check": ["--env", "portfolio"],
    "race": ["--env", "portfolio"],
    "study": ["STUDY"],
    "levels": ["--env", "portfolio"],
    "layout": ["--env", "portfolio"],
    "report": ["RESULTS"],
    "tuning": ["RESULTS", "--name", "x"],
}

#: Values of the wrong kind or range for each argparse ``type`` the commands use (by the type's name).
BAD_BY_TYPE = {
    "a_positive_integer": ["abc", "", "1.5", "0", "-3", "1e3", "nan", "99999999999999999999999999"],
    "a_non-negative_integer": ["abc", "", "1.5", "-1", "nan", "99999999999999999999999999"],
    "integer_from_1_to_1000": ["abc", "", "0", "-1", "1001", "2.5"],
    "a_positive_number": ["abc", "", "0", "-1e-3", "nan", "inf", "1e400"],
    "a_finite_number": ["abc", "", "nan", "inf", "-inf", "1e400"],
    "probabilities": ["abc", "", "-0.1", "1.5", "nan", "0.1,x"],
    "folder": ["", "  "],
    "int": ["abc", "", "1.5"],
}

#: Names that no command accepts for an option taking a registered name.
BAD_NAMES = {
    "--env": ["", "nope", "portfolio-zz", "PORTFOLIO", "../portfolio", "portfolio,nope", "portfolio,,"],
    "--algo": ["", "nope", "masked_ppo,nope", "MASKED_PPO", "random_valid/../x"],
    "--backend": ["", "nope", "RLLIB", "torch,rllib"],
    "--env-config": ["nokey", "=1", "no_such_key=1", "start_cash"],
    "--algo-config": ["nokey", "=1", "no_such_key=1", "lr"],
    "--threshold": ["abc", "portfolio=abc", "portfolio=nan", "portfolio=inf", "=3", "nope=3", "portfolio"],
    "--import": ["", ".relative", "a-b", "no_such_module_xyz_123", "os/path"],
}


def _hints(config_class) -> dict[str, str]:
    hints = typing.get_type_hints(config_class)
    return {field.name: str(hints[field.name]) for field in dataclasses.fields(config_class)}


def _bad_values(annotation: str) -> list[str]:
    """Values of the wrong kind for a config field annotated ``annotation`` (no field takes any of these)."""
    if annotation == "<class 'bool'>":
        return ["abc", "2", ""]
    if annotation == "<class 'int'>":
        return ["abc", "", "1.5", "nan"]
    if annotation == "<class 'float'>":
        return ["abc", "", "nan"]
    if annotation == "<class 'str'>":
        return ["no-such-value-xyz", "x" * 300]
    if "tuple[int" in annotation:
        return ["abc", "1.5", "nan"]
    if "tuple[float" in annotation:
        return ["abc", "nan", "1,x"]
    return ["=", "no_such_key=1"]  # tuple[str, ...]: KEY=VALUE settings


def option_cases() -> list[tuple[str, list[str]]]:
    cases = []
    for command, base in COMMANDS.items():
        parser = importlib.import_module(f"suite.{command}").build_parser()
        for action in parser._actions:  # argparse has no public list of a parser's options
            if not action.option_strings or isinstance(action, argparse._HelpAction):
                continue
            flag = action.option_strings[0]
            type_name = getattr(action.type, "__name__", None)
            for value in BAD_BY_TYPE.get(type_name, []):
                cases.append((command, [*base, flag, value]))
            if flag in BAD_NAMES and command in ("run", "check", "race", "report") and flag != "--env":
                cases += [(command, [*base, flag, value]) for value in BAD_NAMES[flag]]
            if flag == "--env":
                rest = [arg for i, arg in enumerate(base) if arg != "--env" and (i == 0 or base[i - 1] != "--env")]
                cases += [(command, [*rest, "--env", value]) for value in BAD_NAMES["--env"]]
    return cases


def env_config_cases() -> list[tuple[str, list[str]]]:
    cases = []
    for env in ("portfolio", "speed_limit", "sum_to_zero", "job_shop"):
        settings = {**_hints(envs.spec(env).load().Config), "invalid_action": "<class 'str'>",
                    "strict": "<class 'bool'>"}
        for key, annotation in settings.items():  # the env's own keys and the settings every env takes
            for value in _bad_values(annotation):
                cases.append(("run", ["--env", env, "--algo", "random_valid", "--quiet", "--env-config",
                                      f"{key}={value}"]))
    return cases


def algo_config_cases() -> list[tuple[str, list[str]]]:
    cases = []
    for algo, env in (("masked_ppo", "portfolio"), ("penalty_ppo", "speed_limit"), ("lagrangian_ppo", "speed_limit"),
                      ("random_valid", "sum_to_zero")):
        config_class = load_algo(algo).Config
        for key, annotation in _hints(config_class).items():
            for value in _bad_values(annotation):
                cases.append(("run", ["--env", env, "--algo", algo, "--quiet", "--algo-config", f"{key}={value}"]))
    return cases


def tuning_cases() -> list[tuple[str, list[str]]]:
    """suite.tuning's options are names and paths: a settings name that is a path, empty, or too long."""
    return [("tuning", ["RESULTS", "--name", value]) for value in ("../evil", "", "a/b", "x" * 65, ".hidden")]


CASES = option_cases() + env_config_cases() + algo_config_cases() + tuning_cases()


class Accepted(BaseException):
    """Raised where a command would start its work: the input got past the door."""


@pytest.fixture
def stop_before_work(monkeypatch):
    def accepted(*args, **kwargs):
        raise Accepted()

    monkeypatch.setattr(runner, "prepare_directory", accepted)
    monkeypatch.setattr(runner, "execute", accepted)
    monkeypatch.setattr(sweep, "run_sweep", accepted)
    from suite import check, levels

    monkeypatch.setattr(check, "run_checks", accepted)
    monkeypatch.setattr(levels, "level_table", accepted)
    from suite import layout

    monkeypatch.setattr(layout, "measure_layout", accepted)


def _fill(argv: list[str], tmp_path: Path) -> list[str]:
    results_folder = tmp_path / "received"
    results_folder.mkdir(exist_ok=True)
    study_file = tmp_path / "study.toml"
    study_file.write_text('[[group]]\nenvs = ["portfolio"]\nalgos = ["random_valid"]\nsteps = 2000\n')
    return [str(results_folder) if a == "RESULTS" else str(study_file) if a == "STUDY" else a for a in argv]


def _files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("command, argv", CASES, ids=[f"{c}:{' '.join(a[-2:])}" for c, a in CASES])
def test_bad_input_is_one_line_status_2_and_nothing_written(tmp_path, capsys, monkeypatch, stop_before_work,
                                                            command, argv):
    monkeypatch.chdir(tmp_path)
    argv = _fill(argv, tmp_path)
    if command in ("run", "race", "report", "study") and "--out" not in argv:
        argv = [*argv, "--out", str(tmp_path / "out")]
    before = _files(tmp_path)
    module = importlib.import_module(f"suite.{command}")
    try:
        status = run_cli(module.main, f"python -m suite.{command}", argv)
    except SystemExit as exit_:
        status = exit_.code
    except Accepted:
        pytest.fail(f"accepted: python -m suite.{command} {' '.join(argv)}")
    err = capsys.readouterr().err
    assert status == 2, (status, err)
    assert err.count("\n") == 1 and err.strip() and "Traceback" not in err, err
    assert _files(tmp_path) == before, "something was written"


def test_the_matrix_covers_every_area_it_claims():
    """The survey counts these cases: the matrix must hold what it says (every command, env and algo)."""
    commands = {command for command, _ in CASES}
    assert commands == set(COMMANDS)
    assert {argv[argv.index("--env") + 1] for _, argv in env_config_cases()} == {"portfolio", "speed_limit", "job_shop",
                                                                                  "sum_to_zero"}
    assert len(CASES) >= 350, len(CASES)
    assert "masked_ppo" in algo_names()
