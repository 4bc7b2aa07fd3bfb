"""``python -m suite.layout``: RLlib sampling layouts measured one after another, bad input in one line."""

import pytest

from suite import layout
from suite.cli import run_cli
from tests.helpers import TINY_SETTINGS, assert_ray_is_gone

#: The tiny settings but the layout, which the command varies.
TINY = [item for key, value in TINY_SETTINGS.items() if key != "num_envs_per_env_runner"
        for item in ("--algo-config", f"{key}={value}")]


def test_each_layout_trains_and_gets_a_row_and_the_fastest_is_named(capsys):
    assert run_cli(layout.main, "python -m suite.layout",
                   ["--env", "portfolio", "--runners", "0", "--envs", "8,16", "--iterations", "2", *TINY]) == 0
    assert_ray_is_gone()
    out = capsys.readouterr().out.splitlines()
    rows = [line for line in out if line.startswith("| 0 |")]
    assert [row.split("|")[2].strip() for row in rows] == ["8", "16"]
    assert all(float(row.split("|")[3].replace(",", "")) > 0 for row in rows)
    assert out[-1].startswith("fastest: num_env_runners=0 num_envs_per_env_runner=")


@pytest.mark.parametrize("argv,message", [
    (["--env", "portfolio", "--algo", "random_valid"], "does not sample with RLlib EnvRunners"),
    (["--env", "portfolio", "--envs", "0"], "at least one env entry"),
    (["--env", "portfolio", "--runners", "x"], "comma lists of non-negative integers"),
    (["--env", "portfolio", "--algo-config", "backend=torch"], "leave backend at rllib"),
    (["--env", "nope"], "unknown env 'nope'"),
])
def test_bad_input_is_one_line_with_status_2(argv, message, capsys):
    assert run_cli(layout.main, "python -m suite.layout", argv) == 2
    captured = capsys.readouterr()
    assert message in captured.err and len(captured.err.strip().splitlines()) == 1 and not captured.out
