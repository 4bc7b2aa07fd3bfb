"""sb3-contrib's MaskablePPO as the sb3 backend: the same settings, both vec envs, resume and bad input."""

import pandas as pd
import pytest

pytest.importorskip("sb3_contrib", reason='the compare extra: pip install -e ".[compare]"')

from suite import results
from tests.helpers import TIMING, TINY, build_algo, run_folder, run_main


def tiny_run(out, *extra, env="portfolio", steps=1024):
    return run_main("--env", env, "--algo", "sb3_maskable_ppo", "--steps", str(steps), "--episodes", "8",
                    "--out", str(out), "--quiet", *TINY, *extra)


def read_run(out, env="portfolio"):
    directory = run_folder(out, env, "sb3_maskable_ppo", 0)
    return pd.read_csv(directory / "progress.csv"), pd.read_csv(directory / "eval.csv")


@pytest.mark.parametrize("env", ["portfolio", "speed_limit"])
def test_the_batched_adapter_and_the_usual_dummy_vec_env_train_identically(tmp_path, env):
    """Same seeds, same episodes, same updates: the adapter keeps Stable-Baselines3's semantics
    (same-step autoreset, terminal observations, truncation) exactly."""
    frames = []
    for vec_env in ("dummy", "batched"):
        assert tiny_run(tmp_path / vec_env, "--algo-config", f"vec_env={vec_env}", env=env) == 0
        progress, evaluation = read_run(tmp_path / vec_env, env)
        frames.append((progress.drop(columns=TIMING, errors="ignore"), evaluation))
    pd.testing.assert_frame_equal(frames[0][0], frames[1][0])
    pd.testing.assert_frame_equal(frames[0][1], frames[1][1])
    progress, evaluation = frames[0]
    assert (progress["invalid_action_rate"] == 0).all() and progress["episodes"].iloc[-1] > 0
    assert list(progress.columns[:len(results.PROGRESS_COLUMNS) - 1]) == \
        [c for c in results.PROGRESS_COLUMNS if c not in TIMING]
    groups = evaluation.groupby(["policy", "mask"]).size().to_dict()
    assert groups == {("greedy", "off"): 8, ("greedy", "on"): 8, ("stochastic", "off"): 8, ("stochastic", "on"): 8}
    assert (evaluation.loc[evaluation["mask"] == "on", "invalid_actions"] == 0).all()


def test_maskable_ppo_gets_masked_ppos_hyperparameters():
    algo = build_algo("sb3_maskable_ppo", "portfolio", budget=10**6)
    config = algo.config
    model = algo.model
    assert model.n_steps * model.n_envs == config.train_batch_size == 8192
    assert (model.batch_size, model.n_epochs) == (config.minibatch_size, config.num_epochs)
    assert (model.gamma, model.gae_lambda, model.ent_coef, model.vf_coef, model.max_grad_norm) == \
        (config.gamma, config.gae_lambda, config.entropy_coeff, config.vf_loss_coeff, config.grad_clip)
    assert model.clip_range(1.0) == config.clip_param and model.learning_rate(1.0) == config.lr
    linear = [m for m in model.policy.mlp_extractor.policy_net if hasattr(m, "out_features")]
    assert tuple(m.out_features for m in linear) == config.hidden == (256, 256)
    assert type(model.policy.mlp_extractor.policy_net[1]).__name__ == "Tanh"
    assert model.observation_space.shape == (8,)  # the features, not the mask
    algo.close()


@pytest.mark.parametrize("argv, message", [
    (["--env", "sum_to_zero"], "sb3_maskable_ppo handles discrete actions; env 'sum_to_zero' has Box"),
    (["--env", "portfolio", "--env-config", "n_agents=2"], "sb3_maskable_ppo masks categorical actions of one agent"),
    (["--env", "portfolio", "--algo-config", "vf_clip_param=10"], "vf_clip_param must be inf"),
    (["--env", "portfolio", "--algo-config", "vec_env=subproc"], "config key 'vec_env' must be one of"),
])
def test_bad_input_is_one_line_with_status_2(tmp_path, capsys, argv, message):
    assert run_main(*argv, "--algo", "sb3_maskable_ppo", "--out", str(tmp_path), "--quiet") == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1, err
    assert not any(tmp_path.iterdir())


def test_linear_learning_rate_and_resume_from_a_checkpoint(tmp_path):
    linear = ["--algo-config", "lr_schedule=linear", "--checkpoint-every", "1"]
    assert tiny_run(tmp_path, *linear, steps=1024) == 0
    directory = run_folder(tmp_path, "portfolio", "sb3_maskable_ppo", 0)
    (directory / "eval.csv").unlink()  # as if killed during evaluation
    assert tiny_run(tmp_path, *linear, "--resume", steps=1536) == 0
    progress, _ = read_run(tmp_path)
    assert progress["env_steps"].tolist() == [512, 1024, 1536]
    # lr x (1 - steps done / budget); the first two iterations ran under the first budget (1,024).
    assert progress["lr"].tolist() == pytest.approx([1e-3, 1e-3 * (1 - 512 / 1024), 1e-3 * (1 - 1024 / 1536)])
    assert (directory / "checkpoint" / "sb3_model.zip").stat().st_size < 5_000_000  # weights, not the algo
