"""Evaluation: choosing actions from logits, episodes per agent, the joint policy of several agents."""

import numpy as np
import pandas as pd
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import envs
from baselines.evaluation import choose_actions, evaluate, joint_policy
from baselines.masked_logits import MASKED_LOGIT, apply_mask
from envs.masking import split_mask
from tests.helpers import random_masks

NVEC = [11, 11, 11]


@settings(max_examples=50, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(1, 20))
def test_sampling_masked_logits_only_picks_admissible_values(seed, n):
    rng = np.random.default_rng(seed)
    mask = random_masks(rng, n, NVEC)
    logits = apply_mask(torch.from_numpy(rng.normal(0, 5, (n, 33)).astype(np.float32)), torch.from_numpy(mask),
                        NVEC, "x").numpy()
    for draw_rng in (rng, None):
        actions = choose_actions(logits, NVEC, draw_rng)
        for k, block in enumerate(split_mask(mask, NVEC)):
            assert np.all(block[np.arange(n), actions[:, k]] == 1)


def test_stochastic_choice_follows_the_softmax():
    logits = np.tile(np.log(np.array([[0.2, 0.5, 0.3, 1e-12]])), (20000, 1))
    counts = np.bincount(choose_actions(logits, [4], np.random.default_rng(0))[:, 0], minlength=4) / 20000
    assert np.allclose(counts, [0.2, 0.5, 0.3, 0.0], atol=0.015)
    assert choose_actions(logits[:1], [4], None)[0, 0] == 1
    assert MASKED_LOGIT < -1e38


CONFIGS = [("portfolio", {"n_agents": 2, "price_impact": 0.05}), ("speed_limit", {"n_agents": 3})]


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
