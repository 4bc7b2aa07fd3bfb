"""Several agents from the batched view to RLlib's multi-agent API, evaluation and the report.

The envs' own multi-agent rules (price impact, S4 headway, agents leaving) are tested with each
env; here: the batched multi-agent view against the PettingZoo view, the RLlib multi-agent env,
per-agent results of every algo, and scores against references of the same env config.
"""

import numpy as np
import pandas as pd
import pytest
from ray.rllib.utils.pre_checks.env import check_multiagent_environments

import envs
from baselines.rllib_multi_agent import MultiAgentTrainingEnv
from baselines.rollout import EpisodeTracker, evaluate, joint_policy
from envs.masking import MASK_KEY, OBSERVATION_KEY, sample_masked
from suite import report, results, run
from tests.test_rllib_ppo import TINY, assert_ray_is_gone

CONFIGS = [("portfolio", {"n_agents": 2, "price_impact": 0.05}), ("speed_limit", {"n_agents": 3})]


def run_main(*argv):
    return run.run_cli(run.main, "python -m suite.run", list(argv))


@pytest.mark.parametrize("name,config", CONFIGS)
def test_the_batched_multi_agent_view_plays_entry_i_as_the_pettingzoo_view_seeded_s_plus_i(name, config):
    vec = envs.make_multi_agent_vector(name, 3, **config)
    singles = [envs.make_parallel(name, **config) for _ in range(3)]
    obs, _ = vec.reset(seed=10)
    single_obs = [env.reset(seed=10 + i)[0] for i, env in enumerate(singles)]
    rng = np.random.default_rng(0)
    ended = np.zeros(3, dtype=bool)
    for _ in range(400):
        for i, env in enumerate(singles):
            if ended[i]:
                continue
            for j, agent in enumerate(vec.agent_ids):
                live = agent in env.agents
                assert vec.live[i, j] == live
                if live:
                    np.testing.assert_array_equal(obs[OBSERVATION_KEY][i, j], single_obs[i][agent][OBSERVATION_KEY])
                    np.testing.assert_array_equal(obs[MASK_KEY][i, j], single_obs[i][agent][MASK_KEY])
        actions = sample_masked(rng, obs[MASK_KEY], vec.core.nvec)
        obs, reward, terminated, truncated, _ = vec.step(actions)
        for i, env in enumerate(singles):
            if ended[i]:
                continue
            acting = list(env.agents)
            single_obs[i], rewards, *_ = env.step({a: actions[i, vec.agent_ids.index(a)] for a in acting})
            for agent in acting:
                assert reward[i, vec.agent_ids.index(agent)] == pytest.approx(rewards[agent])
            ended[i] = not env.agents
        if ended.all():
            break
    assert ended.all()


def test_agents_that_left_are_idle_and_an_entry_resets_once_all_have_left():
    vec = envs.make_multi_agent_vector("speed_limit", 2, n_agents=3)
    obs, _ = vec.reset(seed=3)
    tracker = EpisodeTracker(2 * 3, next_step_autoreset=False)
    rng = np.random.default_rng(1)
    finished = []
    saw_partial = False
    for _ in range(2000):
        obs, reward, terminated, truncated, info = vec.step(sample_masked(rng, obs[MASK_KEY], vec.core.nvec))
        assert not (reward[~vec.acted]).any() and not terminated[~vec.acted].any()
        assert (info["invalid_actions"] == 0).all()  # admissible actions for live agents, idle for the others
        saw_partial |= bool((vec.acted.any(axis=1) & ~vec.acted.all(axis=1)).any())
        finished += tracker.update(reward, terminated, truncated, info, active=vec.acted)
        if len(finished) >= 12:
            break
    assert saw_partial, "no car ever left before the others"
    # every agent of every entry finished two episodes, one record each
    counts = pd.Series([f["env_index"] for f in finished]).value_counts()
    assert set(counts.index) == set(range(6)) and (counts >= 1).all()


@pytest.mark.parametrize("name,config", CONFIGS)
def test_evaluation_has_one_record_per_episode_and_agent(name, config):
    from baselines.random_valid import RandomValidPolicy

    space = envs.make_core(name, 1, **config).action_space
    policy = joint_policy([lambda obs, rng, env: RandomValidPolicy(space)(obs, rng)] * config["n_agents"])
    records = evaluate(name, config, policy, episodes=5, seed_base=100, rng=np.random.default_rng(0))
    frame = pd.DataFrame(records)
    assert len(frame) == 5 * config["n_agents"]
    assert frame.groupby("episode")["agent"].apply(list).tolist() == [[f"{a}" for a in
                                                                       envs.make_core(name, 1, **config).agent_ids]] * 5
    assert (frame["env_seed"] == 100 + frame["episode"]).all()
    assert (frame["invalid_actions"] == 0).all()


def test_joint_policy_calls_a_shared_policy_once_and_separate_policies_per_agent():
    calls = []

    def make(tag):
        def policy(obs, rng, env):
            calls.append((tag, obs["x"].shape))
            return obs["x"][:, 0] * 0 + tag
        return policy

    obs = {"x": np.zeros((4, 3, 5))}
    shared = make(7)
    assert joint_policy([shared] * 3)(obs, None, None).tolist() == [[7, 7, 7]] * 4
    assert calls == [(7, (12, 5))]
    calls.clear()
    assert joint_policy([make(1), make(2), make(3)])(obs, None, None).tolist() == [[1, 2, 3]] * 4
    assert calls == [(1, (4, 5)), (2, (4, 5)), (3, (4, 5))]


