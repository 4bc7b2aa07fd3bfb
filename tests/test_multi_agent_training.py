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


def test_the_torch_backend_refuses_several_agents_in_one_line(tmp_path, capsys):
    assert run_main("--env", "portfolio", "--env-config", "n_agents=2", "--algo", "masked_ppo", "--backend", "torch",
                    "--out", str(tmp_path), "--quiet") == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "backend=rllib" in err and "n_agents=2" in err
    assert not any(tmp_path.iterdir())


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
