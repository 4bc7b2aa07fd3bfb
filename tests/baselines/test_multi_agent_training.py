"""Several agents trained on both backends: RLlib's multi-agent env, shared and per-agent policies, resume, learning."""

import numpy as np
import pandas as pd
import pytest
from ray.rllib.utils.pre_checks.env import check_multiagent_environments

import envs
from baselines.backends.rllib_multi_agent import MultiAgentTrainingEnv
from baselines.training_env import TrainingContext
from envs.masking import MASK_KEY, OBSERVATION_KEY
from tests.helpers import TINY, TINY_SETTINGS, assert_ray_is_gone, build_algo, run_folder, run_main


@pytest.mark.parametrize("penalty", [None, 0.5])
def test_the_rllib_multi_agent_env_passes_rllibs_checker_and_shapes_rewards_per_agent(penalty):
    context = TrainingContext("portfolio", {"n_agents": 3, "reward": "value_change"}, "symlog", 2.0,
                              observes_mask=penalty is None, penalty=penalty)
    env = MultiAgentTrainingEnv(context)
    check_multiagent_environments(env)
    obs, _ = env.reset(seed=0)
    assert set(obs) == {"trader_0", "trader_1", "trader_2"}
    if penalty is None:
        assert set(obs["trader_0"]) == {OBSERVATION_KEY, MASK_KEY}
    else:
        assert obs["trader_0"].shape == env.observation_spaces["trader_0"].shape  # the mask is hidden
    sells = {agent: np.array([0, 0, 0]) for agent in obs}  # selling what nobody holds: C1 in every asset
    raw = envs.make_multi_agent_vector("portfolio", 1, n_agents=3, reward="value_change")
    raw.reset(seed=0)
    _, raw_reward, *_ = raw.step(np.full((1, 3, 3), 5))  # what holding pays
    obs, rewards, terminateds, truncateds, _ = env.step(sells)
    expected = 2.0 * (raw_reward[0] - (penalty or 0) * 3)
    assert [rewards[a] for a in sorted(rewards)] == pytest.approx(expected.tolist())
    assert terminateds["__all__"] is False and truncateds["__all__"] is False
    for _ in range(19):
        obs, rewards, terminateds, truncateds, _ = env.step({agent: np.array([5, 5, 5]) for agent in obs})
    assert terminateds["__all__"] or truncateds["__all__"]
    drained = env.drain()
    assert drained["env_steps"] == 20 and drained["steps"] == 3 * 20  # one episode (the checker's was abandoned)
    assert len(drained["episodes"]) == 3 and drained["invalid_steps"] >= 3


def test_masked_ppo_trains_three_traders_with_one_shared_policy_and_never_errs(tmp_path):
    assert run_main("--env", "portfolio", "--env-config", "n_agents=3", "--env-config", "price_impact=0.01",
                    "--algo", "masked_ppo", "--steps", "1024", "--episodes", "4", "--out", str(tmp_path), "--quiet",
                    "--eval-every", "1", *TINY) == 0
    assert_ray_is_gone()
    directory = run_folder(tmp_path, "portfolio", "masked_ppo", 0)
    progress, evaluation = pd.read_csv(directory / "progress.csv"), pd.read_csv(directory / "eval.csv")
    assert progress["env_steps"].tolist() == [512, 1024]
    assert (progress["invalid_action_rate"] == 0).all()
    for agent in ("trader_0", "trader_1", "trader_2"):
        assert progress[f"{agent}_episode_return_mean"].notna().all()
        assert (progress[f"{agent}_invalid_action_rate"] == 0).all()
    # 3 agents act in every env step, so agent steps/s is 3x env steps/s
    assert progress["agent_steps_per_second"].div(progress["env_steps_per_second"]).round(6).eq(3).all()
    assert progress["eval_return_mean"].notna().all() and progress["entropy"].notna().all()
    assert list(evaluation.columns[:5]) == ["episode", "env_seed", "policy", "mask", "agent"]
    assert evaluation.groupby(["policy", "mask"]).size().eq(4 * 3).all()
    assert (evaluation.loc[evaluation["mask"] == "on", "invalid_actions"] == 0).all()


