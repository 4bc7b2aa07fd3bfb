"""The scaling analysis (suite.scaling) and its place in suite.report, on runs with known scores."""

import pandas as pd
import pytest
from scipy import stats

from suite import report, results, scaling
from tests.helpers import unpadded, write_synthetic_run

#: Per level, per method: the return of every episode of every seed (random_valid 0 and oracle 100 make
#: the return the score).
RETURNS = {"portfolio": {"random_valid": 0.0, "oracle": 100.0, "masked_ppo": 80.0, "naive_masked_ppo": 60.0,
                         ("penalty_ppo", 0.1): 70.0, ("penalty_ppo", 1.0): 50.0},
           "portfolio-m": {"random_valid": 0.0, "oracle": 100.0, "masked_ppo": 70.0, "naive_masked_ppo": 40.0,
                           ("penalty_ppo", 0.1): 20.0, ("penalty_ppo", 1.0): 30.0}}


@pytest.fixture(scope="module")
def scaling_runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("scaling")
    for env, methods in RETURNS.items():
        for method, value in methods.items():
            algo, penalty = method if isinstance(method, tuple) else (method, None)
            config = {"lr": 0.001} if penalty is None else {"lr": 0.001, "penalty": penalty}
            for seed in range(3):
                write_synthetic_run(root / f"p{penalty}", env, algo, seed, algo_config=config,
                                    returns=[value + seed - 1] * 3)  # seeds 1 below, at and 1 above: mean = value
    return root


def test_the_table_places_each_level_at_its_inadmissible_share_one_row_per_method(scaling_runs):
    summary, _ = report.summarize(results.load(scaling_runs))
    table = scaling.scaling_table(summary)
    assert set(table["method"]) == {"random_valid", "relaxed_heuristic", "masked_ppo", "naive_masked_ppo",
                                    "penalty_ppo [penalty=0.1 (10x default)]",
                                    "penalty_ppo [penalty=1.0 (100x default)]"}
    place = table.drop_duplicates("env").set_index("env")
    assert place.loc["portfolio", "x"] < place.loc["portfolio-m", "x"]
    assert (place["level"].to_dict(), place["actions"].to_dict()) == ({"portfolio": 1, "portfolio-m": 2},
                                                                     {"portfolio": 33, "portfolio-m": 210})
    masked = table[table["method"] == "masked_ppo"].set_index("env")
    assert masked.loc["portfolio", "score"] == pytest.approx(80.0)
    assert masked.loc["portfolio-m", "score"] == pytest.approx(70.0)
    assert masked.loc["portfolio-m", "score_ci_low"] < 70.0 < masked.loc["portfolio-m", "score_ci_high"]
    assert scaling.families(table) == ["portfolio"]


def test_the_paragraph_says_what_the_numbers_show(scaling_runs):
    summary, _ = report.summarize(results.load(scaling_runs))
    text = scaling.describe(scaling.scaling_table(summary), "portfolio")
    assert "from portfolio (33 actions" in text and "to portfolio-m (210 actions" in text
    assert "masked_ppo 80 → 70" in text and "naive_masked_ppo 60 → 40" in text
    # The best penalty is 0.1 at the smallest level, 1.0 at the largest: edges 80 - 70 and 70 - 30. Every method's
    # seeds score its value -1, +0 and +1: the variance of each mean is 1/3, so each edge's Welch interval has
    # 4 degrees of freedom, +-t(4) sqrt(2/3), and the change of edge 8, +-t(8) sqrt(4/3)
    half, change_half = stats.t.ppf(0.975, 4) * (2 / 3) ** 0.5, stats.t.ppf(0.975, 8) * (4 / 3) ** 0.5
    assert ("Masking's edge over the best penalty (penalty_ppo [penalty=0.1 (10x default)] at portfolio, "
            "penalty_ppo [penalty=1.0 (100x default)] at portfolio-m): "
            f"+10.0 ({10 - half:+.1f} to {10 + half:+.1f}) points at portfolio (43.8% inadmissible), "
            f"+40.0 ({40 - half:+.1f} to {40 + half:+.1f}) at portfolio-m (90.1% inadmissible); it grows: "
            f"+30.0 ({30 - change_half:+.1f} to {30 + change_half:+.1f}) points (95%, Welch).") in text
    edges = scaling.edge_table(scaling.scaling_table(summary)).set_index("env")
    assert edges.loc["portfolio-m", "ci_low"] == pytest.approx(40 - half)
    assert edges.loc["portfolio-m", "ci_high"] == pytest.approx(40 + half) and edges["beyond_noise"].all()
    assert "Naive masking ends between the best penalty and masking at the largest level (40)." in text


