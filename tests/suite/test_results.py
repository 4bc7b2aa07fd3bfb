"""suite.results.load: every run of a folder as tidy frames, with unfinished, failed and corrupt
runs flagged instead of mixed in, and a damaged file never stopping the rest."""

import pandas as pd
import pytest

from baselines.random_valid import RandomValid
from suite import results, run
from suite.cli import run_cli


def test_complete_runs_load_as_tidy_frames_with_config_columns(tmp_path, make_run):
    for seed in range(3):
        make_run(tmp_path, seed=seed)
    make_run(tmp_path, algo="random_valid", algo_config={"num_envs": 64})
    loaded = results.load(tmp_path)
    assert loaded.problems == ()
    assert len(loaded.runs) == 4 and set(loaded.runs["status"]) == {"complete"}
    assert list(loaded.progress.columns[:len(results.RUN_COLUMNS)]) == results.RUN_COLUMNS
    assert list(loaded.evals.columns[:len(results.RUN_COLUMNS)]) == results.RUN_COLUMNS
    assert len(loaded.progress) == 8 and len(loaded.evals) == 12
    masked = loaded.runs[loaded.runs["algo"] == "masked_ppo"]
    assert masked["config_id"].nunique() == 1  # seeds of one config share it
    assert masked["config_id"].iloc[0] != loaded.runs.loc[loaded.runs["algo"] == "random_valid", "config_id"].iloc[0]
    assert masked["algo.hidden"].eq("16,16").all() and masked["env.periods"].eq(20).all()
    assert masked["env_steps"].eq(200).all() and masked["wall_seconds"].eq(3.0).all()
    means = loaded.evals.groupby(["algo", "seed"])["return"].mean()
    assert means[("masked_ppo", 2)] == 13.0


def test_unfinished_failed_and_corrupt_runs_are_flagged_and_the_rest_still_loads(tmp_path, make_run):
    make_run(tmp_path, seed=0)
    make_run(tmp_path, seed=1, evaluated=False, steps=1000)                        # interrupted
    (make_run(tmp_path, seed=2, evaluated=False) / "error.txt").write_text(
        "Traceback (most recent call last):\n  ...\nRuntimeError: the learner diverged\n")
    (make_run(tmp_path, seed=3) / "progress.csv").write_bytes(b"\x00\xff\xfe garbage")  # not a CSV
    eval_file = make_run(tmp_path, seed=4) / "eval.csv"
    eval_file.write_text(eval_file.read_text()[:-15])                                  # cut mid-row
    (make_run(tmp_path, seed=5) / "config.json").write_text("{not json")
    (make_run(tmp_path, seed=6) / "eval.csv").write_text("")                          # empty
    loaded = results.load(tmp_path)
    status = dict(zip(loaded.runs["seed"], loaded.runs["status"]))
    assert status == {0: "complete", 1: "unfinished", 2: "failed", 3: "corrupt", 4: "corrupt", 5: "corrupt",
                      6: "corrupt"}
    problem = dict(zip(loaded.runs["seed"], loaded.runs["problem"]))
    assert problem[1] == "unfinished: 200 of 1,000 env steps, no eval.csv"
    assert problem[2] == "failed: RuntimeError: the learner diverged"
    assert problem[3].startswith("progress.csv is unreadable")
    assert problem[4] == "eval.csv was cut mid-row (its last line is unfinished); eval.csv has 1 truncated row(s)"
    assert problem[5].startswith("config.json is unreadable")
    assert problem[6].startswith("eval.csv is unreadable (EmptyDataError")
    assert len(loaded.problems) == 6 and all(line.startswith("portfolio/masked_ppo/seed") for line in loaded.problems)
    assert set(loaded.evals["seed"]) == {0}  # only complete runs are evaluated data
    assert set(loaded.progress["seed"]) == {0, 1, 2, 4, 5, 6}  # progress of every readable run, status attached
    assert loaded.runs.loc[loaded.runs["seed"] == 5, "env"].item() == "portfolio"  # from the folder names
    complete = loaded.complete()
    assert list(complete.runs["seed"]) == [0] and set(complete.progress["seed"]) == {0}