def test_penalty_ppo_trains_one_policy_per_car(tmp_path):
    assert run_main("--env", "speed_limit", "--env-config", "n_agents=2", "--algo", "penalty_ppo",
                    "--algo-config", "policies=per_agent", "--steps", "512", "--episodes", "3",
                    "--out", str(tmp_path), "--quiet", *TINY) == 0
    assert_ray_is_gone()
    directory = run_folder(tmp_path, "speed_limit", "penalty_ppo", 0)
    evaluation = pd.read_csv(directory / "eval.csv")
    assert set(evaluation["agent"]) == {"car_0", "car_1"} and set(evaluation["mask"]) == {"off"}
    assert (directory / "checkpoint" / "rllib").is_dir()
    modules = {p.name for p in (directory / "checkpoint" / "rllib").rglob("*") if p.name in ("car_0", "car_1")}
    assert modules == {"car_0", "car_1"}  # one trained module per car


TORCH_TINY = [*TINY, "--backend", "torch"]


def torch_algo(name, env_config, algo="masked_ppo", **settings):
    return build_algo(algo, name, env_config, budget=10_000,
                      **{**TINY_SETTINGS, "num_envs_per_env_runner": 8, "backend": "torch", **settings})


@pytest.mark.parametrize("algo", ["masked_ppo", "penalty_ppo"])
def test_a_torch_rollout_keeps_exactly_the_steps_agents_took_and_masked_agents_stay_admissible(algo):
    """Cars leave at different times: their later steps are out of the loss, and a departed car's stale
    mask never reaches the masked distribution. Admissibility is judged by the env's own mask, in the
    state each action was taken in (``info["invalid_actions"]``, computed by the env core), not by the
    mask the sampler was given."""
    algo_ = torch_algo("speed_limit", {"n_agents": 3}, algo)
    inadmissible = []
    env_step = algo_.env.vec.step

    def step(actions):  # every executed action, against the env's own verdict
        result = env_step(actions)
        inadmissible.append(int(result[4]["invalid_actions"][algo_.env.acted].sum()))
        return result

    algo_.env.vec.step = step
    try:
        counts = np.zeros(3, dtype=int)
        for _ in range(8):  # 8 x 64 steps: every entry finishes episodes, cars leaving one by one
            batch, _ = algo_._rollout()
            stats = algo_.env.drain()
            assert len(batch["actions"]) == stats["steps"]  # agent steps, nothing for departed cars
            counts += np.bincount(batch["agents"].numpy(), minlength=3)
            assert ("masks" in batch) == (algo == "masked_ppo")
        # car 0 (front) arrives first, so the cars behind take more steps
        assert counts[0] < counts[2] and counts.min() > 0
        assert len(inadmissible) == 8 * 512 // 8
        if algo == "masked_ppo":
            assert sum(inadmissible) == 0
        else:  # an untrained penalty agent does try inadmissible speeds: the check can fail
            assert sum(inadmissible) > 0
    finally:
        algo_.close()


def test_torch_masked_ppo_trains_three_traders_with_one_shared_network(tmp_path):
    assert run_main("--env", "portfolio", "--env-config", "n_agents=3", "--env-config", "price_impact=0.01",
                    "--algo", "masked_ppo", "--steps", "1024", "--episodes", "4", "--out", str(tmp_path), "--quiet",
                    "--eval-every", "1", *TORCH_TINY) == 0
    import ray

    assert not ray.is_initialized()
    directory = run_folder(tmp_path, "portfolio", "masked_ppo", 0)
    progress, evaluation = pd.read_csv(directory / "progress.csv"), pd.read_csv(directory / "eval.csv")
    assert (progress["invalid_action_rate"] == 0).all() and progress["eval_return_mean"].notna().all()
    for agent in ("trader_0", "trader_1", "trader_2"):
        assert progress[f"{agent}_episode_return_mean"].notna().all()
        assert (progress[f"{agent}_invalid_action_rate"] == 0).all()
    assert progress["agent_steps_per_second"].div(progress["env_steps_per_second"]).round(6).eq(3).all()
    assert evaluation.groupby(["policy", "mask"]).size().eq(4 * 3).all()
    assert (evaluation.loc[evaluation["mask"] == "on", "invalid_actions"] == 0).all()
    import torch

    assert len(torch.load(directory / "checkpoint" / "torch_ppo.pt", weights_only=True)["models"]) == 1