def test_the_aggregates_pool_a_penalty_by_its_size_relative_to_each_envs_default(scaling_runs, tmp_path):
    """portfolio's default penalty is 0.01: 0.1 is 10x it on every level, so it is one method across levels."""
    report.write_report(scaling_runs, tmp_path)
    raw = pd.read_csv(tmp_path / "raw_scores.csv")
    penalty = raw[raw["algo"] == "penalty_ppo"].groupby("method")["task"].nunique().to_dict()
    assert penalty == {"penalty_ppo (penalty=10x default)": 2, "penalty_ppo (penalty=100x default)": 2}


def test_an_edge_that_does_not_grow_is_said_plainly():
    rows = []
    for level, env, x in ((1, "speed_limit", 0.5), (2, "speed_limit-m", 0.8)):
        for method, score in (("masked_ppo", 98.0), ("penalty_ppo [penalty=1.0]", 97.0)):
            rows.append({"family": "speed_limit", "level": level, "env": env, "actions": 10 * level, "x": x,
                         "x_label": "inadmissible share", "method": method, "algo": method.split(" ")[0],
                         "score": score})
    text = scaling.describe(pd.DataFrame(rows), "speed_limit")
    assert "it changes by +0.0 points, with no interval (one seed)" in text  # no seeds' spread to judge it by


def test_an_edge_within_seed_noise_is_said_to_be_so():
    # masked 80 and penalty 70 at both levels, seeds 10 apart: the edges agree and the change's interval holds 0
    rows = []
    for level, env, x in ((1, "portfolio", 0.4), (2, "portfolio-m", 0.9)):
        for method, score in (("masked_ppo", 80.0), ("penalty_ppo", 70.0)):
            rows.append({"family": "portfolio", "level": level, "env": env, "actions": 10 * level, "x": x,
                         "x_label": "inadmissible share", "method": method, "algo": method, "score": score,
                         "seeds": 5, "score_ci_low": score - 12.4, "score_ci_high": score + 12.4})
    text = scaling.describe(pd.DataFrame(rows), "portfolio")
    assert "no change beyond seed noise: +0.0 (" in text and "(95%, Welch)" in text


def test_the_report_writes_the_scaling_table_figure_and_section(scaling_runs, tmp_path):
    _, _, text = report.write_report(scaling_runs, tmp_path)
    assert (tmp_path / "plots" / "scaling_portfolio.png").stat().st_size > 10_000
    table = pd.read_csv(tmp_path / "scaling.csv")
    assert len(table) == 12 and set(table["env"]) == {"portfolio", "portfolio-m"}
    assert "## Scaling with the level" in text and "### portfolio" in text
    assert "![scaling portfolio](plots/scaling_portfolio.png)" in text
    assert "| masked_ppo | 80.0 (" in unpadded(text)
    edges = pd.read_csv(tmp_path / "scaling_edges.csv")
    assert set(edges["env"]) == {"portfolio", "portfolio-m"} and set(edges["algo"]) == {"penalty_ppo"}
    assert "| portfolio-m (90.1%) | penalty_ppo [penalty=1.0 (100x default)] | 70.0 | 30.0 | 40.0 (" in unpadded(text)


def test_runs_on_one_level_make_no_scaling_section(tmp_path):
    for algo, value in (("random_valid", 0.0), ("oracle", 10.0), ("masked_ppo", 5.0)):
        write_synthetic_run(tmp_path / "runs", "portfolio", algo, 0, returns=[value] * 3)
    _, _, text = report.write_report(tmp_path / "runs", tmp_path / "out")
    assert "Scaling" not in text and not (tmp_path / "out" / "scaling.csv").exists()