def test_runs_are_found_at_any_depth_and_checkpoints_are_not_runs(tmp_path, make_run):
    make_run(tmp_path / "penalty0.01", algo="penalty_ppo")
    make_run(tmp_path / "penalty0.1", algo="penalty_ppo", algo_config={"penalty": 0.1})
    (tmp_path / "penalty0.1" / "portfolio" / "penalty_ppo" / "seed0" / "checkpoint" / "seed9").mkdir(parents=True)
    loaded = results.load(tmp_path)
    assert sorted(loaded.runs["run"]) == ["penalty0.01/portfolio/penalty_ppo/seed0",
                                          "penalty0.1/portfolio/penalty_ppo/seed0"]
    assert loaded.runs["config_id"].nunique() == 2


def test_an_empty_or_missing_folder_is_one_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="no runs under .*expected <env>/<algo>/seed<k>/"):
        results.load(tmp_path)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        results.load(tmp_path / "nope")


class FailingAlgo(RandomValid):
    """Trains one iteration, then fails."""

    def train_iteration(self):
        if self.env_steps:
            raise RuntimeError("simulated failure in training")
        return super().train_iteration()


def test_a_run_that_fails_is_recorded_as_failed_and_a_rerun_clears_it(tmp_path, monkeypatch):
    import baselines

    monkeypatch.setitem(baselines.registry._ALGOS, "failing_test_algo", FailingAlgo)  # gone after the test
    common = ["--env", "portfolio", "--steps", "6000", "--episodes", "5", "--out", str(tmp_path), "--quiet"]
    with pytest.raises(RuntimeError, match="simulated failure"):
        run.main([*common, "--algo", "failing_test_algo", "--checkpoint-every", "1"])
    assert run_cli(run.main, "python -m suite.run", [*common, "--algo", "random_valid"]) == 0
    loaded = results.load(tmp_path)
    status = dict(zip(loaded.runs["algo"], loaded.runs["status"]))
    assert status == {"failing_test_algo": "failed", "random_valid": "complete"}
    failed = loaded.runs.set_index("algo").loc["failing_test_algo"]
    assert failed["problem"] == "failed: RuntimeError: simulated failure in training" and failed["env_steps"] > 0
    # Resuming the failed run starts it again: error.txt goes, the run is unfinished until it ends.
    monkeypatch.setitem(baselines.registry._ALGOS, "failing_test_algo", RandomValid)
    assert run_cli(run.main, "python -m suite.run", [*common, "--algo", "failing_test_algo", "--resume"]) == 0
    assert set(results.load(tmp_path).runs["status"]) == {"complete"}


def test_damage_a_summary_must_not_average_is_found(tmp_path, make_run):
    make_run(tmp_path, seed=0)
    header_only = make_run(tmp_path, seed=1) / "progress.csv"
    header_only.write_text(header_only.read_text().splitlines()[0] + "\n")
    record = make_run(tmp_path, seed=2) / "config.json"
    record.write_text(record.read_text().replace('"seed": 2', '"seed": "two"'))
    text_return = make_run(tmp_path, seed=3) / "eval.csv"
    text_return.write_text(text_return.read_text().replace("13.0", "thirteen"))
    mid_row = make_run(tmp_path, seed=4, iterations=3) / "progress.csv"
    mid_row.write_text(mid_row.read_text()[:-4])  # cut inside the last row, after its required columns
    make_run(tmp_path, seed=5, iterations=13, steps=3100)  # progress stops at 1,300 of 3,100 env steps
    mixed = make_run(tmp_path, seed=6) / "eval.csv"  # two writers: 5 episodes where config.json asks for 3
    frame = pd.read_csv(mixed)
    pd.concat([frame, frame.head(2).assign(episode=[3, 4])]).to_csv(mixed, index=False)
    loaded = results.load(tmp_path)
    status = dict(zip(loaded.runs["seed"], loaded.runs["status"]))
    problem = dict(zip(loaded.runs["seed"], loaded.runs["problem"]))
    assert status == {0: "complete", 1: "corrupt", 2: "corrupt", 3: "corrupt", 4: "corrupt", 5: "corrupt",
                      6: "corrupt"}, problem
    assert problem[1] == "progress.csv has no rows though eval.csv exists"
    assert problem[2] == "config.json is unreadable (its seed is not an integer ('two'))"
    assert problem[3].startswith("eval.csv has text in its numeric column 'return' (1 row(s))")
    assert problem[4].startswith("progress.csv was cut mid-row")
    assert problem[5] == "progress.csv stops at 1,300 of the 3,100 env steps config.json asks for"
    assert problem[6] == "the files disagree: eval.csv has [5] episode(s) per policy, config.json asks for 3"
    assert set(loaded.complete().runs["seed"]) == {0}