def test_torch_penalty_ppo_trains_one_network_per_car_and_resumes_exactly(tmp_path):
    common = ["--env", "speed_limit", "--env-config", "n_agents=2", "--algo", "penalty_ppo", "--algo-config",
              "policies=per_agent", "--episodes", "3", "--quiet", *TORCH_TINY]
    assert run_main(*common, "--steps", "2048", "--out", str(tmp_path / "whole")) == 0
    assert run_main(*common, "--steps", "1024", "--checkpoint-every", "1", "--out", str(tmp_path / "split")) == 0
    whole, split = (run_folder(tmp_path / out, "speed_limit", "penalty_ppo", 0) for out in ("whole", "split"))
    (split / "eval.csv").unlink()  # killed in evaluation
    assert run_main(*common, "--steps", "2048", "--resume", "--out", str(tmp_path / "split")) == 0
    evaluation = pd.read_csv(whole / "eval.csv")
    assert set(evaluation["agent"]) == {"car_0", "car_1"} and set(evaluation["mask"]) == {"off"}
    import torch

    state = torch.load(whole / "checkpoint" / "torch_ppo.pt", weights_only=True)
    assert len(state["models"]) == 2  # one trained network per car
    assert not torch.equal(state["models"][0]["policy.0.weight"], state["models"][1]["policy.0.weight"])
    a, b = pd.read_csv(whole / "progress.csv"), pd.read_csv(split / "progress.csv")
    assert a["iteration"].tolist() == b["iteration"].tolist() and b["env_steps"].iloc[-1] > 1536
    assert (b["invalid_action_rate"] > 0).all()  # penalty PPO's cars cannot see their masks


def test_a_torch_checkpoint_brings_back_every_agents_network_optimiser_and_generator(tmp_path):
    import torch

    trained = torch_algo("speed_limit", {"n_agents": 3}, "penalty_ppo", policies="per_agent")
    fresh = torch_algo("speed_limit", {"n_agents": 3}, "penalty_ppo", policies="per_agent")
    try:
        trained.train_iteration()
        trained.save(tmp_path)
        fresh.restore(tmp_path)
        assert len(fresh.models) == 3 and fresh.env_steps == trained.env_steps > 0
        for before, after in zip(trained.models.parameters(), fresh.models.parameters(), strict=True):
            assert torch.equal(before, after)
        for before, after in zip(trained.optimizers, fresh.optimizers, strict=True):
            assert before.state_dict()["state"].keys() == after.state_dict()["state"].keys() != set()
        assert torch.equal(trained.generator.get_state(), fresh.generator.get_state())
    finally:
        trained.close()
        fresh.close()


def test_the_torch_backend_learns_with_three_traders(tmp_path):
    """40k env steps (120k agent steps, about 20 seconds) of one shared network: the traders' training
    mean rises by hundreds of dollars and their greedy policy ends about 2.2x as rich as random-valid
    traders (after one iteration it is about 1.5x: a greedy masked policy is no weak baseline)."""
    common = ["--env", "portfolio", "--env-config", "n_agents=3", "--episodes", "100", "--out", str(tmp_path),
              "--quiet", "--seed", "1"]
    assert run_main(*common, "--algo", "random_valid") == 0
    assert run_main(*common, "--algo", "masked_ppo", "--backend", "torch", "--steps", "40000") == 0
    directory = run_folder(tmp_path, "portfolio", "masked_ppo", 1)
    progress, evaluation = pd.read_csv(directory / "progress.csv"), pd.read_csv(directory / "eval.csv")
    baseline = pd.read_csv(run_folder(tmp_path, "portfolio", "random_valid", 1) / "eval.csv")["return"].mean()
    greedy = evaluation.query("policy == 'greedy' and mask == 'on'").groupby("agent")["return"].mean()
    assert (greedy > 1.9 * baseline).all(), (greedy, baseline)
    assert progress["portfolio_value_mean"].iloc[-2:].mean() > progress["portfolio_value_mean"].iloc[:2].mean() + 250
    assert (progress["invalid_action_rate"] == 0).all()
