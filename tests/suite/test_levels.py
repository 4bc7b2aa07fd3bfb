"""Levels: every env's named sizes keep the masking contract, run from the CLI like any env, refuse bad
sizes in one line, and their inadmissible share grows with the level (``python -m suite.levels``)."""

import pandas as pd
import pytest

import envs
from suite import check, levels
from tests.helpers import run_main

LEVELS = {"portfolio": ["portfolio", "portfolio-m", "portfolio-l", "portfolio-xl"],
          "speed_limit": ["speed_limit", "speed_limit-m", "speed_limit-l"],
          "sum_to_zero": ["sum_to_zero", "sum_to_zero-m", "sum_to_zero-l"],
          "job_shop": ["job_shop", "job_shop-m", "job_shop-l"]}


def test_each_family_has_its_named_levels_smallest_first_the_seed_size_being_level_one():
    for family, names in LEVELS.items():
        assert envs.levels(family) == names
        assert [envs.spec(name).level for name in names] == list(range(1, len(names) + 1))
        assert all(envs.spec(name).family == family for name in names)
    cores = {name: envs.make_core(name) for names in LEVELS.values() for name in names}
    sizes = {name: int(core.nvec.sum()) if core.discrete else core.action_space.shape[0]
             for name, core in cores.items()}
    assert sizes == {"portfolio": 33, "portfolio-m": 210, "portfolio-l": 1530, "portfolio-xl": 3030,
                     "speed_limit": 10, "speed_limit-m": 25, "speed_limit-l": 50,
                     "sum_to_zero": 13, "sum_to_zero-m": 100, "sum_to_zero-l": 1000,
                     "job_shop": 6, "job_shop-m": 10, "job_shop-l": 15}


def test_a_level_is_its_defaults_under_the_users_overrides():
    core = envs.make_core("portfolio-l", n_assets=5)
    assert (core.n_assets, core.hold, core.config.affordable_buys) == (5, 25, True)
    described = {row["key"]: row for row in envs.describe("speed_limit-l")}
    assert described["n_levels"]["default"] == "50" and described["road_length"]["default"] == "1000"


@pytest.mark.parametrize("name", [name for names in LEVELS.values() for name in names[1:]])
def test_every_level_keeps_the_masking_contract_under_the_suites_own_checker(name):
    """Sound and complete masks (or admissible sets), strict mode, Gymnasium's checker, determinism."""
    rows = check.run_checks(name, steps=1000)
    failed = [(row.check, row.detail) for row in rows if not row.passed]
    assert not failed, failed


def test_a_level_runs_from_the_cli_and_its_results_carry_its_name(tmp_path):
    assert run_main("--env", "speed_limit-m", "--algo", "random_valid", "--steps", "2000", "--episodes", "4",
                    "--out", str(tmp_path), "--quiet") == 0
    config = pd.read_json(next(tmp_path.glob("speed_limit-m/random_valid/**/config.json")), typ="series")
    assert config["env"] == "speed_limit-m" and config["env_config"]["n_levels"] == 25


@pytest.mark.parametrize("argv, message", [
    (["--env", "portfolio-xxl"], "unknown env 'portfolio-xxl'; known envs: job_shop, job_shop-l, job_shop-m, "
                                 "portfolio, portfolio-l, portfolio-m, "),
    (["--env", "portfolio", "--env-config", "n_assets=0"],
     "config key 'n_assets' must be an integer in 1..1000; got '0'"),
    (["--env", "speed_limit-l", "--env-config", "n_levels=1"], "config key 'n_levels' must be an integer in 2..1000"),
    (["--env", "speed_limit-l", "--env-config", "n_levels=10"], "env 'speed_limit-l': zone_limits [16, 33, 49] exceed "
                                                                "the top level 9 of n_levels=10; give limits in 1..9"),
    (["--env", "sum_to_zero-m", "--env-config", "n_targets=1"],
     "config key 'n_targets' must be an integer of at least 2; got '1'"),
])
def test_bad_levels_and_sizes_are_one_line_with_status_2(tmp_path, capsys, argv, message):
    assert run_main(*argv, "--algo", "random_valid", "--out", str(tmp_path), "--quiet") == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1, err
    assert not any(tmp_path.iterdir())


def test_the_inadmissible_share_grows_with_the_level_and_the_cli_writes_it(tmp_path, capsys):
    out = tmp_path / "levels.csv"
    assert levels.main(["--env", "portfolio,portfolio-m,speed_limit,speed_limit-m,sum_to_zero,sum_to_zero-m",
                        "--steps", "512", "--csv", str(out)]) == 0
    table = pd.read_csv(out).set_index("env")
    assert table.loc["portfolio", "inadmissible_share"] < table.loc["portfolio-m", "inadmissible_share"]
    assert table.loc["speed_limit", "inadmissible_share"] < table.loc["speed_limit-m", "inadmissible_share"]
    # Box: every uniform draw misses the sum-to-zero hyperplane; how far it lands grows instead.
    assert (table.loc[["sum_to_zero", "sum_to_zero-m"], "inadmissible_share"] == 1.0).all()
    assert table.loc["sum_to_zero", "mean_distance"] < table.loc["sum_to_zero-m", "mean_distance"]
    assert 0.3 < table.loc["portfolio", "inadmissible_share"] < 0.6  # holds and sells of nothing, at the seed size
    printed = capsys.readouterr().out
    assert "| portfolio-m | 2 | MultiDiscrete(10 x 21) | 210 |" in printed