@pytest.mark.parametrize("penalty", [None, 0.5])
def test_the_rllib_multi_agent_env_passes_rllibs_checker_and_shapes_rewards_per_agent(penalty):
    context = {"env_name": "portfolio", "env_config": {"n_agents": 3, "reward": "value_change"},
               "obs_transform": "symlog", "reward_scale": 2.0, "penalty": penalty}
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
    directory = results.run_dir(tmp_path, "portfolio", "masked_ppo", 0)
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
    directory = results.run_dir(tmp_path, "speed_limit", "penalty_ppo", 0)
    evaluation = pd.read_csv(directory / "eval.csv")
    assert set(evaluation["agent"]) == {"car_0", "car_1"} and set(evaluation["mask"]) == {"off"}
    assert (directory / "checkpoint" / "rllib").is_dir()
    modules = {p.name for p in (directory / "checkpoint" / "rllib").rglob("*") if p.name in ("car_0", "car_1")}
    assert modules == {"car_0", "car_1"}  # one trained module per car


# ------------------------------------------------------------------ the torch backend with several agents

TORCH_TINY = [*TINY, "--backend", "torch"]


def torch_algo(name, env_config, algo="masked_ppo", **settings):
    from baselines import load_algo

    cls = load_algo(algo)
    config = cls.make_config(name, {"train_batch_size": 512, "minibatch_size": 128, "num_epochs": 2,
                                    "num_envs_per_env_runner": 8, "hidden": (16,), "backend": "torch",
                                    **settings}, owner=algo)
    return cls.implementation(config)(name, env_config, config, seed=0, budget=10_000)


@pytest.mark.parametrize("algo", ["masked_ppo", "penalty_ppo"])
def test_a_torch_rollout_keeps_exactly_the_steps_agents_took_and_masked_agents_stay_admissible(algo):
    """Cars leave at different times: their later steps are out of the loss, and a departed car's stale
    mask never reaches the masked distribution."""
    from envs.masking import mask_admits

    algo_ = torch_algo("speed_limit", {"n_agents": 3}, algo)
    try:
        counts = np.zeros(3, dtype=int)
        for _ in range(8):  # 8 x 64 steps: every entry finishes episodes, cars leaving one by one
            batch = algo_._rollout()
            stats = algo_.env.drain()
            assert len(batch["actions"]) == stats["steps"]  # agent steps, nothing for departed cars
            counts += np.bincount(batch["agents"].numpy(), minlength=3)
            if algo == "masked_ppo":
                admitted = mask_admits(batch["masks"].numpy()[:, None], batch["actions"].numpy()[:, None],
                                       algo_.nvec)
                assert admitted.all()
            else:
                assert "masks" not in batch
        # car 0 (front) arrives first, so the cars behind take more steps
        assert counts[0] < counts[2] and counts.min() > 0
    finally:
        algo_.close()


def test_torch_masked_ppo_trains_three_traders_with_one_shared_network(tmp_path):
    assert run_main("--env", "portfolio", "--env-config", "n_agents=3", "--env-config", "price_impact=0.01",
                    "--algo", "masked_ppo", "--steps", "1024", "--episodes", "4", "--out", str(tmp_path), "--quiet",
                    "--eval-every", "1", *TORCH_TINY) == 0
    import ray

    assert not ray.is_initialized()
    directory = results.run_dir(tmp_path, "portfolio", "masked_ppo", 0)
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
    whole, split = (results.run_dir(tmp_path / out, "speed_limit", "penalty_ppo", 0) for out in ("whole", "split"))
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
    directory = results.run_dir(tmp_path, "portfolio", "masked_ppo", 1)
    progress, evaluation = pd.read_csv(directory / "progress.csv"), pd.read_csv(directory / "eval.csv")
    baseline = pd.read_csv(results.run_dir(tmp_path, "portfolio", "random_valid", 1) / "eval.csv")["return"].mean()
    greedy = evaluation.query("policy == 'greedy' and mask == 'on'").groupby("agent")["return"].mean()
    assert (greedy > 1.9 * baseline).all(), (greedy, baseline)
    assert progress["portfolio_value_mean"].iloc[-2:].mean() > progress["portfolio_value_mean"].iloc[:2].mean() + 250
    assert (progress["invalid_action_rate"] == 0).all()


def test_the_report_scores_each_env_config_against_its_own_references_and_lists_agents(tmp_path):
    for algo in ("random_valid", "oracle"):
        for agents in (1, 3):
            out = tmp_path / f"k{agents}"
            assert run_main("--env", "portfolio", "--env-config", f"n_agents={agents}", "--env-config",
                            "price_impact=0.02", "--algo", algo, "--steps", "2000", "--episodes", "20",
                            "--out", str(out), "--quiet") == 0
    # both configs in one folder, as a user comparing them would have them
    merged = tmp_path / "all"
    for agents in (1, 3):
        for path in (tmp_path / f"k{agents}").rglob("seed0"):
            target = merged / f"k{agents}" / path.relative_to(tmp_path / f"k{agents}")
            target.parent.mkdir(parents=True, exist_ok=True)
            path.rename(target)
    summary, _, text = report.write_report(merged, tmp_path / "report")
    assert len(summary) == 4
    # each config's random_valid scores 0 and oracle 100 against references of its own config
    assert summary.set_index(["algo", "config"])["score"].round(6).to_dict() == {
        ("random_valid", "n_agents=1"): 0.0, ("oracle", "n_agents=1"): 100.0,
        ("random_valid", "n_agents=3"): 0.0, ("oracle", "n_agents=3"): 100.0}
    agents = pd.read_csv(tmp_path / "report" / "agents.csv")
    assert sorted(agents["agent"].unique()) == ["trader_0", "trader_1", "trader_2"]
    assert len(agents) == 2 * 3 and (agents["eval_invalid_rate"] == 0).all()
    assert "| oracle | n_agents=3 | trader_2 |" in text
